/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a frontend (an untrusted VMM) feeds local-hv's vhost-user message
 * hook: local-hv/vumsg.c, the code rte_vhost's pre_msg_handle runs, with
 * its real neighbours iommu.c, iotlb.c and channel.c. Each message is built
 * in a heap block the size of rte_vhost 22.11's message context (680 bytes,
 * channel.c), so ASan catches a read or write past it. No rte_vhost runs:
 * the harness is the frontend, and also the poller, which it turns
 * synchronously whenever local-hv wakes it (lhv_poller_wake), as
 * poller.c's poll_devices would. The harness also plays the io-server, which either is
 * not connected or takes invalidations and acknowledges them when told.
 *
 * Two devices share the process: d (fuzzed) and d2, which holds a backend
 * channel of its own for the whole run. Descriptors the harness owns and
 * a message may carry or plant in its payload: the genuine channel (a
 * socketpair end), d2's channel, the vhost-user listening socket, the
 * connection accepted on it (named), the frontend's end of it, a pipe, a
 * TCP socket, a datagram socketpair end.
 *
 * The input: u8 flags (bit 0 deferred policy, bits 1-3 batch - 1, bit 4 a
 * long delay), u16 config length (mod 257), then records, each a u8 op:
 *
 *   0  IOTLB_MSG      u8 how (bit 0 small page addresses, bit 1 a raw
 *                     size field, bits 2-4 the type: 0-3 MISS, UPDATE,
 *                     INVALIDATE, ACCESS_FAIL, others raw), then iova, size
 *                     (u8 pages or u64), uaddr u64, perm u8, [u32 size]
 *   1  GET_CONFIG     u32 message size, u32 offset, u32 length, u8 fill
 *   2  SET_CONFIG     the same
 *   3  SET_SLAVE_REQ_FD  u8 fd_num (mod 10: 9 a raw count), 8 x u8 the
 *                     descriptor per slot (a pool index, -1 or raw), u8 the
 *                     descriptor planted all over the payload
 *   4  ring message   u8 which (SET_FEATURES .. SET_VRING_ENABLE), u64 u64
 *   5  other message  u32 request
 *   6  start          u8 bit 0 ACCESS_PLATFORM: the device goes to the poller
 *   7  poller round
 *   8  io-server ack  u8: the n-th invalidation sent and not acknowledged,
 *                     or a raw seq (0-127) when >= 128
 *   9  connection to the io-server lost
 *   10 io-server connected or not (u8 bit 0)
 *   11 frontend hangs up (destroy_connection)
 *   12 walker lookup  u8 page, u8 perm: on a miss, lhv_iommu_admit asks
 *                     the VMM over the channel
 *   13 reload         the policy flipped (lhv_iommu_configure)
 *
 * Properties: no crash, UB, leak (memory or descriptor); every message
 * but the IOTLB, config and inflight-region ones is passed on to
 * rte_vhost; no message holds
 * rte_vhost's thread for seconds. The IOTLB is always sorted, disjoint,
 * and translates exactly as a plain model fed the same updates and
 * invalidations at the moments the poller applies them; the moment an
 * invalidation is done, no byte of its range translates. A config read is
 * answered only within the message and the 256-byte config space, with
 * the device's bytes and zeroes past them, touching nothing else of the
 * message; a config write changes nothing. The channel adopted is always a
 * fresh duplicate of the one descriptor in the message's fds[] (with
 * fd_num 1), never a planted one, another device's channel, a named
 * connection, a listening socket, a pipe, a TCP or datagram socket; the
 * genuine one in a well-formed message is adopted. An IOTLB miss goes to
 * the adopted channel and nowhere else, with the address missed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vhost_types.h>

#include "fuzz_input.h"
#include "localhv.h"
#include "log.h"

#define CTX_SIZE	680	/* rte_vhost 22.11's message context */
#define CTX_FDS		644
#define CTX_FD_NUM	676
#define HDR		12
#define PAGE		4096ull
#define MAX_MODEL	2048
#define MAX_PROBES	64

enum {
	P_GENUINE, P_HELD, P_LISTEN, P_ACCEPTED, P_CLIENT, P_PIPE, P_TCP, P_DGRAM, NR_POOL
};

static const uint32_t ring_msgs[] = { 2, 4, 5, 8, 9, 10, 11, 12, 13, 18 };

/* What the frontend, the other device and the world hold. */
static struct {
	char dir[64];
	int pool[NR_POOL];
	int genuine_peer;		/* where misses on the genuine channel arrive */
	int pipe_w, dgram_peer;		/* kept open: the other ends stay live */
	int held_peer;
} g_fds;

