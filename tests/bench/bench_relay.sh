#!/usr/bin/env bash
# Relay-hop latency benchmark (docs/performance.md; run by hand, never by the test suite): server
# A gets a 2.5 Mbit/s H.264 + AAC stream from ffmpeg over RTMP (1280x720, 30 fps, 2 s GOP, encoded
# beforehand and sent with -c copy so that no encoder competes for the cores), server
# B pulls it from A over a relay (POST /rest-api/pull/pull), and one aiortc process
# (tests/bench/relay_probe.py) plays it from A and from B at once and measures, per RTP packet,
# B's arrival minus A's arrival of the same payload. Prints min/p50/p90/p99/max per run and over
# all runs, inside a private network namespace (loopback), on free ports.
#
#   bash tests/bench/bench_relay.sh BUILD_DIR [RUNS [SECONDS]]   # defaults 3 runs of 20 s
#
# Exit status: 0 when every run matched packets on both paths.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"
bin=$(cd "${1:?usage: $0 BUILD_DIR [RUNS [SECONDS]]}" && pwd)
ES_LOG_LEVEL=${ES_LOG_LEVEL:-info} timeout 900 node "$here/bench_relay.mjs" "$bin" "${2:-3}" "${3:-20}"
