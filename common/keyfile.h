/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Secret key files, for both daemons (a host's authentication key, a
 * disk's encryption key). The rules, checked on the file opened:
 *
 *   - a regular file, owned by root or by the daemon's own user;
 *   - group and others have no access at all (chmod 600);
 *   - its size is within what the caller asks.
 *
 * The bytes are read straight into a locked page that core dumps and
 * forked children leave out, stay there for the key's life and are wiped
 * when it is freed. No message ever shows a byte of a key.
 */
#ifndef VRIO_COMMON_KEYFILE_H
#define VRIO_COMMON_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

struct vrio_key {
	const uint8_t *bytes;	/* in the locked page */
	size_t len;
	/* private */
	uint8_t *page;
	size_t map;
};

/*
 * Reads path, which must hold min..max bytes (`expect` says what it should
 * hold, for the message when it does not). On an error returns -errno and
 * one sentence in why, naming the file.
 */
int vrio_key_load(const char *path, size_t min, size_t max, const char *expect,
		  struct vrio_key **out, char *why, size_t n);
/* Wipes and frees; NULL is a no-op. */
void vrio_key_free(struct vrio_key *k);
/* Same length and bytes (in constant time over the bytes). */
int vrio_key_equal(const struct vrio_key *a, const struct vrio_key *b);

#endif
