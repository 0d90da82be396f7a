/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dpdk backend. Its packet format, fragmentation and reassembly are
 * pure functions, checked from tables and against random loss, duplication
 * and reordering; so are the EAL's arguments, and a failed EAL start is
 * final (in a child process). Then the backend itself on a DPDK port that
 * loops back (net_ring0: what it sends it receives), so that one process
 * holds both ends: setup() starting the EAL, handshake, frames up to the
 * largest, budget, callback errors, a repeated SYN, garbage, FIN, and both
 * owners on their own threads under the reliable layer. The backend and the
 * EAL's start-up are included, to reach their statics.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpdk.c"
#include "dpdk_eal.c"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- The packet format. ---- */

struct decode_case {
	const char *what;
	struct dpdk_hdr h;
	uint8_t version;
	size_t avail;		/* 0: the header and h.len bytes */
	int rc;
};

#define SYN(mtu)	{ .type = DPDK_SYN, .conn = 7, .total = (mtu) }
#define DATA(l, o, t)	{ .type = DPDK_DATA, .conn = 7, .seq = 3, .len = (l), .off = (o), .total = (t) }

static const struct decode_case decode_cases[] = {
	{ "syn", SYN(1500), 1, 0, 0 },
	{ "syn-ack", { .type = DPDK_SYNACK, .conn = 7, .total = 9000 }, 1, 0, 0 },
	{ "fin", { .type = DPDK_FIN, .conn = 7 }, 1, 0, 0 },
	{ "data, whole frame", DATA(32, 0, 32), 1, 0, 0 },
	{ "data, last fragment", DATA(100, 1480, 1580), 1, 0, 0 },
	{ "data, padded packet", DATA(32, 0, 32), 1, 100, 0 },
	{ "data, largest frame", DATA(1000, DPDK_FRAME_MAX - 1000, DPDK_FRAME_MAX), 1, 0, 0 },
	{ "version 2", SYN(1500), 2, 0, -EPROTONOSUPPORT },
	{ "shorter than a header", SYN(1500), 1, DPDK_WIRE_LEN - 1, -EBADMSG },
	{ "connection id 0", { .type = DPDK_SYN, .total = 1500 }, 1, 0, -EBADMSG },
	{ "type 0", { .type = 0, .conn = 7 }, 1, 0, -EBADMSG },
	{ "type 5", { .type = 5, .conn = 7 }, 1, 0, -EBADMSG },
	{ "syn with data", { .type = DPDK_SYN, .conn = 7, .len = 1, .total = 1500 }, 1, 0,
	  -EBADMSG },
	{ "syn with a sequence", { .type = DPDK_SYN, .conn = 7, .seq = 1, .total = 1500 }, 1, 0,
	  -EBADMSG },
	{ "syn, MTU too small", SYN(DPDK_MTU_MIN - 1), 1, 0, -EBADMSG },
	{ "syn-ack, MTU 0", { .type = DPDK_SYNACK, .conn = 7 }, 1, 0, -EBADMSG },
	{ "fin with a length", { .type = DPDK_FIN, .conn = 7, .total = 1 }, 1, 0, -EBADMSG },
	{ "fin with an offset", { .type = DPDK_FIN, .conn = 7, .off = 1 }, 1, 0, -EBADMSG },
	{ "data, empty", DATA(0, 0, 32), 1, 0, -EBADMSG },
	{ "data, longer than the packet", DATA(100, 0, 200), 1, DPDK_WIRE_LEN + 99, -EBADMSG },
	{ "data, frame without a header", DATA(31, 0, 31), 1, 0, -EBADMSG },
	{ "data, frame too large", DATA(100, 0, DPDK_FRAME_MAX + 1), 1, 0, -EBADMSG },
	{ "data, offset at the end", DATA(1, 200, 200), 1, 0, -EBADMSG },
	{ "data, past the end", DATA(100, 150, 200), 1, 0, -EBADMSG },
	{ "data, offset wraps", DATA(100, UINT32_MAX - 10, 200), 1, 0, -EBADMSG },
};

