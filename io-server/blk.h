/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-blk device model (virtio 1.1, 5.2). It turns a REQ's readable
 * bytes and writable capacity into a backend operation, and the outcome
 * into the RESP payload. No sockets and no threads: the session feeds it.
 *
 * The RESP always covers the whole writable area so that the status byte
 * lands in the last writable byte, where the driver looks for it:
 *   IN         data (wcap - 1 bytes) then the status;
 *   GET_ID     the 20-byte id (cut to wcap - 1), zeroes, then the status;
 *   otherwise  zeroes, then the status (normally wcap is 1).
 * An error on IN sends zeroes in place of the data. A request without any
 * writable byte cannot carry a status: its RESP is empty and the device
 * counts a protocol error.
 */
#ifndef VRIO_IOSERVER_BLK_H
#define VRIO_IOSERVER_BLK_H

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bdev.h"
#include "frame.h"

#define IOS_BLK_HDR_LEN		16u	/* struct virtio_blk_outhdr */
#define IOS_BLK_SEG_LEN		16u	/* struct virtio_blk_discard_write_zeroes */
#define IOS_BLK_ID_LEN		20u
#define IOS_BLK_CONFIG_LEN	60u	/* struct virtio_blk_config up to unused1 */
#define IOS_BLK_MAX_SEGS	16u	/* max_discard_seg, max_write_zeroes_seg */
#define IOS_BLK_MAX_DWZ_SECTORS	(1u << 22)	/* 2 GiB per segment */
#define IOS_BLK_SIZE_MAX	(64u << 10)
#define IOS_BLK_SEG_MAX		63u
/* Bound on any device's max_request: the readable or writable bytes of one
 * chain, header and status included. */
#define IOS_BLK_MAX_REQUEST	(VRIO_FRAME_MAX_PAYLOAD - 4096u)

_Static_assert((uint64_t)IOS_BLK_SEG_MAX * IOS_BLK_SIZE_MAX + IOS_BLK_HDR_LEN <=
	       IOS_BLK_MAX_REQUEST, "a full chain must fit in max_request");
_Static_assert(IOS_BLK_HDR_LEN + IOS_BLK_MAX_SEGS * IOS_BLK_SEG_LEN <= IOS_BLK_MAX_REQUEST,
	       "discard segments must fit in max_request");

/* What a request does; also the `op` label of the request counters. */
enum ios_blk_op {
	IOS_BLK_OP_READ,
	IOS_BLK_OP_WRITE,
	IOS_BLK_OP_FLUSH,
	IOS_BLK_OP_GET_ID,
	IOS_BLK_OP_DISCARD,
	IOS_BLK_OP_WRITE_ZEROES,
	IOS_BLK_OP_UNSUPPORTED,
	IOS_BLK_OP_COUNT,
};

struct ios_blk_dev {
	const char *name;
	struct ios_bdev *bdev;
	uint64_t capacity;		/* 512-byte sectors */
	uint64_t features;		/* device feature bits 0..23 */
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t seg_max;
	uint32_t max_request;		/* seg_max * size_max + the header */
	/* Writes, discards and write-zeroes fail with IOERR. Starts as the
	 * backend's; may be set later (a reload) whatever the features the
	 * guest negotiated say. */
	bool read_only;
	uint8_t id[IOS_BLK_ID_LEN];
	uint8_t config[IOS_BLK_CONFIG_LEN];	/* little-endian, as on the wire */
};

struct ios_blk_seg {
	uint64_t sector;
	uint32_t num_sectors;
	bool unmap;
};

struct ios_blk_req {
	enum ios_blk_op op;
	uint8_t status;		/* VIRTIO_BLK_S_*: the answer if !backend */
	bool backend;		/* a backend operation must run */
	bool no_status;		/* no writable byte to put a status in */
	int error;		/* the backend's -errno when status is IOERR */
	uint32_t wcap;		/* writable capacity */
	uint64_t sector;
	uint32_t len;		/* data bytes read or written */
	const uint8_t *wdata;	/* OUT data inside the lent REQ payload */
	unsigned nsegs, seg;
	struct ios_blk_seg segs[IOS_BLK_MAX_SEGS];
	/* Set by the caller before submit: nothing works on a READ's data in
	 * the buffer once the backend is done (no stage), so the backend may
	 * lend its own bytes (bdev.h) and ios_blk_lent() says where. */
	bool lend;

	struct ios_bdev_chan *chan;
	struct ios_bdev_io io;
	struct iovec iov;
	/* Called from the channel's poll once the backend is done. */
	void (*done)(struct ios_blk_req *r);
};

/* Fills in a device from its bdev and the topology's queue shape. */
void ios_blk_dev_init(struct ios_blk_dev *d, const char *name, struct ios_bdev *bdev,
		      unsigned num_queues, unsigned queue_size);

/* Validates a request. Afterwards r->backend says whether ios_blk_submit()
 * must run; otherwise r->status is final. */
void ios_blk_parse(const struct ios_blk_dev *d, const void *rd, uint32_t rdlen, uint32_t wcap,
		   struct ios_blk_req *r);

/* Bytes of buffer the request needs: its data and its RESP. */
static inline uint32_t ios_blk_buf_len(const struct ios_blk_req *r)
{
	return r->len > r->wcap ? r->len : r->wcap;
}

/*
 * Starts the backend operation; buf holds ios_blk_buf_len() bytes and stays
 * put until done. OUT data is copied into buf here unless taken before, so
 * the REQ payload may go away on return. Returns 0 (r->done will be called) or -errno with
 * r->status set to IOERR (it will not).
 */
int ios_blk_submit(struct ios_blk_req *r, struct ios_bdev_chan *ch, uint8_t *buf);

/* Copies a write's data into buf now (the REQ payload may go away before
 * the request reaches the backend: stages may hold it); ios_blk_submit
 * then takes it from there. */
void ios_blk_take_data(struct ios_blk_req *r, uint8_t *buf);

/* A READ whose backend lent its data: the RESP's first r->len bytes are
 * there, not in the buffer (which holds the status after them all the
 * same). NULL otherwise. */
static inline const uint8_t *ios_blk_lent(const struct ios_blk_req *r)
{
	return r->op == IOS_BLK_OP_READ && r->status == VIRTIO_BLK_S_OK &&
	       r->io.lent ? r->iov.iov_base : NULL;
}

/* Writes the RESP payload into buf (r->wcap bytes, READ data already in
 * place or lent) and returns its length. */
uint32_t ios_blk_resp(const struct ios_blk_dev *d, const struct ios_blk_req *r, uint8_t *buf);

const char *ios_blk_op_name(enum ios_blk_op op);
/* The same, as a table: the `op` label of the request counters. */
extern const char *const ios_blk_op_names[IOS_BLK_OP_COUNT];

#endif
