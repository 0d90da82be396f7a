/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stream framing under tcp and tls (transport/stream.h), with the byte
 * stream in the test's hands: frames go out through a writer that takes
 * odd-sized pieces and now and then nothing, and come back through a
 * reader that gives them in pieces of each size in a table, so every frame
 * boundary falls inside a read somewhere. Checked: the bytes and the
 * frames are the same on both sides, the buffers grow only for a frame
 * larger than they hold, and a full send buffer, a failing callback and
 * a bad header end as stream.h says.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream.h"

#define NFRAMES 40
#define BIG (300u << 10)	/* larger than the receive buffer's 64 KiB */

static uint8_t pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 31 + i * 7);
}

static uint32_t frame_len(uint32_t id)
{
	return id == 17 ? BIG : (id * 977) % 5000;
}

/* The wire: what the writer took, what the reader gave so far. */
struct wire {
	uint8_t *buf;
	size_t len, cap, off;
	unsigned calls;
	size_t piece;		/* the reader's and writer's piece size */
};

static ssize_t wire_write(void *arg, const void *p, size_t len)
{
	struct wire *w = arg;

	/* Every third call the "socket" is full. */
	if (++w->calls % 3 == 0)
		return 0;
	if (len > w->piece)
		len = w->piece;
	if (w->len + len > w->cap) {
		w->cap = (w->len + len) * 2;
		w->buf = realloc(w->buf, w->cap);
		assert_non_null(w->buf);
	}
	memcpy(w->buf + w->len, p, len);
	w->len += len;
	return (ssize_t)len;
}

static ssize_t wire_read(void *arg, void *p, size_t len)
{
	struct wire *w = arg;

	assert_true(len > 0);
	if (w->off == w->len)
		return 0;
	if (len > w->piece)
		len = w->piece;
	if (len > w->len - w->off)
		len = w->len - w->off;
	memcpy(p, w->buf + w->off, len);
	w->off += len;
	return (ssize_t)len;
}

struct sink {
	uint32_t next_id;
	int fail_at;		/* this frame's callback fails, or -1 */
};

static int sink_cb(void *arg, struct vrio_conn *c, const struct vrio_frame *f, const void *payload)
{
	struct sink *s = arg;
	const uint8_t *p = payload;
	size_t i;

	(void)c;
	assert_int_equal(f->id, s->next_id);
	assert_int_equal(f->len, frame_len(f->id));
	assert_int_equal(f->type, VRIO_FRAME_REQ);
	for (i = 0; i < f->len; i++)
		if (p[i] != pattern(f->id, i))
			fail_msg("frame %u byte %zu", f->id, i);
	s->next_id++;
	return (int)f->id == s->fail_at ? -EPROTO : 0;
}

/* Queue frames [0, NFRAMES) in two halves, pushing in between. */
static void send_all(struct wire *w, struct vrio_conn *c)
{
	struct vrio_sbuf s;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ };
	struct iovec iov[2];
	uint8_t *pay = malloc(BIG);
	uint32_t id;
	size_t i, expect = 0;
	int rc;

	assert_non_null(pay);
	assert_int_equal(vrio_sbuf_init(&s, 4096, 1u << 20), 0);
	for (id = 0; id < NFRAMES; id++) {
		f.id = id;
		f.len = frame_len(id);
		for (i = 0; i < f.len; i++)
			pay[i] = pattern(id, i);
		/* The payload in two pieces, the first perhaps empty. */
		iov[0] = (struct iovec){ pay, f.len / 3 };
		iov[1] = (struct iovec){ pay + f.len / 3, f.len - f.len / 3 };
		assert_int_equal(vrio_sbuf_put_frame(&s, c, &f, iov, 2), 0);
		expect += VRIO_FRAME_HDR_LEN + f.len;
		if (id == NFRAMES / 2)
			while ((rc = vrio_sbuf_push(&s, wire_write, w)) == 1)
				;
	}
	while ((rc = vrio_sbuf_push(&s, wire_write, w)) == 1)
		assert_true(vrio_sbuf_pending(&s));
	assert_int_equal(rc, 0);
	assert_false(vrio_sbuf_pending(&s));
	assert_int_equal(s.head, 0);
	assert_int_equal(s.tail, 0);
	assert_int_equal(w->len, expect);
	assert_int_equal(c->stats.frames_tx, NFRAMES);
	assert_int_equal(c->stats.bytes_tx, expect);
	/* Grown by doubling, to no more than the big frame needs. */
	assert_true(s.cap >= VRIO_FRAME_HDR_LEN + BIG && s.cap < 2 * (VRIO_FRAME_HDR_LEN + BIG));
	vrio_sbuf_fini(&s);
	free(pay);
}

static void test_round_trip(void **state)
{
	static const size_t pieces[] = { 1, 7, 32, 33, 1000, 4096, 1 << 20 };
	unsigned k, budget;
	int rc;

	(void)state;
	for (k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
		struct wire w = { .piece = pieces[k] };
		struct vrio_conn c = { 0 };
		struct vrio_rbuf r;
		struct sink s = { .fail_at = -1 };

		send_all(&w, &c);
		assert_int_equal(vrio_rbuf_init(&r, 64u << 10), 0);
		/* Budgets 1, 2, 3...: never more frames than asked for. */
		for (budget = 1; s.next_id < NFRAMES; budget = budget % 4 + 1) {
			uint32_t before = s.next_id;

			rc = vrio_rbuf_deliver(&r, &c, sink_cb, &s, budget);
			assert_true(rc >= 0 && (unsigned)rc <= budget);
			assert_int_equal(s.next_id - before, rc);
			if ((unsigned)rc == budget || s.next_id == NFRAMES)
				continue;
			/* Fewer than asked: no whole frame left, so a fill is due. */
			assert_true(r.want > r.tail - r.head);
			rc = vrio_rbuf_fill(&r, &c, wire_read, &w);
			assert_int_equal(rc, 1);
			assert_true(r.cap - r.head >= r.want);
		}
		assert_int_equal(vrio_rbuf_fill(&r, &c, wire_read, &w), 0);
		assert_int_equal(r.head, r.tail);
		assert_int_equal(c.stats.frames_rx, NFRAMES);
		assert_int_equal(c.stats.bytes_rx, w.len);
		/* Grown once, to what the big frame needed. */
		assert_true(r.cap <= VRIO_FRAME_HDR_LEN + BIG + (64u << 10));
		vrio_rbuf_fini(&r);
		free(w.buf);
	}
}

