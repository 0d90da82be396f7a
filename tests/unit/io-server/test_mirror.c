/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mirror stage (stage_mirror.c) and its dirty-region bitmap
 * (regionmap.c). The bitmap is checked against tables of ranges; the
 * stage is driven by hand: a device with a real backend, the stage's
 * chain, requests submitted as dev_blk.c does, one reactor turned by the
 * test with an injected clock, and the file backend's fault switch (the
 * control socket's bdev_fault) to make the mirror fail and come back.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioserver_internal.h"
#include "regionmap.h"

/* ---- the bitmap ---- */

#define R64K 16u	/* shift of 64 KiB regions */

static void test_map_mark(void **state)
{
	static const struct {
		uint64_t off, len;
		uint64_t fresh;		/* regions newly set */
		uint64_t first, last;	/* the regions it must set */
	} cases[] = {
		{ 0, 512, 1, 0, 0 },			/* one sector */
		{ 0, 65536, 0, 0, 0 },			/* the same region again */
		{ 65536 - 512, 1024, 1, 0, 1 },		/* across a boundary */
		{ 3 * 65536, 65536, 1, 3, 3 },		/* exactly one region */
		{ 5 * 65536 - 1, 2, 2, 4, 5 },		/* one byte each side */
		{ 63 * 65536, 3 * 65536, 3, 63, 65 },	/* across a word of bits */
		{ 100 * 65536, 0, 0, 1, 0 },		/* nothing */
	};
	struct ios_regionmap m;
	uint64_t r;

	assert_int_equal(ios_regionmap_init(&m, 128ull << R64K, R64K), 0);
	assert_int_equal(m.n, 128);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ios_regionmap_mark(&m, cases[i].off, cases[i].len),
				 cases[i].fresh);
		for (r = cases[i].first; r <= cases[i].last; r++)
			assert_true(ios_regionmap_test(&m, r));
	}
	/* 0, 1, 3, 4, 5, 63, 64, 65 */
	assert_int_equal(m.count, 8);
	assert_false(ios_regionmap_test(&m, 2));
	assert_false(ios_regionmap_test(&m, 6));
	assert_false(ios_regionmap_test(&m, 62));
	assert_false(ios_regionmap_test(&m, 66));
	assert_int_equal(ios_regionmap_bytes(&m), 8ull << R64K);
	ios_regionmap_fini(&m);
}

static void test_map_edges(void **state)
{
	struct ios_regionmap m;

	/* 2.5 regions: the last one is half a region. */
	assert_int_equal(ios_regionmap_init(&m, 5ull << (R64K - 1), R64K), 0);
	assert_int_equal(m.n, 3);
	assert_int_equal(ios_region_len(&m, 2), 32768);
	/* Clipped at the end. */
	assert_int_equal(ios_regionmap_mark(&m, (2ull << R64K) + 512, 1ull << 30), 1);
	assert_int_equal(ios_regionmap_bytes(&m), 32768);
	assert_int_equal(ios_regionmap_mark(&m, 5ull << (R64K - 1), 512), 0);
	ios_regionmap_mark_all(&m);
	assert_int_equal(m.count, 3);
	assert_int_equal(ios_regionmap_bytes(&m), 5ull << (R64K - 1));
	assert_true(ios_regionmap_clear(&m, 1));
	assert_false(ios_regionmap_clear(&m, 1));
	assert_false(ios_regionmap_clear(&m, 3));	/* past the end */
	assert_int_equal(m.count, 2);
	ios_regionmap_fini(&m);

	assert_int_equal(ios_regionmap_init(&m, 0, R64K), -EINVAL);
	assert_int_equal(ios_regionmap_init(&m, 4096, 8), -EINVAL);
}

