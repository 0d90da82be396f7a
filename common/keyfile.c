/* SPDX-License-Identifier: BSD-3-Clause */
/* Secret key files, read into locked memory (keyfile.h). */
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

#include "keyfile.h"

/* A locked page of at least len bytes, out of core dumps and forks. */
static int key_page(size_t len, uint8_t **out, size_t *map, char *why, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t psz = pg > 0 ? (size_t)pg : 4096;
	struct rlimit rl;
	uint8_t *p;
	int err;

	*out = NULL;
	*map = (len + psz - 1) / psz * psz;
	p = mmap(NULL, *map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = errno;
		snprintf(why, n, "no memory for the key: %s", strerror(err));
		return -err;
	}
	if (mlock(p, *map) < 0) {
		err = errno;
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			snprintf(why, n, "cannot lock the key in memory: %s (RLIMIT_MEMLOCK is %llu bytes; raise LimitMEMLOCK= or ulimit -l)",
				 strerror(err), (unsigned long long)rl.rlim_cur);
		else
			snprintf(why, n, "cannot lock the key in memory: %s", strerror(err));
		munmap(p, *map);
		return -err;
	}
	/* Best effort: neither a core dump nor a forked child gets it. */
	(void)madvise(p, *map, MADV_DONTDUMP);
	(void)madvise(p, *map, MADV_WIPEONFORK);
	*out = p;
	return 0;
}

void vrio_key_free(struct vrio_key *k)
{
	if (!k)
		return;
	if (k->page) {
		OPENSSL_cleanse(k->page, k->map);
		munlock(k->page, k->map);
		munmap(k->page, k->map);
	}
	free(k);
}

/* The file's rules, checked on the file opened; then its bytes. */
static int key_read(const char *path, int fd, size_t min, size_t max, const char *expect,
		    struct vrio_key *k, char *why, size_t n)
{
	struct stat st;
	size_t got = 0, want;
	uint8_t extra;
	ssize_t r;
	int rc;

	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, n, "key file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "key file %s is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why, n, "key file %s has mode %04o: group and others must have no access (chmod 600 it)",
			 path, (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(why, n, "key file %s is owned by uid %u, not by root or this daemon's user (uid %u)",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EACCES;
	}
	if (st.st_size < 0 || (size_t)st.st_size < min || (size_t)st.st_size > max) {
		snprintf(why, n, "key file %s holds %lld bytes: %s", path, (long long)st.st_size,
			 expect);
		return -EINVAL;
	}
	want = (size_t)st.st_size;
	rc = key_page(want, &k->page, &k->map, why, n);
	if (rc < 0)
		return rc;
	while (got < want) {
		r = read(fd, k->page + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	/* Exactly what fstat said, even if the file changed since. */
	if (got != want || read(fd, &extra, 1) != 0) {
		snprintf(why, n, "key file %s changed while it was read, or could not be read", path);
		return -EIO;
	}
	k->bytes = k->page;
	k->len = want;
	return 0;
}

int vrio_key_load(const char *path, size_t min, size_t max, const char *expect,
		  struct vrio_key **out, char *why, size_t n)
{
	struct vrio_key *k;
	int fd, rc;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(why, n, "key file %s: out of memory", path);
		return -ENOMEM;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, n, "key file %s: %s", path, strerror(-rc));
		free(k);
		return rc;
	}
	rc = key_read(path, fd, min, max, expect, k, why, n);
	close(fd);
	if (rc < 0) {
		vrio_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

int vrio_key_equal(const struct vrio_key *a, const struct vrio_key *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && CRYPTO_memcmp(a->bytes, b->bytes, a->len) == 0;
}
