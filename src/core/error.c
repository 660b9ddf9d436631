/* Descriptions of the ES_E* codes (include/estuary/error.h). */
#include "estuary/error.h"

const char *es_strerror(int err)
{
    switch (err) {
    case ES_OK: return "success";
    case ES_ENOMEM: return "out of memory";
    case ES_EINVAL: return "invalid argument";
    case ES_EPROTO: return "malformed input";
    case ES_EAGAIN: return "need more data";
    case ES_ENOENT: return "not found";
    case ES_EEXIST: return "already exists";
    case ES_ERANGE: return "out of range";
    case ES_EIO: return "I/O error";
    case ES_E2BIG: return "too large";
    case ES_EBUSY: return "at capacity";
    case ES_ETIMEDOUT: return "timed out";
    case ES_EACCES: return "not authorized";
    case ES_ENOTSUP: return "not supported";
    case ES_ESTALE: return "precondition failed";
    case ES_EAUTH: return "authentication required";
    case ES_ELIMIT: return "too many from this address";
    default: return "unknown error";
    }
}
