/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * guest-io: deterministic block I/O for the end-to-end tests.
 *
 *   guest-io write-verify DEV OFFSET LEN SEED    in the guest, O_DIRECT
 *   guest-io read-verify  DEV OFFSET LEN SEED    in the guest, O_DIRECT
 *   guest-io loop-verify  DEV OFFSET LEN SEED SECONDS
 *                                                in the guest, O_DIRECT
 *   guest-io check-file   FILE OFFSET LEN SEED   on the host, buffered
 *
 * The pattern is a pure function of the seed and the byte offset: the
 * little-endian 64-bit word at byte offset 8*i holds mix(seed, i). Any range
 * can therefore be written, read back or checked on its own, in the guest
 * through the device or on the host in the backing file, and the checksums
 * printed by each side are comparable.
 *
 * loop-verify repeats write-verify over the same range for SECONDS (at least
 * once), pass P with the pattern of SEED + P: each pass overwrites the
 * previous one's data, so a write lost in any pass reads back as a mismatch.
 * It prints "VRIO-PASS: ..." after each pass, for a host that follows its
 * progress on the console, and stops at the first pass that fails. Its
 * result line gives the passes made and last_seed, the seed of the data the
 * range holds at the end (for check-file).
 *
 * Each mode prints one "VRIO-RESULT: ..." line ending in "ok", "MISMATCH" or
 * an "ERROR ..." clause, and exits 0, 1 or 2 accordingly. It is built static
 * so that it runs in a busybox initramfs as well as on the host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096u
#define CHUNK (64u * 1024u)

enum { EXIT_OK = 0, EXIT_MISMATCH = 1, EXIT_ERROR = 2 };

struct job {
	const char *mode;
	const char *path;
	uint64_t off;
	uint64_t len;
	uint64_t seed;
	uint64_t secs; /* loop-verify only */
};

/* splitmix64's finalizer over seed and word index: stateless, so any word
 * can be generated without its predecessors. */
static uint64_t pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Fills buf with the pattern of [off, off + len); off and len are multiples
 * of 8. */
static void pattern_fill(uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8)
		put_le64(buf + i, pattern_word(seed, (off + i) / 8));
}

/* Returns the index of the first byte of buf that differs from the pattern
 * at off, or len when all match. */
static size_t pattern_check(const uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t want[8];

	for (size_t i = 0; i < len; i += 8) {
		put_le64(want, pattern_word(seed, (off + i) / 8));
		for (size_t b = 0; b < 8; b++)
			if (buf[i + b] != want[b])
				return i + b;
	}
	return len;
}

/* FNV-1a over the 64-bit words: the checksum both sides print. */
#define SUM_INIT 0xcbf29ce484222325ull

static uint64_t sum_update(uint64_t h, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		h ^= get_le64(buf + i);
		h *= 0x100000001b3ull;
	}
	return h;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOSPC;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Reads len bytes; a short file is -ENODATA. */
static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void print_head(const struct job *j, const char *key)
{
	printf("VRIO-RESULT: %s %s=%s off=%" PRIu64 " len=%" PRIu64 " seed=%" PRIu64,
	       j->mode, key, j->path, j->off, j->len, j->seed);
}

static int report_error(const struct job *j, const char *key, const char *what, int err)
{
	print_head(j, key);
	printf(" ERROR %s: %s\n", what, strerror(-err));
	fflush(stdout);
	return EXIT_ERROR;
}

/* Size of a block device or regular file, in bytes. */
static int fd_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return -errno;
		return 0;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static int check_range(int fd, const struct job *j)
{
	uint64_t size;
	int rc = fd_size(fd, &size);

	if (rc < 0)
		return rc;
	if (j->off > size || j->len > size - j->off)
		return -ENOSPC;
	return 0;
}

/* Reads [off, off + len) in chunks into buf, checking the pattern; sets
 * *sum and *bad (the absolute offset of the first bad byte, or UINT64_MAX). */
static int read_and_check(int fd, uint8_t *buf, const struct job *j, uint64_t *sum, uint64_t *bad)
{
	uint64_t end = j->off + j->len;

	*sum = SUM_INIT;
	*bad = UINT64_MAX;
	for (uint64_t pos = j->off; pos < end; pos += CHUNK) {
		size_t n = (size_t)(end - pos < CHUNK ? end - pos : CHUNK);
		size_t first;
		int rc = pread_full(fd, buf, n, pos);

		if (rc < 0)
			return rc;
		*sum = sum_update(*sum, buf, n);
		first = pattern_check(buf, pos, n, j->seed);
		if (first < n && *bad == UINT64_MAX)
			*bad = pos + first;
	}
	return 0;
}

