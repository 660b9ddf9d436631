#!/usr/bin/env bash
# End-to-end WebRTC between aiortc (python3-aiortc) and Chromium through Estuary, both ways,
# inside a private network namespace. Usage: tests/e2e/test_webrtc_aiortc.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_webrtc_aiortc.mjs"
