/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest memory that vrio-bench shares with the backend: one memfd,
 * mapped MAP_SHARED, seen by the backend as a single region at guest
 * physical address 0. Guest-physical addresses are offsets into the memfd.
 */
#ifndef VRIO_BENCH_MEM_H
#define VRIO_BENCH_MEM_H

#include <stdint.h>

struct gmem {
	int fd;
	uint8_t *base;
	uint64_t size;
	uint64_t used;
};

int gmem_init(struct gmem *m, uint64_t size);
void gmem_fini(struct gmem *m);
int gmem_alloc(struct gmem *m, uint64_t size, uint64_t align, uint64_t *gpa);

static inline void *gmem_hva(const struct gmem *m, uint64_t gpa)
{
	return m->base + gpa;
}

#endif
