// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "workload.h"

#define BS 4096u

static void test_rw_modes(void **state)
{
	static const struct {
		const char *name;
		int ret;
		enum rw_mode mode;
		bool writes;
	} cases[] = {
		{ "read", 0, RW_READ, false },
		{ "write", 0, RW_WRITE, true },
		{ "randread", 0, RW_RANDREAD, false },
		{ "randwrite", 0, RW_RANDWRITE, true },
		{ "randrw", 0, RW_RANDRW, true },
		{ "rw", -EINVAL, RW_READ, false },
		{ "", -EINVAL, RW_READ, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rw_mode m = RW_READ;

		assert_int_equal(rw_mode_parse(cases[i].name, &m), cases[i].ret);
		if (cases[i].ret)
			continue;
		assert_int_equal(m, cases[i].mode);
		assert_string_equal(rw_mode_name(m), cases[i].name);
		assert_int_equal(rw_mode_writes(m), cases[i].writes);
	}
}

static void test_fill_verify(void **state)
{
	struct workload w;
	uint8_t *buf = malloc(BS), *other = malloc(BS), *scratch = malloc(BS);
	char why[256];

	(void)state;
	assert_int_equal(workload_init(&w, RW_RANDWRITE, BS, 1u << 20, 64, 42, true), 0);
	workload_fill(&w, 5, 3, buf);
	assert_int_equal(workload_verify(&w, 5, 3, buf, scratch, why, sizeof(why)), 0);
	/* Another tag, another block: both are told apart. */
	assert_int_equal(workload_verify(&w, 5, 4, buf, scratch, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "expected tag 4"));
	assert_int_equal(workload_verify(&w, 6, 3, buf, scratch, why, sizeof(why)), -EILSEQ);

	/* A sector from elsewhere is reported with where it came from. */
	workload_fill(&w, 9, 3, other);
	memcpy(buf + 1024, other + 512, 512);
	assert_int_equal(workload_verify(&w, 5, 3, buf, scratch, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "1 of 8 sectors differ"));
	assert_non_null(strstr(why, "holds lba 2121"));

	/* One flipped payload bit. */
	workload_fill(&w, 5, 3, buf);
	buf[4000] ^= 1;
	assert_int_equal(workload_verify(&w, 5, 3, buf, scratch, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "payload corrupt"));

	/* Zeroes carry no tag. */
	memset(buf, 0, BS);
	assert_int_equal(workload_verify(&w, 5, 3, buf, scratch, why, sizeof(why)), -EILSEQ);
	assert_non_null(strstr(why, "no vrio-bench tag"));

	/* The data seed matters. */
	workload_fill(&w, 5, 3, buf);
	w.data_seed = 43;
	assert_int_equal(workload_verify(&w, 5, 3, buf, scratch, why, sizeof(why)), -EILSEQ);
	workload_fini(&w);
	free(buf);
	free(other);
	free(scratch);
}

static void test_next_never_busy(void **state)
{
	static const enum rw_mode modes[] = { RW_READ, RW_RANDWRITE, RW_RANDRW };
	size_t m;

	(void)state;
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct workload w;
		uint64_t blocks[16], b;
		bool write;
		int i;

		assert_int_equal(workload_init(&w, modes[m], 512, 0, 16, 7, false), 0);
		for (i = 0; i < 16; i++) {
			int j;

			assert_int_equal(workload_next(&w, &blocks[i], &write), 0);
			assert_true(blocks[i] < 16);
			for (j = 0; j < i; j++)
				assert_true(blocks[j] != blocks[i]);
		}
		assert_int_equal(workload_next(&w, &b, &write), -EBUSY);
		workload_release(&w, blocks[3]);
		assert_int_equal(workload_next(&w, &b, &write), 0);
		assert_int_equal(b, blocks[3]);
		workload_fini(&w);
	}
}

static void test_sequential(void **state)
{
	struct workload w;
	uint64_t b, i;
	bool write;

	(void)state;
	assert_int_equal(workload_init(&w, RW_WRITE, BS, 0, 10, 1, false), 0);
	for (i = 0; i < 25; i++) {
		assert_int_equal(workload_next(&w, &b, &write), 0);
		assert_int_equal(b, i % 10);
		assert_true(write);
		workload_release(&w, b);
	}
	workload_fini(&w);
}

