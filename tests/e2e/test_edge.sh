#!/usr/bin/env bash
# Origin, edges and a 307 balancer: four Estuary processes in one private network namespace,
# ffmpeg publishing RTMP to the origin, aiortc and ffmpeg playing from the edges and through
# the balancer. See test_edge.mjs.
# Usage: tests/e2e/test_edge.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"
export NODE_OPTIONS=--experimental-websocket
ES_LOG_LEVEL=${ES_LOG_LEVEL:-debug} timeout 300 node "$here/test_edge.mjs" "$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
