/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers shared by every vrio-bench file. */
#ifndef VRIO_BENCH_BENCH_H
#define VRIO_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define bench_err(fmt, ...) fprintf(stderr, "vrio-bench: " fmt "\n", ##__VA_ARGS__)

#define BENCH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BENCH_ALIGN_UP(x, a) ((((x) + (a) - 1) / (a)) * (a))
#define bench_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define BENCH_PAGE_SIZE 4096u
#define BENCH_SECTOR_SIZE 512u

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
