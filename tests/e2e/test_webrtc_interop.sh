#!/usr/bin/env bash
# End-to-end WebRTC interop through Estuary with clients other than Chromium: Firefox ESR
# (puppeteer-core over WebDriver BiDi) and GStreamer's webrtcbin (tests/e2e/gst_client.py), each
# publishing to and playing from Chromium, plus audio-only and video-only streams, all asserting
# on decoded media. Runs inside a private network namespace. Firefox gathers no loopback ICE
# candidate, and none at all without a default route, so the namespace also gets a veth pair
# (both ends stay in it) with a TEST-NET-1 address and a default route to a gateway that does not
# exist: the clients and the server (webrtc.candidates ["*"] prefers it) meet on 192.0.2.1, and
# nothing can leave the namespace. Usage: tests/e2e/test_webrtc_interop.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
addr=192.0.2.1
if ! { ip link add es0 type veth peer name es1 &&
       ip addr add "$addr/24" dev es0 && ip link set es1 up && ip link set es0 up &&
       ip route add default via 192.0.2.254 dev es0; }; then
  echo "FAIL - cannot give the network namespace a veth pair with $addr and a default route"
  echo "0 passed, 1 failed"
  exit 1
fi
es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_webrtc_interop.mjs"
