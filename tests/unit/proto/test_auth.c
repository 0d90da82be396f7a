/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The challenge-response's proofs (proto/auth.h): the right key over the
 * right transcript passes; another key, another nonce (a replay), the
 * other role (a reflection), another name, or a cut proof fails.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static uint8_t key[32], key2[32], nh[32], ns[32], nh2[32], ns2[32];

static struct vrio_auth_ctx ctx(void)
{
	return (struct vrio_auth_ctx){
		.key = key, .key_len = sizeof(key), .host = "host0", .ioserver = "io0",
		.host_nonce = nh, .ios_nonce = ns,
	};
}

static int setup(void **state)
{
	memset(key, 0x11, sizeof(key));
	memset(key2, 0x11, sizeof(key2));
	key2[31] ^= 1;
	assert_int_equal(vrio_auth_nonce(nh), 0);
	assert_int_equal(vrio_auth_nonce(ns), 0);
	assert_int_equal(vrio_auth_nonce(nh2), 0);
	assert_int_equal(vrio_auth_nonce(ns2), 0);
	assert_memory_not_equal(nh, ns, 32);
	return 0;
}

/* What the verifier sees, changed one way against what the prover used. */
enum change { SAME, WRONG_KEY, NEW_IOS_NONCE, NEW_HOST_NONCE, OTHER_ROLE, OTHER_HOST,
	      OTHER_IOS, NAME_SHIFT };

static void test_table(void **state)
{
	static const struct {
		const char *what;
		enum change change;
		int want;
	} cases[] = {
		{ "same key and transcript", SAME, 0 },
		{ "another key", WRONG_KEY, -EACCES },
		{ "replayed on a connection with another io-server nonce", NEW_IOS_NONCE, -EACCES },
		{ "replayed against another host nonce", NEW_HOST_NONCE, -EACCES },
		{ "the io-server's proof sent back as the host's", OTHER_ROLE, -EACCES },
		{ "another host's name", OTHER_HOST, -EACCES },
		{ "another io-server's name", OTHER_IOS, -EACCES },
		{ "a byte moved between the two names", NAME_SHIFT, -EACCES },
	};
	uint8_t proof[VRIO_AUTH_PROOF_LEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int role = VRIO_AUTH_HOST; role <= VRIO_AUTH_IOSERVER; role++) {
			struct vrio_auth_ctx p = ctx(), v = ctx();
			int check_role = role;

			if (cases[i].change == NAME_SHIFT) {
				p.host = "host0i";
				p.ioserver = "o0";
			}
			assert_int_equal(vrio_auth_proof(&p, role, proof), 0);
			if (cases[i].change == NAME_SHIFT) {
				p.host = "host0";
				p.ioserver = "io0";
			}
			switch (cases[i].change) {
			case WRONG_KEY:
				v.key = key2;
				break;
			case NEW_IOS_NONCE:
				v.ios_nonce = ns2;
				break;
			case NEW_HOST_NONCE:
				v.host_nonce = nh2;
				break;
			case OTHER_ROLE:
				check_role = role == VRIO_AUTH_HOST ? VRIO_AUTH_IOSERVER : VRIO_AUTH_HOST;
				break;
			case OTHER_HOST:
				v.host = "host1";
				break;
			case OTHER_IOS:
				v.ioserver = "io1";
				break;
			default:
				break;
			}
			if (vrio_auth_check(&v, check_role, proof, sizeof(proof)) != cases[i].want)
				fail_msg("case '%s', role %d: want %d", cases[i].what, role,
					 cases[i].want);
		}
	}
}

static void test_malformed(void **state)
{
	struct vrio_auth_ctx c = ctx();
	uint8_t proof[VRIO_AUTH_PROOF_LEN + 1];
	char long_name[300];

	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_HOST, proof), 0);
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, proof, VRIO_AUTH_PROOF_LEN), 0);
	/* Cut, padded, empty, absent. */
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, proof, VRIO_AUTH_PROOF_LEN - 1),
			 -EBADMSG);
	proof[VRIO_AUTH_PROOF_LEN] = 0;
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, proof, VRIO_AUTH_PROOF_LEN + 1),
			 -EBADMSG);
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, proof, 0), -EBADMSG);
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, NULL, VRIO_AUTH_PROOF_LEN),
			 -EBADMSG);
	/* One bit off. */
	proof[7] ^= 0x20;
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, proof, VRIO_AUTH_PROOF_LEN),
			 -EACCES);
	/* A key under 32 bytes, an unknown role, a name over 255 bytes. */
	c.key_len = 31;
	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_HOST, proof), -EINVAL);
	c.key_len = sizeof(key);
	assert_int_equal(vrio_auth_proof(&c, (enum vrio_auth_role)5, proof), -EINVAL);
	assert_int_equal(vrio_auth_proof(&c, (enum vrio_auth_role)0, proof), -EINVAL);
	memset(long_name, 'h', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	c.host = long_name;
	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_HOST, proof), -EINVAL);
}

/* The trunks' roles under one key and names: no proof passes for
 * another role's, a host's included (a trunk key reused as a host's). */
static void test_trunk_roles(void **state)
{
	struct vrio_auth_ctx c = ctx();
	uint8_t proof[VRIO_AUTH_PROOF_LEN];

	for (int r = VRIO_AUTH_HOST; r <= VRIO_AUTH_TRUNK_ACCEPTOR; r++) {
		assert_int_equal(vrio_auth_proof(&c, (enum vrio_auth_role)r, proof), 0);
		for (int o = VRIO_AUTH_HOST; o <= VRIO_AUTH_TRUNK_ACCEPTOR; o++)
			assert_int_equal(vrio_auth_check(&c, (enum vrio_auth_role)o, proof,
							 sizeof(proof)),
					 o == r ? 0 : -EACCES);
	}
}

/* Over TLS the proof binds the session: the same transcript on another
 * TLS session (a relay through a terminator) or without TLS fails. */
static void test_tls_binding(void **state)
{
	uint8_t b1[VRIO_AUTH_BINDING_LEN], b2[VRIO_AUTH_BINDING_LEN];
	struct vrio_auth_ctx c = ctx(), v = ctx();
	uint8_t proof[VRIO_AUTH_PROOF_LEN];

	(void)state;
	memset(b1, 0xa5, sizeof(b1));
	memcpy(b2, b1, sizeof(b2));
	b2[0] ^= 1;
	c.binding = b1;
	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_HOST, proof), 0);
	v.binding = b1;
	assert_int_equal(vrio_auth_check(&v, VRIO_AUTH_HOST, proof, sizeof(proof)), 0);
	v.binding = b2;
	assert_int_equal(vrio_auth_check(&v, VRIO_AUTH_HOST, proof, sizeof(proof)), -EACCES);
	v.binding = NULL;
	assert_int_equal(vrio_auth_check(&v, VRIO_AUTH_HOST, proof, sizeof(proof)), -EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_table, setup),
		cmocka_unit_test_setup(test_malformed, setup),
		cmocka_unit_test_setup(test_trunk_roles, setup),
		cmocka_unit_test_setup(test_tls_binding, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
