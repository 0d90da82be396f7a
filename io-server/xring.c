/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frames between reactors: one single-producer single-consumer byte ring
 * per ordered pair (from, to), made by its producer the first time it has
 * something to send and published with a release store; the consumer sees
 * it on its next turn. A record is a header and the frame, padded to 8
 * bytes; one that does not fit before the end of the ring is preceded by a
 * pad record and starts over at the beginning. Positions only grow. A
 * record names its port and the port's generation: a port unlinked since
 * is stale, and its frames are dropped (switch.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"

#define XREC_PAD	UINT32_MAX
#define XRING_BUDGET	64

struct xrec {
	uint32_t len;			/* frame bytes, or XREC_PAD */
	uint16_t kind;			/* enum ios_xmsg_kind */
	uint16_t rsvd;
	struct ios_port *port;
	uint32_t gen;			/* the port's generation at the push */
	struct vrio_pkt_wire vh;	/* the frame's offload metadata */
};

struct ios_xring {
	uint64_t head;			/* atomic: written by the producer */
	uint64_t tail;			/* atomic: written by the consumer */
	uint8_t data[IOS_XRING_BYTES];
};

_Static_assert((IOS_XRING_BYTES & (IOS_XRING_BYTES - 1)) == 0, "ring size is a power of two");
_Static_assert(sizeof(struct xrec) % 8 == 0, "records stay 8-aligned");

static size_t rec_size(uint32_t len)
{
	return sizeof(struct xrec) + (((size_t)len + 7) & ~(size_t)7);
}

static struct ios_xring **slot(struct ios_switch *sw, unsigned from, unsigned to)
{
	return &sw->xrings[from * sw->xring_n + to];
}

bool ios_xring_push(struct ios_switch *sw, struct ios_reactor *from, struct ios_reactor *to,
		    enum ios_xmsg_kind kind, struct ios_port *p, const struct vrio_pkt_wire *vh,
		    const uint8_t *frame, uint32_t len)
{
	struct ios_xring **sp = slot(sw, from->idx, to->idx), *x = *sp;
	size_t need = rec_size(len), off, pad;
	uint64_t head, tail;
	struct xrec *rec;

	if (!x) {
		/* Control path, once per pair: the first frame toward `to`. */
		x = calloc(1, sizeof(*x));
		if (!x)
			return false;
		__atomic_store_n(sp, x, __ATOMIC_RELEASE);
	}
	head = x->head;
	tail = __atomic_load_n(&x->tail, __ATOMIC_ACQUIRE);
	off = head & (IOS_XRING_BYTES - 1);
	pad = off + need > IOS_XRING_BYTES ? IOS_XRING_BYTES - off : 0;
	if (IOS_XRING_BYTES - (head - tail) < pad + need)
		return false;
	if (pad) {
		rec = (struct xrec *)(x->data + off);
		rec->len = XREC_PAD;
		head += pad;
		off = 0;
	}
	rec = (struct xrec *)(x->data + off);
	rec->len = len;
	rec->kind = (uint16_t)kind;
	rec->rsvd = 0;
	rec->port = p;
	rec->gen = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
	rec->vh = *vh;
	memcpy(rec + 1, frame, len);
	__atomic_store_n(&x->head, head + need, __ATOMIC_RELEASE);
	ios_reactor_notify(to);
	return true;
}

static int drain_ring(struct ios_reactor *r, struct ios_xring *x)
{
	uint64_t tail = x->tail, head = __atomic_load_n(&x->head, __ATOMIC_ACQUIRE);
	const struct xrec *rec;
	int n = 0;

	while (tail != head && n < XRING_BUDGET) {
		rec = (const struct xrec *)(x->data + (tail & (IOS_XRING_BYTES - 1)));
		if (rec->len == XREC_PAD) {
			tail += IOS_XRING_BYTES - (tail & (IOS_XRING_BYTES - 1));
			continue;
		}
		if (__atomic_load_n(&rec->port->gen, __ATOMIC_ACQUIRE) != rec->gen)
			;	/* the port went away: nobody to count it for */
		else if (rec->kind == IOS_XMSG_TO_SWITCH)
			ios_switch_forward(r, rec->port, &rec->vh, (const uint8_t *)(rec + 1),
					   rec->len);
		else
			ios_port_output_here(r, rec->port, &rec->vh, (const uint8_t *)(rec + 1),
					     rec->len);
		tail += rec_size(rec->len);
		n++;
	}
	__atomic_store_n(&x->tail, tail, __ATOMIC_RELEASE);
	return n;
}

int ios_xring_poll(struct ios_switch *sw, struct ios_reactor *r)
{
	struct ios_xring *x;
	int n = 0;

	if (!sw->xrings)
		return 0;
	for (unsigned from = 0; from < sw->xring_n; from++) {
		if (from == r->idx)
			continue;
		x = __atomic_load_n(slot(sw, from, r->idx), __ATOMIC_ACQUIRE);
		if (x)
			n += drain_ring(r, x);
	}
	return n;
}

bool ios_xring_pending(struct ios_switch *sw, struct ios_reactor *r)
{
	struct ios_xring *x;

	if (!sw->xrings)
		return false;
	for (unsigned from = 0; from < sw->xring_n; from++) {
		x = from == r->idx ? NULL : __atomic_load_n(slot(sw, from, r->idx), __ATOMIC_ACQUIRE);
		if (x && __atomic_load_n(&x->head, __ATOMIC_ACQUIRE) != x->tail)
			return true;
	}
	return false;
}

void ios_xring_free(struct ios_switch *sw)
{
	if (!sw->xrings)
		return;
	for (unsigned i = 0; i < sw->xring_n * sw->xring_n; i++)
		free(sw->xrings[i]);
	free(sw->xrings);
	sw->xrings = NULL;
	sw->xring_n = 0;
}
