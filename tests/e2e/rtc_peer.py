#!/usr/bin/python3
"""WHIP publisher / WHEP player on Debian's python3-aiortc for the admission and hostile-client
tests: unlike aiortc_client.py it reports the session resource as soon as the server answers
(one JSON line per event on stdout), leaves the resource alone at the end unless --delete, and
can misbehave on purpose.

  rtc_peer.py offer publish|play            prints an SDP offer made by aiortc and exits
  rtc_peer.py publish URL SECONDS [options] WHIP: test pattern and tone for SECONDS
  rtc_peer.py play URL SECONDS [options]    WHEP: decodes for SECONDS
  rtc_peer.py answer - SECONDS              a player answering a server's offer (WebSocket
                                            signaling): reads {"type":"offer","sdp":...} as one
                                            line on stdin, prints {"event":"answer","sdp":...},
                                            then decodes for SECONDS
options:
  --token T        Authorization: Bearer T
  --host IP        the one host address aioice offers (default 127.0.0.1)
  --delete         DELETE the resource at the end (as a well-behaved client)
  --nack-storm N   (play) once video flows, N times a second send an RTCP Generic NACK
                   (RFC 4585 6.2.1) for each of the last --nack-span video sequence numbers
  --nack-span K    sequence numbers per NACK (default 2048)

Events: {"event": "answered", "status": 201, "location": ..., "ms": ...} or {"event": "refused",
"status": ..., "body": ...}; {"event": "connected"} (or "not-connected"); {"event": "storm",
...} once a second during a NACK storm; {"event": "done", ...} with what was received or sent.
SIGTERM ends the run early, as the end of SECONDS does. Exit status 0 when the exchange
worked (and, for play, video was decoded)."""
import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aioice.ice  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402

from aiortc_client import PatternTrack, ToneTrack  # noqa: E402


def emit(**kv):
    print(json.dumps(kv), flush=True)


