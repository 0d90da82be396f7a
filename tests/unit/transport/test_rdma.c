/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rdma backend (included, to reach its queue pair): order and framing
 * across the inline and the RDMA READ paths, large frames, budget, errors,
 * messages a peer must not send, hellos that must be refused, credits that
 * come back when the receiver only polls, a peer that closes with sends in
 * flight, and wakeups: none while an owner that says when it sleeps polls.
 *
 * It needs an RDMA device: VRIO_TEST_RDMA_ADDR names an IP address of one
 * (soft-RoCE on a dummy netdev will do; tests/integration/blk-rdma.sh runs
 * this inside its guest). Without it the test is skipped (exit 77).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rdma.c"

static const char *test_ip;

struct pair {
	struct vrio_listener *l;
	struct vrio_conn *client, *server;
	char addr[64];
};

struct sink {
	unsigned frames;
	uint64_t bytes;
	uint32_t next_id;	/* frames must come in order of id */
	int fail_at;		/* return an error on this frame number, or -1 */
	int bad;		/* payload or order wrong */
};

static uint8_t pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 31 + i * 7);
}

/* ---- a connected pair ---- */

static void listen_any(struct pair *p)
{
	char addr[64];

	/* Port 0: rdma_cm picks one; the listener's id says which. */
	snprintf(addr, sizeof(addr), "%s:0", test_ip);
	assert_int_equal(vrio_rdma_transport.listen(addr, &p->l), 0);
	snprintf(p->addr, sizeof(p->addr), "%s:%u", test_ip,
		 ntohs(rdma_get_src_port(to_rdmal(p->l)->id)));
}

struct connect_job {
	const char *addr;
	struct vrio_conn *conn;
	int rc;
};

static void *connect_thread(void *arg)
{
	struct connect_job *j = arg;

	j->rc = vrio_rdma_transport.connect(j->addr, -1, &j->conn);
	return NULL;
}

static int accept_wait(struct vrio_listener *l, struct vrio_conn **out)
{
	int i, rc = -EAGAIN;

	for (i = 0; i < 5000 && rc == -EAGAIN; i++) {
		rc = vrio_rdma_transport.accept(l, out);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	return rc;
}

static struct pair *pair_new(void)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct connect_job j = { 0 };
	pthread_t t;

	assert_non_null(p);
	listen_any(p);
	j.addr = p->addr;
	assert_int_equal(pthread_create(&t, NULL, connect_thread, &j), 0);
	assert_int_equal(accept_wait(p->l, &p->server), 0);
	pthread_join(t, NULL);
	assert_int_equal(j.rc, 0);
	p->client = j.conn;
	return p;
}

static void pair_free(struct pair *p)
{
	vrio_rdma_transport.close(p->client);
	vrio_rdma_transport.close(p->server);
	vrio_rdma_transport.listener_close(p->l);
	free(p);
}

static int setup(void **state)
{
	*state = pair_new();
	return 0;
}