static void test_decode(void **state)
{
	uint8_t buf[DPDK_WIRE_LEN + 2000];
	struct dpdk_hdr h;
	unsigned failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(decode_cases); i++) {
		const struct decode_case *dc = &decode_cases[i];
		size_t avail = dc->avail ? dc->avail : DPDK_WIRE_LEN + dc->h.len;
		int rc;

		memset(buf, 0, sizeof(buf));
		dpdk_hdr_encode(&dc->h, buf);
		buf[0] = dc->version;
		memset(&h, 0xa5, sizeof(h));
		rc = dpdk_hdr_decode(buf, avail, &h);
		if (rc != dc->rc) {
			print_message("case '%s': got %d, want %d\n", dc->what, rc, dc->rc);
			failed++;
		} else if (rc == 0 && (h.type != dc->h.type || h.len != dc->h.len ||
				       h.conn != dc->h.conn || h.seq != dc->h.seq ||
				       h.off != dc->h.off || h.total != dc->h.total)) {
			print_message("case '%s': fields changed on the way\n", dc->what);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* The layout is little-endian whatever the host. */
static void test_wire_layout(void **state)
{
	static const uint8_t want[DPDK_WIRE_LEN] = {
		1, DPDK_DATA, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 2, 0, 0, 0,
		0xc8, 0x05, 0, 0, 0x00, 0x00, 0x01, 0,
	};
	struct dpdk_hdr h = { .type = DPDK_DATA, .len = 0x1234, .conn = 0x12345678, .seq = 2,
			      .off = 1480, .total = 0x10000 };
	uint8_t buf[DPDK_WIRE_LEN];

	dpdk_hdr_encode(&h, buf);
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_fragments(void **state)
{
	static const struct {
		uint32_t total, frag_max, count, last;
	} cases[] = {
		{ 32, 1480, 1, 32 },
		{ 1480, 1480, 1, 1480 },
		{ 1481, 1480, 2, 1 },
		{ 4160, 1480, 3, 1200 },
		{ DPDK_FRAME_MAX, DPDK_FRAG_MIN, DPDK_FRAG_COUNT_MAX,
		  DPDK_FRAME_MAX - (DPDK_FRAG_COUNT_MAX - 1) * DPDK_FRAG_MIN },
	};
	struct dpdk_hdr h;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t n = dpdk_frag_count(cases[i].total, cases[i].frag_max), off = 0;

		assert_int_equal(n, cases[i].count);
		for (uint32_t k = 0; k < n; k++) {
			dpdk_frag_hdr(9, 4, cases[i].total, cases[i].frag_max, k, &h);
			assert_int_equal(h.type, DPDK_DATA);
			assert_int_equal(h.conn, 9);
			assert_int_equal(h.seq, 4);
			assert_int_equal(h.off, off);
			assert_int_equal(h.total, cases[i].total);
			assert_int_equal(h.len, k + 1 < n ? cases[i].frag_max : cases[i].last);
			off += h.len;
		}
		assert_int_equal(off, cases[i].total);
	}
}

/* A frame of `total` bytes whose contents say which frame they are. */
static uint8_t fbyte(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 9));
}

struct pkt {
	struct dpdk_hdr h;
	const uint8_t *data;
};

static uint8_t *make_frame(uint32_t seq, uint32_t total)
{
	uint8_t *f = malloc(total);

	assert_non_null(f);
	for (uint32_t i = 0; i < total; i++)
		f[i] = fbyte(seq, i);
	return f;
}

/* Push packets; returns frames completed, each checked against fbyte. */
static unsigned push_all(struct dpdk_reasm *r, const struct pkt *p, unsigned n, uint64_t *dropped,
			 uint32_t *last_seq)
{
	const uint8_t *frame;
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		if (dpdk_reasm_push(r, &p[i].h, p[i].data, &frame, dropped) != 1)
			continue;
		for (uint32_t k = 0; k < p[i].h.total; k++)
			if (frame[k] != fbyte(p[i].h.seq, k))
				fail_msg("frame %u corrupt at byte %u", p[i].h.seq, k);
		*last_seq = p[i].h.seq;
		done++;
	}
	return done;
}

/* Fragments of frame seq into p[]; returns how many. */
static unsigned cut(const uint8_t *f, uint32_t seq, uint32_t total, uint32_t frag_max,
		    struct pkt *p)
{
	unsigned n = dpdk_frag_count(total, frag_max);

	for (unsigned k = 0; k < n; k++) {
		dpdk_frag_hdr(1, seq, total, frag_max, k, &p[k].h);
		p[k].data = f + p[k].h.off;
	}
	return n;
}