def post(url, sdp, token):
    """POSTs the offer, following 307/308 redirects (a balancer) with the same method and body,
    at most 5. Returns (status, body, Location): Location as written, or made absolute against
    the URL that answered when the answer came after a redirect."""
    redirected = False
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for _ in range(6):
        req = urllib.request.Request(url, data=sdp.encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                loc = r.headers.get("Location")
                if loc and redirected:
                    loc = urllib.parse.urljoin(url, loc)
                return r.status, r.read().decode(), loc
        except urllib.error.HTTPError as e:
            loc = e.headers.get("Location")
            if e.code in (307, 308) and loc:
                url = urllib.parse.urljoin(url, loc)
                redirected = True
                continue
            return e.code, e.read().decode(), None
        except OSError as e:
            return 0, str(e), None
    return 0, "too many redirects", None


def delete(url, location, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(urllib.parse.urljoin(url, location), method="DELETE", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def nack_packet(sender_ssrc, media_ssrc, first, count):
    """RTCP Generic NACKs for the `count` sequence numbers from `first` (mod 2^16), newest first:
    one FCI (PID + a full 16-bit BLP) per 17 numbers, 7 FCIs per NACK packet (a receiver may
    read only the first ~128 numbers of one packet), all packets in one compound datagram."""
    fcis = [struct.pack("!HH", (first + i) & 0xFFFF, 0xFFFF) for i in range(0, count, 17)][::-1]
    out = b""
    for k in range(0, len(fcis), 7):
        payload = struct.pack("!LL", sender_ssrc, media_ssrc) + b"".join(fcis[k:k + 7])
        out += struct.pack("!BBH", (2 << 6) | 1, 205, len(payload) // 4) + payload
    return out


async def wait_stop(seconds):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


def count_frames(pc):
    """Counts the frames of every track pc receives: ({"video_frames", "audio_frames"}, tasks
    to cancel at the end)."""
    got = {"video_frames": 0, "audio_frames": 0}
    tasks = []

    async def consume(track):
        while True:
            try:
                await track.recv()
            except Exception:
                return
            got[track.kind + "_frames"] += 1

    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    return got, tasks


async def wait_connected(pc, seconds=10):
    end = time.time() + seconds
    while time.time() < end and pc.connectionState not in ("connected", "failed", "closed"):
        await asyncio.sleep(0.05)
    return pc.connectionState == "connected"


async def exchange(pc, args):
    await pc.setLocalDescription(await pc.createOffer())
    t0 = time.time()
    status, body, location = await asyncio.get_running_loop().run_in_executor(
        None, post, args.url, pc.localDescription.sdp, args.token)
    ms = round((time.time() - t0) * 1000)
    if status != 201:
        emit(event="refused", status=status, body=body, ms=ms)
        return None
    emit(event="answered", status=status, location=location, ms=ms)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    ok = await wait_connected(pc)
    emit(event="connected" if ok else "not-connected", state=pc.connectionState)
    return location


async def publish(args):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    location = await exchange(pc, args)
    if location is None:
        await pc.close()
        return 1
    await wait_stop(args.seconds)
    deleted = delete(args.url, location, args.token) if args.delete else None
    await pc.close()
    emit(event="done", deleted=deleted)
    return 0


async def play(args):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    video = pc.addTransceiver("video", direction="recvonly")
    got, tasks = count_frames(pc)
    location = await exchange(pc, args)
    if location is None:
        await pc.close()
        return 1
    storm = {"nacks_sent": 0, "seqs_nacked": 0}
    if args.nack_storm:
        tasks.append(asyncio.ensure_future(nack_storm(video.receiver, args, storm)))
    await wait_stop(args.seconds)
    for t in tasks:
        t.cancel()
    deleted = delete(args.url, location, args.token) if args.delete else None
    await pc.close()
    emit(event="done", deleted=deleted, **got, **storm)
    return 0 if got["video_frames"] > 0 else 1


async def nack_storm(receiver, args, storm):
    """NACKs the last --nack-span sequence numbers of the busiest video SSRC, --nack-storm times
    a second. aiortc keeps what it received per SSRC in private fields; read them."""
    streams = receiver._RTCRtpReceiver__remote_streams
    codecs = receiver._RTCRtpReceiver__codecs
    own = receiver._RTCRtpReceiver__rtcp_ssrc or 0x5EED
    period = 1.0 / args.nack_storm
    last_report = time.time()
    while True:
        await asyncio.sleep(period)
        media = [(s.packets_received, ssrc, s.max_seq) for ssrc, s in streams.items()
                 if s.max_seq is not None and s.packets_received]
        if not media or not codecs:
            continue
        _, ssrc, top = max(media)
        first = (top - args.nack_span + 1) & 0xFFFF
        try:
            await receiver.transport._send_rtp(nack_packet(own, ssrc, first, args.nack_span))
        except ConnectionError:
            return
        storm["nacks_sent"] += 1
        storm["seqs_nacked"] += args.nack_span
        if time.time() - last_report >= 1:
            last_report = time.time()
            emit(event="storm", media_ssrc=ssrc, top_seq=top, **storm)


async def answer(args):
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    offer = json.loads(line)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got, tasks = count_frames(pc)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    emit(event="answer", sdp=pc.localDescription.sdp)
    ok = await wait_connected(pc)
    emit(event="connected" if ok else "not-connected", state=pc.connectionState)
    await wait_stop(args.seconds)
    for t in tasks:
        t.cancel()
    await pc.close()
    emit(event="done", **got)
    return 0 if got["video_frames"] > 0 else 1


def make_offer(role):
    async def run():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if role == "publish":
            pc.addTransceiver(ToneTrack(), direction="sendonly")
            pc.addTransceiver(PatternTrack(), direction="sendonly")
        else:
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sys.stdout.write(pc.localDescription.sdp)
        await pc.close()
    asyncio.run(run())
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["offer", "publish", "play", "answer"])
    ap.add_argument("url")
    ap.add_argument("seconds", type=float, nargs="?", default=10)
    ap.add_argument("--token")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--delete", action="store_true")
    ap.add_argument("--nack-storm", type=float, default=0)
    ap.add_argument("--nack-span", type=int, default=2048)
    args = ap.parse_args()
    # Debian's aioice never offers loopback, and inside the tests' namespaces there is nothing
    # else (or the address of a veth pair): offer exactly the one address we are given.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.host]
    if args.mode == "offer":
        sys.exit(make_offer(args.url))
    run = {"publish": publish, "play": play, "answer": answer}[args.mode]
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
