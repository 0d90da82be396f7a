// SPDX-License-Identifier: BSD-3-Clause
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"

#define STATE_MAGIC "VRIOBST1"
#define STATE_VERSION 1u
#define VERIFY_PRINT_MAX 10u

struct state_hdr {
	char magic[8];
	uint32_t version;
	uint32_t bs;
	uint64_t offset;
	uint64_t nblocks;
	uint64_t data_seed;
	uint64_t checksum;
};

_Static_assert(sizeof(struct state_hdr) == 48, "state file header");

struct sector_tag {
	uint32_t magic;
	uint32_t tag;
	uint64_t lba;
};

static const struct {
	const char *name;
	enum rw_mode mode;
} rw_modes[] = {
	{ "read", RW_READ },
	{ "write", RW_WRITE },
	{ "randread", RW_RANDREAD },
	{ "randwrite", RW_RANDWRITE },
	{ "randrw", RW_RANDRW },
};

int rw_mode_parse(const char *s, enum rw_mode *mode)
{
	size_t i;

	for (i = 0; i < BENCH_ARRAY_SIZE(rw_modes); i++) {
		if (!strcmp(s, rw_modes[i].name)) {
			*mode = rw_modes[i].mode;
			return 0;
		}
	}
	return -EINVAL;
}

const char *rw_mode_name(enum rw_mode mode)
{
	size_t i;

	for (i = 0; i < BENCH_ARRAY_SIZE(rw_modes); i++)
		if (rw_modes[i].mode == mode)
			return rw_modes[i].name;
	return "unknown";
}

