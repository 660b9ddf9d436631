/* Generic NACK bookkeeping (RFC 4585 §6.2.1), sans-IO: the receiver side that decides which
 * sequence numbers to NACK and when, and the sender side's history of sent packets that answers
 * them (RFC 4588 retransmission). Fixed arrays only: nothing is allocated per packet. */
#include "estuary/nack.h"

#include "estuary/error.h"

#include <stdlib.h>
#include <string.h>

#define NACK_MIN_INTERVAL_US 20000u  /* retries no closer than this, even on a tiny RTT */
#define NACK_DEFAULT_RTT_US 100000u

/* One missing packet. Sequence numbers are extended (unwrapped) so that ordering and age are
 * plain comparisons across the 65535 -> 0 wrap. */
typedef struct nack_entry {
    int64_t ext;
    uint64_t due_us;          /* next (re)NACK is due at this time */
    uint32_t retries;         /* NACKs sent so far */
} nack_entry_t;

struct es_nack_gen {
    bool started;
    int64_t highest;          /* extended sequence number of the newest packet */
    uint64_t rtt_us;
    size_t n;                 /* entries[0..n) sorted by ext, ascending */
    nack_entry_t entries[ES_NACK_MAX_MISSING];
};

es_nack_gen_t *es_nack_gen_new(void)
{
    es_nack_gen_t *g = calloc(1, sizeof *g);
    if (g) g->rtt_us = NACK_DEFAULT_RTT_US;
    return g;
}

void es_nack_gen_free(es_nack_gen_t *g) { free(g); }

void es_nack_gen_set_rtt(es_nack_gen_t *g, uint64_t rtt_us) { g->rtt_us = rtt_us; }

static uint64_t retry_interval(const es_nack_gen_t *g)
{
    return g->rtt_us > NACK_MIN_INTERVAL_US ? g->rtt_us : NACK_MIN_INTERVAL_US;
}

static void drop_front(es_nack_gen_t *g, size_t k)
{
    if (k > g->n) k = g->n;
    memmove(g->entries, g->entries + k, (g->n - k) * sizeof g->entries[0]);
    g->n -= k;
}

/* Gives up the entries more than ES_NACK_MAX_AGE behind the newest packet (they are sorted, so
 * they are at the front). */
static void drop_old(es_nack_gen_t *g)
{
    size_t k = 0;
    while (k < g->n && g->highest - g->entries[k].ext > ES_NACK_MAX_AGE) k++;
    drop_front(g, k);
}

/* Binary search for ext; returns its index or g->n. */
static size_t find(const es_nack_gen_t *g, int64_t ext)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->entries[mid].ext < ext)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n && g->entries[lo].ext == ext ? lo : g->n;
}

bool es_nack_gen_on_packet(es_nack_gen_t *g, uint16_t seq, uint64_t now_us)
{
    if (!g->started) {
        g->started = true;
        g->highest = seq;
        return false;
    }
    int64_t diff = (int16_t)(uint16_t)(seq - (uint16_t)g->highest);
    int64_t ext = g->highest + diff;
    if (diff > ES_NACK_MAX_AGE || diff < -ES_NACK_MAX_AGE) {
        /* A new publisher or a sender restart: start over, NACK nothing. */
        g->n = 0;
        g->highest = ext;
        return false;
    }
    if (diff <= 0) {
        size_t i = find(g, ext);
        if (i == g->n) return false; /* a duplicate, or given up already */
        memmove(g->entries + i, g->entries + i + 1, (g->n - i - 1) * sizeof g->entries[0]);
        g->n--;
        return true;
    }
    /* highest+1 .. ext-1 went missing; only the newest ES_NACK_MAX_MISSING can be kept. */
    int64_t first = g->highest + 1;
    size_t gap = (size_t)(ext - first);
    if (gap > ES_NACK_MAX_MISSING) {
        first = ext - ES_NACK_MAX_MISSING;
        gap = ES_NACK_MAX_MISSING;
    }
    if (g->n + gap > ES_NACK_MAX_MISSING) drop_front(g, g->n + gap - ES_NACK_MAX_MISSING);
    for (int64_t s = first; s < ext; s++)
        g->entries[g->n++] = (nack_entry_t){.ext = s, .due_us = now_us, .retries = 0};
    g->highest = ext;
    drop_old(g);
    return false;
}

size_t es_nack_gen_poll(es_nack_gen_t *g, uint64_t now_us, uint16_t *out, size_t max)
{
    drop_old(g);
    size_t written = 0, kept = 0;
    for (size_t i = 0; i < g->n; i++) {
        nack_entry_t e = g->entries[i];
        if (e.due_us <= now_us) {
            if (e.retries >= ES_NACK_MAX_RETRIES) continue; /* given up: not kept */
            if (written < max) {
                out[written++] = (uint16_t)e.ext;
                e.retries++;
                e.due_us = now_us + retry_interval(g);
            }
        }
        g->entries[kept++] = e;
    }
    g->n = kept;
    return written;
}

uint64_t es_nack_gen_next_timeout_us(const es_nack_gen_t *g)
{
    if (g->n == 0) return 0;
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < g->n; i++)
        if (g->entries[i].due_us < next) next = g->entries[i].due_us;
    return next ? next : 1; /* 0 means "nothing missing"; a gap found at time 0 is due at 1 */
}

size_t es_nack_gen_missing(const es_nack_gen_t *g) { return g->n; }

/* The sender's history: one contiguous buffer of slots × max_len bytes. */
typedef struct history_slot {
    bool used;
    uint16_t seq;
    size_t len;
} history_slot_t;

struct es_rtp_history {
    size_t slots, max_len;
    history_slot_t *meta;
    uint8_t *data;
};

es_rtp_history_t *es_rtp_history_new(size_t slots, size_t max_len)
{
    if (slots < 16 || slots > 4096 || (slots & (slots - 1)) || max_len == 0 || max_len > 65535)
        return NULL;
    es_rtp_history_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->slots = slots;
    h->max_len = max_len;
    h->meta = calloc(slots, sizeof *h->meta);
    h->data = malloc(slots * max_len);
    if (!h->meta || !h->data) {
        es_rtp_history_free(h);
        return NULL;
    }
    return h;
}

void es_rtp_history_free(es_rtp_history_t *h)
{
    if (!h) return;
    free(h->meta);
    free(h->data);
    free(h);
}

int es_rtp_history_put(es_rtp_history_t *h, uint16_t seq, const uint8_t *pkt, size_t len)
{
    if (len > h->max_len) return ES_E2BIG;
    size_t i = seq & (h->slots - 1);
    if (len) memcpy(h->data + i * h->max_len, pkt, len);
    h->meta[i] = (history_slot_t){.used = true, .seq = seq, .len = len};
    return 0;
}

const uint8_t *es_rtp_history_get(const es_rtp_history_t *h, uint16_t seq, size_t *len)
{
    size_t i = seq & (h->slots - 1);
    if (!h->meta[i].used || h->meta[i].seq != seq) return NULL;
    *len = h->meta[i].len;
    return h->data + i * h->max_len;
}
