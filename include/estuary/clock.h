/* Clocks. Only the I/O layer (net/, http/, main.c) reads them; protocol cores are handed `now`. */
#ifndef ESTUARY_CLOCK_H
#define ESTUARY_CLOCK_H

#include <stdint.h>

/* es_clock_now_us: CLOCK_MONOTONIC in µs since an arbitrary epoch; never goes backwards. */
uint64_t es_clock_now_us(void);

/* es_clock_wall_us: CLOCK_REALTIME in µs since the Unix epoch (for logs and NTP timestamps). */
uint64_t es_clock_wall_us(void);

#endif
