#!/usr/bin/python3
"""WHIP publisher and WHEP player built on Debian's python3-aiortc, an independent WebRTC stack
for Estuary's end-to-end tests. Offline: aioice is told the only host address is 127.0.0.1 and
no STUN server is used.

  aiortc_client.py publish URL SECONDS [CODEC]
                                            synthetic moving picture (640x480, 30 fps) and a
                                            440 Hz tone, published with WHIP for SECONDS; CODEC
                                            (H264, VP8) puts that video codec first
  aiortc_client.py play URL SECONDS         plays with WHEP for SECONDS; prints one JSON line
                                            with what was decoded (frames, size, audio)
Exit status 0 when the exchange worked (for play: media was decoded), 1 otherwise."""
import asyncio
import signal
import fractions
import json
import math
import sys
import time
import urllib.error
import urllib.request

import aioice.ice
import av
import numpy
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender,
                    RTCSessionDescription)

# Debian's aioice never offers 127.0.0.1; inside the test's network namespace it is all there is.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = time.time()
        y, x = numpy.mgrid[0:480, 0:640]
        self.base = ((x // 40 + y // 40) % 2 * 180 + 30).astype(numpy.uint8)

    async def recv(self):
        self.n += 1
        await asyncio.sleep(max(0, self.start + self.n / 30 - time.time()))
        img = numpy.roll(self.base, self.n * 4, axis=1)
        rgb = numpy.stack([img, numpy.roll(img, 80, axis=0), 255 - img], axis=2)
        frame = av.VideoFrame.from_ndarray(numpy.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = time.time()

    async def recv(self):
        samples = 960  # 20 ms at 48 kHz
        await asyncio.sleep(max(0, self.start + self.n * samples / 48000 - time.time()))
        t = (numpy.arange(samples) + self.n * samples) / 48000
        pcm = (numpy.sin(2 * math.pi * 440 * t) * 8000).astype(numpy.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.n * samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.n += 1
        return frame


def post(url, sdp):
    req = urllib.request.Request(url, data=sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), None


def delete(url, location):
    if not location:
        return
    base = url.split("/", 3)
    req = urllib.request.Request(f"{base[0]}//{base[2]}{location}", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=5).read()
    except Exception:
        pass


async def run_for(seconds):
    """Sleeps `seconds`, or less when SIGTERM comes: the caller then leaves as it would at the
    end (DELETE, close), as a real client stopped by its user does."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def publish(url, seconds, codec=None):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    video = pc.addTransceiver(PatternTrack(), direction="sendonly")
    if codec:
        caps = RTCRtpSender.getCapabilities("video").codecs
        first = [c for c in caps if c.mimeType.lower() == "video/" + codec.lower()]
        video.setCodecPreferences(first + [c for c in caps if c not in first])
    await pc.setLocalDescription(await pc.createOffer())
    status, body, location = post(url, pc.localDescription.sdp)
    if status != 201:
        print(f"publish refused: {status} {body}", file=sys.stderr)
        return 1
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    for _ in range(100):
        if pc.connectionState == "connected":
            break
        await asyncio.sleep(0.1)
    print(f"publisher {pc.connectionState}", file=sys.stderr, flush=True)
    ok = pc.connectionState == "connected"
    await run_for(seconds)
    delete(url, location)
    await pc.close()
    return 0 if ok else 1


async def play(url, seconds):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    result = {"video_frames": 0, "width": 0, "height": 0, "spread": 0, "moved": False,
              "audio_frames": 0, "audio_samples": 0, "audio_peak": 0, "first_frame_ms": None}
    t0 = time.time()
    first_pixels = []

    async def consume(track):
        end = t0 + seconds + 10
        while time.time() < end:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, end - time.time()))
            except Exception:
                return
            if track.kind == "video":
                if result["first_frame_ms"] is None:
                    result["first_frame_ms"] = round((time.time() - t0) * 1000)
                result["video_frames"] += 1
                result["width"], result["height"] = frame.width, frame.height
                gray = frame.to_ndarray(format="gray")
                result["spread"] = int(gray.max()) - int(gray.min())
                if first_pixels:
                    result["moved"] = result["moved"] or bool(numpy.any(numpy.abs(gray.astype(int) - first_pixels[0]) > 16))
                else:
                    first_pixels.append(gray.astype(int))
            else:
                result["audio_frames"] += 1
                pcm = frame.to_ndarray()
                result["audio_samples"] += frame.samples
                result["audio_peak"] = max(result["audio_peak"], int(numpy.abs(pcm).max()))

    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    await pc.setLocalDescription(await pc.createOffer())
    status, body, location = post(url, pc.localDescription.sdp)
    if status != 201:
        print(json.dumps({"error": f"{status} {body}"}))
        return 1
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    await run_for(seconds)
    delete(url, location)
    await pc.close()
    for t in tasks:
        t.cancel()
    print(json.dumps(result), flush=True)
    return 0 if result["video_frames"] > 0 and result["audio_frames"] > 0 else 1


def main():
    mode, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "publish":
        sys.exit(asyncio.run(publish(url, seconds, sys.argv[4] if len(sys.argv) > 4 else None)))
    sys.exit(asyncio.run(play(url, seconds)))


if __name__ == "__main__":
    main()
