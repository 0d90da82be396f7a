// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "blkdrv.h"
#include "run.h"

#define HEALTH_PERIOD_NS 1000000ull
#define WAIT_MAX_MS 100
#define PRINT_MAX 10u
#define DISCONNECT_WATCH_MS 100u
/* Header, one data buffer, status. */
#define DESCS_PER_REQ 3u

struct slot {
	struct blk_req req;
	unsigned int queue;
	uint16_t head;
	uint16_t avail_pos;	/* its place in the avail ring */
	bool inflight;
	bool write;
	uint32_t type;
	uint32_t tag;		/* written tag, or the tag a read expects (0: unchecked) */
	uint64_t block;
	uint64_t submit_ns;
};

struct run_ctx {
	const struct run_opts *o;
	struct run_result *res;
	struct blkdev dev;
	struct workload wl;
	struct slot *slots;
	unsigned int nslots;
	unsigned int *idle;
	unsigned int nidle;
	unsigned int inflight;
	bool *touched;
	struct pollfd *pfds;
	uint8_t *scratch;
	uint64_t submitted;
	uint64_t count;		/* 0: until the deadline */
	uint64_t deadline_ns;
	uint64_t t0_ns;			/* the run's start, for windows */
	uint64_t window_ns;
	unsigned int max_windows;
	uint64_t last_health_ns;
	uint64_t timeout_ns;
	uint64_t printed;
	bool tracking;
	bool fatal;
	bool ran;
};

void run_opts_init(struct run_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->rw = RW_RANDREAD;
	o->bs = 4096;
	o->iodepth = 1;
	o->queues = 1;
	o->queue_size = 256;
	o->seed = 1;
	o->timeout_ms = 10000;
	o->spin_ns = RUN_SPIN_NS_DEFAULT;
}

static bool run_may_submit(const struct run_ctx *r, uint64_t now)
{
	if (r->fatal || *r->o->stop)
		return false;
	if (r->count && r->submitted >= r->count)
		return false;
	if (r->deadline_ns && now >= r->deadline_ns)
		return false;
	return true;
}

/* Rate-limited, since a failing device would otherwise flood the terminal. */
static bool run_may_print(struct run_ctx *r)
{
	if (r->printed == PRINT_MAX)
		bench_err("further request errors are not shown");
	return ++r->printed <= PRINT_MAX;
}

static void run_submit(struct run_ctx *r)
{
	unsigned int q;

	while (r->nidle && run_may_submit(r, bench_now_ns())) {
		struct slot *s = &r->slots[r->idle[r->nidle - 1]];
		uint64_t block;
		bool write;
		int head;

		if (workload_next(&r->wl, &block, &write) < 0)
			break;
		r->nidle--;
		s->block = block;
		s->write = write;
		s->type = write ? BLK_T_OUT : BLK_T_IN;
		if (write) {
			s->tag = workload_next_tag(&r->wl, block);
			if (r->tracking)
				workload_fill(&r->wl, block, s->tag, s->req.data);
		} else {
			s->tag = r->wl.tags ? r->wl.tags[block] : 0;
		}
		s->submit_ns = bench_now_ns();
		head = blk_req_submit(&r->dev.v.vqs[s->queue], &s->req, s->type,
				      workload_block_lba(&r->wl, block), r->wl.bs, s);
		if (head < 0) {
			/* Slots never outnumber what the ring holds. */
			bench_err("queue %u: no room for a request: %s", s->queue, strerror(-head));
			workload_release(&r->wl, block);
			r->idle[r->nidle++] = (unsigned int)(s - r->slots);
			r->fatal = true;
			r->res->device_error = true;
			break;
		}
		s->head = (uint16_t)head;
		s->avail_pos = (uint16_t)(r->dev.v.vqs[s->queue].avail_idx - 1);
		s->inflight = true;
		r->inflight++;
		r->submitted++;
		r->touched[s->queue] = true;
	}

	for (q = 0; q < r->dev.v.nq; q++) {
		if (!r->touched[q])
			continue;
		r->touched[q] = false;
		virtq_publish(&r->dev.v.vqs[q]);
		if (virtq_kick(&r->dev.v.vqs[q]) < 0) {
			bench_err("queue %u: kick: %m", q);
			r->fatal = true;
		}
	}
}

