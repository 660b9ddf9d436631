/* libFuzzer harness for WebSocket signaling messages (es_ws_message_parse,
 * src/http/ws_message.c): the input is one message as a client sends it.
 *
 * Invariants: the return value is 0, ES_E2BIG (exactly when the input is over
 * ES_WS_MAX_MESSAGE bytes) or ES_EPROTO; a refusal says why in err (NUL-terminated inside
 * err) and leaves the message cleared; an accepted message has a known type, an offer or
 * answer carries a non-empty NUL-terminated SDP of sdp_len bytes with no NUL inside (at most
 * ES_SDP_MAX_TEXT) that the input contains as a JSON string, other types carry none; the
 * candidate text is NUL-terminated within its field; the same input parses the same way twice;
 * clearing twice is harmless. */
#include "estuary/error.h"
#include "estuary/sdp.h"
#include "estuary/ws_signal.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_ws_message_t m, again;
    char err[128], err2[128];
    memset(err, 'x', sizeof err);
    int rc = es_ws_message_parse((const char *)data, size, &m, err, sizeof err);
    int rc2 = es_ws_message_parse((const char *)data, size, &again, err2, sizeof err2);
    assert(rc == rc2);
    assert(rc == 0 || rc == ES_E2BIG || rc == ES_EPROTO);
    assert((rc == ES_E2BIG) == (size > ES_WS_MAX_MESSAGE));
    if (rc != 0) {
        assert(memchr(err, '\0', sizeof err) && err[0]);
        assert(m.type == 0 && m.sdp == NULL && m.sdp_len == 0);
        return 0;
    }
    assert(m.type == again.type && m.sdp_len == again.sdp_len);
    assert(memchr(m.candidate, '\0', sizeof m.candidate));
    switch (m.type) {
    case ES_WS_OFFER:
    case ES_WS_ANSWER:
        assert(m.sdp && m.sdp_len > 0 && m.sdp_len <= ES_SDP_MAX_TEXT);
        assert(strlen(m.sdp) == m.sdp_len);
        assert(!memcmp(m.sdp, again.sdp, m.sdp_len));
        break;
    case ES_WS_CANDIDATE:
    case ES_WS_PING:
    case ES_WS_PONG:
        assert(m.sdp == NULL && m.sdp_len == 0);
        break;
    default: assert(!"unknown type accepted");
    }
    assert(strcmp(es_ws_type_name(m.type), "?") != 0);
    es_ws_message_clear(&m);
    es_ws_message_clear(&m);
    es_ws_message_clear(&again);
    return 0;
}