static struct lhv g_l;
static struct lhv_dev g_d, g_d2;
static bool g_connected;		/* the io-server the harness plays */
static uint64_t g_next_seq;

/* The IOTLB model: disjoint ranges, unsorted, and what local-hv was told
 * but has not applied yet. */
struct range {
	uint64_t iova, size, uaddr;
	uint8_t perm;
};
static struct {
	struct range r[MAX_MODEL];
	unsigned n;
	struct lhv_iommu_msg q[LHV_IOMMU_INBOX];	/* posted, not taken */
	unsigned q_head;				/* = iommu.in_head when synced */
	struct range pend[LHV_IOMMU_PENDING];		/* taken invalidations */
	uint64_t pend_token[LHV_IOMMU_PENDING];
	unsigned npend;
	uint64_t probe[MAX_PROBES];
	unsigned nprobe;
} g_m;

/* The harness is the poller and the io-server. */
void lhv_poller_wake(struct lhv *l);
void lhv_dev_break(struct lhv_dev *d, int reason, const char *fmt, ...);
int lhv_up_send_invalidate(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t *seq);
const char *rte_version(void);

const char *rte_version(void)
{
	return "DPDK 22.11.11";
}

void lhv_dev_break(struct lhv_dev *d, int reason, const char *fmt, ...)
{
	(void)reason;
	(void)fmt;
	d->broken = true;
}

int lhv_up_send_invalidate(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t *seq)
{
	(void)d;
	(void)iova;
	(void)size;
	if (!g_connected)
		return -ENOTCONN;
	*seq = ++g_next_seq;
	return 0;
}

/* The io-server acknowledges the n-th invalidation it was sent and has
 * not acknowledged yet (every one if n < 0); false if there is none. */
static bool ack(struct lhv_dev *d, int n)
{
	const struct lhv_inval *p;
	unsigned i;
	bool any = false;
	int k = 0;

	for (i = 0; i < d->iommu.npend; i++) {
		p = &d->iommu.pend[i];
		if (!p->seq || p->acked || (n >= 0 && k++ != n))
			continue;
		FUZZ_CHECK(lhv_iommu_acked(d, p->seq) == 0, "the ack of seq %llu was refused",
			   (unsigned long long)p->seq);
		any = true;
		if (n >= 0)
			break;
	}
	return any;
}

/* One round of poller.c's poll_devices for d, and the io-server's answers:
 * a strict invalidation makes the VMM wait, so the io-server answers at
 * once (an io-server that does not is the stuck-invalidation timeout, not
 * a property of message handling). */
static void poller_round(struct lhv_dev *d)
{
	int st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);

	if (st == LHV_DEV_START)
		__atomic_store_n(&d->state, st = LHV_DEV_RUNNING, __ATOMIC_RELEASE);
	if (d->iommu.on && (st == LHV_DEV_RUNNING || st == LHV_DEV_STOP)) {
		lhv_iommu_poll(d);
		if (!d->iommu.deferred && ack(d, -1))
			lhv_iommu_poll(d);
	}
	if (st == LHV_DEV_STOP) {
		d->inflight = 0;
		if (d->iommu.on)
			lhv_iommu_reset(d);
		__atomic_store_n(&d->state, LHV_DEV_IDLE, __ATOMIC_RELEASE);
	}
}

void lhv_poller_wake(struct lhv *l)
{
	(void)l;
	poller_round(&g_d);
}

static const struct lhv_dev_ops fuzz_ops = {
	.name = "fuzz",
	.own_rings = true,
};

/* ---- the IOTLB model ---- */

static void model_keep(struct range *out, unsigned *n, struct range r)
{
	FUZZ_CHECK(*n < MAX_MODEL, "model full");
	out[(*n)++] = r;
}

static void model_invalidate(uint64_t iova, uint64_t size)
{
	static struct range out[MAX_MODEL];
	uint64_t end = iova + size, r_end;
	unsigned i, n = 0;
	struct range r;

	if (size == 0)
		return;
	if (end < iova)
		end = UINT64_MAX;
	for (i = 0; i < g_m.n; i++) {
		r = g_m.r[i];
		r_end = r.iova + r.size;
		if (r_end <= iova || r.iova >= end) {
			model_keep(out, &n, r);
			continue;
		}
		if (r.iova < iova)
			model_keep(out, &n, (struct range){ r.iova, iova - r.iova, r.uaddr, r.perm });
		if (r_end > end)
			model_keep(out, &n, (struct range){ end, r_end - end,
							    r.uaddr + (end - r.iova), r.perm });
	}
	memcpy(g_m.r, out, n * sizeof(out[0]));
	g_m.n = n;
}