static int teardown(void **state)
{
	pair_free(*state);
	return 0;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct sink *s = arg;
	const uint8_t *b = payload;
	size_t i;

	if (s->fail_at >= 0 && s->frames == (unsigned)s->fail_at)
		return -EBADMSG;
	if (f->id != s->next_id)
		s->bad++;
	for (i = 0; i < f->len; i++)
		if (b[i] != pattern(f->id, i))
			s->bad++;
	s->next_id = f->id + 1;
	s->frames++;
	s->bytes += f->len;
	return 0;
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* Polls `c` until `want` frames arrived or 5 s passed, sleeping on its
 * descriptor as an owner would; flushes `other` (if any) on the way. */
static int drain(struct vrio_conn *c, struct vrio_conn *other, struct sink *s, unsigned want)
{
	int rc = 0, spins = 0;

	while (s->frames < want && spins++ < 5000) {
		if (other)
			vrio_rdma_transport.flush(other);
		rc = vrio_rdma_transport.poll(c, on_frame, s, 16);
		if (rc < 0)
			return rc;
		if (rc < 16 && vrio_conn_timeout_ms(c) != 0)
			fd_readable(vrio_conn_fd(c), 1);
	}
	return rc;
}

static int send_frame(struct vrio_conn *c, uint8_t type, uint32_t id, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct vrio_frame f = { .type = type, .id = id, .len = (uint32_t)len };
	struct iovec iov[2];
	size_t i;
	int rc;

	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = pattern(id, i);
	/* Two iovecs, split unevenly, to exercise the gather. */
	iov[0] = (struct iovec){ buf, len / 3 };
	iov[1] = (struct iovec){ buf + len / 3, len - len / 3 };
	rc = vrio_rdma_transport.send(c, &f, iov, 2);
	free(buf);
	return rc;
}

/* Sends like an owner: on -ENOBUFS, flush, let the receiver poll, retry. */
static void send_retry(struct pair *p, struct sink *s, uint32_t id, size_t len)
{
	int rc, tries = 0;

	while ((rc = send_frame(p->client, VRIO_FRAME_REQ, id, len)) == -ENOBUFS) {
		assert_true(tries++ < 100000);
		vrio_rdma_transport.flush(p->client);
		assert_true(vrio_rdma_transport.poll(p->server, on_frame, s, 16) >= 0);
	}
	assert_int_equal(rc, 0);
}

/* ---- tests ---- */

static void test_registered(void **state)
{
	assert_ptr_equal(vrio_transport_find("rdma"), &vrio_rdma_transport);
}

/* Sizes on both sides of the receive buffer, in one ordered stream. */
static void test_order_and_sizes(void **state)
{
	struct pair *p = *state;
	const size_t inline_max = to_rdma(p->client)->frame_max - VRIO_FRAME_HDR_LEN;
	const size_t sizes[] = { 0, 1, 100, 4096, inline_max, inline_max + 1, 200000, 1u << 20 };
	struct sink s = { .fail_at = -1 };
	uint64_t bytes = 0;
	uint32_t i;

	for (i = 0; i < 400; i++) {
		send_retry(p, &s, i, sizes[i % 8]);
		bytes += sizes[i % 8];
	}
	assert_true(drain(p->server, p->client, &s, 400) >= 0);
	assert_int_equal(s.frames, 400);
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.bytes, bytes);
	assert_int_equal(p->server->stats.frames_rx, 400);
	assert_int_equal(p->client->stats.frames_tx, 400);
	assert_int_equal(p->server->stats.bytes_rx, p->client->stats.bytes_tx);
}

static void test_largest_both_ways(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };

	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 0, 3u << 20), 0);
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 1, 100), 0);
	assert_true(drain(p->server, p->client, &s, 2) >= 0);
	assert_int_equal(s.frames, 2);
	assert_int_equal(s.bytes, (3u << 20) + 100);
	assert_int_equal(s.bad, 0);

	memset(&s, 0, sizeof(s));
	s.fail_at = -1;
	assert_int_equal(send_frame(p->server, VRIO_FRAME_RESP, 0, VRIO_FRAME_MAX_PAYLOAD), 0);
	assert_true(drain(p->client, p->server, &s, 1) >= 0);
	assert_int_equal(s.frames, 1);
	assert_int_equal(s.bad, 0);
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 1, VRIO_FRAME_MAX_PAYLOAD + 1),
			 -EINVAL);
}

static void test_budget(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	uint32_t i;

	for (i = 0; i < 10; i++)
		assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, i, 64), 0);
	assert_int_equal(vrio_rdma_transport.flush(p->client), 0);
	for (i = 0; i < 100000 && to_rdma(p->server)->rx_head - to_rdma(p->server)->rx_tail < 10;
	     i++)
		reap(to_rdma(p->server));
	assert_int_equal(vrio_rdma_transport.poll(p->server, on_frame, &s, 4), 4);
	/* Frames reaped but not delivered: the owner must come back. */
	assert_int_equal(vrio_conn_timeout_ms(p->server), 0);
	assert_true(drain(p->server, NULL, &s, 10) >= 0);
	assert_int_equal(s.frames, 10);
	assert_int_equal(vrio_conn_timeout_ms(p->server), -1);
}

static void test_callback_error(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = 1 };

	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 0, 10), 0);
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 1, 10), 0);
	assert_int_equal(drain(p->server, p->client, &s, 2), -EBADMSG);
	assert_int_equal(s.frames, 1);
}

