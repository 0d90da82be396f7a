/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reliable layer over the fault wrapper over TCP on loopback: frames
 * sent both ways while the wrapper drops, duplicates and reorders them must
 * arrive exactly once, in order, intact.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport.h"

#define NFRAMES 4000

struct end {
	struct vrio_conn *c;
	uint32_t next_send, next_recv;
	unsigned bad;
};

static uint8_t pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 13 + i);
}

static uint32_t frame_len(uint32_t id)
{
	return (id * 7919u) % 3000u;
}

static int tcp_pair(struct vrio_conn **a, struct vrio_conn **b)
{
	const struct vrio_transport_ops *ops = vrio_transport_find("tcp");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct vrio_listener *l;
	char addr[64];
	int fd, i, rc = -EAGAIN;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &len);
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	if (ops->listen(addr, &l) < 0 || ops->connect(addr, -1, a) < 0)
		return -1;
	for (i = 0; i < 1000 && rc == -EAGAIN; i++) {
		rc = ops->accept(l, b);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	ops->listener_close(l);
	return rc;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct end *e = arg;
	const uint8_t *p = payload;
	size_t i;

	if (f->id != e->next_recv || f->len != frame_len(f->id) || f->type != VRIO_FRAME_REQ)
		e->bad++;
	for (i = 0; i < f->len; i++)
		if (p[i] != pattern(f->id, i)) {
			e->bad++;
			break;
		}
	e->next_recv++;
	return 0;
}

static void pump(struct end *e)
{
	uint8_t buf[3000];
	struct iovec iov = { buf, 0 };
	struct vrio_frame f = { .type = VRIO_FRAME_REQ };
	size_t i;
	int rc;

	while (e->next_send < NFRAMES) {
		f.id = e->next_send;
		f.len = frame_len(f.id);
		for (i = 0; i < f.len; i++)
			buf[i] = pattern(f.id, i);
		iov.iov_len = f.len;
		rc = e->c->ops->send(e->c, &f, &iov, 1);
		if (rc == -ENOBUFS)
			break;
		assert_int_equal(rc, 0);
		e->next_send++;
	}
	assert_true(e->c->ops->flush(e->c) >= 0);
	assert_true(e->c->ops->poll(e->c, on_frame, e, 64) >= 0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Bounded in time, not in rounds: a loaded machine is slow, not wrong. */
static void run_both_ways(struct end *a, struct end *b)
{
	uint64_t spins = 0, t0 = now_ms();

	while ((a->next_recv < NFRAMES || b->next_recv < NFRAMES) && now_ms() - t0 < 60000) {
		pump(a);
		pump(b);
		if (++spins % 64 == 0)
			usleep(100);
	}
	print_message("%u+%u frames in %llu ms; retransmits %llu+%llu, duplicates %llu+%llu\n",
		      a->next_recv, b->next_recv, (unsigned long long)(now_ms() - t0),
		      (unsigned long long)a->c->stats.retransmits,
		      (unsigned long long)b->c->stats.retransmits,
		      (unsigned long long)a->c->stats.duplicates,
		      (unsigned long long)b->c->stats.duplicates);
	assert_int_equal(a->next_recv, NFRAMES);
	assert_int_equal(b->next_recv, NFRAMES);
	assert_int_equal(a->bad, 0);
	assert_int_equal(b->bad, 0);
}

static void test_clean(void **state)
{
	struct vrio_conn *ta, *tb;
	struct end a = { 0 }, b = { 0 };

	assert_int_equal(tcp_pair(&ta, &tb), 0);
	assert_int_equal(vrio_reliable_wrap(ta, &a.c), 0);
	assert_int_equal(vrio_reliable_wrap(tb, &b.c), 0);
	run_both_ways(&a, &b);
	/* Nothing duplicates frames here but our own retransmissions (a busy
	 * machine can delay an ack past the timer). */
	assert_true(a.c->stats.duplicates <= b.c->stats.retransmits);
	assert_true(b.c->stats.duplicates <= a.c->stats.retransmits);
	a.c->ops->close(a.c);
	b.c->ops->close(b.c);
}

/* What a metrics thread sees of the stack: each layer's own counters,
 * frames as the owner counts them, deltas only once. */
static void check_published(struct vrio_conn *top, struct vrio_conn *fault)
{
	struct vrio_conn_stats pub = { 0 }, last = { 0 }, sum = { 0 };

	vrio_conn_stats_publish(&pub, &last, top);
	assert_int_equal(pub.frames_tx, top->stats.frames_tx);
	assert_int_equal(pub.retransmits, top->stats.retransmits);
	assert_int_equal(pub.injected_drops, fault->stats.injected_drops);
	assert_int_equal(pub.injected_dups, fault->stats.injected_dups);
	assert_int_equal(pub.rtt_ns, top->stats.rtt_ns);
	vrio_conn_stats_publish(&pub, &last, top);
	assert_int_equal(pub.frames_tx, top->stats.frames_tx);
	assert_int_equal(pub.injected_drops, fault->stats.injected_drops);
	/* Two published sets sum; the round-trip time is the larger. */
	vrio_conn_stats_sum(&sum, &pub);
	vrio_conn_stats_sum(&sum, &pub);
	assert_int_equal(sum.frames_tx, 2 * top->stats.frames_tx);
	assert_int_equal(sum.rtt_ns, top->stats.rtt_ns);
	vrio_conn_stats_retire(&pub);
	assert_int_equal(pub.rtt_ns, 0);
	assert_int_equal(pub.frames_tx, top->stats.frames_tx);
}

static void test_faults(void **state)
{
	struct vrio_faults f = { .enabled = true, .seed = 42, .drop = 0.05, .duplicate = 0.02,
				 .reorder = 0.05 };
	struct vrio_conn *ta, *tb, *fa, *fb;
	struct end a = { 0 }, b = { 0 };

	assert_int_equal(tcp_pair(&ta, &tb), 0);
	assert_int_equal(vrio_fault_wrap(ta, &f, 1, &fa), 0);
	assert_int_equal(vrio_fault_wrap(tb, &f, 2, &fb), 0);
	assert_int_equal(vrio_reliable_wrap(fa, &a.c), 0);
	assert_int_equal(vrio_reliable_wrap(fb, &b.c), 0);
	run_both_ways(&a, &b);
	/* The faults happened, and the layer above repaired them. */
	assert_true(fa->stats.injected_drops > 0);
	assert_true(fa->stats.injected_dups > 0);
	assert_true(fa->stats.injected_reorders > 0);
	assert_true(a.c->stats.retransmits + b.c->stats.retransmits > 0);
	assert_true(a.c->stats.duplicates + b.c->stats.duplicates > 0);
	assert_true(a.c->stats.rtt_ns > 0);
	check_published(a.c, fa);
	a.c->ops->close(a.c);
	b.c->ops->close(b.c);
}

static int count_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		       const void *payload)
{
	++*(unsigned *)arg;
	return 0;
}

static void test_window(void **state)
{
	struct vrio_conn *ta, *tb, *a, *b;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ };
	unsigned n = 0, got = 0;

	assert_int_equal(tcp_pair(&ta, &tb), 0);
	assert_int_equal(vrio_reliable_wrap(ta, &a), 0);
	while (a->ops->send(a, &f, NULL, 0) == 0 && n < 100000)
		n++;
	assert_int_equal(n, 512);
	assert_int_equal(a->stats.window_stalls, 1);
	/* What a connection would lose if it died now: the whole window; a
	 * bare tcp stack cannot tell. */
	assert_int_equal(vrio_conn_unacked(a), 512);
	assert_int_equal(vrio_conn_unacked(tb), -EOPNOTSUPP);
	/* Nested reliable frames and oversized ones are refused. */
	f.type = VRIO_FRAME_RDATA;
	assert_int_equal(a->ops->send(a, &f, NULL, 0), -EINVAL);
	/* Once the peer acknowledged them, nothing. */
	assert_int_equal(vrio_reliable_wrap(tb, &b), 0);
	for (uint64_t t0 = now_ms(); vrio_conn_unacked(a) > 0 && now_ms() - t0 < 10000;) {
		assert_true(a->ops->flush(a) >= 0);
		assert_true(b->ops->poll(b, count_frame, &got, 64) >= 0);
		assert_true(b->ops->flush(b) >= 0);
		assert_true(a->ops->poll(a, count_frame, &got, 64) >= 0);
	}
	assert_int_equal(got, 512);
	assert_int_equal(vrio_conn_unacked(a), 0);
	a->ops->close(a);
	b->ops->close(b);
}