static void model_update(uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	if (size == 0 || iova + size < iova || uaddr + size < uaddr ||
	    !(perm & (LHV_IOTLB_R | LHV_IOTLB_W)) || (perm & ~(LHV_IOTLB_R | LHV_IOTLB_W)))
		return;
	model_invalidate(iova, size);
	FUZZ_CHECK(g_m.n < MAX_MODEL, "model full");
	g_m.r[g_m.n++] = (struct range){ iova, size, uaddr, perm };
}

static const struct range *model_find(uint64_t a)
{
	unsigned i;

	for (i = 0; i < g_m.n; i++)
		if (a >= g_m.r[i].iova && a - g_m.r[i].iova < g_m.r[i].size)
			return &g_m.r[i];
	return NULL;
}

static void probe_add(uint64_t a)
{
	g_m.probe[g_m.nprobe++ % MAX_PROBES] = a;
}

static void check_gone(const struct lhv_iotlb *t, uint64_t iova, uint64_t size)
{
	uint64_t pts[3], u, run, last;
	struct lhv_iotlb c = *t;
	unsigned i;

	if (size == 0)
		return;
	last = iova + size < iova ? UINT64_MAX - 1 : iova + size - 1;
	pts[0] = iova;
	pts[1] = last;
	pts[2] = iova + (last - iova) / 2;
	for (i = 0; i < 3; i++)
		FUZZ_CHECK(lhv_iotlb_lookup(&c, pts[i], 1, 0, &u, &run) == -ENOENT,
			   "%#llx still translates after the invalidation of %#llx+%#llx was done",
			   (unsigned long long)pts[i], (unsigned long long)iova,
			   (unsigned long long)size);
}

/*
 * Catch the model up with the device: messages the poller took (updates
 * applied, invalidations pending), then invalidations finished, which
 * finish in order and raise done_token.
 */
static void model_sync(struct lhv_dev *d)
{
	struct lhv_iommu *m = &d->iommu;
	uint64_t done = __atomic_load_n(&m->done_token, __ATOMIC_ACQUIRE);
	unsigned head = __atomic_load_n(&m->in_head, __ATOMIC_ACQUIRE), i, k;
	const struct lhv_iommu_msg *msg;

	for (; g_m.q_head != head; g_m.q_head++) {
		msg = &g_m.q[g_m.q_head & (LHV_IOMMU_INBOX - 1)];
		if (msg->op == LHV_IOMMU_UPDATE) {
			model_update(msg->iova, msg->size, msg->uaddr, msg->perm);
			continue;
		}
		FUZZ_CHECK(g_m.npend < LHV_IOMMU_PENDING, "model pending full");
		g_m.pend[g_m.npend] = (struct range){ msg->iova, msg->size, 0, 0 };
		g_m.pend_token[g_m.npend++] = msg->token;
	}
	for (k = 0; k < g_m.npend && g_m.pend_token[k] <= done; k++) {
		model_invalidate(g_m.pend[k].iova, g_m.pend[k].size);
	}
	/* Checked once all are applied: a later update may map part again. */
	for (i = 0; i < k; i++) {
		bool remapped = false;
		unsigned j;

		for (j = 0; j < g_m.n; j++)
			remapped |= lhv_ranges_overlap(g_m.r[j].iova, g_m.r[j].size, g_m.pend[i].iova,
						       g_m.pend[i].size);
		if (!remapped)
			check_gone(&m->tlb, g_m.pend[i].iova, g_m.pend[i].size);
	}
	memmove(g_m.pend, g_m.pend + k, (g_m.npend - k) * sizeof(g_m.pend[0]));
	memmove(g_m.pend_token, g_m.pend_token + k, (g_m.npend - k) * sizeof(g_m.pend_token[0]));
	g_m.npend -= k;
	FUZZ_CHECK(g_m.npend == m->npend, "model has %u invalidations pending, local-hv %u",
		   g_m.npend, m->npend);
}