/* A header the frame decoder refuses, sent through the front door. */
static void test_bad_header(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };

	assert_int_equal(send_frame(p->client, 0x7f, 0, 10), 0);
	assert_int_equal(drain(p->server, p->client, &s, 1), -EBADMSG);
	assert_int_equal(s.frames, 0);
}

/* Messages only a broken or hostile peer sends, posted on its queue pair. */
struct raw_case {
	const char *name;
	bool imm;		/* SEND_WITH_IMM, else a plain SEND */
	uint32_t imm_data;	/* host order */
	uint32_t len;		/* bytes sent from the send buffer */
	uint32_t hdr_len;	/* frame header's len field (FRAME) */
	uint32_t desc_len;	/* descriptor's length (DESC) */
	int want;
};

#define IMM(type, done, grant) \
	((uint32_t)(type) << IMM_TYPE_SHIFT | (uint32_t)(done) << IMM_DONE_SHIFT | (grant))

static const struct raw_case raw_cases[] = {
	{ "no immediate data", false, 0, 64, 32, 0, -EBADMSG },
	{ "reserved bits", true, IMM(MSG_FRAME, 0, 0) | 0x10000, 64, 32, 0, -EBADMSG },
	{ "unknown type", true, IMM(3, 0, 0), 64, 32, 0, -EBADMSG },
	{ "too many credits", true, IMM(MSG_FRAME, 0, 1), 64, 32, 0, -EBADMSG },
	{ "bulk done never sent", true, IMM(MSG_FRAME, 1, 0), 64, 32, 0, -EBADMSG },
	{ "frame shorter than a header", true, IMM(MSG_FRAME, 0, 0), 16, 0, 0, -EBADMSG },
	{ "len longer than the message", true, IMM(MSG_FRAME, 0, 0), 64, 100, 0, -EBADMSG },
	{ "len shorter than the message", true, IMM(MSG_FRAME, 0, 0), 64, 8, 0, -EBADMSG },
	{ "credit with payload", true, IMM(MSG_CREDIT, 0, 0), 8, 0, 0, -EBADMSG },
	{ "descriptor of the wrong size", true, IMM(MSG_DESC, 0, 0), 24, 0, 4096, -EBADMSG },
	{ "bulk frame shorter than a header", true, IMM(MSG_DESC, 0, 0), 16, 0, 8, -EMSGSIZE },
	{ "bulk frame above the maximum", true, IMM(MSG_DESC, 0, 0), 16, 0,
	  RDMA_BULK_MAX + 1, -EMSGSIZE },
};

static void post_raw(struct pair *p, const struct raw_case *rc)
{
	struct rdma_conn *c = to_rdma(p->client);
	uint8_t *buf = c->sbuf.base;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = rc->hdr_len };
	struct rdma_desc d = { .len = htole32(rc->desc_len) };
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = rc->len, .lkey = c->sbuf.mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = WR_ID(WR_SEND, 0),
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = rc->imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND,
		.imm_data = htobe32(rc->imm_data),
	}, *bad;

	memset(buf, 0, 64);
	if (rc->imm_data >> IMM_TYPE_SHIFT == MSG_DESC)
		memcpy(buf, &d, sizeof(d));
	else
		vrio_frame_encode(&f, buf);
	assert_int_equal(ibv_post_send(c->id->qp, &wr, &bad), 0);
	/* As if send() had taken the slot and a credit for it. */
	c->s_head++;
	c->s_post++;
	c->credits--;
}

static void test_raw_garbage(void **state)
{
	struct sink s = { .fail_at = -1 };
	struct pair *p;
	size_t i;

	for (i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
		print_message("  %s\n", raw_cases[i].name);
		p = pair_new();
		post_raw(p, &raw_cases[i]);
		assert_int_equal(drain(p->server, NULL, &s, 1), raw_cases[i].want);
		assert_int_equal(s.frames, 0);
		/* Dead for good. */
		assert_int_equal(vrio_rdma_transport.poll(p->server, on_frame, &s, 16),
				 raw_cases[i].want);
		pair_free(p);
	}
}

/* Hellos an acceptor refuses: the connector hears REJECTED, accept() goes on. */
struct hello_case {
	const char *name;
	uint32_t magic;
	uint8_t version;
	uint32_t nrecv, buf_size;
	uint8_t len;
};

