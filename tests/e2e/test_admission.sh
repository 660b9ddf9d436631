#!/usr/bin/env bash
# Every protocol admits through the same path: the same configuration gives the same refusal
# (status, JSON error, RTMP onStatus, one "admission: ... refused" log line with the same
# reason) over WHIP, WHEP, RTMP publish and play, HTTP-FLV and HLS; tokens over each protocol
# and into HLS segment URIs; the admin API (loopback or api.token, no CORS); WHIP/WHEP session
# resources and their secret; on_publish/on_play/on_unpublish/on_stop hooks answered by
# tests/e2e/hook_server.py (admit, refuse with a reason, time out). See test_admission.mjs.
# Two servers one after the other (without and with api.token), inside a private network
# namespace with a second one joined by a veth pair (192.0.2.1 here, 192.0.2.2 there) for a
# client that is not on loopback. Usage: tests/e2e/test_admission.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/own_server.sh"
es_netns "$@"
build=${1:?usage: $0 BUILD_DIR}
tmp=$(mktemp -d)
hook_pid=
cleanup() {
  [ -n "$hook_pid" ] && kill "$hook_pid" 2>/dev/null
  es_peer_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

# Runs the node part ($1) and adds its "N passed, N failed" to ours.
run_part() {
  local out=$tmp/node-$1.out p f
  timeout "${ES_NODE_TIMEOUT:-240}" node "$here/test_admission.mjs" "$1" | tee "$out"
  [ "${PIPESTATUS[0]}" -eq 124 ] && echo "FAIL - test_admission.mjs $1 did not finish in time"
  read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$out" | tail -1)
  if [ -z "${p:-}" ]; then ES_FAILED=$((ES_FAILED + 1)); echo "FAIL - test_admission.mjs $1 gave no summary"; return; fi
  ES_PASSED=$((ES_PASSED + p)); ES_FAILED=$((ES_FAILED + f))
}

if ! es_peer_netns; then
  echo "FAIL - cannot make the second network namespace (veth 192.0.2.1 <-> 192.0.2.2)"
  echo "0 passed, 1 failed"
  exit 1
fi

hook_port=$(es_free_port)
export ES_HOOK_LOG=$tmp/hooks.jsonl ES_HOOK_RULES=$tmp/rules.json
echo '[]' > "$ES_HOOK_RULES"
/usr/bin/python3 "$here/hook_server.py" --port "$hook_port" --log "$ES_HOOK_LOG" --rules "$ES_HOOK_RULES" \
  --hang-s 5 --lifetime 400 &
hook_pid=$!
check "the hook server answers" es_wait_http "http://127.0.0.1:$hook_port/" 10

# 1. No "*" app; tokens on tok; hooks on hooked; no api.token; HTTP and RTMP on every address.
hook=http://127.0.0.1:$hook_port/hook
ES_LISTEN_IP=0.0.0.0 ES_EXTRA_YAML="apps:
  open: {}
  tok:
    publish_token: \"pubtok\"
    play_token: \"playtok\"
  hooked:
    on_publish: \"$hook\"
    on_unpublish: \"$hook\"
    on_play: \"$hook\"
    on_stop: \"$hook\"
hooks:
  timeout_ms: 1000
limits:
  offers_per_ip: 1000" ES_HLS_YAML='  segment_ms: 1000
  cleanup_ms: 0' es_server_start "$build" || { echo "$ES_PASSED passed, $((ES_FAILED + 1)) failed"; exit 1; }
run_part main
check "server 1 (no api.token) exits cleanly, no sanitizer report" es_server_stop

# 2. api.token set.
ES_EXTRA_YAML='apps:
  open: {}
  tok:
    publish_token: "pubtok"
    play_token: "playtok"
api:
  token: "admintok"' es_server_start "$build" || { echo "$ES_PASSED passed, $((ES_FAILED + 1)) failed"; exit 1; }
run_part apitoken
check "server 2 (api.token) exits cleanly, no sanitizer report" es_server_stop
es_summary
