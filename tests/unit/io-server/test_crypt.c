/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The crypt stage and the XTS under it (xts.c, stage_crypt.c):
 *   - XTS-AES-256 against IEEE Std 1619-2007 Annex B, vectors 10 to 14;
 *   - the plain64 IV of each crypto-sector, for 512 and 4096 with and
 *     without iv_large_sectors, against one-sector encryptions with the
 *     IV dm-crypt would use, made here with EVP directly;
 *   - the key file's rules, as a table, and a key that cannot be locked;
 *   - the stage on a chain: writes encrypted on the way in, reads
 *     decrypted on the way back (only when OK), write-zeroes answered
 *     UNSUPP and unaligned requests IOERR without reaching the backend,
 *     discards passed, and what a reload may keep.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "ioserver_internal.h"
#include "xts.h"

static char dir[64];

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/vrio-crypt-XXXXXX", t && strlen(t) < 30 ? t : "/tmp");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Writes a key file of `len` bytes with `mode`; returns its path. */
static const char *key_file(const char *name, const uint8_t *key, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, key, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void random_bytes(uint8_t *p, size_t n, unsigned seed)
{
	srand(seed);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rand();
}

static struct ios_xts *open_xts(const uint8_t key[IOS_XTS_KEY_LEN], unsigned ss, bool large)
{
	struct ios_xts_opts o = {
		.key_file = key_file("key", key, IOS_XTS_KEY_LEN, 0600),
		.sector_size = ss,
		.iv_large_sectors = large,
	};
	struct ios_xts *x;
	char why[512];

	if (ios_xts_open(&o, &x, why, sizeof(why)) < 0)
		fail_msg("%s", why);
	return x;
}

static void unhex(const char *h, uint8_t *out, size_t n)
{
	assert_int_equal(strlen(h), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* ---- IEEE 1619 known answers ---- */

/* IEEE Std 1619-2007, Annex B, vectors 10-14 (XTS-AES-256): one key, the
 * 512-byte data unit 00 01 .. ff twice, data unit sequence numbers
 * 0xff .. 0xffffffffff, which is what plain64 makes of 512-byte sector
 * numbers. As OpenSSL 1.1.1 (evptests.txt) and BoringSSL (xts_test.cc) carry
 * them. */
static const char kat_key[] =
	"2718281828459045235360287471352662497757247093699959574966967627"
	"3141592653589793238462643383279502884197169399375105820974944592";

static const struct kat {
	unsigned vector;
	uint64_t seq;
	const char *ct;
} kats[] = {
	{ 10, 0xffull,
	  "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
	  "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
	  "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
	  "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
	  "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
	  "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
	  "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
	  "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
	  "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
	  "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
	  "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
	  "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
	  "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
	  "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
	  "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
	  "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151" },
	{ 11, 0xffffull,
	  "77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11"
	  "e1d0225438e093242d6db274fde801d4cae06f2092c728b2478559df58e837c2"
	  "469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d"
	  "3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b201"
	  "3fd0eeb8c2b8e3d8d240ccae2d4c98320a7442e1c8d75a42d6e6cfa4c2eca179"
	  "8d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a"
	  "aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c6"
	  "9aac049921871ebb65301a4619ca80ecb485a31d744223ce8ddc2394828d6a80"
	  "470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a"
	  "bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab0"
	  "18bfca75ca096f2d531f3d1619e785f1ada437cab92e980558b3dce1474afb75"
	  "bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63"
	  "094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a"
	  "7e20dbdf308b2461d97c0ec0024a2715055249cf3b478ddd4740de654f75ca68"
	  "6e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090"
	  "54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803" },
	{ 12, 0xffffffull,
	  "e387aaa58ba483afa7e8eb469778317ecf4cf573aa9d4eac23f2cdf914e4e200"
	  "a8b490e42ee646802dc6ee2b471b278195d60918ececb44bf79966f83faba049"
	  "9298ebc699c0c8634715a320bb4f075d622e74c8c932004f25b41e361025b5a8"
	  "7815391f6108fc4afa6a05d9303c6ba68a128a55705d415985832fdeaae6c8e1"
	  "9110e84d1b1f199a2692119edc96132658f09da7c623efcec712537a3d94c0bf"
	  "5d7e352ec94ae5797fdb377dc1551150721adf15bd26a8efc2fcaad56881fa9e"
	  "62462c28f30ae1ceaca93c345cf243b73f542e2074a705bd2643bb9f7cc79bb6"
	  "e7091ea6e232df0f9ad0d6cf502327876d82207abf2115cdacf6d5a48f6c1879"
	  "a65b115f0f8b3cb3c59d15dd8c769bc014795a1837f3901b5845eb491adfefe0"
	  "97b1fa30a12fc1f65ba22905031539971a10f2f36c321bb51331cdefb39e3964"
	  "c7ef079994f5b69b2edd83a71ef549971ee93f44eac3938fcdd61d01fa71799d"
	  "a3a8091c4c48aa9ed263ff0749df95d44fef6a0bb578ec69456aa5408ae32c7a"
	  "f08ad7ba8921287e3bbee31b767be06a0e705c864a769137df28292283ea81a2"
	  "480241b44d9921cdbec1bc28dc1fda114bd8e5217ac9d8ebafa720e9da4f9ace"
	  "231cc949e5b96fe76ffc21063fddc83a6b8679c00d35e09576a875305bed5f36"
	  "ed242c8900dd1fa965bc950dfce09b132263a1eef52dd6888c309f5a7d712826" },
	{ 13, 0xffffffffull,
	  "bf53d2dade78e822a4d949a9bc6766b01b06a8ef70d26748c6a7fc36d80ae4c5"
	  "520f7c4ab0ac8544424fa405162fef5a6b7f229498063618d39f0003cb5fb8d1"
	  "c86b643497da1ff945c8d3bedeca4f479702a7a735f043ddb1d6aaade3c4a0ac"
	  "7ca7f3fa5279bef56f82cd7a2f38672e824814e10700300a055e1630b8f1cb0e"
	  "919f5e942010a416e2bf48cb46993d3cb6a51c19bacf864785a00bc2ecff15d3"
	  "50875b246ed53e68be6f55bd7e05cfc2b2ed6432198a6444b6d8c247fab941f5"
	  "69768b5c429366f1d3f00f0345b96123d56204c01c63b22ce78baf116e525ed9"
	  "0fdea39fa469494d3866c31e05f295ff21fea8d4e6e13d67e47ce722e9698a1c"
	  "1048d68ebcde76b86fcf976eab8aa9790268b7068e017a8b9b749409514f1053"
	  "027fd16c3786ea1bac5f15cb79711ee2abe82f5cf8b13ae73030ef5b9e4457e7"
	  "5d1304f988d62dd6fc4b94ed38ba831da4b7634971b6cd8ec325d9c61c00f1df"
	  "73627ed3745a5e8489f3a95c69639c32cd6e1d537a85f75cc844726e8a72fc00"
	  "77ad22000f1d5078f6b866318c668f1ad03d5a5fced5219f2eabbd0aa5c0f460"
	  "d183f04404a0d6f469558e81fab24a167905ab4c7878502ad3e38fdbe62a4155"
	  "6cec37325759533ce8f25f367c87bb5578d667ae93f9e2fd99bcbc5f2fbba88c"
	  "f6516139420fcff3b7361d86322c4bd84c82f335abb152c4a93411373aaa8220" },
	{ 14, 0xffffffffffull,
	  "64497e5a831e4a932c09be3e5393376daa599548b816031d224bbf50a818ed23"
	  "50eae7e96087c8a0db51ad290bd00c1ac1620857635bf246c176ab463be30b80"
	  "8da548081ac847b158e1264be25bb0910bbc92647108089415d45fab1b3d2604"
	  "e8a8eff1ae4020cfa39936b66827b23f371b92200be90251e6d73c5f86de5fd4"
	  "a950781933d79a28272b782a2ec313efdfcc0628f43d744c2dc2ff3dcb66999b"
	  "50c7ca895b0c64791eeaa5f29499fb1c026f84ce5b5c72ba1083cddb5ce45434"
	  "631665c333b60b11593fb253c5179a2c8db813782a004856a1653011e93fb6d8"
	  "76c18366dd8683f53412c0c180f9c848592d593f8609ca736317d356e13e2bff"
	  "3a9f59cd9aeb19cd482593d8c46128bb32423b37a9adfb482b99453fbe25a41b"
	  "f6feb4aa0bef5ed24bf73c762978025482c13115e4015aac992e5613a3b5c2f6"
	  "85b84795cb6e9b2656d8c88157e52c42f978d8634c43d06fea928f2822e465aa"
	  "6576e9bf419384506cc3ce3c54ac1a6f67dc66f3b30191e698380bc999b05abc"
	  "e19dc0c6dcc2dd001ec535ba18deb2df1a101023108318c75dc98611a09dc48a"
	  "0acdec676fabdf222f07e026f059b672b56e5cbc8e1d21bbd867dd9272120546"
	  "81d70ea737134cdfce93b6f82ae22423274e58a0821cc5502e2d0ab4585e94de"
	  "6975be5e0b4efce51cd3e70c25a1fbbbd609d273ad5b0d59631c531f6a0a57b9" },
};

static void test_ieee1619_vectors(void **state)
{
	uint8_t key[IOS_XTS_KEY_LEN], pt[512], ct[512], buf[512];
	struct ios_xts *x;

	unhex(kat_key, key, sizeof(key));
	for (unsigned i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	x = open_xts(key, 512, false);
	for (size_t k = 0; k < sizeof(kats) / sizeof(kats[0]); k++) {
		unhex(kats[k].ct, ct, sizeof(ct));
		memcpy(buf, pt, sizeof(buf));
		assert_int_equal(ios_xts_crypt(x, true, buf, sizeof(buf), kats[k].seq * 512), 0);
		if (memcmp(buf, ct, sizeof(ct)))
			fail_msg("vector %u: ciphertext differs", kats[k].vector);
		assert_int_equal(ios_xts_crypt(x, false, buf, sizeof(buf), kats[k].seq * 512), 0);
		if (memcmp(buf, pt, sizeof(pt)))
			fail_msg("vector %u: decryption differs", kats[k].vector);
	}
	ios_xts_close(x);
}

/* ---- plain64 IVs ---- */

/* One data unit with the IV given, by EVP directly. */
static void ref_sector(const uint8_t *key, uint64_t iv_sector, const uint8_t *in, uint8_t *out,
		       size_t len, int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t iv[16] = { 0 };
	int outl = 0, fin = 0;

	for (unsigned i = 0; i < 8; i++)
		iv[i] = (uint8_t)(iv_sector >> (8 * i));
	assert_non_null(c);
	assert_int_equal(EVP_CipherInit_ex(c, EVP_aes_256_xts(), NULL, key, iv, enc), 1);
	assert_int_equal(EVP_CipherUpdate(c, out, &outl, in, (int)len), 1);
	assert_int_equal(EVP_CipherFinal_ex(c, out + outl, &fin), 1);
	assert_int_equal(outl + fin, (int)len);
	EVP_CIPHER_CTX_free(c);
}

static void test_plain64_iv(void **state)
{
	static const struct {
		unsigned ss;
		bool large;
		uint64_t first_crypto_sector;
		uint64_t iv_step;	/* IV sectors per crypto-sector */
	} cases[] = {
		{ 512, false, 0, 1 },
		{ 512, false, 0x123456789ull, 1 },
		{ 4096, false, 0, 8 },
		{ 4096, false, 0x1234567ull, 8 },	/* IV = offset / 512 */
		{ 4096, true, 0x1234567ull, 1 },	/* IV = offset / 4096 */
		{ 512, false, 0x76543210fedcbaull, 1 },	/* seven bytes of IV */
	};
	enum { N = 5 };
	uint8_t key[IOS_XTS_KEY_LEN], pt[N * 4096], buf[N * 4096], one[4096];
	struct ios_xts *x;

	random_bytes(key, sizeof(key), 1);
	random_bytes(pt, sizeof(pt), 2);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		unsigned ss = cases[k].ss;
		uint64_t off = cases[k].first_crypto_sector * ss;
		uint64_t iv0 = off / (cases[k].large ? 4096 : 512);

		x = open_xts(key, ss, cases[k].large);
		assert_int_equal(ios_xts_sector_size(x), ss);
		memcpy(buf, pt, N * ss);
		assert_int_equal(ios_xts_crypt(x, true, buf, N * ss, off), 0);
		for (unsigned s = 0; s < N; s++) {
			ref_sector(key, iv0 + s * cases[k].iv_step, pt + s * ss, one, ss, 1);
			if (memcmp(one, buf + s * ss, ss))
				fail_msg("case %zu: crypto-sector %u does not have IV %llu", k, s,
					 (unsigned long long)(iv0 + s * cases[k].iv_step));
			/* A sector's ciphertext is the same whatever the
			 * request it is part of. */
			memcpy(one, pt + s * ss, ss);
			assert_int_equal(ios_xts_crypt(x, true, one, ss, off + s * ss), 0);
			assert_memory_equal(one, buf + s * ss, ss);
		}
		assert_int_equal(ios_xts_crypt(x, false, buf, N * ss, off), 0);
		assert_memory_equal(buf, pt, N * ss);
		ios_xts_close(x);
	}

	/* Offsets and lengths off the crypto-sectors: refused, buf untouched. */
	x = open_xts(key, 4096, false);
	memcpy(buf, pt, 8192);
	assert_int_equal(ios_xts_crypt(x, true, buf, 4096, 512), -EINVAL);
	assert_int_equal(ios_xts_crypt(x, true, buf, 512, 4096), -EINVAL);
	assert_memory_equal(buf, pt, 8192);
	ios_xts_close(x);
}

/* ---- the key file ---- */

static bool has_bytes(const char *s, const uint8_t *b, size_t n)
{
	char hex[2 * 8 + 1];

	for (unsigned i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", b[i]);
	return memmem(s, strlen(s), b, n) != NULL || strstr(s, hex) != NULL;
}

static void test_key_file_rules(void **state)
{
	static const struct {
		const char *what;
		size_t len;
		mode_t mode;
		int rc;
		const char *says;
	} cases[] = {
		{ "0600, 64 bytes", 64, 0600, 0, NULL },
		{ "0400, 64 bytes", 64, 0400, 0, NULL },
		{ "0644", 64, 0644, -EACCES, "mode 0644" },
		{ "0640", 64, 0640, -EACCES, "mode 0640" },
		{ "0604", 64, 0604, -EACCES, "group and others" },
		{ "0620 (group may write)", 64, 0620, -EACCES, "mode 0620" },
		{ "32 bytes", 32, 0600, -EINVAL, "holds 32 bytes" },
		{ "65 bytes", 65, 0600, -EINVAL, "holds 65 bytes" },
		{ "empty", 0, 0600, -EINVAL, "holds 0 bytes" },
	};
	uint8_t key[80];
	struct ios_xts_opts o = { .sector_size = 512 };
	struct ios_xts *x;
	char why[512], path[128];
	int rc;

	random_bytes(key, sizeof(key), 3);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		o.key_file = key_file("key", key, cases[k].len, cases[k].mode);
		why[0] = '\0';
		rc = ios_xts_open(&o, &x, why, sizeof(why));
		if (rc != cases[k].rc)
			fail_msg("%s: %d (%s), not %d", cases[k].what, rc, why, cases[k].rc);
		if (rc == 0) {
			ios_xts_close(x);
			continue;
		}
		assert_null(x);
		if (!strstr(why, o.key_file) || !strstr(why, cases[k].says))
			fail_msg("%s: '%s' does not name the file and say '%s'", cases[k].what, why,
				 cases[k].says);
		assert_false(has_bytes(why, key, 8));
	}

	/* Not a regular file; not there. */
	snprintf(path, sizeof(path), "%s/keydir", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	o.key_file = path;
	assert_int_equal(ios_xts_open(&o, &x, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not a regular file"));
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(ios_xts_open(&o, &x, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, path));

	/* Owned by somebody else (root can make such a file). */
	if (geteuid() == 0) {
		o.key_file = key_file("key", key, 64, 0600);
		assert_int_equal(chown(o.key_file, 4242, 4242), 0);
		assert_int_equal(ios_xts_open(&o, &x, why, sizeof(why)), -EACCES);
		assert_non_null(strstr(why, "owned by uid 4242"));
	}
}

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

/* A key that cannot be locked in memory is refused: in a child without
 * CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0. (AddressSanitizer makes mlock
 * a no-op that succeeds.) */
static void test_key_not_lockable(void **state)
{
	uint8_t key[IOS_XTS_KEY_LEN];
	struct ios_xts_opts o = { .sector_size = 512 };
	int status;
	pid_t pid;

#ifdef ASAN
	skip();
#endif
	random_bytes(key, sizeof(key), 4);
	o.key_file = key_file("key", key, sizeof(key), 0600);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct cd[2];
		struct rlimit rl = { 0, 0 };
		struct ios_xts *x;
		char why[512];
		int rc;

		if (syscall(SYS_capget, &h, cd) == 0) {
			cd[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
			if (syscall(SYS_capset, &h, cd) < 0)
				_exit(2);
		}
		if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
			_exit(2);
		rc = ios_xts_open(&o, &x, why, sizeof(why));
		_exit(rc < 0 && strstr(why, "cannot lock the key in memory") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the stage on a chain ---- */

struct run {
	int submitted, done;
};
static struct run run;

static void submit(struct ios_req *req)
{
	run.submitted++;
}

static void done(struct ios_req *req)
{
	run.done++;
}

struct rig {
	struct ios_device d;
	struct vrio_topo_stage ts;
	struct vrio_topo_device td;
	struct ios_chain *chain;
	struct ios_stage *st;
	struct ios_req req;
	uint8_t key[IOS_XTS_KEY_LEN];
	uint8_t buf[65536];
};

static struct rig *rig_new(unsigned ss, bool large)
{
	struct rig *r = calloc(1, sizeof(*r));
	char why[512];

	assert_non_null(r);
	snprintf(r->d.name, sizeof(r->d.name), "disk0");
	random_bytes(r->key, sizeof(r->key), 5);
	r->ts.kind = VRIO_STAGE_CRYPT;
	r->ts.u.crypt.key_file = (char *)key_file("key", r->key, sizeof(r->key), 0600);
	r->ts.u.crypt.sector_size = ss;
	r->ts.u.crypt.iv_large_sectors = large;
	r->td.name = r->d.name;
	r->td.stages = &r->ts;
	r->td.n_stages = 1;
	if (ios_chain_build(&r->d, &r->td, &r->chain, why, sizeof(why)) < 0)
		fail_msg("%s", why);
	r->d.chain = r->chain;
	r->st = r->chain->stages[0];
	r->req.buf = r->buf;
	r->req.dev = &r->d;
	return r;
}

static void rig_free(struct rig *r)
{
	r->d.chain = NULL;
	ios_chain_put(r->chain);
	free(r);
}

/* Starts a request; returns whether it reached the backend. */
static bool start(struct rig *r, enum ios_blk_op op, uint64_t sector, uint32_t len)
{
	struct ios_blk_req *b = &r->req.u.blk;

	memset(b, 0, sizeof(*b));
	b->op = op;
	b->sector = sector;
	b->len = len;
	b->status = VIRTIO_BLK_S_OK;
	b->backend = true;
	run = (struct run){ 0 };
	ios_chain_start(&r->d, &r->req, submit, done);
	assert_int_equal(run.submitted + run.done, 1);
	return run.submitted == 1;
}

/* The backend answers with `status`. */
static void finish(struct rig *r, uint8_t status)
{
	r->req.u.blk.status = status;
	ios_chain_finish(&r->req, done);
	assert_int_equal(run.done, 1);
	assert_null(r->req.chain);
}

static void test_stage_data_path(void **state)
{
	struct rig *r = rig_new(512, false);
	uint8_t pt[8192], ct[8192];
	struct ios_xts *x;

	random_bytes(pt, sizeof(pt), 6);
	x = open_xts(r->key, 512, false);
	memcpy(ct, pt, sizeof(ct));
	assert_int_equal(ios_xts_crypt(x, true, ct, sizeof(ct), 16 * 512), 0);
	ios_xts_close(x);

	/* A write leaves for the backend encrypted. */
	memcpy(r->buf, pt, sizeof(pt));
	assert_true(start(r, IOS_BLK_OP_WRITE, 16, sizeof(pt)));
	assert_memory_equal(r->buf, ct, sizeof(ct));
	finish(r, VIRTIO_BLK_S_OK);
	assert_int_equal(r->req.u.blk.status, VIRTIO_BLK_S_OK);

	/* A read goes as it is and comes back decrypted... */
	memset(r->buf, 0xa5, sizeof(pt));
	assert_true(start(r, IOS_BLK_OP_READ, 16, sizeof(pt)));
	memcpy(r->buf, ct, sizeof(ct));	/* what the backend read */
	finish(r, VIRTIO_BLK_S_OK);
	assert_memory_equal(r->buf, pt, sizeof(pt));

	/* ...unless the backend failed. */
	assert_true(start(r, IOS_BLK_OP_READ, 16, sizeof(pt)));
	memcpy(r->buf, ct, sizeof(ct));
	finish(r, VIRTIO_BLK_S_IOERR);
	assert_memory_equal(r->buf, ct, sizeof(ct));

	/* Write-zeroes: UNSUPP, and the backend never sees it. */
	assert_false(start(r, IOS_BLK_OP_WRITE_ZEROES, 0, 0));
	assert_int_equal(r->req.u.blk.status, VIRTIO_BLK_S_UNSUPP);
	assert_null(r->req.chain);
	assert_int_equal(vrio_counter_get(&r->st->st.drops[IOS_STAGE_DROP_UNSUPP]), 1);

	/* Discards, flushes and ids pass as they are. */
	assert_true(start(r, IOS_BLK_OP_DISCARD, 0, 0));
	finish(r, VIRTIO_BLK_S_OK);
	assert_true(start(r, IOS_BLK_OP_FLUSH, 0, 0));
	finish(r, VIRTIO_BLK_S_OK);

	/* 512-byte sectors take any 512-byte request. */
	memcpy(r->buf, pt + 512, 512);
	assert_true(start(r, IOS_BLK_OP_WRITE, 17, 512));
	assert_memory_equal(r->buf, ct + 512, 512);
	finish(r, VIRTIO_BLK_S_OK);

	assert_int_equal(vrio_counter_get(&r->st->st.requests), 7);
	assert_int_equal(vrio_counter_get(&r->st->st.bytes), 3 * sizeof(pt) + 512);
	assert_int_equal(vrio_counter_get(&r->st->st.drops[IOS_STAGE_DROP_UNSUPP]), 1);
	rig_free(r);
}

static void test_stage_4096_alignment(void **state)
{
	static const struct {
		enum ios_blk_op op;
		uint64_t sector;
		uint32_t len;
		bool passes;
	} cases[] = {
		{ IOS_BLK_OP_WRITE, 8, 4096, true },
		{ IOS_BLK_OP_READ, 16, 8192, true },
		{ IOS_BLK_OP_WRITE, 1, 4096, false },	/* offset 512 */
		{ IOS_BLK_OP_WRITE, 8, 512, false },	/* length 512 */
		{ IOS_BLK_OP_READ, 12, 4096, false },	/* offset 6144 */
		{ IOS_BLK_OP_READ, 8, 4608, false },
		{ IOS_BLK_OP_DISCARD, 0, 0, true },	/* its ranges are the backend's */
	};
	struct rig *r = rig_new(4096, true);
	uint64_t refused = 0;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		memset(r->buf, 0x5a, cases[k].len);
		if (start(r, cases[k].op, cases[k].sector, cases[k].len) != cases[k].passes)
			fail_msg("case %zu: %s", k, cases[k].passes ? "refused" : "went on");
		if (cases[k].passes) {
			finish(r, VIRTIO_BLK_S_OK);
			continue;
		}
		refused++;
		assert_int_equal(r->req.u.blk.status, VIRTIO_BLK_S_IOERR);
		for (uint32_t i = 0; i < cases[k].len; i++)
			assert_int_equal(r->buf[i], 0x5a);
	}
	assert_int_equal(vrio_counter_get(&r->st->st.drops[IOS_STAGE_DROP_UNSUPP]), refused);
	rig_free(r);
}

/* A reload keeps the stage for the same settings only. */
static void test_stage_retune(void **state)
{
	struct rig *r = rig_new(4096, false);
	const struct ios_stage_ops *ops = r->st->ops;
	struct vrio_topo_stage ts = r->ts;
	char other[128];

	assert_ptr_equal(ops, &ios_stage_crypt_ops);
	assert_int_equal(ops->retune(r->st, &ts, false), 0);
	assert_int_equal(ops->retune(r->st, &ts, true), 0);
	ts.u.crypt.iv_large_sectors = true;
	assert_int_equal(ops->retune(r->st, &ts, false), -EPERM);
	ts = r->ts;
	ts.u.crypt.sector_size = 512;
	assert_int_equal(ops->retune(r->st, &ts, false), -EPERM);
	ts = r->ts;
	snprintf(other, sizeof(other), "%s/other-key", dir);
	ts.u.crypt.key_file = other;
	assert_int_equal(ops->retune(r->st, &ts, false), -EPERM);
	rig_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ieee1619_vectors),
		cmocka_unit_test(test_plain64_iv),
		cmocka_unit_test(test_key_file_rules),
		cmocka_unit_test(test_key_not_lockable),
		cmocka_unit_test(test_stage_data_path),
		cmocka_unit_test(test_stage_4096_alignment),
		cmocka_unit_test(test_stage_retune),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
