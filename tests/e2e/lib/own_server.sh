# Sourced by end-to-end scripts that need more than tests/e2e/lib/with_server.sh gives: a server
# listening on every address (so that a second network namespace can reach it), several servers
# one after another, or the server log read from bash. Call inside the private namespace made by
# es_netns (tests/lib/common.sh).
#
#   es_peer_netns         a second network namespace joined to this one by a veth pair: es0 here
#                         with 192.0.2.1/24, es1 there with 192.0.2.2/24 (TEST-NET-1, no route
#                         anywhere else); held by a `sleep` process whose id is ES_PEER_PID;
#                         ES_PEER_NS is its /proc/PID/ns/net path (for `nsenter --net=`)
#   es_peer CMD...        runs CMD in that namespace
#   es_peer_stop          ends the holder process (the namespace and the veth pair go with it)
#   es_gateway_veth       gives this namespace 192.0.2.1 on a veth pair whose both ends stay here
#                         and a default route to 192.0.2.254, which does not exist (Firefox
#                         gathers no ICE candidates without a default route; nothing leaves);
#                         prints a FAIL line and returns non-zero when it cannot
#   es_server_start BUILD_DIR
#                         starts BUILD_DIR/estuary on free ports with HTTP and RTMP on
#                         ES_LISTEN_IP (default 127.0.0.1) and WebRTC UDP on 0.0.0.0 with
#                         candidates ES_CANDIDATES (default ["*"]); ES_EXTRA_YAML, ES_RTMP_YAML,
#                         ES_HLS_YAML and ES_LOG_LEVEL as in with_server.sh, ES_WEBRTC_YAML
#                         likewise for the webrtc section. Exports ES_BASE
#                         (http://127.0.0.1:PORT), ES_PORT, ES_UDP, ES_TCP (ICE-TCP), ES_RTMP, ES_SERVER_LOG,
#                         ES_WORK, ES_SERVER_PID. Returns non-zero when it does not answer.
#   es_server_stop        SIGTERM; non-zero (and the log's tail) on a non-zero exit, an exit
#                         that takes more than 10 s, or a sanitizer report; ES_KEEP_LOG=FILE
#                         keeps a copy of the log.

es_peer_netns() {
  local self i
  self=$(readlink /proc/self/ns/net)
  unshare --net sleep "${ES_PEER_LIFETIME:-600}" &
  ES_PEER_PID=$!
  for ((i = 0; i < 50; i++)); do
    [ "$(readlink "/proc/$ES_PEER_PID/ns/net" 2>/dev/null)" != "$self" ] && break
    sleep 0.05
  done
  ES_PEER_NS=/proc/$ES_PEER_PID/ns/net
  export ES_PEER_PID ES_PEER_NS
  ip link add es0 type veth peer name es1 &&
    ip link set es1 netns "$ES_PEER_PID" &&
    ip addr add 192.0.2.1/24 dev es0 && ip link set es0 up &&
    nsenter --net="$ES_PEER_NS" sh -c 'ip link set lo up && ip addr add 192.0.2.2/24 dev es1 &&
                                       ip link set es1 up'
}

es_gateway_veth() {
  ip link add es0 type veth peer name es1 && ip addr add 192.0.2.1/24 dev es0 &&
    ip link set es1 up && ip link set es0 up && ip route add default via 192.0.2.254 dev es0 && return 0
  echo "FAIL - cannot give the network namespace a veth pair with 192.0.2.1 and a default route"
  return 1
}

es_peer() { nsenter --net="$ES_PEER_NS" "$@"; }

es_peer_stop() {
  [ -n "${ES_PEER_PID:-}" ] && kill "$ES_PEER_PID" 2>/dev/null && wait "$ES_PEER_PID" 2>/dev/null
  ES_PEER_PID=
  return 0
}

es_server_start() {
  local bin ip=${ES_LISTEN_IP:-127.0.0.1} cands='["*"]'
  [ -n "${ES_CANDIDATES:-}" ] && cands=$ES_CANDIDATES
  bin=$(cd "${1:?usage: es_server_start BUILD_DIR}" && pwd)/estuary
  ES_WORK=$(mktemp -d)
  ES_PORT=$(es_free_port)
  ES_UDP=$(es_free_port)
  ES_TCP=$(es_free_port)
  ES_RTMP=$(es_free_port)
  cat > "$ES_WORK/estuary.yaml" <<YAML
log:
  level: ${ES_LOG_LEVEL:-debug}
http:
  listen: "$ip:$ES_PORT"
webrtc:
  udp_listen: "0.0.0.0:$ES_UDP"
  tcp_listen: "0.0.0.0:$ES_TCP"
  candidates: $cands
${ES_WEBRTC_YAML:-}
rtmp:
  listen: "$ip:$ES_RTMP"
  handshake_timeout_ms: 2000
${ES_RTMP_YAML:-}
hls:
  directory: "$ES_WORK/hls"
${ES_HLS_YAML:-  cleanup_ms: 0}
${ES_EXTRA_YAML:-}
YAML
  ES_SERVER_LOG=$ES_WORK/estuary.log
  (cd "$ES_WORK" && exec "$bin" -c "$ES_WORK/estuary.yaml") 2> "$ES_SERVER_LOG" &
  ES_SERVER_PID=$!
  ES_BASE=http://127.0.0.1:$ES_PORT
  export ES_WORK ES_PORT ES_UDP ES_TCP ES_RTMP ES_SERVER_LOG ES_SERVER_PID ES_BASE
  if ! es_wait_http "$ES_BASE/api/v1/version" 15; then
    echo "FAIL - estuary did not start"
    cat "$ES_SERVER_LOG"
    kill -9 "$ES_SERVER_PID" 2>/dev/null
    wait "$ES_SERVER_PID" 2>/dev/null
    rm -rf "$ES_WORK"
    ES_SERVER_PID=
    return 1
  fi
}

es_server_stop() {
  local rc=0 src i
  [ -n "${ES_SERVER_PID:-}" ] || return 0
  kill -TERM "$ES_SERVER_PID" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$ES_SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$ES_SERVER_PID" 2>/dev/null; then
    echo "FAIL - estuary did not exit within 10 s of SIGTERM"
    kill -9 "$ES_SERVER_PID" 2>/dev/null
    rc=1
  fi
  wait "$ES_SERVER_PID"
  src=$?
  if [ $src -ne 0 ] || grep -qE 'Sanitizer|runtime error' "$ES_SERVER_LOG"; then
    echo "FAIL - server exit $src or sanitizer report:"
    grep -A30 -E 'Sanitizer|runtime error' "$ES_SERVER_LOG" | head -60
    rc=1
  fi
  if [ $rc -ne 0 ]; then
    echo "# server log (last 60 lines):"
    grep -v " DEBUG http: " "$ES_SERVER_LOG" | tail -60
  fi
  if [ -n "${ES_KEEP_LOG:-}" ]; then cp "$ES_SERVER_LOG" "$ES_KEEP_LOG" && echo "# server log kept in $ES_KEEP_LOG"; fi
  rm -rf "$ES_WORK"
  ES_SERVER_PID=
  return $rc
}
