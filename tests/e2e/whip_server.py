#!/usr/bin/python3
"""A small WHIP + WHEP server built on Debian's python3-aiortc, for Estuary's end-to-end tests
of its relay client (apps.<app>.relays / origin pulls): Estuary's relay is an ICE controlling
full agent and the DTLS-SRTP offerer, and aiortc answers as a *full* ICE agent (aiortc has no
ICE-lite), so the answerer here is ICE controlled and runs its own connectivity checks. That
proves the relay works against a peer that is not an ICE-lite server like Estuary itself.
Python's standard library and aiortc only (aiohttp is not installed: HTTP/1.1 is parsed here).

  whip_server.py --port PORT [--host 127.0.0.1] [--token TOKEN] [--ice-host IP]
                 [--lifetime S]

  POST /whip/{app}/{stream}    Content-Type application/sdp, the offer (sendonly audio and/or
                               video, BUNDLE, rtcp-mux, a=setup:actpass). It must carry its
                               candidates: aiortc does no trickle, and its ICE fails at once
                               when the offer has none. 201, Location /whip/{app}/{stream}/{id},
                               the answer (a=setup:active, one host candidate per section,
                               a=end-of-candidates; sent once ICE gathering completed). The
                               received tracks are kept for WHEP players of the same app/stream
                               (aiortc's MediaRelay), and their decoded frames are counted. A
                               second publisher of a stream replaces the first. aiortc decodes
                               opus, PCMU, PCMA, VP8, and H.264 with packetization-mode=1 in
                               the (constrained) baseline profile only (42e01f, 42001f; the
                               level is not compared, High or Main finds no common codec).
  POST /whep/{app}/{stream}    a recvonly offer: 201, Location /whep/{app}/{stream}/{id}, an
                               answer sending the stream's tracks (decoded and encoded again by
                               aiortc); 404 with a reason when the stream is not published.
  DELETE {Location}            closes that peer connection: 200, or 404 when unknown. When a
                               publisher goes (DELETE; ICE or DTLS failure; the peer's DTLS
                               close_notify; its ICE consent expiring, ~30 s of silence) its
                               stream is forgotten and its players are closed.
  GET /stats                   JSON: {"streams": {"app/stream": {"video_frames", "audio_frames",
                               "width", "height", "publishers" (1 or 0), "publishes" (total),
                               "players"}}, "posts", "deletes" (every POST and DELETE received),
                               "ice_role" (the ICE role aiortc took in the last connection:
                               "controlled" against a full-ICE offerer), "sessions": [{"id",
                               "kind" (whip/whep), "stream", "state" ("closed: WHY" once
                               ended), "ice_role", "remote_ice_lite", "pair" (the nominated
                               local -> remote address)}] (live ones and the last 50 ended)}
                               The counters of a stream stay after its publisher is gone.

With --token every POST and DELETE needs "Authorization: Bearer TOKEN" (else 401). Bodies over
64 KiB are refused (413). --ice-host is the one host address aioice offers (default: --host, or
127.0.0.1 when --host is a wildcard); no STUN server is used. The server stops by itself after
--lifetime seconds (default 600; 0: never), so a test that dies cannot leave it behind; SIGTERM
and SIGINT stop it too. One line on stderr per request and per connection state change."""
import argparse
import asyncio
import json
import signal
import sys
import time
import urllib.parse
import uuid

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

