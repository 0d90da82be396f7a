// SPDX-License-Identifier: BSD-3-Clause
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "bench.h"
#include "blkdrv.h"
#include "inject.h"

#define INJECT_DATA_LEN 4096u

struct inject_ctx {
	struct blkdev *dev;
	struct virtq *vq;
	struct blk_req req;	/* a READ of sector 0: header, data, status */
	uint64_t extra_gpa;	/* a second buffer for chains that need one */
	uint64_t table_gpa;
	struct vq_desc *table;
	unsigned int table_len;
};

/* Writes the descriptors, returns the value to put in the avail ring. */
typedef int (*inject_build_fn)(struct inject_ctx *c, uint16_t *head);

static void set_desc(struct vq_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

/* The well-formed READ at descriptors 0..2, for kinds that corrupt one thing. */
static void valid_chain(struct inject_ctx *c)
{
	struct vq_desc *d = c->vq->desc;

	set_desc(&d[0], c->req.hdr_gpa, sizeof(struct blk_req_hdr), VQ_DESC_F_NEXT, 1);
	set_desc(&d[1], c->req.data_gpa, INJECT_DATA_LEN, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	set_desc(&d[2], c->req.status_gpa, 1, VQ_DESC_F_WRITE, 0);
}

/*
 * Every looped descriptor is device-readable, so the loop is the only fault;
 * it does not pass through the head, so a walker must bound the chain.
 */
static int build_loop(struct inject_ctx *c, uint16_t *head)
{
	struct vq_desc *d = c->vq->desc;

	set_desc(&d[0], c->req.hdr_gpa, sizeof(struct blk_req_hdr), VQ_DESC_F_NEXT, 1);
	set_desc(&d[1], c->req.data_gpa, 512, VQ_DESC_F_NEXT, 2);
	set_desc(&d[2], c->extra_gpa, 512, VQ_DESC_F_NEXT, 1);
	*head = 0;
	return 0;
}

static int build_head_oob(struct inject_ctx *c, uint16_t *head)
{
	valid_chain(c);
	*head = c->vq->num;
	return 0;
}

static int build_next_oob(struct inject_ctx *c, uint16_t *head)
{
	valid_chain(c);
	c->vq->desc[0].next = htole16(c->vq->num);
	*head = 0;
	return 0;
}

static int build_addr_oob(struct inject_ctx *c, uint16_t *head)
{
	valid_chain(c);
	c->vq->desc[1].addr = htole64(c->dev->v.mem.size);
	*head = 0;
	return 0;
}

static int build_addr_straddle(struct inject_ctx *c, uint16_t *head)
{
	valid_chain(c);
	c->vq->desc[1].addr = htole64(c->dev->v.mem.size - INJECT_DATA_LEN / 2);
	*head = 0;
	return 0;
}

static int build_zero_len(struct inject_ctx *c, uint16_t *head)
{
	valid_chain(c);
	c->vq->desc[1].len = 0;
	*head = 0;
	return 0;
}

static int build_read_after_write(struct inject_ctx *c, uint16_t *head)
{
	struct vq_desc *d = c->vq->desc;

	set_desc(&d[0], c->req.hdr_gpa, sizeof(struct blk_req_hdr), VQ_DESC_F_NEXT, 1);
	set_desc(&d[1], c->req.data_gpa, INJECT_DATA_LEN, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	set_desc(&d[2], c->extra_gpa, 512, VQ_DESC_F_NEXT, 3);
	set_desc(&d[3], c->req.status_gpa, 1, VQ_DESC_F_WRITE, 0);
	*head = 0;
	return 0;
}

/*
 * The spec bounds every chain by the queue size; only an indirect table can
 * hold a longer one without a loop.
 */
static int build_too_long(struct inject_ctx *c, uint16_t *head)
{
	unsigned int n = c->table_len, i;

	if (!blkdev_has(c->dev, VIRTIO_RING_F_INDIRECT_DESC)) {
		bench_err("inject too-long: device does not offer VIRTIO_RING_F_INDIRECT_DESC, and a direct chain cannot exceed the queue size without looping");
		return -ENOTSUP;
	}
	set_desc(&c->table[0], c->req.hdr_gpa, sizeof(struct blk_req_hdr), VQ_DESC_F_NEXT, 1);
	for (i = 1; i + 1 < n; i++)
		set_desc(&c->table[i], c->req.data_gpa + (i % 8u) * 512u, 512,
			 VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc(&c->table[n - 1], c->req.status_gpa, 1, VQ_DESC_F_WRITE, 0);
	set_desc(&c->vq->desc[0], c->table_gpa, n * (uint32_t)sizeof(struct vq_desc),
		 VQ_DESC_F_INDIRECT, 0);
	*head = 0;
	return 0;
}

static const struct inject_kind {
	const char *name;
	const char *what;
	inject_build_fn build;
} inject_kinds[] = {
	{ "loop", "a chain whose next pointers form a loop", build_loop },
	{ "head-oob", "an avail entry whose head index equals the queue size", build_head_oob },
	{ "next-oob", "a next index equal to the queue size", build_next_oob },
	{ "addr-oob", "a data buffer starting right past the end of guest memory",
	  build_addr_oob },
	{ "addr-straddle", "a data buffer starting in guest memory and ending past it",
	  build_addr_straddle },
	{ "zero-len", "a zero-length data buffer", build_zero_len },
	{ "read-after-write", "a device-readable buffer after a device-writable one",
	  build_read_after_write },
	{ "too-long", "an indirect chain of queue size + 1 descriptors", build_too_long },
};

static const struct inject_kind *inject_find(const char *name)
{
	size_t i;

	for (i = 0; i < BENCH_ARRAY_SIZE(inject_kinds); i++)
		if (!strcmp(inject_kinds[i].name, name))
			return &inject_kinds[i];
	return NULL;
}

bool inject_kind_known(const char *kind)
{
	return inject_find(kind) != NULL;
}

void inject_list_kinds(FILE *out)
{
	size_t i;

	for (i = 0; i < BENCH_ARRAY_SIZE(inject_kinds); i++)
		fprintf(out, "  %-17s %s\n", inject_kinds[i].name, inject_kinds[i].what);
}

static int inject_setup(struct inject_ctx *c, const struct inject_opts *o)
{
	uint16_t qsize = (uint16_t)o->queue_size;
	uint64_t extra;
	int ret;

	c->table_len = qsize + 1u;
	extra = 4 * BENCH_PAGE_SIZE + INJECT_DATA_LEN +
		BENCH_ALIGN_UP(c->table_len * sizeof(struct vq_desc), BENCH_PAGE_SIZE);
	ret = blkdev_start(c->dev, 1, qsize, extra);
	if (ret < 0)
		return ret;
	c->vq = &c->dev->v.vqs[0];
	ret = blk_req_alloc(c->dev, &c->req, INJECT_DATA_LEN);
	if (ret < 0)
		return ret;
	ret = gmem_alloc(&c->dev->v.mem, 512, 512, &c->extra_gpa);
	if (ret < 0)
		return ret;
	ret = gmem_alloc(&c->dev->v.mem, c->table_len * sizeof(struct vq_desc), 16, &c->table_gpa);
	if (ret < 0)
		return ret;
	c->table = gmem_hva(&c->dev->v.mem, c->table_gpa);
	c->req.hdr->type = htole32(BLK_T_IN);
	c->req.hdr->ioprio = 0;
	c->req.hdr->sector = 0;
	*c->req.status = BLK_S_UNSET;
	return 0;
}

enum inject_conn {
	CONN_OPEN,
	CONN_CLOSED,
	CONN_UNRESPONSIVE,
};

static const char *const conn_names[] = {
	[CONN_OPEN] = "open",
	[CONN_CLOSED] = "closed",
	[CONN_UNRESPONSIVE] = "unresponsive",
};

/* Wait for a completion or a hang-up until the deadline. */
static bool inject_wait(struct inject_ctx *c, int timeout_ms, enum inject_conn *conn)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct pollfd pfd[2] = {
		{ .fd = c->vq->call_fd, .events = POLLIN },
		{ .fd = c->dev->v.vu.fd, .events = POLLIN },
	};

	virtq_enable_cb(c->vq);
	for (;;) {
		uint64_t now = bench_now_ns();
		int ret;

		if (virtq_pending(c->vq))
			return true;
		if (*conn == CONN_CLOSED || now >= deadline)
			return false;
		ret = poll(pfd, *conn == CONN_OPEN ? 2 : 1,
			   (int)((deadline - now + 999999) / 1000000));
		if (ret < 0 && errno != EINTR)
			return false;
		if (ret > 0 && (pfd[0].revents & POLLIN))
			virtq_drain_call(c->vq);
		if (ret > 0 && pfd[1].revents) {
			/* Data we did not ask for counts as a broken peer, too. */
			if (vu_check_peer(&c->dev->v.vu) != 0) {
				*conn = CONN_CLOSED;
				vu_close(&c->dev->v.vu);
			}
		}
	}
}

#define INJECT_SETUP_MS 10000

int inject_run(const struct inject_opts *o)
{
	const struct inject_kind *k = inject_find(o->kind);
	/* --timeout is how long the bad chain is watched; the set-up's
	 * messages get at least INJECT_SETUP_MS: a backend still tearing
	 * down the last connection on a loaded machine answers late, and
	 * that is not what an injection tests. */
	struct blkdev_opts bo = {
		.socket = o->socket, .quiet = o->quiet,
		.timeout_ms = o->timeout_ms > INJECT_SETUP_MS ? o->timeout_ms : INJECT_SETUP_MS,
		.features_off = o->no_event_idx ? BIT64(VIRTIO_RING_F_EVENT_IDX) : 0,
	};
	struct blkdev dev;
	struct inject_ctx c = { .dev = &dev };
	enum inject_conn conn = CONN_OPEN;
	bool completed;
	uint64_t features;
	uint16_t head;
	int ret;

	if (!k)
		return -EINVAL;
	ret = blkdev_connect(&dev, &bo);
	if (ret < 0)
		return ret;
	ret = inject_setup(&c, o);
	if (ret < 0)
		goto out;
	ret = k->build(&c, &head);
	if (ret == -ENOTSUP) {
		ret = INJECT_SKIPPED;
		goto out;
	}
	if (ret < 0)
		goto out;

	virtq_post_raw(c.vq, head);
	virtq_publish(c.vq);
	ret = virtq_notify(c.vq);
	if (ret < 0) {
		bench_err("queue 0: kick: %s", strerror(-ret));
		goto out;
	}

	completed = inject_wait(&c, o->timeout_ms, &conn);
	if (!completed && conn == CONN_OPEN) {
		/* Is the backend still serving its control channel? */
		ret = vu_get_u64(&dev.v.vu, VU_GET_FEATURES, &features);
		if (ret == -ECONNRESET || ret == -EPIPE)
			conn = CONN_CLOSED;
		else if (ret < 0)
			conn = CONN_UNRESPONSIVE;
	}

	if (completed) {
		struct vq_used_elem *e = &c.vq->used->ring[0];

		printf("inject %s (%s): FAIL: backend completed the chain (id %u, len %u, status %u %s)\n",
		       k->name, k->what, le32toh(e->id), le32toh(e->len), *c.req.status,
		       blk_status_name(*c.req.status));
	} else if (conn == CONN_UNRESPONSIVE) {
		printf("inject %s (%s): FAIL: no completion, but the backend no longer answers requests\n",
		       k->name, k->what);
	} else {
		printf("inject %s (%s): ok: no completion within %d ms; connection %s\n", k->name,
		       k->what, o->timeout_ms,
		       conn == CONN_CLOSED ? "closed by the backend" :
					     "still open, backend answers GET_FEATURES");
	}
	if (o->json)
		printf("{\"inject\":\"%s\",\"completed\":%s,\"connection\":\"%s\",\"ok\":%s}\n",
		       k->name, completed ? "true" : "false", conn_names[conn],
		       !completed && conn != CONN_UNRESPONSIVE ? "true" : "false");
	ret = !completed && conn != CONN_UNRESPONSIVE ? 0 : 1;

out:
	if (conn == CONN_OPEN)
		blkdev_stop(&dev, false);
	blkdev_close(&dev);
	return ret;
}