static void test_callback_error_and_bad_header(void **state)
{
	struct wire w = { .piece = 1 << 20 };
	struct vrio_conn c = { 0 };
	struct vrio_rbuf r;
	struct sink s = { .fail_at = 3 };

	(void)state;
	send_all(&w, &c);
	/* Frame 5's magic is broken. */
	w.off = 0;
	for (uint32_t id = 0; id < 5; id++)
		w.off += VRIO_FRAME_HDR_LEN + frame_len(id);
	w.buf[w.off] ^= 0xff;
	w.off = 0;
	assert_int_equal(vrio_rbuf_init(&r, 64u << 10), 0);
	assert_int_equal(vrio_rbuf_fill(&r, &c, wire_read, &w), 1);
	/* The failing frame is consumed, and counted, and the poll stops. */
	assert_int_equal(vrio_rbuf_deliver(&r, &c, sink_cb, &s, 100), -EPROTO);
	assert_int_equal(s.next_id, 4);
	assert_int_equal(c.stats.frames_rx, 4);
	assert_int_equal(vrio_rbuf_deliver(&r, &c, sink_cb, &s, 1), 1);
	assert_int_equal(vrio_rbuf_deliver(&r, &c, sink_cb, &s, 100), -EBADMSG);
	assert_int_equal(s.next_id, 5);
	vrio_rbuf_fini(&r);
	free(w.buf);
}

static void test_send_limits(void **state)
{
	struct vrio_conn c = { 0 };
	struct vrio_sbuf s;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 100 };
	static uint8_t pay[100];
	struct iovec iov = { pay, sizeof(pay) };
	unsigned n = 0;
	int rc;

	(void)state;
	assert_int_equal(vrio_sbuf_init(&s, 1024, 4096), 0);
	/* A length that is not the iov's, or past the largest frame. */
	f.len = 99;
	assert_int_equal(vrio_sbuf_put_frame(&s, &c, &f, &iov, 1), -EINVAL);
	f.len = 100;
	/* Fill to the limit: -ENOBUFS, nothing half-queued. */
	while ((rc = vrio_sbuf_put_frame(&s, &c, &f, &iov, 1)) == 0)
		n++;
	assert_int_equal(rc, -ENOBUFS);
	assert_int_equal(n, 4096 / (VRIO_FRAME_HDR_LEN + 100));
	assert_int_equal(s.tail, n * (VRIO_FRAME_HDR_LEN + 100));
	assert_int_equal(c.stats.frames_tx, n);
	assert_int_equal(s.cap, 4096);
	/* Once some left, the rest moves to the front: room without growth. */
	s.head = 2 * (VRIO_FRAME_HDR_LEN + 100);
	assert_int_equal(vrio_sbuf_put_frame(&s, &c, &f, &iov, 1), 0);
	assert_int_equal(s.head, 0);
	assert_int_equal(s.tail, (n - 1) * (VRIO_FRAME_HDR_LEN + 100));
	assert_int_equal(s.cap, 4096);
	vrio_sbuf_fini(&s);
}

static int count_cb(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	(void)c, (void)payload;
	assert_int_equal(f->len, 10);
	(*(unsigned *)arg)++;
	return 0;
}

static void test_socket_callbacks(void **state)
{
	struct vrio_conn c = { 0 };
	struct vrio_sbuf s;
	struct vrio_rbuf r;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 10 };
	uint8_t pay[10] = { 0 };
	struct iovec iov = { pay, sizeof(pay) };
	unsigned got = 0;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vrio_sbuf_init(&s, 1024, 4096), 0);
	assert_int_equal(vrio_rbuf_init(&r, 1024), 0);
	/* Nothing there: 0, not an error. */
	assert_int_equal(vrio_rbuf_fill(&r, &c, vrio_stream_fd_read, &sv[1]), 0);
	assert_int_equal(vrio_sbuf_put_frame(&s, &c, &f, &iov, 1), 0);
	assert_int_equal(vrio_sbuf_put_frame(&s, &c, &f, &iov, 1), 0);
	assert_int_equal(vrio_sbuf_push(&s, vrio_stream_fd_write, &sv[0]), 0);
	assert_int_equal(vrio_rbuf_fill(&r, &c, vrio_stream_fd_read, &sv[1]), 1);
	assert_int_equal(vrio_rbuf_deliver(&r, &c, count_cb, &got, 8), 2);
	assert_int_equal(got, 2);
	/* The peer's close is the connection's end. */
	close(sv[0]);
	assert_int_equal(vrio_rbuf_fill(&r, &c, vrio_stream_fd_read, &sv[1]), -ECONNRESET);
	assert_true(vrio_stream_fd_write(&sv[1], pay, sizeof(pay)) < 0);
	close(sv[1]);
	vrio_rbuf_fini(&r);
	vrio_sbuf_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_callback_error_and_bad_header),
		cmocka_unit_test(test_send_limits),
		cmocka_unit_test(test_socket_callbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