static void test_reassembly(void **state)
{
	struct dpdk_reasm r = { 0 };
	struct pkt a[8], b[8], s[16];
	uint8_t *fa = make_frame(1, 4000), *fb = make_frame(2, 4000);
	const uint8_t *frame;
	uint64_t dropped = 0;
	uint32_t last = 0;
	unsigned na, nb;

	na = cut(fa, 1, 4000, 1480, a);
	nb = cut(fb, 2, 4000, 1480, b);
	assert_int_equal(na, 3);

	/* In order: one frame. */
	assert_int_equal(push_all(&r, a, na, &dropped, &last), 1);
	assert_int_equal(dropped, 0);

	/* A frame in one packet is lent as it is, without a copy. */
	a[0].h.len = 32;
	a[0].h.total = 32;
	assert_int_equal(dpdk_reasm_push(&r, &a[0].h, fa, &frame, &dropped), 1);
	assert_ptr_equal(frame, fa);
	na = cut(fa, 1, 4000, 1480, a);

	/* The middle one lost: dropped, and the next frame still comes. */
	s[0] = a[0], s[1] = a[2];
	memcpy(s + 2, b, nb * sizeof(*b));
	assert_int_equal(push_all(&r, s, 2 + nb, &dropped, &last), 1);
	assert_int_equal(last, 2);
	assert_int_equal(dropped, 2);

	/* Interleaved with another frame: both lose. */
	dropped = 0;
	s[0] = a[0], s[1] = b[0], s[2] = a[1], s[3] = b[1], s[4] = a[2], s[5] = b[2];
	assert_int_equal(push_all(&r, s, 6, &dropped, &last), 0);
	assert_int_equal(dropped, 6);

	/* A fragment twice: the frame is dropped, not spliced. */
	dropped = 0;
	s[0] = a[0], s[1] = a[1], s[2] = a[1], s[3] = a[2];
	assert_int_equal(push_all(&r, s, 4, &dropped, &last), 0);
	assert_int_equal(dropped, 4);

	/* Two frames of one size, the gap lined up: the sequence tells. */
	dropped = 0;
	s[0] = a[0], s[1] = a[1], s[2] = b[2];
	assert_int_equal(push_all(&r, s, 3, &dropped, &last), 0);
	assert_int_equal(dropped, 3);

	/* A frame cut short, then the end: whatever was kept is counted. */
	dropped = 0;
	assert_int_equal(push_all(&r, a, 2, &dropped, &last), 0);
	dpdk_reasm_fini(&r, &dropped);
	assert_int_equal(dropped, 2);
	assert_null(r.buf);
	free(fa);
	free(fb);
}

