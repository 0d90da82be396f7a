/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mirror: a second backend that gets every write, discard, write-zeroes
 * and flush the device's backend gets; reads go to the backend only. A
 * request goes on to the backend as soon as its mirror io is queued, and
 * completes once both are done (whichever comes last lets it go).
 *
 * States (published for metrics and the control socket):
 *
 *   OK         every write goes to both.
 *   DEGRADED   the mirror failed an io: one log line, and from then on
 *              writes go to the backend only and mark the regions they
 *              touch in the dirty map (64 KiB regions). The guest sees
 *              nothing. What the mirror took since its last good flush
 *              may be gone with it (a page cache): those regions are
 *              dirty too. Every second, and at once on a reload that
 *              keeps the stage, a probe reads the mirror's first block
 *              and writes it back unchanged; when both work, RESYNCING.
 *   RESYNCING  writes go to both again, and in the background the dirty
 *              regions are copied backend -> mirror through channels of
 *              the stage's own, four at a time while the guest is quiet,
 *              one while its requests come (a copy shares the reactor
 *              with them); when none is left (and a flush of the mirror
 *              worked), OK. A write the backend failed, or that a later
 *              stage refused, after the mirror may have taken it, is
 *              copied back the same way. A new stage starts here with
 *              every region dirty (it cannot know what the mirror holds),
 *              except when both sides are known to be zeroes (a ram
 *              device never placed yet, and a ram mirror or a mirror file
 *              this stage created).
 *
 * Ordering against the guest: a region being copied is locked. The copy
 * first waits for the writes already in flight over it (they may have
 * gone to the backend only), then reads the backend and writes the
 * mirror; writes that arrive over a locked region are held in the stage
 * until the copy is done and then go to both. So a copy never reads a
 * region a write is changing, and no stale copy lands after a guest's
 * write: the mirror ends with the guest's data.
 *
 * Unflushed: a second pair of maps holds the regions the mirror took
 * (writes, copies) since its last good flush. A flush covers what was
 * done before it went out, so when one goes out the regions so far move
 * to the map it will clear if it works, and those done while it is in
 * flight stay in the other. Only one flush at a time does this; others
 * that overlap it clear nothing (their regions wait for a later one). A
 * flush that fails, or any fall, makes them dirty.
 *
 * The mirror writes what reaches it: put it after stages that change the
 * data (crypt), so that both copies hold the same bytes.
 *
 * Per-reactor resources (the mirror's channel and a channel on the
 * backend for the copies) are opened when the device lands on a reactor
 * (place: a resync due starts then, with no request from the guest), or
 * else at the first request there, and closed by unplace (after letting
 * the copies and probes in flight finish) or destroy, on that reactor.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"
#include "regionmap.h"

#define MIRROR_REGION_SHIFT	16u			/* 64 KiB regions */
#define MIRROR_REGION		(1u << MIRROR_REGION_SHIFT)
#define MIRROR_COPIES		4u			/* regions copied at once, idle */
#define MIRROR_COPIES_BUSY	1u			/* while the guest sends requests */
#define MIRROR_PROBE_NS		1000000000ull		/* degraded: try it this often */
#define MIRROR_PROBE_LEN	4096u
#define MIRROR_BACKOFF_NS	1000000000ull		/* after the backend failed a copy's read */
#define MIRROR_DRAIN_NS		(5ull * 1000000000ull)	/* unplace: the longest wait */

enum mirror_state { MIRROR_OK, MIRROR_DEGRADED, MIRROR_RESYNCING };

static const char *const state_names[] = {
	[MIRROR_OK] = "ok",
	[MIRROR_DEGRADED] = "degraded",
	[MIRROR_RESYNCING] = "resyncing",
};

struct mirror;

/* A region being copied backend -> mirror. */
struct mirror_copy {
	struct mirror *m;
	unsigned idx;
	bool active;			/* the region is locked */
	uint64_t region, off, len;
	unsigned waiting;		/* writes in flight over it, to wait for */
	TAILQ_HEAD(, mirror_rq) held;	/* writes that arrived over it */
	struct ios_bdev_io io;
	struct iovec iov;
	uint8_t *buf;
};

/* A request's part of the scratch. */
struct mirror_rq {
	struct ios_bdev_io io;
	struct iovec iov;
	struct mirror *m;
	struct ios_req *req;
	TAILQ_ENTRY(mirror_rq) link;	/* m->writes, or a copy's held list */
	uint8_t seg;			/* discard / write-zeroes: the mirror's segment */
	uint8_t blocks;			/* copies waiting for it (bit = copy idx) */
	bool used;			/* a write or a flush: completion has a say */
	bool write;			/* changes data: tracked in m->writes */
	bool busy;			/* its mirror io is in flight */
	bool parked;			/* the backend is done; waiting for the mirror */
};

_Static_assert(MIRROR_COPIES <= 8, "copy bits fit mirror_rq.blocks");

struct mirror {
	struct ios_stage base;
	char name[64];			/* the device's, for logs from the reactor */
	struct vrio_topo_backend cfg;	/* path is ours */
	struct ios_bdev *bdev;		/* the mirror */
	struct ios_bdev *primary;	/* the device's backend (it outlives us) */
	uint64_t size;			/* the device's bytes */
	uint32_t probe_len;
	unsigned depth;			/* the mirror channel's */

	/* Home reactor. */
	struct ios_reactor *r;		/* atomic: its channels' reactor, NULL: none */
	struct ios_bdev_chan *mch;	/* on the mirror */
	struct ios_bdev_chan *pch;	/* on the backend, for the copies */
	struct ios_evsrc mev, pev;
	struct ios_poller poller;
	unsigned m_inflight;		/* ios on mch (writes, copies, probe, flush) */
	unsigned p_inflight;		/* reads on pch */
	struct ios_regionmap dirty;
	/* Taken by the mirror, not known flushed: [fresh] since the last
	 * flush went out, the other the one `epoch` clears if it works. */
	struct ios_regionmap unflushed[2];
	unsigned fresh;
	struct ios_bdev_io *epoch;	/* that flush, in flight; NULL: none */
	uint64_t cursor;		/* where the next copy looks */
	TAILQ_HEAD(, mirror_rq) writes;	/* write-like requests in flight */
	struct mirror_copy copies[MIRROR_COPIES];
	unsigned n_copies;		/* active */
	uint64_t copying_bytes;		/* of the active copies */
	uint64_t next_probe;		/* degraded: when, on the reactor's clock */
	uint64_t resync_start_ns, resume_at;
	uint64_t seen_requests;		/* st.requests at the last resync turn */
	bool probing, flushing, leaving;
	struct ios_bdev_io pio;		/* the probe, or the flush that ends a resync */
	struct iovec piov;
	uint8_t *pbuf;

