/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * XTS-AES-256 over a disk's crypto-sectors, as dm-crypt's plain mode
 * writes them (cryptsetup open --type plain --cipher aes-xts-plain64
 * --key-size 512, optionally --sector-size 4096 [--iv-large-sectors]):
 *
 *   - each crypto-sector (512 or 4096 bytes) is one XTS data unit;
 *   - its IV (tweak) is plain64: the sector number as a 64-bit
 *     little-endian integer, zero-padded to 16 bytes; the sector is the
 *     512-byte one (offset / 512) unless iv_large_sectors, where it counts
 *     crypto-sectors (offset / 4096).
 *
 * The key comes from a file that holds exactly the raw 64-byte key and
 * that only root (or the daemon's own user) may read. It is read straight
 * into a locked page that core dumps and forks leave out, stays there for
 * the context's life and is wiped when it goes. OpenSSL keeps its AES key
 * schedules in its cipher contexts and cleanses them when they are freed.
 *
 * A context is single-threaded: one EVP_CIPHER_CTX per direction.
 */
#ifndef VRIO_IOSERVER_XTS_H
#define VRIO_IOSERVER_XTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IOS_XTS_KEY_LEN	64u	/* two AES-256 keys: data, then tweak */

struct ios_xts;

struct ios_xts_opts {
	const char *key_file;	/* absolute path */
	unsigned sector_size;	/* 512 or 4096 */
	bool iv_large_sectors;	/* 4096: the IV counts 4096-byte sectors */
};

/* Reads and checks the key file and sets up the ciphers. On an error
 * returns -errno and says why in `why` (naming the file, never a byte of
 * a key). */
int ios_xts_open(const struct ios_xts_opts *o, struct ios_xts **out, char *why, size_t n);
/* Wipes the key and frees the context. NULL is a no-op. */
void ios_xts_close(struct ios_xts *x);

unsigned ios_xts_sector_size(const struct ios_xts *x);

/*
 * Encrypts (or decrypts) buf in place: len bytes that start at byte
 * `offset` of the disk. offset and len must be multiples of the
 * crypto-sector size (-EINVAL otherwise, buf untouched); -EIO if OpenSSL
 * fails (buf is then partly transformed).
 */
int ios_xts_crypt(struct ios_xts *x, bool encrypt, uint8_t *buf, size_t len, uint64_t offset);

#endif
