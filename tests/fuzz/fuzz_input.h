/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every harness shares: the libFuzzer entry points, and a cursor that
 * takes fixed-width little-endian fields off the input. Past the end of the
 * input every field reads as zero, so each input is a valid script however
 * short, and the fuzzer can grow it a field at a time.
 */
#ifndef VRIO_FUZZ_INPUT_H
#define VRIO_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The property each harness checks. Not assert(): it must hold in every
 * build type, and it names what broke before aborting, which libFuzzer
 * reports as a crash with the input saved.
 */
#define FUZZ_CHECK(cond, ...)                                                        \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__,  \
				__LINE__, #cond);                                    \
			fprintf(stderr, __VA_ARGS__);                                \
			fputc('\n', stderr);                                         \
			abort();                                                     \
		}                                                                    \
	} while (0)

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline size_t fuzz_left(const struct fuzz_in *in)
{
	return in->n;
}

/* Copies up to `len` bytes into dst, zero-fills the rest; returns how many
 * came from the input. */
static inline size_t fuzz_take(struct fuzz_in *in, void *dst, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	if (n)
		memcpy(dst, in->p, n);
	if (len > n)
		memset((uint8_t *)dst + n, 0, len - n);
	in->p += n;
	in->n -= n;
	return n;
}

static inline uint64_t fuzz_le(struct fuzz_in *in, unsigned bytes)
{
	uint8_t b[8];
	uint64_t v = 0;
	unsigned i;

	fuzz_take(in, b, bytes);
	for (i = 0; i < bytes; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	return (uint8_t)fuzz_le(in, 1);
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)fuzz_le(in, 2);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	return (uint32_t)fuzz_le(in, 4);
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	return fuzz_le(in, 8);
}

/* FNV-1a: tells whether bytes changed between two points in time. */
static inline uint64_t fuzz_hash(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#endif
