#!/usr/bin/env bash
# WebRTC over TCP (RFC 6544 passive candidates, RFC 4571 framing) with UDP to the server dropped
# by an nftables rule (iptables when nft is missing), inside a private network namespace whose
# veth pair (both ends stay here) gives the server and the browsers 192.0.2.1 and a default route
# to a gateway that does not exist (Firefox gathers no candidates without one); nothing leaves the
# namespace. See test_ice_tcp.mjs. Usage: tests/e2e/test_ice_tcp.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/own_server.sh"
es_netns "$@"
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
es_gateway_veth || { echo "0 passed, 1 failed"; exit 1; }
ES_LISTEN_IP=0.0.0.0 ES_CANDIDATES='["192.0.2.1"]' es_server_start "$build" || { echo "0 passed, 1 failed"; exit 1; }
timeout 420 node "$here/test_ice_tcp.mjs" "$ES_BASE" "$ES_UDP" "$ES_TCP" "$ES_PORT" "$ES_SERVER_LOG"
rc=$?
es_server_stop || rc=1
exit $rc
