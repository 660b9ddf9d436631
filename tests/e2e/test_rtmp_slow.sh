#!/usr/bin/env bash
# A slow RTMP player and a slow HTTP-FLV player (ffmpeg processes stopped with SIGSTOP) next to a
# fast one: the slow ones overflow their bounded queues and are disconnected after
# rtmp.player_stall_ms, the fast one decodes every frame. TCP buffers of the private namespace are
# made small so that a stopped reader pushes back within a second instead of after megabytes.
# Usage: tests/e2e/test_rtmp_slow.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
sysctl -q -w net.ipv4.tcp_rmem="4096 16384 65536" net.ipv4.tcp_wmem="4096 16384 65536"
ES_EXTRA_YAML='apps:
  "*":
    hls: false' ES_RTMP_YAML='  player_queue_ms: 2000
  player_stall_ms: 3000' es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_rtmp_slow.mjs"
