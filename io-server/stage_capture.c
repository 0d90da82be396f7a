/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * capture: a net device's frames, both ways, to a pcap file (pcap.h), as
 * they reach this stage: listed last, it records what the guest sent that
 * the stages before it let through, and what the guest is given. The
 * reactor only copies the frame into the capture's ring; a writer thread
 * of its own puts it on disk. A frame that finds the ring full is not
 * captured and is counted (reason "buffer"), but goes on: a slow disk
 * never costs the guest a frame.
 *
 * The file is opened (truncated) when the stage is made, so a path that
 * cannot be written fails the load or the reload. A reload that keeps the
 * file takes a new snaplen and max_size in place; another file is another
 * stage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pcap.h"
#include "stage_net.h"

struct capture {
	struct ios_stage base;
	struct ios_pcap *pcap;
	char *file;
	uint64_t rt_offset;		/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
};

static struct capture *to_cap(struct ios_stage *st)
{
	return container_of(st, struct capture, base);
}

static enum ios_stage_verdict cap_request(struct ios_stage *st, struct ios_req *req)
{
	struct capture *c = to_cap(st);
	const struct ios_net_req *f = &req->u.net;

	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, f->len);
	if (!ios_pcap_add(c->pcap, f->eth, f->len, req->t_start + c->rt_offset))
		vrio_counter_add(&st->st.drops[IOS_STAGE_DROP_BUFFER], 1);
	return IOS_STAGE_PASS;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cap_create(struct ios_device *d, const struct vrio_topo_stage *ts,
		      struct ios_stage **out, char *why, size_t n)
{
	const struct vrio_topo_capture *t = &ts->u.capture;
	struct ios_pcap_opts o = {
		.path = t->file,
		.snaplen = t->snaplen,
		.max_size = t->max_size,
	};
	struct capture *c = calloc(1, sizeof(*c));
	char err[4200];
	int rc;

	if (!c)
		return -ENOMEM;
	c->file = strdup(t->file);
	if (!c->file) {
		free(c);
		return -ENOMEM;
	}
	rc = ios_pcap_open(&o, &c->pcap, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, n, "device '%s': %s", d->name, err);
		free(c->file);
		free(c);
		return rc;
	}
	c->rt_offset = clock_ns(CLOCK_REALTIME) - vrio_now_ns();
	VRIO_INFO("%s: capture to %s, snaplen %u%s", d->name, t->file, t->snaplen,
		  t->max_size ? ", rotated" : "");
	*out = &c->base;
	return 0;
}

static int cap_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	struct capture *c = to_cap(st);

	if (strcmp(c->file, ts->u.capture.file))
		return -EPERM;
	if (apply)
		ios_pcap_set(c->pcap, ts->u.capture.snaplen, ts->u.capture.max_size);
	return 0;
}

/* The control thread, with the last chain that named it: the writer puts
 * what is queued on disk first. */
static void cap_destroy(struct ios_stage *st)
{
	struct capture *c = to_cap(st);

	ios_pcap_close(c->pcap);
	free(c->file);
	free(c);
}

enum { G_FRAMES, G_BYTES, G_FILES, G_ERRORS, G_LOST, G_QUEUED, N_GAUGES };

static const struct ios_stage_gauge cap_gauges[N_GAUGES] = {
	[G_FRAMES] = { "vrio_ioserver_capture_frames_total", "counter",
		       "Frames a capture wrote to its files" },
	[G_BYTES] = { "vrio_ioserver_capture_bytes_total", "counter",
		      "Bytes a capture wrote to its files, pcap records included" },
	[G_FILES] = { "vrio_ioserver_capture_files_total", "counter",
		      "Files a capture opened (rotation starts the next)" },
	[G_ERRORS] = { "vrio_ioserver_capture_errors_total", "counter",
		       "Writes and opens of a capture's files that failed" },
	[G_LOST] = { "vrio_ioserver_capture_lost_frames_total", "counter",
		     "Frames a capture queued but could not write (a failed file)" },
	[G_QUEUED] = { "vrio_ioserver_capture_queued_bytes", "gauge",
		       "Bytes waiting in a capture's ring for its writer" },
};

static double cap_gauge(struct ios_stage *st, unsigned i)
{
	struct ios_pcap_stats s;

	ios_pcap_get_stats(to_cap(st)->pcap, &s);
	switch (i) {
	case G_FRAMES:
		return (double)s.frames;
	case G_BYTES:
		return (double)s.bytes;
	case G_FILES:
		return (double)s.files;
	case G_ERRORS:
		return (double)s.errors;
	case G_LOST:
		return (double)s.lost;
	default:
		return (double)s.queued;
	}
}

const struct ios_stage_ops ios_stage_capture_ops = {
	.kind = VRIO_STAGE_CAPTURE,
	.create = cap_create,
	.retune = cap_retune,
	.destroy = cap_destroy,
	.request = cap_request,
	.gauges = cap_gauges,
	.n_gauges = N_GAUGES,
	.gauge = cap_gauge,
};