	/* Atomic: what other threads read or ask for. */
	int state;			/* enum mirror_state */
	bool draining;			/* left the chain: no new copies or probes */
	bool kick;			/* a reload kept it: probe now */
	uint64_t remaining;		/* bytes still to copy */
	uint64_t copied;		/* bytes resyncs copied, ever */
	uint64_t errors;		/* ios the mirror failed */
	uint64_t resync_bytes;		/* copied by the current or last resync */
	uint64_t last_resync_ns;	/* how long the last finished one took */
	uint64_t last_resync_bytes;
};

static struct mirror *to_mir(struct ios_stage *st)
{
	return container_of(st, struct mirror, base);
}

static int get_state(const struct mirror *m)
{
	return __atomic_load_n(&m->state, __ATOMIC_RELAXED);
}

static void set_state(struct mirror *m, enum mirror_state s)
{
	__atomic_store_n(&m->state, (int)s, __ATOMIC_RELAXED);
}

static const char *target(const struct mirror *m)
{
	return m->cfg.kind == VRIO_BACKEND_FILE ? m->cfg.path : "(ram)";
}

static void publish(struct mirror *m)
{
	__atomic_store_n(&m->remaining, ios_regionmap_bytes(&m->dirty) + m->copying_bytes,
			 __ATOMIC_RELAXED);
}

/* ---- the ranges a request changes ---- */

static bool for_ranges(const struct ios_req *req,
		       bool (*fn)(void *arg, uint64_t off, uint64_t len), void *arg)
{
	const struct ios_blk_req *b = &req->u.blk;

	if (b->op == IOS_BLK_OP_WRITE)
		return fn(arg, b->sector * IOS_SECTOR_SIZE, b->len);
	for (unsigned i = 0; i < b->nsegs; i++)
		if (fn(arg, b->segs[i].sector * IOS_SECTOR_SIZE,
		       (uint64_t)b->segs[i].num_sectors * IOS_SECTOR_SIZE))
			return true;
	return false;
}

static bool mark_range(void *arg, uint64_t off, uint64_t len)
{
	struct mirror *m = arg;

	ios_regionmap_mark(&m->dirty, off, len);
	return false;
}

static void mark_req(struct mirror *m, const struct ios_req *req)
{
	for_ranges(req, mark_range, m);
	publish(m);
}

/* ---- what the mirror took, until a flush makes it last ---- */

/* The mirror took [off, off + len). Degraded meanwhile, it may have lost
 * it already: dirty. */
static bool took_range(void *arg, uint64_t off, uint64_t len)
{
	struct mirror *m = arg;

	if (get_state(m) == MIRROR_DEGRADED) {
		ios_regionmap_mark(&m->dirty, off, len);
		publish(m);
	} else {
		ios_regionmap_mark(&m->unflushed[m->fresh], off, len);
	}
	return false;
}

/* What neither the flush in flight nor any before it covers: dirty. */
static void unflushed_to_dirty(struct mirror *m, struct ios_regionmap *u)
{
	ios_regionmap_merge(&m->dirty, u);
	ios_regionmap_reset(u);
	publish(m);
}

/* A flush goes out: it covers what the mirror took so far, unless
 * another that does is still in flight. */
static void flush_out(struct mirror *m, struct ios_bdev_io *io)
{
	if (m->epoch)
		return;
	m->epoch = io;
	m->fresh ^= 1;		/* the other one is empty while no epoch runs */
}

static void flush_back(struct mirror *m, struct ios_bdev_io *io, int rc)
{
	struct ios_regionmap *covered = &m->unflushed[m->fresh ^ 1];

	if (io != m->epoch)
		return;
	m->epoch = NULL;
	if (rc == 0)
		ios_regionmap_reset(covered);
	else
		unflushed_to_dirty(m, covered);
}

struct span {
	uint64_t off, len;
};

static bool hits(void *arg, uint64_t off, uint64_t len)
{
	const struct span *s = arg;

	return len && off < s->off + s->len && s->off < off + len;
}

static bool overlaps(const struct ios_req *req, uint64_t off, uint64_t len)
{
	struct span s = { off, len };

	return for_ranges(req, hits, &s);
}

/* The mirror failed an io: one line when it falls, then quiet until it
 * is back. */
static void fail(struct mirror *m, int err, const char *what)
{
	vrio_counter_add(&m->errors, 1);
	if (get_state(m) == MIRROR_DEGRADED)
		return;
	set_state(m, MIRROR_DEGRADED);
	unflushed_to_dirty(m, &m->unflushed[0]);
	unflushed_to_dirty(m, &m->unflushed[1]);
	m->next_probe = ios_reactor_now(m->r) + MIRROR_PROBE_NS;
	VRIO_ERR_RL("%s: mirror %s failed a %s (%s): degraded; the device goes on from its backend",
		    m->name, target(m), what, strerror(-err));
}

static void begin_resync(struct mirror *m)
{
	m->resync_start_ns = vrio_now_ns();
	m->resume_at = 0;
	__atomic_store_n(&m->resync_bytes, 0, __ATOMIC_RELAXED);
	set_state(m, MIRROR_RESYNCING);
}

/* ---- channels, home reactor ---- */

static void chan_ready(struct ios_evsrc *e, uint32_t events)
{
	uint64_t v;

	/* Reset the eventfd; the poll that follows finds the work. */
	if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("mirror eventfd read: %s", strerror(errno));
}

