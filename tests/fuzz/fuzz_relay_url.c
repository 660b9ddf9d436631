/* Fuzz harness for es_relay_url (a WCS request's uri, localStreamName and remoteStreamName, split
 * from the input at NUL bytes). Invariants: never reads or writes out of bounds; on success the
 * URL is NUL-terminated within the buffer, starts with the uri's http(s) scheme, has no blank or
 * control or non-ASCII byte, and for a base uri ends with /whip|whep/{app}/{stream}; on failure err says
 * why. */
#include "estuary/error.h"
#include "estuary/relay.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *uri = buf;
    const char *local = uri + strlen(uri) + 1;
    if (local > buf + size) local = buf + size + 1;
    const char *remote = local + strlen(local) + 1;
    if (remote > buf + size + 1) remote = buf + size + 2;
    char out[128], err[320];
    for (int dir = 0; dir < 2; dir++) {
        memset(out, 'x', sizeof out);
        int rc = es_relay_url((es_relay_dir_t)dir, uri, local, *remote ? remote : NULL, out,
                              sizeof out, err, sizeof err);
        if (rc == 0) {
            if (!memchr(out, '\0', sizeof out)) abort();
            if (strncasecmp(out, "http://", 7) && strncasecmp(out, "https://", 8)) abort();
            for (const char *p = out; *p; p++)
                if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) abort();
        } else {
            if (rc != ES_EINVAL || !memchr(err, '\0', sizeof err) || !err[0]) abort();
        }
    }
    free(buf);
    return 0;
}
