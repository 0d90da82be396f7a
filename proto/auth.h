/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Authentication of a host's connection to an io-server, both ways, made
 * of control messages so that it works on every transport:
 *
 *   host -> io-server   Hello {node, nonce Nh}
 *   io-server -> host   Hello {node, nonce Ns, proof P(IOSERVER)}
 *   host -> io-server   Auth {proof P(HOST)}, then its Attach messages
 *
 * P(role) = HMAC-SHA-256(host key, "vrio-auth-1" | role | host name |
 * io-server name | Nh | Ns), each name preceded by its length. Both nonces
 * are 32 random bytes, fresh per connection, so a proof recorded on one
 * connection proves nothing on the next (replay), and the role in it
 * keeps the io-server's proof from being sent back as the host's
 * (reflection). Proofs are compared in constant time.
 *
 * Over TLS (transport/tls.h) both sides append the TLS session's exported
 * keying material (the binding) to what they MAC, so that a proof is
 * good on that TLS session only: whoever terminates TLS in the middle and
 * relays the messages cannot pass the host's proof on to the io-server.
 *
 * The key is the host's key file (keyfile.h), at least VRIO_AUTH_KEY_MIN
 * bytes, which the host and every io-server it uses read.
 *
 * A trunk between two io-servers (io-server/trunk.h) runs the same three
 * messages under the rack's trunk key (trunk_key_file): the side that
 * dials plays the host, with its own name in the host's place, and the
 * proofs carry roles of their own (TRUNK_DIALER, TRUNK_ACCEPTOR), so that
 * no trunk proof passes for a host's, even under the same key.
 */
#ifndef VRIO_PROTO_AUTH_H
#define VRIO_PROTO_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define VRIO_AUTH_NONCE_LEN	32u
#define VRIO_AUTH_PROOF_LEN	32u	/* HMAC-SHA-256 */
#define VRIO_AUTH_KEY_MIN	32u
#define VRIO_AUTH_KEY_MAX	4096u
#define VRIO_AUTH_BINDING_LEN	32u

enum vrio_auth_role {
	VRIO_AUTH_HOST = 1,	/* local-hv's proof */
	VRIO_AUTH_IOSERVER = 2,
	VRIO_AUTH_TRUNK_DIALER = 3,	/* a trunk: the io-server that dials */
	VRIO_AUTH_TRUNK_ACCEPTOR = 4,	/* and the one that accepts */
};

struct vrio_auth_ctx {
	const uint8_t *key;
	size_t key_len;
	const char *host, *ioserver;
	const uint8_t *host_nonce, *ios_nonce;	/* VRIO_AUTH_NONCE_LEN each */
	const uint8_t *binding;	/* VRIO_AUTH_BINDING_LEN bytes over TLS; else NULL */
};

/* Fresh random bytes from OpenSSL's generator; -EIO if it fails. */
int vrio_auth_nonce(uint8_t nonce[VRIO_AUTH_NONCE_LEN]);
/* The proof `role` sends; -EINVAL on a name longer than 255 bytes or a
 * key out of bounds, -EIO if OpenSSL fails. */
int vrio_auth_proof(const struct vrio_auth_ctx *c, enum vrio_auth_role role,
		    uint8_t out[VRIO_AUTH_PROOF_LEN]);
/* 0 if proof (len bytes, from the peer) is role's proof; -EBADMSG if it
 * has the wrong length, -EACCES if it is not the proof. */
int vrio_auth_check(const struct vrio_auth_ctx *c, enum vrio_auth_role role,
		    const uint8_t *proof, size_t len);

#endif