static int chan_open(struct mirror *m, struct ios_bdev *b, unsigned depth,
		     struct ios_bdev_chan **ch, struct ios_evsrc *ev)
{
	int rc = ios_bdev_chan_open(b, depth, ch);

	if (rc < 0) {
		*ch = NULL;
		return rc;
	}
	ev->fd = ios_bdev_chan_fd(*ch);
	ev->armed = 0;
	ev->ready = chan_ready;
	ios_reactor_watch(m->r, ev, EPOLLIN);
	return 0;
}

static void chan_close(struct mirror *m, struct ios_bdev_chan **ch, struct ios_evsrc *ev)
{
	if (!*ch)
		return;
	ios_reactor_watch(m->r, ev, 0);
	ios_bdev_chan_close(*ch);
	*ch = NULL;
	ev->fd = -1;
}

/* Both channels; without the mirror's, it counts as failed. */
static void open_chans(struct mirror *m)
{
	int rc;

	if (!m->mch) {
		rc = chan_open(m, m->bdev, m->depth, &m->mch, &m->mev);
		if (rc < 0)
			fail(m, rc, "channel open");
	}
	if (!m->pch && !__atomic_load_n(&m->draining, __ATOMIC_RELAXED)) {
		rc = chan_open(m, m->primary, MIRROR_COPIES, &m->pch, &m->pev);
		if (rc < 0)
			VRIO_ERR_RL("%s: mirror: no channel on the backend for resyncs: %s", m->name,
				    strerror(-rc));
	}
}

static int mir_poll(struct ios_poller *p);
static int mir_sleep(struct ios_poller *p);

static void place(struct mirror *m, struct ios_reactor *r)
{
	__atomic_store_n(&m->r, r, __ATOMIC_RELEASE);
	ios_poller_register(r, &m->poller);
	open_chans(m);
	if (get_state(m) == MIRROR_DEGRADED)
		m->next_probe = ios_reactor_now(r) + MIRROR_PROBE_NS;
	/* A first copy is timed from when it can start. */
	if (get_state(m) == MIRROR_RESYNCING && !vrio_counter_get(&m->resync_bytes))
		m->resync_start_ns = vrio_now_ns();
}

/* ---- writes and flushes ---- */

static void rq_mirror_done(struct ios_bdev_io *io);
static void copy_unblock(struct mirror_copy *c);

static int rq_submit_seg(struct mirror *m, struct mirror_rq *rq)
{
	const struct ios_blk_req *b = &rq->req->u.blk;
	const struct ios_blk_seg *s = &b->segs[rq->seg];

	rq->io.op = b->op == IOS_BLK_OP_DISCARD ? IOS_BDEV_DISCARD : IOS_BDEV_WRITE_ZEROES;
	rq->io.offset = s->sector * IOS_SECTOR_SIZE;
	rq->io.len = (uint64_t)s->num_sectors * IOS_SECTOR_SIZE;
	rq->io.unmap = s->unmap;
	rq->io.iov = NULL;
	rq->io.iovcnt = 0;
	return ios_bdev_submit(m->mch, &rq->io);
}

/* Sends the request's operation to the mirror too or, degraded, records
 * what it changes. */
static void rq_go(struct mirror *m, struct mirror_rq *rq)
{
	const struct ios_blk_req *b = &rq->req->u.blk;
	int rc;

	if (get_state(m) == MIRROR_DEGRADED || !m->mch) {
		if (rq->write)
			mark_req(m, rq->req);
		return;
	}
	memset(&rq->io, 0, sizeof(rq->io));
	rq->io.cb = rq_mirror_done;
	rq->seg = 0;
	switch (b->op) {
	case IOS_BLK_OP_WRITE:
		rq->iov.iov_base = rq->req->buf;
		rq->iov.iov_len = b->len;
		rq->io.op = IOS_BDEV_WRITE;
		rq->io.offset = b->sector * IOS_SECTOR_SIZE;
		rq->io.len = b->len;
		rq->io.iov = &rq->iov;
		rq->io.iovcnt = 1;
		rc = ios_bdev_submit(m->mch, &rq->io);
		break;
	case IOS_BLK_OP_FLUSH:
		rq->io.op = IOS_BDEV_FLUSH;
		flush_out(m, &rq->io);
		rc = ios_bdev_submit(m->mch, &rq->io);
		if (rc < 0)
			flush_back(m, &rq->io, rc);
		break;
	default:
		rc = rq_submit_seg(m, rq);
		break;
	}
	if (rc < 0) {
		fail(m, rc, ios_blk_op_name(b->op));
		if (rq->write)
			mark_req(m, rq->req);
		return;
	}
	rq->busy = true;
	m->m_inflight++;
}

/* Both sides are done with it. A write the backend did not take (it
 * failed, or a stage after this one refused it) may be on the mirror
 * alone: its regions are copied back from the backend. */
static void rq_end(struct mirror *m, struct mirror_rq *rq)
{
	uint8_t blocks = rq->blocks;

	if (rq->write && rq->req->u.blk.status != VIRTIO_BLK_S_OK &&
	    get_state(m) != MIRROR_DEGRADED) {
		mark_req(m, rq->req);
		if (get_state(m) == MIRROR_OK)
			begin_resync(m);
	}
	rq->used = false;
	if (!rq->write)
		return;
	TAILQ_REMOVE(&m->writes, rq, link);
	rq->blocks = 0;
	for (unsigned i = 0; blocks; i++, blocks >>= 1)
		if (blocks & 1)
			copy_unblock(&m->copies[i]);
}