bool rw_mode_writes(enum rw_mode mode)
{
	return mode == RW_WRITE || mode == RW_RANDWRITE || mode == RW_RANDRW;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

int workload_init(struct workload *w, enum rw_mode mode, uint32_t bs, uint64_t offset,
		  uint64_t nblocks, uint64_t seed, bool track)
{
	memset(w, 0, sizeof(*w));
	if (bs == 0 || bs % 512u || offset % 512u || nblocks == 0)
		return -EINVAL;
	w->mode = mode;
	w->bs = bs;
	w->offset = offset;
	w->nblocks = nblocks;
	w->data_seed = seed;
	w->rng = mix64(seed ^ 0x7672696f62656e63ull);
	w->busy = calloc((nblocks + 63) / 64, sizeof(uint64_t));
	if (!w->busy)
		return -ENOMEM;
	if (track) {
		w->tags = calloc(nblocks, sizeof(uint32_t));
		if (!w->tags) {
			free(w->busy);
			w->busy = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

void workload_fini(struct workload *w)
{
	free(w->busy);
	free(w->tags);
	w->busy = NULL;
	w->tags = NULL;
}

uint64_t workload_rand(struct workload *w)
{
	w->rng += GOLDEN_GAMMA;
	return mix64(w->rng);
}

static uint64_t workload_rand_below(struct workload *w, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)workload_rand(w) * n) >> 64);
}

bool workload_busy(const struct workload *w, uint64_t block)
{
	return w->busy[block / 64] & (1ull << (block % 64));
}

int workload_next(struct workload *w, uint64_t *block, bool *write)
{
	uint64_t b, tries;
	bool seq = w->mode == RW_READ || w->mode == RW_WRITE;

	if (seq)
		b = w->seq_next;
	else
		b = workload_rand_below(w, w->nblocks);

	for (tries = 0; workload_busy(w, b); tries++) {
		if (tries == w->nblocks)
			return -EBUSY;
		b = b + 1 == w->nblocks ? 0 : b + 1;
	}
	if (seq)
		w->seq_next = b + 1 == w->nblocks ? 0 : b + 1;

	switch (w->mode) {
	case RW_WRITE:
	case RW_RANDWRITE:
		*write = true;
		break;
	case RW_RANDRW:
		*write = workload_rand(w) & 1;
		break;
	default:
		*write = false;
		break;
	}
	w->busy[b / 64] |= 1ull << (b % 64);
	*block = b;
	return 0;
}

void workload_release(struct workload *w, uint64_t block)
{
	w->busy[block / 64] &= ~(1ull << (block % 64));
}

uint32_t workload_next_tag(const struct workload *w, uint64_t block)
{
	uint32_t t = w->tags ? w->tags[block] + 1 : 1;

	return t ? t : 1;
}

static void fill_sector(uint64_t seed, uint64_t lba, uint32_t tag, uint8_t *p)
{
	struct sector_tag st = {
		.magic = htole32(SECTOR_MAGIC),
		.tag = htole32(tag),
		.lba = htole64(lba),
	};
	uint64_t x = mix64(seed ^ mix64(lba * GOLDEN_GAMMA + tag));
	size_t off;

	memcpy(p, &st, sizeof(st));
	for (off = sizeof(st); off < 512; off += sizeof(uint64_t)) {
		uint64_t v;

		x += GOLDEN_GAMMA;
		v = htole64(mix64(x));
		memcpy(p + off, &v, sizeof(v));
	}
}

void workload_fill(const struct workload *w, uint64_t block, uint32_t tag, void *buf)
{
	uint64_t lba = workload_block_lba(w, block);
	uint32_t s;

	for (s = 0; s < w->bs / 512u; s++)
		fill_sector(w->data_seed, lba + s, tag, (uint8_t *)buf + (size_t)s * 512u);
}

int workload_verify(const struct workload *w, uint64_t block, uint32_t tag, const void *buf,
		    void *scratch, char *why, size_t whylen)
{
	const uint8_t *got = buf, *want = scratch;
	uint64_t lba = workload_block_lba(w, block);
	uint32_t s, bad = 0, first = 0;
	struct sector_tag st;

	workload_fill(w, block, tag, scratch);
	if (!memcmp(got, want, w->bs))
		return 0;

	for (s = 0; s < w->bs / 512u; s++) {
		if (memcmp(got + (size_t)s * 512u, want + (size_t)s * 512u, 512)) {
			if (!bad)
				first = s;
			bad++;
		}
	}
	memcpy(&st, got + (size_t)first * 512u, sizeof(st));
	if (le32toh(st.magic) == SECTOR_MAGIC)
		snprintf(why, whylen,
			 "%u of %u sectors differ; sector %llu holds lba %llu tag %u, expected tag %u%s",
			 bad, w->bs / 512u, (unsigned long long)(lba + first),
			 (unsigned long long)le64toh(st.lba), le32toh(st.tag), tag,
			 le64toh(st.lba) == lba + first && le32toh(st.tag) == tag ?
				 " (payload corrupt)" : "");
	else
		snprintf(why, whylen,
			 "%u of %u sectors differ; sector %llu carries no vrio-bench tag, expected tag %u",
			 bad, w->bs / 512u, (unsigned long long)(lba + first), tag);
	return -EILSEQ;
}

static uint64_t tags_checksum(const uint32_t *tags, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull, i;

	for (i = 0; i < n; i++) {
		h ^= tags[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

static int state_read(const char *path, struct state_hdr *hdr, uint32_t **tags_out)
{
	uint32_t *tags = NULL;
	uint64_t i;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = read_full(fd, hdr, sizeof(*hdr));
	if (ret < 0)
		goto err_bad;
	hdr->version = le32toh(hdr->version);
	hdr->bs = le32toh(hdr->bs);
	hdr->offset = le64toh(hdr->offset);
	hdr->nblocks = le64toh(hdr->nblocks);
	hdr->data_seed = le64toh(hdr->data_seed);
	hdr->checksum = le64toh(hdr->checksum);
	if (memcmp(hdr->magic, STATE_MAGIC, sizeof(hdr->magic)) ||
	    hdr->version != STATE_VERSION || hdr->bs == 0 || hdr->bs % 512u ||
	    hdr->nblocks == 0 || hdr->nblocks > (1ull << 40)) {
		ret = -EINVAL;
		goto err_bad;
	}
	tags = malloc(hdr->nblocks * sizeof(*tags));
	if (!tags) {
		ret = -ENOMEM;
		goto err;
	}
	ret = read_full(fd, tags, hdr->nblocks * sizeof(*tags));
	if (ret < 0)
		goto err_bad;
	for (i = 0; i < hdr->nblocks; i++)
		tags[i] = le32toh(tags[i]);
	if (tags_checksum(tags, hdr->nblocks) != hdr->checksum) {
		ret = -EINVAL;
		goto err_bad;
	}
	close(fd);
	*tags_out = tags;
	return 0;

err_bad:
	bench_err("%s: not a valid vrio-bench state file (%s)", path,
		  ret == -ENODATA ? "truncated" : strerror(-ret));
	ret = -EINVAL;
err:
	free(tags);
	close(fd);
	return ret;
}

int workload_state_load(struct workload *w, const char *path)
{
	struct state_hdr hdr;
	uint32_t *tags;
	int ret;

	ret = state_read(path, &hdr, &tags);
	if (ret == -ENOENT)
		return ret;
	if (ret < 0) {
		if (ret != -EINVAL)
			bench_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	if (hdr.bs != w->bs || hdr.offset != w->offset || hdr.nblocks != w->nblocks) {
		bench_err("%s: made for bs %u, offset %llu, %llu blocks; this run has bs %u, offset %llu, %llu blocks",
			  path, hdr.bs, (unsigned long long)hdr.offset,
			  (unsigned long long)hdr.nblocks, w->bs, (unsigned long long)w->offset,
			  (unsigned long long)w->nblocks);
		free(tags);
		return -EINVAL;
	}
	if (!w->tags) {
		free(tags);
		return -EINVAL;
	}
	memcpy(w->tags, tags, w->nblocks * sizeof(*tags));
	free(tags);
	w->data_seed = hdr.data_seed;
	return 0;
}

int workload_state_open(struct workload *w, const char *path)
{
	struct state_hdr hdr;
	uint32_t *tags;
	int ret;

	ret = state_read(path, &hdr, &tags);
	if (ret < 0) {
		if (ret != -EINVAL)
			bench_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = workload_init(w, RW_READ, hdr.bs, hdr.offset, hdr.nblocks, hdr.data_seed, false);
	if (ret < 0) {
		free(tags);
		return ret;
	}
	w->tags = tags;
	return 0;
}

int workload_state_save(const struct workload *w, const char *path)
{
	struct state_hdr hdr;
	char *tmp = NULL;
	uint32_t *le = NULL;
	uint64_t i;
	int fd = -1, ret;

	if (!w->tags)
		return -EINVAL;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	le = malloc(w->nblocks * sizeof(*le));
	if (!le) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < w->nblocks; i++)
		le[i] = htole32(w->tags[i]);

	memcpy(hdr.magic, STATE_MAGIC, sizeof(hdr.magic));
	hdr.version = htole32(STATE_VERSION);
	hdr.bs = htole32(w->bs);
	hdr.offset = htole64(w->offset);
	hdr.nblocks = htole64(w->nblocks);
	hdr.data_seed = htole64(w->data_seed);
	hdr.checksum = htole64(tags_checksum(w->tags, w->nblocks));

	/* Written aside and renamed, so a crash never leaves half a map. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = write_full(fd, &hdr, sizeof(hdr));
	if (!ret)
		ret = write_full(fd, le, w->nblocks * sizeof(*le));
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	fd = -1;
	if (ret < 0)
		goto err_unlink;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	ret = 0;
	goto out;

err_unlink:
	unlink(tmp);
err:
	bench_err("%s: saving state: %s", path, strerror(-ret));
out:
	free(le);
	free(tmp);
	return ret;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int workload_check_file(const struct workload *w, const char *path, uint64_t file_offset,
			struct check_counts *c, bool zero_unwritten, bool quiet)
{
	uint8_t *buf = NULL, *scratch = NULL;
	char why[256];
	uint64_t b;
	int fd, ret = 0;

	memset(c, 0, sizeof(*c));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		bench_err("%s: %m", path);
		return ret;
	}
	buf = malloc(w->bs);
	scratch = malloc(w->bs);
	if (!buf || !scratch) {
		ret = -ENOMEM;
		goto out;
	}

	for (b = 0; b < w->nblocks; b++) {
		uint64_t pos = file_offset + b * w->bs;
		ssize_t n;

		if (!w->tags[b] && !zero_unwritten) {
			c->unwritten++;
			continue;
		}
		n = pread(fd, buf, w->bs, (off_t)pos);
		if (n < 0) {
			ret = -errno;
			bench_err("%s: read at %llu: %m", path, (unsigned long long)pos);
			goto out;
		}
		if (!w->tags[b]) {
			/* Never written by us: must still read as zeros (a hole, or
			 * past the end of the file). */
			c->unwritten++;
			if (all_zero(buf, (size_t)n))
				continue;
			snprintf(why, sizeof(why), "never written, but not zero");
		} else if ((size_t)n < w->bs) {
			c->written++;
			memset(buf + n, 0, w->bs - (size_t)n);
			snprintf(why, sizeof(why), "file ends inside the block");
		} else {
			c->written++;
			if (!workload_verify(w, b, w->tags[b], buf, scratch, why, sizeof(why))) {
				c->matched++;
				continue;
			}
		}
		c->mismatched++;
		if (c->mismatched <= VERIFY_PRINT_MAX && !quiet)
			bench_err("check-file: block %llu (file offset %llu): %s",
				  (unsigned long long)b, (unsigned long long)pos, why);
	}
	if (c->mismatched > VERIFY_PRINT_MAX && !quiet)
		bench_err("check-file: %llu further mismatches not shown",
			  (unsigned long long)(c->mismatched - VERIFY_PRINT_MAX));

out:
	free(buf);
	free(scratch);
	close(fd);
	return ret;
}