/* A request done well, counted in its window. */
static void run_window(struct run_ctx *r, uint64_t now)
{
	uint64_t w;

	if (!r->window_ns || now < r->t0_ns)
		return;
	w = (now - r->t0_ns) / r->window_ns;
	if (w >= r->max_windows)
		return;
	r->res->win_ops[w]++;
	r->res->win_bytes[w] += r->wl.bs;
	if (w + 1 > r->res->n_windows)
		r->res->n_windows = (unsigned int)w + 1;
}

static void run_complete(struct run_ctx *r, struct slot *s, uint64_t now)
{
	uint8_t status = *s->req.status;
	char why[256];

	hist_add(&r->res->hist, now - s->submit_ns);
	s->inflight = false;
	r->inflight--;
	r->res->ops++;

	if (status != BLK_S_OK) {
		r->res->errors++;
		/* What a failed write left behind is unknown: stop checking it. */
		if (s->write && r->wl.tags)
			r->wl.tags[s->block] = 0;
		if (run_may_print(r))
			bench_err("queue %u head %u: %s sector %llu: status %u (%s)", s->queue,
				  s->head, blk_type_name(s->type),
				  (unsigned long long)workload_block_lba(&r->wl, s->block), status,
				  blk_status_name(status));
	} else if (s->write) {
		r->res->writes++;
		r->res->bytes += r->wl.bs;
		run_window(r, now);
		if (r->wl.tags)
			r->wl.tags[s->block] = s->tag;
	} else {
		r->res->reads++;
		r->res->bytes += r->wl.bs;
		run_window(r, now);
		if (r->o->verify && s->tag) {
			if (workload_verify(&r->wl, s->block, s->tag, s->req.data, r->scratch, why,
					    sizeof(why))) {
				r->res->verify_failures++;
				if (run_may_print(r))
					bench_err("verify: queue %u block %llu (sector %llu): %s",
						  s->queue, (unsigned long long)s->block,
						  (unsigned long long)workload_block_lba(&r->wl,
											 s->block),
						  why);
			} else {
				r->res->verified++;
			}
		}
	}
	workload_release(&r->wl, s->block);
	r->idle[r->nidle++] = (unsigned int)(s - r->slots);
}

/* As a guest with strict unmaps does: once a request is done, its data
 * buffer leaves the vIOMMU, which waits for the backend to let go of it. */
static void run_unmap(struct run_ctx *r, void *cookie)
{
	struct slot *s = cookie;

	if (s->type == BLK_T_FLUSH)
		return;
	if (vu_iotlb(&r->dev.v.vu, VU_IOTLB_INVALIDATE,
		     vudev_addr(&r->dev.v, s->req.data_gpa), s->req.data_cap, 0, 0) < 0) {
		r->fatal = true;
		r->res->device_error = true;
	}
}

static unsigned int run_reap(struct run_ctx *r)
{
	uint64_t now = bench_now_ns();
	unsigned int q, n = 0;

	for (q = 0; q < r->dev.v.nq; q++) {
		struct virtq *vq = &r->dev.v.vqs[q];
		void *cookie;
		uint32_t len;
		int ret;

		while ((ret = virtq_get_used(vq, &cookie, &len)) == 0) {
			run_complete(r, cookie, now);
			n++;
			if (r->o->iommu_unmap)
				run_unmap(r, cookie);
		}
		if (ret != -EAGAIN) {
			r->fatal = true;
			r->res->device_error = true;
		}
	}
	return n;
}

static unsigned int run_reap(struct run_ctx *r);

/* The backend hung up: what it answered before is in the used ring; what
 * is left is either behind the used index (taken and never answered: lost
 * to a frontend that restores the ring from it) or after it. */
