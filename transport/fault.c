/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fault-injection wrapper: a connection that passes frames to the one
 * beneath it, except when a seeded generator says to drop, duplicate, hold
 * back (reorder) or delay them, or to cut the connection. It only affects
 * what this side sends; both daemons wrap theirs, so both directions see
 * faults. The same seed and stream give the same decisions, so a failure
 * can be replayed.
 *
 * Held frames are copied into heap buffers: this layer exists for tests,
 * not for the data path of a production stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "transport_internal.h"

#define HOLD_MAX_NS	(2ull * 1000 * 1000)	/* a reordered frame waits at most this */

struct held {
	struct held *next;
	uint64_t due_ns;
	bool hold;		/* waits for a later frame to overtake it */
	struct vrio_frame f;
	uint8_t data[];
};

struct fault_conn {
	struct vrio_conn base;		/* base.inner: the connection below */
	struct vrio_faults f;
	uint64_t rng;
	uint64_t sent;
	bool cut_allowed;	/* only the first connection of a stack is cut */
	bool dead;
	struct held *head, **tail;
	unsigned nheld;
};

static const struct vrio_transport_ops fault_ops;

static struct fault_conn *to_fault(struct vrio_conn *c)
{
	return container_of(c, struct fault_conn, base);
}

/* xorshift64*: small, fast and good enough to pick faults. */
static double rnd(struct fault_conn *fc)
{
	fc->rng ^= fc->rng >> 12;
	fc->rng ^= fc->rng << 25;
	fc->rng ^= fc->rng >> 27;
	return (double)((fc->rng * 0x2545f4914f6cdd1dull) >> 11) / (double)(1ull << 53);
}

static void enqueue(struct fault_conn *fc, struct held *h)
{
	h->next = NULL;
	*fc->tail = h;
	fc->tail = &h->next;
	fc->nheld++;
}

static struct held *copy_frame(const struct vrio_frame *f, const struct iovec *iov, int iovcnt,
			       uint64_t due)
{
	struct held *h = malloc(sizeof(*h) + f->len);
	size_t off = 0;
	int i;

	if (!h)
		return NULL;
	h->f = *f;
	h->due_ns = due;
	h->hold = false;
	for (i = 0; i < iovcnt; i++) {
		memcpy(h->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return h;
}

/* Pass on what is due, in order; a held frame lets the next one overtake. */
static int release(struct fault_conn *fc, uint64_t now)
{
	struct held *h;
	struct iovec iov;
	int rc;

	while ((h = fc->head) && h->due_ns <= now) {
		if (h->hold && h->next && h->next->due_ns <= now) {
			struct held *n = h->next;

			/* Swap: the later frame goes first. */
			h->next = n->next;
			n->next = h;
			fc->head = n;
			if (fc->tail == &h->next || !h->next)
				fc->tail = &h->next;
			h->hold = false;
			vrio_counter_add(&fc->base.stats.injected_reorders, 1);
			continue;
		}
		if (h->hold && now - h->due_ns < HOLD_MAX_NS)
			break;
		iov.iov_base = h->data;
		iov.iov_len = h->f.len;
		rc = fc->base.inner->ops->send(fc->base.inner, &h->f, &iov, h->f.len ? 1 : 0);
		if (rc == -ENOBUFS)
			return 0;
		if (rc < 0)
			return rc;
		fc->head = h->next;
		if (!fc->head)
			fc->tail = &fc->head;
		fc->nheld--;
		free(h);
	}
	return 0;
}

static int fault_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		      int iovcnt)
{
	struct fault_conn *fc = to_fault(c);
	uint64_t now = vrio_now_ns(), due = now + (uint64_t)fc->f.delay_us * 1000;
	struct held *h, *dup;

	if (fc->dead)
		return -ECONNRESET;
	if (fc->cut_allowed && fc->f.disconnect_after && ++fc->sent > fc->f.disconnect_after) {
		VRIO_WARN("%s: fault injection: cutting the connection after %llu frames",
			  c->name, (unsigned long long)fc->f.disconnect_after);
		fc->dead = true;
		return -ECONNRESET;
	}
	c->stats.frames_tx++;
	c->stats.bytes_tx += VRIO_FRAME_HDR_LEN + f->len;
	if (rnd(fc) < fc->f.drop) {
		vrio_counter_add(&c->stats.injected_drops, 1);
		return 0;
	}
	h = copy_frame(f, iov, iovcnt, due);
	if (!h)
		return -ENOMEM;
	h->hold = rnd(fc) < fc->f.reorder;
	enqueue(fc, h);
	if (rnd(fc) < fc->f.duplicate) {
		dup = copy_frame(f, iov, iovcnt, due);
		if (dup) {
			enqueue(fc, dup);
			vrio_counter_add(&c->stats.injected_dups, 1);
		}
	}
	return 0;
}

static int fault_flush(struct vrio_conn *c)
{
	struct fault_conn *fc = to_fault(c);
	int rc;

	if (fc->dead)
		return -ECONNRESET;
	rc = release(fc, vrio_now_ns());
	if (rc < 0)
		return rc;
	rc = fc->base.inner->ops->flush(fc->base.inner);
	if (rc < 0)
		return rc;
	return rc || fc->head ? 1 : 0;
}

struct upcall {
	vrio_recv_cb cb;
	void *arg;
	struct vrio_conn *outer;
};

static int fault_recv(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		      const void *payload)
{
	struct upcall *u = arg;

	u->outer->stats.frames_rx++;
	u->outer->stats.bytes_rx += VRIO_FRAME_HDR_LEN + f->len;
	return u->cb(u->arg, u->outer, f, payload);
}

static int fault_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct fault_conn *fc = to_fault(c);
	struct upcall u = { cb, arg, c };
	int rc;

	if (fc->dead)
		return -ECONNRESET;
	rc = release(fc, vrio_now_ns());
	if (rc < 0)
		return rc;
	return fc->base.inner->ops->poll(fc->base.inner, fault_recv, &u, budget);
}

