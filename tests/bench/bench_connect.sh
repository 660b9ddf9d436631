#!/usr/bin/env bash
# Connect-time benchmark (docs/performance.md; run by hand, never by the test suite): one Chromium
# page publishes its fake camera and microphone to live/bench with WHIP, then N WHEP players
# connect one after another (each closed before the next starts) and each one's times from the
# WHEP POST to ICE connected, DTLS connected and the first decoded frame are measured on the
# page's own clock; the server log's ICE lines ("ICE: client nominated ... after N ms" before
# commit 3510022; "ICE: pair ... valid after N ms" and "ICE: media to ... (nominated) after N ms"
# from it on) and "DTLS connected ... N ms after the offer" give the server's view. Prints min, p50, p95 and max of each
# metric with the raw lists, inside a private network namespace (loopback only), on free ports.
#
#   bash tests/bench/bench_connect.sh BUILD_DIR [N]       # BUILD_DIR holds the estuary binary
#
# Environment (all optional):
#   BENCH_CODEC=H264|VP8     the publisher's video codec (default H264)
#   BENCH_SIGNALING=ws       players use WebSocket signaling (the server offers) instead of WHEP
#   BENCH_BLOCK_UDP=1        drop UDP to and from the server's port (nftables, as
#                            tests/e2e/lib/firewall.mjs): every session falls back to ICE-TCP
#   BENCH_JSON=FILE          also write every session's times and the statistics as JSON to FILE
#   BENCH_LOG=FILE           keep a copy of the server log in FILE
#   BENCH_TIMEOUT_MS=10000   the bound on each session (POST to first frame); a session that does
#                            not reach DTLS connected and a decoded frame within it is a failure
#   BENCH_REUSE_PAGE=1       every session in one page (a fresh RTCPeerConnection and <video>
#                            each time) instead of a fresh page per session
#   BENCH_GAP_MS=250         pause between a session's end and the next POST
#   BENCH_LOG_LEVEL=debug    the server's log level (debug, as in the end-to-end tests)
#   BENCH_EXTRA_ADDR=CIDR    also put this address (e.g. 198.51.100.1/24, TEST-NET) on a veth interface in the
#                            namespace, so that Chromium and the server each have a second host
#                            candidate, as on a machine with a LAN interface (several ICE pairs)
#   CHROMIUM=/usr/bin/chromium
# Exit status: 0 when every session connected and decoded a frame, 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"
if [ -n "${BENCH_EXTRA_ADDR:-}" ]; then
  ip link add es-bench0 type veth peer name es-bench1 && ip addr add "$BENCH_EXTRA_ADDR" dev es-bench0 &&
    ip link set es-bench0 up && ip link set es-bench1 up || { echo "cannot add $BENCH_EXTRA_ADDR"; exit 1; }
fi

bin=$(cd "${1:?usage: $0 BUILD_DIR [N]}" && pwd)/estuary
n=${2:-30}
[ -x "$bin" ] || { echo "no estuary binary at $bin"; exit 1; }

echo "# bench_connect: $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# binary: $bin ($(stat -c '%y' "$bin" | cut -d. -f1)$(ldd "$bin" 2>/dev/null | grep -q libasan && echo ', ASan build: slower than Release'))"
echo "# namespace addresses: $(ip -br -4 addr | awk '{print $1 " " $3}' | paste -sd, | sed 's/,/, /g')"
echo "# browser: $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | head -1)"

timeout_ms=${BENCH_TIMEOUT_MS:-10000}
export BENCH_N=$n
# The end-to-end tests' server (tests/e2e/lib/with_server.sh), bounded as a whole: every session
# may take its full timeout plus the page's set-up.
. "$here/../e2e/lib/with_server.sh"
ES_LOG_LEVEL=${BENCH_LOG_LEVEL:-debug} ES_KEEP_LOG=${BENCH_LOG:-} \
  ES_NODE_TIMEOUT=$((120 + n * (timeout_ms / 1000 + 10))) \
  es_run_with_server "$1" "$here/bench_connect.mjs"
rc=$?
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
