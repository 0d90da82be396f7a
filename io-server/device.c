/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device table: the topology's blk devices that this io-server serves,
 * in topology order. A device's index is its dev_id on the wire.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "log.h"

static bool device_is_ours(const struct ios_server *srv, const struct vrio_topo_device *td)
{
	return td->io_server == srv->self;
}

int ios_devices_open(struct ios_server *srv)
{
	const struct vrio_topology *t = srv->topo;
	const struct vrio_topo_device *td;
	char escaped[160];
	struct ios_device *d;
	uint32_t n = 0;
	size_t i;
	int rc;

	for (i = 0; i < t->n_devices; i++) {
		td = &t->devices[i];
		if (!device_is_ours(srv, td))
			continue;
		if (td->type == VRIO_DEV_BLK)
			n++;
		else
			VRIO_NOTICE("%s: a %s device: this io-server serves blk devices only and will refuse its attach",
				    td->name, vrio_dev_type_name(td->type));
	}
	srv->devs = calloc(n ? n : 1, sizeof(*srv->devs));
	if (!srv->devs)
		return -ENOMEM;
	for (i = 0; i < t->n_devices; i++) {
		td = &t->devices[i];
		if (!device_is_ours(srv, td) || td->type != VRIO_DEV_BLK)
			continue;
		d = &srv->devs[srv->n_devs];
		d->id = srv->n_devs;
		d->topo = td;
		if (td->queues == 0 || td->queues > UINT16_MAX || td->queue_size == 0 ||
		    td->queue_size > UINT16_MAX) {
			VRIO_ERR("%s: %u queues of %u entries is not a device shape", td->name,
				 td->queues, td->queue_size);
			rc = -EINVAL;
			goto err;
		}
		rc = ios_bdev_open(td, &d->bdev);
		if (rc < 0)
			goto err;
		srv->n_devs++;
		ios_blk_dev_init(&d->blk, td->name, d->bdev, td->queues, td->queue_size);
		d->max_outstanding = td->queues * td->queue_size;
		vrio_mw_escape(escaped, sizeof(escaped), td->name);
		snprintf(d->label, sizeof(d->label), "device=\"%s\"", escaped);
		VRIO_INFO("%s: dev %u, %s backend, %llu sectors of %u bytes%s, %u queues of %u",
			  td->name, d->id, d->bdev->ops->name,
			  (unsigned long long)d->blk.capacity, IOS_SECTOR_SIZE,
			  td->read_only ? ", read-only" : "", td->queues, td->queue_size);
	}
	return 0;

err:
	ios_devices_close(srv);
	return rc;
}

void ios_devices_close(struct ios_server *srv)
{
	uint32_t i;

	for (i = 0; i < srv->n_devs; i++)
		ios_bdev_close(srv->devs[i].bdev);
	free(srv->devs);
	srv->devs = NULL;
	srv->n_devs = 0;
}

struct ios_device *ios_device_find(struct ios_server *srv, const char *name)
{
	uint32_t i;

	for (i = 0; i < srv->n_devs; i++)
		if (!strcmp(srv->devs[i].topo->name, name))
			return &srv->devs[i];
	return NULL;
}