/* The largest frame grows the buffer to its bound and comes out whole. */
static void test_reassembly_largest(void **state)
{
	struct dpdk_reasm r = { 0 };
	uint8_t *f = make_frame(5, DPDK_FRAME_MAX);
	struct pkt *p = calloc(DPDK_FRAG_COUNT_MAX, sizeof(*p));
	uint64_t dropped = 0;
	uint32_t last = 0;
	unsigned n;

	assert_non_null(p);
	n = cut(f, 5, DPDK_FRAME_MAX, DPDK_FRAG_MIN, p);
	assert_int_equal(push_all(&r, p, n, &dropped, &last), 1);
	assert_int_equal(last, 5);
	assert_int_equal(r.cap, DPDK_FRAME_MAX);
	assert_int_equal(dropped, 0);
	dpdk_reasm_fini(&r, &dropped);
	free(p);
	free(f);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

/* Random frames through a link that loses, repeats and swaps packets:
 * whatever comes out is a whole frame that was sent (perhaps twice, or
 * after a later one, when it fits in one packet: the reliable layer's to
 * sort out), never a splice. */
static void test_reassembly_random(void **state)
{
	enum { NFRAMES = 3000, FMAX = 20000, FRAG = 1480 };
	struct dpdk_reasm r = { 0 };
	struct pkt *link = calloc(NFRAMES * (FMAX / FRAG + 2) * 2, sizeof(*link));
	uint8_t **frames = calloc(NFRAMES, sizeof(*frames));
	struct pkt frag[FMAX / FRAG + 2];
	const uint8_t *frame;
	uint64_t dropped = 0, fragments = 0;
	unsigned nlink = 0, done = 0, n;

	assert_non_null(link);
	assert_non_null(frames);
	for (uint32_t seq = 0; seq < NFRAMES; seq++) {
		uint32_t total = VRIO_FRAME_HDR_LEN + rnd(FMAX - VRIO_FRAME_HDR_LEN);

		frames[seq] = make_frame(seq, total);
		n = cut(frames[seq], seq, total, FRAG, frag);
		for (unsigned k = 0; k < n; k++) {
			uint32_t x = rnd(1000);

			fragments++;
			if (x < 20)
				continue;			/* lost */
			link[nlink++] = frag[k];
			if (x < 30)
				link[nlink++] = frag[k];	/* repeated */
			else if (x < 40 && nlink >= 2) {	/* swapped */
				struct pkt t = link[nlink - 1];

				link[nlink - 1] = link[nlink - 2];
				link[nlink - 2] = t;
			}
		}
	}
	for (unsigned i = 0; i < nlink; i++) {
		if (dpdk_reasm_push(&r, &link[i].h, link[i].data, &frame, &dropped) != 1)
			continue;
		assert_memory_equal(frame, frames[link[i].h.seq], link[i].h.total);
		done++;
	}
	dpdk_reasm_fini(&r, &dropped);
	print_message("%u of %u frames whole, %llu of %llu fragments dropped\n", done, NFRAMES,
		      (unsigned long long)dropped, (unsigned long long)fragments);
	assert_true(done > NFRAMES / 2);
	assert_true(dropped > 0);
	for (uint32_t seq = 0; seq < NFRAMES; seq++)
		free(frames[seq]);
	free(frames);
	free(link);
}

/* ---- The EAL's arguments. ---- */

struct eal_case {
	const char *what;
	const char *prog, *node;
	const char *const *extra;	/* dpdk.eal, NULL-terminated; NULL: none */
	bool verbose;
	const char *want;		/* argv, space-separated */
};

#define EAL_DEFAULTS "--no-huge -m 256 --no-pci --no-shconf --no-telemetry -l 0 --log-level"

static const char *const memif_args[] = { "--vdev=net_memif0,role=server", "-m", "512", NULL };
static const char *const no_args[] = { NULL };

static const struct eal_case eal_cases[] = {
	{ "io-server, no dpdk.eal", "vrio-ioserver", "ios0", NULL, false,
	  "vrio-ioserver " EAL_DEFAULTS " *:warning --file-prefix=vrio-ioserver-ios0" },
	{ "local-hv by its path, verbose, empty dpdk.eal", "/usr/bin/vrio-localhv", "host0",
	  no_args, true,
	  "/usr/bin/vrio-localhv " EAL_DEFAULTS " *:info --file-prefix=vrio-localhv-host0" },
	{ "dpdk.eal last, to override", "vrio-ioserver", "ios0", memif_args, false,
	  "vrio-ioserver " EAL_DEFAULTS " *:warning --file-prefix=vrio-ioserver-ios0 "
	  "--vdev=net_memif0,role=server -m 512" },
};

static void test_eal_argv(void **state)
{
	unsigned failed = 0;
	char **argv;
	int argc;

	for (size_t i = 0; i < ARRAY_SIZE(eal_cases); i++) {
		const struct eal_case *ec = &eal_cases[i];
		struct vrio_topo_dpdk cfg = { .eal = (char **)ec->extra };
		char got[512] = "";

		while (ec->extra && ec->extra[cfg.n_eal])
			cfg.n_eal++;
		argv = eal_argv(ec->prog, ec->node, &cfg, ec->verbose, &argc);
		assert_non_null(argv);
		assert_null(argv[argc]);
		for (int k = 0; k < argc; k++) {
			if (k)
				strcat(got, " ");
			strcat(got, argv[k]);
		}
		if (strcmp(got, ec->want) != 0) {
			print_message("case '%s':\n got  %s\n want %s\n", ec->what, got, ec->want);
			failed++;
		}
		free(argv);
	}
	assert_int_equal(failed, 0);
	/* No dpdk: entry at all. */
	argv = eal_argv("p", "n", NULL, false, &argc);
	assert_non_null(argv);
	assert_int_equal(argc, 1 + (int)EAL_N_DEFAULTS + 2);
	assert_string_equal(argv[argc - 1], "--file-prefix=p-n");
	free(argv);
}

/*
 * rte_eal_init() cannot be retried: after a failed start, even a call that
 * would succeed gets the first error back. In a child, since this process
 * starts its EAL for good later.
 */
static void test_eal_failure_is_final(void **state)
{
	static const char *const bad[] = { "--no-such-option", NULL };
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vrio_topo_dpdk cfg = { .eal = (char **)bad, .n_eal = 1 };
		int rc, again, null = open("/dev/null", O_WRONLY);

		/* Quiet: the EAL prints its whole usage. */
		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		vrio_log_init("test_dpdk", VRIO_LOG_WARN);
		rc = vrio_dpdk_eal_init("test_dpdk", "bad", &cfg, false);
		again = vrio_dpdk_eal_init("test_dpdk", "good", NULL, false);
		_exit(rc == -EINVAL && again == rc ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- The backend on a loopback port. ---- */

#define LISTEN_MAC "02:00:00:00:00:01"

static bool eal_up;
static const struct vrio_transport_ops *ops;

static int eal_setup(void **state)
{
	static const char *const extra[] = { "--vdev=net_ring0", "--log-level=*:error", NULL };
	struct vrio_topo_dpdk d = {
		.port = (char *)"net_ring0", .eal = (char **)extra, .n_eal = 2,
	};
	struct vrio_topo_dpdk other = { .port = (char *)"1" };
	const struct vrio_transport_node self = { .prog = "test_dpdk", .name = "unit", .dpdk = &d };
	int rc;

	vrio_log_init("test_dpdk", VRIO_LOG_WARN);
	ops = vrio_transport_find("dpdk");
	assert_non_null(ops);
	assert_true(ops->unreliable);
	/* No port before setup. */
	assert_int_equal(ops->connect(LISTEN_MAC, -1, &(struct vrio_conn *){ NULL }), -ENODEV);
	/* The backend starts the EAL itself, with the node's dpdk.eal. */
	rc = ops->setup(&self);
	if (rc < 0) {
		print_message("cannot set up the dpdk backend on net_ring0: %s\n", strerror(-rc));
		return -1;
	}
	eal_up = true;
	/* Up once: a later start, whatever its arguments, is a no-op. */
	assert_int_equal(vrio_dpdk_eal_init("test_dpdk", "another", &other, true), 0);
	/* One port per process: a second name is refused, the same one nests. */
	assert_int_equal(ops->setup(&(const struct vrio_transport_node){
				 .prog = "test_dpdk", .name = "unit", .dpdk = &other }),
			 -EBUSY);
	assert_int_equal(ops->setup(&self), 0);
	ops->teardown();
	return 0;
}

static int eal_teardown(void **state)
{
	if (eal_up) {
		ops->teardown();
		assert_int_equal(g_port.refs, 0);
		vrio_dpdk_eal_fini();
		/* Cleaned up: the EAL does not start again. */
		assert_int_equal(vrio_dpdk_eal_init("test_dpdk", "unit", NULL, false), -ESHUTDOWN);
	}
	return 0;
}

struct acceptor {
	struct vrio_listener *l;
	struct vrio_conn *c;
	int rc;
};

static void *accept_loop(void *arg)
{
	struct acceptor *a = arg;
	uint64_t t0 = vrio_now_ns();

	do {
		a->rc = ops->accept(a->l, &a->c);
		if (a->rc == -EAGAIN)
			usleep(200);
	} while (a->rc == -EAGAIN && vrio_now_ns() - t0 < 5000000000ull);
	return NULL;
}

struct pair {
	struct vrio_listener *l;
	struct vrio_conn *client, *server;
};

static void pair_open(struct pair *p)
{
	struct acceptor a = { 0 };
	pthread_t t;

	assert_int_equal(ops->listen(LISTEN_MAC, &p->l), 0);
	a.l = p->l;
	assert_int_equal(pthread_create(&t, NULL, accept_loop, &a), 0);
	assert_int_equal(ops->connect(LISTEN_MAC, -1, &p->client), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	p->server = a.c;
	assert_int_equal(to_dc(p->client)->id, to_dc(p->server)->id);
	assert_int_equal(vrio_conn_fd(p->client), -1);
}

static void pair_close(struct pair *p)
{
	if (p->client)
		p->client->ops->close(p->client);
	if (p->server)
		p->server->ops->close(p->server);
	ops->listener_close(p->l);
	assert_int_equal(g_port.nconns, 0);
}

static uint8_t pbyte(uint32_t id, size_t i)
{
	return (uint8_t)(id * 29 + i * 3 + (i >> 11));
}

struct sink {
	unsigned frames;
	uint32_t last_id;
	unsigned bad;
	int fail_at;		/* return -EPROTO on this frame, or -1 */
};

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct sink *s = arg;
	const uint8_t *p = payload;

	if (f->type != VRIO_FRAME_REQ || f->arg != f->len)
		s->bad++;
	for (size_t i = 0; i < f->len; i++) {
		if (p[i] != pbyte(f->id, i)) {
			s->bad++;
			break;
		}
	}
	s->last_id = f->id;
	if ((int)s->frames++ == s->fail_at)
		return -EPROTO;
	return 0;
}

/* Send a frame in two iovecs (one may be empty). */
static int send_frame(struct vrio_conn *c, uint32_t id, uint32_t len, uint8_t *buf)
{
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .id = id, .len = len, .arg = len };
	struct iovec iov[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };

	for (size_t i = 0; i < len; i++)
		buf[i] = pbyte(id, i);
	return c->ops->send(c, &f, iov, 2);
}

/* Poll until n frames came or a second passed; returns poll's last result. */
static int poll_for(struct vrio_conn *c, struct sink *s, unsigned n, unsigned budget)
{
	uint64_t t0 = vrio_now_ns();
	int rc = 0;

	while (s->frames < n && vrio_now_ns() - t0 < 1000000000ull) {
		rc = c->ops->poll(c, on_frame, s, budget);
		if (rc < 0)
			return rc;
	}
	return rc;
}

static void test_frames(void **state)
{
	static const uint32_t lens[] = { 0, 1, 1447, 1448, 1449, 4096, 65536, 1000000,
					 VRIO_FRAME_MAX_PAYLOAD };
	struct sink s = { .fail_at = -1 };
	uint8_t *buf = malloc(VRIO_FRAME_MAX_PAYLOAD);
	struct pair p = { 0 };

	assert_non_null(buf);
	pair_open(&p);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		assert_int_equal(send_frame(p.client, (uint32_t)i, lens[i], buf), 0);
		assert_true(p.client->ops->flush(p.client) >= 0);
		assert_true(poll_for(p.server, &s, (unsigned)i + 1, 8) >= 0);
		assert_int_equal(s.frames, i + 1);
		assert_int_equal(s.last_id, i);
	}
	assert_int_equal(s.bad, 0);
	/* And back. */
	memset(&s, 0, sizeof(s));
	s.fail_at = -1;
	assert_int_equal(send_frame(p.server, 77, 5000, buf), 0);
	assert_int_equal(p.server->ops->flush(p.server), 0);
	assert_true(poll_for(p.client, &s, 1, 8) >= 0);
	assert_int_equal(s.frames, 1);
	assert_int_equal(s.last_id, 77);
	assert_int_equal(p.client->stats.frames_tx, ARRAY_SIZE(lens));
	assert_int_equal(p.server->stats.frames_rx, ARRAY_SIZE(lens));
	assert_int_equal(p.server->stats.bytes_rx, p.client->stats.bytes_tx);
	assert_int_equal(p.server->stats.reasm_drops, 0);
	/* A payload that is not the iovecs' sum, or too large, is refused. */
	{
		struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 10 };
		struct iovec iov = { buf, 9 };

		assert_int_equal(p.client->ops->send(p.client, &f, &iov, 1), -EINVAL);
		f.len = iov.iov_len = VRIO_FRAME_MAX_PAYLOAD + 1;
		assert_int_equal(p.client->ops->send(p.client, &f, &iov, 1), -EINVAL);
	}
	pair_close(&p);
	free(buf);
}

