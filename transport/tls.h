/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLS 1.3 over a tcp connection (tls.c), for confidentiality: a layer
 * that takes over the socket of the tcp connection it wraps (which must
 * be fresh: nothing sent or received yet) and carries the same frames,
 * encrypted. Two modes:
 *
 *  - psk: no certificates. A host's PSK is HKDF-SHA-256 of its key file
 *    (info "vrio-tls-psk-1" | host name), a key distinct from the one its
 *    HMAC proofs use; the PSK identity is the host's name, by which the
 *    io-server picks the key. A trunk between io-servers is the same
 *    with the rack's trunk key and the dialling io-server's name. The handshake still runs (EC)DHE, so a key
 *    stolen later does not open recorded traffic.
 *  - cert: the io-server presents a certificate; the host verifies it
 *    against the rack's CA (no host name check: the CA is the rack's own).
 *
 * The host's HMAC proofs (proto/auth.h) then bind the TLS session:
 * vrio_tls_binding() exports keying material that both ends mix into the
 * proofs, so a proof made on one TLS session (a relay, a terminator in
 * the middle) proves nothing on another.
 */
#ifndef VRIO_TLS_H
#define VRIO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define VRIO_TLS_PSK_LEN	32u
#define VRIO_TLS_BINDING_LEN	32u

/* The io-server's lookup of a host's key file by the PSK identity (the
 * host's name): copies at most *len bytes into key and sets *len; a
 * negative errno if the host is unknown or has no key. Runs on the thread
 * that owns the connection being accepted. */
typedef int (*vrio_tls_key_fn)(void *arg, const char *identity, uint8_t *key, size_t *len);

struct vrio_tls_opts {
	const char *name;	/* for logs: the io-server's name */
	bool server;
	bool psk;
	/* psk, host side: its name and its key file's bytes (copied). */
	const char *identity;
	const uint8_t *key;
	size_t key_len;
	/* psk, io-server side. */
	vrio_tls_key_fn lookup;
	void *lookup_arg;
	/* cert: the io-server's certificate (chain) and key, PEM; the CA
	 * that a host verifies them against. */
	const char *cert_file, *key_file, *ca_file;
};

struct vrio_tls_ctx;

struct vrio_tls_ctx *vrio_tls_ctx_new(const struct vrio_tls_opts *o);
void vrio_tls_ctx_free(struct vrio_tls_ctx *x);
/* Takes ownership of inner (a tcp connection; closed on error). On the
 * host side, runs the handshake before it returns (at most a few
 * seconds): -EACCES if the peer refused us or we refused it. The
 * io-server side handshakes inside poll() and flush(). */
int vrio_tls_wrap(struct vrio_tls_ctx *x, struct vrio_conn *inner, struct vrio_conn **out);
/* The PSK of `identity` from its key file. 0 or -EIO. */
int vrio_tls_psk(const uint8_t *key, size_t key_len, const char *identity,
		 uint8_t out[VRIO_TLS_PSK_LEN]);
/* The channel binding of the TLS layer in c's stack, once its handshake is
 * done: 0, or -ENOENT if the stack has no TLS, -EAGAIN if not yet up. */
int vrio_tls_binding(struct vrio_conn *c, uint8_t out[VRIO_TLS_BINDING_LEN]);

#endif
