#!/usr/bin/env bash
# The browser SDK (web/estuary.js) and the publish, play, room and example pages over WebSocket
# signaling, in headless Chromium, asserting on decoded media (mute, screen sharing, canvas
# effects, audio-only, reconnection, a room of three mixed by docs/sdk.md's FFmpeg command), plus
# hostile input from plain sockets while a player plays; inside a private network namespace.
# See test_websocket.mjs.
# Usage: tests/e2e/test_websocket.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
# App "locked" has a play token; many sessions come from one address in a short time (the
# room's players, the hostile sockets).
export ES_EXTRA_YAML='apps:
  live: {}
  locked:
    play_token: "sesame"
limits:
  offers_per_ip: 1000'
export NODE_OPTIONS=--experimental-websocket
ES_NODE_TIMEOUT=${ES_NODE_TIMEOUT:-180} es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_websocket.mjs"