static void rq_mirror_done(struct ios_bdev_io *io)
{
	struct mirror_rq *rq = container_of(io, struct mirror_rq, io);
	const struct ios_blk_req *b = &rq->req->u.blk;
	struct mirror *m = rq->m;
	int rc = io->result;

	m->m_inflight--;
	if (rc == 0 && (b->op == IOS_BLK_OP_DISCARD || b->op == IOS_BLK_OP_WRITE_ZEROES) &&
	    rq->seg + 1u < b->nsegs) {
		rq->seg++;
		rc = rq_submit_seg(m, rq);
		if (rc == 0) {
			m->m_inflight++;
			return;
		}
	}
	rq->busy = false;
	if (b->op == IOS_BLK_OP_FLUSH)
		flush_back(m, io, rc);
	if (rc < 0) {
		fail(m, rc, ios_blk_op_name(b->op));
		if (rq->write)
			mark_req(m, rq->req);
	} else if (rq->write) {
		for_ranges(rq->req, took_range, m);
	}
	if (rq->parked) {
		rq->parked = false;
		rq_end(m, rq);
		ios_chain_resume(rq->req);
	}
}

/* The active copy whose region the request writes, if any. */
static struct mirror_copy *locked_by(struct mirror *m, const struct ios_req *req)
{
	for (unsigned i = 0; m->n_copies && i < MIRROR_COPIES; i++)
		if (m->copies[i].active && overlaps(req, m->copies[i].off, m->copies[i].len))
			return &m->copies[i];
	return NULL;
}

static enum ios_stage_verdict mir_request(struct ios_stage *st, struct ios_req *req)
{
	struct mirror_rq *rq = ios_stage_scratch(st, req);
	struct mirror *m = to_mir(st);
	struct ios_reactor *here = st->d->home;
	struct mirror_copy *c;

	if (m->r != here)
		place(m, here);
	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, req->u.blk.len);
	rq->used = false;
	switch (req->u.blk.op) {
	case IOS_BLK_OP_WRITE:
	case IOS_BLK_OP_DISCARD:
	case IOS_BLK_OP_WRITE_ZEROES:
		rq->write = true;
		break;
	case IOS_BLK_OP_FLUSH:
		rq->write = false;
		break;
	default:
		return IOS_STAGE_PASS;
	}
	rq->used = true;
	rq->m = m;
	rq->req = req;
	rq->blocks = 0;
	rq->busy = false;
	rq->parked = false;
	if (rq->write) {
		c = locked_by(m, req);
		if (c) {
			TAILQ_INSERT_TAIL(&c->held, rq, link);
			vrio_counter_add(&st->st.delayed, 1);
			return IOS_STAGE_HOLD;
		}
		TAILQ_INSERT_TAIL(&m->writes, rq, link);
	}
	rq_go(m, rq);
	return IOS_STAGE_PASS;
}

static enum ios_stage_verdict mir_completion(struct ios_stage *st, struct ios_req *req)
{
	struct mirror_rq *rq = ios_stage_scratch(st, req);

	if (!rq->used)
		return IOS_STAGE_PASS;
	if (rq->busy) {
		rq->parked = true;
		return IOS_STAGE_HOLD;
	}
	rq_end(to_mir(st), rq);
	return IOS_STAGE_PASS;
}

/* ---- resync: copies of dirty regions, backend -> mirror ---- */

static void copy_read_done(struct ios_bdev_io *io);
static void copy_write_done(struct ios_bdev_io *io);

/* The copy is over: the region is clean (done) or dirty again. Writes
 * held over it go on. */
static void copy_end(struct mirror_copy *c, bool done)
{
	struct mirror *m = c->m;
	struct mirror_rq *rq;
	struct mirror_copy *other;
	TAILQ_HEAD(, mirror_rq) go = TAILQ_HEAD_INITIALIZER(go);

	if (done) {
		vrio_counter_add(&m->copied, c->len);
		vrio_counter_add(&m->resync_bytes, c->len);
	} else {
		ios_regionmap_mark(&m->dirty, c->off, c->len);
	}
	c->active = false;
	m->n_copies--;
	m->copying_bytes -= c->len;
	publish(m);
	TAILQ_CONCAT(&go, &c->held, link);
	while ((rq = TAILQ_FIRST(&go))) {
		TAILQ_REMOVE(&go, rq, link);
		other = locked_by(m, rq->req);
		if (other) {
			TAILQ_INSERT_TAIL(&other->held, rq, link);
			continue;
		}
		TAILQ_INSERT_TAIL(&m->writes, rq, link);
		rq_go(m, rq);
		ios_chain_resume(rq->req);
	}
}

static void copy_read(struct mirror_copy *c)
{
	struct mirror *m = c->m;
	int rc;

	memset(&c->io, 0, sizeof(c->io));
	c->iov.iov_base = c->buf;
	c->iov.iov_len = c->len;
	c->io.op = IOS_BDEV_READ;
	c->io.offset = c->off;
	c->io.len = c->len;
	c->io.iov = &c->iov;
	c->io.iovcnt = 1;
	c->io.cb = copy_read_done;
	rc = ios_bdev_submit(m->pch, &c->io);
	if (rc < 0) {
		c->io.result = rc;
		m->p_inflight++;	/* as if it came back at once */
		copy_read_done(&c->io);
		return;
	}
	m->p_inflight++;
}

static void copy_unblock(struct mirror_copy *c)
{
	if (--c->waiting == 0)
		copy_read(c);
}

static void copy_read_done(struct ios_bdev_io *io)
{
	struct mirror_copy *c = container_of(io, struct mirror_copy, io);
	struct mirror *m = c->m;
	int rc;

	m->p_inflight--;
	if (io->result < 0) {
		/* The backend's fault, not the mirror's: try again later. */
		VRIO_ERR_RL("%s: mirror: reading %llu bytes at %llu from the backend to resync: %s",
			    m->name, (unsigned long long)c->len, (unsigned long long)c->off,
			    strerror(-io->result));
		m->resume_at = ios_reactor_now(m->r) + MIRROR_BACKOFF_NS;
		copy_end(c, false);
		return;
	}
	if (get_state(m) != MIRROR_RESYNCING) {
		copy_end(c, false);	/* it fell again meanwhile */
		return;
	}
	memset(&c->io, 0, sizeof(c->io));
	c->iov.iov_base = c->buf;
	c->iov.iov_len = c->len;
	c->io.op = IOS_BDEV_WRITE;
	c->io.offset = c->off;
	c->io.len = c->len;
	c->io.iov = &c->iov;
	c->io.iovcnt = 1;
	c->io.cb = copy_write_done;
	rc = ios_bdev_submit(m->mch, &c->io);
	if (rc < 0) {
		fail(m, rc, "resync write");
		copy_end(c, false);
		return;
	}
	m->m_inflight++;
}

