/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Interposition: what a stage implements (the plugin header), and the chain
 * a device runs its requests through (ARCHITECTURE.md, "Interposition").
 *
 * A device's chain is the topology's interpose: list, built on the control
 * thread and published with an atomic pointer (ios_device->chain). A
 * request takes a reference to the chain it starts with and finishes with
 * it, whatever reloads do meanwhile: on its home reactor it goes through
 * the stages in order (request), then to the backend, then back in reverse
 * (completion). A stage may hold a request (a throttle queues it, a mirror
 * waits for its second write) and resume it later on the same reactor; it
 * never blocks the reactor, so an unthrottled neighbour goes on.
 *
 * Reloads: a stage that stays (same kind) keeps its state and takes its
 * new settings at the next request (retune); a stage that goes releases
 * what it holds at once and is freed with the last chain that names it; a
 * new one starts empty. No request fails and the device stays attached.
 * Once a reload is applied, every stage in a chain hears of it (reloaded),
 * whether its device changed or not.
 *
 * Threads: create, retune and drain are called on the control thread;
 * request, completion, place and unplace on the device's home reactor;
 * metrics on the metrics thread (counters are single-writer, relaxed).
 * A stage's per-reactor resources (a timer, a backend channel) are made
 * by place when the device lands on a reactor (or when a reload puts the
 * stage in the chain of a device that is placed), or else at its first
 * request there, and let go by unplace when the device leaves it, or by
 * destroy.
 */
#ifndef VRIO_IOSERVER_STAGE_H
#define VRIO_IOSERVER_STAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "metrics.h"
#include "reactor.h"
#include "topology.h"

struct ios_device;
struct ios_req;
struct ios_stage;
struct json_t;

#define IOS_STAGE_SCRATCH	256u	/* per-request bytes, shared by a chain's stages */
#define IOS_MAX_STAGES		8u

enum ios_stage_verdict {
	IOS_STAGE_PASS,		/* on to the next stage */
	IOS_STAGE_HOLD,		/* the stage resumes it later (ios_chain_resume) */
	IOS_STAGE_END,		/* request op only: the stage ended it (its status
				 * set, or a frame dropped): back through the
				 * stages before it (ios_chain_end) */
};

enum ios_stage_drop {
	IOS_STAGE_DROP_RULE,	/* acl: a rule or the default said deny */
	IOS_STAGE_DROP_RATE,	/* police: over the rate */
	IOS_STAGE_DROP_BUFFER,	/* capture: its buffer was full */
	IOS_STAGE_DROP_UNSUPP,	/* crypt: an operation it cannot do */
	IOS_STAGE_NR_DROPS,
};
extern const char *const ios_stage_drop_names[IOS_STAGE_NR_DROPS];

struct ios_stage_stats {
	uint64_t requests, bytes;	/* that entered the stage */
	uint64_t delayed;		/* held (throttle) */
	uint64_t drops[IOS_STAGE_NR_DROPS];
	uint64_t ns;			/* time spent in the stage's own code,
					 * sampled (IOS_STAGE_SAMPLE) */
};

/* One call in IOS_STAGE_SAMPLE to a stage's request or completion, on
 * average, is timed and counted that many times over: two clock reads a
 * call would cost a cheap stage more than its own code. The gaps between
 * timed calls are drawn at random (1 to twice that), since a stage may
 * work on one side only for some requests (crypt: writes going, reads
 * coming back) and a guest's pattern may have a period. */
#define IOS_STAGE_SAMPLE 64

struct ios_stage_ops {
	enum vrio_stage_kind kind;
	size_t scratch;			/* per-request bytes it needs */

	/* Control thread. `ts` is only valid during the call. On an error,
	 * `why` may say what failed (a path and the reason) for the reload's
	 * report; left empty, the report names the errno. */
	int (*create)(struct ios_device *d, const struct vrio_topo_stage *ts,
		      struct ios_stage **out, char *why, size_t n);
	/* New settings for a stage that stays. With apply false, only say
	 * whether it can take them in place (0) or must be replaced by a new
	 * one (-EPERM), without side effects; with apply true, take them
	 * (hand them to the reactor atomically). */
	int (*retune)(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply);
	/* Optional: the stage leaves the chain; release what it holds (on
	 * its reactor, soon: it may only set a flag and wake it). */
	void (*drain)(struct ios_stage *st);
	/* Optional: a reload was applied and the stage is in its device's
	 * chain (kept, with new settings or not, or new): what waits for
	 * the configuration to change may try again now (a mirror's
	 * probe). Only flags and wake-ups: the reload cannot fail here. */
	void (*reloaded)(struct ios_stage *st);
	/* Any thread, once no request and no chain refers to it, and after
	 * unplace if it was placed. */
	void (*destroy)(struct ios_stage *st);

	/* Home reactor. */
	enum ios_stage_verdict (*request)(struct ios_stage *st, struct ios_req *req);
	/* Optional. */
	enum ios_stage_verdict (*completion)(struct ios_stage *st, struct ios_req *req);
	/* Optional: the device is placed on reactor r (it landed there, or
	 * a reload made the stage part of its chain there): work of the
	 * stage's own that needs no request (a mirror's copy) may start. It
	 * may come more than once for one placement, and after requests. */
	void (*place)(struct ios_stage *st, struct ios_reactor *r);
	/* Optional: the device leaves reactor r (nothing in flight). */
	void (*unplace)(struct ios_stage *st, struct ios_reactor *r);

