/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request/response queue path (vq.c) over a split ring in a buffer
 * that plays the guest's memory, its neighbours stubbed: a chain taken and
 * answered, its response scattered into the buffers the chain had when it
 * was taken (translated once, at submit) even if the guest rewrites its
 * descriptors meanwhile; a chain with more writable segments than a slot
 * keeps is walked again at completion, and a change of it breaks the
 * device as before. The used index is published once per upstream poll,
 * at its end. The hops: one submit sample per request, and each device
 * listed once for the poll's end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../local-hv/vq.c"

/* ---- stubs of vq.c's neighbours ---- */

static struct vrio_frame sent_f[8];
static unsigned n_sent;

int lhv_up_send(struct lhv_upstream *up, const struct vrio_frame *f, const struct iovec *iov,
		int iovcnt)
{
	if (n_sent < 8)
		sent_f[n_sent] = *f;
	n_sent++;
	return 0;
}

bool lhv_iommu_admit(struct lhv_dev *d, int walk_rc, uint64_t lo, uint64_t hi, uint64_t now)
{
	return true;
}

void lhv_inflight_take(struct lhv_dev *d, unsigned qi, uint16_t head) {}
void lhv_inflight_untake(struct lhv_dev *d, unsigned qi, uint16_t head) {}
void lhv_inflight_completing(struct lhv_dev *d, unsigned qi, uint16_t head) {}
void lhv_inflight_completed(struct lhv_dev *d, unsigned qi, uint16_t head) {}
void lhv_inflight_sent(struct lhv_dev *d, unsigned qi) {}
int lhv_rr_start(struct lhv_dev *d, int vid) { return 0; }
void lhv_rr_release(struct lhv_dev *d) {}

/* ---- the guest ---- */

#define QSIZE	8
#define GPA	0x100000ull
#define MEMSZ	(256u << 10)
#define DESC	0x0000u		/* offsets in the guest's memory */
#define AVAIL	0x1000u
#define USED	0x2000u
#define HDR	0x3000u
#define DATA_A	0x4000u		/* where the chain's data buffer is taken */
#define DATA_B	0x8000u		/* where the guest points it afterwards */
#define STATUS	0xc000u
#define SMALL	0x10000u	/* 6 x 512-byte writable buffers */

struct fixture {
	uint8_t *mem;
	struct lhv_region region;
	struct lhv *l;
	struct lhv_dev *d;
};

static struct vring_desc *desc(struct fixture *f)
{
	return (struct vring_desc *)(f->mem + DESC);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct lhv_vq *q;

	assert_non_null(f);
	f->mem = aligned_alloc(4096, MEMSZ);
	f->l = calloc(1, sizeof(*f->l));
	f->d = calloc(1, sizeof(*f->d));
	assert_non_null(f->mem);
	assert_non_null(f->l);
	assert_non_null(f->d);
	memset(f->mem, 0, MEMSZ);
	f->region = (struct lhv_region){ .gpa = GPA, .size = MEMSZ,
					 .hva = (uint64_t)(uintptr_t)f->mem };
	snprintf(f->d->name, sizeof(f->d->name), "test-disk");
	f->d->state = LHV_DEV_RUNNING;
	f->d->epoch = 3;
	f->d->max_request = 1 << 20;
	f->d->mem.n = 1;
	f->d->mem.r = &f->region;
	f->d->nvq = 1;
	q = &f->d->vq[0];
	q->desc = (struct vring_desc *)(f->mem + DESC);
	q->avail = (struct vring_avail *)(f->mem + AVAIL);
	q->used = (struct vring_used *)(f->mem + USED);
	q->size = QSIZE;
	q->active = true;
	q->callfd = -1;
	q->slots = calloc(QSIZE, sizeof(*q->slots));
	assert_non_null(q->slots);
	n_sent = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->d->vq[0].slots);
	free(f->d);
	free(f->l);
	free(f->mem);
	free(f);
	return 0;
}

static void set_desc(struct fixture *f, unsigned i, uint32_t off, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	desc(f)[i] = (struct vring_desc){ .addr = GPA + off, .len = len, .flags = flags,
					  .next = next };
}

static void post(struct fixture *f, uint16_t head)
{
	struct vring_avail *a = (struct vring_avail *)(f->mem + AVAIL);

	a->ring[a->idx % QSIZE] = head;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}

