#!/usr/bin/env bash
# WHIP/WHEP signaling errors and resources over HTTP with curl (no media), inside a private
# network namespace: each error status with its reason, tokens, the session limit, Location and
# ETag, PATCH (trickle and ICE restart), DELETE, CORS preflight, and no leak at exit (ASan).
# Usage: tests/process/test_whip_errors.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
es_netns "$@"

bin=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)/estuary
sdp="$here/../unit/sdp"
work=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(es_free_port)
cat > "$work/estuary.yaml" <<YAML
http:
  listen: "127.0.0.1:$port"
webrtc:
  udp_listen: "127.0.0.1:$(es_free_port)"
  tcp_listen: "127.0.0.1:$(es_free_port)"
  candidates: ["127.0.0.1"]
rtmp:
  listen: ""
limits:
  max_sessions: 3
apps:
  live: {}
  secret:
    publish_token: "pub-token"
    play_token: "play-token"
YAML
(cd "$work" && exec "$bin" -c "$work/estuary.yaml") 2> "$work/estuary.log" &
pid=$!
es_wait_http "http://127.0.0.1:$port/api/v1/version" 10 || { echo "estuary did not start"; cat "$work/estuary.log"; exit 1; }
base="http://127.0.0.1:$port"

# post PATH FILE [CONTENT-TYPE [extra curl args...]] -> prints "STATUS BODY", headers in $work/h
post() {
  local path=$1 file=$2 ct=${3:-application/sdp}
  shift 3 2>/dev/null || shift $#
  curl -s -o "$work/body" -D "$work/h" -w '%{http_code}' -X POST -H "Content-Type: $ct" \
    --data-binary "@$file" "$@" "$base$path"
}
status_is() { [ "$1" = "$2" ] || { echo "  got $1, want $2: $(cat "$work/body")"; return 1; }; }
body_has() { grep -q -- "$1" "$work/body" || { echo "  body lacks '$1': $(cat "$work/body")"; return 1; }; }
header() { grep -i "^$1:" "$work/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

printf 'v=0\r\nthis is not sdp\r\n' > "$work/garbage.sdp"
: > "$work/empty.sdp"

s=$(post /whip/live/a "$sdp/chromium_whip_sendonly.sdp" text/plain)
check "wrong content type -> 415" status_is "$s" 415
check "415 names the expected type" body_has "application/sdp"
s=$(post /whip/live/a "$work/empty.sdp" application/sdp)
check "no SDP -> 400" status_is "$s" 400
s=$(post /whip/live/a "$work/garbage.sdp" application/sdp)
check "malformed SDP -> 400" status_is "$s" 400
check "400 says what is wrong with the SDP" body_has "SDP"
s=$(post /whip/live/a "$sdp/aiortc_nobundle.sdp" application/sdp)
check "offer without BUNDLE -> 400" status_is "$s" 400
check "the reason names BUNDLE" body_has "BUNDLE"
s=$(post /whep/live/nobody "$sdp/chromium_whep_recvonly.sdp" application/sdp)
check "WHEP on a stream nobody publishes -> 404" status_is "$s" 404
s=$(post /whip/other/a "$sdp/chromium_whip_sendonly.sdp" application/sdp)
check "WHIP to an app that is not configured -> 403" status_is "$s" 403

# A publisher (signaling only: no media ever arrives, which is fine for these checks).
s=$(post /whip/live/cam "$sdp/chromium_whip_sendonly.sdp" application/sdp)
check "WHIP offer -> 201" status_is "$s" 201
check "answer is application/sdp" sh -c "grep -qi '^content-type: application/sdp' '$work/h'"
loc=$(header location)
etag=$(header etag)
check "Location names the session resource with its secret" sh -c "echo '$loc' | grep -qE '^/whip/live/cam/[0-9a-f]{16}-[0-9a-f]{32}$'"
check "ETag is set" test -n "$etag"
check "answer is ice-lite, BUNDLE, passive DTLS, with a host candidate" sh -c \
  "grep -q 'a=ice-lite' '$work/body' && grep -q 'a=group:BUNDLE' '$work/body' && grep -q 'a=setup:passive' '$work/body' && grep -q 'typ host' '$work/body'"
cp "$work/body" "$work/answer.sdp"
s=$(post /whip/live/cam "$sdp/chromium_whip_sendonly.sdp" application/sdp)
check "second publisher on the same stream -> 409" status_is "$s" 409
s=$(post "/rtc/v1/whip/?app=live&stream=cam" "$sdp/chromium_whip_sendonly.sdp" application/sdp)
check "SRS path, same stream -> 409" status_is "$s" 409
s=$(post "/rtc/v1/whep/?app=live&stream=cam&eip=192.0.2.7:9999" "$sdp/chromium_whep_recvonly.sdp" application/sdp)
check "SRS WHEP path -> 201" status_is "$s" 201
check "?eip= replaces the host candidate" sh -c "grep -q '192.0.2.7 9999 typ host' '$work/body' && ! grep -q 'candidate:.*127.0.0.1' '$work/body'"
check "WHEP answer is sendonly with our SSRC" sh -c "grep -q 'a=sendonly' '$work/body' && grep -q 'a=ssrc:' '$work/body'"
whep_loc=$(header location)
s=$(post "/rtc/v1/whep/?app=live&stream=cam&eip=not-an-ip" "$sdp/chromium_whep_recvonly.sdp" application/sdp)
check "bad eip -> 400" status_is "$s" 400
s=$(post /whep/live/cam "$sdp/firefox_whep_recvonly.sdp" application/sdp)
check "Firefox WHEP offer -> 201 (third session)" status_is "$s" 201
s=$(post /whep/live/cam "$sdp/chromium_whep_recvonly.sdp" application/sdp)
check "past limits.max_sessions -> 503" status_is "$s" 503
n=$(curl -s "$base/api/v1/sessions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
check "the API lists 3 sessions" test "$n" = 3

# PATCH: trickle, If-Match, ICE restart.
printf 'a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n' \
  "$(grep -m1 '^a=ice-ufrag:' "$sdp/chromium_whip_sendonly.sdp" | cut -d: -f2 | tr -d '\r')" \
  "$(grep -m1 '^a=ice-pwd:' "$sdp/chromium_whip_sendonly.sdp" | cut -d: -f2 | tr -d '\r')" > "$work/trickle"
patch() { curl -s -o "$work/body" -D "$work/h" -w '%{http_code}' -X PATCH -H "Content-Type: ${2:-application/trickle-ice-sdpfrag}" "${@:3}" --data-binary "@$1" "$base$loc"; }
s=$(patch "$work/trickle")
check "PATCH with candidates -> 204" status_is "$s" 204
s=$(patch "$work/trickle" application/sdp)
check "PATCH with the wrong content type -> 415" status_is "$s" 415
s=$(patch "$work/trickle" application/trickle-ice-sdpfrag -H 'If-Match: "nope"')
check "PATCH with a stale If-Match -> 412" status_is "$s" 412
printf 'a=ice-ufrag:newufrag1\r\na=ice-pwd:newpasswordnewpasswordnew\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n' > "$work/restart"
s=$(patch "$work/restart" application/trickle-ice-sdpfrag -H "If-Match: $etag")
check "PATCH with new credentials (ICE restart) -> 200" status_is "$s" 200
check "the restart answer carries new credentials" sh -c "grep -q 'a=ice-ufrag:' '$work/body' && grep -q 'a=ice-pwd:' '$work/body'"
check "the ETag changed" test "$(header etag)" != "$etag"

# DELETE and the API.
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base$whep_loc")
check "DELETE the WHEP session -> 200" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base$whep_loc")
check "DELETE it again -> 404" test "$code" = 404
id=$(curl -s "$base/api/v1/sessions" | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin)["sessions"] if s["role"]=="player"][0])')
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base/api/v1/sessions/$id")
check "DELETE /api/v1/sessions/{id} kicks a player -> 200" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base$loc")
check "DELETE the WHIP session -> 200" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/streams/live/cam")
check "the stream is gone after its publisher left -> 404" test "$code" = 404
n=$(curl -s "$base/api/v1/sessions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
check "no sessions left" test "$n" = 0

# Tokens.
s=$(post /whip/secret/a "$sdp/chromium_whip_sendonly.sdp" application/sdp)
check "no token -> 401" status_is "$s" 401
s=$(post /whip/secret/a "$sdp/chromium_whip_sendonly.sdp" application/sdp -H "Authorization: Bearer wrong")
check "wrong token -> 403" status_is "$s" 403
s=$(post /whip/secret/a "$sdp/chromium_whip_sendonly.sdp" application/sdp -H "Authorization: Bearer play-token")
check "the play token does not publish -> 403" status_is "$s" 403
s=$(post /whip/secret/a "$sdp/chromium_whip_sendonly.sdp" application/sdp -H "Authorization: Bearer pub-token")
check "the publish token publishes -> 201" status_is "$s" 201
sloc=$(header location)
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer pub-token" "${base}${sloc%-*}-00000000000000000000000000000000")
check "DELETE with the token but a wrong secret -> 404" test "$code" = 404
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer pub-token" "${base}${sloc%-*}")
check "DELETE with the token but without the secret -> 404" test "$code" = 404
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base$sloc")
check "DELETE of the Location (the secret is the capability, as the token was for the POST) -> 200" test "$code" = 200

# CORS preflight for a WHIP POST from another origin.
curl -s -o /dev/null -D "$work/h" -X OPTIONS -H "Origin: http://example.test" \
  -H "Access-Control-Request-Method: POST" -H "Access-Control-Request-Headers: authorization, content-type" \
  "$base/whip/live/cam"
check "preflight allows POST with Authorization" sh -c "grep -qi '^access-control-allow-methods:.*POST' '$work/h' && grep -qi '^access-control-allow-headers:.*authorization' '$work/h'"
check "Location and ETag are exposed to scripts" sh -c "grep -qi 'access-control-expose-headers:.*location.*etag' '$work/h' || curl -s -D - -o /dev/null '$base/api/v1/version' | grep -qi 'expose-headers:.*Location, ETag'"

kill -TERM $pid; wait $pid; src=$?
check "server exits 0 on SIGTERM" test "$src" -eq 0
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$work/estuary.log'"
check "refusals are logged with their reason" grep -q "admission: .*whip publish refused (already exists): stream live/cam is already being published" "$work/estuary.log"
es_summary || { tail -40 "$work/estuary.log"; exit 1; }