/* A peer that does not speak the reliable layer loses its connection. */
static void test_garbage(void **state)
{
	struct vrio_conn *ta, *tb, *a;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 0 };
	struct end e = { 0 };
	int i, rc = 0;

	assert_int_equal(tcp_pair(&ta, &tb), 0);
	assert_int_equal(vrio_reliable_wrap(ta, &a), 0);
	e.c = a;
	/* A plain frame, then an acknowledgement of something never sent. */
	assert_int_equal(tb->ops->send(tb, &f, NULL, 0), 0);
	tb->ops->flush(tb);
	for (i = 0; i < 1000 && rc == 0; i++) {
		rc = a->ops->poll(a, on_frame, &e, 16);
		usleep(100);
	}
	assert_int_equal(rc, -EBADMSG);
	a->ops->close(a);
	tb->ops->close(tb);

	assert_int_equal(tcp_pair(&ta, &tb), 0);
	assert_int_equal(vrio_reliable_wrap(ta, &a), 0);
	f.type = VRIO_FRAME_RACK;
	f.arg = 5;
	assert_int_equal(tb->ops->send(tb, &f, NULL, 0), 0);
	tb->ops->flush(tb);
	rc = 0;
	for (i = 0; i < 1000 && rc == 0; i++) {
		rc = a->ops->poll(a, on_frame, &e, 16);
		usleep(100);
	}
	assert_int_equal(rc, -EBADMSG);
	assert_int_equal(e.next_recv, 0);
	a->ops->close(a);
	tb->ops->close(tb);
}

static void test_faults_parse(void **state)
{
	struct vrio_faults f;

	assert_int_equal(vrio_faults_parse("drop=0.05,duplicate=0.01,reorder=0.02,delay_us=10,"
					   "seed=9,disconnect_after=100", &f), 0);
	assert_true(f.enabled && f.drop == 0.05 && f.duplicate == 0.01 && f.reorder == 0.02);
	assert_int_equal(f.delay_us, 10);
	assert_int_equal(f.seed, 9);
	assert_int_equal(f.disconnect_after, 100);
	assert_int_equal(vrio_faults_parse("drop=2", &f), -EINVAL);
	assert_int_equal(vrio_faults_parse("lose=0.1", &f), -EINVAL);
	assert_int_equal(vrio_faults_parse("drop", &f), -EINVAL);
	assert_int_equal(vrio_faults_parse("seed=-1", &f), -EINVAL);
	assert_false(f.enabled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),   cmocka_unit_test(test_faults),
		cmocka_unit_test(test_window),  cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_faults_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
