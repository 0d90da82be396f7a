/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * XTS-AES-256 with plain64 IVs over crypto-sectors (xts.h), through
 * OpenSSL's EVP (AES-NI where the CPU has it), and the key file it reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "xts.h"

struct ios_xts {
	EVP_CIPHER_CTX *enc, *dec;
	uint8_t *key;		/* a locked page; IOS_XTS_KEY_LEN bytes used */
	size_t key_map;		/* its mapping's length */
	unsigned sector_size;
	unsigned iv_shift;	/* offset >> iv_shift is the IV's sector number */
};

/* ---- the key, in locked memory ---- */

static int key_page(uint8_t **out, size_t *len, char *why, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	uint8_t *p;
	int err;

	*out = NULL;
	*len = pg > 0 ? (size_t)pg : 4096;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = errno;
		snprintf(why, n, "no memory for the key: %s", strerror(err));
		return -err;
	}
	if (mlock(p, *len) < 0) {
		err = errno;
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			snprintf(why, n, "cannot lock the key in memory: %s (RLIMIT_MEMLOCK is %llu bytes; raise LimitMEMLOCK= or ulimit -l)",
				 strerror(err), (unsigned long long)rl.rlim_cur);
		else
			snprintf(why, n, "cannot lock the key in memory: %s", strerror(err));
		munmap(p, *len);
		return -err;
	}
	/* Best effort: neither a core dump nor a forked child gets it. */
	(void)madvise(p, *len, MADV_DONTDUMP);
	(void)madvise(p, *len, MADV_WIPEONFORK);
	*out = p;
	return 0;
}

static void key_page_free(uint8_t *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	munlock(p, len);
	munmap(p, len);
}

/* The key file's rules (xts.h), checked on the file opened, then its 64
 * bytes read into key. */
static int key_read(const char *path, uint8_t *key, char *why, size_t n)
{
	struct stat st;
	size_t got = 0;
	ssize_t r;
	uint8_t extra;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err = errno;
		snprintf(why, n, "key file %s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		snprintf(why, n, "key file %s: %s", path, strerror(err));
		goto err;
	}
	err = EACCES;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "key file %s is not a regular file", path);
		err = EINVAL;
		goto err;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why, n, "key file %s has mode %04o: group and others must have no access (chmod 600 it)",
			 path, (unsigned)(st.st_mode & 07777));
		goto err;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(why, n, "key file %s is owned by uid %u, not by root or this daemon's user (uid %u)",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto err;
	}
	if (st.st_size != IOS_XTS_KEY_LEN) {
		snprintf(why, n, "key file %s holds %lld bytes: an aes-xts-plain64 key file holds exactly the raw %u-byte key",
			 path, (long long)st.st_size, IOS_XTS_KEY_LEN);
		err = EINVAL;
		goto err;
	}
	while (got < IOS_XTS_KEY_LEN) {
		r = read(fd, key + got, IOS_XTS_KEY_LEN - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	/* Exactly 64 bytes, even if the file changed since fstat. */
	if (got != IOS_XTS_KEY_LEN || read(fd, &extra, 1) != 0) {
		snprintf(why, n, "key file %s changed while it was read, or could not be read", path);
		err = EIO;
		goto err;
	}
	close(fd);
	return 0;
err:
	close(fd);
	return -err;
}

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
	rc = key_page(&x->key, &x->key_map, why, n);
	if (rc < 0)
		goto err;
	rc = key_read(o->key_file, x->key, why, n);
	if (rc < 0)
		goto err;
	x->enc = cipher_ctx(x->key, 1);
	x->dec = cipher_ctx(x->key, 0);
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
	key_page_free(x->key, x->key_map);
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
