#!/usr/bin/python3
"""A small HTTP server for Estuary's admission hooks (apps.<app>.on_publish, on_play,
on_unpublish, on_stop) in the end-to-end tests. Python's standard library only.

  hook_server.py --port PORT --log FILE [--rules FILE] [--rule RULE]... [--hang-s S]
                 [--lifetime S] [--host IP]

Every POST is answered by the first rule that matches the body's (action, protocol, stream);
without a match the answer is "allow". A rule is an object
  {"action": "on_play", "protocol": "whep", "stream": "cam", "answer": "refuse",
   "reason": "no such camera", "status": 403}
where a missing key, or "*", matches anything; "answer" is
  allow   200 {}
  refuse  `status` (403 by default) {"reason": REASON}
  hang    nothing for --hang-s seconds (longer than the server's hooks.timeout_ms), then 200 {}
--rules names a JSON file holding a list of rules; it is read again whenever it changes, so a
test can change the answers while the server runs. --rule adds one on the command line:
ACTION:PROTOCOL:STREAM=allow | refuse[:REASON] | hang (rules from the command line come
first).

Each request is appended to the log file as one line of JSON: the body as received (or
{"_raw": TEXT} when it is not JSON) plus "_path" (the request path), "_received" (Unix time, s)
and "_answer" (allow, refuse or hang). The server stops by itself after --lifetime seconds
(default 300), so a test that dies cannot leave it behind."""
import argparse
import http.server
import json
import os
import socketserver
import sys
import threading
import time


class Rules:
    def __init__(self, path, extra):
        self.path = path
        self.extra = extra
        self.mtime = None
        self.file_rules = []
        self.lock = threading.Lock()

    def current(self):
        with self.lock:
            if self.path:
                try:
                    m = os.stat(self.path).st_mtime_ns
                    if m != self.mtime:
                        with open(self.path) as f:
                            self.file_rules = json.load(f)
                        self.mtime = m
                except (OSError, ValueError) as e:
                    print(f"hook_server: rules file {self.path}: {e}", file=sys.stderr)
            return self.extra + list(self.file_rules)

    def match(self, body):
        for r in self.current():
            if all(r.get(k, "*") in ("*", body.get(k)) for k in ("action", "protocol", "stream")):
                return r
        return {"answer": "allow"}


def parse_rule(text):
    key, _, answer = text.partition("=")
    action, protocol, stream = (key.split(":") + ["*", "*", "*"])[:3]
    kind, _, reason = answer.partition(":")
    rule = {"action": action or "*", "protocol": protocol or "*", "stream": stream or "*",
            "answer": kind or "allow"}
    if reason:
        rule["reason"] = reason
    return rule


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--hang-s", type=float, default=5.0)
    ap.add_argument("--lifetime", type=float, default=300.0)
    args = ap.parse_args()
    rules = Rules(args.rules, [parse_rule(r) for r in args.rule])
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the JSON log is the record
            pass

        def answer(self, status, obj):
            data = json.dumps(obj).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the server gave up waiting (a hang past its timeout)

        def do_POST(self):
            n = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            raw = self.rfile.read(n) if n else b""
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    body = {"_raw": raw.decode(errors="replace")}
            except ValueError:
                body = {"_raw": raw.decode(errors="replace")}
            rule = rules.match(body)
            kind = rule.get("answer", "allow")
            rec = dict(body, _path=self.path, _received=time.time(), _answer=kind)
            with log_lock, open(args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            if kind == "refuse":
                self.answer(int(rule.get("status", 403)), {"reason": rule.get("reason", "refused")})
            elif kind == "hang":
                time.sleep(args.hang_s)
                self.answer(200, {})
            else:
                self.answer(200, {})

        def do_GET(self):  # a liveness probe for the test
            self.answer(200, {"hook_server": True})

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server((args.host, args.port), Handler)
    threading.Timer(args.lifetime, srv.shutdown).start()
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    main()