static void run_disconnected(struct run_ctx *r)
{
	struct timespec ms = { 0, 1000000 };
	unsigned int i, n;

	run_reap(r);
	n = r->inflight;
	/* A backend that still works on them after it hung up (it wrote used
	 * entries behind the frontend's back): watch for a while. */
	for (i = 0; i < DISCONNECT_WATCH_MS; i++) {
		nanosleep(&ms, NULL);
		run_reap(r);
	}
	r->res->answered_after_disconnect = n - r->inflight;
	for (i = 0; i < r->nslots; i++) {
		const struct slot *s = &r->slots[i];
		const struct virtq *vq = &r->dev.v.vqs[s->queue];

		if (!s->inflight)
			continue;
		r->res->inflight_at_disconnect++;
		if ((uint16_t)(s->avail_pos - vq->last_used) >= 0x8000)
			r->res->lost_on_restore++;
	}
}

/*
 * --reconnect: the backend hung up. What it answered is in the used ring
 * (reaped as usual); what it took and did not answer is in the inflight
 * region, which the next backend reads and sends again; what it never
 * took is still in the avail ring. So once connected again, nothing to
 * do but wait: every request in flight completes once. Its latency
 * includes the wait for the new backend, as a guest's would.
 */
static void run_reconnect(struct run_ctx *r)
{
	int ret;

	run_reap(r);
	if (!r->o->quiet)
		fprintf(stderr, "vrio-bench: %s: backend hung up with %u request(s) in flight; reconnecting\n",
			r->o->socket, r->inflight);
	ret = vudev_reconnect(&r->dev.v, r->o->timeout_ms);
	if (ret < 0) {
		bench_err("%s: reconnecting failed: %s", r->o->socket, strerror(-ret));
		r->res->disconnected = true;
		r->fatal = true;
		return;
	}
	r->res->reconnects++;
	r->pfds[r->dev.v.nq].fd = r->dev.v.vu.fd;
}

static void run_check_health(struct run_ctx *r, uint64_t now)
{
	unsigned int i, late = 0;
	int ret;

	if (now - r->last_health_ns < HEALTH_PERIOD_NS)
		return;
	r->last_health_ns = now;

	for (i = 0; i < r->nslots; i++) {
		struct slot *s = &r->slots[i];

		if (!s->inflight || now - s->submit_ns < r->timeout_ns)
			continue;
		if (!late++)
			bench_err("timeout: queue %u head %u (%s sector %llu) not completed within %d ms",
				  s->queue, s->head, blk_type_name(s->type),
				  s->type == BLK_T_FLUSH ? 0ull :
				  (unsigned long long)workload_block_lba(&r->wl, s->block),
				  r->o->timeout_ms);
	}
	if (late) {
		if (late > 1)
			bench_err("timeout: %u requests in all are late", late);
		r->res->timed_out = true;
		r->fatal = true;
		return;
	}

	ret = vu_check_peer(&r->dev.v.vu);
	if (ret == 1 && r->o->reconnect) {
		run_reconnect(r);
	} else if (ret == 1) {
		run_disconnected(r);
		bench_err("%s: backend closed the connection; %llu request(s) answered after the hang-up, %u left in flight (%llu of them behind the used index)",
			  r->o->socket, (unsigned long long)r->res->answered_after_disconnect,
			  r->inflight, (unsigned long long)r->res->lost_on_restore);
		r->res->disconnected = true;
		r->fatal = true;
	} else if (ret < 0) {
		bench_err("%s: backend sent an unsolicited message", r->o->socket);
		r->res->device_error = true;
		r->fatal = true;
	}
}

static bool run_any_pending(const struct run_ctx *r)
{
	unsigned int q;

	for (q = 0; q < r->dev.v.nq; q++)
		if (virtq_pending(&r->dev.v.vqs[q]))
			return true;
	return false;
}