static void copy_write_done(struct ios_bdev_io *io)
{
	struct mirror_copy *c = container_of(io, struct mirror_copy, io);
	struct mirror *m = c->m;

	m->m_inflight--;
	if (io->result < 0)
		fail(m, io->result, "resync write");
	else
		took_range(m, c->off, c->len);
	copy_end(c, io->result == 0);
}

/* Locks the region and copies it once the writes in flight over it are
 * done. */
static void copy_start(struct mirror *m, uint64_t region)
{
	struct mirror_copy *c = NULL;
	struct mirror_rq *rq;

	for (unsigned i = 0; i < MIRROR_COPIES && !c; i++)
		if (!m->copies[i].active)
			c = &m->copies[i];
	ios_regionmap_clear(&m->dirty, region);
	c->active = true;
	c->region = region;
	c->off = ios_region_off(&m->dirty, region);
	c->len = ios_region_len(&m->dirty, region);
	c->waiting = 1;		/* ours, until the scan below is done */
	m->n_copies++;
	m->copying_bytes += c->len;
	publish(m);
	TAILQ_FOREACH(rq, &m->writes, link) {
		if (overlaps(rq->req, c->off, c->len)) {
			rq->blocks |= (uint8_t)(1u << c->idx);
			c->waiting++;
		}
	}
	copy_unblock(c);
}

static void resync_done(struct ios_bdev_io *io)
{
	struct mirror *m = container_of(io, struct mirror, pio);
	uint64_t ns;

	m->m_inflight--;
	m->flushing = false;
	flush_back(m, io, io->result);
	if (io->result < 0) {
		fail(m, io->result, "flush");
		return;
	}
	if (get_state(m) != MIRROR_RESYNCING || m->dirty.count || m->n_copies)
		return;
	ns = vrio_now_ns() - m->resync_start_ns;
	__atomic_store_n(&m->last_resync_ns, ns, __ATOMIC_RELAXED);
	__atomic_store_n(&m->last_resync_bytes, vrio_counter_get(&m->resync_bytes),
			 __ATOMIC_RELAXED);
	set_state(m, MIRROR_OK);
	VRIO_NOTICE("%s: mirror %s in sync again: %llu bytes copied in %.3f s", m->name, target(m),
		    (unsigned long long)vrio_counter_get(&m->resync_bytes), (double)ns / 1e9);
}

/* How many copies may run: the guest's requests share the reactor with
 * them (a RAM or page-cache copy is a memcpy on it), so while requests
 * came through the stage since the last turn one region at a time, else a
 * few. */
static unsigned copy_budget(struct mirror *m)
{
	uint64_t seen = m->base.st.requests;
	bool busy = seen != m->seen_requests;

	m->seen_requests = seen;
	return busy ? MIRROR_COPIES_BUSY : MIRROR_COPIES;
}

static int resync(struct mirror *m, uint64_t now)
{
	uint64_t region;
	unsigned budget;
	int work = 0;

	if (get_state(m) != MIRROR_RESYNCING || m->leaving || !m->mch ||
	    __atomic_load_n(&m->draining, __ATOMIC_RELAXED) || now < m->resume_at)
		return 0;
	if (!m->pch) {
		open_chans(m);
		if (!m->pch) {
			m->resume_at = now + MIRROR_BACKOFF_NS;
			return 0;
		}
	}
	budget = copy_budget(m);
	while (m->n_copies < budget &&
	       (region = ios_regionmap_next(&m->dirty, m->cursor)) != IOS_REGION_NONE) {
		m->cursor = region + 1;
		copy_start(m, region);
		work++;
		/* It fell again, or the backend failed a read: not now. */
		if (get_state(m) != MIRROR_RESYNCING || now < m->resume_at)
			return work;
	}
	if (m->n_copies || m->dirty.count || m->flushing)
		return work;
	/* All copied: make it last before saying so. */
	memset(&m->pio, 0, sizeof(m->pio));
	m->pio.op = IOS_BDEV_FLUSH;
	m->pio.cb = resync_done;
	flush_out(m, &m->pio);
	if (ios_bdev_submit(m->mch, &m->pio) < 0) {
		flush_back(m, &m->pio, -EIO);
		fail(m, -EIO, "flush");
		return work + 1;
	}
	m->flushing = true;
	m->m_inflight++;
	return work + 1;
}

/* ---- degraded: is it back? ---- */

static void probe_write_done(struct ios_bdev_io *io)
{
	struct mirror *m = container_of(io, struct mirror, pio);

	m->m_inflight--;
	m->probing = false;
	if (io->result < 0 || get_state(m) != MIRROR_DEGRADED)
		return;
	begin_resync(m);
	VRIO_NOTICE("%s: mirror %s answers again: resynchronising %llu dirty bytes (%.2f%% of %llu)",
		    m->name, target(m), (unsigned long long)ios_regionmap_bytes(&m->dirty),
		    100.0 * (double)ios_regionmap_bytes(&m->dirty) / (double)m->size,
		    (unsigned long long)m->size);
}

/* It read: write the same bytes back (nothing else writes the mirror
 * while it is degraded). */
static void probe_read_done(struct ios_bdev_io *io)
{
	struct mirror *m = container_of(io, struct mirror, pio);

	m->m_inflight--;
	if (io->result < 0 || get_state(m) != MIRROR_DEGRADED) {
		m->probing = false;
		return;
	}
	memset(&m->pio, 0, sizeof(m->pio));
	m->piov.iov_base = m->pbuf;
	m->piov.iov_len = m->probe_len;
	m->pio.op = IOS_BDEV_WRITE;
	m->pio.len = m->probe_len;
	m->pio.iov = &m->piov;
	m->pio.iovcnt = 1;
	m->pio.cb = probe_write_done;
	if (ios_bdev_submit(m->mch, &m->pio) < 0) {
		m->probing = false;
		return;
	}
	m->m_inflight++;
}