static void test_map_next(void **state)
{
	static const uint64_t set[] = { 2, 63, 64, 130, 199 };
	static const struct {
		uint64_t from, next;
	} cases[] = {
		{ 0, 2 }, { 2, 2 }, { 3, 63 }, { 64, 64 }, { 65, 130 },
		{ 131, 199 }, { 200, 2 } /* wraps */, { 1000, 2 } /* past the end */,
	};
	struct ios_regionmap m;
	uint64_t r, seen = 0;

	assert_int_equal(ios_regionmap_init(&m, 200ull << 12, 12), 0);
	assert_int_equal(ios_regionmap_next(&m, 0), IOS_REGION_NONE);
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		ios_regionmap_mark(&m, set[i] << 12, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(ios_regionmap_next(&m, cases[i].from), cases[i].next);
	/* Iterating as the copier does: each once, then none. */
	for (r = ios_regionmap_next(&m, 0); r != IOS_REGION_NONE;
	     r = ios_regionmap_next(&m, r + 1)) {
		assert_true(ios_regionmap_clear(&m, r));
		assert_int_equal(r, set[seen]);
		seen++;
	}
	assert_int_equal(seen, 5);
	assert_int_equal(m.count, 0);
	ios_regionmap_fini(&m);
}

/* Reset and merge cost what was set: a word cleared and set again is
 * listed twice, and a map whose list overflows is cleared in full. */
static void test_map_reset_merge(void **state)
{
	struct ios_regionmap a, b, one, other;

	assert_int_equal(ios_regionmap_init(&a, 200ull << R64K, R64K), 0);
	assert_int_equal(ios_regionmap_init(&b, 200ull << R64K, R64K), 0);
	ios_regionmap_mark(&a, 3ull << R64K, 2ull << R64K);		/* 3, 4 */
	ios_regionmap_mark(&a, 130ull << R64K, 1);			/* 130 */
	ios_regionmap_mark(&b, 4ull << R64K, 1);			/* 4 */
	ios_regionmap_mark(&b, 199ull << R64K, 1);			/* 199 */
	assert_int_equal(ios_regionmap_merge(&b, &a), 2);		/* 3, 130 */
	assert_int_equal(b.count, 4);
	assert_true(ios_regionmap_test(&b, 3) && ios_regionmap_test(&b, 130));
	assert_int_equal(a.count, 3);					/* src untouched */
	ios_regionmap_reset(&a);
	assert_int_equal(a.count, 0);
	assert_int_equal(ios_regionmap_next(&a, 0), IOS_REGION_NONE);
	for (uint64_t w = 0; w < a.n_words; w++)
		assert_int_equal(a.words[w], 0);
	/* Merging an empty map changes nothing. */
	assert_int_equal(ios_regionmap_merge(&b, &a), 0);
	assert_int_equal(b.count, 4);

	/* One word: cleared and set again, the list spills. */
	assert_int_equal(ios_regionmap_init(&one, 64ull << 12, 12), 0);
	ios_regionmap_mark(&one, 0, 1);
	assert_true(ios_regionmap_clear(&one, 0));
	ios_regionmap_mark(&one, 5ull << 12, 1);
	assert_true(one.spilled);
	ios_regionmap_reset(&one);
	assert_false(one.spilled);
	assert_int_equal(one.words[0], 0);
	/* Another geometry: refused. */
	assert_int_equal(ios_regionmap_init(&other, 64ull << 12, 13), 0);
	assert_int_equal(ios_regionmap_merge(&other, &one), -EINVAL);
	assert_int_equal(ios_regionmap_merge(&a, &one), -EINVAL);
	ios_regionmap_fini(&a);
	ios_regionmap_fini(&b);
	ios_regionmap_fini(&one);
	ios_regionmap_fini(&other);
}

/* ---- the stage ---- */

#define DEV_SIZE	(1u << 20)	/* 16 regions */
#define REGION		65536u
#define BLK		4096u

struct fixture {
	char dir[128], primary[192], mirror[192];
	struct ios_server srv;
	struct ios_reactor *r;
	struct ios_device *d;
	struct vrio_topo_device td;
	struct vrio_topo_stage ts;
	struct ios_bdev_chan *pch;	/* the device's channel */
	struct ios_stage *st;
	int mfd;			/* the mirror file, to read it back */
};

static uint64_t fake_ns;

static uint64_t fake_clock(void)
{
	return fake_ns;
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ios_bdev_register_builtin(), 0);
	snprintf(f->dir, sizeof(f->dir), "%s/vrio-mirror-XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->primary, sizeof(f->primary), "%s/primary.img", f->dir);
	snprintf(f->mirror, sizeof(f->mirror), "%s/mirror.img", f->dir);
	pthread_mutex_init(&f->srv.lock, NULL);
	assert_int_equal(ios_reactor_create(&f->srv, 0, &f->r), 0);
	fake_ns = 1000000000ull;
	f->r->clock = fake_clock;
	f->mfd = -1;

	f->td.name = (char *)"disk";
	f->td.type = VRIO_DEV_BLK;
	f->td.queues = 1;
	f->td.queue_size = 64;
	f->td.backend.kind = VRIO_BACKEND_FILE;
	f->td.backend.path = f->primary;
	f->td.backend.size = DEV_SIZE;
	f->ts.kind = VRIO_STAGE_MIRROR;
	f->ts.u.mirror.backend.kind = VRIO_BACKEND_FILE;
	f->ts.u.mirror.backend.path = f->mirror;
	f->td.stages = &f->ts;
	f->td.n_stages = 1;

	f->d = calloc(1, sizeof(*f->d));
	assert_non_null(f->d);
	f->d->ops = &ios_blk_dev_ops;
	f->d->srv = &f->srv;
	TAILQ_INIT(&f->d->parked_stages);
	snprintf(f->d->name, sizeof(f->d->name), "disk");
	f->d->max_outstanding = 64;
	*state = f;
	return 0;
}

/* Opens the device's backend and its channel (the device's side). */
static void open_device(struct fixture *f)
{
	assert_int_equal(ios_bdev_open(&f->td, &f->d->u.blk.bdev), 0);
	assert_int_equal(ios_bdev_chan_open(f->d->u.blk.bdev, 64, &f->pch), 0);
}

/* Builds and installs the chain; returns create's error. */
static int add_mirror(struct fixture *f, char *why, size_t n)
{
	struct ios_chain *c;
	int rc = ios_chain_build(f->d, &f->td, &c, why, n);

	if (rc < 0)
		return rc;
	ios_chain_commit(f->d, c);
	f->st = c->stages[0];
	f->d->home = f->r;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->d->chain) {
		ios_chain_unplace(f->d, f->r);
		ios_chain_put(f->d->chain);
	}
	if (f->pch)
		ios_bdev_chan_close(f->pch);
	if (f->d->u.blk.bdev)
		ios_bdev_close(f->d->u.blk.bdev);
	if (f->mfd >= 0)
		close(f->mfd);
	ios_reactor_destroy(f->r);
	pthread_mutex_destroy(&f->srv.lock);
	unlink(f->primary);
	unlink(f->mirror);
	rmdir(f->dir);
	free(f->d);
	free(f);
	return 0;
}

