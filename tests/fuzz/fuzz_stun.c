/* libFuzzer harness for STUN input (src/webrtc/ice.c): the ufrag peek that routes datagrams and
 * the ICE-lite responder behind it. Invariants: a peeked ufrag is NUL-terminated, shorter than
 * the buffer and has no ':'; a response fits the buffer and is a STUN message; nothing that
 * fails validation nominates a pair. */
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

    es_ice_lite_t *ice = es_ice_lite_new("evtj", "VOkJxbRl1RmTxUk/WvJxBt", "h6vY");
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(4000),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    uint8_t out[512];
    int r = es_ice_lite_handle_stun(ice, 1, data, size, (struct sockaddr *)&from, sizeof from, out,
                                    sizeof out);
    if (r > (int)sizeof out) abort();
    if (r > 0 && (r < 20 || (out[0] & 0xc0))) abort();
    if (r < 0 && es_ice_lite_nominated(ice, NULL, NULL)) abort();
    es_ice_lite_free(ice);
    return 0;
}