	/* Metrics thread, optional: the stage's own gauges, families named
	 * and described once for its kind, and each stage's value. */
	const struct ios_stage_gauge *gauges;
	unsigned n_gauges;
	double (*gauge)(struct ios_stage *st, unsigned i);
	/* Optional, instead of gauge: family i's samples for one stage when it
	 * has more than one (a counter per acl rule); `labels` are the
	 * device's, to which the stage adds its own. */
	void (*samples)(struct ios_stage *st, unsigned i, struct vrio_mw *w, const char *labels);

	/* Control thread, optional: the stage's live state for `vrioctl
	 * devices`, a JSON object under the stage's name (NULL: nothing). */
	struct json_t *(*status)(struct ios_stage *st);
	/* Control thread, optional, a test hook (the control socket's
	 * bdev_fault): make the stage's own backend fail every io, or work
	 * again. */
	int (*fault)(struct ios_stage *st, bool fail);
};

struct ios_stage_gauge {
	const char *name, *type, *help;
};

struct ios_stage {
	const struct ios_stage_ops *ops;
	struct ios_device *d;
	int refs;			/* atomic: chains that name it */
	bool removed;			/* control thread: left the chain */
	uint32_t sample;		/* home reactor: xorshift state */
	uint32_t countdown;		/* calls to the next timed one */
	unsigned parked;		/* home reactor: requests it parks */
	TAILQ_ENTRY(ios_stage) parked_link;	/* in d->parked_stages */
	struct ios_stage_stats st;
};

struct ios_chain {
	int refs;			/* atomic: the device's and requests' */
	unsigned n;
	struct ios_stage *stages[IOS_MAX_STAGES];
	unsigned off[IOS_MAX_STAGES];	/* each stage's part of req->scratch */
	/* Until committed: the settings of the stages it keeps from the
	 * device's chain (retuned at commit), NULL for new ones. */
	const struct vrio_topo_stage *retune[IOS_MAX_STAGES];
};

/* The stages compiled in; the one for a kind, or NULL. */
const struct ios_stage_ops *ios_stage_ops_find(enum vrio_stage_kind kind);

/* Control thread: the chain for a topology entry, keeping the stages of
 * the device's current chain that can take their new settings in place.
 * Nothing changes until it is committed: on an error (-errno and why),
 * or if it is put instead, the device goes on as it was. NULL *out for no
 * stages. */
int ios_chain_build(struct ios_device *d, const struct vrio_topo_device *td,
		    struct ios_chain **out, char *why, size_t n);
/* Control thread: retunes the stages kept and makes `chain` the device's;
 * the old one goes once its requests are done (stages that left it
 * release what they hold at once). A device that is placed has its home
 * reactor place the new chain's stages. */
void ios_chain_commit(struct ios_device *d, struct ios_chain *chain);
/* Drops a reference; the last one frees the chain and stages no other
 * chain names. Any thread. */
void ios_chain_put(struct ios_chain *c);
/* Control thread, once a reload is applied: every stage of every device
 * that stays (reloaded). */
struct ios_server;
void ios_chains_reloaded(struct ios_server *srv);

/* Home reactor, the device's model. */
/* Runs req through the device's chain (taking a reference), then calls
 * submit(req); a stage that ends the request early (ios_chain_end) has it
 * go back through the stages before it, then to done(req). */
void ios_chain_start(struct ios_device *d, struct ios_req *req,
		     void (*submit)(struct ios_req *req), void (*done)(struct ios_req *req));
/* For a model whose stages never hold a request (net frames): runs req
 * through the device's stages now, in order, without a reference on the
 * chain (ios_chain_commit waits for the reactor's turn to end before it
 * lets the old chain go) and without completions. False if a stage ended
 * it. */
bool ios_chain_run(struct ios_device *d, struct ios_req *req);
/* The backend is done: back through the chain, then req->chain_done. */
void ios_chain_finish(struct ios_req *req, void (*done)(struct ios_req *req));
/* A stage that held req lets it go on. */
void ios_chain_resume(struct ios_req *req);
/* A stage ends req now (its status already set): back through the
 * stages before it. */
void ios_chain_end(struct ios_req *req);
/* The device lands on reactor r (d->home is r): its stages may start,
 * and those with parked requests (in the chain or not) take them on. */
void ios_chain_place(struct ios_device *d, struct ios_reactor *r);
/* The device leaves reactor r: its stages let their resources there go. */
void ios_chain_unplace(struct ios_device *d, struct ios_reactor *r);
/* A stage holds req (IOS_STAGE_HOLD) in a way it can carry to another
 * reactor: a move of the device need not wait for it. Such a stage must
 * have place and unplace ops, and keep its requests across them; it
 * unparks each request before resuming it. */
void ios_stage_park(struct ios_stage *st);
void ios_stage_unpark(struct ios_stage *st);

/* The stage's own per-request bytes. */
void *ios_stage_scratch(struct ios_stage *st, struct ios_req *req);

/* Metrics thread: every device's stages (families ios_stage_*). */
void ios_stages_metrics(struct ios_server *srv, struct vrio_mw *w);

extern const struct ios_stage_ops ios_stage_throttle_ops;
extern const struct ios_stage_ops ios_stage_acl_ops;
extern const struct ios_stage_ops ios_stage_police_ops;
extern const struct ios_stage_ops ios_stage_capture_ops;
extern const struct ios_stage_ops ios_stage_mirror_ops;
extern const struct ios_stage_ops ios_stage_crypt_ops;

#endif