static void test_tags(void **state)
{
	struct workload w;

	(void)state;
	assert_int_equal(workload_init(&w, RW_RANDWRITE, BS, 0, 4, 1, true), 0);
	assert_int_equal(workload_next_tag(&w, 0), 1);
	w.tags[1] = 41;
	assert_int_equal(workload_next_tag(&w, 1), 42);
	/* Tag 0 means never written, so the counter skips it. */
	w.tags[2] = UINT32_MAX;
	assert_int_equal(workload_next_tag(&w, 2), 1);
	workload_fini(&w);
}

static void test_state_roundtrip(void **state)
{
	char dir[] = "/tmp/test_bench_workload.XXXXXX", path[128], img[128];
	struct workload w, r, o;
	struct check_counts c;
	uint8_t *buf = malloc(BS);
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(img, sizeof(img), "%s/img", dir);

	assert_int_equal(workload_init(&w, RW_RANDWRITE, BS, 8192, 32, 99, true), 0);
	assert_int_equal(workload_state_load(&w, path), -ENOENT);
	w.tags[0] = 1;
	w.tags[7] = 5;
	w.tags[31] = 2;
	assert_int_equal(workload_state_save(&w, path), 0);

	/* Same geometry: the map and the data seed come back. */
	assert_int_equal(workload_init(&r, RW_RANDREAD, BS, 8192, 32, 1, true), 0);
	assert_int_equal(workload_state_load(&r, path), 0);
	assert_memory_equal(r.tags, w.tags, 32 * sizeof(uint32_t));
	assert_int_equal(r.data_seed, 99);
	workload_fini(&r);

	/* Other geometry: refused. */
	assert_int_equal(workload_init(&r, RW_RANDREAD, BS, 0, 32, 1, true), 0);
	assert_int_equal(workload_state_load(&r, path), -EINVAL);
	workload_fini(&r);

	/* An image holding the expected blocks passes the offline check... */
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192 + 32 * BS), 0);
	workload_fill(&w, 0, 1, buf);
	assert_int_equal(pwrite(fd, buf, BS, 8192), BS);
	workload_fill(&w, 7, 5, buf);
	assert_int_equal(pwrite(fd, buf, BS, 8192 + 7 * BS), BS);
	workload_fill(&w, 31, 2, buf);
	assert_int_equal(pwrite(fd, buf, BS, 8192 + 31 * BS), BS);

	assert_int_equal(workload_state_open(&o, path), 0);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, false, true), 0);
	assert_int_equal(c.written, 3);
	assert_int_equal(c.matched, 3);
	assert_int_equal(c.mismatched, 0);
	assert_int_equal(c.unwritten, 29);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, true, true), 0);
	assert_int_equal(c.mismatched, 0);
	/* A stray byte in a block we never wrote fails the strict check only. */
	assert_int_equal(pwrite(fd, "x", 1, 8192 + 3 * BS + 17), 1);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, false, true), 0);
	assert_int_equal(c.mismatched, 0);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, true, true), 0);
	assert_int_equal(c.mismatched, 1);
	assert_int_equal(c.unwritten, 29);

	/* ...and fails once a block is stale or the file is short. */
	workload_fill(&w, 7, 4, buf);
	assert_int_equal(pwrite(fd, buf, BS, 8192 + 7 * BS), BS);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, false, true), 0);
	assert_int_equal(c.mismatched, 1);
	assert_int_equal(ftruncate(fd, 8192 + 31 * BS + 100), 0);
	assert_int_equal(workload_check_file(&o, img, o.offset, &c, false, true), 0);
	assert_int_equal(c.mismatched, 2);
	close(fd);
	workload_fini(&o);

	/* A truncated state file is refused. */
	assert_int_equal(truncate(path, 60), 0);
	assert_int_equal(workload_state_open(&o, path), -EINVAL);

	workload_fini(&w);
	unlink(path);
	unlink(img);
	rmdir(dir);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rw_modes),
		cmocka_unit_test(test_fill_verify),
		cmocka_unit_test(test_next_never_busy),
		cmocka_unit_test(test_sequential),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_state_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
