# Sourced by the end-to-end scripts: starts the estuary of BUILD_DIR ($1) inside the caller's
# network namespace on free ports (HTTP and RTMP on 127.0.0.1, WebRTC UDP on 0.0.0.0 with the
# discovered candidates, which is loopback only here), runs `node MJS BASE_URL UDP_PORT RTMP_PORT`,
# stops the server with SIGTERM and fails on a non-zero exit or a sanitizer report. ES_EXTRA_YAML,
# when set, is appended to the configuration (e.g. an apps section); ES_RTMP_YAML adds keys to its
# rtmp section and ES_HLS_YAML to its hls section (each line indented by two spaces; without it
# an ended stream's HLS folder goes at once); HLS is written below the server's temporary
# folder, exported as ES_WORK; the server log's path is exported as ES_SERVER_LOG. ES_LOG_LEVEL
# (default debug) sets the log level, ES_NODE_TIMEOUT (default 240) bounds the node script in
# seconds, and ES_KEEP_LOG=FILE keeps a copy of the server log. Usage from a script:
#   . "$here/lib/with_server.sh"; es_run_with_server "$1" "$here/test_x.mjs"
es_run_with_server() {
  local bin work port udp rtmp pid rc src
  bin=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)/estuary
  work=$(mktemp -d)
  port=$(es_free_port)
  udp=$(es_free_port)
  ES_TCP=$(es_free_port)
  export ES_TCP
  rtmp=$(es_free_port)
  cat > "$work/estuary.yaml" <<YAML
log:
  level: ${ES_LOG_LEVEL:-debug}
http:
  listen: "127.0.0.1:$port"
webrtc:
  udp_listen: "0.0.0.0:$udp"
  tcp_listen: "0.0.0.0:$ES_TCP"
  candidates: ["*"]
rtmp:
  listen: "127.0.0.1:$rtmp"
  handshake_timeout_ms: 2000
${ES_RTMP_YAML:-}
hls:
  directory: "$work/hls"
${ES_HLS_YAML:-  cleanup_ms: 0}
${ES_EXTRA_YAML:-}
YAML
  (cd "$work" && exec "$bin" -c "$work/estuary.yaml") 2> "$work/estuary.log" &
  pid=$!
  if ! es_wait_http "http://127.0.0.1:$port/api/v1/version" 10; then
    echo "estuary did not start"; cat "$work/estuary.log"; kill -9 $pid 2>/dev/null; rm -rf "$work"
    return 1
  fi
  ES_WORK="$work" ES_SERVER_LOG="$work/estuary.log" timeout "${ES_NODE_TIMEOUT:-240}" \
    node "$2" "http://127.0.0.1:$port" "$udp" "$rtmp"
  rc=$?
  [ $rc -eq 124 ] && echo "FAIL - $2 did not finish within ${ES_NODE_TIMEOUT:-240} s"
  kill -TERM $pid; wait $pid; src=$?
  if [ $src -ne 0 ] || grep -qE 'Sanitizer|runtime error' "$work/estuary.log"; then
    echo "FAIL - server exit $src or sanitizer report:"
    grep -A30 -E 'Sanitizer|runtime error' "$work/estuary.log" | head -60
    rc=1
  fi
  if [ $rc -ne 0 ]; then echo "# server log (last 60 lines):"; grep -v " DEBUG http: " "$work/estuary.log" | tail -60; fi
  if [ -n "${ES_KEEP_LOG:-}" ]; then cp "$work/estuary.log" "$ES_KEEP_LOG" && echo "# server log kept in $ES_KEEP_LOG"; fi
  rm -rf "$work"
  return $rc
}