/* Wait for a completion: spin briefly, then sleep on the call eventfds. */
static void run_wait(struct run_ctx *r)
{
	uint64_t start = bench_now_ns(), now = start;
	bool pending = false;
	unsigned int q;
	int ret;

	/* Playing the vIOMMU: the backend may be waiting on a miss. */
	if (r->dev.v.iommu && vudev_serve_iotlb(&r->dev.v) < 0) {
		bench_err("%s: the backend's IOTLB channel broke", r->o->socket);
		r->res->device_error = true;
		r->fatal = true;
		return;
	}
	if (r->o->poll) {
		run_check_health(r, now);
		return;
	}
	while (now - start < r->o->spin_ns) {
		if (run_any_pending(r))
			return;
		if (r->o->spin_keep)
			bench_cpu_relax();
		else
			sched_yield();
		now = bench_now_ns();
	}

	for (q = 0; q < r->dev.v.nq; q++)
		pending |= virtq_enable_cb(&r->dev.v.vqs[q]);
	if (!pending) {
		ret = poll(r->pfds, r->dev.v.nq + 2, WAIT_MAX_MS);
		if (ret < 0 && errno != EINTR) {
			bench_err("poll: %m");
			r->fatal = true;
		}
		for (q = 0; ret > 0 && q < r->dev.v.nq; q++)
			if (r->pfds[q].revents & POLLIN)
				virtq_drain_call(&r->dev.v.vqs[q]);
		/* The socket is looked at by the health check below. */
		if (ret > 0 && r->pfds[r->dev.v.nq].revents)
			r->last_health_ns = 0;
	}
	for (q = 0; q < r->dev.v.nq; q++)
		virtq_disable_cb(&r->dev.v.vqs[q]);
	run_check_health(r, bench_now_ns());
}

static void run_loop(struct run_ctx *r)
{
	for (;;) {
		unsigned int n;

		if (run_may_submit(r, bench_now_ns()))
			run_submit(r);
		n = run_reap(r);
		/* Also while others complete: one stuck request must not go unseen. */
		run_check_health(r, bench_now_ns());
		if (r->fatal)
			break;
		if (!r->inflight && !run_may_submit(r, bench_now_ns()))
			break;
		if (n || !r->inflight)
			continue;
		run_wait(r);
		if (r->fatal)
			break;
	}
}

/* One FLUSH on queue 0 after writes, so the data is stable when we report. */
static void run_flush(struct run_ctx *r)
{
	struct slot *s = NULL;
	unsigned int i;
	void *cookie;
	uint32_t len;
	int ret;

	for (i = 0; i < r->nslots && !s; i++)
		if (r->slots[i].queue == 0 && !r->slots[i].inflight)
			s = &r->slots[i];
	if (!s)
		return;
	s->type = BLK_T_FLUSH;
	s->write = false;
	s->submit_ns = bench_now_ns();
	ret = blk_req_submit(&r->dev.v.vqs[0], &s->req, BLK_T_FLUSH, 0, 0, s);
	if (ret < 0)
		return;
	s->head = (uint16_t)ret;
	s->inflight = true;
	virtq_publish(&r->dev.v.vqs[0]);
	virtq_kick(&r->dev.v.vqs[0]);

	while (!r->fatal) {
		ret = virtq_get_used(&r->dev.v.vqs[0], &cookie, &len);
		if (ret == 0)
			break;
		if (ret != -EAGAIN) {
			r->res->device_error = true;
			r->fatal = true;
			return;
		}
		run_wait(r);
	}
	if (r->fatal)
		return;
	s->inflight = false;
	r->res->flushes++;
	if (*s->req.status != BLK_S_OK) {
		r->res->errors++;
		bench_err("queue 0 head %u: FLUSH: status %u (%s)", s->head, *s->req.status,
			  blk_status_name(*s->req.status));
	}
}

