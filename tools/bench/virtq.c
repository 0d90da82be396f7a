// SPDX-License-Identifier: BSD-3-Clause
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"
#include "virtq.h"

static size_t virtq_avail_off(uint16_t num)
{
	return sizeof(struct vq_desc) * num;
}

static size_t virtq_used_off(uint16_t num)
{
	/* Own cache line, so that driver and device stores do not share one. */
	return BENCH_ALIGN_UP(virtq_avail_off(num) + sizeof(struct vq_avail) +
			      sizeof(uint16_t) * (num + 1u), 64u);
}

size_t virtq_ring_bytes(uint16_t num)
{
	return virtq_used_off(num) + sizeof(struct vq_used) +
	       sizeof(struct vq_used_elem) * num + sizeof(uint16_t);
}

int virtq_init(struct virtq *vq, unsigned int index, uint16_t num, void *ring, bool event_idx)
{
	unsigned int i;
	int ret;

	if (num == 0 || (num & (num - 1)) != 0)
		return -EINVAL;

	vq->index = index;
	vq->num = num;
	vq->event_idx = event_idx;
	vq->desc = ring;
	vq->avail = (struct vq_avail *)((char *)ring + virtq_avail_off(num));
	vq->used = (struct vq_used *)((char *)ring + virtq_used_off(num));
	vq->used_event = &vq->avail->ring[num];
	vq->avail_event = (uint16_t *)&vq->used->ring[num];
	vq->avail_idx = 0;
	vq->kicked_idx = 0;
	vq->last_used = 0;
	vq->free_head = 0;
	vq->num_free = num;
	vq->kicks = 0;
	vq->calls = 0;
	vq->addr_base = 0;
	vq->kick_fd = -1;
	vq->call_fd = -1;

	vq->next = calloc(num, sizeof(*vq->next));
	vq->chain_len = calloc(num, sizeof(*vq->chain_len));
	vq->cookie = calloc(num, sizeof(*vq->cookie));
	if (!vq->next || !vq->chain_len || !vq->cookie) {
		ret = -ENOMEM;
		goto err;
	}
	for (i = 0; i < num; i++)
		vq->next[i] = (uint16_t)(i + 1);

	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0) {
		ret = -errno;
		bench_err("queue %u: eventfd: %m", index);
		goto err;
	}
	return 0;

err:
	virtq_fini(vq);
	return ret;
}

void virtq_fini(struct virtq *vq)
{
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq->kick_fd = -1;
	vq->call_fd = -1;
	free(vq->next);
	free(vq->chain_len);
	free(vq->cookie);
	vq->next = NULL;
	vq->chain_len = NULL;
	vq->cookie = NULL;
}

int virtq_add(struct virtq *vq, const struct vq_buf *bufs, unsigned int n, void *cookie)
{
	uint16_t head = vq->free_head, i = head;
	unsigned int k;

	if (n == 0 || n > vq->num_free)
		return -ENOSPC;

	for (k = 0; k < n; k++) {
		struct vq_desc *d = &vq->desc[i];
		uint16_t flags = bufs[k].writable ? VQ_DESC_F_WRITE : 0;

		d->addr = htole64(bufs[k].gpa + vq->addr_base);
		d->len = htole32(bufs[k].len);
		if (k + 1 < n) {
			flags |= VQ_DESC_F_NEXT;
			d->next = htole16(vq->next[i]);
		} else {
			d->next = 0;
		}
		d->flags = htole16(flags);
		i = vq->next[i];
	}
	vq->free_head = i;
	vq->num_free -= (uint16_t)n;
	vq->chain_len[head] = (uint16_t)n;
	vq->cookie[head] = cookie;

	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = htole16(head);
	vq->avail_idx++;
	return head;
}

void virtq_post_raw(struct virtq *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = htole16(head);
	vq->avail_idx++;
}

void virtq_publish(struct virtq *vq)
{
	/* Ring entries and descriptors become visible before the index. */
	__atomic_store_n(&vq->avail->idx, htole16(vq->avail_idx), __ATOMIC_RELEASE);
}

int virtq_notify(struct virtq *vq)
{
	uint64_t one = 1;

	if (write(vq->kick_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return -errno;
	vq->kicks++;
	return 1;
}

int virtq_kick(struct virtq *vq)
{
	uint16_t old = vq->kicked_idx, cur = vq->avail_idx;
	bool need;

	if (old == cur)
		return 0;
	/* The published index must be seen before we read the device's wish. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		uint16_t ev = le16toh(__atomic_load_n(vq->avail_event, __ATOMIC_RELAXED));

		need = (uint16_t)(cur - ev - 1) < (uint16_t)(cur - old);
	} else {
		need = !(le16toh(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED)) &
			 VQ_USED_F_NO_NOTIFY);
	}
	vq->kicked_idx = cur;
	if (!need)
		return 0;
	return virtq_notify(vq);
}

bool virtq_pending(const struct virtq *vq)
{
	return le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE)) != vq->last_used;
}

int virtq_get_used(struct virtq *vq, void **cookie, uint32_t *len)
{
	uint16_t idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	struct vq_used_elem *e;
	uint32_t id;
	uint16_t i, n;

	if (idx == vq->last_used)
		return -EAGAIN;
	if ((uint16_t)(idx - vq->last_used) > vq->num) {
		bench_err("queue %u: used index moved from %u to %u", vq->index,
			  vq->last_used, idx);
		return -EIO;
	}
	e = &vq->used->ring[vq->last_used & (vq->num - 1)];
	id = le32toh(__atomic_load_n(&e->id, __ATOMIC_RELAXED));
	if (id >= vq->num || !vq->cookie[id]) {
		bench_err("queue %u: device completed head %u, which is not in flight",
			  vq->index, id);
		return -EIO;
	}
	*len = le32toh(__atomic_load_n(&e->len, __ATOMIC_RELAXED));
	*cookie = vq->cookie[id];
	vq->cookie[id] = NULL;

	i = (uint16_t)id;
	for (n = 1; n < vq->chain_len[id]; n++)
		i = vq->next[i];
	vq->next[i] = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->num_free += vq->chain_len[id];
	vq->last_used++;
	return 0;
}

bool virtq_enable_cb(struct virtq *vq)
{
	if (vq->event_idx)
		__atomic_store_n(vq->used_event, htole16(vq->last_used), __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vq->avail->flags, 0, __ATOMIC_RELAXED);
	/* Publish the wish before looking again, or a completion can slip by. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_pending(vq);
}

void virtq_disable_cb(struct virtq *vq)
{
	/* The farthest used event from here: the device reaches it only after a wrap. */
	if (vq->event_idx)
		__atomic_store_n(vq->used_event, htole16((uint16_t)(vq->last_used - 1)),
				 __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vq->avail->flags, htole16(VQ_AVAIL_F_NO_INTERRUPT),
				 __ATOMIC_RELAXED);
}

void virtq_drain_call(struct virtq *vq)
{
	uint64_t v;

	if (read(vq->call_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		vq->calls++;
}
