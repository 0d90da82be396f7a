/* SPDX-License-Identifier: BSD-3-Clause */
/* The vIOMMU half of the request/response path: see iommu.h. */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost_types.h>

#include "localhv.h"
#include "log.h"

#define VHOST_USER_BACKEND_IOTLB_MSG	1
#define VHOST_USER_VERSION		1

void lhv_iommu_init(struct lhv_iommu *m, const struct vrio_topo_device *t)
{
	m->on = false;
	m->slave_fd = -1;
	lhv_iommu_configure(m, t);
}

/* Deferred to strict: what is pending starts at the next poll
 * (batch_started), and the VMM's next invalidation waits again. */
void lhv_iommu_configure(struct lhv_iommu *m, const struct vrio_topo_device *t)
{
	m->batch = t->iommu_batch;
	m->delay_ms = t->iommu_delay_ms;
	__atomic_store_n(&m->deferred, t->iommu_deferred, __ATOMIC_RELEASE);
}

void lhv_iommu_fini(struct lhv_iommu *m)
{
	int fd = __atomic_exchange_n(&m->slave_fd, -1, __ATOMIC_ACQ_REL);

	if (fd >= 0)
		close(fd);
	lhv_iotlb_fini(&m->tlb);
}

void lhv_iommu_set_channel(struct lhv_iommu *m, int fd)
{
	int old = __atomic_exchange_n(&m->slave_fd, fd, __ATOMIC_ACQ_REL);

	if (old >= 0)
		close(old);
}

static bool poller_owns(const struct lhv_dev *d)
{
	return __atomic_load_n(&d->state, __ATOMIC_ACQUIRE) != LHV_DEV_IDLE;
}

/* The IOTLB itself, by whoever owns it now. */
static void apply_update(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t uaddr,
			 uint8_t perm)
{
	struct lhv_iommu *m = &d->iommu;
	uint64_t u, run;

	if (lhv_iotlb_update(&m->tlb, iova, size, uaddr, perm) < 0) {
		VRIO_WARN_RL("%s: ignored an IOTLB update of %#llx+%#llx with access %u", d->name,
			     (unsigned long long)iova, (unsigned long long)size, perm);
		return;
	}
	if (m->miss_out && lhv_iotlb_lookup(&m->tlb, m->miss_iova, 1, 0, &u, &run) == 0)
		m->miss_out = false;
}

