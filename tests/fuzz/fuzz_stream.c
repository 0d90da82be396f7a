/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The bytes a tcp or tls peer sends, through the stream framing both
 * share (transport/stream.h). The input's first three bytes pick how the
 * stream is cut into reads, the receive buffer's size and the poll budget;
 * the rest is the stream.
 *
 * Properties: the frames delivered are exactly those a plain walk over the
 * whole stream finds, in order, each payload the stream's bytes; a bad
 * header ends delivery with its decode error once its 32 bytes are in, and
 * a frame cut short by the end of the stream is never delivered. Each
 * delivered frame is queued again through a send buffer and pushed in
 * pieces: what comes out is the stream's prefix of whole frames.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "fuzz_input.h"
#include "stream.h"

struct pipe {
	const uint8_t *p;
	size_t len, off;
	uint8_t cut;		/* read pieces: 1 + cut * calls % 251 */
	unsigned calls;
};

struct out {
	uint8_t *buf;
	size_t len, cap;
};

struct state {
	const uint8_t *stream;
	size_t off;		/* where the next frame starts in the stream */
	unsigned frames;
	struct vrio_sbuf tx;
	struct vrio_conn *c;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static ssize_t pipe_read(void *arg, void *buf, size_t len)
{
	struct pipe *p = arg;
	size_t n = 1 + (size_t)p->cut * ++p->calls % 251;

	FUZZ_CHECK(len > 0, "a read of no room");
	if (p->off == p->len)
		return 0;
	if (n > len)
		n = len;
	if (n > p->len - p->off)
		n = p->len - p->off;
	memcpy(buf, p->p + p->off, n);
	p->off += n;
	return (ssize_t)n;
}

static ssize_t out_write(void *arg, const void *buf, size_t len)
{
	struct out *o = arg;

	/* A socket that takes at most 100 bytes at a time. */
	if (len > 100)
		len = 100;
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		o->buf = realloc(o->buf, o->cap);
		FUZZ_CHECK(o->buf != NULL, "realloc");
	}
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
	return (ssize_t)len;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f, const void *payload)
{
	struct state *s = arg;
	struct vrio_frame ref;
	struct iovec iov[2];

	FUZZ_CHECK(vrio_frame_decode(s->stream + s->off, &ref) == 0, "frame %u: not the stream's",
		   s->frames);
	FUZZ_CHECK(ref.len == f->len && ref.id == f->id && ref.type == f->type,
		   "frame %u: another header", s->frames);
	FUZZ_CHECK(!memcmp(payload, s->stream + s->off + VRIO_FRAME_HDR_LEN, f->len),
		   "frame %u: another payload", s->frames);
	s->off += VRIO_FRAME_HDR_LEN + f->len;
	s->frames++;
	iov[0] = (struct iovec){ (void *)payload, f->len / 2 };
	iov[1] = (struct iovec){ (uint8_t *)payload + f->len / 2, f->len - f->len / 2 };
	FUZZ_CHECK(vrio_sbuf_put_frame(&s->tx, c, f, iov, 2) == 0, "frame %u: not queued",
		   s->frames);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vrio_conn c = { 0 };
	struct vrio_rbuf rx;
	struct pipe p;
	struct out o = { 0 };
	struct state s = { 0 };
	struct vrio_frame f;
	unsigned budget, ref_frames = 0;
	size_t off = 0;
	int rc, ref_err = 0;

	if (size < 3)
		return 0;
	p = (struct pipe){ .p = data + 3, .len = size - 3, .cut = data[0] };
	budget = 1 + data[2] % 8;
	s.stream = p.p;
	s.c = &c;
	/* The walk over the whole stream. */
	while (p.len - off >= VRIO_FRAME_HDR_LEN) {
		ref_err = vrio_frame_decode(p.p + off, &f);
		if (ref_err < 0 || p.len - off - VRIO_FRAME_HDR_LEN < f.len)
			break;
		off += VRIO_FRAME_HDR_LEN + f.len;
		ref_frames++;
	}
	FUZZ_CHECK(vrio_rbuf_init(&rx, 32 + data[1] * 16) == 0, "rbuf");
	FUZZ_CHECK(vrio_sbuf_init(&s.tx, 64, 2 * (VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD)) == 0,
		   "sbuf");
	/* tcp's poll, one read a round. */
	for (;;) {
		rc = vrio_rbuf_deliver(&rx, &c, on_frame, &s, budget);
		if (rc < 0)
			break;
		FUZZ_CHECK((unsigned)rc <= budget, "%d frames on a budget of %u", rc, budget);
		if ((unsigned)rc == budget)
			continue;
		FUZZ_CHECK(rx.want > rx.tail - rx.head, "a whole frame left behind");
		rc = vrio_rbuf_fill(&rx, &c, pipe_read, &p);
		FUZZ_CHECK(rc >= 0, "fill: %d", rc);
		if (rc == 0)
			break;
	}
	FUZZ_CHECK(s.frames == ref_frames, "%u frames, the walk found %u", s.frames, ref_frames);
	FUZZ_CHECK(rc == (ref_err < 0 ? ref_err : 0), "ended with %d, the walk with %d", rc, ref_err);
	FUZZ_CHECK(c.stats.frames_rx == ref_frames, "frames_rx %llu",
		   (unsigned long long)c.stats.frames_rx);
	FUZZ_CHECK(vrio_sbuf_push(&s.tx, out_write, &o) == 0, "push");
	FUZZ_CHECK(o.len == off && (!off || !memcmp(o.buf, p.p, off)),
		   "sent again %zu bytes, not the stream's %zu", o.len, off);
	vrio_rbuf_fini(&rx);
	vrio_sbuf_fini(&s.tx);
	free(o.buf);
	return 0;
}
