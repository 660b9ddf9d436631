#!/usr/bin/env bash
# Installs what Estuary needs to build, run and test on Debian 12 (bookworm): the Debian packages
# listed below and the npm packages of the browser tests, from the committed package-lock.json.
# Idempotent: packages already installed are not touched, and `apt-get update` runs at most once
# (only when something is missing). Needs root, or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, CMake, pkg-config and the -dev packages found by CMakeLists.txt (libcurl for
# the HTTP hooks of admission).
build_pkgs=(build-essential cmake pkg-config
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libssl-dev libyaml-dev libjansson-dev
  libnice-dev libsrtp2-dev libavcodec-dev libswresample-dev libavutil-dev libopus-dev
  libavformat-dev libcurl4-openssl-dev)
# Tests: cmocka unit tests, clang's libFuzzer for the fuzz harnesses, curl and iproute2 for the
# process tests (unshare --net + ip link), Node for the browser tests, Chromium as the browser,
# aiortc as an independent WebRTC stack, ffmpeg/ffprobe to decode what clients receive, and
# rtmpdump as a librtmp client (the FP9 handshake OBS uses); Firefox ESR (driven over WebDriver
# BiDi by puppeteer-core) and GStreamer's webrtcbin from Python (GObject introspection, with the
# GstWebRTC/GstSdp typelibs, libnice's ICE elements and the VP8/Opus elements) as further
# independent WebRTC clients for the interop test; nftables to drop UDP inside the test's own
# network namespace (WebRTC over TCP).
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev curl openssl iproute2 util-linux procps python3
  nftables
  chromium python3-aiortc python3-numpy ffmpeg rtmpdump
  firefox-esr python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-nice)
# Node: Debian's nodejs and npm, unless a node with npm is already on the PATH (some images ship
# NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  test_pkgs+=(nodejs npm)
fi

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Browser-test packages (playwright-core drives Debian's /usr/bin/chromium, puppeteer-core its
# /usr/bin/firefox-esr; neither downloads a browser).
if [ -f tests/e2e/package-lock.json ]; then
  if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/puppeteer-core ] ||
     [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]; then
    echo "bootstrap: npm ci in tests/e2e"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
