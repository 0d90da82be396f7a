/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device table: the topology's devices that this io-server serves, in
 * topology order. A device's index is its dev_id on the wire.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "vrio.pb-c.h"
#include "log.h"

static bool device_is_ours(const struct ios_server *srv, const struct vrio_topo_device *td)
{
	return td->io_server == srv->self;
}

static int device_open_blk(struct ios_device *d)
{
	const struct vrio_topo_device *td = d->topo;
	int rc;

	rc = ios_bdev_open(td, &d->bdev);
	if (rc < 0)
		return rc;
	ios_blk_dev_init(&d->blk, td->name, d->bdev, td->queues, td->queue_size);
	d->max_outstanding = td->queues * td->queue_size;
	VRIO_INFO("%s: dev %u, %s backend, %llu sectors of %u bytes%s, %u queues of %u",
		  td->name, d->id, d->bdev->ops->name, (unsigned long long)d->blk.capacity,
		  IOS_SECTOR_SIZE, td->read_only ? ", read-only" : "", td->queues,
		  td->queue_size);
	return 0;
}

static int device_open_net(struct ios_device *d)
{
	const struct vrio_topo_device *td = d->topo;

	if (ios_net_dev_init(&d->net, td->mac, td->network->mtu) < 0) {
		VRIO_ERR("%s: cannot describe a net device with mac %s", td->name, td->mac);
		return -EINVAL;
	}
	d->port = calloc(1, sizeof(*d->port));
	if (!d->port)
		return -ENOMEM;
	d->port->dev = d;
	d->port->reactor = -1;
	memcpy(d->port->mac, d->net.mac, sizeof(d->port->mac));
	d->max_outstanding = IOS_NET_BACKLOG;
	VRIO_INFO("%s: dev %u, net on network %s, mac %s, queue size %u", td->name, d->id,
		  td->network->name, td->mac, td->queue_size);
	return 0;
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

	for (i = 0; i < t->n_devices; i++)
		n += device_is_ours(srv, &t->devices[i]);
	srv->devs = calloc(n ? n : 1, sizeof(*srv->devs));
	if (!srv->devs)
		return -ENOMEM;
	for (i = 0; i < t->n_devices; i++) {
		td = &t->devices[i];
		if (!device_is_ours(srv, td))
			continue;
		d = &srv->devs[srv->n_devs];
		d->id = srv->n_devs;
		d->topo = td;
		d->type = td->type;
		if (td->queues == 0 || td->queues > UINT16_MAX || td->queue_size == 0 ||
		    td->queue_size > UINT16_MAX) {
			VRIO_ERR("%s: %u queues of %u entries is not a device shape", td->name,
				 td->queues, td->queue_size);
			rc = -EINVAL;
			goto err;
		}
		rc = td->type == VRIO_DEV_NET ? device_open_net(d) : device_open_blk(d);
		if (rc < 0)
			goto err;
		srv->n_devs++;
		vrio_mw_escape(escaped, sizeof(escaped), td->name);
		snprintf(d->label, sizeof(d->label), "device=\"%s\"", escaped);
	}
	return 0;

err:
	free(srv->devs[srv->n_devs].port);
	ios_devices_close(srv);
	return rc;
}

void ios_devices_close(struct ios_server *srv)
{
	uint32_t i;

	for (i = 0; i < srv->n_devs; i++) {
		if (srv->devs[i].bdev)
			ios_bdev_close(srv->devs[i].bdev);
		free(srv->devs[i].port);
	}
	free(srv->devs);
	srv->devs = NULL;
	srv->n_devs = 0;
}

void ios_device_describe(const struct ios_device *d, Vrio__AttachReply *ar)
{
	ar->dev_id = d->id;
	ar->queue_size = d->topo->queue_size;
	if (d->type == VRIO_DEV_NET) {
		ar->type = VRIO__DEVICE_TYPE__DEVICE_TYPE_NET;
		ar->features = d->net.features;
		ar->config.data = (uint8_t *)d->net.config;
		ar->config.len = sizeof(d->net.config);
		ar->num_queues = d->net.num_queues;
		ar->max_request = d->net.max_request;
		return;
	}
	ar->type = VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK;
	ar->features = d->blk.features;
	ar->config.data = (uint8_t *)d->blk.config;
	ar->config.len = sizeof(d->blk.config);
	ar->num_queues = d->blk.num_queues;
	ar->queue_size = d->blk.queue_size;
	ar->max_request = d->blk.max_request;
}

struct ios_device *ios_device_find(struct ios_server *srv, const char *name)
{
	uint32_t i;

	for (i = 0; i < srv->n_devs; i++)
		if (!strcmp(srv->devs[i].topo->name, name))
			return &srv->devs[i];
	return NULL;
}
