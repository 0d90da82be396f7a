/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a device model implements for the io-server (the plugin header), and
 * the device object the server keeps for each device it serves.
 *
 * A device lives in the server's table (one slot, its dev_id on the wire)
 * from the reload that adds it to the reload that removes it. Who may touch
 * what:
 *   control thread  the table, topo, open/close, the live settings (atomic
 *                   stores), removal.
 *   front reactor   the reactor of the session that has it attached: the
 *                   attachment, requests' accounting, responses' sending.
 *   home reactor    where it is placed while attached, chosen at attach
 *                   (least loaded) and changed by a move: the model's
 *                   per-reactor state (a backend channel), requests in
 *                   flight, the counters.
 * The front and home reactors may be the same. Requests go front -> home
 * and come back home -> front as messages (struct ios_req's msg); on one
 * reactor the calls are direct.
 */
#ifndef VRIO_IOSERVER_DEVICE_H
#define VRIO_IOSERVER_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "bdev.h"
#include "blk.h"
#include "frame.h"
#include "metrics.h"
#include "net.h"
#include "reactor.h"
#include "topology.h"

#define IOS_MAX_DEVICES		4096u	/* per io-server; dev_ids are below */
#define IOS_DEV_MAX_OPS		8u

struct ios_server;
struct ios_session;
struct ios_attach;
struct ios_port;
struct ios_req;
struct Vrio__AttachReply;

enum ios_dev_drop {
	IOS_DEV_DROP_BACKLOG,		/* more than max_outstanding queued */
	IOS_DEV_DROP_DOWN,		/* not attached where the frame arrived */
};

/* Where a request's time at the io-server goes (README: the breakdown):
 * arrival to the backend's submit (parse, stages, a hop between
 * reactors), the backend, and its completion back to the response being
 * queued for sending. */
enum ios_stage_hop {
	IOS_HOP_QUEUE,
	IOS_HOP_BACKEND,
	IOS_HOP_RESPOND,
	IOS_NR_HOPS,
};
extern const char *const ios_hop_names[IOS_NR_HOPS];

struct ios_dev_stats {
	uint64_t requests[IOS_DEV_MAX_OPS];	/* by the model's op */
	uint64_t bytes_read, bytes_written;
	uint64_t err_ioerr, err_unsupp, err_protocol, err_guest, err_refused;
	uint64_t invalidations;		/* vIOMMU invalidations acknowledged */
	/* Writes not submitted because their session's lease had lapsed
	 * (lease.h): late requests, never executed, never answered. */
	uint64_t fenced;
	/* Writes the backend completed after their session's lease lapsed:
	 * submitted under it, landed after it (lease.h's window). */
	uint64_t late_writes;
	uint64_t moves;			/* control thread */
	struct vrio_hist latency;	/* front reactor: arrival to response queued */
	struct vrio_hist hop[IOS_NR_HOPS];	/* front reactor, as latency */
};

struct ios_device {
	uint32_t id;
	const struct ios_dev_ops *ops;
	struct ios_server *srv;
	struct ios_chain *chain;	/* atomic: its stages (stage.h), NULL: none */
	/* Copies: reactors never read the topology, which a reload frees. */
	char name[64];
	char host[64];
	char label[192];		/* device="..." for the exposition */
	const struct vrio_topo_device *topo;	/* control thread only */
	uint32_t num_queues, queue_size, max_request, max_outstanding;

	bool read_only;			/* atomic: a live setting */
	bool removing;			/* atomic: refuse new work, then go */
	struct ios_session *owner;	/* atomic: attached on it; front reactor clears */
	struct ios_reactor *front;	/* atomic: that session's reactor */
	struct ios_reactor *home;	/* atomic: placed there; NULL: not placed */
	uint64_t placed_ns;		/* atomic: when it last landed */

	/* Home reactor. */
	unsigned inflight;		/* requests handed to the model */
	/* Of those, held by stages that take them along when the device
	 * moves (a throttle's queue), and those stages (stage.h). */
	unsigned parked;
	TAILQ_HEAD(ios_parked_stages, ios_stage) parked_stages;
	struct ios_move *move;		/* a move waiting for inflight to drain */
	struct ios_dev_stats stats;

	/* The models' own state. */
	union {
		struct {
			struct ios_bdev *bdev;
			struct ios_bdev_chan *chan;	/* home reactor's */
			struct ios_blk_dev model;
			struct ios_poller poller;
			struct ios_evsrc chan_ev;
			unsigned at_backend;	/* on chan (not held by a stage) */
			/* The clock of this poll's completions, read at the
			 * first (0: none yet): one read a batch. */
			uint64_t poll_now;
			/* Test hook (bdev_fault's hold_ms): the next read or
			 * write answer the backend gives is held back this long
			 * (atomic, taken by the home reactor), while later ones
			 * pass it. */
			uint32_t hold_ms;
			struct ios_req *held;		/* home reactor */
			uint64_t held_until;
		} blk;
		struct {
			struct ios_net_dev model;
			struct ios_port *port;
		} net;
	} u;
};

struct ios_dev_ops {
	const char *name;
	enum vrio_dev_type type;
	uint8_t frame_type;		/* the frames that carry its requests */
	const char *const *op_names;	/* the `op` label of requests_total */
	unsigned n_ops;

	/* Control thread: open the backend, build the model, fill
	 * num_queues, max_request, max_outstanding. */
	int (*open)(struct ios_server *srv, struct ios_device *d);
	/* Control thread, once it is neither attached nor placed. */
	void (*close)(struct ios_server *srv, struct ios_device *d);
	/* Any thread: what an AttachReply says (immutable after open). */
	void (*describe)(const struct ios_device *d, struct Vrio__AttachReply *ar);
	/* Control thread, optional: a reload changes settings that change
	 * live (read_only, ...). With apply false, only say whether it can
	 * (-EPERM and why); with apply true, make it (atomic stores the home
	 * reactor picks up with the next request). */
	int (*reconfigure)(struct ios_device *d, const struct vrio_topo_device *td, bool apply,
			   char *why, size_t n);
	/* Front reactor, optional: the model's checks of a frame beyond the
	 * generic ones (queue, lengths). Non-zero: garbage, `why` says. */
	int (*check)(const struct ios_device *d, const struct vrio_frame *f, const void *payload,
		     char *why, size_t n);
	/* Home reactor, optional: a new attachment lands (before place; a
	 * move is not one): forget what the previous guest told the model. */
	void (*attach)(struct ios_device *d);
	/* Home reactor: the device lands here, or leaves (nothing in flight). */
	int (*place)(struct ios_device *d, struct ios_reactor *r);
	void (*unplace)(struct ios_device *d, struct ios_reactor *r);
	/* Home reactor: serve one request; `payload` lives for the call. It
	 * ends with ios_req_done(), now or from a later poll. */
	void (*request)(struct ios_device *d, struct ios_req *req, const void *payload);
	/* Home reactor, optional: a frame that nothing answers (a packet)
	 * served within the call, without a request, when the front reactor
	 * is the home. true: done; false: give it to request() instead. */
	bool (*frame_now)(struct ios_device *d, const struct vrio_frame *f, const void *payload);
	/* Front reactor, optional. With it, a frame for the guest that does
	 * not fit (max_outstanding) or finds no attachment is dropped and
	 * counted here (packets); without it, more than max_outstanding
	 * requests is a protocol error (a guest's ring holds no more). */
	void (*drop)(struct ios_device *d, enum ios_dev_drop why);
	/* Front reactor, optional: a frame for the guest was queued. */
	void (*sent)(struct ios_device *d, uint32_t len);
	/* Metrics thread, optional: the model's own families, over every
	 * device of its kind (ios_device_next). */
	void (*metrics)(struct ios_server *srv, struct vrio_mw *w);
	/* Optional, any thread, a test hook (bdev_fault's hold_ms): hold the
	 * next answer to a data request the backend gives back for ms, while
	 * later ones pass it, so that answers arrive out of order. */
	int (*hold)(struct ios_device *d, uint32_t ms);
};

extern const struct ios_dev_ops ios_blk_dev_ops;
extern const struct ios_dev_ops ios_net_dev_ops;

/* The models compiled in; the one for a topology type, or NULL. */
const struct ios_dev_ops *ios_dev_ops_find(enum vrio_dev_type type);

/* Metrics thread: every model's own families. */
void ios_dev_models_metrics(struct ios_server *srv, struct vrio_mw *w);

/* Home reactor: the model is done with req; it goes back to the front. */
void ios_req_done(struct ios_req *req);
/* Home reactor: hand a frame for the guest (already in req) to the front. */
void ios_dev_to_front(struct ios_device *d, struct ios_req *req);

/* Metrics and control threads, under srv->lock: the next device after
 * `prev` (NULL: the first) of ops' kind (NULL: any). */
struct ios_device *ios_device_next(struct ios_server *srv, struct ios_device *prev,
				   const struct ios_dev_ops *ops);

#endif