static const struct hello_case hello_cases[] = {
	{ "no private data", RDMA_MAGIC, RDMA_VERSION, 128, 65536, 0 },
	{ "short", RDMA_MAGIC, RDMA_VERSION, 128, 65536, 8 },
	{ "bad magic", 0x12345678, RDMA_VERSION, 128, 65536, sizeof(struct rdma_hello) },
	{ "other version", RDMA_MAGIC, RDMA_VERSION + 1, 128, 65536, sizeof(struct rdma_hello) },
	{ "too few buffers", RDMA_MAGIC, RDMA_VERSION, 3, 65536, sizeof(struct rdma_hello) },
	{ "too many buffers", RDMA_MAGIC, RDMA_VERSION, 70000, 65536, sizeof(struct rdma_hello) },
	{ "buffers too small", RDMA_MAGIC, RDMA_VERSION, 128, 255, sizeof(struct rdma_hello) },
};

struct raw_connect_job {
	const char *addr;
	const struct hello_case *hc;
	enum rdma_cm_event_type event;
};

/* A bare rdma_cm connector with a chosen hello; records the final event. */
static void *raw_connect_thread(void *arg)
{
	struct raw_connect_job *j = arg;
	struct rdma_event_channel *ch = rdma_create_event_channel();
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct rdma_conn_param param = { .retry_count = 7 };
	struct sockaddr_storage ss;
	struct rdma_cm_event *ev;
	struct rdma_hello h = {
		.magic = htole32(j->hc->magic),
		.version = j->hc->version,
		.nrecv = htole32(j->hc->nrecv),
		.buf_size = htole32(j->hc->buf_size),
	};
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	socklen_t sslen;

	assert_non_null(ch);
	assert_int_equal(vrio_parse_hostport(j->addr, &ss, &sslen), 0);
	assert_int_equal(rdma_create_id(ch, &id, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_resolve_addr(id, NULL, (struct sockaddr *)&ss, 2000), 0);
	assert_int_equal(rdma_get_cm_event(ch, &ev), 0);
	assert_int_equal(ev->event, RDMA_CM_EVENT_ADDR_RESOLVED);
	rdma_ack_cm_event(ev);
	assert_int_equal(rdma_resolve_route(id, 2000), 0);
	assert_int_equal(rdma_get_cm_event(ch, &ev), 0);
	assert_int_equal(ev->event, RDMA_CM_EVENT_ROUTE_RESOLVED);
	rdma_ack_cm_event(ev);
	pd = ibv_alloc_pd(id->verbs);
	cq = ibv_create_cq(id->verbs, 4, NULL, NULL, 0);
	assert_non_null(pd);
	assert_non_null(cq);
	qa.send_cq = qa.recv_cq = cq;
	assert_int_equal(rdma_create_qp(id, pd, &qa), 0);
	param.private_data = j->hc->len ? &h : NULL;
	param.private_data_len = j->hc->len;
	param.initiator_depth = param.responder_resources = 1;
	assert_int_equal(rdma_connect(id, &param), 0);
	assert_int_equal(rdma_get_cm_event(ch, &ev), 0);
	j->event = ev->event;
	rdma_ack_cm_event(ev);
	if (j->event == RDMA_CM_EVENT_ESTABLISHED)
		rdma_disconnect(id);
	rdma_destroy_qp(id);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(ch);
	return NULL;
}

static void test_hello_refused(void **state)
{
	struct vrio_conn *c = NULL;
	struct pair p = { 0 };
	pthread_t t;
	size_t i;
	int rc;

	listen_any(&p);
	for (i = 0; i < sizeof(hello_cases) / sizeof(hello_cases[0]); i++) {
		struct raw_connect_job j = { .addr = p.addr, .hc = &hello_cases[i] };

		print_message("  %s\n", hello_cases[i].name);
		assert_int_equal(pthread_create(&t, NULL, raw_connect_thread, &j), 0);
		/* Until the connector has its answer, accept() finds nothing
		 * it would hand out. */
		do {
			rc = vrio_rdma_transport.accept(p.l, &c);
			assert_int_equal(rc, -EAGAIN);
			usleep(1000);
		} while (pthread_tryjoin_np(t, NULL) == EBUSY);
		assert_int_equal(j.event, RDMA_CM_EVENT_REJECTED);
	}
	vrio_rdma_transport.listener_close(p.l);
}

/* The receiver only polls, never sends: credits come back on their own. */
static void test_credits_one_way(void **state)
{
	struct pair *p = *state;
	struct rdma_conn *c = to_rdma(p->client);
	struct sink s = { .fail_at = -1 };
	uint32_t i;

	for (i = 0; i < 5000; i++) {
		send_retry(p, &s, i, 100 + i % 2000);
		assert_true(c->credits <= c->peer_nrecv);
	}
	assert_true(drain(p->server, p->client, &s, 5000) >= 0);
	assert_int_equal(s.frames, 5000);
	assert_int_equal(s.bad, 0);
	assert_int_equal(to_rdma(p->server)->base.stats.frames_tx, 0);
}

/* Out of bulk buffers: -ENOBUFS until the peer has read them. */
static void test_bulk_exhausted(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	uint32_t sent = 0;
	int rc, tries = 0;

	while ((rc = send_frame(p->client, VRIO_FRAME_REQ, sent, 1u << 20)) == 0)
		sent++;
	assert_int_equal(rc, -ENOBUFS);
	assert_int_equal(sent, RDMA_NBULK);
	assert_int_equal(vrio_conn_timeout_ms(p->client), 1);
	/* Small frames still go. */
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, sent, 64), 0);
	assert_true(drain(p->server, p->client, &s, sent + 1) >= 0);
	assert_int_equal(s.frames, sent + 1);
	while ((rc = send_frame(p->client, VRIO_FRAME_REQ, sent + 1, 1u << 20)) == -ENOBUFS) {
		assert_true(tries++ < 5000);
		fd_readable(vrio_conn_fd(p->client), 1);
		vrio_rdma_transport.poll(p->client, on_frame, &s, 16);
	}
	assert_int_equal(rc, 0);
	assert_true(drain(p->server, p->client, &s, sent + 2) >= 0);
	assert_int_equal(s.bad, 0);
}

