/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * police: a rate limit on a net device's frames, one token bucket in bytes
 * per direction (in: from the guest, out: toward it). A frame goes if the
 * bucket holds its whole length, and is dropped otherwise (reason "rate"):
 * a policer, not a shaper, so it never queues and never runs a debt
 * (tbucket.h). The bucket refills continuously at the rate and holds
 * `burst` bytes, at least the largest frame of the device's network (else
 * such a frame could never go). Time is the frame's arrival at the
 * io-server (req->t_start), which tests set.
 *
 * A reload with other rates keeps the stage, its buckets' tokens and its
 * counters; the reactor takes the new settings at its next frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "stage_net.h"
#include "tbucket.h"

enum { DIR_IN, DIR_OUT, N_DIRS };
static const char *const dir_names[N_DIRS] = { "in", "out" };

struct police_cfg {
	uint64_t rate[N_DIRS];		/* bytes/s, 0: no limit */
	uint64_t burst_ns[N_DIRS];
};

struct police {
	struct ios_stage base;
	struct ios_tbucket tb[N_DIRS];
	struct police_cfg cfg;
	struct police_cfg *next;	/* atomic: settings from a reload */
	bool started;			/* buckets initialised (full) */
	uint32_t min_burst;		/* the network's largest frame */
	struct {
		uint64_t frames, bytes;
	} passed[N_DIRS], dropped[N_DIRS];
};

static struct police *to_police(struct ios_stage *st)
{
	return container_of(st, struct police, base);
}

/* A burst of `bytes` at `rate` as the bucket's time span, rounded up. */
static uint64_t burst_ns(uint64_t rate, uint64_t bytes)
{
	unsigned __int128 ns;

	if (!rate)
		return 0;
	ns = ((unsigned __int128)bytes * 1000000000u + rate - 1) / rate;
	return ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)ns;
}

static void cfg_from(struct police_cfg *c, const struct vrio_topo_police *t, uint32_t min_burst)
{
	const struct vrio_topo_police_dir *d[N_DIRS] = { &t->in, &t->out };

	for (unsigned i = 0; i < N_DIRS; i++) {
		c->rate[i] = d[i]->rate;
		c->burst_ns[i] = burst_ns(d[i]->rate,
					  d[i]->burst > min_burst ? d[i]->burst : min_burst);
	}
}

static enum ios_stage_verdict police_request(struct ios_stage *st, struct ios_req *req)
{
	struct police *p = to_police(st);
	const struct ios_net_req *f = &req->u.net;
	struct police_cfg *next = __atomic_load_n(&p->next, __ATOMIC_RELAXED);
	uint64_t now = req->t_start;
	unsigned dir = f->out ? DIR_OUT : DIR_IN;

	if (!p->started) {
		for (unsigned i = 0; i < N_DIRS; i++)
			ios_tb_init(&p->tb[i], p->cfg.rate[i], p->cfg.burst_ns[i], now);
		p->started = true;
	}
	if (next && (next = __atomic_exchange_n(&p->next, NULL, __ATOMIC_ACQ_REL))) {
		p->cfg = *next;
		free(next);
		for (unsigned i = 0; i < N_DIRS; i++)
			ios_tb_set(&p->tb[i], p->cfg.rate[i], p->cfg.burst_ns[i], now);
	}
	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, f->len);
	if (ios_tb_take(&p->tb[dir], f->len, now)) {
		vrio_counter_add(&p->passed[dir].frames, 1);
		vrio_counter_add(&p->passed[dir].bytes, f->len);
		return IOS_STAGE_PASS;
	}
	vrio_counter_add(&p->dropped[dir].frames, 1);
	vrio_counter_add(&p->dropped[dir].bytes, f->len);
	return ios_net_stage_drop(st, req, IOS_STAGE_DROP_RATE);
}

static uint32_t largest_frame(const struct ios_device *d)
{
	unsigned mtu = d->u.net.model.mtu;

	/* A device with offloads sends and takes whole TSO packets (toward
	 * a guest without them the stages see the segments, dev_net.c). */
	if (d->u.net.model.offloads)
		return VRIO_PKT_MAX_GSO_FRAME;
	/* Ethernet header and a VLAN tag around the MTU (set when the device
	 * opened; a device in a unit test may have none). */
	return mtu ? mtu + 18u : VRIO_PKT_MAX_FRAME;
}

static int police_create(struct ios_device *d, const struct vrio_topo_stage *ts,
			 struct ios_stage **out, char *why, size_t n)
{
	struct police *p = calloc(1, sizeof(*p));
	const struct vrio_topo_police *t = &ts->u.police;

	if (!p)
		return -ENOMEM;
	p->min_burst = largest_frame(d);
	cfg_from(&p->cfg, t, p->min_burst);
	if ((t->in.rate && t->in.burst < p->min_burst) ||
	    (t->out.rate && t->out.burst < p->min_burst))
		VRIO_NOTICE("%s: police: a burst below %u bytes (the network's largest frame) "
			    "holds %u bytes", d->name, p->min_burst, p->min_burst);
	*out = &p->base;
	return 0;
}

static int police_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	struct police *p = to_police(st);
	struct police_cfg *c;

	if (!apply)
		return 0;
	c = malloc(sizeof(*c));
	if (!c) {
		VRIO_ERR("%s: police: out of memory for its new rates; keeping the old",
			 st->d->name);
		return -ENOMEM;
	}
	cfg_from(c, &ts->u.police, p->min_burst);
	free(__atomic_exchange_n(&p->next, c, __ATOMIC_ACQ_REL));
	return 0;
}

static void police_destroy(struct ios_stage *st)
{
	struct police *p = to_police(st);

	free(__atomic_exchange_n(&p->next, NULL, __ATOMIC_ACQ_REL));
	free(p);
}

enum { FAM_FRAMES, FAM_BYTES };

static const struct ios_stage_gauge police_families[] = {
	[FAM_FRAMES] = { "vrio_ioserver_police_frames_total", "counter",
			 "Frames a policer let through or dropped, by direction" },
	[FAM_BYTES] = { "vrio_ioserver_police_bytes_total", "counter",
			"Ethernet bytes a policer let through or dropped, by direction" },
};

static void police_samples(struct ios_stage *st, unsigned i, struct vrio_mw *w,
			   const char *labels)
{
	struct police *p = to_police(st);
	char lab[288];

	for (unsigned d = 0; d < N_DIRS; d++) {
		snprintf(lab, sizeof(lab), "%s,dir=\"%s\",verdict=\"passed\"", labels, dir_names[d]);
		vrio_mw_u64(w, police_families[i].name, lab,
			    vrio_counter_get(i == FAM_FRAMES ? &p->passed[d].frames
							     : &p->passed[d].bytes));
		snprintf(lab, sizeof(lab), "%s,dir=\"%s\",verdict=\"dropped\"", labels, dir_names[d]);
		vrio_mw_u64(w, police_families[i].name, lab,
			    vrio_counter_get(i == FAM_FRAMES ? &p->dropped[d].frames
							     : &p->dropped[d].bytes));
	}
}

const struct ios_stage_ops ios_stage_police_ops = {
	.kind = VRIO_STAGE_POLICE,
	.create = police_create,
	.retune = police_retune,
	.destroy = police_destroy,
	.request = police_request,
	.gauges = police_families,
	.n_gauges = 2,
	.samples = police_samples,
};
