/* SPDX-License-Identifier: BSD-3-Clause */
/* The dirty-region bitmap (regionmap.h). */
#include <errno.h>
#include <stdlib.h>

#include "regionmap.h"

int ios_regionmap_init(struct ios_regionmap *m, uint64_t bytes, unsigned shift)
{
	uint64_t words;

	m->words = NULL;
	if (bytes == 0 || shift < 9 || shift > 30)
		return -EINVAL;
	m->bytes = bytes;
	m->shift = shift;
	m->n = (bytes + (1ull << shift) - 1) >> shift;
	m->count = 0;
	words = (m->n + 63) / 64;
	m->words = calloc(words, sizeof(uint64_t));
	return m->words ? 0 : -ENOMEM;
}

void ios_regionmap_fini(struct ios_regionmap *m)
{
	free(m->words);
	m->words = NULL;
}

/* Sets bits [lo, hi] of one word; returns how many were clear. */
static unsigned set_bits(uint64_t *w, unsigned lo, unsigned hi)
{
	uint64_t mask = (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) & ~((1ull << lo) - 1);
	unsigned fresh = (unsigned)__builtin_popcountll(mask & ~*w);

	*w |= mask;
	return fresh;
}

uint64_t ios_regionmap_mark(struct ios_regionmap *m, uint64_t off, uint64_t len)
{
	uint64_t first, last, fresh = 0;

	if (len == 0 || off >= m->bytes)
		return 0;
	if (len > m->bytes - off)
		len = m->bytes - off;
	first = off >> m->shift;
	last = (off + len - 1) >> m->shift;
	while (first <= last) {
		uint64_t w = first / 64, end = w * 64 + 63 < last ? w * 64 + 63 : last;

		fresh += set_bits(&m->words[w], (unsigned)(first % 64), (unsigned)(end % 64));
		first = end + 1;
	}
	m->count += fresh;
	return fresh;
}

void ios_regionmap_mark_all(struct ios_regionmap *m)
{
	ios_regionmap_mark(m, 0, m->bytes);
}

bool ios_regionmap_test(const struct ios_regionmap *m, uint64_t region)
{
	return region < m->n && (m->words[region / 64] >> (region % 64)) & 1;
}

bool ios_regionmap_clear(struct ios_regionmap *m, uint64_t region)
{
	if (!ios_regionmap_test(m, region))
		return false;
	m->words[region / 64] &= ~(1ull << (region % 64));
	m->count--;
	return true;
}

/* The first set bit in [from, to), or IOS_REGION_NONE. */
static uint64_t scan(const struct ios_regionmap *m, uint64_t from, uint64_t to)
{
	uint64_t w, bits;

	while (from < to) {
		w = from / 64;
		bits = m->words[w] & (~0ull << (from % 64));
		if (bits) {
			from = w * 64 + (uint64_t)__builtin_ctzll(bits);
			return from < to ? from : IOS_REGION_NONE;
		}
		from = (w + 1) * 64;
	}
	return IOS_REGION_NONE;
}

uint64_t ios_regionmap_next(const struct ios_regionmap *m, uint64_t from)
{
	uint64_t r;

	if (m->count == 0)
		return IOS_REGION_NONE;
	if (from >= m->n)
		from = 0;
	r = scan(m, from, m->n);
	return r != IOS_REGION_NONE ? r : scan(m, 0, from);
}

uint64_t ios_regionmap_bytes(const struct ios_regionmap *m)
{
	uint64_t bytes = m->count << m->shift;

	/* The last region is short when the size is not a multiple. */
	if (ios_regionmap_test(m, m->n - 1))
		bytes -= (1ull << m->shift) - ios_region_len(m, m->n - 1);
	return bytes;
}