/* Fewer than the budget means nothing whole is left; a callback error ends
 * the poll with that error. */
static void test_budget_and_errors(void **state)
{
	struct sink s = { .fail_at = -1 };
	uint8_t buf[3000];
	struct pair p = { 0 };

	pair_open(&p);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(send_frame(p.client, i, 2000, buf), 0);
	assert_int_equal(p.client->ops->pending(p.client), 1);
	assert_int_equal(p.client->ops->flush(p.client), 0);
	assert_int_equal(p.client->ops->pending(p.client), 0);
	/* Nothing wakes an owner when the answer comes: it keeps polling. */
	assert_int_equal(vrio_conn_timeout_ms(p.client), 0);
	assert_int_equal(vrio_conn_timeout_ms(p.server), -1);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 2), 2);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 2), 2);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 2), 1);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 2), 0);
	assert_int_equal(vrio_conn_timeout_ms(p.server), 0);
	usleep(2 * DPDK_LINGER_NS / 1000);
	assert_int_equal(vrio_conn_timeout_ms(p.server), -1);
	s.fail_at = 6;
	for (uint32_t i = 5; i < 8; i++)
		assert_int_equal(send_frame(p.client, i, 10, buf), 0);
	p.client->ops->flush(p.client);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), -EPROTO);
	assert_int_equal(s.last_id, 6);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), 1);
	assert_int_equal(s.bad, 0);
	pair_close(&p);
}

