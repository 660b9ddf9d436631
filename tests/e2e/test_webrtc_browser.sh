#!/usr/bin/env bash
# End-to-end WebRTC between Debian's Chromium pages through Estuary (WHIP publish, WHEP play,
# H.264 and VP8), inside a private network namespace. Usage: tests/e2e/test_webrtc_browser.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_webrtc_browser.mjs"
