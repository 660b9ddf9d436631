#!/usr/bin/env bash
# The WebSocket signaling protocol from a plain client (Node's WebSocket, no browser): the
# server's offer and a hand-made answer, a client offer answered, errors with the WHIP/WHEP
# statuses (bad path, tokens, nothing to play), the socket counted per address, closing either
# side ends the other within a second, events (viewers, publisher_left/returned, room members),
# and hostile input (bad JSON, unknown type, binary, oversize, flood, a second offer, an offer
# that never comes) closing only the socket that sent it. See test_ws_protocol.mjs.
# Usage: tests/e2e/test_ws_protocol.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
export ES_EXTRA_YAML='apps:
  live: {}
  locked:
    publish_token: "pub"
    play_token: "play"
limits:
  max_sessions_per_ip: 8
  offers_per_ip: 1000'
export NODE_OPTIONS=--experimental-websocket
ES_LOG_LEVEL=info es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_ws_protocol.mjs"