static int write_pattern(int fd, uint8_t *buf, const struct job *j, uint64_t *sum)
{
	uint64_t end = j->off + j->len;

	*sum = SUM_INIT;
	for (uint64_t pos = j->off; pos < end; pos += CHUNK) {
		size_t n = (size_t)(end - pos < CHUNK ? end - pos : CHUNK);
		int rc;

		pattern_fill(buf, pos, n, j->seed);
		*sum = sum_update(*sum, buf, n);
		rc = pwrite_full(fd, buf, n, pos);
		if (rc < 0)
			return rc;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

/* Opens the device of a write-verify, read-verify or loop-verify job with
 * O_DIRECT and allocates its aligned chunk buffer; on failure prints the
 * result line and returns the exit status, with nothing left open. */
static int open_device(const struct job *j, bool write, int *fd_out, uint8_t **buf_out)
{
	uint8_t *buf;
	int fd, rc, status;

	if (j->off % DIRECT_ALIGN || j->len % DIRECT_ALIGN || j->len == 0) {
		fprintf(stderr, "guest-io: OFFSET and LEN must be non-zero multiples of %u\n",
			DIRECT_ALIGN);
		return EXIT_ERROR;
	}
	fd = open(j->path, (write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0)
		return report_error(j, "dev", "open", -errno);
	rc = check_range(fd, j);
	if (rc < 0) {
		status = report_error(j, "dev", "range beyond device end", rc);
		close(fd);
		return status;
	}
	rc = posix_memalign((void **)&buf, DIRECT_ALIGN, CHUNK);
	if (rc != 0) {
		status = report_error(j, "dev", "posix_memalign", -rc);
		close(fd);
		return status;
	}
	*fd_out = fd;
	*buf_out = buf;
	return EXIT_OK;
}

/* One pass of write-verify (write) or read-verify: on an I/O error returns
 * it with *what naming the step. */
static int device_pass(int fd, uint8_t *buf, const struct job *j, bool write,
		       uint64_t *sum_written, uint64_t *sum_read, uint64_t *bad, const char **what)
{
	int rc;

	if (write) {
		rc = write_pattern(fd, buf, j, sum_written);
		if (rc < 0) {
			*what = "write";
			return rc;
		}
	}
	rc = read_and_check(fd, buf, j, sum_read, bad);
	if (rc < 0)
		*what = "read";
	return rc;
}

/* write-verify and read-verify: O_DIRECT on a block device in the guest. */
static int run_device(const struct job *j, bool write)
{
	uint64_t sum_written = 0, sum_read, bad;
	const char *what = NULL;
	uint8_t *buf;
	int fd, rc, status;

	status = open_device(j, write, &fd, &buf);
	if (status != EXIT_OK)
		return status;
	rc = device_pass(fd, buf, j, write, &sum_written, &sum_read, &bad, &what);
	if (rc < 0) {
		status = report_error(j, "dev", what, rc);
		goto out;
	}
	print_head(j, "dev");
	if (write)
		printf(" sum_written=%016" PRIx64, sum_written);
	printf(" sum_read=%016" PRIx64, sum_read);
	if (bad != UINT64_MAX) {
		printf(" first_bad=%" PRIu64 " MISMATCH\n", bad);
		status = EXIT_MISMATCH;
	} else {
		printf(" ok\n");
		status = EXIT_OK;
	}
out:
	fflush(stdout);
	free(buf);
	close(fd);
	return status;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* loop-verify: write-verify passes until j->secs have gone by. */
static int run_loop(const struct job *j)
{
	uint64_t sum_written = 0, sum_read = 0, bad = UINT64_MAX, passes = 0, start, elapsed;
	struct job pass = *j;
	const char *what = NULL;
	uint8_t *buf;
	int fd, rc = 0, status;

	status = open_device(j, true, &fd, &buf);
	if (status != EXIT_OK)
		return status;
	start = monotonic_ms();
	do {
		pass.seed = j->seed + passes;
		rc = device_pass(fd, buf, &pass, true, &sum_written, &sum_read, &bad, &what);
		if (rc < 0 || bad != UINT64_MAX)
			break;
		passes++;
		elapsed = monotonic_ms() - start;
		printf("VRIO-PASS: loop-verify pass=%" PRIu64 " seed=%" PRIu64 " ms=%" PRIu64
		       " ok\n", passes, pass.seed, elapsed);
		fflush(stdout);
	} while (elapsed < j->secs * 1000u);
	elapsed = monotonic_ms() - start;

	/* last_seed: the data the range holds; on a failed pass, the one that
	 * pass was writing. */
	print_head(j, "dev");
	printf(" passes=%" PRIu64 " ms=%" PRIu64 " last_seed=%" PRIu64, passes, elapsed, pass.seed);
	if (rc < 0) {
		printf(" ERROR %s in pass %" PRIu64 ": %s\n", what, passes + 1, strerror(-rc));
		status = EXIT_ERROR;
	} else {
		printf(" sum_written=%016" PRIx64 " sum_read=%016" PRIx64, sum_written, sum_read);
		if (bad != UINT64_MAX) {
			printf(" first_bad=%" PRIu64 " pass=%" PRIu64 " MISMATCH\n", bad,
			       passes + 1);
			status = EXIT_MISMATCH;
		} else {
			printf(" ok\n");
			status = EXIT_OK;
		}
	}
	fflush(stdout);
	free(buf);
	close(fd);
	return status;
}

/* check-file: buffered reads of a backing file on the host. */
static int run_check_file(const struct job *j)
{
	uint64_t sum, bad;
	uint8_t *buf;
	int fd, rc, status;

	if (j->off % 8 || j->len % 8 || j->len == 0) {
		fprintf(stderr, "guest-io: OFFSET and LEN must be non-zero multiples of 8\n");
		return EXIT_ERROR;
	}
	fd = open(j->path, O_RDONLY);
	if (fd < 0)
		return report_error(j, "file", "open", -errno);
	buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return report_error(j, "file", "malloc", -ENOMEM);
	}
	rc = check_range(fd, j);
	if (rc == 0)
		rc = read_and_check(fd, buf, j, &sum, &bad);
	if (rc < 0) {
		status = report_error(j, "file", "read", rc);
	} else {
		print_head(j, "file");
		printf(" sum=%016" PRIx64, sum);
		if (bad != UINT64_MAX) {
			printf(" first_bad=%" PRIu64 " MISMATCH\n", bad);
			status = EXIT_MISMATCH;
		} else {
			printf(" ok\n");
			status = EXIT_OK;
		}
	}
	fflush(stdout);
	free(buf);
	close(fd);
	return status;
}

/* Parses a byte count or seed: decimal, 0x hex, with an optional K, M or G
 * (binary) suffix. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	char *end;
	uint64_t v;

	if (*s == '\0' || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -errno;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: guest-io write-verify DEV OFFSET LEN SEED\n"
		"       guest-io read-verify DEV OFFSET LEN SEED\n"
		"       guest-io loop-verify DEV OFFSET LEN SEED SECONDS\n"
		"       guest-io check-file FILE OFFSET LEN SEED\n"
		"OFFSET and LEN take K, M, G suffixes; on devices they are multiples of %u.\n",
		DIRECT_ALIGN);
}

int main(int argc, char **argv)
{
	struct job j;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc != (argc > 1 && !strcmp(argv[1], "loop-verify") ? 7 : 6)) {
		usage(stderr);
		return EXIT_ERROR;
	}
	j.mode = argv[1];
	j.path = argv[2];
	j.secs = 0;
	if (parse_u64(argv[3], &j.off) || parse_u64(argv[4], &j.len) ||
	    parse_u64(argv[5], &j.seed)) {
		fprintf(stderr, "guest-io: bad number in '%s %s %s'\n", argv[3], argv[4], argv[5]);
		return EXIT_ERROR;
	}
	if (argc == 7 && (parse_u64(argv[6], &j.secs) || j.secs > UINT32_MAX)) {
		fprintf(stderr, "guest-io: bad SECONDS '%s'\n", argv[6]);
		return EXIT_ERROR;
	}
	if (j.len > UINT64_MAX - j.off) {
		fprintf(stderr, "guest-io: OFFSET + LEN overflows\n");
		return EXIT_ERROR;
	}
	if (!strcmp(j.mode, "write-verify"))
		return run_device(&j, true);
	if (!strcmp(j.mode, "read-verify"))
		return run_device(&j, false);
	if (!strcmp(j.mode, "loop-verify"))
		return run_loop(&j);
	if (!strcmp(j.mode, "check-file"))
		return run_check_file(&j);
	fprintf(stderr, "guest-io: unknown mode '%s'\n", j.mode);
	usage(stderr);
	return EXIT_ERROR;
}