/* Requests, as dev_blk.c makes them. */

struct treq {
	struct ios_req req;
	bool done;
};

static struct fixture *cur;

static void t_finish(struct ios_req *req)
{
	container_of(req, struct treq, req)->done = true;
}

static void t_blk_done(struct ios_blk_req *b)
{
	ios_chain_finish(container_of(b, struct ios_req, u.blk), t_finish);
}

static void t_submit(struct ios_req *req)
{
	if (ios_blk_submit(&req->u.blk, cur->pch, req->buf) < 0)
		ios_chain_finish(req, t_finish);
}

static struct treq *req_new(struct fixture *f, enum ios_blk_op op, uint64_t off, uint32_t len,
			    uint8_t fill)
{
	struct treq *t = aligned_alloc(64, (sizeof(*t) + 63) & ~(size_t)63);
	struct ios_blk_req *b;

	assert_non_null(t);
	memset(t, 0, sizeof(*t));
	t->req.dev = f->d;
	t->req.cap = len ? len : BLK;
	assert_int_equal(posix_memalign((void **)&t->req.buf, 4096, t->req.cap), 0);
	memset(t->req.buf, fill, t->req.cap);
	b = &t->req.u.blk;
	b->op = op;
	b->status = VIRTIO_BLK_S_OK;
	b->backend = true;
	b->wcap = 1;
	b->sector = off / IOS_SECTOR_SIZE;
	b->len = op == IOS_BLK_OP_WRITE || op == IOS_BLK_OP_READ ? len : 0;
	if (op == IOS_BLK_OP_DISCARD || op == IOS_BLK_OP_WRITE_ZEROES) {
		b->nsegs = 1;
		b->segs[0].sector = off / IOS_SECTOR_SIZE;
		b->segs[0].num_sectors = len / IOS_SECTOR_SIZE;
	}
	b->done = t_blk_done;
	return t;
}

static void req_free(struct treq *t)
{
	free(t->req.buf);
	free(t);
}

static void start(struct fixture *f, struct treq *t)
{
	cur = f;
	ios_chain_start(f->d, &t->req, t_submit, t_finish);
}

/* One round: the reactor (the stage's poller) and the device's channel. */
static int step(struct fixture *f)
{
	int rc, work = ios_reactor_turn(f->r);

	rc = ios_bdev_poll(f->pch, 64);
	return work + (rc > 0 ? rc : 0);
}

static void step_reactor_only(struct fixture *f)
{
	ios_reactor_turn(f->r);
}

