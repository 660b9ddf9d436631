#!/usr/bin/env bash
# GET /metrics (Prometheus text format) scraped during a live stream: an FFmpeg RTMP publisher
# and an aiortc WHEP player that NACKs, inside a private network namespace; the values move as
# they should. See test_metrics.mjs. Usage: tests/e2e/test_metrics.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
export METRICS_TOKEN=metrics-$$
ES_LOG_LEVEL=${ES_LOG_LEVEL:-info} ES_NODE_TIMEOUT=${ES_NODE_TIMEOUT:-120} ES_HLS_YAML="  segment_ms: 1000
  cleanup_ms: 0" ES_EXTRA_YAML="api:
  token: \"$METRICS_TOKEN\"" es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_metrics.mjs"
