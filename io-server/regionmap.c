/* SPDX-License-Identifier: BSD-3-Clause */
/* The dirty-region bitmap (regionmap.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "regionmap.h"

int ios_regionmap_init(struct ios_regionmap *m, uint64_t bytes, unsigned shift)
{
	m->words = NULL;
	m->touched = NULL;
	if (bytes == 0 || shift < 9 || shift > 30)
		return -EINVAL;
	m->bytes = bytes;
	m->shift = shift;
	m->n = (bytes + (1ull << shift) - 1) >> shift;
	m->count = 0;
	m->n_words = (m->n + 63) / 64;
	m->n_touched = 0;
	m->spilled = false;
	if (m->n_words > UINT32_MAX)
		return -EINVAL;
	m->words = calloc(m->n_words, sizeof(uint64_t));
	m->touched = malloc(m->n_words * sizeof(uint32_t));
	if (!m->words || !m->touched) {
		ios_regionmap_fini(m);
		return -ENOMEM;
	}
	return 0;
}

void ios_regionmap_fini(struct ios_regionmap *m)
{
	free(m->words);
	free(m->touched);
	m->words = NULL;
	m->touched = NULL;
}

/* Word w is about to get bits: list it if it has none. */
static void touch(struct ios_regionmap *m, uint64_t w)
{
	if (m->words[w])
		return;
	if (m->n_touched < m->n_words)
		m->touched[m->n_touched++] = (uint32_t)w;
	else
		m->spilled = true;
}

/* Sets the bits of mask in word w; returns how many were clear. */
static unsigned set_bits(struct ios_regionmap *m, uint64_t w, uint64_t mask)
{
	unsigned fresh = (unsigned)__builtin_popcountll(mask & ~m->words[w]);

	touch(m, w);
	m->words[w] |= mask;
	return fresh;
}

/* Bits [lo, hi] of a word. */
static uint64_t bit_range(unsigned lo, unsigned hi)
{
	return (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) & ~((1ull << lo) - 1);
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

		fresh += set_bits(m, w, bit_range((unsigned)(first % 64), (unsigned)(end % 64)));
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

void ios_regionmap_reset(struct ios_regionmap *m)
{
	if (m->spilled)
		memset(m->words, 0, m->n_words * sizeof(uint64_t));
	else
		for (uint64_t i = 0; i < m->n_touched; i++)
			m->words[m->touched[i]] = 0;
	m->n_touched = 0;
	m->spilled = false;
	m->count = 0;
}

int64_t ios_regionmap_merge(struct ios_regionmap *dst, const struct ios_regionmap *src)
{
	uint64_t fresh = 0, n, w;

	if (dst->n != src->n || dst->shift != src->shift)
		return -EINVAL;
	if (!src->count)
		return 0;
	n = src->spilled ? src->n_words : src->n_touched;
	for (uint64_t i = 0; i < n; i++) {
		w = src->spilled ? i : src->touched[i];
		if (src->words[w])
			fresh += set_bits(dst, w, src->words[w]);
	}
	dst->count += fresh;
	return (int64_t)fresh;
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