/* Steps until cond holds, for at most 5 s of real time. */
#define RUN_UNTIL(f, cond)                                                                  \
	do {                                                                               \
		struct timespec ts_ = { 0, 20000 };                                        \
		unsigned n_ = 0;                                                           \
		while (!(cond)) {                                                          \
			if (step(f) == 0)                                                  \
				nanosleep(&ts_, NULL);                                     \
			assert_true(++n_ < 250000);                                        \
		}                                                                          \
	} while (0)

static void do_req(struct fixture *f, enum ios_blk_op op, uint64_t off, uint32_t len,
		   uint8_t fill)
{
	struct treq *t = req_new(f, op, off, len, fill);

	start(f, t);
	RUN_UNTIL(f, t->done);
	assert_int_equal(t->req.u.blk.status, VIRTIO_BLK_S_OK);
	req_free(t);
}

static const char *state_of(struct fixture *f)
{
	static char buf[32];
	json_t *j = f->st->ops->status(f->st);

	assert_non_null(j);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(j, "state")));
	json_decref(j);
	return buf;
}

static uint64_t status_int(struct fixture *f, const char *key)
{
	json_t *j = f->st->ops->status(f->st);
	uint64_t v = (uint64_t)json_integer_value(json_object_get(j, key));

	json_decref(j);
	return v;
}

/* gauge index by name */
static double gauge(struct fixture *f, const char *name)
{
	for (unsigned i = 0; i < f->st->ops->n_gauges; i++)
		if (!strcmp(f->st->ops->gauges[i].name, name))
			return f->st->ops->gauge(f->st, i);
	fail_msg("no gauge %s", name);
	return -1;
}

static bool is_state(struct fixture *f, const char *s)
{
	return !strcmp(state_of(f), s);
}

/* The files, byte for byte (nothing in flight). */
static void assert_same(struct fixture *f)
{
	uint8_t *a = malloc(DEV_SIZE), *b = malloc(DEV_SIZE);
	int pfd = open(f->primary, O_RDONLY);

	assert_true(pfd >= 0);
	if (f->mfd < 0)
		f->mfd = open(f->mirror, O_RDONLY);
	assert_true(f->mfd >= 0);
	assert_int_equal(pread(pfd, a, DEV_SIZE, 0), DEV_SIZE);
	assert_int_equal(pread(f->mfd, b, DEV_SIZE, 0), DEV_SIZE);
	for (size_t i = 0; i < DEV_SIZE; i++)
		if (a[i] != b[i])
			fail_msg("primary and mirror differ at byte %zu: %02x vs %02x", i, a[i],
				 b[i]);
	close(pfd);
	free(a);
	free(b);
}

static uint8_t mirror_byte(struct fixture *f, uint64_t off)
{
	uint8_t v = 0;

	if (f->mfd < 0)
		f->mfd = open(f->mirror, O_RDONLY);
	assert_int_equal(pread(f->mfd, &v, 1, (off_t)off), 1);
	return v;
}

/* A device whose mirror starts in sync after its first full copy. */
static void up_and_synced(struct fixture *f)
{
	char why[256] = "";

	open_device(f);
	assert_int_equal(add_mirror(f, why, sizeof(why)), 0);
	/* A file backend may hold anything: a full copy first. */
	assert_string_equal(state_of(f), "resyncing");
	assert_int_equal(status_int(f, "dirty_bytes"), DEV_SIZE);
	do_req(f, IOS_BLK_OP_READ, 0, BLK, 0);	/* places the stage */
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total"), DEV_SIZE);
	assert_int_equal(status_int(f, "dirty_bytes"), 0);
	assert_same(f);
}

