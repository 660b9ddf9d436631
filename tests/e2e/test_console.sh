#!/usr/bin/env bash
# The operator console (web/console.html) in Chromium against a server with an admin token
# (api.token), an FFmpeg RTMP publisher, WHEP players in Chromium and an FFmpeg RTMP player,
# inside a private network namespace. See test_console.mjs. Usage: tests/e2e/test_console.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
. "$here/lib/with_server.sh"
es_netns "$@"
export CONSOLE_TOKEN=console-admin-$$
ES_LOG_LEVEL=${ES_LOG_LEVEL:-info} ES_NODE_TIMEOUT=${ES_NODE_TIMEOUT:-180} ES_EXTRA_YAML="api:
  token: \"$CONSOLE_TOKEN\"" es_run_with_server "${1:?usage: $0 BUILD_DIR}" "$here/test_console.mjs"
