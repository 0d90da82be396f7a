/* SPDX-License-Identifier: BSD-3-Clause */
/* The block backend registry, the one dispatch point for data ops, and the
 * channel queue of backends that finish an io at submit time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bdev.h"
#include "log.h"

#define IOS_BDEV_MAX 8

static const struct ios_bdev_ops *bdev_registry[IOS_BDEV_MAX];
static unsigned bdev_count;

int ios_bdev_register(const struct ios_bdev_ops *ops)
{
	unsigned i;

	if (!ops || !ops->name || !ops->open || !ops->close || !ops->chan_open ||
	    !ops->chan_close || !ops->read || !ops->write || !ops->flush || !ops->poll) {
		VRIO_ERR("bdev %s: a mandatory operation is missing",
			 ops && ops->name ? ops->name : "(unnamed)");
		return -EINVAL;
	}
	if (ops->kind == VRIO_BACKEND_NONE) {
		VRIO_ERR("bdev %s: no backend kind", ops->name);
		return -EINVAL;
	}
	for (i = 0; i < bdev_count; i++) {
		if (!strcmp(bdev_registry[i]->name, ops->name) ||
		    bdev_registry[i]->kind == ops->kind) {
			VRIO_ERR("bdev %s: already registered", ops->name);
			return -EEXIST;
		}
	}
	if (bdev_count == IOS_BDEV_MAX) {
		VRIO_ERR("bdev %s: registry is full", ops->name);
		return -ENOSPC;
	}
	bdev_registry[bdev_count++] = ops;
	return 0;
}

int ios_bdev_register_builtin(void)
{
	static const struct ios_bdev_ops *const builtin[] = {
		&ios_bdev_file_ops,
		&ios_bdev_ram_ops,
		&ios_bdev_null_ops,
	};
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		if (ios_bdev_find(builtin[i]->kind) == builtin[i])
			continue;
		rc = ios_bdev_register(builtin[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

const struct ios_bdev_ops *ios_bdev_find(enum vrio_backend_kind kind)
{
	unsigned i;

	for (i = 0; i < bdev_count; i++)
		if (bdev_registry[i]->kind == kind)
			return bdev_registry[i];
	return NULL;
}

int ios_bdev_open(const struct vrio_topo_device *td, struct ios_bdev **out)
{
	const struct ios_bdev_ops *ops = ios_bdev_find(td->backend.kind);
	int rc;

	if (!ops) {
		VRIO_ERR("%s: no backend of kind %d is compiled in", td->name,
			 (int)td->backend.kind);
		return -ENOTSUP;
	}
	rc = ops->open(td->name, td, out);
	if (rc < 0)
		return rc;
	(*out)->ops = ops;
	(*out)->name = td->name;
	return 0;
}

int ios_bdev_submit(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	const struct ios_bdev_ops *ops = ch->bdev->ops;

	io->result = 0;
	io->lent = false;
	io->done = 0;
	io->next = NULL;
	switch (io->op) {
	case IOS_BDEV_READ:
		return ops->read(ch, io);
	case IOS_BDEV_WRITE:
		return ops->write(ch, io);
	case IOS_BDEV_FLUSH:
		return ops->flush(ch, io);
	case IOS_BDEV_DISCARD:
		return ops->discard ? ops->discard(ch, io) : -EOPNOTSUPP;
	case IOS_BDEV_WRITE_ZEROES:
		return ops->write_zeroes ? ops->write_zeroes(ch, io) : -EOPNOTSUPP;
	}
	return -EINVAL;
}

/* ---- the queue of backends that finish at submit time ---- */

struct bdev_syncq {
	struct ios_bdev_chan base;
	struct ios_bdev_io *head, *tail;	/* done, not yet reported */
};

static struct bdev_syncq *to_syncq(struct ios_bdev_chan *ch)
{
	return container_of(ch, struct bdev_syncq, base);
}

int ios_bdev_syncq_open(struct ios_bdev *bdev, unsigned depth, struct ios_bdev_chan **out)
{
	struct bdev_syncq *q = calloc(1, sizeof(*q));

	(void)depth;
	if (!q)
		return -ENOMEM;
	q->base.bdev = bdev;
	*out = &q->base;
	return 0;
}

void ios_bdev_syncq_close(struct ios_bdev_chan *ch)
{
	free(to_syncq(ch));
}

void ios_bdev_syncq_done(struct ios_bdev_chan *ch, struct ios_bdev_io *io, int result)
{
	struct bdev_syncq *q = to_syncq(ch);

	io->result = result;
	io->next = NULL;
	if (q->tail)
		q->tail->next = io;
	else
		q->head = io;
	q->tail = io;
}

int ios_bdev_syncq_poll(struct ios_bdev_chan *ch, unsigned budget)
{
	struct bdev_syncq *q = to_syncq(ch);
	struct ios_bdev_io *io;
	int n = 0;

	while (q->head && (unsigned)n < budget) {
		io = q->head;
		q->head = io->next;
		if (!q->head)
			q->tail = NULL;
		io->next = NULL;
		n++;
		io->cb(io);
	}
	return n;
}