static void check_tlb(struct lhv_dev *d)
{
	struct lhv_iotlb c = d->iommu.tlb;	/* lookups count hits: on a copy */
	const struct lhv_iotlb_entry *e = c.e;
	const struct range *r;
	uint64_t u, run, a;
	unsigned i;
	int rc;

	FUZZ_CHECK(c.n <= LHV_IOTLB_MAX, "%u entries", c.n);
	for (i = 0; i < c.n; i++) {
		FUZZ_CHECK(e[i].size > 0 && e[i].iova + e[i].size > e[i].iova,
			   "entry %u: %#llx+%#llx", i, (unsigned long long)e[i].iova,
			   (unsigned long long)e[i].size);
		FUZZ_CHECK(i == 0 || e[i - 1].iova + e[i - 1].size <= e[i].iova,
			   "entries %u and %u overlap or are out of order", i - 1, i);
	}
	/* Both ways: each mapping's edges and each entry's, and addresses
	 * messages named. */
	for (i = 0; i < 3 * g_m.n + 2 * c.n + MAX_PROBES; i++) {
		if (i < 3 * g_m.n) {
			r = &g_m.r[i / 3];
			a = r->iova + (i % 3 == 0 ? 0 : i % 3 == 1 ? r->size - 1 : r->size);
		} else if (i < 3 * g_m.n + 2 * c.n) {
			a = e[(i - 3 * g_m.n) / 2].iova;
			if ((i - 3 * g_m.n) % 2)
				a += e[(i - 3 * g_m.n) / 2].size - 1;
		} else {
			a = g_m.probe[i - 3 * g_m.n - 2 * c.n];
		}
		r = model_find(a);
		rc = lhv_iotlb_lookup(&c, a, UINT64_MAX, 0, &u, &run);
		if (!r) {
			FUZZ_CHECK(rc == -ENOENT, "%#llx translates to %#llx, the model has no mapping",
				   (unsigned long long)a, (unsigned long long)u);
			continue;
		}
		FUZZ_CHECK(rc == 0 && u == r->uaddr + (a - r->iova),
			   "%#llx: rc %d, %#llx; the model maps it to %#llx", (unsigned long long)a,
			   rc, (unsigned long long)u, (unsigned long long)(r->uaddr + (a - r->iova)));
		FUZZ_CHECK(run == r->size - (a - r->iova), "%#llx: run %#llx, model %#llx",
			   (unsigned long long)a, (unsigned long long)run,
			   (unsigned long long)(r->size - (a - r->iova)));
		FUZZ_CHECK(lhv_iotlb_lookup(&c, a, 1, r->perm, &u, &run) == 0 &&
			   ((r->perm & LHV_IOTLB_W) ||
			    lhv_iotlb_lookup(&c, a, 1, LHV_IOTLB_W, &u, &run) == -EACCES),
			   "%#llx: access %u not as mapped", (unsigned long long)a, r->perm);
	}
}

/* ---- descriptors ---- */

static unsigned open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	FUZZ_CHECK(dir != NULL, "opendir: %s", strerror(errno));
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return a >= 0 && b >= 0 && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *lvl = getenv("VRIO_FUZZ_LOG");
	int sp[2], lfd, max = lvl ? vrio_log_level_parse(lvl) : -1;

	(void)argc;
	(void)argv;
	/* Quiet unless asked (VRIO_FUZZ_LOG=debug), as fuzz_session. */
	vrio_log_init("fuzz_vhost_msg", max > 0 ? (enum vrio_log_level)max : (enum vrio_log_level)0);
	snprintf(g_fds.dir, sizeof(g_fds.dir), "/tmp/vrio-fuzz-vu.XXXXXX");
	FUZZ_CHECK(mkdtemp(g_fds.dir) != NULL, "mkdtemp");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/d.sock", g_fds.dir);

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	FUZZ_CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		   listen(lfd, 4) == 0, "listen: %s", strerror(errno));
	g_fds.pool[P_LISTEN] = lfd;
	g_fds.pool[P_CLIENT] = socket(AF_UNIX, SOCK_STREAM, 0);
	FUZZ_CHECK(connect(g_fds.pool[P_CLIENT], (struct sockaddr *)&sa, sizeof(sa)) == 0,
		   "connect: %s", strerror(errno));
	g_fds.pool[P_ACCEPTED] = accept(lfd, NULL, NULL);
	FUZZ_CHECK(g_fds.pool[P_ACCEPTED] >= 0, "accept: %s", strerror(errno));
	/* The directory is not needed once the connection has its name. */
	unlink(sa.sun_path);
	rmdir(g_fds.dir);

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	g_fds.pool[P_GENUINE] = sp[0];
	g_fds.genuine_peer = sp[1];
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	g_fds.pool[P_HELD] = sp[0];
	g_fds.held_peer = sp[1];
	FUZZ_CHECK(pipe(sp) == 0, "pipe");
	g_fds.pool[P_PIPE] = sp[0];
	g_fds.pipe_w = sp[1];
	g_fds.pool[P_TCP] = socket(AF_INET, SOCK_STREAM, 0);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0, "socketpair");
	g_fds.pool[P_DGRAM] = sp[0];
	g_fds.dgram_peer = sp[1];

	/* The registry: d2 holds a channel for the whole run. */
	pthread_mutex_init(&g_l.lock, NULL);
	g_l.poller_started = true;
	g_l.devs[0] = &g_d;
	g_l.devs[1] = &g_d2;
	g_l.n_slots = 2;
	snprintf(g_d2.name, sizeof(g_d2.name), "d2");
	g_d2.ops = &fuzz_ops;
	g_d2.iommu.slave_fd = fcntl(g_fds.pool[P_HELD], F_DUPFD_CLOEXEC, 0);
	return 0;
}

