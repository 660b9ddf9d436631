# Shared helpers for the shell-driven tests (process and end-to-end). Source it; do not run it.
#
#   es_netns "$@"        re-run the calling script inside a private network namespace whose only
#                        interface is loopback (unshare --net; needs root), once
#   es_free_port         print a free TCP+UDP port on 127.0.0.1
#   es_wait_http URL S   wait up to S seconds for URL to answer
#   check NAME CMD...    run CMD; count and print a pass or a failure
#   es_summary           print "N passed, N failed" and return non-zero on any failure

ES_PASSED=0
ES_FAILED=0

es_netns() {
  if [ -z "${ES_IN_NETNS:-}" ]; then
    exec unshare --net env ES_IN_NETNS=1 bash "$0" "$@"
  fi
  ip link set lo up
}

es_free_port() {
  python3 - <<'PY'
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}

es_wait_http() {
  local url=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 10; i++)); do
    curl -fs -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  return 1
}

check() {
  local name=$1
  shift
  if "$@"; then
    ES_PASSED=$((ES_PASSED + 1))
    echo "ok - $name"
  else
    ES_FAILED=$((ES_FAILED + 1))
    echo "FAIL - $name"
  fi
}

es_summary() {
  echo "$ES_PASSED passed, $ES_FAILED failed"
  [ "$ES_FAILED" -eq 0 ]
}