static double tv_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static int run_setup(struct run_ctx *r)
{
	const struct run_opts *o = r->o;
	struct blkdev_opts bo = {
		.socket = o->socket, .timeout_ms = o->timeout_ms, .quiet = o->quiet,
		.features_off = o->no_event_idx ? BIT64(VIRTIO_RING_F_EVENT_IDX) : 0,
		.iommu = o->iommu, .reconnect = o->reconnect,
	};
	uint64_t cap, size, nblocks, extra, per_queue;
	unsigned int nq, depth, i;
	uint32_t blk;
	int ret;

	ret = blkdev_connect(&r->dev, &bo);
	if (ret < 0)
		return ret;

	if (rw_mode_writes(o->rw) && blkdev_has(&r->dev, VIRTIO_BLK_F_RO)) {
		bench_err("%s: device is read-only, --rw %s writes", o->socket,
			  rw_mode_name(o->rw));
		return -EROFS;
	}
	blk = blkdev_has(&r->dev, VIRTIO_BLK_F_BLK_SIZE) ? r->dev.cfg.blk_size : 512;
	if (o->bs % blk || o->offset % blk) {
		bench_err("--bs and --offset must be multiples of the device block size %u", blk);
		return -EINVAL;
	}
	cap = blkdev_capacity_bytes(&r->dev);
	if (o->offset >= cap) {
		bench_err("--offset %llu is beyond the capacity of %llu bytes",
			  (unsigned long long)o->offset, (unsigned long long)cap);
		return -EINVAL;
	}
	size = o->size ? o->size : cap - o->offset;
	if (size > cap - o->offset) {
		bench_err("--offset + --size go beyond the capacity of %llu bytes",
			  (unsigned long long)cap);
		return -EINVAL;
	}
	nblocks = size / o->bs;
	if (!nblocks) {
		bench_err("the region holds no block of %u bytes", o->bs);
		return -EINVAL;
	}

	nq = o->queues < r->dev.v.max_queues ? o->queues : r->dev.v.max_queues;
	if (nq < o->queues && !o->quiet)
		bench_err("device has %u queues: using %u instead of %u", r->dev.v.max_queues, nq,
			  o->queues);
	per_queue = o->queue_size / DESCS_PER_REQ;
	depth = o->iodepth;
	if (depth > nq * per_queue)
		depth = (unsigned int)(nq * per_queue);
	/* A free block must always exist, or two requests would share one. */
	if (depth > nblocks)
		depth = (unsigned int)nblocks;
	if (depth < o->iodepth && !o->quiet)
		bench_err("iodepth capped at %u (%u queues of %u, %llu blocks)", depth, nq,
			  o->queue_size, (unsigned long long)nblocks);
	r->res->iodepth = depth;
	/* Neither a count nor a runtime: one pass over the region. */
	r->count = o->count || o->runtime > 0 ? o->count : nblocks;
	r->res->queues = nq;

	r->tracking = o->verify || o->state;
	ret = workload_init(&r->wl, o->rw, o->bs, o->offset, nblocks, o->seed, r->tracking);
	if (ret < 0)
		return ret;
	if (o->state) {
		ret = workload_state_load(&r->wl, o->state);
		if (ret == -ENOENT) {
			if (!o->quiet)
				bench_err("%s: no state yet, starting a new map", o->state);
		} else if (ret < 0) {
			return ret;
		}
	}

	extra = (uint64_t)depth * (BENCH_ALIGN_UP(o->bs, BENCH_PAGE_SIZE) + BENCH_PAGE_SIZE);
	ret = blkdev_start(&r->dev, nq, (uint16_t)o->queue_size, extra);
	if (ret < 0)
		return ret;

	r->nslots = depth;
	r->slots = calloc(depth, sizeof(*r->slots));
	r->idle = calloc(depth, sizeof(*r->idle));
	r->touched = calloc(nq, sizeof(*r->touched));
	r->pfds = calloc(nq + 2, sizeof(*r->pfds));
	r->scratch = malloc(o->bs);
	if (!r->slots || !r->idle || !r->touched || !r->pfds || !r->scratch)
		return -ENOMEM;
	for (i = 0; i < depth; i++) {
		struct slot *s = &r->slots[i];

		ret = blk_req_alloc(&r->dev, &s->req, o->bs);
		if (ret < 0)
			return ret;
		s->queue = i % nq;
		if (rw_mode_writes(o->rw) && !r->tracking)
			workload_fill(&r->wl, 0, 1, s->req.data);
	}
	/* Popped from the end: slot 0 (queue 0) goes first. */
	for (i = 0; i < depth; i++)
		r->idle[r->nidle++] = depth - 1 - i;
	for (i = 0; i < nq; i++)
		r->pfds[i] = (struct pollfd){ .fd = r->dev.v.vqs[i].call_fd, .events = POLLIN };
	r->pfds[nq] = (struct pollfd){ .fd = r->dev.v.vu.fd, .events = POLLIN };
	/* -1 (ignored by poll) unless the backend has a channel to us. */
	r->pfds[nq + 1] = (struct pollfd){ .fd = r->dev.v.slave_fd, .events = POLLIN };
	r->timeout_ns = (uint64_t)o->timeout_ms * 1000000ull;
	return 0;
}

