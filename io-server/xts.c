/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * XTS-AES-256 with plain64 IVs over crypto-sectors (xts.h), through
 * OpenSSL's EVP (AES-NI where the CPU has it), over a key from keyfile.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "keyfile.h"
#include "xts.h"

struct ios_xts {
	EVP_CIPHER_CTX *enc, *dec;
	struct vrio_key *key;	/* IOS_XTS_KEY_LEN bytes in a locked page */
	unsigned sector_size;
	unsigned iv_shift;	/* offset >> iv_shift is the IV's sector number */
};

/* ---- contexts ---- */

static EVP_CIPHER_CTX *cipher_ctx(const uint8_t *key, int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	if (!c)
		return NULL;
	if (EVP_CipherInit_ex(c, EVP_aes_256_xts(), NULL, key, NULL, enc) != 1) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	return c;
}

int ios_xts_open(const struct ios_xts_opts *o, struct ios_xts **out, char *why, size_t n)
{
	struct ios_xts *x;
	int rc;

	*out = NULL;
	if (o->sector_size != 512 && o->sector_size != 4096) {
		snprintf(why, n, "sector_size %u: 512 or 4096", o->sector_size);
		return -EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	x->sector_size = o->sector_size;
	x->iv_shift = o->sector_size == 4096 && o->iv_large_sectors ? 12 : 9;
	rc = vrio_key_load(o->key_file, IOS_XTS_KEY_LEN, IOS_XTS_KEY_LEN,
			   "an aes-xts-plain64 key file holds exactly the raw 64-byte key", &x->key,
			   why, n);
	if (rc < 0)
		goto err;
	x->enc = cipher_ctx(x->key->bytes, 1);
	x->dec = cipher_ctx(x->key->bytes, 0);
	if (!x->enc || !x->dec) {
		/* OpenSSL refuses a key whose two halves are equal in FIPS
		 * mode, as the kernel's XTS does. */
		snprintf(why, n, "key file %s: OpenSSL refuses the key for aes-256-xts (are its two halves equal?)",
			 o->key_file);
		rc = -EINVAL;
		goto err;
	}
	*out = x;
	return 0;
err:
	ios_xts_close(x);
	return rc;
}

void ios_xts_close(struct ios_xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->enc);	/* cleanses the key schedules */
	EVP_CIPHER_CTX_free(x->dec);
	vrio_key_free(x->key);
	free(x);
}

unsigned ios_xts_sector_size(const struct ios_xts *x)
{
	return x->sector_size;
}

/* ---- the data path ---- */

int ios_xts_crypt(struct ios_xts *x, bool encrypt, uint8_t *buf, size_t len, uint64_t offset)
{
	EVP_CIPHER_CTX *c = encrypt ? x->enc : x->dec;
	const size_t ss = x->sector_size;
	uint8_t iv[16] = { 0 };
	uint64_t sector;
	int outl;

	if (offset % ss || len % ss)
		return -EINVAL;
	sector = offset >> x->iv_shift;
	for (size_t done = 0; done < len; done += ss) {
		/* plain64: little-endian, whatever the host. */
		for (unsigned i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector >> (8 * i));
		if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1 ||
		    EVP_CipherUpdate(c, buf + done, &outl, buf + done, (int)ss) != 1 ||
		    (size_t)outl != ss)
			return -EIO;
		sector += ss >> x->iv_shift;
	}
	return 0;
}
