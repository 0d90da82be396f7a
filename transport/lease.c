/* SPDX-License-Identifier: BSD-3-Clause */
/* Write leases for fencing (lease.h). */
#include "lease.h"

#include <errno.h>

#define NS_PER_MS 1000000ull

void vrio_lease_grant_init(struct vrio_lease_grant *g, unsigned lease_ms, unsigned interval_ms)
{
	g->lease_ns = (uint64_t)lease_ms * NS_PER_MS;
	g->interval_ns = (uint64_t)interval_ms * NS_PER_MS;
	g->last_ping = 0;
	g->last_stamp = 0;
	__atomic_store_n(&g->expiry, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&g->required, false, __ATOMIC_RELEASE);
}

void vrio_lease_require(struct vrio_lease_grant *g)
{
	__atomic_store_n(&g->required, true, __ATOMIC_RELEASE);
}

uint64_t vrio_lease_ping(struct vrio_lease_grant *g, uint64_t now)
{
	if (g->last_stamp && now - g->last_ping < g->interval_ns)
		return 0;
	/* Stamps only grow, and 0 means none. */
	if (now <= g->last_stamp)
		now = g->last_stamp + 1;
	g->last_ping = now;
	g->last_stamp = now;
	return now;
}

int vrio_lease_echo(struct vrio_lease_grant *g, uint64_t stamp, uint64_t now)
{
	uint64_t end, cur;

	if (stamp == 0 || stamp > g->last_stamp || stamp > now)
		return -EINVAL;
	end = stamp + g->lease_ns;
	cur = __atomic_load_n(&g->expiry, __ATOMIC_RELAXED);
	if (end > cur)
		__atomic_store_n(&g->expiry, end, __ATOMIC_RELEASE);
	return 0;
}

bool vrio_lease_valid(const struct vrio_lease_grant *g, uint64_t now)
{
	uint64_t e = __atomic_load_n(&g->expiry, __ATOMIC_ACQUIRE);

	if (e == 0)
		return !__atomic_load_n(&g->required, __ATOMIC_ACQUIRE);
	return now < e;
}

enum vrio_lease_state vrio_lease_state(const struct vrio_lease_grant *g, uint64_t now)
{
	uint64_t e = __atomic_load_n(&g->expiry, __ATOMIC_ACQUIRE);

	if (e == 0)
		return __atomic_load_n(&g->required, __ATOMIC_ACQUIRE) ? VRIO_LEASE_PENDING :
									 VRIO_LEASE_NONE;
	return now < e ? VRIO_LEASE_HELD : VRIO_LEASE_LAPSED;
}

int vrio_lease_ping_timeout_ms(const struct vrio_lease_grant *g, uint64_t now)
{
	uint64_t due = g->last_ping + g->interval_ns;

	if (!g->last_stamp || due <= now)
		return 0;
	return (int)((due - now + NS_PER_MS - 1) / NS_PER_MS);
}

const char *vrio_lease_state_name(enum vrio_lease_state s)
{
	switch (s) {
	case VRIO_LEASE_NONE:
		return "none";
	case VRIO_LEASE_PENDING:
		return "pending";
	case VRIO_LEASE_HELD:
		return "held";
	case VRIO_LEASE_LAPSED:
		return "lapsed";
	}
	return "?";
}

/* 1% for the rates (NTP keeps them within 500 ppm; a VM's may be worse),
 * and 10 ms for the scheduler between a read and its clock. */
uint64_t vrio_lease_margin_ns(uint64_t lease_ns)
{
	return lease_ns / 100 + 10 * NS_PER_MS;
}

int vrio_lease_hold_ping(struct vrio_lease_hold *h, unsigned lease_ms, uint64_t now)
{
	uint64_t l = (uint64_t)lease_ms * NS_PER_MS, end;

	if (lease_ms == 0 || lease_ms > VRIO_LEASE_MAX_MS)
		return -EINVAL;
	end = now + l + vrio_lease_margin_ns(l);
	if (end > h->until)
		h->until = end;
	return 0;
}
