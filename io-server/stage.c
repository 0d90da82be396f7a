/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Chains of stages (stage.h): building one from the topology, installing it
 * in a device while requests run, and running requests through it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "log.h"

const char *const ios_stage_drop_names[IOS_STAGE_NR_DROPS] = {
	[IOS_STAGE_DROP_RULE] = "rule",
	[IOS_STAGE_DROP_RATE] = "rate",
	[IOS_STAGE_DROP_BUFFER] = "buffer",
	[IOS_STAGE_DROP_UNSUPP] = "unsupported",
};

static const struct ios_stage_ops *const stage_models[] = {
	&ios_stage_throttle_ops,
	&ios_stage_acl_ops,
	&ios_stage_police_ops,
	&ios_stage_capture_ops,
	&ios_stage_mirror_ops,
	&ios_stage_crypt_ops,
};

const struct ios_stage_ops *ios_stage_ops_find(enum vrio_stage_kind kind)
{
	for (size_t i = 0; i < sizeof(stage_models) / sizeof(stage_models[0]); i++)
		if (stage_models[i]->kind == kind)
			return stage_models[i];
	return NULL;
}

/* ---- chains, control thread ---- */

static void stage_put(struct ios_stage *st)
{
	if (__atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL) == 0)
		st->ops->destroy(st);
}

void ios_chain_put(struct ios_chain *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (unsigned i = 0; i < c->n; i++)
		stage_put(c->stages[i]);
	free(c);
}

static struct ios_stage *old_stage(const struct ios_chain *old, enum vrio_stage_kind kind)
{
	for (unsigned i = 0; old && i < old->n; i++)
		if (old->stages[i]->ops->kind == kind)
			return old->stages[i];
	return NULL;
}

/* The calls until the next timed one: 1 to 2 * IOS_STAGE_SAMPLE - 1, as
 * likely each, so IOS_STAGE_SAMPLE on average. */
static uint32_t stage_gap(struct ios_stage *st)
{
	uint32_t x = st->sample;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	st->sample = x;
	return 1 + x % (2 * IOS_STAGE_SAMPLE - 1);
}

int ios_chain_build(struct ios_device *d, const struct vrio_topo_device *td,
		    struct ios_chain **out, char *why, size_t n)
{
	const struct ios_chain *old = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	const struct vrio_topo_stage *ts;
	const struct ios_stage_ops *ops;
	struct ios_stage *st;
	struct ios_chain *c;
	unsigned off = 0;
	int rc;

	*out = NULL;
	if (!td->n_stages)
		return 0;
	if (td->n_stages > IOS_MAX_STAGES) {
		snprintf(why, n, "device '%s': more than %u stages", d->name, IOS_MAX_STAGES);
		return -E2BIG;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->refs = 1;
	for (unsigned i = 0; i < td->n_stages; i++) {
		ts = &td->stages[i];
		ops = ios_stage_ops_find(ts->kind);
		if (!ops) {
			snprintf(why, n, "device '%s': stage '%s' is not implemented yet", d->name,
				 vrio_stage_kind_name(ts->kind));
			rc = -ENOTSUP;
			goto err;
		}
		st = old_stage(old, ts->kind);
		if (st && ops->retune(st, ts, false) == 0) {
			__atomic_add_fetch(&st->refs, 1, __ATOMIC_ACQ_REL);
			c->retune[i] = ts;
		} else {
			why[0] = '\0';
			rc = ops->create(d, ts, &st, why, n);
			if (rc < 0) {
				if (!why[0])
					snprintf(why, n, "device '%s': stage '%s': %s", d->name,
						 vrio_stage_kind_name(ts->kind), strerror(-rc));
				goto err;
			}
			st->ops = ops;
			st->d = d;
			st->refs = 1;
			st->sample = (uint32_t)(uintptr_t)st | 1;	/* never 0 */
			st->countdown = stage_gap(st);
		}
		c->off[i] = off;
		off += (unsigned)((ops->scratch + 7) & ~(size_t)7);
		c->stages[c->n++] = st;
		if (off > IOS_STAGE_SCRATCH) {
			snprintf(why, n, "device '%s': its stages need more than %u bytes a request",
				 d->name, IOS_STAGE_SCRATCH);
			rc = -E2BIG;
			goto err;
		}
	}
	*out = c;
	return 0;
err:
	ios_chain_put(c);
	return rc;
}

static bool in_chain(const struct ios_chain *c, const struct ios_stage *st)
{
	for (unsigned i = 0; c && i < c->n; i++)
		if (c->stages[i] == st)
			return true;
	return false;
}

static void chain_place_run(struct ios_reactor *r, void *arg)
{
	struct ios_device *d = arg;

	/* It may have moved on since: wherever it landed placed the chain. */
	if (__atomic_load_n(&d->home, __ATOMIC_ACQUIRE) == r)
		ios_chain_place(d, r);
}

void ios_chain_commit(struct ios_device *d, struct ios_chain *chain)
{
	struct ios_reactor *home;
	struct ios_chain *old;

	for (unsigned i = 0; chain && i < chain->n; i++) {
		if (chain->retune[i])
			chain->stages[i]->ops->retune(chain->stages[i], chain->retune[i], true);
		chain->retune[i] = NULL;
	}

	/* The metrics thread reads d->chain under the lock. Sequentially
	 * consistent with dev_land's store of home and load of the chain:
	 * a device landing now is placed by one side or both. */
	pthread_mutex_lock(&d->srv->lock);
	old = __atomic_exchange_n(&d->chain, chain, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&d->srv->lock);
	home = __atomic_load_n(&d->home, __ATOMIC_SEQ_CST);
	/* The device cannot be freed before this runs: reaping waits for a
	 * barrier this thread posts after it. */
	if (chain && home && ios_reactor_call(home, chain_place_run, d) < 0)
		VRIO_ERR("%s: no memory to place its new stages on %s; they start at its next request",
			 d->name, home->name);

	for (unsigned i = 0; old && i < old->n; i++) {
		struct ios_stage *st = old->stages[i];

		if (!in_chain(chain, st) && st->ops->drain)
			st->ops->drain(st);
	}
	if (!old)
		return;
	/* A request that read the old pointer in the turn a reactor is in
	 * holds its reference by the end of that turn. */
	if (ios_server_barrier(d->srv) < 0) {
		VRIO_ERR("%s: reactors did not answer; keeping the old chain's memory", d->name);
		return;
	}
	ios_chain_put(old);
}

void ios_chains_reloaded(struct ios_server *srv)
{
	struct ios_device *d;
	struct ios_chain *c;

	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		if (__atomic_load_n(&d->removing, __ATOMIC_ACQUIRE))
			continue;
		/* This thread is the one that replaces chains. */
		c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; c && i < c->n; i++)
			if (c->stages[i]->ops->reloaded)
				c->stages[i]->ops->reloaded(c->stages[i]);
	}
}

