/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The driver side of a split virtqueue in shared memory: descriptor table,
 * available ring, used ring, a private free list, event-idx notification
 * suppression in both directions, and the kick/call eventfds.
 */
#ifndef VRIO_BENCH_VIRTQ_H
#define VRIO_BENCH_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VQ_DESC_F_NEXT 1u
#define VQ_DESC_F_WRITE 2u
#define VQ_DESC_F_INDIRECT 4u
#define VQ_AVAIL_F_NO_INTERRUPT 1u
#define VQ_USED_F_NO_NOTIFY 1u
#define VQ_MAX_SIZE 32768u

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[];
};

struct vq_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct virtq {
	unsigned int index;
	uint16_t num;
	bool event_idx;
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
	uint16_t *used_event;	/* driver -> device, after the avail ring */
	uint16_t *avail_event;	/* device -> driver, after the used ring */
	int kick_fd;
	int call_fd;
	uint16_t avail_idx;	/* next free avail slot; published by virtq_publish() */
	uint16_t kicked_idx;	/* avail index at the last notification decision */
	uint16_t last_used;
	uint16_t free_head;
	uint16_t num_free;
	/* Private: chain links (also the free list) and per-head state. */
	uint16_t *next;
	uint16_t *chain_len;
	void **cookie;
	uint64_t kicks;
	uint64_t calls;
	uint64_t addr_base;	/* added to every buffer address: IOVA = base + gpa */
};

size_t virtq_ring_bytes(uint16_t num);
/* ring: zeroed shared memory of virtq_ring_bytes(num), 64-byte aligned. */
int virtq_init(struct virtq *vq, unsigned int index, uint16_t num, void *ring, bool event_idx);
void virtq_fini(struct virtq *vq);

/* Queue a chain (not yet visible to the device); returns the head or -ENOSPC. */
int virtq_add(struct virtq *vq, const struct vq_buf *bufs, unsigned int n, void *cookie);
/* Put a raw head value in the avail ring, for fault injection. */
void virtq_post_raw(struct virtq *vq, uint16_t head);
void virtq_publish(struct virtq *vq);
/* Notify the device if its avail event (or flags) ask for it: 1 kicked, 0 not. */
int virtq_kick(struct virtq *vq);
int virtq_notify(struct virtq *vq);

bool virtq_pending(const struct virtq *vq);
/* 0 with the chain's cookie, -EAGAIN if none, -EIO if the device misbehaves. */
int virtq_get_used(struct virtq *vq, void **cookie, uint32_t *len);
/* Ask for a call on the next completion; true if completions are already there. */
bool virtq_enable_cb(struct virtq *vq);
void virtq_disable_cb(struct virtq *vq);
void virtq_drain_call(struct virtq *vq);

#endif