int lhv_iommu_post(struct lhv *l, struct lhv_dev *d, uint8_t type, uint64_t iova,
		   uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct lhv_iommu *m = &d->iommu;
	struct timespec nap = { 0, 100000 };
	uint64_t t0 = vrio_now_ns(), token = 0;
	struct lhv_iommu_msg *msg;
	unsigned tail;

	if (type != VHOST_IOTLB_UPDATE && type != VHOST_IOTLB_INVALIDATE)
		return 0;
	/* Not served, or served without a vIOMMU (no ACCESS_PLATFORM: the
	 * poller never looks at the IOTLB or the inbox, and a strict
	 * invalidation would hold rte_vhost's thread, every device's, for
	 * 10 s): the control thread owns the IOTLB (localhv.h). */
	if (!poller_owns(d) || !m->on) {
		if (type == VHOST_IOTLB_UPDATE)
			apply_update(d, iova, size, uaddr, perm);
		else
			lhv_iotlb_invalidate(&m->tlb, iova, size);
		return 0;
	}
	tail = m->in_tail;
	while (tail - __atomic_load_n(&m->in_head, __ATOMIC_ACQUIRE) >= LHV_IOMMU_INBOX) {
		if (vrio_now_ns() - t0 > LHV_IOMMU_INVAL_NS)
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
	msg = &m->inbox[tail & (LHV_IOMMU_INBOX - 1)];
	msg->op = type == VHOST_IOTLB_UPDATE ? LHV_IOMMU_UPDATE : LHV_IOMMU_INVALIDATE;
	msg->perm = perm;
	msg->iova = iova;
	msg->size = size;
	msg->uaddr = uaddr;
	msg->t0 = t0;
	if (msg->op == LHV_IOMMU_INVALIDATE)
		msg->token = token = ++m->next_token;
	__atomic_store_n(&m->in_tail, tail + 1, __ATOMIC_RELEASE);
	lhv_poller_wake(l);
	if (!token || __atomic_load_n(&m->deferred, __ATOMIC_ACQUIRE))
		return 0;
	/* Strict: the VMM hears back once no one can touch the range. The
	 * VMM waits on us, so look often at first (the poller usually takes
	 * an io-server round trip), then back off. */
	for (unsigned spins = 0; __atomic_load_n(&m->done_token, __ATOMIC_ACQUIRE) < token;
	     spins++) {
		if (spins < 2000) {
			sched_yield();
			continue;
		}
		if (!poller_owns(d))
			break;
		if (vrio_now_ns() - t0 > 2 * LHV_IOMMU_INVAL_NS) {
			VRIO_ERR("%s: IOTLB invalidation of %#llx+%#llx not done in %llu s", d->name,
				 (unsigned long long)iova, (unsigned long long)size,
				 (unsigned long long)(2 * LHV_IOMMU_INVAL_NS / 1000000000ull));
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	return 0;
}

/* A chain in flight touches [iova, iova+size). */
static bool inflight_overlaps(const struct lhv_dev *d, uint64_t iova, uint64_t size)
{
	const struct lhv_vq *q;
	unsigned qi, h;

	if (!d->inflight || d->broken)
		return false;
	for (qi = 0; qi < d->nvq; qi++) {
		q = &d->vq[qi];
		if (!q->active || !q->inflight)
			continue;
		for (h = 0; h < q->size; h++)
			if (q->slots[h].busy &&
			    lhv_ranges_overlap(q->slots[h].lo, q->slots[h].hi - q->slots[h].lo,
					       iova, size))
				return true;
	}
	return false;
}

static void take_inbox(struct lhv_dev *d)
{
	struct lhv_iommu *m = &d->iommu;
	unsigned head = m->in_head, tail = __atomic_load_n(&m->in_tail, __ATOMIC_ACQUIRE);
	const struct lhv_iommu_msg *msg;
	struct lhv_inval *p;

	for (; head != tail; head++) {
		msg = &m->inbox[head & (LHV_IOMMU_INBOX - 1)];
		if (msg->op == LHV_IOMMU_UPDATE) {
			apply_update(d, msg->iova, msg->size, msg->uaddr, msg->perm);
			continue;
		}
		if (m->npend == LHV_IOMMU_PENDING) {
			/* More than we can track: the range goes now, and the
			 * device with it if a chain in flight used it. */
			if (inflight_overlaps(d, msg->iova, msg->size))
				lhv_dev_break(d, 0, "more than %u IOTLB invalidations pending",
					      LHV_IOMMU_PENDING);
			lhv_iotlb_invalidate(&m->tlb, msg->iova, msg->size);
			__atomic_store_n(&m->done_token, msg->token, __ATOMIC_RELEASE);
			continue;
		}
		p = &m->pend[m->npend++];
		*p = (struct lhv_inval){ .iova = msg->iova, .size = msg->size, .token = msg->token,
					 .t0 = msg->t0, .deferred = m->deferred,
					 .started = !m->deferred };
	}
	__atomic_store_n(&m->in_head, head, __ATOMIC_RELEASE);
}

/* Deferred: a batch starts once it is full or its oldest is old enough. */
static unsigned batch_started(const struct lhv_iommu *m, uint64_t now)
{
	if (!m->deferred || !m->npend)
		return m->npend;
	if (m->npend >= m->batch || now - m->pend[0].t0 >= (uint64_t)m->delay_ms * 1000000ull)
		return m->npend;
	return 0;
}

static void finish(struct lhv_dev *d, const struct lhv_inval *p, uint64_t now)
{
	struct lhv_iommu *m = &d->iommu;

	if (now < p->t0)
		now = p->t0;
	lhv_iotlb_invalidate(&m->tlb, p->iova, p->size);
	vrio_counter_add(&m->st.invalidations, 1);
	vrio_hist_add(&m->st.rtt, now - p->t0);
	if (p->deferred && now - p->t0 > vrio_counter_get(&m->st.stale_max_ns))
		__atomic_store_n(&m->st.stale_max_ns, now - p->t0, __ATOMIC_RELAXED);
	if (p->token > __atomic_load_n(&m->done_token, __ATOMIC_RELAXED))
		__atomic_store_n(&m->done_token, p->token, __ATOMIC_RELEASE);
}

int lhv_iommu_poll(struct lhv_dev *d)
{
	struct lhv_iommu *m = &d->iommu;
	unsigned started, i, done = 0;
	struct lhv_inval *p;
	uint64_t now;
	int rc, work;

	work = (int)(__atomic_load_n(&m->in_tail, __ATOMIC_ACQUIRE) - m->in_head);
	take_inbox(d);
	/* Messages are stamped by the control thread, possibly after the
	 * poller's round began: age them against a clock read after them. */
	now = vrio_now_ns();
	started = batch_started(m, now);
	for (i = 0; i < started; i++) {
		p = &m->pend[i];
		p->started = true;
		if (!p->seq && !p->acked) {
			rc = lhv_up_send_invalidate(d, p->iova, p->size, &p->seq);
			if (rc == 0 && p->seq > m->max_seq)
				m->max_seq = p->seq;
			/* No connection: the io-server holds nothing of the guest. */
			if (rc == -ENOTCONN)
				p->acked = true;
		}
		if (now - p->t0 > LHV_IOMMU_INVAL_NS && !d->broken)
			lhv_dev_break(d, 0, "IOTLB invalidation of %#llx+%#llx stuck for %llu ms",
				      (unsigned long long)p->iova, (unsigned long long)p->size,
				      (unsigned long long)((now - p->t0) / 1000000));
		/* In order: a later one waits for the ones before it. */
		if (done == i && (p->acked || d->broken) &&
		    !inflight_overlaps(d, p->iova, p->size)) {
			finish(d, p, now);
			done++;
		}
	}
	if (done) {
		memmove(m->pend, m->pend + done, (m->npend - done) * sizeof(m->pend[0]));
		m->npend -= done;
		work++;
	}
	if (m->deferred) {
		uint64_t oldest = m->npend ? now - m->pend[0].t0 : 0;

		__atomic_store_n(&m->st.stale, m->npend, __ATOMIC_RELAXED);
		if (oldest > vrio_counter_get(&m->st.stale_max_ns))
			__atomic_store_n(&m->st.stale_max_ns, oldest, __ATOMIC_RELAXED);
	}
	if (m->miss_out && now - m->miss_at > LHV_IOMMU_MISS_NS)
		lhv_dev_break(d, 0, "the VMM did not answer an IOTLB miss for %#llx",
			      (unsigned long long)m->miss_iova);
	return work;
}

static void send_miss(struct lhv_dev *d, uint64_t iova, uint8_t perm, uint64_t now)
{
	struct {
		uint32_t request, flags, size;
		struct vhost_iotlb_msg iotlb;
	} __attribute__((packed)) msg;
	int fd = __atomic_load_n(&d->iommu.slave_fd, __ATOMIC_ACQUIRE);

	if (fd < 0) {
		lhv_dev_break(d, 0, "IOTLB miss for %#llx, and the VMM gave no backend channel",
			      (unsigned long long)iova);
		return;
	}
	memset(&msg, 0, sizeof(msg));
	msg.request = VHOST_USER_BACKEND_IOTLB_MSG;
	msg.flags = VHOST_USER_VERSION;
	msg.size = sizeof(msg.iotlb);
	msg.iotlb.iova = iova;
	msg.iotlb.perm = perm;
	msg.iotlb.type = VHOST_IOTLB_MISS;
	if (send(fd, &msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
		VRIO_WARN_RL("%s: cannot send an IOTLB miss: %s", d->name, strerror(errno));
		return;
	}
	d->iommu.miss_out = true;
	d->iommu.miss_iova = iova;
	d->iommu.miss_at = now;
	vrio_counter_add(&d->iommu.tlb.misses, 1);
}

bool lhv_iommu_admit(struct lhv_dev *d, int walk_rc, uint64_t lo, uint64_t hi, uint64_t now)
{
	struct lhv_iommu *m = &d->iommu;
	unsigned i;

	if (walk_rc == LHV_WALK_IOTLB_MISS) {
		if (!m->miss_out || m->miss_iova != m->tlb.miss_iova)
			send_miss(d, m->tlb.miss_iova, m->tlb.miss_perm, now);
		return false;
	}
	if (walk_rc != LHV_WALK_OK)
		return true;
	for (i = 0; i < m->npend; i++)
		if (m->pend[i].started &&
		    lhv_ranges_overlap(lo, hi - lo, m->pend[i].iova, m->pend[i].size))
			return false;
	return true;
}

int lhv_iommu_timeout_ms(const struct lhv_dev *d, uint64_t now)
{
	const struct lhv_iommu *m = &d->iommu;
	uint64_t due;
	int t = -1;

	if (m->npend && !m->pend[0].started) {
		due = m->pend[0].t0 + (uint64_t)m->delay_ms * 1000000ull;
		t = due > now ? (int)((due - now) / 1000000 + 1) : 0;
	} else if (m->npend) {
		t = 10;		/* the stuck check; progress itself wakes us */
	}
	if (m->miss_out && (t < 0 || t > 100))
		t = 100;
	return t;
}

int lhv_iommu_acked(struct lhv_dev *d, uint64_t seq)
{
	struct lhv_iommu *m = &d->iommu;
	unsigned i;

	for (i = 0; i < m->npend; i++) {
		if (m->pend[i].seq == seq && !m->pend[i].acked) {
			m->pend[i].acked = true;
			return 0;
		}
	}
	/* One we asked for and stopped waiting on (the device stopped or
	 * broke meanwhile) is late, not garbage. */
	return seq && seq <= m->max_seq ? 0 : -EBADMSG;
}

void lhv_iommu_upstream_lost(struct lhv_dev *d)
{
	unsigned i;

	for (i = 0; i < d->iommu.npend; i++)
		if (d->iommu.pend[i].seq)
			d->iommu.pend[i].acked = true;
}

void lhv_iommu_reset(struct lhv_dev *d)
{
	struct lhv_iommu *m = &d->iommu;
	uint64_t now = vrio_now_ns();
	unsigned i;

	take_inbox(d);
	for (i = 0; i < m->npend; i++)
		finish(d, &m->pend[i], now);
	m->npend = 0;
	m->miss_out = false;
	__atomic_store_n(&m->st.stale, 0, __ATOMIC_RELAXED);
}