/* ---- requests, home reactor ---- */

void *ios_stage_scratch(struct ios_stage *st, struct ios_req *req)
{
	return req->scratch + req->chain->off[req->chain_pos];
}

/* One call into a stage, timed now and then (IOS_STAGE_SAMPLE). A
 * countdown, not a draw per call: the draw's dependency chain from one
 * frame to the next cost more than a cheap stage's own code. */
static inline enum ios_stage_verdict
stage_call(struct ios_stage *st,
	   enum ios_stage_verdict (*fn)(struct ios_stage *st, struct ios_req *req),
	   struct ios_req *req)
{
	enum ios_stage_verdict v;
	uint64_t t0;

	if (--st->countdown)
		return fn(st, req);
	st->countdown = stage_gap(st);
	t0 = vrio_now_ns();
	v = fn(st, req);
	vrio_counter_add(&st->st.ns, (vrio_now_ns() - t0) * IOS_STAGE_SAMPLE);
	return v;
}

static void chain_back(struct ios_req *req)
{
	struct ios_chain *c = req->chain;
	struct ios_stage *st;

	req->chain_back = true;
	for (; req->chain_pos >= 0; req->chain_pos--) {
		st = c->stages[req->chain_pos];
		if (!st->ops->completion)
			continue;
		if (stage_call(st, st->ops->completion, req) == IOS_STAGE_HOLD)
			return;
	}
	req->chain = NULL;
	ios_chain_put(c);
	req->chain_done(req);
}

static void chain_forward(struct ios_req *req)
{
	struct ios_chain *c = req->chain;
	struct ios_stage *st;

	for (; req->chain_pos < (int)c->n; req->chain_pos++) {
		st = c->stages[req->chain_pos];
		switch (stage_call(st, st->ops->request, req)) {
		case IOS_STAGE_PASS:
			break;
		case IOS_STAGE_HOLD:
			return;
		case IOS_STAGE_END:
			ios_chain_end(req);
			return;
		}
	}
	req->chain_pos = (int)c->n - 1;
	req->chain_submit(req);
}

void ios_chain_start(struct ios_device *d, struct ios_req *req,
		     void (*submit)(struct ios_req *req), void (*done)(struct ios_req *req))
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);

	req->chain_submit = submit;
	req->chain_done = done;
	if (!c) {
		req->chain = NULL;
		submit(req);
		return;
	}
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
	req->chain = c;
	req->chain_pos = 0;
	req->chain_back = false;
	chain_forward(req);
}

bool ios_chain_run(struct ios_device *d, struct ios_req *req)
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	bool passed = true;

	if (!c)
		return true;
	req->chain = c;
	for (unsigned i = 0; passed && i < c->n; i++) {
		req->chain_pos = (int)i;
		passed = stage_call(c->stages[i], c->stages[i]->ops->request, req) ==
			 IOS_STAGE_PASS;
	}
	req->chain = NULL;
	return passed;
}

void ios_chain_finish(struct ios_req *req, void (*done)(struct ios_req *req))
{
	req->chain_done = done;
	if (!req->chain) {
		done(req);
		return;
	}
	req->chain_pos = (int)req->chain->n - 1;
	chain_back(req);
}