/* The descriptor a selector byte names: one of the pool, -1, or raw. */
static int pick_fd(uint8_t b)
{
	if (b < 2 * NR_POOL)
		return g_fds.pool[b % NR_POOL];
	if (b < 0xf0)
		return -1;
	return (int)(b - 0xf0);	/* 0-15: stdio, libFuzzer's, ours */
}

/* ---- messages ---- */

static uint8_t *new_ctx(uint32_t request)
{
	uint8_t *c = malloc(CTX_SIZE);
	int v = -1, i, zero = 0;

	FUZZ_CHECK(c != NULL, "malloc");
	/* The payload past what the message says is whatever was there. */
	memset(c, 0xa5, CTX_SIZE);
	memcpy(c, &request, 4);
	memcpy(c + 4, &zero, 4);
	for (i = 0; i < 8; i++)
		memcpy(c + CTX_FDS + 4 * i, &v, 4);
	memcpy(c + CTX_FD_NUM, &zero, 4);
	return c;
}

static void set_u32(uint8_t *c, size_t off, uint32_t v)
{
	memcpy(c + off, &v, 4);
}

static uint32_t get_u32(const uint8_t *c, size_t off)
{
	uint32_t v;

	memcpy(&v, c + off, 4);
	return v;
}

static enum lhv_msg_result send_msg(struct lhv_dev *d, uint8_t *ctx)
{
	uint64_t t0 = vrio_now_ns(), dt;
	enum lhv_msg_result r = lhv_vu_msg(&g_l, d, ctx);

	dt = vrio_now_ns() - t0;
	FUZZ_CHECK(dt < 3000000000ull, "request %u held rte_vhost's thread for %llu ms",
		   get_u32(ctx, 0), (unsigned long long)(dt / 1000000));
	FUZZ_CHECK(r == LHV_MSG_ERR || r == LHV_MSG_PASS || r == LHV_MSG_REPLY, "result %d", r);
	return r;
}

static void op_iotlb(struct lhv_dev *d, struct fuzz_in *in)
{
	uint8_t how = fuzz_u8(in), type, *ctx;
	struct vhost_iotlb_msg msg = { 0 };
	struct lhv_iommu *m = &d->iommu;
	static const uint8_t types[] = { VHOST_IOTLB_MISS, VHOST_IOTLB_UPDATE,
					 VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_ACCESS_FAIL };
	uint32_t size = sizeof(msg);
	unsigned tail0 = m->in_tail;
	enum lhv_msg_result r;

	type = (how >> 2) & 7;
	msg.type = type < 4 ? types[type] : fuzz_u8(in);
	if (how & 1) {
		msg.iova = fuzz_u8(in) * PAGE;
		msg.size = fuzz_u8(in) * PAGE;
	} else {
		msg.iova = fuzz_u64(in);
		msg.size = fuzz_u64(in);
	}
	msg.uaddr = fuzz_u64(in);
	msg.perm = fuzz_u8(in);
	if (how & 2)
		size = fuzz_u32(in);
	ctx = new_ctx(22);
	set_u32(ctx, 8, size);
	memcpy(ctx + HDR, &msg, sizeof(msg));
	probe_add(msg.iova);
	probe_add(msg.iova + msg.size);
	probe_add(msg.iova + msg.size - 1);

	r = send_msg(d, ctx);
	if (size < sizeof(msg)) {
		FUZZ_CHECK(r == LHV_MSG_ERR, "a short IOTLB message (%u bytes) was taken", size);
		FUZZ_CHECK(m->in_tail == tail0, "a short IOTLB message reached the poller");
	} else {
		FUZZ_CHECK(r == LHV_MSG_PASS, "IOTLB message type %u: result %d", msg.type, r);
	}
	if (r == LHV_MSG_PASS && m->in_tail == tail0) {
		/* Applied by the control thread itself (the poller did not own it). */
		if (msg.type == VHOST_IOTLB_UPDATE) {
			model_update(msg.iova, msg.size, msg.uaddr, msg.perm);
		} else if (msg.type == VHOST_IOTLB_INVALIDATE) {
			model_invalidate(msg.iova, msg.size);
			check_gone(&m->tlb, msg.iova, msg.size);
		}
	} else if (m->in_tail != tail0) {
		FUZZ_CHECK(m->in_tail == tail0 + 1, "one message posted %u times", m->in_tail - tail0);
		FUZZ_CHECK(msg.type == VHOST_IOTLB_UPDATE || msg.type == VHOST_IOTLB_INVALIDATE,
			   "type %u reached the poller", msg.type);
		g_m.q[tail0 & (LHV_IOMMU_INBOX - 1)] = m->inbox[tail0 & (LHV_IOMMU_INBOX - 1)];
	}
	model_sync(d);
	/* A strict invalidation is done when the VMM hears back. */
	if (r == LHV_MSG_PASS && msg.type == VHOST_IOTLB_INVALIDATE && !m->deferred)
		FUZZ_CHECK(__atomic_load_n(&m->done_token, __ATOMIC_ACQUIRE) == m->next_token ||
			   m->in_tail == tail0,
			   "strict invalidation answered before it was done");
	free(ctx);
}