/* Raw packets onto the port, as a peer that does what it wants. */
static void inject(const struct rte_ether_addr *src, const struct rte_ether_addr *dst,
		   const struct dpdk_hdr *h, const void *data, uint16_t len, uint16_t type)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(g_port.pool);
	struct rte_ether_hdr *eth;
	uint8_t *b;

	assert_non_null(m);
	b = (uint8_t *)rte_pktmbuf_append(m, DPDK_HDRS + len);
	assert_non_null(b);
	eth = (struct rte_ether_hdr *)b;
	eth->src_addr = *src;
	eth->dst_addr = *dst;
	eth->ether_type = rte_cpu_to_be_16(type);
	dpdk_hdr_encode(h, b + RTE_ETHER_HDR_LEN);
	if (len)
		memcpy(b + DPDK_HDRS, data, len);
	port_lock(&g_port);
	port_send(&g_port, &m, 1);
	port_tx(&g_port);
	port_unlock(&g_port);
}

static void test_handshake_and_garbage(void **state)
{
	struct dpdk_conn *cc;
	struct vrio_conn *extra;
	struct sink s = { .fail_at = -1 };
	struct dpdk_hdr h = { 0 };
	uint8_t frame[64] = { 0 };
	uint64_t stray, bad, other;
	struct pair p = { 0 };
	uint32_t first;

	pair_open(&p);
	cc = to_dc(p.client);
	first = cc->id;

	/* The connector's SYN again: answered, not a second connection. */
	h.type = DPDK_SYN;
	h.conn = cc->id;
	h.total = 1500;
	inject(&cc->local, &cc->peer, &h, NULL, 0, DPDK_ETHERTYPE);
	assert_int_equal(ops->accept(p.l, &extra), -EAGAIN);
	assert_int_equal(g_port.nconns, 2);
	/* The repeated SYN-ACK reaches the client, which ignores it. */
	assert_int_equal(p.client->ops->poll(p.client, on_frame, &s, 8), 0);
	assert_int_equal(s.frames, 0);

	/* Not our EtherType, a bad header, a stranger's connection id. */
	other = g_port.rx_other;
	bad = g_port.rx_bad;
	stray = g_port.rx_stray;
	inject(&cc->local, &cc->peer, &h, NULL, 0, 0x0800);
	h.type = 9;
	inject(&cc->local, &cc->peer, &h, NULL, 0, DPDK_ETHERTYPE);
	h.type = DPDK_DATA;
	h.conn = cc->id ^ 1;
	h.len = h.total = sizeof(frame);
	inject(&cc->local, &cc->peer, &h, frame, sizeof(frame), DPDK_ETHERTYPE);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), 0);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), 0);
	assert_int_equal(g_port.rx_other, other + 1);
	assert_int_equal(g_port.rx_bad, bad + 1);
	/* The stranger's packet, and the FIN it was answered with (addressed
	 * to the client's MAC but for nobody's id). */
	assert_int_equal(g_port.rx_stray, stray + 2);

	/* A whole packet that is no vrio frame: the connection's garbage. */
	h.conn = cc->id;
	h.seq = 1000;
	inject(&cc->local, &cc->peer, &h, frame, sizeof(frame), DPDK_ETHERTYPE);
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), -EBADMSG);

	/* FIN: the peer's poll and send say so. */
	p.client->ops->close(p.client);
	p.client = NULL;
	assert_int_equal(p.server->ops->poll(p.server, on_frame, &s, 8), -ECONNRESET);
	assert_int_equal(p.server->ops->send(p.server, &(struct vrio_frame){ .type = 1 }, NULL, 0),
			 -ECONNRESET);
	assert_int_equal(p.server->ops->flush(p.server), -ECONNRESET);
	p.server->ops->close(p.server);
	p.server = NULL;
	ops->listener_close(p.l);

	/* A new connection gets a new id. */
	memset(&p, 0, sizeof(p));
	pair_open(&p);
	assert_int_not_equal(to_dc(p.client)->id, first);
	pair_close(&p);

	/* Nobody listening: the connector gives up. */
	assert_int_equal(ops->connect("02:00:00:00:00:09", -1, &extra), -ETIMEDOUT);
	assert_int_equal(ops->connect("03:00:00:00:00:09", -1, &extra), -EINVAL);
	assert_int_equal(ops->connect("02:00:00:00:00", -1, &extra), -EINVAL);
	assert_int_equal(g_port.nconns, 0);
}

