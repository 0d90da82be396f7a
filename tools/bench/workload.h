/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Access patterns, data patterns and the verification map.
 *
 * The region under test is nblocks blocks of bs bytes starting at byte
 * offset on the disk. Every write gives its block a new 32-bit generation
 * tag; the block's content is a function of (data seed, sector LBA, tag),
 * with LBA and tag in each sector's first bytes so that a sector found in
 * the wrong place is recognised. tags[block] holds the expected tag, 0 for
 * a block we never wrote (not checked).
 */
#ifndef VRIO_BENCH_WORKLOAD_H
#define VRIO_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rw_mode {
	RW_READ,
	RW_WRITE,
	RW_RANDREAD,
	RW_RANDWRITE,
	RW_RANDRW,
};

#define SECTOR_MAGIC 0x4f495256u /* "VRIO" */

struct workload {
	enum rw_mode mode;
	uint32_t bs;
	uint64_t offset;
	uint64_t nblocks;
	uint64_t data_seed;
	uint64_t rng;
	uint64_t seq_next;
	uint32_t *tags;		/* NULL when nothing is tracked */
	uint64_t *busy;		/* bitmap of blocks with a request in flight */
};

struct check_counts {
	uint64_t written;
	uint64_t matched;
	uint64_t mismatched;
	uint64_t unwritten;
};

int rw_mode_parse(const char *s, enum rw_mode *mode);
const char *rw_mode_name(enum rw_mode mode);
bool rw_mode_writes(enum rw_mode mode);

int workload_init(struct workload *w, enum rw_mode mode, uint32_t bs, uint64_t offset,
		  uint64_t nblocks, uint64_t seed, bool track);
void workload_fini(struct workload *w);

uint64_t workload_rand(struct workload *w);
/* Pick the next operation on a block that has nothing in flight, and claim it. */
int workload_next(struct workload *w, uint64_t *block, bool *write);
void workload_release(struct workload *w, uint64_t block);
bool workload_busy(const struct workload *w, uint64_t block);

static inline uint64_t workload_block_lba(const struct workload *w, uint64_t block)
{
	return (w->offset + block * w->bs) / 512u;
}

uint32_t workload_next_tag(const struct workload *w, uint64_t block);
void workload_fill(const struct workload *w, uint64_t block, uint32_t tag, void *buf);
/* 0 if buf holds what (block, tag) should; -EILSEQ with a reason otherwise. */
int workload_verify(const struct workload *w, uint64_t block, uint32_t tag, const void *buf,
		    void *scratch, char *why, size_t whylen);

/*
 * Load the map into an initialised workload; the file's block size, offset
 * and block count must match. -ENOENT if there is no such file.
 */
int workload_state_load(struct workload *w, const char *path);
/* Initialise a workload from the state file alone (for --check-file). */
int workload_state_open(struct workload *w, const char *path);
int workload_state_save(const struct workload *w, const char *path);

/* Compare a backing file with the map; file_offset is where block 0 lies. */
int workload_check_file(const struct workload *w, const char *path, uint64_t file_offset,
			struct check_counts *c, bool zero_unwritten, bool quiet);

#endif
