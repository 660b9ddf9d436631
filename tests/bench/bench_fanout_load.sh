#!/usr/bin/env bash
# WebRTC fan-out near the machine's limit (docs/performance.md; run by hand, never by ctest): one
# WHIP publisher (bench_whip_publish: H.264 720p30 2.5 Mbit/s, 2 s GOP, + Opus, files made by
# FFmpeg and cached under BUILD_DIR/bench-media) and, step after step, N WHEP players
# (bench_whep_load: ICE, DTLS, SRTP, receiver reports and NACKs like a browser) against
# BUILD_DIR/estuary, inside a private network namespace (loopback only, fixed ports). The server
# runs on core 0 (taskset -c 0), the publisher and the generator on core 1. The server and the
# publisher keep running across the steps; the generator is restarted for each. Prints one table.
#
#   bash tests/bench/bench_fanout_load.sh BUILD_DIR
#
# BUILD_DIR is configured (Release) and the three targets built in it when they are missing, so
# that one command runs the whole measurement from a clean checkout (after scripts/bootstrap.sh).
#
# Environment (all optional):
#   BENCH_STEPS="50 200 400 800 1500"   players per step
#   BENCH_WARMUP=3 BENCH_DURATION=10    seconds of warm-up and of the measurement window per step
#   BENCH_RATE=100                      new players per second
#   BENCH_GEN_ARGS="--no-rtcp"          more arguments for bench_whep_load (e.g. --decrypt-all)
#   BENCH_PUB_ARGS="--burst"            more arguments for bench_whip_publish
#   BENCH_JSON=FILE                     also write each step's JSON line to FILE
#   BENCH_LOG=DIR                       keep the server's, the publisher's and each step's output
#   BENCH_PERF=DIR                      perf record -g the server and the generator of each step
#                                       (DIR/server-N.data, DIR/gen-N.data)
# Exit status: 0 when every step ran and the publisher stayed up, 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"

