// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "mem.h"

int gmem_init(struct gmem *m, uint64_t size)
{
	int ret;

	m->fd = -1;
	m->base = NULL;
	m->used = 0;
	m->size = BENCH_ALIGN_UP(size, BENCH_PAGE_SIZE);
	if (m->size == 0)
		return -EINVAL;

	m->fd = memfd_create("vrio-bench-guest", MFD_CLOEXEC);
	if (m->fd < 0) {
		ret = -errno;
		bench_err("memfd_create: %m");
		return ret;
	}
	if (ftruncate(m->fd, (off_t)m->size) < 0) {
		ret = -errno;
		bench_err("guest memory of %llu bytes: %m", (unsigned long long)m->size);
		goto err_close;
	}
	/* Populated up front so that page faults do not show up as latency. */
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       m->fd, 0);
	if (m->base == MAP_FAILED) {
		ret = -errno;
		m->base = NULL;
		bench_err("mmap guest memory: %m");
		goto err_close;
	}
	return 0;

err_close:
	close(m->fd);
	m->fd = -1;
	return ret;
}

void gmem_fini(struct gmem *m)
{
	if (m->base)
		munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->fd = -1;
}

int gmem_alloc(struct gmem *m, uint64_t size, uint64_t align, uint64_t *gpa)
{
	uint64_t start = BENCH_ALIGN_UP(m->used, align);

	if (start > m->size || size > m->size - start)
		return -ENOMEM;
	m->used = start + size;
	*gpa = start;
	return 0;
}
