#!/usr/bin/env bash
# Process test of the daemon as an operator runs it: start the built server on a free loopback
# port with a temporary configuration, query the API with curl, check error bodies, reload with
# SIGHUP (a broken file keeps the old configuration; a good one applies), reopen the log with
# SIGUSR1, stop with SIGTERM (exit 0 within 5 s), and under ASan no leak report.
#
# Usage: tests/process/test_daemon.sh BUILD_DIR      (runs itself in a private network namespace)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"

bin=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)/estuary
[ -x "$bin" ] || { echo "no estuary binary in $1"; exit 1; }
work=$(mktemp -d)
pid= watchdog=
trap 'kill -9 $pid $watchdog 2>/dev/null; rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

port=$(es_free_port)
rtmp_port=$(es_free_port)
udp_port=$(es_free_port)
cat > "$work/estuary.yaml" <<YAML
log:
  level: debug
  file: "$work/estuary.log"
http:
  listen: "127.0.0.1:$port"
  cors_origin: "https://pages.example"
webrtc:
  udp_listen: "127.0.0.1:$udp_port"
  tcp_listen: "127.0.0.1:$(es_free_port)"
  candidates: ["127.0.0.1"]
rtmp:
  listen: "127.0.0.1:$rtmp_port"
limits:
  max_http_body: 4096
YAML
base="http://127.0.0.1:$port"

# -t: a valid file passes, a broken one names the key and line and exits 1.
check "estuary -t accepts the test configuration" "$bin" -t -c "$work/estuary.yaml"
printf 'http:\n  listen: "127.0.0.1:%s"\nwebrtc:\n  nakc: true\n' "$port" > "$work/broken.yaml"
out=$("$bin" -t -c "$work/broken.yaml" 2>&1); rc=$?
check "estuary -t on a broken file exits 1" [ "$rc" -eq 1 ]
check "estuary -t names file, line, column and key" \
  grep -qF "broken.yaml:4:3: webrtc.nakc: unknown key (did you mean 'nack'?)" <<<"$out"
out=$("$bin" --print-default-config)
check "--print-default-config prints conf/estuary.yaml" \
  diff -q <(printf '%s\n' "$out") "$here/../../conf/estuary.yaml"

(cd "$work" && exec "$bin" -c "$work/estuary.yaml") 2> "$work/stderr.log" &
pid=$!
( sleep 120; kill -9 $pid 2>/dev/null ) &   # the test never waits on the server for longer
watchdog=$!
check "server answers within 10 s" es_wait_http "$base/api/v1/version" 10

body=$(curl -s -D "$work/h1" "$base/api/v1/version")
check "GET /api/v1/version is JSON naming estuary" \
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["name"]=="estuary" and d["version"]' "$body"
check "CORS header carries http.cors_origin" grep -qi '^access-control-allow-origin: https://pages.example' "$work/h1"
body=$(curl -s "$base/api/v1/streams")
check "GET /api/v1/streams lists no streams" \
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d=={"streams":[],"count":0}, d' "$body"
code=$(curl -s -o "$work/b404" -w '%{http_code}' "$base/no/such/thing")
check "unknown path is 404" [ "$code" = 404 ]
check "404 body is JSON that names the path" \
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]==404 and "/no/such/thing" in d["error"], d' "$work/b404"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/streams/live/none")
check "unknown stream is 404" [ "$code" = 404 ]
code=$(curl -s -o /dev/null -D "$work/h405" -w '%{http_code}' -X DELETE "$base/api/v1/version")
check "wrong method is 405" [ "$code" = 405 ]
check "405 carries Allow" grep -qi '^allow: GET' "$work/h405"
code=$(curl -s -o /dev/null -D "$work/hopt" -w '%{http_code}' -X OPTIONS \
  -H 'Origin: https://pages.example' -H 'Access-Control-Request-Method: POST' "$base/whip/live/cam")
check "OPTIONS preflight is 204" [ "$code" = 204 ]
check "preflight lists the allowed methods" grep -qi '^access-control-allow-methods: .*POST' "$work/hopt"
head -c 8192 /dev/zero > "$work/big"
code=$(curl -s -o "$work/b413" -w '%{http_code}' --data-binary @"$work/big" "$base/api/v1/streams")
check "body over limits.max_http_body is 413" [ "$code" = 413 ]
check "413 body says which limit" grep -q 'max_http_body' "$work/b413"
code=$(curl -s -o "$work/index" -w '%{http_code}' "$base/")
check "GET / is 200" [ "$code" = 200 ]
check "GET / serves the web index page" grep -qi '<!doctype html' "$work/index"
code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$base/../../etc/passwd")
check "path traversal is refused (got $code)" [ "$code" != 200 ]
check "request lines are logged with peer and remote address" \
  grep -q 'http: peer=h[0-9]* remote=127.0.0.1:[0-9]* GET /no/such/thing -> 404' "$work/estuary.log"

# SIGHUP with a broken file: the server keeps running on the old configuration.
cp "$work/estuary.yaml" "$work/good.yaml"
printf 'log:\n  level: [oops\n' > "$work/estuary.yaml"
kill -HUP $pid
sleep 0.5
check "server survives SIGHUP with a broken file" kill -0 $pid
check "broken reload is logged with the reason" grep -q 'configuration not reloaded.*YAML syntax error' "$work/estuary.log"
body=$(curl -s -D "$work/h2" "$base/api/v1/version")
check "still serving after the broken reload" grep -q estuary <<<"$body"

