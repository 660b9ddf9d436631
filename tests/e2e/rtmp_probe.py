#!/usr/bin/python3
"""A minimal RTMP client (standard library only) that shows what a server answers, for the
end-to-end tests: the handshake, `connect` to APP, then optionally createStream and `publish`
or `play` of NAME, and every AMF0 command the server sends back, decoded.

  rtmp_probe.py HOST PORT APP [publish|play NAME] [--seconds S]

Prints one JSON line: {"commands": [[name, txn, ...values], ...], "closed": bool} where an
onStatus/_error info object appears as a dict ({"level", "code", "description"})."""
import argparse
import json
import os
import socket
import struct
import sys
import time


def amf_write(v):
    if isinstance(v, bool):
        return b"\x01" + bytes([v])
    if isinstance(v, (int, float)):
        return b"\x00" + struct.pack("!d", float(v))
    if isinstance(v, str):
        b = v.encode()
        return b"\x02" + struct.pack("!H", len(b)) + b
    if v is None:
        return b"\x05"
    if isinstance(v, dict):
        out = b"\x03"
        for k, x in v.items():
            kb = k.encode()
            out += struct.pack("!H", len(kb)) + kb + amf_write(x)
        return out + b"\x00\x00\x09"
    raise TypeError(type(v))


def amf_read(b, i):
    t = b[i]
    i += 1
    if t == 0x00:
        return struct.unpack("!d", b[i:i + 8])[0], i + 8
    if t == 0x01:
        return bool(b[i]), i + 1
    if t == 0x02:
        n = struct.unpack("!H", b[i:i + 2])[0]
        return b[i + 2:i + 2 + n].decode(errors="replace"), i + 2 + n
    if t in (0x05, 0x06):
        return None, i
    if t in (0x03, 0x08):
        if t == 0x08:
            i += 4
        obj = {}
        while i + 3 <= len(b):
            n = struct.unpack("!H", b[i:i + 2])[0]
            if n == 0 and b[i + 2] == 0x09:
                return obj, i + 3
            k = b[i + 2:i + 2 + n].decode(errors="replace")
            obj[k], i = amf_read(b, i + 2 + n)
        return obj, i
    raise ValueError(f"AMF0 type {t}")


def amf_all(b):
    out, i = [], 0
    while i < len(b):
        try:
            v, i = amf_read(b, i)
        except (ValueError, IndexError, struct.error):
            break
        out.append(v)
    return out


def chunk(csid, msg_type, msid, payload, size=128):
    out = bytes([csid]) + b"\x00\x00\x00" + len(payload).to_bytes(3, "big") + bytes([msg_type]) + struct.pack("<I", msid)
    for k in range(0, len(payload), size):
        if k:
            out += bytes([0xC0 | csid])
        out += payload[k:k + size]
    return out


class Reader:
    """De-chunks the server's messages (RTMP 5.3), following Set Chunk Size."""

    def __init__(self):
        self.buf = b""
        self.size = 128
        self.streams = {}

    def feed(self, data):
        self.buf += data
        msgs = []
        while True:
            b = self.buf
            if not b:
                break
            fmt, csid, i = b[0] >> 6, b[0] & 0x3F, 1
            if csid == 0:
                if len(b) < 2:
                    break
                csid, i = 64 + b[1], 2
            elif csid == 1:
                if len(b) < 3:
                    break
                csid, i = 64 + b[1] + 256 * b[2], 3
            st = self.streams.setdefault(csid, {"len": 0, "type": 0, "msid": 0, "data": b""})
            hl = (11, 7, 3, 0)[fmt]
            if len(b) < i + hl:
                break
            h = b[i:i + hl]
            ts = int.from_bytes(h[0:3], "big") if fmt < 3 else 0
            if fmt <= 1:
                st["len"] = int.from_bytes(h[3:6], "big")
                st["type"] = h[6]
            if fmt == 0:
                st["msid"] = struct.unpack("<I", h[7:11])[0]
            i += hl
            if fmt < 3 and ts == 0xFFFFFF:
                i += 4
            take = min(self.size, st["len"] - len(st["data"]))
            if len(b) < i + take:
                break
            st["data"] += b[i:i + take]
            self.buf = b[i + take:]
            if len(st["data"]) >= st["len"]:
                msgs.append((st["type"], st["msid"], st["data"]))
                if st["type"] == 1 and len(st["data"]) >= 4:
                    self.size = struct.unpack("!I", st["data"][:4])[0] & 0x7FFFFFFF
                st["data"] = b""
        return msgs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("app")
    ap.add_argument("action", nargs="?", choices=["publish", "play"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    s = socket.create_connection((a.host, a.port), timeout=5)
    s.sendall(b"\x03" + struct.pack("!II", 0, 0) + os.urandom(1528))
    got = b""
    while len(got) < 3073:
        d = s.recv(65536)
        if not d:
            print(json.dumps({"commands": [], "closed": True, "error": "closed during the handshake"}))
            return 1
        got += d
    s.sendall(got[1:1537])
    rd = Reader()
    rd.feed(got[3073:])
    tc = f"rtmp://{a.host}:{a.port}/{a.app}"
    s.sendall(chunk(3, 20, 0, b"".join(amf_write(x) for x in
              ["connect", 1, {"app": a.app, "type": "nonprivate", "flashVer": "FMLE/3.0", "tcUrl": tc}])))
    commands, closed, sent_stream, sent_action = [], False, False, False
    s.settimeout(0.1)
    end = time.time() + a.seconds
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        if not d:
            closed = True
            break
        for t, msid, payload in rd.feed(d):
            if t != 20:
                continue
            vals = amf_all(payload)
            commands.append(vals)
            name = vals[0] if vals else None
            if a.action and name == "_result" and not sent_stream:
                sent_stream = True
                s.sendall(chunk(3, 20, 0, b"".join(amf_write(x) for x in ["createStream", 2, None])))
            elif a.action and name == "_result" and sent_stream and not sent_action and len(vals) > 3:
                sent_action = True
                sid = int(vals[3])
                args = [a.action, 3, None, a.name] + (["live"] if a.action == "publish" else [])
                s.sendall(chunk(8, 20, sid, b"".join(amf_write(x) for x in args)))
    s.close()
    print(json.dumps({"commands": commands, "closed": closed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
