#!/usr/bin/python3
"""Hostile clients for tests/e2e/test_hostile.sh, standard library only. Each mode is bounded
in count and time and prints one JSON line with what it saw.

  hostile_client.py idle HOST PORT N --handshake K --half L --seconds S
      N TCP connections to an RTMP port at once: the first K complete the RTMP handshake (C0C1,
      S0S1S2, C2) and then send nothing, the next L send C0C1 only, the rest send nothing at
      all. Reports when each connection connected and when the server closed it:
      {"connected", "never_connected", "closed_fast" (closed within --fast s of connecting),
       "closed_later", "open_at_end", "served" (got S0S1S2), "later_close_s": [...], ...}
  hostile_client.py bigmsg HOST PORT [--length BYTES]
      completes the handshake, then sends a chunk header announcing a message of BYTES
      (default 1048576) before any connect, and its payload in 128-byte chunks for as long as
      the connection stays open (at most BYTES): {"closed", "close_s" (after the header),
      "sent"}
  hostile_client.py garbage-tcp HOST PORT [--connections C] [--bytes B] [--wait S]
      C connections that each send B random bytes and wait up to S s for the server to close:
      {"closed", "answered" (bytes got back), "first_line"}
  hostile_client.py garbage-udp HOST PORT [--count N] [--seconds S]
      N random datagrams (1-1400 bytes; first bytes cycling through random, STUN, DTLS and
      RTP/RTCP ranges) spread over S seconds: {"sent"}
  hostile_client.py offers URL N --sdp FILE [--seconds S]
      N WHIP/WHEP POSTs of the offer in FILE, one after another spread over S seconds, each to
      URL + a number:
      {"statuses": {"429": n, ...}, "errors": {"text": n}, "seconds"}
"""
import argparse
import http.client
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
import urllib.parse

HS = 1536


def c0c1():
    return b"\x03" + struct.pack("!II", int(time.time()) & 0xFFFFFFFF, 0) + os.urandom(HS - 8)