static void test_mirrored_writes(void **state)
{
	struct fixture *f = *state;
	struct treq *t;
	struct stat sb;

	up_and_synced(f);
	/* Created at the device's size. */
	assert_int_equal(stat(f->mirror, &sb), 0);
	assert_int_equal(sb.st_size, DEV_SIZE);

	do_req(f, IOS_BLK_OP_WRITE, 0, BLK, 0xa1);
	do_req(f, IOS_BLK_OP_WRITE, REGION - 512, 1024, 0xa2);
	do_req(f, IOS_BLK_OP_WRITE_ZEROES, 8 * REGION, 2 * REGION, 0);
	do_req(f, IOS_BLK_OP_DISCARD, 4 * REGION, REGION, 0);
	do_req(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	assert_int_equal(mirror_byte(f, 0), 0xa1);
	assert_int_equal(mirror_byte(f, REGION), 0xa2);
	assert_same(f);

	/* Held until the mirror is done too: with only the device's
	 * channel polled, the backend finishes and the request waits. */
	t = req_new(f, IOS_BLK_OP_WRITE, 2 * REGION, BLK, 0xa3);
	start(f, t);
	{
		struct timespec ts = { 0, 1000000 };

		for (int i = 0; i < 50; i++) {
			ios_bdev_poll(f->pch, 64);
			nanosleep(&ts, NULL);
		}
	}
	assert_false(t->done);
	RUN_UNTIL(f, t->done);
	assert_int_equal(mirror_byte(f, 2 * REGION), 0xa3);
	req_free(t);
	assert_string_equal(state_of(f), "ok");
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_errors_total"), 0);
}

/* Fails the mirror, writes, brings it back: only the dirty regions are
 * copied, and the copies end identical. */
static void test_degraded_and_resync(void **state)
{
	struct fixture *f = *state;
	uint64_t before;
	char why[64];

	up_and_synced(f);
	before = status_int(f, "resync_bytes_total");
	assert_int_equal(f->st->ops->fault(f->st, true), 0);

	/* The guest sees no error. */
	do_req(f, IOS_BLK_OP_WRITE, 0, BLK, 0xb1);
	assert_string_equal(state_of(f), "degraded");
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_degraded"), 1);
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_errors_total"), 1);
	assert_int_equal(status_int(f, "dirty_bytes"), REGION);
	/* Degraded: to the backend only, recorded. Across a boundary: two. */
	do_req(f, IOS_BLK_OP_WRITE, 3 * REGION - 512, 1024, 0xb2);
	do_req(f, IOS_BLK_OP_WRITE_ZEROES, 6 * REGION, REGION, 0);
	do_req(f, IOS_BLK_OP_DISCARD, 10 * REGION + 4096, 4096, 0);
	do_req(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	do_req(f, IOS_BLK_OP_READ, 0, BLK, 0);
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_resync_remaining_bytes"), 5 * REGION);
	/* No more errors: degraded writes do not try the mirror. */
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_errors_total"), 1);

	/* Still failing: the probe a second later fails too. */
	fake_ns += 1100000000ull;
	for (int i = 0; i < 100; i++)
		step(f);
	assert_string_equal(state_of(f), "degraded");

	/* Back: nothing happens before the next probe... */
	assert_int_equal(f->st->ops->fault(f->st, false), 0);
	for (int i = 0; i < 100; i++)
		step(f);
	assert_string_equal(state_of(f), "degraded");
	/* ...which finds it working and copies the five regions. */
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total") - before, 5 * REGION);
	assert_int_equal(status_int(f, "last_resync_bytes"), 5 * REGION);
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_degraded"), 0);
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_resync_remaining_bytes"), 0);
	assert_int_equal(mirror_byte(f, 0), 0xb1);
	assert_same(f);

	/* The same settings keep the stage (and its map); others replace it. */
	assert_int_equal(f->st->ops->retune(f->st, &f->ts, false), 0);
	{
		struct vrio_topo_stage other = f->ts;

		other.u.mirror.backend.direct = true;
		assert_int_equal(f->st->ops->retune(f->st, &other, false), -EPERM);
	}
	(void)why;
}

/* A reload that keeps a degraded mirror tries it at once; one before
 * it degraded does not make it probe early later. */
static void test_reload_probes(void **state)
{
	struct fixture *f = *state;

	up_and_synced(f);
	f->st->ops->reloaded(f->st);
	f->st->ops->fault(f->st, true);
	do_req(f, IOS_BLK_OP_WRITE, 7 * REGION, BLK, 0xc1);
	assert_string_equal(state_of(f), "degraded");
	f->st->ops->fault(f->st, false);
	for (int i = 0; i < 100; i++)
		step(f);
	assert_string_equal(state_of(f), "degraded");
	f->st->ops->reloaded(f->st);
	/* No time passes. */
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(mirror_byte(f, 7 * REGION), 0xc1);
	assert_same(f);
}

/* Degrades the mirror, dirties regions, and lets the probe succeed: the
 * next turn starts copies. */
static void degrade_dirty(struct fixture *f, const uint64_t *regions, size_t n, uint8_t fill)
{
	f->st->ops->fault(f->st, true);
	for (size_t i = 0; i < n; i++)
		do_req(f, IOS_BLK_OP_WRITE, regions[i] * REGION, BLK, fill);
	assert_string_equal(state_of(f), "degraded");
	f->st->ops->fault(f->st, false);
}

/* A guest write over a region being copied is held until the copy is
 * done, then reaches both: the mirror ends with the guest's data. */
static void test_write_during_copy(void **state)
{
	struct fixture *f = *state;
	static const uint64_t regions[] = { 1, 2, 3, 4, 5, 6 };
	struct treq *t;

	up_and_synced(f);
	degrade_dirty(f, regions, 6, 0xd1);
	fake_ns += 1100000000ull;
	/* Turn the reactor alone until the probe's read and write-back
	 * worked. */
	{
		struct timespec ts = { 0, 20000 };
		unsigned n = 0;

		while (!is_state(f, "resyncing")) {
			step_reactor_only(f);
			nanosleep(&ts, NULL);
			assert_true(++n < 100000);
		}
	}
	/* The turn that made it resyncing locked regions 1 to 4. */
	assert_true(f->st->st.delayed == 0);
	t = req_new(f, IOS_BLK_OP_WRITE, 1 * REGION + 8192, BLK, 0xd2);
	start(f, t);
	/* Held by the copy of region 1. */
	assert_int_equal(f->st->st.delayed, 1);
	RUN_UNTIL(f, t->done && is_state(f, "ok"));
	req_free(t);
	assert_int_equal(mirror_byte(f, 1 * REGION + 8192), 0xd2);
	assert_int_equal(mirror_byte(f, 1 * REGION), 0xd1);
	assert_same(f);
}

/* A copy waits for the writes already in flight over its region: one
 * that went to the backend only must not be overtaken by the copy's
 * read. The backend is a file, whose write lands only when its channel
 * is polled, which the test holds back. */
static void test_copy_waits_for_write(void **state)
{
	struct fixture *f = *state;
	static const uint64_t regions[] = { 9 };
	struct treq *t;

	up_and_synced(f);
	degrade_dirty(f, regions, 1, 0xe1);
	f->st->ops->fault(f->st, true);
	/* Degraded, in flight on the backend, not polled yet. */
	t = req_new(f, IOS_BLK_OP_WRITE, 9 * REGION + 4096, BLK, 0xe2);
	start(f, t);
	f->st->ops->fault(f->st, false);
	fake_ns += 1100000000ull;
	{
		struct timespec ts = { 0, 20000 };

		/* Probe, resync: the copy of region 9 locks it and waits. */
		for (int i = 0; i < 2000; i++) {
			step_reactor_only(f);
			nanosleep(&ts, NULL);
		}
	}
	assert_string_equal(state_of(f), "resyncing");
	assert_int_equal(status_int(f, "dirty_bytes"), REGION);	/* being copied */
	assert_false(t->done);
	RUN_UNTIL(f, t->done && is_state(f, "ok"));
	req_free(t);
	assert_int_equal(mirror_byte(f, 9 * REGION + 4096), 0xe2);
	assert_same(f);
}

/* It fails again during the resync: the regions not copied stay dirty,
 * and the next recovery finishes the job. */
static void test_fail_during_resync(void **state)
{
	struct fixture *f = *state;
	static const uint64_t regions[] = { 0, 2, 4, 6, 8, 10, 12, 14 };

	up_and_synced(f);
	degrade_dirty(f, regions, 8, 0xf1);
	fake_ns += 1100000000ull;
	{
		struct timespec ts = { 0, 20000 };
		unsigned n = 0;

		while (!is_state(f, "resyncing")) {
			step_reactor_only(f);
			nanosleep(&ts, NULL);
			assert_true(++n < 100000);
		}
	}
	f->st->ops->fault(f->st, true);
	RUN_UNTIL(f, is_state(f, "degraded"));
	assert_true(status_int(f, "dirty_bytes") > 0);
	assert_true(gauge(f, "vrio_ioserver_mirror_errors_total") >= 2);
	f->st->ops->fault(f->st, false);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_same(f);
}

/* The backend fails a write the mirror took: the mirror gets the
 * backend's bytes back, once the backend reads again. */
static void test_backend_fails(void **state)
{
	struct fixture *f = *state;
	struct treq *t;

	up_and_synced(f);
	do_req(f, IOS_BLK_OP_WRITE, 12 * REGION, BLK, 0x21);
	ios_bdev_set_fault(f->d->u.blk.bdev, true);
	t = req_new(f, IOS_BLK_OP_WRITE, 12 * REGION, BLK, 0x22);
	start(f, t);
	RUN_UNTIL(f, t->done);
	assert_int_equal(t->req.u.blk.status, VIRTIO_BLK_S_IOERR);
	req_free(t);
	/* The mirror is fine; the copy back waits for the backend. */
	assert_string_equal(state_of(f), "resyncing");
	for (int i = 0; i < 100; i++)
		step(f);
	assert_string_equal(state_of(f), "resyncing");
	assert_int_equal(status_int(f, "dirty_bytes"), REGION);
	ios_bdev_set_fault(f->d->u.blk.bdev, false);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(mirror_byte(f, 12 * REGION), 0x21);
	assert_same(f);
	assert_int_equal(gauge(f, "vrio_ioserver_mirror_errors_total"), 0);
}

/* What the mirror took since its last good flush may be lost when it
 * falls (its page cache): those regions are copied again; what a good
 * flush covered is not. `fall` is the request that meets the fault. */
static void fall_after_flush(struct fixture *f, enum ios_blk_op fall, uint64_t expect_dirty)
{
	uint64_t before;

	up_and_synced(f);
	before = status_int(f, "resync_bytes_total");
	do_req(f, IOS_BLK_OP_WRITE, 1 * REGION, BLK, 0x31);
	do_req(f, IOS_BLK_OP_WRITE, 2 * REGION, BLK, 0x32);
	do_req(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	do_req(f, IOS_BLK_OP_WRITE, 5 * REGION, BLK, 0x35);
	do_req(f, IOS_BLK_OP_DISCARD, 7 * REGION, REGION, 0);
	f->st->ops->fault(f->st, true);
	do_req(f, fall, 12 * REGION, fall == IOS_BLK_OP_WRITE ? BLK : 0, 0x3c);
	assert_string_equal(state_of(f), "degraded");
	assert_int_equal(status_int(f, "dirty_bytes"), expect_dirty);
	f->st->ops->fault(f->st, false);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total") - before, expect_dirty);
	assert_same(f);
}

/* A failed flush: 5 and 7 (1 and 2 were flushed). */
static void test_failed_flush(void **state)
{
	fall_after_flush(*state, IOS_BLK_OP_FLUSH, 2 * REGION);
}

/* A failed write: 5, 7 and the write's own 12. */
static void test_fall_unflushed(void **state)
{
	fall_after_flush(*state, IOS_BLK_OP_WRITE, 3 * REGION);
}

/* A write the mirror finishes after a flush went out is not covered by
 * it: the flush's success leaves it unflushed, and a fall recopies it. */
static void test_write_across_flush(void **state)
{
	struct fixture *f = *state;
	struct treq *w, *fl;

	up_and_synced(f);
	/* Both go out before either comes back. */
	w = req_new(f, IOS_BLK_OP_WRITE, 4 * REGION, BLK, 0x44);
	fl = req_new(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	start(f, w);
	start(f, fl);
	RUN_UNTIL(f, w->done && fl->done);
	assert_int_equal(fl->req.u.blk.status, VIRTIO_BLK_S_OK);
	req_free(w);
	req_free(fl);
	/* And one with no flush after it. */
	do_req(f, IOS_BLK_OP_WRITE, 6 * REGION, BLK, 0x46);
	f->st->ops->fault(f->st, true);
	do_req(f, IOS_BLK_OP_WRITE, 11 * REGION, BLK, 0x4b);
	assert_string_equal(state_of(f), "degraded");
	/* 4, 6 and 11. */
	assert_int_equal(status_int(f, "dirty_bytes"), 3 * REGION);
	f->st->ops->fault(f->st, false);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_same(f);

	/* Now flushed in turn: a fall finds nothing more to copy. */
	do_req(f, IOS_BLK_OP_WRITE, 4 * REGION, BLK, 0x54);
	do_req(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	f->st->ops->fault(f->st, true);
	do_req(f, IOS_BLK_OP_FLUSH, 0, 0, 0);
	assert_string_equal(state_of(f), "degraded");
	assert_int_equal(status_int(f, "dirty_bytes"), 0);
	f->st->ops->fault(f->st, false);
}

/* The device leaves the reactor: the stage closes its channels; the
 * next request opens them again. */
static void test_unplace(void **state)
{
	struct fixture *f = *state;

	up_and_synced(f);
	ios_chain_unplace(f->d, f->r);
	do_req(f, IOS_BLK_OP_WRITE, 5 * REGION, BLK, 0x5a);
	assert_int_equal(mirror_byte(f, 5 * REGION), 0x5a);
	assert_same(f);
}

/* A new mirror's full copy starts when the device is placed, with no
 * request from the guest. */
static void test_place_starts_copy(void **state)
{
	struct fixture *f = *state;
	char why[256] = "";

	open_device(f);
	assert_int_equal(add_mirror(f, why, sizeof(why)), 0);
	for (int i = 0; i < 100; i++)
		step(f);
	assert_int_equal(status_int(f, "resync_bytes_total"), 0);
	ios_chain_place(f->d, f->r);
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total"), DEV_SIZE);
	assert_int_equal(f->st->st.requests, 0);
	assert_same(f);
}

/* Degraded when it leaves a reactor: placed again (a move), it probes
 * and copies what is dirty, still with no request. */
static void test_place_after_move(void **state)
{
	struct fixture *f = *state;
	static const uint64_t regions[] = { 2, 9 };
	uint64_t before, requests;

	up_and_synced(f);
	degrade_dirty(f, regions, 2, 0x6b);
	before = status_int(f, "resync_bytes_total");
	requests = f->st->st.requests;
	ios_chain_unplace(f->d, f->r);
	ios_chain_place(f->d, f->r);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total") - before, 2 * REGION);
	assert_int_equal(f->st->st.requests, requests);
	assert_int_equal(mirror_byte(f, 9 * REGION), 0x6b);
	assert_same(f);
}

/* Sizes at create. */
static void test_sizes(void **state)
{
	struct fixture *f = *state;
	char why[256] = "";
	int fd;

	open_device(f);
	/* A ram mirror smaller than the device. */
	f->ts.u.mirror.backend.kind = VRIO_BACKEND_RAM;
	f->ts.u.mirror.backend.path = NULL;
	f->ts.u.mirror.backend.size = DEV_SIZE / 2;
	assert_int_equal(add_mirror(f, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "1048576"));
	assert_non_null(strstr(why, "524288"));
	/* A file that exists and is smaller: named, with both sizes. */
	f->ts.u.mirror.backend.kind = VRIO_BACKEND_FILE;
	f->ts.u.mirror.backend.path = f->mirror;
	f->ts.u.mirror.backend.size = 0;
	fd = open(f->mirror, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DEV_SIZE - 4096), 0);
	close(fd);
	why[0] = '\0';
	assert_int_equal(add_mirror(f, why, sizeof(why)), -ENOSPC);
	assert_non_null(strstr(why, f->mirror));
	assert_non_null(strstr(why, "1044480"));
	assert_non_null(strstr(why, "1048576"));
	/* A size smaller than the device's. */
	f->ts.u.mirror.backend.size = 4096;
	why[0] = '\0';
	assert_int_equal(add_mirror(f, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, f->mirror));
	assert_null(f->d->chain);
}

/* Ram on ram, on a device no guest has used: both are zeroes, no copy. */
static void test_ram_blank(void **state)
{
	struct fixture *f = *state;
	char why[256] = "";

	f->td.backend.kind = VRIO_BACKEND_RAM;
	f->td.backend.path = NULL;
	f->ts.u.mirror.backend.kind = VRIO_BACKEND_RAM;
	f->ts.u.mirror.backend.path = NULL;
	f->ts.u.mirror.backend.size = DEV_SIZE;
	open_device(f);
	assert_int_equal(add_mirror(f, why, sizeof(why)), 0);
	assert_string_equal(state_of(f), "ok");
	assert_int_equal(status_int(f, "dirty_bytes"), 0);
	do_req(f, IOS_BLK_OP_WRITE, 0, BLK, 0x11);
	/* The ram mirror fails and comes back like a file: 3 and 4, and 0,
	 * which it took but no flush covered. */
	f->st->ops->fault(f->st, true);
	do_req(f, IOS_BLK_OP_WRITE, 3 * REGION, 2 * REGION, 0x12);
	assert_string_equal(state_of(f), "degraded");
	assert_int_equal(status_int(f, "dirty_bytes"), 3 * REGION);
	f->st->ops->fault(f->st, false);
	fake_ns += 1100000000ull;
	RUN_UNTIL(f, is_state(f, "ok"));
	assert_int_equal(status_int(f, "resync_bytes_total"), 3 * REGION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_mark),
		cmocka_unit_test(test_map_edges),
		cmocka_unit_test(test_map_next),
		cmocka_unit_test(test_map_reset_merge),
		cmocka_unit_test_setup_teardown(test_mirrored_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_degraded_and_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_probes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_during_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_waits_for_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_during_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fall_unflushed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_across_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_place_starts_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_place_after_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ram_blank, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
