#!/usr/bin/python3
"""WHIP publisher and WHEP player built on GStreamer's webrtcbin (Debian's python3-gst-1.0,
gstreamer1.0-nice and the GstWebRTC/GstSdp typelibs), an independent WebRTC stack for Estuary's
end-to-end tests. Non-trickle: the offer is posted once ICE gathering is complete, with every
candidate in it. webrtcbin bundles with max-bundle, so every m-section after the first is sent
with port 0 and a=bundle-only. Offline: no STUN server; libnice gathers the host addresses of
the network namespace (it skips loopback unless --local-ip 127.0.0.1 is given).

  gst_client.py publish URL SECONDS [--codec VP8|H264] [--audio-first] [--local-ip IP]
                [--strip-bundle-only]
        videotestsrc (640x480, 30 fps, a moving SMPTE pattern) and audiotestsrc (440 Hz sine),
        encoded with vp8enc or openh264enc and opusenc, published with WHIP for SECONDS; the video
        m-section comes first unless --audio-first
  gst_client.py play URL SECONDS [--local-ip IP]
        plays with WHEP (offers VP8, H.264 and Opus) for SECONDS and decodes what arrives

Progress goes to stderr; the last line on stdout is one JSON object: for publish the connection
and ICE states reached, the offer and answer m-lines and the RTP packets sent and received; for play
also what was decoded (video frames, size, detail and motion of the picture, audio samples and
their RMS level). Exit status 0 when the exchange worked (publish: connected and media sent;
play: video and audio decoded), 1 otherwise."""
import argparse
import json
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_SRC = ("videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! "
             "video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert ! queue ! ")