static int probe(struct mirror *m, uint64_t now)
{
	bool kick;

	if (get_state(m) != MIRROR_DEGRADED || m->leaving || m->probing || m->flushing ||
	    __atomic_load_n(&m->draining, __ATOMIC_RELAXED))
		return 0;
	kick = __atomic_exchange_n(&m->kick, false, __ATOMIC_ACQ_REL);
	if (!kick && now < m->next_probe)
		return 0;
	m->next_probe = now + MIRROR_PROBE_NS;
	/* Nothing else in flight on the mirror: a write that went before the
	 * fall and is still there could land under the probe's write-back. */
	if (m->m_inflight)
		return 0;
	open_chans(m);
	if (!m->mch)
		return 1;
	memset(&m->pio, 0, sizeof(m->pio));
	m->piov.iov_base = m->pbuf;
	m->piov.iov_len = m->probe_len;
	m->pio.op = IOS_BDEV_READ;
	m->pio.len = m->probe_len;
	m->pio.iov = &m->piov;
	m->pio.iovcnt = 1;
	m->pio.cb = probe_read_done;
	if (ios_bdev_submit(m->mch, &m->pio) < 0)
		return 1;
	m->probing = true;
	m->m_inflight++;
	return 1;
}

/* ---- the poller ---- */

static int poll_chans(struct mirror *m)
{
	int work = 0, rc;

	if (m->mch && m->m_inflight) {
		rc = ios_bdev_poll(m->mch, IOS_POLL_BUDGET);
		work += rc > 0 ? rc : 0;
	}
	if (m->pch && m->p_inflight) {
		rc = ios_bdev_poll(m->pch, IOS_POLL_BUDGET);
		work += rc > 0 ? rc : 0;
	}
	return work;
}

static int mir_poll(struct ios_poller *p)
{
	struct mirror *m = container_of(p, struct mirror, poller);
	uint64_t now = ios_reactor_now(p->r);
	int work = poll_chans(m);

	work += probe(m, now);
	work += resync(m, now);
	/* Out of the chain: the backend's channel goes once idle. */
	if (m->pch && !m->p_inflight && !m->n_copies &&
	    __atomic_load_n(&m->draining, __ATOMIC_RELAXED))
		chan_close(m, &m->pch, &m->pev);
	return work;
}

static int ms_until(uint64_t now, uint64_t t)
{
	uint64_t ms = t > now ? (t - now + 999999) / 1000000 : 0;

	return ms > IOS_SLEEP_MAX_MS ? IOS_SLEEP_MAX_MS : (int)ms;
}

static int mir_sleep(struct ios_poller *p)
{
	struct mirror *m = container_of(p, struct mirror, poller);
	bool draining = __atomic_load_n(&m->draining, __ATOMIC_RELAXED);
	uint64_t now = ios_reactor_now(p->r);
	int state = get_state(m);

	/* A backend without an eventfd completes only from poll. */
	if ((m->m_inflight && m->mev.fd < 0) || (m->p_inflight && m->pev.fd < 0))
		return 0;
	if (draining)
		return -1;
	if (state == MIRROR_DEGRADED)
		return __atomic_load_n(&m->kick, __ATOMIC_RELAXED) ? 0 : ms_until(now, m->next_probe);
	if (state == MIRROR_RESYNCING && m->pch) {
		if (now < m->resume_at)
			return ms_until(now, m->resume_at);
		if ((m->dirty.count && m->n_copies < MIRROR_COPIES) ||
		    (!m->dirty.count && !m->n_copies && !m->flushing))
			return 0;
	}
	return -1;
}

/* ---- placement and life ---- */

/* Home reactor: lets the copies, the probe and the flush in flight end
 * (the device has no request in flight), then closes the channels. */
static void mir_unplace(struct ios_stage *st, struct ios_reactor *r)
{
	struct mirror *m = to_mir(st);
	uint64_t deadline = vrio_now_ns() + MIRROR_DRAIN_NS;
	struct timespec ts = { 0, 50000 };

	if (m->r != r)
		return;
	m->leaving = true;
	while ((m->m_inflight || m->p_inflight) && vrio_now_ns() < deadline)
		if (poll_chans(m) == 0)
			nanosleep(&ts, NULL);
	if (m->m_inflight || m->p_inflight) {
		/* Closing a channel with ios in it would free what the kernel
		 * still writes to: keep it. */
		VRIO_ERR("%s: mirror: %u ios still in flight after %llu s; leaving its channels open",
			 m->name, m->m_inflight + m->p_inflight,
			 (unsigned long long)(MIRROR_DRAIN_NS / 1000000000ull));
		m->mch = m->pch = NULL;
		/* Its flush will not come back: what it covered waits for
		 * the next. */
		if (m->epoch) {
			ios_regionmap_merge(&m->unflushed[m->fresh], &m->unflushed[m->fresh ^ 1]);
			ios_regionmap_reset(&m->unflushed[m->fresh ^ 1]);
			m->epoch = NULL;
		}
	}
	chan_close(m, &m->mch, &m->mev);
	chan_close(m, &m->pch, &m->pev);
	ios_poller_unregister(&m->poller);
	m->m_inflight = m->p_inflight = 0;
	m->leaving = false;
	__atomic_store_n(&m->r, NULL, __ATOMIC_RELEASE);
}

static void mir_free(struct ios_reactor *r, void *arg)
{
	struct mirror *m = arg;

	if (r)
		mir_unplace(&m->base, r);
	ios_bdev_close(m->bdev);
	ios_regionmap_fini(&m->dirty);
	ios_regionmap_fini(&m->unflushed[0]);
	ios_regionmap_fini(&m->unflushed[1]);
	for (unsigned i = 0; i < MIRROR_COPIES; i++)
		free(m->copies[i].buf);
	free(m->pbuf);
	free(m->cfg.path);
	free(m);
}

