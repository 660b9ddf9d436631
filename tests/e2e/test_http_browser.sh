#!/usr/bin/env bash
# End-to-end: Debian's Chromium (playwright-core) loads Estuary's page and reads its API from the
# same origin and from another origin (CORS), inside a private network namespace.
# Usage: tests/e2e/test_http_browser.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"

bin=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)/estuary
work=$(mktemp -d)
pid= web=
trap 'kill -9 $pid $web 2>/dev/null; rm -rf "$work"' EXIT
port=$(es_free_port)
other=$(es_free_port)
cat > "$work/estuary.yaml" <<YAML
http:
  listen: "127.0.0.1:$port"
webrtc:
  udp_listen: "127.0.0.1:$(es_free_port)"
  tcp_listen: "127.0.0.1:$(es_free_port)"
  candidates: ["127.0.0.1"]
rtmp:
  listen: ""
YAML
"$bin" -c "$work/estuary.yaml" 2> "$work/estuary.log" &
pid=$!
mkdir "$work/other" && echo '<!doctype html><title>other origin</title>' > "$work/other/blank.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/other" "$other" > /dev/null 2>&1 &
web=$!
es_wait_http "http://127.0.0.1:$port/api/v1/version" 10 || { echo "estuary did not start"; cat "$work/estuary.log"; exit 1; }
es_wait_http "http://127.0.0.1:$other/blank.html" 10 || { echo "second origin did not start"; exit 1; }

node "$here/test_http_browser.mjs" "http://127.0.0.1:$port" "http://127.0.0.1:$other"
rc=$?
kill $web 2>/dev/null; wait $web 2>/dev/null
kill -TERM $pid; wait $pid; src=$?
if [ $src -ne 0 ] || grep -qE 'Sanitizer|runtime error' "$work/estuary.log"; then
  echo "FAIL - server exit $src or sanitizer report:"; tail -30 "$work/estuary.log"; rc=1
fi
exit $rc
