/* SPDX-License-Identifier: BSD-3-Clause */
/* Connection liveness timers (heartbeat.h). */
#include "heartbeat.h"

#include "transport.h"

#define NS_PER_MS 1000000ull

static uint64_t since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

void vrio_hb_init(struct vrio_hb *h, unsigned interval_ms, unsigned dead_after_ms)
{
	h->interval_ns = (uint64_t)interval_ms * NS_PER_MS;
	h->dead_ns = (uint64_t)dead_after_ms * NS_PER_MS;
	h->last_rx = h->last_tx = h->last_check = 0;
	h->seen_rx = h->seen_tx = 0;
}

void vrio_hb_start(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now)
{
	h->last_rx = h->last_tx = h->last_check = now;
	h->seen_rx = c->stats.frames_rx;
	h->seen_tx = c->stats.frames_tx;
}

enum vrio_hb_verdict vrio_hb_check(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now)
{
	if (since(now, h->last_check) > h->dead_ns / 2)
		h->last_rx = now;
	h->last_check = now;
	if (c->stats.frames_rx != h->seen_rx) {
		h->seen_rx = c->stats.frames_rx;
		h->last_rx = now;
	}
	if (c->stats.frames_tx != h->seen_tx) {
		h->seen_tx = c->stats.frames_tx;
		h->last_tx = now;
	}
	if (since(now, h->last_rx) >= h->dead_ns)
		return VRIO_HB_DEAD;
	if (since(now, h->last_tx) >= h->interval_ns) {
		h->last_tx = now;
		return VRIO_HB_SEND;
	}
	return VRIO_HB_OK;
}

bool vrio_hb_send_due(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now)
{
	if (c->stats.frames_tx != h->seen_tx) {
		h->seen_tx = c->stats.frames_tx;
		h->last_tx = now;
	}
	if (since(now, h->last_tx) < h->interval_ns)
		return false;
	h->last_tx = now;
	return true;
}

int vrio_hb_send_timeout_ms(const struct vrio_hb *h, uint64_t now)
{
	uint64_t due = h->last_tx + h->interval_ns;

	if (due <= now)
		return 0;
	return (int)((due - now + NS_PER_MS - 1) / NS_PER_MS);
}

int vrio_hb_timeout_ms(const struct vrio_hb *h, uint64_t now)
{
	uint64_t tx = h->last_tx + h->interval_ns, rx = h->last_rx + h->dead_ns;
	uint64_t due = tx < rx ? tx : rx;

	if (due <= now)
		return 0;
	/* Rounded up: waking a little late is harmless, early is a spin. */
	return (int)((due - now + NS_PER_MS - 1) / NS_PER_MS);
}

uint64_t vrio_hb_silent_ms(const struct vrio_hb *h, uint64_t now)
{
	return since(now, h->last_rx) / NS_PER_MS;
}