static int fault_sleep_prepare(struct vrio_conn *c)
{
	return vrio_conn_sleep_prepare(to_fault(c)->base.inner);
}

static int fault_conn_fd(struct vrio_conn *c)
{
	return vrio_conn_fd(to_fault(c)->base.inner);
}

static int fault_pending(struct vrio_conn *c)
{
	struct fault_conn *fc = to_fault(c);

	return fc->head || (fc->base.inner->ops->pending && fc->base.inner->ops->pending(fc->base.inner));
}

static int fault_timeout_ms(struct vrio_conn *c)
{
	struct fault_conn *fc = to_fault(c);
	int t = vrio_conn_timeout_ms(fc->base.inner);

	if (fc->dead)
		return 0;
	if (fc->head) {
		uint64_t now = vrio_now_ns(), due = fc->head->due_ns;
		int ms = due > now ? (int)((due - now) / 1000000) + 1 : 0;

		if (fc->head->hold)
			ms = 1;
		if (t < 0 || ms < t)
			t = ms;
	}
	return t;
}

static void fault_close(struct vrio_conn *c)
{
	struct fault_conn *fc;
	struct held *h;

	if (!c)
		return;
	fc = to_fault(c);
	while ((h = fc->head)) {
		fc->head = h->next;
		free(h);
	}
	fc->base.inner->ops->close(fc->base.inner);
	free(fc);
}

/* A layer, not a backend: stacked with vrio_fault_wrap(), never registered,
 * so it has only the connection operations. */
static const struct vrio_transport_ops fault_ops = {
	.name = "fault",
	.send = fault_send,
	.flush = fault_flush,
	.poll = fault_poll,
	.close = fault_close,
	.conn_fd = fault_conn_fd,
	.sleep_prepare = fault_sleep_prepare,
	.pending = fault_pending,
	.timeout_ms = fault_timeout_ms,
};

int vrio_fault_wrap(struct vrio_conn *inner, const struct vrio_faults *f, uint64_t stream,
		    struct vrio_conn **out)
{
	struct fault_conn *fc = calloc(1, sizeof(*fc));

	if (!fc) {
		inner->ops->close(inner);
		return -ENOMEM;
	}
	fc->base.ops = &fault_ops;
	snprintf(fc->base.name, sizeof(fc->base.name), "%s", inner->name);
	fc->base.inner = inner;
	fc->f = *f;
	/* Never 0: xorshift would stay there. */
	fc->rng = (f->seed ^ (stream * 0x9e3779b97f4a7c15ull)) | 1;
	fc->cut_allowed = stream == 0;
	fc->tail = &fc->head;
	*out = &fc->base;
	return 0;
}

static int parse_prob(const char *val, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(val, &end);
	if (errno || *end || !(d >= 0.0 && d <= 1.0))
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_count(const char *val, uint64_t max, uint64_t *out)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(val, &end, 10);
	if (errno || *end || !*val || val[0] == '-' || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_one(struct vrio_faults *f, const char *key, const char *val)
{
	uint64_t n;
	int rc;

	if (!strcmp(key, "drop"))
		return parse_prob(val, &f->drop);
	if (!strcmp(key, "duplicate"))
		return parse_prob(val, &f->duplicate);
	if (!strcmp(key, "reorder"))
		return parse_prob(val, &f->reorder);
	if (!strcmp(key, "seed"))
		return parse_count(val, UINT64_MAX, &f->seed);
	if (!strcmp(key, "disconnect_after"))
		return parse_count(val, UINT64_MAX, &f->disconnect_after);
	if (!strcmp(key, "delay_us")) {
		rc = parse_count(val, 1000000, &n);
		f->delay_us = (unsigned)n;
		return rc;
	}
	return -EINVAL;
}

int vrio_faults_parse(const char *spec, struct vrio_faults *f)
{
	char *copy = strdup(spec), *save = NULL, *item, *eq;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	memset(f, 0, sizeof(*f));
	for (item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (!eq) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		rc = parse_one(f, item, eq + 1);
	}
	free(copy);
	f->enabled = rc == 0;
	return rc;
}
