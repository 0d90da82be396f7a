/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A dirty-region bitmap: a device cut into regions of 2^shift bytes, one
 * bit each (the mirror stage's record of what it must copy again). Single
 * owner: no atomics; whoever publishes the count for other threads does so
 * itself.
 *
 * It also lists the words that became non-zero since the last reset, so
 * that emptying a map (reset) or adding it to another (merge) costs what
 * was set, not the device's size: the mirror does one of these at every
 * flush.
 */
#ifndef VRIO_IOSERVER_REGIONMAP_H
#define VRIO_IOSERVER_REGIONMAP_H

#include <stdbool.h>
#include <stdint.h>

#define IOS_REGION_NONE UINT64_MAX

struct ios_regionmap {
	uint64_t *words;
	uint32_t *touched;	/* words that went non-zero since the last reset */
	uint64_t n_words, n_touched;
	bool spilled;		/* touched overflowed (a word cleared, set again) */
	uint64_t bytes;		/* what it covers */
	uint64_t n;		/* regions: bytes rounded up to whole regions */
	uint64_t count;		/* regions set */
	unsigned shift;
};

/* -EINVAL (no bytes, shift out of 9..30, more than 2^32 words), -ENOMEM. */
int ios_regionmap_init(struct ios_regionmap *m, uint64_t bytes, unsigned shift);
void ios_regionmap_fini(struct ios_regionmap *m);

/* Sets every region that [off, off + len) touches (clipped to the map);
 * returns how many were clear before. */
uint64_t ios_regionmap_mark(struct ios_regionmap *m, uint64_t off, uint64_t len);
void ios_regionmap_mark_all(struct ios_regionmap *m);
bool ios_regionmap_test(const struct ios_regionmap *m, uint64_t region);
/* Returns whether it was set. */
bool ios_regionmap_clear(struct ios_regionmap *m, uint64_t region);
/* Clears every region. */
void ios_regionmap_reset(struct ios_regionmap *m);
/* Sets in dst every region set in src (the same geometry: -EINVAL);
 * returns how many were clear in dst before. */
int64_t ios_regionmap_merge(struct ios_regionmap *dst, const struct ios_regionmap *src);
/* The first set region at or after `from`, wrapping around to 0;
 * IOS_REGION_NONE when none is set. */
uint64_t ios_regionmap_next(const struct ios_regionmap *m, uint64_t from);

/* Where a region starts and how long it is (the last one may be short). */
static inline uint64_t ios_region_off(const struct ios_regionmap *m, uint64_t region)
{
	return region << m->shift;
}

static inline uint64_t ios_region_len(const struct ios_regionmap *m, uint64_t region)
{
	uint64_t off = region << m->shift, size = 1ull << m->shift;

	return m->bytes - off < size ? m->bytes - off : size;
}

/* Bytes the set regions cover. */
uint64_t ios_regionmap_bytes(const struct ios_regionmap *m);

#endif