VIDEO_ENC = {
    "VP8": ("vp8enc deadline=1 cpu-used=8 target-bitrate=800000 keyframe-max-dist=60 ! "
            "rtpvp8pay pt=96 picture-id-mode=15-bit ! capsfilter caps="
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"),
    "H264": ("openh264enc complexity=low gop-size=60 bitrate=800000 ! h264parse ! "
             "rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency ! capsfilter caps="
             "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000"),
}
AUDIO_SRC = ("audiotestsrc is-live=true wave=sine freq=440 volume=0.4 ! audioconvert ! "
             "audioresample ! audio/x-raw,rate=48000,channels=2 ! queue ! opusenc ! "
             "rtpopuspay pt=111 ! capsfilter caps="
             "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000")
PLAY_CAPS = {
    # H.264 both as Constrained Baseline and as Baseline (Chromium's encoder says 42001f).
    "video": ("application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000;"
              "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
              "packetization-mode=(string)1,profile-level-id=(string)42e01f;"
              "application/x-rtp,media=video,encoding-name=H264,payload=103,clock-rate=90000,"
              "packetization-mode=(string)1,profile-level-id=(string)42001f"),
    "audio": ("application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
              "encoding-params=(string)2"),
}


def log(*a):
    print(f"gst_client {time.monotonic() - T0:6.2f}s:", *a, file=sys.stderr, flush=True)


T0 = time.monotonic()


def mlines(sdp):
    return [l for l in sdp.splitlines() if l.startswith("m=") or l.startswith("a=bundle-only")
            or l.startswith("a=group:")]


class Client:
    def __init__(self, mode, url, seconds, codec, audio_first, local_ips, strip_bundle_only=False):
        self.mode, self.url, self.seconds = mode, url, seconds
        self.strip_bundle_only = strip_bundle_only
        self.loop = GLib.MainLoop()
        self.result = {"mode": mode, "codec": codec if mode == "publish" else None,
                       "connection": "new", "ice": "new", "connected": False,
                       "offer": [], "answer": [], "http": None, "error": None}
        self.resource = None
        self.posted = False
        self.pipe = Gst.Pipeline.new("client")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipe.add(self.webrtc)
        # Kept referenced: PyGObject otherwise drops the agent (a GstObject webrtcbin never
        # sank) when the wrapper goes, and webrtcbin crashes on the next ICE call.
        self.agent = self.webrtc.get_property("ice-agent")
        for ip in local_ips:
            self.agent.emit("add-local-ip-address", ip)
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_state)
        self.webrtc.connect("notify::ice-connection-state", self.on_state)
        # Decoded-media measures (play).
        self.video = {"frames": 0, "width": 0, "height": 0, "first": None, "last": None}
        self.audio = {"samples": 0, "sumsq": 0.0}
        if mode == "publish":
            kinds = ["audio", "video"] if audio_first else ["video", "audio"]
            for kind in kinds:
                desc = (VIDEO_SRC + VIDEO_ENC[codec]) if kind == "video" else AUDIO_SRC
                branch = Gst.parse_bin_from_description(desc, True)
                self.pipe.add(branch)
                sink = self.webrtc.request_pad_simple("sink_%u")
                if branch.get_static_pad("src").link(sink) != Gst.PadLinkReturn.OK:
                    raise RuntimeError(f"cannot link the {kind} branch to webrtcbin")
                sink.get_property("transceiver").set_property(
                    "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        else:
            for kind in ("audio", "video"):
                self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                                 Gst.Caps.from_string(PLAY_CAPS[kind]))
            self.webrtc.connect("pad-added", self.on_incoming_pad)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    # --- signalling (WHIP/WHEP over HTTP) ---------------------------------------------------
    def on_negotiation_needed(self, _element):
        if self.posted:
            return
        log("negotiation needed: creating the offer")
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            return self.fail(f"create-offer gave no offer: {reply}")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())
        GLib.idle_add(self.on_gathering, self.webrtc, None)

    def on_gathering(self, element, _pspec):
        state = element.get_property("ice-gathering-state")
        if state != GstWebRTC.WebRTCICEGatheringState.COMPLETE or self.posted:
            return False
        local = element.get_property("local-description")
        if local is None:
            return False
        self.posted = True
        GLib.idle_add(self.post_offer, local.sdp.as_text())
        return False

    def post_offer(self, sdp):
        if self.strip_bundle_only:
            # Diagnosis only: what a server that mishandles bundle-only would need.
            sdp = "\r\n".join(l.replace(" 0 UDP/TLS/", " 9 UDP/TLS/") if l.startswith("m=") else l
                              for l in sdp.split("\r\n") if l != "a=bundle-only")
        self.result["offer"] = mlines(sdp)
        self.result["offer_candidates"] = [l for l in sdp.splitlines() if l.startswith("a=candidate")]
        log("posting the offer:", self.result["offer"], self.result["offer_candidates"])
        req = urllib.request.Request(self.url, data=sdp.encode(), method="POST",
                                     headers={"Content-Type": "application/sdp"})
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                self.result["http"] = res.status
                answer = res.read().decode()
                self.resource = urllib.parse.urljoin(self.url, res.headers.get("Location") or "")
        except urllib.error.HTTPError as e:
            self.result["http"] = e.code
            return self.fail(f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}")
        except OSError as e:
            return self.fail(f"POST failed: {e}")
        self.result["answer"] = mlines(answer)
        self.result["answer_sdp"] = answer
        log(f"answer {self.result['http']}, resource {self.resource}:", self.result["answer"])
        ok, msg = GstSdp.SDPMessage.new()
        if GstSdp.sdp_message_parse_buffer(answer.encode(), msg) != GstSdp.SDPResult.OK:
            return self.fail("cannot parse the answer")
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        promise = Gst.Promise.new_with_change_func(self.on_answer_set, None)
        self.webrtc.emit("set-remote-description", desc, promise)
        return False

    def on_answer_set(self, promise, _data):
        promise.wait()
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            GLib.idle_add(self.fail, f"set-remote-description: {reply.get_value('error')}")

    def delete(self):
        if not self.resource:
            return
        try:
            urllib.request.urlopen(urllib.request.Request(self.resource, method="DELETE"), timeout=5).close()
        except OSError as e:
            log("DELETE failed:", e)
        self.resource = None

    # --- state ------------------------------------------------------------------------------
    def on_state(self, element, _pspec):
        conn = element.get_property("connection-state").value_nick
        ice = element.get_property("ice-connection-state").value_nick
        if conn != self.result["connection"] or ice != self.result["ice"]:
            log(f"connection {conn}, ice {ice}")
        self.result["connection"], self.result["ice"] = conn, ice
        if conn == "connected":
            self.result["connected"] = True

    def on_error(self, _bus, msg):
        err, dbg = msg.parse_error()
        self.fail(f"{msg.src.get_name()}: {err.message} ({dbg})")

    def fail(self, why):
        log("error:", why)
        if not self.result["error"]:
            self.result["error"] = why
        self.loop.quit()
        return False

    # --- play: decode what arrives ------------------------------------------------------------
    def on_incoming_pad(self, _element, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        log("incoming", caps.to_string())
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self.on_decoded_pad)
        self.pipe.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def on_decoded_pad(self, _decodebin, pad):
        name = (pad.get_current_caps() or pad.query_caps(None)).get_structure(0).get_name()
        if name.startswith("video"):
            desc = ("queue ! videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=160,height=120 ! "
                    "appsink name=sink emit-signals=true sync=false max-buffers=2 drop=true")
            cb = self.on_video_sample
            pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self.on_video_caps)
        elif name.startswith("audio"):
            desc = ("queue ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=8000 ! "
                    "appsink name=sink emit-signals=true sync=false")
            cb = self.on_audio_sample
        else:
            return
        branch = Gst.parse_bin_from_description(desc, True)
        self.pipe.add(branch)
        branch.get_by_name("sink").connect("new-sample", cb)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))

    def on_video_caps(self, _pad, info):
        ev = info.get_event()
        if ev.type == Gst.EventType.CAPS:
            s = ev.parse_caps().get_structure(0)
            self.video["width"], self.video["height"] = s.get_value("width"), s.get_value("height")
        return Gst.PadProbeReturn.OK

    def on_video_sample(self, sink):
        buf = sink.emit("pull-sample").get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            data = bytes(info.data)
            buf.unmap(info)
            self.video["frames"] += 1
            if self.video["first"] is None:
                self.video["first"] = data
            self.video["last"] = data
        return Gst.FlowReturn.OK

    def on_audio_sample(self, sink):
        buf = sink.emit("pull-sample").get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            data = memoryview(bytes(info.data)).cast("h")
            buf.unmap(info)
            self.audio["samples"] += len(data)
            self.audio["sumsq"] += float(sum(s * s for s in data))
        return Gst.FlowReturn.OK

    # --- run ----------------------------------------------------------------------------------
    def stats(self):
        promise = Gst.Promise.new()
        self.webrtc.emit("get-stats", None, promise)
        if promise.wait() != Gst.PromiseResult.REPLIED or promise.get_reply() is None:
            return {}
        out = {"sent": 0, "received": 0}

        # Totals only: with one bundled transport, webrtcbin 1.22 labels every RTP stream with
        # the kind and codec of one sink pad.
        def each(_field, value, _data):
            if isinstance(value, Gst.Structure) and value.has_field("type"):
                t = value.get_value("type").value_nick
                if t == "outbound-rtp" and value.has_field("packets-sent"):
                    out["sent"] += value.get_value("packets-sent")
                elif t == "inbound-rtp" and value.has_field("packets-received"):
                    out["received"] += value.get_value("packets-received")
            return True

        promise.get_reply().foreach(each, None)
        return out

    def run(self):
        if self.pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.result["error"] = "the pipeline does not start"
            return self.result
        GLib.timeout_add(int(self.seconds * 1000), self.loop.quit)
        GLib.timeout_add(15000, self.check_connected)
        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self.loop.quit)
        self.loop.run()
        self.result["packets"] = self.stats()
        self.delete()
        self.pipe.set_state(Gst.State.NULL)
        if self.mode == "play":
            self.result.update(self.measure())
        return self.result

    def check_connected(self):
        if not self.result["connected"]:
            self.fail(f"not connected 15 s after start (connection {self.result['connection']}, ice {self.result['ice']})")
        return False

    def measure(self):
        v, a = self.video, self.audio
        m = {"video_frames": v["frames"], "width": v["width"], "height": v["height"],
             "spread": 0, "motion": 0.0, "audio_samples": a["samples"],
             "audio_rms": (a["sumsq"] / a["samples"]) ** 0.5 if a["samples"] else 0.0}
        if v["first"] and v["last"]:
            m["spread"] = max(v["last"]) - min(v["last"])
            m["motion"] = sum(abs(x - y) for x, y in zip(v["first"], v["last"])) / len(v["last"])
        return m


def main():
    ap = argparse.ArgumentParser(description="GStreamer webrtcbin WHIP publisher / WHEP player")
    ap.add_argument("mode", choices=["publish", "play"])
    ap.add_argument("url")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--codec", choices=sorted(VIDEO_ENC), default="VP8")
    ap.add_argument("--audio-first", action="store_true")
    ap.add_argument("--local-ip", action="append", default=[])
    ap.add_argument("--strip-bundle-only", action="store_true",
                    help="diagnosis: post the offer with port 9 and without a=bundle-only")
    args = ap.parse_args()
    Gst.init(None)
    client = Client(args.mode, args.url, args.seconds, args.codec, args.audio_first, args.local_ip,
                    args.strip_bundle_only)
    res = client.run()
    res.pop("answer_sdp", None) if res.get("connected") else None
    print(json.dumps(res), flush=True)
    if args.mode == "publish":
        ok = res["connected"] and not res["error"] and res["packets"].get("sent", 0) > 0
    else:
        ok = res["connected"] and res["video_frames"] > 0 and res["audio_samples"] > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
