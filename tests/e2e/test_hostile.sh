#!/usr/bin/env bash
# Hostile clients while a viewer watches: Chromium plays an RTMP-published stream over WHEP from
# loopback and must keep decoding (no gap over 1 s) while a second network namespace
# (192.0.2.2, joined by a veth pair to 192.0.2.1 here; nothing routes anywhere else) attacks:
# the admin API, the player's session resource, HLS without a token, waiting players, 300 idle
# RTMP connections, an oversized RTMP message, a NACK storm, a WHIP offer flood and random bytes
# to every port. A legitimate publisher from the same address keeps publishing and a new one is
# admitted afterwards; the server exits cleanly. See test_hostile.mjs.
# Usage: tests/e2e/test_hostile.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/own_server.sh"
es_netns "$@"
build=${1:?usage: $0 BUILD_DIR}
out=$(mktemp)
trap 'es_peer_stop; rm -f "$out"' EXIT
if ! es_peer_netns; then
  echo "FAIL - cannot make the second network namespace (veth 192.0.2.1 <-> 192.0.2.2)"
  echo "0 passed, 1 failed"
  exit 1
fi
ES_LISTEN_IP=0.0.0.0 ES_RTMP_YAML='  connect_timeout_ms: 2000' ES_WEBRTC_YAML='  dtls_timeout_ms: 3000' \
ES_EXTRA_YAML='apps:
  "*": {}
  sec:
    publish_token: "pubtok"
    play_token: "playtok"
limits:
  max_sessions_per_ip: 20
  offers_per_ip: 5
  player_wait_ms: 3000' es_server_start "$build" || { echo "0 passed, 1 failed"; exit 1; }
timeout "${ES_NODE_TIMEOUT:-240}" node "$here/test_hostile.mjs" | tee "$out"
[ "${PIPESTATUS[0]}" -eq 124 ] && echo "FAIL - test_hostile.mjs did not finish in time"
read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$out" | tail -1)
if [ -n "${p:-}" ]; then ES_PASSED=$p; ES_FAILED=$f; else ES_FAILED=1; echo "FAIL - test_hostile.mjs gave no summary"; fi
check "the server exits cleanly after the attacks, no sanitizer report" es_server_stop
es_summary