/* The io-server's answer to the last request sent: len bytes of `fill`. */
static int answer(struct fixture *f, uint32_t len, uint8_t fill)
{
	struct vrio_frame r = sent_f[n_sent - 1];
	uint8_t *payload = malloc(len);
	int rc;

	assert_non_null(payload);
	memset(payload, fill, len);
	r.type = VRIO_FRAME_RESP;
	r.len = len;
	f->l->round_ns = vrio_now_ns();
	rc = lhv_rr_ops.frame(f->l, f->d, &r, payload);
	free(payload);
	return rc;
}

/* The end of the upstream poll (upstream.c's poll_done). */
static void poll_end(struct fixture *f)
{
	for (unsigned i = 0; i < f->l->ncompleted; i++) {
		lhv_rr_ops.frames_done(f->l->completed[i]);
		f->l->completed[i]->completed = 0;
	}
	f->l->ncompleted = 0;
}

static bool all(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Header, 4 KiB of data, a status byte: the data goes where the chain
 * pointed when it was taken, not where the guest points it later. */
static void test_scatter_to_buffers_taken(void **state)
{
	struct fixture *f = *state;
	struct vring_used *u = (struct vring_used *)(f->mem + USED);
	struct lhv_slot *s = &f->d->vq[0].slots[0];

	set_desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA_A, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(f, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	post(f, 0);
	assert_int_equal(lhv_rr_ops.process(f->l, f->d, 0, 16), 1);
	assert_int_equal(n_sent, 1);
	assert_int_equal(sent_f[0].len, 16);
	assert_int_equal(sent_f[0].arg, 4097);
	assert_true(s->busy && s->cached);
	assert_int_equal(s->nw, 2);
	assert_true(s->t0 != 0);
	assert_int_equal(f->d->st.hop[LHV_HOP_SUBMIT].count, 1);

	/* The guest moves the buffer while the request is in flight. */
	desc(f)[1].addr = GPA + DATA_B;
	assert_int_equal(answer(f, 4097, 0xab), 0);
	assert_false(f->d->broken);
	assert_true(all(f->mem + DATA_A, 4096, 0xab));
	assert_true(all(f->mem + DATA_B, 4096, 0));
	assert_int_equal(f->mem[STATUS], 0xab);
	assert_int_equal(u->ring[0].id, 0);
	assert_int_equal(u->ring[0].len, 4097);
	assert_false(s->busy);
	/* Listed once for the poll's end (upstream.c), which publishes the
	 * batch's used index and times its complete hop. */
	assert_int_equal(f->l->ncompleted, 1);
	assert_ptr_equal(f->l->completed[0], f->d);
	assert_int_equal(f->d->completed, 1);
	assert_int_equal(u->idx, 0);
	poll_end(f);
	assert_int_equal(u->idx, 1);
}

/* Three answers in one poll: the used index moves once, by three. */
static void test_used_index_per_poll(void **state)
{
	struct fixture *f = *state;
	struct vring_used *u = (struct vring_used *)(f->mem + USED);
	unsigned i;

	for (i = 0; i < 3; i++) {
		set_desc(f, 2 * i, HDR + 16 * i, 16, VRING_DESC_F_NEXT, (uint16_t)(2 * i + 1));
		set_desc(f, 2 * i + 1, STATUS + i, 1, VRING_DESC_F_WRITE, 0);
		post(f, (uint16_t)(2 * i));
	}
	assert_int_equal(lhv_rr_ops.process(f->l, f->d, 0, 16), 3);
	assert_int_equal(f->d->st.hop[LHV_HOP_SUBMIT].count, 3);
	for (i = 0; i < 3; i++) {
		n_sent = i + 1;
		assert_int_equal(answer(f, 1, (uint8_t)(0x10 + i)), 0);
	}
	assert_int_equal(f->l->ncompleted, 1);
	assert_int_equal(f->d->completed, 3);
	assert_int_equal(u->idx, 0);
	poll_end(f);
	assert_int_equal(u->idx, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(u->ring[i].id, 2 * i);
		assert_int_equal(f->mem[STATUS + i], 0x10 + i);
	}
	/* Nothing more to publish: a second end changes nothing. */
	u->idx = 0;
	poll_end(f);
	assert_int_equal(u->idx, 0);
}

/* A request a previous backend left in flight (inflight.c marks it busy
 * and unsent) goes first, then the new chain: each counted and timed
 * once, as what it is. */
static void test_unsent_then_new(void **state)
{
	struct fixture *f = *state;
	struct lhv_vq *q = &f->d->vq[0];
	struct vring_avail *a = (struct vring_avail *)(f->mem + AVAIL);

	set_desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, STATUS, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, 2, HDR + 16, 16, VRING_DESC_F_NEXT, 3);
	set_desc(f, 3, STATUS + 1, 1, VRING_DESC_F_WRITE, 0);
	/* Head 0 was taken by the last backend: past it in the ring. */
	a->ring[0] = 0;
	a->idx = 1;
	q->last_avail = 1;
	q->slots[0].busy = q->slots[0].unsent = true;
	q->unsent = 1;
	post(f, 2);
	assert_int_equal(lhv_rr_ops.process(f->l, f->d, 0, 16), 2);
	assert_int_equal(n_sent, 2);
	assert_int_equal(sent_f[0].id & 0xffff, 0);
	assert_int_equal(sent_f[1].id & 0xffff, 2);
	assert_int_equal(q->unsent, 0);
	assert_int_equal(q->inflight, 2);
	assert_int_equal(f->d->st.resubmitted, 1);
	assert_int_equal(f->d->st.requests, 1);
	assert_int_equal(f->d->st.hop[LHV_HOP_SUBMIT].count, 1);
	assert_true(q->slots[0].t0 != 0 && q->slots[2].t0 != 0);
	assert_true(q->slots[0].cached && q->slots[2].cached);
	n_sent = 1;
	assert_int_equal(answer(f, 1, 0x21), 0);
	n_sent = 2;
	assert_int_equal(answer(f, 1, 0x22), 0);
	poll_end(f);
	assert_int_equal(f->mem[STATUS], 0x21);
	assert_int_equal(f->mem[STATUS + 1], 0x22);
	assert_int_equal(((struct vring_used *)(f->mem + USED))->idx, 2);
}

/* Six writable buffers: more than a slot keeps. The completion walks the
 * chain again; unchanged, the bytes land in order... */
static void post_long(struct fixture *f)
{
	unsigned i;

	set_desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	for (i = 1; i <= 6; i++)
		set_desc(f, i, SMALL + (i - 1) * 1024, 512,
			 VRING_DESC_F_WRITE | (i < 6 ? VRING_DESC_F_NEXT : 0), (uint16_t)(i + 1));
	post(f, 0);
	assert_int_equal(lhv_rr_ops.process(f->l, f->d, 0, 16), 1);
	assert_false(f->d->vq[0].slots[0].cached);
}

static void test_long_chain_walked_again(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	post_long(f);
	assert_int_equal(answer(f, 6 * 512, 0x5a), 0);
	assert_false(f->d->broken);
	poll_end(f);
	assert_int_equal(((struct vring_used *)(f->mem + USED))->idx, 1);
	for (i = 0; i < 6; i++) {
		assert_true(all(f->mem + SMALL + i * 1024, 512, 0x5a));
		assert_true(all(f->mem + SMALL + i * 1024 + 512, 512, 0));
	}
}

/* ... and shrunk in flight, it breaks the device, nothing written. */
static void test_long_chain_changed_breaks(void **state)
{
	struct fixture *f = *state;

	post_long(f);
	desc(f)[6].len = 16;
	assert_int_equal(answer(f, 6 * 512, 0x5a), 0);
	assert_true(f->d->broken);
	assert_true(all(f->mem + SMALL, 6 * 1024, 0));
	assert_int_equal(f->l->ncompleted, 0);
	poll_end(f);
	assert_int_equal(((struct vring_used *)(f->mem + USED))->idx, 0);
}

/* A response longer than the chain offered is the peer's garbage. */
static void test_response_too_long(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, STATUS, 1, VRING_DESC_F_WRITE, 0);
	post(f, 0);
	assert_int_equal(lhv_rr_ops.process(f->l, f->d, 0, 16), 1);
	assert_int_equal(answer(f, 2, 0x11), -EBADMSG);
	assert_int_equal(f->mem[STATUS], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scatter_to_buffers_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_used_index_per_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsent_then_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_chain_walked_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_chain_changed_breaks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_too_long, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
