/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * crypt: encryption at rest, byte for byte what dm-crypt's plain mode
 * with aes-xts-plain64 writes (xts.h), so that the backing file opens
 * with cryptsetup. Writes are encrypted in place in the request's buffer
 * on the way to the backend; reads are decrypted in place on the way
 * back, when the backend said OK. Discards pass (what a discarded range
 * reads as afterwards decrypts to noise, as under dm-crypt with
 * allow_discards). Write-zeroes cannot be honoured, as the backend would
 * store zeroes that decrypt to noise: they are answered UNSUPP, and Linux
 * then writes zeroes itself. With 4096-byte crypto-sectors a request not
 * aligned to them is answered IOERR, as dm-crypt does.
 *
 * The key never leaves xts.c: this file keeps only the settings, to tell
 * a reload whether it may keep the stage (same file and sectors) or must
 * make a new one, which reads the key file again.
 */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "log.h"
#include "xts.h"

struct crypt_cfg {
	char *key_file;
	unsigned sector_size;
	bool iv_large_sectors;
};

struct crypt {
	struct ios_stage base;
	struct crypt_cfg cfg;
	struct ios_xts *xts;	/* home reactor on the data path */
};

static struct crypt *to_crypt(struct ios_stage *st)
{
	return container_of(st, struct crypt, base);
}

static bool cfg_same(const struct crypt_cfg *c, const struct vrio_topo_crypt *t)
{
	return !strcmp(c->key_file, t->key_file) && c->sector_size == t->sector_size &&
	       c->iv_large_sectors == t->iv_large_sectors;
}

/* Ends req here with `status`; the stages before see it come back. */
static enum ios_stage_verdict refuse(struct ios_stage *st, struct ios_req *req, uint8_t status)
{
	req->u.blk.status = status;
	vrio_counter_add(&st->st.drops[IOS_STAGE_DROP_UNSUPP], 1);
	ios_chain_end(req);
	return IOS_STAGE_HOLD;
}

static bool aligned(const struct crypt *c, const struct ios_blk_req *b)
{
	uint64_t ss = c->cfg.sector_size;

	return (b->sector * IOS_SECTOR_SIZE) % ss == 0 && b->len % ss == 0;
}

static enum ios_stage_verdict crypt_request(struct ios_stage *st, struct ios_req *req)
{
	struct crypt *c = to_crypt(st);
	struct ios_blk_req *b = &req->u.blk;

	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, b->len);
	switch (b->op) {
	case IOS_BLK_OP_WRITE_ZEROES:
		return refuse(st, req, VIRTIO_BLK_S_UNSUPP);
	case IOS_BLK_OP_READ:
	case IOS_BLK_OP_WRITE:
		if (!aligned(c, b)) {
			VRIO_WARN_RL("%s: crypt: %s of %u bytes at sector %llu is not aligned to its %u-byte sectors: IOERR",
				     st->d->name, ios_blk_op_name(b->op), b->len,
				     (unsigned long long)b->sector, c->cfg.sector_size);
			return refuse(st, req, VIRTIO_BLK_S_IOERR);
		}
		if (b->op == IOS_BLK_OP_WRITE &&
		    ios_xts_crypt(c->xts, true, req->buf, b->len, b->sector * IOS_SECTOR_SIZE) < 0) {
			VRIO_ERR_RL("%s: crypt: encrypting %u bytes at sector %llu failed: IOERR",
				    st->d->name, b->len, (unsigned long long)b->sector);
			return refuse(st, req, VIRTIO_BLK_S_IOERR);
		}
		return IOS_STAGE_PASS;
	default:
		return IOS_STAGE_PASS;
	}
}

static enum ios_stage_verdict crypt_completion(struct ios_stage *st, struct ios_req *req)
{
	struct crypt *c = to_crypt(st);
	struct ios_blk_req *b = &req->u.blk;

	if (b->op != IOS_BLK_OP_READ || b->status != VIRTIO_BLK_S_OK)
		return IOS_STAGE_PASS;
	if (ios_xts_crypt(c->xts, false, req->buf, b->len, b->sector * IOS_SECTOR_SIZE) < 0) {
		VRIO_ERR_RL("%s: crypt: decrypting %u bytes at sector %llu failed: IOERR",
			    st->d->name, b->len, (unsigned long long)b->sector);
		b->status = VIRTIO_BLK_S_IOERR;
	}
	return IOS_STAGE_PASS;
}

static void crypt_free(struct crypt *c)
{
	ios_xts_close(c->xts);
	free(c->cfg.key_file);
	free(c);
}

static int crypt_create(struct ios_device *d, const struct vrio_topo_stage *ts,
			struct ios_stage **out, char *why, size_t n)
{
	const struct vrio_topo_crypt *t = &ts->u.crypt;
	const struct ios_xts_opts o = {
		.key_file = t->key_file,
		.sector_size = t->sector_size,
		.iv_large_sectors = t->iv_large_sectors,
	};
	struct crypt *c = calloc(1, sizeof(*c));
	char reason[512];
	int rc;

	if (!c)
		return -ENOMEM;
	c->cfg.key_file = strdup(t->key_file);
	c->cfg.sector_size = t->sector_size;
	c->cfg.iv_large_sectors = t->iv_large_sectors;
	if (!c->cfg.key_file) {
		crypt_free(c);
		return -ENOMEM;
	}
	rc = ios_xts_open(&o, &c->xts, reason, sizeof(reason));
	if (rc < 0) {
		snprintf(why, n, "device '%s': crypt: %s", d->name, reason);
		crypt_free(c);
		return rc;
	}
	VRIO_INFO("%s: crypt: aes-xts-plain64, %u-byte sectors%s, key from %s", d->name,
		  t->sector_size, t->iv_large_sectors ? ", IVs in 4096-byte sectors" : "",
		  t->key_file);
	*out = &c->base;
	return 0;
}

/* Nothing to tune: other settings (another key file, other sectors) are
 * another stage, which reads its key afresh. */
static int crypt_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	return cfg_same(&to_crypt(st)->cfg, &ts->u.crypt) ? 0 : -EPERM;
}

static void crypt_destroy(struct ios_stage *st)
{
	crypt_free(to_crypt(st));
}

const struct ios_stage_ops ios_stage_crypt_ops = {
	.kind = VRIO_STAGE_CRYPT,
	.create = crypt_create,
	.retune = crypt_retune,
	.destroy = crypt_destroy,
	.request = crypt_request,
	.completion = crypt_completion,
};