static void *close_thread(void *arg)
{
	vrio_rdma_transport.close(arg);
	return NULL;
}

/* The frames sent before a close arrive, bulk ones included (close waits
 * for the peer to read them), then the reset. */
static void test_peer_close(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	pthread_t t;
	uint32_t i;

	for (i = 0; i < 10; i++)
		assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, i, i * 10000), 0);
	assert_int_equal(pthread_create(&t, NULL, close_thread, p->client), 0);
	p->client = NULL;
	assert_int_equal(drain(p->server, NULL, &s, 11), -ECONNRESET);
	pthread_join(t, NULL);
	assert_int_equal(s.frames, 10);
	assert_int_equal(s.bad, 0);
	assert_int_equal(vrio_rdma_transport.send(p->server, &(struct vrio_frame){ .type = 3 },
						  NULL, 0), -ECONNRESET);
}

/* An owner that found nothing sleeps on conn_fd(): it must wake for a frame,
 * and must not keep waking once the frame was taken. */
static void test_wakeup(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	int fd = vrio_conn_fd(p->server);
	uint32_t round;

	assert_true(fd >= 0);
	for (round = 0; round < 3; round++) {
		assert_int_equal(vrio_rdma_transport.poll(p->server, on_frame, &s, 16), 0);
		assert_false(fd_readable(fd, 0));
		assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, round, round ? 100000 : 100),
				 0);
		assert_int_equal(vrio_rdma_transport.flush(p->client), 0);
		assert_int_equal(vrio_rdma_transport.pending(p->client), 0);
		assert_true(fd_readable(fd, 2000));
		/* A bulk frame takes a READ first: poll until it is there. */
		while (s.frames == round) {
			assert_true(vrio_rdma_transport.poll(p->server, on_frame, &s, 16) >= 0);
			if (s.frames == round)
				fd_readable(fd, 100);
		}
		/* The send queue was armed for the READ: its credit message
		 * may wake the owner once more, and then nothing does. */
		if (round && fd_readable(fd, 0))
			assert_int_equal(vrio_rdma_transport.poll(p->server, on_frame, &s, 16), 0);
		assert_false(fd_readable(fd, 0));
	}
	assert_int_equal(s.frames, 3);
	assert_int_equal(s.bad, 0);
}