void ios_chain_resume(struct ios_req *req)
{
	if (req->chain_back) {
		req->chain_pos--;
		chain_back(req);
	} else {
		req->chain_pos++;
		chain_forward(req);
	}
}

void ios_chain_end(struct ios_req *req)
{
	req->chain_pos--;
	chain_back(req);
}

void ios_stage_park(struct ios_stage *st)
{
	struct ios_device *d = st->d;

	if (st->parked++ == 0)
		TAILQ_INSERT_TAIL(&d->parked_stages, st, parked_link);
	d->parked++;
}

void ios_stage_unpark(struct ios_stage *st)
{
	struct ios_device *d = st->d;

	if (--st->parked == 0)
		TAILQ_REMOVE(&d->parked_stages, st, parked_link);
	d->parked--;
}

/* Parked requests keep their chain, so their stages live; one a reload
 * took out of the device's chain is placed and unplaced here too. */
void ios_chain_place(struct ios_device *d, struct ios_reactor *r)
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_SEQ_CST);
	struct ios_stage *st;

	for (unsigned i = 0; c && i < c->n; i++)
		if (c->stages[i]->ops->place)
			c->stages[i]->ops->place(c->stages[i], r);
	TAILQ_FOREACH(st, &d->parked_stages, parked_link)
		if (!in_chain(c, st))
			st->ops->place(st, r);
}

void ios_chain_unplace(struct ios_device *d, struct ios_reactor *r)
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	struct ios_stage *st;

	for (unsigned i = 0; c && i < c->n; i++)
		if (c->stages[i]->ops->unplace)
			c->stages[i]->ops->unplace(c->stages[i], r);
	TAILQ_FOREACH(st, &d->parked_stages, parked_link)
		if (!in_chain(c, st))
			st->ops->unplace(st, r);
}

/* ---- metrics ---- */

static void stage_labels(char *buf, size_t n, const struct ios_stage *st)
{
	snprintf(buf, n, "%s,stage=\"%s\"", st->d->label, vrio_stage_kind_name(st->ops->kind));
}

void ios_stages_metrics(struct ios_server *srv, struct vrio_mw *w)
{
	static const struct {
		const char *name, *help;
		size_t off;
		bool seconds;
	} fam[] = {
		{ "vrio_ioserver_stage_requests_total", "Requests (net: frames) into each stage",
		  offsetof(struct ios_stage_stats, requests), false },
		{ "vrio_ioserver_stage_bytes_total", "Bytes of the requests into each stage",
		  offsetof(struct ios_stage_stats, bytes), false },
		{ "vrio_ioserver_stage_delayed_total", "Requests a stage held before letting them on",
		  offsetof(struct ios_stage_stats, delayed), false },
		{ "vrio_ioserver_stage_seconds_total",
		  "Time spent in each stage's own code (one call in 16 timed)",
		  offsetof(struct ios_stage_stats, ns), true },
	};
	struct ios_device *d;
	struct ios_chain *c;
	char labels[320], lab[352];
	const uint64_t *v;

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		vrio_mw_family(w, fam[k].name, "counter", fam[k].help);
		for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
			c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
			for (unsigned i = 0; c && i < c->n; i++) {
				stage_labels(labels, sizeof(labels), c->stages[i]);
				v = (const uint64_t *)((const char *)&c->stages[i]->st + fam[k].off);
				if (fam[k].seconds)
					vrio_mw_double(w, fam[k].name, labels,
						       (double)vrio_counter_get(v) / 1e9);
				else
					vrio_mw_u64(w, fam[k].name, labels, vrio_counter_get(v));
			}
		}
	}
	vrio_mw_family(w, "vrio_ioserver_stage_drops_total", "counter",
		       "Requests or frames a stage dropped or refused, by reason");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; c && i < c->n; i++) {
			stage_labels(labels, sizeof(labels), c->stages[i]);
			for (unsigned r = 0; r < IOS_STAGE_NR_DROPS; r++) {
				snprintf(lab, sizeof(lab), "%s,reason=\"%s\"", labels,
					 ios_stage_drop_names[r]);
				vrio_mw_u64(w, "vrio_ioserver_stage_drops_total", lab,
					    vrio_counter_get(&c->stages[i]->st.drops[r]));
			}
		}
	}
	for (size_t m = 0; m < sizeof(stage_models) / sizeof(stage_models[0]); m++) {
		const struct ios_stage_ops *ops = stage_models[m];

		for (unsigned g = 0; g < ops->n_gauges; g++) {
			vrio_mw_family(w, ops->gauges[g].name, ops->gauges[g].type,
				       ops->gauges[g].help);
			for (d = ios_device_next(srv, NULL, NULL); d;
			     d = ios_device_next(srv, d, NULL)) {
				c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
				for (unsigned i = 0; c && i < c->n; i++) {
					if (c->stages[i]->ops != ops)
						continue;
					if (ops->samples)
						ops->samples(c->stages[i], g, w, d->label);
					else
						vrio_mw_double(w, ops->gauges[g].name, d->label,
							       ops->gauge(c->stages[i], g));
				}
			}
		}
	}
}