static void op_config(struct lhv_dev *d, struct fuzz_in *in, bool set)
{
	uint32_t size = fuzz_u32(in), off = fuzz_u32(in), len = fuzz_u32(in);
	uint8_t fill = fuzz_u8(in), *ctx, *before;
	uint64_t cfg_hash = fuzz_hash(d->config, sizeof(d->config));
	enum lhv_msg_result r;
	unsigned i;

	if (!(size & 0x80000000u))
		size %= 12 + LHV_CONFIG_MAX + 8;
	if (!(off & 0x80000000u))
		off %= LHV_CONFIG_MAX + 8;
	if (!(len & 0x80000000u))
		len %= LHV_CONFIG_MAX + 8;
	ctx = new_ctx(set ? 25 : 24);
	memset(ctx + HDR, fill, CTX_FDS - HDR);
	set_u32(ctx, 8, size);
	set_u32(ctx, HDR, off);
	set_u32(ctx, HDR + 4, len);
	before = malloc(CTX_SIZE);
	FUZZ_CHECK(before != NULL, "malloc");
	memcpy(before, ctx, CTX_SIZE);

	r = send_msg(d, ctx);
	FUZZ_CHECK(fuzz_hash(d->config, sizeof(d->config)) == cfg_hash,
		   "a config message changed the config space");
	if (set || r != LHV_MSG_REPLY) {
		FUZZ_CHECK(r == LHV_MSG_ERR, "config %s: result %d", set ? "write" : "read", r);
		FUZZ_CHECK(memcmp(ctx, before, CTX_SIZE) == 0, "a refused config message was changed");
	} else {
		FUZZ_CHECK(size >= 12 && off <= LHV_CONFIG_MAX && len <= LHV_CONFIG_MAX - off &&
			   len <= size - 12,
			   "GET_CONFIG offset %u length %u in a %u-byte message answered", off, len,
			   size);
		FUZZ_CHECK(memcmp(ctx, before, HDR + 12) == 0 &&
			   memcmp(ctx + HDR + 12 + len, before + HDR + 12 + len,
				  CTX_SIZE - HDR - 12 - len) == 0,
			   "GET_CONFIG wrote outside the %u bytes asked for", len);
		for (i = 0; i < len; i++)
			FUZZ_CHECK(ctx[HDR + 12 + i] ==
					   (off + i < d->config_len ? d->config[off + i] : 0),
				   "config byte %u: %#x", off + i, ctx[HDR + 12 + i]);
	}
	free(before);
	free(ctx);
}

