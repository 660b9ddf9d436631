/* Error codes shared by every Estuary module.
 *
 * Functions return int: 0 (or a count) on success, a negative ES_E* code on failure. Where a
 * person reads the error (configuration, SDP, HTTP answers) the function also fills a caller's
 * error buffer with what was wrong and where. */
#ifndef ESTUARY_ERROR_H
#define ESTUARY_ERROR_H

enum {
    ES_OK = 0,
    ES_ENOMEM = -1,  /* an allocation failed */
    ES_EINVAL = -2,  /* a caller passed an invalid argument, or a configuration value is wrong */
    ES_EPROTO = -3,  /* malformed input from the network */
    ES_EAGAIN = -4,  /* an incremental parser needs more bytes */
    ES_ENOENT = -5,  /* no such stream, session, route or file */
    ES_EEXIST = -6,  /* already exists (a stream already published, a duplicate key) */
    ES_ERANGE = -7,  /* a value is out of its allowed range */
    ES_EIO = -8,     /* an operating-system call failed; errno says why */
    ES_E2BIG = -9,   /* input larger than the configured limit */
    ES_EBUSY = -10,  /* at capacity */
    ES_ETIMEDOUT = -11, /* a timer expired: a handshake or a peer took too long */
    ES_EACCES = -12, /* not authorized: a missing or wrong token */
    ES_ENOTSUP = -13, /* nothing in common: no codec or direction both sides support */
    ES_ESTALE = -14, /* a precondition failed: the resource changed (an ETag that no longer matches) */
    ES_EAUTH = -15,  /* authentication required: no token was presented */
    ES_ELIMIT = -16, /* a per-client limit: too many sessions or requests from one address */
};

/* es_strerror: a short English description of an ES_E* code; never NULL, static storage. */
const char *es_strerror(int err);

#endif
