#!/usr/bin/python3
"""The latency a relay hop adds, as a WHEP client sees it (tests/bench/bench_relay.sh): one
aiortc process plays the same stream from two servers at once, DIRECT (the origin) and RELAYED
(a server that pulls it from the origin over a relay), and stamps every decrypted RTP packet
with a monotonic clock the moment aiortc hands it to its receiver. Estuary rewrites only RTP
headers, so a packet's payload is the same on both paths: the difference of the two arrival
times of one payload is what the relay hop added (the relay's receive, SRTP, fan-out and send,
and one more trip over loopback). Both sessions run on one event loop, so its scheduling adds
the same noise to both.

  relay_probe.py DIRECT_WHEP_URL RELAYED_WHEP_URL SECONDS
  PROBE_DECODE=1 relay_probe.py ...    also hand the packets to aiortc's jitter buffer and decoder

Prints one JSON line: {"matched": N, "direct_only": N, "relayed_only": N, "p50_ms", "p90_ms",
"p99_ms", "max_ms", "min_ms"} over the video and audio packets seen on both paths."""
import asyncio
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import aioice.ice  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.rtcrtpreceiver import RTCRtpReceiver  # noqa: E402
from rtc_peer import count_frames, post  # noqa: E402

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

arrivals = {}   # receiver -> {payload digest: first arrival (ns)}
# Decoding two 720p streams in Python threads holds the GIL for milliseconds at a time and
# delays the arrival stamps of both paths unevenly (p99 8 ms, max 39 ms of pure noise on this
# machine); by default packets are stamped and dropped before aiortc's jitter buffer.
DECODE = os.environ.get("PROBE_DECODE") == "1"
_orig = RTCRtpReceiver._handle_rtp_packet


async def _stamped(self, packet, arrival_time_ms):
    now = time.monotonic_ns()
    seen = arrivals.setdefault(self, {})
    key = hashlib.blake2b(packet.payload, digest_size=12).digest()
    seen.setdefault(key, now)
    if DECODE:
        return await _orig(self, packet, arrival_time_ms)
    return None


RTCRtpReceiver._handle_rtp_packet = _stamped


async def play(url):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receivers = [pc.addTransceiver(k, direction="recvonly").receiver for k in ("audio", "video")]
    got, tasks = count_frames(pc)  # frames decoded (PROBE_DECODE=1), as a player does
    await pc.setLocalDescription(await pc.createOffer())
    status, body, _ = await asyncio.get_running_loop().run_in_executor(
        None, post, url, pc.localDescription.sdp, None)
    if status != 201:
        raise SystemExit(f"{url}: HTTP {status} {body[:200]}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return pc, receivers, tasks, got


def percentile(sorted_values, q):
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def main():
    direct_url, relayed_url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    d = await play(direct_url)
    r = await play(relayed_url)
    await asyncio.sleep(seconds)
    for pc, _, tasks, _ in (d, r):
        for t in tasks:
            t.cancel()
        await pc.close()
    direct, relayed = {}, {}
    for rx in d[1]:
        direct.update(arrivals.get(rx, {}))
    for rx in r[1]:
        relayed.update(arrivals.get(rx, {}))
    both = [(relayed[k] - direct[k]) / 1e6 for k in direct.keys() & relayed.keys()]
    both.sort()
    out = {"matched": len(both), "direct_only": len(direct.keys() - relayed.keys()),
           "relayed_only": len(relayed.keys() - direct.keys()),
           "video_frames": [d[3]["video_frames"], r[3]["video_frames"]]}
    if both:
        out.update({"min_ms": round(both[0], 3), "p50_ms": round(percentile(both, 0.5), 3),
                    "p90_ms": round(percentile(both, 0.9), 3),
                    "p99_ms": round(percentile(both, 0.99), 3), "max_ms": round(both[-1], 3)})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
