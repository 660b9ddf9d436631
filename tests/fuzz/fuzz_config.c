/* libFuzzer harness for the YAML configuration loader (src/config). Invariants beyond "no crash":
 * a failure always comes with an error line that names the input, a success with a usable
 * configuration (at least one candidate, an HTTP listener, a UDP port) that diffs equal to
 * itself. */
#include "estuary/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ES_CONFIG_ERR_MAX];
    es_config_t *c = es_config_load_string((const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (!c) {
        if (strncmp(err, "fuzz.yaml", 9) != 0) abort(); /* every error names the file */
        return 0;
    }
    if (c->webrtc.n_candidates == 0 || !c->webrtc.udp_listen.enabled) abort();
    if (!c->http.listen.enabled && !c->http.https_listen.enabled) abort();
    if (es_config_diff(c, c, false, NULL, 0) != 0) abort();
    for (size_t i = 0; i < c->n_apps; i++)
        if (!c->apps[i].name || !*c->apps[i].name) abort();
    es_config_free(c);
    return 0;
}