# SIGHUP with a good file that changes a live key and a restart-only key.
sed -e 's|https://pages.example|https://other.example|' -e "s|127.0.0.1:$rtmp_port|127.0.0.1:1|" \
  "$work/good.yaml" > "$work/estuary.yaml"
kill -HUP $pid
sleep 0.5
curl -s -D "$work/h3" -o /dev/null "$base/api/v1/version"
check "reload applies http.cors_origin live" grep -qi '^access-control-allow-origin: https://other.example' "$work/h3"
check "reload says rtmp.listen needs a restart" grep -q 'need a restart.*rtmp.listen' "$work/estuary.log"

# SIGUSR1 after logrotate moved the file: a new file is opened.
mv "$work/estuary.log" "$work/estuary.log.1"
kill -USR1 $pid
sleep 0.3
curl -s -o /dev/null "$base/nothing-here"
sleep 0.2
check "SIGUSR1 reopens the log file" grep -q 'GET /nothing-here' "$work/estuary.log"

# A client holding an idle keep-alive connection must not delay the shutdown.
exec 7<>/dev/tcp/127.0.0.1/$port
printf 'GET /api/v1/version HTTP/1.1\r\nHost: x\r\n\r\n' >&7
start=$(date +%s%N)
kill -TERM $pid
wait $pid; rc=$?
kill $watchdog 2>/dev/null; wait $watchdog 2>/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
exec 7>&-
check "SIGTERM exits 0 (was $rc)" [ "$rc" -eq 0 ]
check "SIGTERM exits within 5 s (took $ms ms)" [ "$ms" -lt 5000 ]
check "no sanitizer report" bash -c "! grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' '$work/stderr.log'"

# A port already taken: a clear error naming the key, exit 1, no leak report.
busy_port=$(es_free_port)
sed "s|127.0.0.1:$port|127.0.0.1:$busy_port|" "$work/good.yaml" > "$work/busy.yaml"
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); open(sys.argv[2],"w").close(); time.sleep(10)' \
  "$busy_port" "$work/holder.ready" &
holder=$!
for ((i = 0; i < 50; i++)); do [ -e "$work/holder.ready" ] && break; sleep 0.1; done
timeout 10 "$bin" -c "$work/busy.yaml" > "$work/busy.out" 2>&1; rc=$?
kill $holder 2>/dev/null; wait $holder 2>/dev/null
check "port in use exits 1 (was $rc)" [ "$rc" -eq 1 ]
check "port in use names http.listen and the errno in the log" \
  grep -q "cannot listen on 127.0.0.1:$busy_port (http.listen): Address already in use" "$work/estuary.log"
check "a failed start points to the log file on stderr" grep -q "startup failed.*estuary.log" "$work/busy.out"
check "failed start leaks nothing" bash -c "! grep -q 'Sanitizer' '$work/busy.out'"

# HTTPS from a configured certificate, WebSocket signaling over it, and a clean stop under ASan.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
tls_port=$(es_free_port)
cat > "$work/tls.yaml" <<YAML
http:
  listen: "127.0.0.1:$(es_free_port)"
  https:
    listen: "127.0.0.1:$tls_port"
    cert: "$work/cert.pem"
    key: "$work/key.pem"
webrtc:
  udp_listen: "127.0.0.1:$(es_free_port)"
  tcp_listen: "127.0.0.1:$(es_free_port)"
rtmp:
  listen: ""
YAML
(cd "$work" && exec "$bin" -c "$work/tls.yaml") 2> "$work/tls.log" &
pid=$!
for ((i = 0; i < 100; i++)); do curl -ksf -o /dev/null "https://127.0.0.1:$tls_port/api/v1/version" && break; sleep 0.1; done
body=$(curl -ks "https://127.0.0.1:$tls_port/api/v1/version")
check "HTTPS serves the API" grep -q '"name":"estuary"' <<<"$body"
# HTTP/1.1 only, even to a client that offers h2 by ALPN: over h2 a WebSocket would be an
# RFC 8441 stream (Firefox uses them), which the signaling does not speak, and HTTP-FLV's chunked
# body is not allowed.
proto=$(curl -ks --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$tls_port/api/v1/streams")
check "HTTPS answers HTTP/1.1 to a client offering h2 (got $proto)" [ "$proto" = 1.1 ]
wss=$(NODE_OPTIONS=--experimental-websocket NODE_TLS_REJECT_UNAUTHORIZED=0 timeout 10 node -e "
const s = new WebSocket('wss://127.0.0.1:$tls_port/live/cam/webrtc'); let m = '';
s.onmessage = (e) => { m = JSON.parse(e.data); };
s.onclose = (e) => { console.log(m.type, m.status, e.code); process.exit(0); };" 2>/dev/null)
check "WebSocket signaling over HTTPS (wss://) answers and closes (got: $wss)" [ "$wss" = "error 404 1008" ]
kill -TERM $pid; wait $pid; rc=$?
check "HTTPS server stops with 0 (was $rc)" [ "$rc" -eq 0 ]
check "HTTPS run has no sanitizer report" bash -c "! grep -E 'Sanitizer|runtime error' '$work/tls.log'"

es_summary