/* Its channels are on the reactor it last served on: let go there. */
static void mir_destroy(struct ios_stage *st)
{
	struct mirror *m = to_mir(st);
	struct ios_reactor *r = __atomic_load_n(&m->r, __ATOMIC_ACQUIRE);

	if (!r || !r->started || ios_reactor_call(r, mir_free, m) < 0)
		mir_free(r, m);
}

static void mir_drain(struct ios_stage *st)
{
	struct mirror *m = to_mir(st);
	struct ios_reactor *r = __atomic_load_n(&m->r, __ATOMIC_ACQUIRE);

	__atomic_store_n(&m->draining, true, __ATOMIC_RELEASE);
	if (r)
		ios_reactor_notify(r);
}

static bool same_backend(const struct vrio_topo_backend *a, const struct vrio_topo_backend *b)
{
	return a->kind == b->kind && a->size == b->size && a->direct == b->direct &&
	       ((!a->path && !b->path) || (a->path && b->path && !strcmp(a->path, b->path)));
}

/* The same mirror stays, with its dirty map; any other setting makes a
 * new one. */
static int mir_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	struct mirror *m = to_mir(st);

	if (!apply)
		return same_backend(&m->cfg, &ts->u.mirror.backend) ? 0 : -EPERM;
	return 0;
}

/* A reload was applied: a degraded mirror is tried again at once (the
 * operator may have just fixed what it stands on). */
static void mir_reloaded(struct ios_stage *st)
{
	struct mirror *m = to_mir(st);
	struct ios_reactor *r;

	if (get_state(m) != MIRROR_DEGRADED)
		return;
	__atomic_store_n(&m->kick, true, __ATOMIC_RELEASE);
	r = __atomic_load_n(&m->r, __ATOMIC_ACQUIRE);
	if (r)
		ios_reactor_notify(r);
}

/* Home reactor: the device landed on r, or the stage joined its chain
 * there. A resync due starts now rather than at the guest's next write. */
static void mir_place(struct ios_stage *st, struct ios_reactor *r)
{
	struct mirror *m = to_mir(st);

	if (m->r != r && !__atomic_load_n(&m->draining, __ATOMIC_ACQUIRE))
		place(m, r);
}

/* A device whose backend is known to hold only zeroes: null, or ram that
 * no guest has been served from yet. */
static bool primary_blank(const struct ios_device *d)
{
	enum vrio_backend_kind kind = d->u.blk.bdev->ops->kind;

	return kind == VRIO_BACKEND_NULL ||
	       (kind == VRIO_BACKEND_RAM && __atomic_load_n(&d->placed_ns, __ATOMIC_RELAXED) == 0);
}

/* Opens the mirror; a file is created at the device's size if missing,
 * and must not be smaller. Sets *blank when it starts as zeroes. */
static int open_mirror(struct mirror *m, struct ios_device *d, const struct vrio_topo_backend *be,
		       bool *blank, char *why, size_t n)
{
	struct vrio_topo_device td = { .name = d->name, .backend = *be };
	struct stat sb;
	int rc;

	*blank = false;
	if (be->kind == VRIO_BACKEND_RAM) {
		if (be->size < m->size) {
			snprintf(why, n, "device '%s' holds %llu bytes: its ram mirror of %llu is smaller",
				 d->name, (unsigned long long)m->size, (unsigned long long)be->size);
			return -EINVAL;
		}
		*blank = true;
	} else if (be->size && be->size < m->size) {
		snprintf(why, n, "device '%s' holds %llu bytes: its mirror %s, size %llu, is smaller",
			 d->name, (unsigned long long)m->size, be->path,
			 (unsigned long long)be->size);
		return -EINVAL;
	} else if (stat(be->path, &sb) < 0) {
		if (errno != ENOENT) {
			rc = -errno;
			snprintf(why, n, "device '%s': mirror %s: %s", d->name, be->path,
				 strerror(errno));
			return rc;
		}
		/* Created, like a backend: file with a size. */
		if (!be->size)
			td.backend.size = m->size;
		*blank = true;
	} else if (S_ISREG(sb.st_mode) && !be->size && (uint64_t)sb.st_size < m->size) {
		snprintf(why, n, "device '%s' holds %llu bytes: its mirror %s holds only %llu",
			 d->name, (unsigned long long)m->size, be->path,
			 (unsigned long long)sb.st_size);
		return -ENOSPC;
	}
	rc = ios_bdev_open(&td, &m->bdev);
	if (rc < 0) {
		snprintf(why, n, "device '%s': cannot open its mirror %s: %s", d->name, target(m),
			 strerror(-rc));
		return rc;
	}
	m->bdev->name = m->name;
	if (m->bdev->size < m->size) {
		snprintf(why, n, "device '%s' holds %llu bytes: its mirror %s holds only %llu",
			 d->name, (unsigned long long)m->size, target(m),
			 (unsigned long long)m->bdev->size);
		rc = -ENOSPC;
		goto err;
	}
	if (m->bdev->block_size > d->u.blk.bdev->block_size) {
		snprintf(why, n, "device '%s': its mirror %s needs %u-byte blocks, the device has %u",
			 d->name, target(m), m->bdev->block_size, d->u.blk.bdev->block_size);
		rc = -EINVAL;
		goto err;
	}
	return 0;
err:
	ios_bdev_close(m->bdev);
	m->bdev = NULL;
	return rc;
}

static int mir_create(struct ios_device *d, const struct vrio_topo_stage *ts,
		      struct ios_stage **out, char *why, size_t n)
{
	const struct vrio_topo_backend *be = &ts->u.mirror.backend;
	struct mirror *m;
	bool blank;
	int rc;