static void op_channel(struct lhv_dev *d, struct fuzz_in *in)
{
	uint8_t n = fuzz_u8(in) % 10, *ctx, plant;
	int fd_num = n == 9 ? (int)fuzz_u32(in) : n, fds[8], i, got, plant_fd;
	bool well_formed;
	size_t off;

	for (i = 0; i < 8; i++) {
		uint8_t b = fuzz_u8(in);

		/* Slots past fd_num are -1 in what rte_vhost passes, unless the
		 * selector's top bit asks for garbage there. */
		fds[i] = i < fd_num || (b & 0x80) ? pick_fd(b & 0x7f) : -1;
	}
	plant = fuzz_u8(in);
	plant_fd = pick_fd(plant);
	ctx = new_ctx(21);
	set_u32(ctx, 8, 0);
	/* What the old scanner took: fd, seven -1s, then 1, all over the payload. */
	for (off = HDR; off + 36 <= CTX_FDS; off += 36) {
		set_u32(ctx, off, (uint32_t)plant_fd);
		for (i = 1; i < 8; i++)
			set_u32(ctx, off + 4 * i, UINT32_MAX);
		set_u32(ctx, off + 32, 1);
	}
	for (i = 0; i < 8; i++)
		set_u32(ctx, CTX_FDS + 4 * i, (uint32_t)fds[i]);
	set_u32(ctx, CTX_FD_NUM, (uint32_t)fd_num);

	FUZZ_CHECK(send_msg(d, ctx) == LHV_MSG_PASS, "SET_SLAVE_REQ_FD not passed on");
	got = __atomic_load_n(&d->iommu.slave_fd, __ATOMIC_ACQUIRE);
	well_formed = fd_num >= 0 && fd_num <= 8;
	for (i = 0; well_formed && i < 8; i++)
		well_formed = i < fd_num ? fds[i] >= 0 : fds[i] == -1;
	if (got >= 0) {
		FUZZ_CHECK(well_formed && fd_num == 1, "a channel adopted from a message with %d fds",
			   fd_num);
		FUZZ_CHECK(got != fds[0] && same_file(got, fds[0]),
			   "the channel adopted (%d) is not a duplicate of the one sent (%d)", got,
			   fds[0]);
		for (i = P_HELD; i < NR_POOL; i++)
			FUZZ_CHECK(i == P_CLIENT || !same_file(got, g_fds.pool[i]),
				   "pool descriptor %d adopted as a channel", i);
	} else if (well_formed && fd_num == 1 &&
		   (fds[0] == g_fds.pool[P_GENUINE] || fds[0] == g_fds.pool[P_CLIENT])) {
		FUZZ_CHECK(false, "the genuine channel was refused");
	}
	free(ctx);
}