/* Both owners on their own threads, under the reliable layer: the port's
 * burst right changes hands all the time, and nothing is lost. */
enum { STRESS_FRAMES = 20000 };

struct end {
	struct vrio_conn *c;
	struct end *peer;
	uint32_t next_send, next_recv;	/* next_recv: read by the peer's thread */
	unsigned bad;
	uint64_t deadline;
};

static uint32_t stress_len(uint32_t id)
{
	return (id * 2654435761u >> 7) % 9000;
}

static int stress_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			const void *payload)
{
	struct end *e = arg;
	const uint8_t *p = payload;

	if (f->id != e->next_recv || f->len != stress_len(f->id))
		e->bad++;
	for (size_t i = 0; i < f->len; i++)
		if (p[i] != pbyte(f->id, i)) {
			e->bad++;
			break;
		}
	__atomic_store_n(&e->next_recv, e->next_recv + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Until both ends have everything: the peer may need our acknowledgements,
 * or our retransmissions. */
static bool stress_done(const struct end *e)
{
	return e->next_recv == STRESS_FRAMES &&
	       __atomic_load_n(&e->peer->next_recv, __ATOMIC_ACQUIRE) == STRESS_FRAMES;
}

static void *stress_loop(void *arg)
{
	struct end *e = arg;
	static __thread uint8_t buf[9000];
	int rc;

	while (!stress_done(e) && vrio_now_ns() < e->deadline) {
		while (e->next_send < STRESS_FRAMES) {
			rc = send_frame(e->c, e->next_send, stress_len(e->next_send), buf);
			if (rc == -ENOBUFS)
				break;
			if (rc < 0) {
				e->bad++;
				return NULL;
			}
			e->next_send++;
		}
		if (e->c->ops->flush(e->c) < 0 || e->c->ops->poll(e->c, stress_frame, e, 64) < 0) {
			e->bad++;
			return NULL;
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct end a = { 0 }, b = { 0 };
	pthread_t ta, tb;
	struct pair p = { 0 };

	pair_open(&p);
	assert_int_equal(vrio_reliable_wrap(p.client, &a.c), 0);
	assert_int_equal(vrio_reliable_wrap(p.server, &b.c), 0);
	p.client = p.server = NULL;
	a.peer = &b;
	b.peer = &a;
	a.deadline = b.deadline = vrio_now_ns() + 60000000000ull;
	assert_int_equal(pthread_create(&ta, NULL, stress_loop, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, stress_loop, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	print_message("%u+%u frames; retransmits %llu+%llu\n", a.next_recv, b.next_recv,
		      (unsigned long long)a.c->stats.retransmits,
		      (unsigned long long)b.c->stats.retransmits);
	assert_int_equal(a.bad + b.bad, 0);
	assert_int_equal(a.next_recv, STRESS_FRAMES);
	assert_int_equal(b.next_recv, STRESS_FRAMES);
	a.c->ops->close(a.c);
	b.c->ops->close(b.c);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_reassembly),
		cmocka_unit_test(test_reassembly_largest),
		cmocka_unit_test(test_reassembly_random),
		cmocka_unit_test(test_eal_argv),
		cmocka_unit_test(test_eal_failure_is_final),
	};
	const struct CMUnitTest port[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_budget_and_errors),
		cmocka_unit_test(test_handshake_and_garbage),
		cmocka_unit_test(test_threads),
	};
	int rc;

	rc = cmocka_run_group_tests_name("dpdk packets", pure, NULL, NULL);
	return rc | cmocka_run_group_tests_name("dpdk port", port, eal_setup, eal_teardown);
}