def idle(a):
    sel = selectors.DefaultSelector()
    conns = []
    t0 = time.time()
    for i in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((a.host, a.port))
        kind = "handshake" if i < a.handshake else "half" if i < a.handshake + a.half else "silent"
        c = {"s": s, "kind": kind, "connected": None, "closed": None, "got": b"", "c2": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    end = t0 + a.seconds
    while time.time() < end and any(c["closed"] is None for c in conns):
        for key, ev in sel.select(timeout=0.05):
            c = key.data
            s = c["s"]
            now = time.time()
            if c["connected"] is None:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    # refused or reset before we got in: count as closed at once
                    c["connected"] = c["closed"] = now
                    c["error"] = os.strerror(err)
                    sel.unregister(s)
                    continue
                c["connected"] = now
                if c["kind"] != "silent":
                    try:
                        s.send(c0c1())
                    except OSError:
                        pass
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                d = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                d = b""
                c["error"] = str(e)
            if not d:
                c["closed"] = now
                sel.unregister(s)
                continue
            c["got"] += d[:4096] if len(c["got"]) < 8192 else b""
            c["bytes"] = c.get("bytes", 0) + len(d)
            if c["kind"] == "handshake" and not c["c2"] and c["bytes"] >= 1 + 2 * HS:
                c["c2"] = True
                try:
                    s.send(c["got"][1:1 + HS])  # C2 = S1
                except OSError:
                    pass
    res = {"n": a.n, "connected": 0, "never_connected": 0, "closed_fast": 0, "closed_later": 0,
           "open_at_end": 0, "served": 0, "later_close_s": [], "later_kinds": {}, "seconds": 0}
    for c in conns:
        if c["connected"] is None:
            res["never_connected"] += 1
        else:
            res["connected"] += 1
        if c.get("bytes", 0) >= 1 + 2 * HS:
            res["served"] += 1
        if c["closed"] is None:
            res["open_at_end"] += 1
        elif c["connected"] is not None and c["closed"] - c["connected"] <= a.fast:
            res["closed_fast"] += 1
        else:
            res["closed_later"] += 1
            res["later_close_s"].append(round(c["closed"] - c["connected"], 2))
            res["later_kinds"][c["kind"]] = res["later_kinds"].get(c["kind"], 0) + 1
        c["s"].close()
    res["later_close_s"].sort()
    res["seconds"] = round(time.time() - t0, 2)
    return res


def handshake(s):
    s.sendall(c0c1())
    got = b""
    while len(got) < 1 + 2 * HS:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed during the handshake")
        got += d
    s.sendall(got[1:1 + HS])


def bigmsg(a):
    s = socket.create_connection((a.host, a.port), timeout=5)
    handshake(s)
    time.sleep(0.1)
    # Chunk stream 3, type 0 header: timestamp 0, length, type 20 (AMF0 command), stream 0.
    head = b"\x03" + b"\x00\x00\x00" + a.length.to_bytes(3, "big") + b"\x14" + b"\x00\x00\x00\x00"
    s.settimeout(0.02)
    t0 = time.time()
    sent = 0
    closed = None
    try:
        s.sendall(head)
        payload = os.urandom(128)
        while sent < a.length and time.time() - t0 < a.seconds:
            chunk = (b"" if sent == 0 else b"\xc3") + payload
            try:
                s.sendall(chunk)
                sent += 128
            except socket.timeout:
                pass
            try:
                if s.recv(65536) == b"":
                    closed = time.time()
                    break
            except socket.timeout:
                pass
    except OSError:
        closed = time.time()
    if closed is None:
        s.settimeout(max(0.1, a.seconds - (time.time() - t0)))
        try:
            while True:
                if s.recv(65536) == b"":
                    closed = time.time()
                    break
        except socket.timeout:
            pass
        except OSError:
            closed = time.time()
    s.close()
    return {"closed": closed is not None, "close_s": round(closed - t0, 3) if closed else None,
            "sent": sent, "length": a.length}


def garbage_tcp(a):
    res = {"connections": a.connections, "closed": 0, "answered": 0, "first_line": ""}
    for _ in range(a.connections):
        try:
            s = socket.create_connection((a.host, a.port), timeout=3)
        except OSError:
            res["closed"] += 1
            continue
        got = b""
        closed = False
        try:
            s.settimeout(0.5)
            data = os.urandom(a.bytes)
            for i in range(0, len(data), 4096):
                s.sendall(data[i:i + 4096])
            end = time.time() + a.wait
            s.settimeout(0.2)
            while time.time() < end:
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    closed = True
                    break
                got += d
        except OSError:
            closed = True
        s.close()
        res["closed"] += closed
        res["answered"] += bool(got)
        if got and not res["first_line"]:
            res["first_line"] = got.split(b"\r\n", 1)[0].decode(errors="replace")[:100]
    return res


def garbage_udp(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    firsts = [None, 0x00, 0x01, 0x14, 0x16, 0x17, 0x80, 0x90, 0xC8]
    t0 = time.time()
    for i in range(a.count):
        d = bytearray(os.urandom(random.randint(1, 1400)))
        f = firsts[i % len(firsts)]
        if f is not None:
            d[0] = f
        if f == 0x00 and len(d) >= 20:  # STUN binding request with a magic cookie
            d[1] = 0x01
            d[4:8] = b"\x21\x12\xa4\x42"
        try:
            s.sendto(bytes(d), (a.host, a.port))
        except OSError:
            pass
        lag = t0 + (i + 1) * a.seconds / a.count - time.time()
        if lag > 0:
            time.sleep(lag)
    return {"sent": a.count, "seconds": round(time.time() - t0, 2)}


def offers(a):
    sdp = open(a.sdp).read().encode()
    u = urllib.parse.urlsplit(a.url)
    statuses, errors = {}, {}
    t0 = time.time()
    for i in range(a.n):
        lag = t0 + i * a.seconds / a.n - time.time()
        if lag > 0:
            time.sleep(lag)
        st, text = 0, ""
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            c.request("POST", f"{u.path}{i}", body=sdp, headers={"Content-Type": "application/sdp"})
            r = c.getresponse()
            st = r.status
            body = r.read().decode(errors="replace")
            if st != 201:
                try:
                    text = json.loads(body).get("error", body)
                except ValueError:
                    text = body[:100]
            c.close()
        except OSError as e:
            text = str(e)
        statuses[str(st)] = statuses.get(str(st), 0) + 1
        if text:
            errors[text] = errors.get(text, 0) + 1
    return {"n": a.n, "statuses": statuses, "errors": errors, "seconds": round(time.time() - t0, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("idle")
    p.add_argument("host"); p.add_argument("port", type=int); p.add_argument("n", type=int)
    p.add_argument("--handshake", type=int, default=0); p.add_argument("--half", type=int, default=0)
    p.add_argument("--seconds", type=float, default=8); p.add_argument("--fast", type=float, default=1.0)
    p = sub.add_parser("bigmsg")
    p.add_argument("host"); p.add_argument("port", type=int)
    p.add_argument("--length", type=int, default=1 << 20); p.add_argument("--seconds", type=float, default=5)
    p = sub.add_parser("garbage-tcp")
    p.add_argument("host"); p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, default=5); p.add_argument("--bytes", type=int, default=65536)
    p.add_argument("--wait", type=float, default=3)
    p = sub.add_parser("garbage-udp")
    p.add_argument("host"); p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=3000); p.add_argument("--seconds", type=float, default=1.5)
    p = sub.add_parser("offers")
    p.add_argument("url"); p.add_argument("n", type=int); p.add_argument("--sdp", required=True)
    p.add_argument("--seconds", type=float, default=0)
    a = ap.parse_args()
    fn = {"idle": idle, "bigmsg": bigmsg, "garbage-tcp": garbage_tcp, "garbage-udp": garbage_udp,
          "offers": offers}[a.mode]
    print(json.dumps(fn(a)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