static void run_teardown(struct run_ctx *r)
{
	unsigned int i;

	if (r->wl.tags) {
		/* A write still in flight may or may not have landed. */
		for (i = 0; i < r->nslots; i++)
			if (r->slots[i].inflight && r->slots[i].write)
				r->wl.tags[r->slots[i].block] = 0;
		if (r->o->state && r->ran)
			workload_state_save(&r->wl, r->o->state);
	}
	for (i = 0; i < r->dev.v.nq; i++) {
		r->res->kicks += r->dev.v.vqs[i].kicks;
		r->res->calls += r->dev.v.vqs[i].calls;
	}
	blkdev_stop(&r->dev, r->inflight == 0);
	blkdev_close(&r->dev);
	workload_fini(&r->wl);
	free(r->slots);
	free(r->idle);
	free(r->touched);
	free(r->pfds);
	free(r->scratch);
}

void run_result_fini(struct run_result *res)
{
	free(res->win_ops);
	free(res->win_bytes);
	res->win_ops = res->win_bytes = NULL;
	res->n_windows = 0;
}

int run_bench(const struct run_opts *o, struct run_result *res)
{
	struct run_ctx r = { .o = o, .res = res };
	struct rusage ru0, ru1;
	uint64_t t0, t1;
	int ret;

	memset(res, 0, sizeof(*res));
	hist_init(&res->hist);

	ret = run_setup(&r);
	if (ret < 0) {
		run_teardown(&r);
		return ret;
	}
	r.ran = true;

	if (o->window_ms) {
		r.window_ns = (uint64_t)o->window_ms * 1000000ull;
		r.max_windows = o->runtime > 0 ?
			(unsigned int)(o->runtime * 1000.0 / o->window_ms) + 2 : 100000;
		res->win_ops = calloc(r.max_windows, sizeof(*res->win_ops));
		res->win_bytes = calloc(r.max_windows, sizeof(*res->win_bytes));
		if (!res->win_ops || !res->win_bytes) {
			run_teardown(&r);
			return -ENOMEM;
		}
	}
	getrusage(RUSAGE_SELF, &ru0);
	t0 = bench_now_ns();
	r.t0_ns = t0;
	if (o->runtime > 0)
		r.deadline_ns = t0 + (uint64_t)(o->runtime * 1e9);
	run_loop(&r);
	t1 = bench_now_ns();
	if (!r.fatal && res->writes && blkdev_has(&r.dev, VIRTIO_BLK_F_FLUSH))
		run_flush(&r);
	getrusage(RUSAGE_SELF, &ru1);

	res->elapsed_s = (double)(t1 - t0) / 1e9;
	res->cpu_user_s = tv_seconds(&ru1.ru_utime) - tv_seconds(&ru0.ru_utime);
	res->cpu_sys_s = tv_seconds(&ru1.ru_stime) - tv_seconds(&ru0.ru_stime);
	res->interrupted = *o->stop;
	run_teardown(&r);
	return 0;
}
