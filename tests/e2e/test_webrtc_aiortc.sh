#!/usr/bin/env bash
# End-to-end WebRTC between aiortc (python3-aiortc) and Chromium through Estuary, both ways,
# inside a private network namespace. Usage: tests/e2e/test_webrtc_aiortc.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"

bin=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)/estuary
work=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(es_free_port)
udp=$(es_free_port)
cat > "$work/estuary.yaml" <<YAML
log:
  level: debug
http:
  listen: "127.0.0.1:$port"
webrtc:
  udp_listen: "0.0.0.0:$udp"
  candidates: ["*"]
rtmp:
  listen: ""
YAML
"$bin" -c "$work/estuary.yaml" 2> "$work/estuary.log" &
pid=$!
es_wait_http "http://127.0.0.1:$port/api/v1/version" 10 || { echo "estuary did not start"; cat "$work/estuary.log"; exit 1; }

timeout 240 node "$here/test_webrtc_aiortc.mjs" "http://127.0.0.1:$port"
rc=$?
kill -TERM $pid; wait $pid; src=$?
if [ $src -ne 0 ] || grep -qE 'Sanitizer|runtime error' "$work/estuary.log"; then
  echo "FAIL - server exit $src or sanitizer report:"; grep -A30 -E 'Sanitizer|runtime error' "$work/estuary.log" | head -60; rc=1
fi
if [ $rc -ne 0 ]; then echo "# server log (last 60 lines):"; tail -60 "$work/estuary.log"; fi
exit $rc