root=$(cd "$here/../.." && pwd)
want=${1:?usage: $0 BUILD_DIR}
if [ ! -x "$want/estuary" ] || [ ! -x "$want/tests/bench/bench_whep_load" ] ||
   [ ! -x "$want/tests/bench/bench_whip_publish" ]; then
  echo "# building estuary, bench_whep_load and bench_whip_publish in $want (Release)"
  if [ ! -f "$want/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$want" -DCMAKE_BUILD_TYPE=Release > /dev/null || exit 1
  fi
  cmake --build "$want" -j"$(nproc)" --target estuary bench_whep_load bench_whip_publish > /dev/null || exit 1
fi
build=$(cd "$want" && pwd)
bin=$build/estuary
gen=$build/tests/bench/bench_whep_load
pub=$build/tests/bench/bench_whip_publish
for f in "$bin" "$gen" "$pub"; do [ -x "$f" ] || { echo "missing $f (build the estuary, bench_whep_load and bench_whip_publish targets)"; exit 1; }; done
steps=${BENCH_STEPS:-50 200 400 800 1500}
warmup=${BENCH_WARMUP:-3}
duration=${BENCH_DURATION:-10}
rate=${BENCH_RATE:-100}

# --- media, made once ---
media=$build/bench-media
video=$media/video-720p30-2500k-g60.h264
audio=$media/audio-opus-48k-20ms.opus
mkdir -p "$media"
if [ ! -s "$video" ]; then
  echo "# making $video (ffmpeg, about 10 s)"
  # testsrc2 with temporal noise, so that the encoder needs its whole bitrate; constrained
  # baseline (no B-frames), an IDR every 60 frames and no other, SPS/PPS before each IDR.
  if ! nice -n 19 ffmpeg -hide_banner -loglevel error -y -f lavfi \
      -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" -frames:v 300 -c:v libx264 \
      -profile:v baseline -preset veryfast -tune zerolatency -b:v 2500k -maxrate 2500k -bufsize 1250k \
      -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -pix_fmt yuv420p -threads 1 \
      -x264-params repeat-headers=1 -f h264 "$video.tmp"; then
    echo "ffmpeg could not make $video"; exit 1
  fi
  mv "$video.tmp" "$video"
fi
if [ ! -s "$audio" ]; then
  if ! nice -n 19 ffmpeg -hide_banner -loglevel error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" \
      -t 10 -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio -f ogg "$audio.tmp"; then
    echo "ffmpeg could not make $audio"; exit 1
  fi
  mv "$audio.tmp" "$audio"
fi

# --- the server and the publisher ---
work=$(mktemp -d)
server_pid='' pub_pid='' perf_pid=''
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
  if [ -n "$pub_pid" ]; then
    kill -TERM "$pub_pid" 2>/dev/null && wait "$pub_pid" 2>/dev/null
    tail -1 "$work/publisher.log" | sed 's/^/# /'
  fi
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [ -n "${BENCH_LOG:-}" ]; then mkdir -p "$BENCH_LOG" && cp "$work"/*.log "$BENCH_LOG"/ 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cat > "$work/estuary.yaml" <<YAML
log:
  level: warn
http:
  listen: "127.0.0.1:8080"
webrtc:
  udp_listen: "127.0.0.1:8000"
  tcp_listen: ""
  tcp_on_http: false
  protocol: udp
  candidates: ["127.0.0.1"]
rtmp:
  listen: ""
hls:
  directory: "$work/hls"
apps:
  "*":
    hls: false
    rtc_to_rtmp: false
limits:
  max_sessions: 100000
  max_sessions_per_ip: 0
  offers_per_ip: 0
YAML
base=http://127.0.0.1:8080
(cd "$work" && exec taskset -c 0 "$bin" -c "$work/estuary.yaml") 2> "$work/server.log" &
server_pid=$!
es_wait_http "$base/api/v1/version" 15 || { echo "estuary did not start"; cat "$work/server.log"; exit 1; }

echo "# bench_fanout_load: $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# server: $bin ($(stat -c '%y' "$bin" | cut -d. -f1)) on core 0; publisher and generator on core 1"
taskset -c 1 "$pub" --url "$base/whip/live/bench" --video "$video" --audio "$audio" ${BENCH_PUB_ARGS:-} \
  2> "$work/publisher.log" &
pub_pid=$!
for ((i = 0; i < 100; i++)); do
  grep -q publishing "$work/publisher.log" && break
  kill -0 "$pub_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q publishing "$work/publisher.log" || { echo "the publisher did not connect:"; cat "$work/publisher.log"; exit 1; }
sed 's/^/# /' "$work/publisher.log"
sleep 2.5 # a key frame in the server's GOP cache before the first player
# The server's memory with its publisher and no player: each step's RSS is compared with it
# (malloc keeps what an earlier step freed, so a step's own "before" would hide its players).
rss_base=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
echo "# server RSS with the publisher only: $rss_base KiB"

# --- the steps ---
results=$work/results.jsonl
: > "$results"
rc=0
for n in $steps; do
  kill -0 "$pub_pid" 2>/dev/null || { echo "the publisher ended:"; cat "$work/publisher.log"; rc=1; break; }
  kill -0 "$server_pid" 2>/dev/null || { echo "the server ended:"; tail -20 "$work/server.log"; rc=1; break; }
  echo "# step: $n players (load $(cut -d' ' -f1-3 /proc/loadavg))"
  bound=$(( n / rate * 3 / 2 + 10 + warmup + duration + 20 ))
  perf_gen=()
  if [ -n "${BENCH_PERF:-}" ]; then
    mkdir -p "$BENCH_PERF"
    perf record -q -g -p "$server_pid" -o "$BENCH_PERF/server-$n.data" 2> /dev/null &
    perf_pid=$!
    perf_gen=(perf record -q -g -o "$BENCH_PERF/gen-$n.data" --)
  fi
  # shellcheck disable=SC2086
  timeout -k 5 "$bound" taskset -c 1 "${perf_gen[@]}" "$gen" --url "$base/whep/live/bench" \
    --players "$n" --rate "$rate" --warmup "$warmup" --duration "$duration" \
    --server-pid "$server_pid" --json ${BENCH_GEN_ARGS:-} > "$work/step-$n.log" 2>&1
  grc=$?
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null; perf_pid=; fi
  grep -v '^{' "$work/step-$n.log" | sed 's/^/#   /'
  line=$(grep '^{' "$work/step-$n.log" | tail -1)
  if [ -z "$line" ]; then echo "#   no result (exit $grc)"; rc=1; continue; fi
  echo "$line" >> "$results"
  [ -n "${BENCH_JSON:-}" ] && echo "$line" >> "$BENCH_JSON"
  # The next step starts on a server without this step's sessions: an overloaded server may not
  # have answered every DELETE, and a session left over keeps sending to a port the kernel may
  # give a new player (consent ends it within webrtc.player_timeout_ms, 30 s).
  for ((i = 0; i < 90; i++)); do
    left=$(curl -fs --max-time 2 "$base/api/v1/load" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"])' 2>/dev/null)
    [ -n "$left" ] && [ "$left" -le 1 ] && break
    sleep 0.5
  done
  [ "${left:-2}" -le 1 ] || echo "#   warning: the server still has ${left:-?} sessions"
done
python3 - "$results" "$rss_base" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = float(sys.argv[2])
hdr = ["players", "ok", "srv CPU%", "%/player", "kbit/s", "loss%", "worst%", "lat p50/p99/max ms",
       "connect p50/p99/max ms", "KiB/player", "dec.fail", "NACKs", "gen CPU%", "gen ns/dgram", "other%"]
out = [hdr]
for r in rows:
    out.append([str(r["players"]), str(r["at_start"]), "%.1f" % r["server_cpu_pct"],
                "%.3f" % r["server_cpu_pct_per_player"], "%.0f" % r["kbps_mean"],
                "%.3f" % r["loss_pct"], "%.3f" % r["worst_loss_pct"],
                "%.2f/%.2f/%.2f" % (r["latency_p50_ms"], r["latency_p99_ms"], r["latency_max_ms"]),
                "%.0f/%.0f/%.0f" % (r["connect_p50_ms"], r["connect_p99_ms"], r["connect_max_ms"]),
                "%.1f" % ((r["server_rss_kb"] - base) / max(r["at_start"], 1)),
                str(r["decrypt_failures"]), str(r["nacks"]),
                "%.1f" % r["gen_cpu_pct"], "%.0f" % r["gen_ns_per_datagram"],
                "%.1f" % r["server_core_other_pct"]])
w = [max(len(row[i]) for row in out) for i in range(len(hdr))]
for k, row in enumerate(out):
    print("  ".join(c.rjust(w[i]) for i, c in enumerate(row)))
    if k == 0:
        print("  ".join("-" * w[i] for i in range(len(hdr))))
print("ok: players with media at the window's start; lat: receive (kernel timestamp) minus the "
      "publisher's abs-send-time; connect: POST to first decrypted RTP; KiB/player: the server's "
      "RSS during the window over its RSS with the publisher only; gen ns/dgram: the generator's CPU "
      "per datagram received; other%: the server's core busy with anything but "
      "the server (above a few %, that step was disturbed)")
PY
exit $rc
