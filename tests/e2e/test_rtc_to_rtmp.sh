#!/usr/bin/env bash
# End-to-end WebRTC -> RTMP/HTTP-FLV: Chromium publishes over WHIP, ffmpeg plays over RTMP and
# HTTP-FLV, inside a private network namespace. Usage: tests/e2e/test_rtc_to_rtmp.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_rtc_to_rtmp.mjs"