	if (d->ops->type != VRIO_DEV_BLK || !d->u.blk.bdev) {
		snprintf(why, n, "device '%s': a mirror goes with blk devices", d->name);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	snprintf(m->name, sizeof(m->name), "%s", d->name);
	m->cfg = *be;
	m->cfg.path = be->path ? strdup(be->path) : NULL;
	if (be->path && !m->cfg.path) {
		rc = -ENOMEM;
		goto err_free;
	}
	m->primary = d->u.blk.bdev;
	m->size = m->primary->size;
	m->depth = d->max_outstanding + MIRROR_COPIES + 1;
	m->mev.fd = m->pev.fd = -1;
	rc = open_mirror(m, d, be, &blank, why, n);
	if (rc < 0)
		goto err_free;
	rc = ios_regionmap_init(&m->dirty, m->size, MIRROR_REGION_SHIFT);
	for (unsigned i = 0; rc == 0 && i < 2; i++)
		rc = ios_regionmap_init(&m->unflushed[i], m->size, MIRROR_REGION_SHIFT);
	if (rc < 0)
		goto err_map;
	m->probe_len = m->bdev->block_size > MIRROR_PROBE_LEN ? m->bdev->block_size :
								 MIRROR_PROBE_LEN;
	if (m->probe_len > m->size)
		m->probe_len = (uint32_t)m->size;
	rc = -ENOMEM;
	if (posix_memalign((void **)&m->pbuf, IOS_BDEV_BUF_ALIGN, m->probe_len))
		goto err_map;
	for (unsigned i = 0; i < MIRROR_COPIES; i++) {
		m->copies[i].m = m;
		m->copies[i].idx = i;
		TAILQ_INIT(&m->copies[i].held);
		if (posix_memalign((void **)&m->copies[i].buf, IOS_BDEV_BUF_ALIGN, MIRROR_REGION))
			goto err_map;
	}
	TAILQ_INIT(&m->writes);
	m->poller.name = "mirror";
	m->poller.poll = mir_poll;
	m->poller.sleep = mir_sleep;
	if (blank && primary_blank(d)) {
		m->state = MIRROR_OK;
	} else {
		/* What the mirror holds is unknown: all of it is dirty. */
		ios_regionmap_mark_all(&m->dirty);
		m->state = MIRROR_RESYNCING;
		VRIO_NOTICE("%s: mirror %s: a full copy of %llu bytes starts once the device is served",
			    d->name, target(m), (unsigned long long)m->size);
	}
	publish(m);
	*out = &m->base;
	return 0;

err_map:
	for (unsigned i = 0; i < MIRROR_COPIES; i++)
		free(m->copies[i].buf);
	free(m->pbuf);
	ios_regionmap_fini(&m->dirty);
	ios_regionmap_fini(&m->unflushed[0]);
	ios_regionmap_fini(&m->unflushed[1]);
	ios_bdev_close(m->bdev);
err_free:
	free(m->cfg.path);
	free(m);
	return rc;
}

/* ---- what others see ---- */

static int mir_fault(struct ios_stage *st, bool fail_io)
{
	struct mirror *m = to_mir(st);

	ios_bdev_set_fault(m->bdev, fail_io);
	VRIO_WARN("%s: mirror %s: test fault %s", m->name, target(m),
		  fail_io ? "on: every io fails" : "off");
	return 0;
}

static double progress(struct mirror *m)
{
	uint64_t done = vrio_counter_get(&m->resync_bytes);
	uint64_t left = __atomic_load_n(&m->remaining, __ATOMIC_RELAXED);

	switch (get_state(m)) {
	case MIRROR_OK:
		return 1.0;
	case MIRROR_RESYNCING:
		return done + left ? (double)done / (double)(done + left) : 1.0;
	default:
		return 0.0;
	}
}

static struct json_t *mir_status(struct ios_stage *st)
{
	struct mirror *m = to_mir(st);

	return json_pack("{s:s, s:s, s:f, s:I, s:I, s:I, s:I, s:f, s:I}",
		"state", state_names[get_state(m)], "target", target(m),
		"resync_progress", progress(m),
		"dirty_bytes", (json_int_t)__atomic_load_n(&m->remaining, __ATOMIC_RELAXED),
		"size", (json_int_t)m->size,
		"errors", (json_int_t)vrio_counter_get(&m->errors),
		"resync_bytes_total", (json_int_t)vrio_counter_get(&m->copied),
		"last_resync_s",
		(double)__atomic_load_n(&m->last_resync_ns, __ATOMIC_RELAXED) / 1e9,
		"last_resync_bytes",
		(json_int_t)__atomic_load_n(&m->last_resync_bytes, __ATOMIC_RELAXED));
}

static const struct ios_stage_gauge mir_gauges[] = {
	{ "vrio_ioserver_mirror_degraded", "gauge",
	  "1 while a device's mirror is failed and its writes go to the backend only" },
	{ "vrio_ioserver_mirror_resyncing", "gauge",
	  "1 while a device's mirror is being brought up to date from its dirty regions" },
	{ "vrio_ioserver_mirror_resync_remaining_bytes", "gauge",
	  "Bytes of dirty regions the mirror must still be sent" },
	{ "vrio_ioserver_mirror_resync_bytes_total", "counter",
	  "Bytes resyncs copied from a device's backend to its mirror" },
	{ "vrio_ioserver_mirror_errors_total", "counter", "I/O errors of a device's mirror" },
};

static double mir_gauge(struct ios_stage *st, unsigned i)
{
	struct mirror *m = to_mir(st);

	switch (i) {
	case 0:
		return get_state(m) == MIRROR_DEGRADED;
	case 1:
		return get_state(m) == MIRROR_RESYNCING;
	case 2:
		return (double)__atomic_load_n(&m->remaining, __ATOMIC_RELAXED);
	case 3:
		return (double)vrio_counter_get(&m->copied);
	default:
		return (double)vrio_counter_get(&m->errors);
	}
}

const struct ios_stage_ops ios_stage_mirror_ops = {
	.kind = VRIO_STAGE_MIRROR,
	.scratch = sizeof(struct mirror_rq),
	.create = mir_create,
	.retune = mir_retune,
	.drain = mir_drain,
	.destroy = mir_destroy,
	.request = mir_request,
	.completion = mir_completion,
	.reloaded = mir_reloaded,
	.place = mir_place,
	.unplace = mir_unplace,
	.gauges = mir_gauges,
	.n_gauges = sizeof(mir_gauges) / sizeof(mir_gauges[0]),
	.gauge = mir_gauge,
	.status = mir_status,
	.fault = mir_fault,
};