static void op_miss(struct lhv_dev *d, struct fuzz_in *in)
{
	uint64_t iova = fuzz_u8(in) * PAGE, u, run;
	uint8_t perm = fuzz_u8(in) & 3, buf[128];
	int fd = __atomic_load_n(&d->iommu.slave_fd, __ATOMIC_ACQUIRE), rc, i;
	bool broken = d->broken, genuine = same_file(fd, g_fds.pool[P_GENUINE]);
	uint64_t misses = d->iommu.tlb.misses;
	struct vhost_iotlb_msg msg;
	ssize_t n;

	if (!d->iommu.on || __atomic_load_n(&d->state, __ATOMIC_ACQUIRE) != LHV_DEV_RUNNING)
		return;
	rc = lhv_iotlb_lookup(&d->iommu.tlb, iova, 1, perm, &u, &run);
	if (rc != -ENOENT)
		return;
	FUZZ_CHECK(!lhv_iommu_admit(d, LHV_WALK_IOTLB_MISS, iova, iova + 1, vrio_now_ns()),
		   "a chain admitted on a miss");
	/* The one place a miss may arrive. */
	n = recv(g_fds.genuine_peer, buf, sizeof(buf), MSG_DONTWAIT);
	if (d->iommu.tlb.misses != misses) {
		FUZZ_CHECK(fd >= 0, "a miss counted without a channel");
		if (genuine) {
			FUZZ_CHECK(n == HDR + (ssize_t)sizeof(msg), "a miss of %zd bytes", n);
			memcpy(&msg, buf + HDR, sizeof(msg));
			FUZZ_CHECK(get_u32(buf, 0) == 1 && msg.type == VHOST_IOTLB_MISS &&
				   msg.iova == iova && msg.perm == perm,
				   "the miss sent is not for %#llx", (unsigned long long)iova);
		}
	} else {
		FUZZ_CHECK(n < 0, "%zd bytes on the channel, no miss counted", n);
		FUZZ_CHECK(fd >= 0 || d->broken || broken || d->iommu.miss_out,
			   "a miss with no channel did not break the device");
	}
	for (i = P_HELD; i < NR_POOL; i++) {
		int peer = i == P_HELD ? g_fds.held_peer : i == P_ACCEPTED ? g_fds.pool[P_CLIENT] :
			   i == P_CLIENT ? g_fds.pool[P_ACCEPTED] : -1;

		if (peer >= 0 && !same_file(fd, g_fds.pool[i]))
			FUZZ_CHECK(recv(peer, buf, sizeof(buf), MSG_DONTWAIT) < 0,
				   "a miss went to pool descriptor %d", i);
	}
	drain(g_fds.pool[P_CLIENT]);
	drain(g_fds.pool[P_ACCEPTED]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct vrio_topo_device td = { 0 };
	struct lhv_dev *d = &g_d;
	unsigned fds0 = open_fds(), i;
	uint8_t flags, op, b;
	uint8_t *ctx;

	flags = fuzz_u8(&in);
	td.iommu_deferred = flags & 1;
	td.iommu_batch = 1 + ((flags >> 1) & 7);
	td.iommu_delay_ms = flags & 0x10 ? 100000 : 0;
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "fuzz");
	/* The accepted connection carries the socket's name: the frontend's. */
	snprintf(d->socket, sizeof(d->socket), "%s/d.sock", g_fds.dir);
	d->ops = &fuzz_ops;
	d->l = &g_l;
	d->conn_vid = 0;
	d->config_len = fuzz_u16(&in) % (LHV_CONFIG_MAX + 1);
	for (i = 0; i < LHV_CONFIG_MAX; i++)
		d->config[i] = (uint8_t)(i * 7 + 1);
	lhv_iommu_init(&d->iommu, &td);
	FUZZ_CHECK(lhv_iotlb_init(&d->iommu.tlb) == 0, "iotlb init");
	memset(&g_m, 0, sizeof(g_m));
	g_connected = false;

	while (fuzz_left(&in)) {
		op = fuzz_u8(&in);
		switch (op % 14) {
		case 0:
			op_iotlb(d, &in);
			break;
		case 1:
		case 2:
			op_config(d, &in, op % 14 == 2);
			break;
		case 3:
			op_channel(d, &in);
			break;
		case 4:
		case 5:
			b = fuzz_u8(&in);
			ctx = new_ctx(op % 14 == 4 ? ring_msgs[b % 10] : fuzz_u32(&in));
			set_u32(ctx, 8, 8);
			fuzz_take(&in, ctx + HDR, 8);
			/* Refused only: the IOTLB and config messages (their own
			 * ops check why), and GET/SET_INFLIGHT_FD (31, 32) whose
			 * numbers or region do not fit the device. */
			FUZZ_CHECK(send_msg(d, ctx) == LHV_MSG_PASS || get_u32(ctx, 0) == 22 ||
					   get_u32(ctx, 0) == 24 || get_u32(ctx, 0) == 25 ||
					   get_u32(ctx, 0) == 31 || get_u32(ctx, 0) == 32,
				   "message %u not passed on", get_u32(ctx, 0));
			if (lhv_vu_changes_rings(get_u32(ctx, 0)))
				FUZZ_CHECK(d->state == LHV_DEV_IDLE, "rings changed under the poller");
			free(ctx);
			model_sync(d);
			break;
		case 6:
			b = fuzz_u8(&in);
			if (d->state != LHV_DEV_IDLE)
				break;
			/* dev_start's hand-over (vhost.c), as lhv_rr_start sets it. */
			d->iommu.on = b & 1;
			__atomic_store_n(&d->state, LHV_DEV_START, __ATOMIC_RELEASE);
			lhv_poller_wake(&g_l);
			break;
		case 7:
			poller_round(d);
			model_sync(d);
			break;
		case 8:
			b = fuzz_u8(&in);
			if (b >= 128)
				(void)lhv_iommu_acked(d, b - 128);
			else
				ack(d, b);
			break;
		case 9:
			lhv_iommu_upstream_lost(d);
			break;
		case 10:
			g_connected = fuzz_u8(&in) & 1;
			break;
		case 11:
			lhv_vu_forget_frontend(&g_l, d);
			model_sync(d);
			FUZZ_CHECK(d->state == LHV_DEV_IDLE && d->iommu.slave_fd == -1 &&
					   d->iommu.tlb.n == 0 && d->iommu.npend == 0,
				   "a frontend's hang-up left state behind");
			g_m.n = 0;
			d->conn_vid = 0;	/* the next frontend */
			break;
		case 12:
			op_miss(d, &in);
			break;
		case 13:
			td.iommu_deferred = !td.iommu_deferred;
			lhv_iommu_configure(&d->iommu, &td);
			break;
		}
		check_tlb(d);
	}

	/* The frontend goes: everything it left is dropped. */
	lhv_vu_forget_frontend(&g_l, d);
	FUZZ_CHECK(d->iommu.slave_fd == -1 && d->iommu.tlb.n == 0, "left behind at hang-up");
	lhv_iommu_fini(&d->iommu);
	drain(g_fds.genuine_peer);
	FUZZ_CHECK(same_file(g_d2.iommu.slave_fd, g_fds.pool[P_HELD]), "d2's channel changed");
	FUZZ_CHECK(open_fds() == fds0, "%u descriptors open, %u before", open_fds(), fds0);
	return 0;
}
