/* SPDX-License-Identifier: BSD-3-Clause */
/* The challenge-response of a host's connection (auth.h). */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth.h"

#define AUTH_LABEL "vrio-auth-1"

int vrio_auth_nonce(uint8_t nonce[VRIO_AUTH_NONCE_LEN])
{
	return RAND_bytes(nonce, VRIO_AUTH_NONCE_LEN) == 1 ? 0 : -EIO;
}

/* One length byte, then the name: "ab" + "c" and "a" + "bc" differ. */
static size_t put_name(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	p[0] = (uint8_t)n;
	memcpy(p + 1, s, n);
	return n + 1;
}

int vrio_auth_proof(const struct vrio_auth_ctx *c, enum vrio_auth_role role,
		    uint8_t out[VRIO_AUTH_PROOF_LEN])
{
	uint8_t msg[sizeof(AUTH_LABEL) + 1 + 2 * 256 + 2 * VRIO_AUTH_NONCE_LEN +
		    VRIO_AUTH_BINDING_LEN];
	unsigned int olen = 0;
	size_t n = 0;

	if (!c->key || c->key_len < VRIO_AUTH_KEY_MIN || c->key_len > VRIO_AUTH_KEY_MAX ||
	    !c->host || !c->ioserver || strlen(c->host) > 255 || strlen(c->ioserver) > 255 ||
	    role < VRIO_AUTH_HOST || role > VRIO_AUTH_TRUNK_ACCEPTOR)
		return -EINVAL;
	memcpy(msg, AUTH_LABEL, sizeof(AUTH_LABEL));	/* with its NUL */
	n += sizeof(AUTH_LABEL);
	msg[n++] = (uint8_t)role;
	n += put_name(msg + n, c->host);
	n += put_name(msg + n, c->ioserver);
	memcpy(msg + n, c->host_nonce, VRIO_AUTH_NONCE_LEN);
	n += VRIO_AUTH_NONCE_LEN;
	memcpy(msg + n, c->ios_nonce, VRIO_AUTH_NONCE_LEN);
	n += VRIO_AUTH_NONCE_LEN;
	if (c->binding) {
		memcpy(msg + n, c->binding, VRIO_AUTH_BINDING_LEN);
		n += VRIO_AUTH_BINDING_LEN;
	}
	if (!HMAC(EVP_sha256(), c->key, (int)c->key_len, msg, n, out, &olen) ||
	    olen != VRIO_AUTH_PROOF_LEN)
		return -EIO;
	return 0;
}

int vrio_auth_check(const struct vrio_auth_ctx *c, enum vrio_auth_role role,
		    const uint8_t *proof, size_t len)
{
	uint8_t want[VRIO_AUTH_PROOF_LEN];
	int rc;

	if (!proof || len != VRIO_AUTH_PROOF_LEN)
		return -EBADMSG;
	rc = vrio_auth_proof(c, role, want);
	if (rc == 0 && CRYPTO_memcmp(want, proof, VRIO_AUTH_PROOF_LEN) != 0)
		rc = -EACCES;
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}
