/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * acl: a stateless filter on a net device's frames, both ways (acl.h
 * classifies). The first rule that matches decides, else the default; a
 * denied frame is dropped (reason "rule"). Each rule counts its hits, by
 * position, and so does the default; a reload with other rules keeps the
 * stage and its counters and swaps the compiled rules at the next frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "acl.h"
#include "log.h"
#include "stage_net.h"

struct acl_stage {
	struct ios_stage base;
	struct ios_acl *acl;		/* home reactor; the metrics thread reads n */
	struct ios_acl *next;		/* atomic: rules from a reload */
	unsigned n;			/* atomic: rules in use, for the metrics */
	uint64_t default_hits;
	uint64_t hits[IOS_ACL_MAX_RULES];
};

static struct acl_stage *to_acl(struct ios_stage *st)
{
	return container_of(st, struct acl_stage, base);
}

static enum ios_stage_verdict acl_request(struct ios_stage *st, struct ios_req *req)
{
	struct acl_stage *a = to_acl(st);
	const struct ios_net_req *f = &req->u.net;
	struct ios_acl *next = __atomic_load_n(&a->next, __ATOMIC_RELAXED);
	struct ios_acl_pkt pkt;
	int rule;

	if (next) {
		next = __atomic_exchange_n(&a->next, NULL, __ATOMIC_ACQ_REL);
		if (next) {
			ios_acl_free(a->acl);
			a->acl = next;
			__atomic_store_n(&a->n, next->n, __ATOMIC_RELAXED);
		}
	}
	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, f->len);
	ios_acl_parse(f->eth, f->len, &pkt);
	rule = ios_acl_match(a->acl, &pkt, f->out ? IOS_ACL_DIR_OUT : IOS_ACL_DIR_IN);
	vrio_counter_add(rule < 0 ? &a->default_hits : &a->hits[rule], 1);
	if (ios_acl_allows(a->acl, rule))
		return IOS_STAGE_PASS;
	return ios_net_stage_drop(st, req, IOS_STAGE_DROP_RULE);
}

static struct ios_acl *compile(const struct ios_device *d, const struct vrio_topo_stage *ts,
			      char *why, size_t n)
{
	struct ios_acl *acl = ios_acl_compile(&ts->u.acl);

	if (!acl && ts->u.acl.n_rules > IOS_ACL_MAX_RULES)
		snprintf(why, n, "device '%s': acl at %u:%u: %u rules, at most %u", d->name,
			 ts->line, ts->col, ts->u.acl.n_rules, IOS_ACL_MAX_RULES);
	return acl;
}

static int acl_create(struct ios_device *d, const struct vrio_topo_stage *ts,
		      struct ios_stage **out, char *why, size_t n)
{
	struct acl_stage *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->acl = compile(d, ts, why, n);
	if (!a->acl) {
		free(a);
		return ts->u.acl.n_rules > IOS_ACL_MAX_RULES ? -E2BIG : -ENOMEM;
	}
	a->n = a->acl->n;
	*out = &a->base;
	return 0;
}

static int acl_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	struct acl_stage *a = to_acl(st);
	struct ios_acl *acl;
	char why[256] = "";

	if (!apply)
		return ts->u.acl.n_rules > IOS_ACL_MAX_RULES ? -EPERM : 0;
	acl = compile(st->d, ts, why, sizeof(why));
	if (!acl) {
		VRIO_ERR("%s: acl: %s; keeping the old rules", st->d->name,
			 why[0] ? why : "out of memory for the new rules");
		return -ENOMEM;
	}
	ios_acl_free(__atomic_exchange_n(&a->next, acl, __ATOMIC_ACQ_REL));
	/* The metrics show the new rules at once; the reactor takes them at
	 * its next frame (counters are by position, kept). */
	__atomic_store_n(&a->n, acl->n, __ATOMIC_RELAXED);
	return 0;
}

static void acl_destroy(struct ios_stage *st)
{
	struct acl_stage *a = to_acl(st);

	ios_acl_free(__atomic_exchange_n(&a->next, NULL, __ATOMIC_ACQ_REL));
	ios_acl_free(a->acl);
	free(a);
}

static const struct ios_stage_gauge acl_families[] = {
	{ "vrio_ioserver_acl_rule_hits_total", "counter",
	  "Frames each acl rule matched (rule=\"N\", from 1, in the topology's order), and "
	  "those no rule matched (rule=\"default\")" },
};

static void acl_samples(struct ios_stage *st, unsigned i, struct vrio_mw *w, const char *labels)
{
	struct acl_stage *a = to_acl(st);
	unsigned n = __atomic_load_n(&a->n, __ATOMIC_RELAXED);
	char lab[288];

	for (unsigned r = 0; r < n; r++) {
		snprintf(lab, sizeof(lab), "%s,rule=\"%u\"", labels, r + 1);
		vrio_mw_u64(w, acl_families[i].name, lab, vrio_counter_get(&a->hits[r]));
	}
	snprintf(lab, sizeof(lab), "%s,rule=\"default\"", labels);
	vrio_mw_u64(w, acl_families[i].name, lab, vrio_counter_get(&a->default_hits));
}

const struct ios_stage_ops ios_stage_acl_ops = {
	.kind = VRIO_STAGE_ACL,
	.create = acl_create,
	.retune = acl_retune,
	.destroy = acl_destroy,
	.request = acl_request,
	.gauges = acl_families,
	.n_gauges = 1,
	.samples = acl_samples,
};
