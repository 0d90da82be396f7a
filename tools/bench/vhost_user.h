/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The frontend side of the vhost-user protocol: messages over a unix stream
 * socket, file descriptors in SCM_RIGHTS ancillary data.
 */
#ifndef VRIO_BENCH_VHOST_USER_H
#define VRIO_BENCH_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_SLAVE_REQ_FD = 21,
	VU_IOTLB_MSG = 22,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_REQUEST_MAX,
};

/* Bit in the virtio feature word that announces vhost-user protocol features. */
#define VU_F_PROTOCOL_FEATURES 30

enum vu_protocol_feature {
	VU_PF_MQ = 0,
	VU_PF_REPLY_ACK = 3,
	VU_PF_SLAVE_REQ = 5,
	VU_PF_CONFIG = 9,
	VU_PF_INFLIGHT_SHMFD = 12,
};

/* The backend's requests on its channel to us (the "slave" channel). */
#define VU_BACKEND_IOTLB_MSG 1

/* struct vhost_iotlb_msg: an IOTLB message either way. */
struct vu_iotlb {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;		/* 1 read, 2 write, 3 both */
	uint8_t type;		/* 1 miss, 2 update, 3 invalidate, 4 access fail */
	uint8_t pad[6];
};

enum { VU_IOTLB_MISS = 1, VU_IOTLB_UPDATE = 2, VU_IOTLB_INVALIDATE = 3 };

#define VU_MAX_REGIONS 8
#define VU_MAX_CONFIG 256

struct vu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vu_conn {
	int fd;
	int timeout_ms;
	/* Set once REPLY_ACK is negotiated: requests without a reply ask for one. */
	bool reply_ack;
	bool closed;
};

int vu_connect(struct vu_conn *c, const char *path, int timeout_ms);
/* As vu_connect, without a word if nobody listens (-ECONNREFUSED, -ENOENT). */
int vu_try_connect(struct vu_conn *c, const char *path, int timeout_ms);
void vu_close(struct vu_conn *c);
const char *vu_request_name(uint32_t req);

int vu_get_u64(struct vu_conn *c, enum vu_request req, uint64_t *val);
int vu_set_u64(struct vu_conn *c, enum vu_request req, uint64_t val);
int vu_set_owner(struct vu_conn *c);
int vu_set_mem_table(struct vu_conn *c, const struct vu_mem_region *regions,
		     const int *fds, unsigned int n);
int vu_set_vring_state(struct vu_conn *c, enum vu_request req, uint32_t index, uint32_t num);
int vu_get_vring_base(struct vu_conn *c, uint32_t index, uint32_t *base);
int vu_set_vring_addr(struct vu_conn *c, uint32_t index, uint64_t desc, uint64_t used,
		      uint64_t avail);
int vu_set_vring_fd(struct vu_conn *c, enum vu_request req, uint32_t index, int fd);
int vu_get_config(struct vu_conn *c, uint32_t offset, void *buf, uint32_t size);
/*
 * The inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): GET asks the
 * backend for a fresh one for nq queues of qs entries and returns its
 * memory's descriptor, size and offset; SET hands a region back, as a VMM
 * does after it reconnected to a restarted backend.
 */
struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t pad;
};
int vu_get_inflight_fd(struct vu_conn *c, uint16_t nq, uint16_t qs, struct vu_inflight *inf,
		       int *fd);
int vu_set_inflight_fd(struct vu_conn *c, const struct vu_inflight *inf, int fd);
/* Hands the backend its channel to us (one end of a socket pair). */
int vu_set_slave_fd(struct vu_conn *c, int fd);
/* An IOTLB update or invalidation; returns once the backend acknowledged
 * it (REPLY_ACK), which for an invalidation is the promise that it will not
 * touch the range any more. */
int vu_iotlb(struct vu_conn *c, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr,
	     uint8_t perm);
/* One IOTLB request from the backend's channel, without waiting: 1 with
 * *m, 0 if none, -errno if the channel broke or carried something else. */
int vu_backend_recv(int fd, struct vu_iotlb *m);

/*
 * Non-blocking look at the socket: 1 if the backend closed it, 0 if it is
 * open and quiet, -EPROTO if the backend sent an unsolicited message.
 */
int vu_check_peer(struct vu_conn *c);

#endif
