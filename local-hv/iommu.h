/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A request/response device behind the guest's vIOMMU (issue 5): the VMM's
 * IOTLB messages, misses, and invalidations forwarded to the io-server.
 *
 * Ownership. The poller owns the device's IOTLB and everything below but
 * the inbox's producer end. rte_vhost's control thread sees the VMM's
 * IOTLB messages first (vhost.c, pre_msg), posts each into the device's
 * inbox, wakes the poller, and for a strict invalidation waits until the
 * poller says it is done before it lets rte_vhost acknowledge the VMM.
 *
 * An invalidation (strict) is done when the io-server acknowledged it (or
 * the connection is down: then the io-server holds nothing of the guest)
 * and no chain in flight touches the range; only then does the range leave
 * the IOTLB, so a chain in flight can still be walked again to scatter its
 * response. New chains that touch a range being invalidated wait, as for
 * a miss: the VMM will map that IOVA afresh, or not. Under the deferred
 * policy the control thread does not wait; the poller takes the
 * invalidations in batches (at most N, or once the oldest is T ms old),
 * and the mappings it keeps meanwhile are the exposure it reports: until
 * its batch starts, a deferred invalidation's range stays usable (a guest
 * that defers its flushes does not reuse an IOVA before them); from then
 * on it is handled as a strict one, without the VMM waiting.
 */
#ifndef VRIO_LOCALHV_IOMMU_H
#define VRIO_LOCALHV_IOMMU_H

#include <stdbool.h>
#include <stdint.h>

#include "iotlb.h"
#include "metrics.h"
#include "topology.h"

#define LHV_IOMMU_INBOX		256u	/* a power of two */
#define LHV_IOMMU_PENDING	1024u
#define LHV_IOMMU_MISS_NS	(2ull * 1000 * 1000 * 1000)	/* an unanswered miss breaks */
#define LHV_IOMMU_INVAL_NS	(5ull * 1000 * 1000 * 1000)	/* a stuck invalidation breaks */

struct lhv;
struct lhv_dev;

enum lhv_iommu_op { LHV_IOMMU_UPDATE, LHV_IOMMU_INVALIDATE };

struct lhv_iommu_msg {
	uint8_t op, perm;
	uint64_t iova, size, uaddr;
	uint64_t token;			/* invalidations: done once done_token >= it */
	uint64_t t0;			/* when the VMM sent it */
};

struct lhv_inval {
	uint64_t iova, size, token, t0;
	uint64_t seq;			/* the IotlbInvalidate's, 0: not sent yet */
	bool acked;			/* by the io-server */
	bool deferred;			/* the VMM was answered already */
	bool started;			/* in its batch: chains on it wait now */
};

struct lhv_iommu_stats {
	uint64_t invalidations;
	uint64_t stale;			/* gauge: deferred mappings still in the IOTLB */
	uint64_t stale_max_ns;		/* gauge: the longest any of them lived */
	struct vrio_hist rtt;		/* from the VMM's message to done */
};

struct lhv_iommu {
	bool on;			/* VIRTIO_F_ACCESS_PLATFORM, fixed at start */
	bool deferred;			/* the topology's policy; atomic */
	unsigned batch, delay_ms;
	int slave_fd;			/* atomic: the backend channel, -1: none */
	struct lhv_iotlb tlb;

	/* Control thread -> poller. */
	struct lhv_iommu_msg inbox[LHV_IOMMU_INBOX];
	unsigned in_head;		/* atomic, the poller's */
	unsigned in_tail;		/* atomic, the control thread's */
	uint64_t next_token;		/* control thread */
	uint64_t done_token;		/* atomic, the poller's */

	/* Poller. */
	struct lhv_inval pend[LHV_IOMMU_PENDING];
	unsigned npend;
	uint64_t max_seq;		/* the newest IotlbInvalidate sent */
	bool miss_out;
	uint64_t miss_iova, miss_at;
	struct lhv_iommu_stats st;
};

/* Control thread. */
void lhv_iommu_init(struct lhv_iommu *m, const struct vrio_topo_device *t);
/* The poller: the topology's policy changed (a reload). */
void lhv_iommu_configure(struct lhv_iommu *m, const struct vrio_topo_device *t);
void lhv_iommu_fini(struct lhv_iommu *m);
/* A VMM IOTLB message (vhost_iotlb_msg fields). Returns once the poller is
 * done with a strict invalidation; -ETIMEDOUT if it never is. */
int lhv_iommu_post(struct lhv *l, struct lhv_dev *d, uint8_t type, uint64_t iova,
		   uint64_t size, uint64_t uaddr, uint8_t perm);
/* Takes the backend channel rte_vhost received (a dup the device keeps). */
void lhv_iommu_set_channel(struct lhv_iommu *m, int fd);

/* Poller. */
int lhv_iommu_poll(struct lhv_dev *d);
/* After a walk: true if the chain may go, false if it waits (a miss was
 * asked for, or its range is being invalidated). */
bool lhv_iommu_admit(struct lhv_dev *d, int walk_rc, uint64_t lo, uint64_t hi, uint64_t now);
/* The io-server's IotlbAck. -EBADMSG if none was asked for. */
int lhv_iommu_acked(struct lhv_dev *d, uint64_t seq);
/* The connection to the io-server is gone: nothing there to wait for. */
void lhv_iommu_upstream_lost(struct lhv_dev *d);
/* The device stopped (or broke): what is pending is done. */
void lhv_iommu_reset(struct lhv_dev *d);
/* Milliseconds until lhv_iommu_poll must run again on its own (a batch to
 * start, a miss or an invalidation to time out), or -1. */
int lhv_iommu_timeout_ms(const struct lhv_dev *d, uint64_t now);

#endif
