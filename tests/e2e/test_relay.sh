#!/usr/bin/env bash
# Server-to-server relays: two Estuary processes (and an aiortc full-ICE WHIP/WHEP server) in
# one private network namespace, Chromium publishing and playing at the ends, ffmpeg decoding
# RTMP output. See test_relay.mjs.
# Usage: tests/e2e/test_relay.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"
ES_LOG_LEVEL=${ES_LOG_LEVEL:-debug} timeout 300 node "$here/test_relay.mjs" "$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