/* An owner that says when it sleeps (sleep_prepare): while it polls, the
 * peer's frames raise no completion event (no interrupt, no wake-up); after
 * sleep_prepare the next frame wakes it. */
static void test_no_events_while_polling(void **state)
{
	struct pair *p = *state;
	struct rdma_conn *c = to_rdma(p->server);
	struct sink s = { .fail_at = -1 };
	int fd = vrio_conn_fd(p->server);
	uint64_t events;
	uint32_t i;

	assert_int_equal(vrio_conn_sleep_prepare(p->server), 0);
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 0, 100), 0);
	assert_int_equal(vrio_rdma_transport.flush(p->client), 0);
	assert_true(fd_readable(fd, 2000));	/* armed: the frame wakes it */
	while (s.frames < 1)
		assert_true(vrio_rdma_transport.poll(p->server, on_frame, &s, 16) >= 0);
	events = c->rcq.events;
	assert_true(events >= 1);
	/* Both sides poll: 2000 frames, small and bulk, and not one event. */
	for (i = 1; i <= 2000; i++) {
		send_retry(p, &s, i, i % 100 ? 100 + i : 300000);
		vrio_rdma_transport.flush(p->client);
		while (s.frames < i)
			assert_true(vrio_rdma_transport.poll(p->server, on_frame, &s, 16) >= 0);
	}
	assert_int_equal(c->rcq.events, events);
	assert_false(c->rcq.armed);
	/* Going to sleep again: the next frame wakes it. (The send queue,
	 * armed for the READs, may have raised events of its own.) */
	assert_int_equal(vrio_conn_sleep_prepare(p->server), 0);
	assert_true(c->rcq.armed);
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 2001, 100), 0);
	assert_int_equal(vrio_rdma_transport.flush(p->client), 0);
	assert_true(fd_readable(fd, 2000));
	while (s.frames < 2002)
		assert_true(vrio_rdma_transport.poll(p->server, on_frame, &s, 16) >= 0);
	assert_int_equal(c->rcq.events, events + 1);
	/* A frame already there when the owner would sleep: no sleep. */
	assert_int_equal(send_frame(p->client, VRIO_FRAME_REQ, 2002, 100), 0);
	assert_int_equal(vrio_rdma_transport.flush(p->client), 0);
	for (i = 0; i < 2000 && !rx_deliverable(c); i++) {
		reap(c);
		usleep(1000);
	}
	assert_int_equal(vrio_conn_sleep_prepare(p->server), 1);
	assert_int_equal(vrio_rdma_transport.poll(p->server, on_frame, &s, 16), 1);
	assert_int_equal(s.bad, 0);
}

static void test_connect_refused(void **state)
{
	struct vrio_listener *l = NULL;
	struct vrio_conn *c = NULL;
	struct pair p = { 0 };

	/* A port that was listened on and is no more. */
	listen_any(&p);
	vrio_rdma_transport.listener_close(p.l);
	assert_int_equal(vrio_rdma_transport.connect(p.addr, -1, &c), -ECONNREFUSED);
	assert_int_equal(vrio_rdma_transport.connect("not-an-address", -1, &c), -EINVAL);
	assert_int_equal(vrio_rdma_transport.listen("not-an-address", &l), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registered),
		cmocka_unit_test_setup_teardown(test_order_and_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_largest_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test(test_raw_garbage),
		cmocka_unit_test(test_hello_refused),
		cmocka_unit_test_setup_teardown(test_credits_one_way, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_events_while_polling, setup, teardown),
		cmocka_unit_test(test_connect_refused),
	};
	struct rdma_event_channel *ch;

	test_ip = getenv("VRIO_TEST_RDMA_ADDR");
	if (!test_ip || !*test_ip) {
		printf("SKIP: VRIO_TEST_RDMA_ADDR (an IP address of an RDMA device) is not set\n");
		return 77;
	}
	ch = rdma_create_event_channel();
	if (!ch) {
		printf("SKIP: no rdma_cm (%s)\n", strerror(errno));
		return 77;
	}
	rdma_destroy_event_channel(ch);
	return cmocka_run_group_tests_name("rdma", tests, NULL, NULL);
}
