/* libFuzzer harness for STUN input (src/webrtc/ice.c): the ufrag peek that routes datagrams and
 * the ICE agent behind it (either role, one check of ours outstanding). Invariants: a peeked
 * ufrag is NUL-terminated, shorter than the buffer and has no ':'; a reply fits the buffer and
 * is a STUN message; nothing that fails validation reports a request or response; only a
 * response to our one check matches it. */
#include "estuary/ice.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ufrag[64];
    int n = es_stun_peek_ufrag(data, size, ufrag, sizeof ufrag);
    if (n >= 0 && ((size_t)n >= sizeof ufrag || ufrag[n] != '\0' || strchr(ufrag, ':'))) abort();

    es_ice_params_t prm = {.local_ufrag = "evtj", .local_pwd = "VOkJxbRl1RmTxUk/WvJxBt",
                           .remote_ufrag = "h6vY", .remote_pwd = "remote-password-0123456789",
                           .controlling = size % 2 == 1};
    es_ice_t *ice = es_ice_new(&prm);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(4000),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    uint8_t out[ES_ICE_MSG_MAX], txid[ES_ICE_TXID_LEN];
    /* One check outstanding, so that a response can match something. */
    if (es_ice_check_create(ice, false, 1, out, sizeof out, txid) <= 0) abort();
    es_ice_msg_t msg;
    int r = es_ice_handle_stun(ice, data, size, (struct sockaddr *)&from, sizeof from, out,
                               sizeof out, &msg);
    if (r > (int)sizeof out) abort();
    if (r > 0 && (r < 20 || (out[0] & 0xc0))) abort();
    if (r < 0 && msg.kind != ES_ICE_MSG_OTHER) abort();
    if (msg.kind != ES_ICE_MSG_REQUEST && msg.use_candidate) abort();
    if ((msg.kind == ES_ICE_MSG_SUCCESS || msg.kind == ES_ICE_MSG_ERROR) &&
        memcmp(msg.txid, txid, sizeof txid))
        abort(); /* only a response to our one check can validate */
    es_ice_free(ice);
    return 0;
}
