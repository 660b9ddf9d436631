#!/usr/bin/env bash
# End-to-end RTMP with Debian's ffmpeg/ffprobe and Chromium through Estuary (RTMP publish, RTMP
# and HTTP-FLV play, WHEP play of an RTMP stream), inside a private network namespace.
# Usage: tests/e2e/test_rtmp.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
ES_EXTRA_YAML='apps:
  "*": {}
  secret:
    publish_token: "s3cret"' es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_rtmp.mjs"