MAX_BODY = 64 * 1024      # bytes of a request body
MAX_HEAD = 16 * 1024      # bytes of a request line and headers
IDLE_S = 30               # a keep-alive connection with no new request is closed
BODY_S = 10               # time allowed to send a body
REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def log(msg):
    print(f"whip_server {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def ice_of(pc):
    """The RTCIceTransport of a connection (one with BUNDLE), or None before negotiation."""
    for t in pc.getTransceivers():
        dtls = t.sender.transport
        if dtls is not None:
            return dtls.transport
    return None


def nominated_pair(ice):
    """'local -> remote' of the nominated candidate pair (aioice internals; None if unknown)."""
    try:
        pair = ice._connection._nominated.get(1)
        return (f"{pair.local_candidate.host}:{pair.local_candidate.port} -> "
                f"{pair.remote_candidate.host}:{pair.remote_candidate.port}")
    except Exception:
        return None


def drop_conflicting_extmaps(sdp):
    """aiortc 1.4 parses every packet of a BUNDLE transport with one map of header extension
    ids, so an id naming two URIs in two sections (aiortc's own offers: id 2 is ssrc-audio-level
    in audio, abs-send-time in video) breaks reception: a 1-byte audio level read as a 3-byte
    abs-send-time raises, and the transport stops receiving. RFC 8843 9.2 forbids such offers;
    for robustness a later section's a=extmap whose id an earlier one gave another URI is
    removed before aiortc sees the offer, so the answer does not accept it."""
    uri_of = {}
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=extmap:"):
            fields = line[len("a=extmap:"):].split()
            if len(fields) >= 2:
                ext_id = fields[0].split("/")[0]
                if uri_of.setdefault(ext_id, fields[1]) != fields[1]:
                    continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


class Stream:
    """What the server knows of one app/stream; the counters outlive the publisher."""

    def __init__(self, key):
        self.key = key
        self.publisher = None     # the WHIP Session, None when not published
        self.tracks = {}          # kind -> aiortc RemoteStreamTrack of the publisher
        self.counters = []        # tasks counting decoded frames
        self.video_frames = 0
        self.audio_frames = 0
        self.width = 0
        self.height = 0
        self.publishes = 0

    def stats(self, players):
        return {"video_frames": self.video_frames, "audio_frames": self.audio_frames,
                "width": self.width, "height": self.height,
                "publishers": 1 if self.publisher else 0, "publishes": self.publishes,
                "players": players}


class Session:
    """One WHIP or WHEP peer connection, known by its Location."""

    def __init__(self, kind, app, stream, pc, remote_ice_lite):
        self.id = uuid.uuid4().hex[:16]
        self.kind = kind          # "whip" or "whep"
        self.key = f"{app}/{stream}"
        self.location = "/".join(["", kind, urllib.parse.quote(app, safe=""),
                                  urllib.parse.quote(stream, safe=""), self.id])
        self.pc = pc
        self.remote_ice_lite = remote_ice_lite
        self.state = "new"
        self.ice_role = None
        self.pair = None
        self.ended = False

    def info(self):
        return {"id": self.id, "kind": self.kind, "stream": self.key, "state": self.state,
                "ice_role": self.ice_role, "remote_ice_lite": self.remote_ice_lite,
                "pair": self.pair}


class Server:
    def __init__(self, token):
        self.token = token
        self.relay = MediaRelay()
        self.streams = {}         # "app/stream" -> Stream
        self.sessions = {}        # Location -> live Session
        self.history = []         # ended sessions' info, the last 50
        self.posts = 0
        self.deletes = 0
        self.ice_role = None

    # --- peer connections ---

    def new_pc(self, kind, app, stream, offer):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sess = Session(kind, app, stream, pc, "a=ice-lite" in offer)

        @pc.on("connectionstatechange")
        async def on_state():
            sess.state = pc.connectionState
            ice = ice_of(pc)
            if ice is not None and pc.connectionState == "connected":
                sess.ice_role = self.ice_role = ice.role   # a role conflict may have changed it
                sess.pair = nominated_pair(ice)
            log(f"{sess.kind} {sess.key} {sess.id}: {pc.connectionState}"
                f" (ice {sess.ice_role}, {sess.pair})")
            if pc.connectionState in ("failed", "closed"):
                await self.end(sess, pc.connectionState)

        return pc, sess

    async def finish_answer(self, sess):
        """Answers the offer already applied and records the ICE role (aiortc decides it when
        the offer is applied: controlled unless the offer says a=ice-lite); returns the answer
        SDP, with candidates since aiortc's setLocalDescription waits for ICE gathering."""
        pc = sess.pc
        await pc.setLocalDescription(await pc.createAnswer())
        ice = ice_of(pc)
        if ice is not None:
            sess.ice_role = self.ice_role = ice.role
        # aiortc 1.4 keeps connectionState "connected" when the peer ends DTLS (close_notify)
        # or its ICE consent expires (~30 s of silence): watch the DTLS transport itself.
        for dtls in {t.sender.transport for t in pc.getTransceivers()}:
            self.watch_dtls(sess, dtls)
        return pc.localDescription.sdp

    def watch_dtls(self, sess, dtls):
        @dtls.on("statechange")
        async def on_dtls():
            if dtls.state in ("closed", "failed") and not sess.ended:
                log(f"{sess.kind} {sess.key} {sess.id}: DTLS {dtls.state} by the peer")
                await self.end(sess, f"DTLS {dtls.state}")

    async def end(self, sess, why):
        """Closes a session once; a publisher's end forgets its stream and closes its players."""
        if sess.ended:
            return
        sess.ended = True
        self.sessions.pop(sess.location, None)
        for sender in sess.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()               # unsubscribes from the relay
        st = self.streams.get(sess.key)
        if sess.kind == "whip" and st is not None and st.publisher is sess:
            st.publisher = None
            st.tracks = {}
            for task in st.counters:
                task.cancel()
            st.counters = []
            log(f"stream {sess.key} forgotten ({why})")
            for other in list(self.sessions.values()):
                if other.kind == "whep" and other.key == sess.key:
                    await self.end(other, "the publisher left")
        await sess.pc.close()
        sess.state = f"closed: {why}"
        self.history = (self.history + [sess.info()])[-50:]

    async def discard(self, sess):
        """Closes a connection that was never answered with 201 (no history, no stream)."""
        sess.ended = True
        for sender in sess.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await sess.pc.close()

    async def count(self, st, kind, track):
        """Consumes a relay subscription of a published track, counting its decoded frames (it
        also keeps aiortc's unbounded queue of received frames drained)."""
        try:
            while True:
                frame = await track.recv()
                if kind == "video":
                    st.video_frames += 1
                    st.width, st.height = frame.width, frame.height
                else:
                    st.audio_frames += 1
        except MediaStreamError:
            pass
        finally:
            track.stop()

    async def publish(self, app, stream, offer):
        pc, sess = self.new_pc("whip", app, stream, offer)
        tracks = {}
        pc.on("track", lambda track: tracks.setdefault(track.kind, track))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if not tracks:
                raise ValueError("the offer sends no audio or video")
            sdp = await self.finish_answer(sess)
        except Exception as e:
            await self.discard(sess)
            return 400, {}, f"cannot answer the offer: {e}\n"
        self.sessions[sess.location] = sess
        st = self.streams.setdefault(sess.key, Stream(sess.key))
        if st.publisher is not None:
            log(f"stream {sess.key}: a new publisher replaces {st.publisher.id}")
            await self.end(st.publisher, "replaced")
        st.publisher = sess
        st.tracks = tracks
        st.publishes += 1
        st.counters = [asyncio.ensure_future(self.count(st, kind, self.relay.subscribe(track)))
                       for kind, track in tracks.items()]
        return 201, {"Location": sess.location, "Content-Type": "application/sdp"}, sdp

    async def play(self, app, stream, offer):
        key = f"{app}/{stream}"
        st = self.streams.get(key)
        publisher = st.publisher if st else None
        if publisher is None:
            return 404, {}, f"stream {key} is not published\n"
        pc, sess = self.new_pc("whep", app, stream, offer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            added = 0
            for t in pc.getTransceivers():
                source = st.tracks.get(t.kind)
                if source is not None and t.sender.track is None:
                    # not buffered: a slow encoder skips frames instead of queueing them
                    pc.addTrack(self.relay.subscribe(source, buffered=False))
                    added += 1
            if not added:
                await self.discard(sess)
                return 404, {}, f"stream {key} has no track the offer can receive\n"
            sdp = await self.finish_answer(sess)
        except Exception as e:
            await self.discard(sess)
            return 400, {}, f"cannot answer the offer: {e}\n"
        if st.publisher is not publisher:         # the publisher left while this was answered
            await self.discard(sess)
            return 404, {}, f"stream {key} is not published any more\n"
        self.sessions[sess.location] = sess
        return 201, {"Location": sess.location, "Content-Type": "application/sdp"}, sdp

    def stats(self):
        players = {}
        for s in self.sessions.values():
            if s.kind == "whep":
                players[s.key] = players.get(s.key, 0) + 1
        return {"streams": {k: st.stats(players.get(k, 0)) for k, st in self.streams.items()},
                "posts": self.posts, "deletes": self.deletes, "ice_role": self.ice_role,
                "sessions": self.history + [s.info() for s in self.sessions.values()]}

    async def close_all(self):
        for sess in list(self.sessions.values()):
            await self.end(sess, "server stopping")

    # --- HTTP ---

    async def route(self, method, path, headers, body):
        """Returns (status, headers, body text)."""
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and path == "/stats":
            return 200, {"Content-Type": "application/json"}, json.dumps(self.stats()) + "\n"
        if method == "OPTIONS":
            return 204, {"Allow": "GET, POST, DELETE, OPTIONS",
                         "Accept-Post": "application/sdp"}, ""
        if method not in ("POST", "DELETE"):
            return 405, {"Allow": "GET, POST, DELETE, OPTIONS"}, f"{method} is not supported\n"
        if method == "POST":
            self.posts += 1
        else:
            self.deletes += 1
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"WWW-Authenticate": "Bearer"}, "a valid bearer token is needed\n"
        if method == "DELETE":
            sess = self.sessions.get(path)
            if sess is None:
                return 404, {}, "no such resource\n"
            await self.end(sess, "DELETE")
            return 200, {}, ""
        if len(parts) != 3 or parts[0] not in ("whip", "whep") or not all(parts):
            return 404, {}, "POST to /whip/{app}/{stream} or /whep/{app}/{stream}\n"
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return 415, {}, "the offer must be application/sdp\n"
        try:
            offer = drop_conflicting_extmaps(body.decode())
        except UnicodeDecodeError:
            return 400, {}, "the offer is not UTF-8\n"
        if parts[0] == "whip":
            return await self.publish(parts[1], parts[2], offer)
        return await self.play(parts[1], parts[2], offer)

    async def client(self, reader, writer):
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_S)
                except asyncio.LimitOverrunError:
                    await respond(writer, 431, {}, "headers too large\n", False)
                    return
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ")
                except ValueError:
                    await respond(writer, 400, {}, "bad request line\n", False)
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                path = target.split("?", 1)[0]
                if "transfer-encoding" in headers:
                    await respond(writer, 411, {}, "send the body with Content-Length\n", False)
                    return
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY:
                    log(f"{peer[0]}:{peer[1]} {method} {path} -> 413")
                    await respond(writer, 413 if length > 0 else 400, {},
                                  f"bodies are limited to {MAX_BODY} bytes\n", False)
                    return
                if length and headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body = await asyncio.wait_for(reader.readexactly(length), BODY_S)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                t0 = time.monotonic()
                try:
                    status, rh, text = await self.route(method, path, headers, body)
                except Exception as e:
                    status, rh, text = 500, {}, f"internal error: {e!r}\n"
                log(f"{peer[0]}:{peer[1]} {method} {path} -> {status}"
                    f" ({(time.monotonic() - t0) * 1000:.0f} ms)"
                    + (f" {rh['Location']}" if "Location" in rh else ""))
                await respond(writer, status, rh, text, keep)
                if not keep:
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


async def respond(writer, status, headers, text, keep):
    data = text.encode()
    headers = {"Content-Type": "text/plain; charset=utf-8", **headers,
               "Content-Length": str(len(data)),
               "Connection": "keep-alive" if keep else "close"}
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1") + data)
    await writer.drain()


async def main():
    ap = argparse.ArgumentParser(description="WHIP/WHEP server on aiortc for Estuary's tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", default=None)
    ap.add_argument("--ice-host", default=None)
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    ice_host = args.ice_host or (args.host if args.host not in ("0.0.0.0", "::", "")
                                 else "127.0.0.1")
    # Debian's aioice never offers 127.0.0.1; inside the tests' network namespace it is all
    # there is. Offer exactly one host address.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [ice_host]

    server = Server(args.token)
    http = await asyncio.start_server(server.client, args.host, args.port, limit=MAX_HEAD)
    log(f"listening on http://{args.host}:{args.port} (ICE host {ice_host}"
        f"{', token required' if args.token else ''})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.lifetime or None)
    except asyncio.TimeoutError:
        log(f"--lifetime {args.lifetime} s is over")
    http.close()
    try:
        await asyncio.wait_for(server.close_all(), timeout=5)
    except asyncio.TimeoutError:
        pass
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
