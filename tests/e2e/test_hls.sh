#!/usr/bin/env bash
# End-to-end HLS: RTMP, Chromium and aiortc publishers; ffmpeg decodes the playlists; inside a
# private network namespace. Usage: tests/e2e/test_hls.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
ES_HLS_YAML='  cleanup_ms: 4000' es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_hls.mjs"
