/* SPDX-License-Identifier: BSD-3-Clause */
/* The io_uring file backend on a temporary file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bdev.h"

#define FILE_SIZE (1u << 20)

struct fixture {
	char path[256];
	struct vrio_topo_device td;
	struct ios_bdev *bdev;
	struct ios_bdev_chan *ch;
};

static int setup(void **state)
{
	const char *dir = getenv("TMPDIR");
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	assert_int_equal(ios_bdev_register_builtin(), 0);
	snprintf(f->path, sizeof(f->path), "%s/vrio-bdev-file-XXXXXX", dir ? dir : "/tmp");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	f->td.name = (char *)"file-disk";
	f->td.type = VRIO_DEV_BLK;
	f->td.queues = 1;
	f->td.queue_size = 64;
	f->td.backend.kind = VRIO_BACKEND_FILE;
	f->td.backend.path = f->path;
	f->td.backend.size = FILE_SIZE;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->ch)
		ios_bdev_chan_close(f->ch);
	if (f->bdev)
		ios_bdev_close(f->bdev);
	unlink(f->path);
	free(f);
	return 0;
}

static void open_dev(struct fixture *f, unsigned depth)
{
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), 0);
	assert_int_equal(ios_bdev_chan_open(f->bdev, depth, &f->ch), 0);
	assert_true(ios_bdev_chan_fd(f->ch) >= 0);
}

static unsigned completed;

static void count_cb(struct ios_bdev_io *io)
{
	completed++;
}

/* Submits and polls until the backend reports it. */
static int run_io(struct fixture *f, enum ios_bdev_op op, uint64_t off, void *buf, uint64_t len,
		  bool unmap)
{
	struct iovec iov[2];
	struct ios_bdev_io io;
	unsigned before = completed;
	int rc, spins = 0;

	memset(&io, 0, sizeof(io));
	io.op = op;
	io.offset = off;
	io.len = len;
	io.unmap = unmap;
	io.cb = count_cb;
	if (buf) {
		/* Two iovecs, so that the gather path is exercised too. */
		iov[0].iov_base = buf;
		iov[0].iov_len = len / 2;
		iov[1].iov_base = (uint8_t *)buf + len / 2;
		iov[1].iov_len = len - len / 2;
		io.iov = iov;
		io.iovcnt = 2;
	}
	rc = ios_bdev_submit(f->ch, &io);
	if (rc < 0)
		return rc;
	while (completed == before && spins++ < 10000000)
		ios_bdev_poll(f->ch, 64);
	assert_int_equal(completed, before + 1);
	return io.result;
}

static void *xalloc(size_t len, int fill)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len))
		fail_msg("out of memory");
	memset(p, fill, len);
	return p;
}

static void assert_fill(const uint8_t *p, size_t len, uint8_t want)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != want)
			fail_msg("byte %zu is %#x, not %#x", i, p[i], want);
}

static void test_open_creates_and_never_shrinks(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	open_dev(f, 64);
	assert_int_equal(f->bdev->size, FILE_SIZE);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE);
	ios_bdev_chan_close(f->ch);
	ios_bdev_close(f->bdev);
	f->ch = NULL;
	f->bdev = NULL;

	f->td.backend.size = FILE_SIZE / 2;
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), 0);
	assert_int_equal(f->bdev->size, FILE_SIZE / 2);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE);
	ios_bdev_close(f->bdev);

	f->td.backend.size = 0;
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), 0);
	assert_int_equal(f->bdev->size, FILE_SIZE);
	ios_bdev_close(f->bdev);
	f->bdev = NULL;

	/* Without a size, a missing file is an error rather than a new disk. */
	unlink(f->path);
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), -ENOENT);
	f->bdev = NULL;
}

static void test_write_read_flush_discard(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = xalloc(65536, 0xa5), *r = xalloc(65536, 0);

	open_dev(f, 64);
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, 4096, w, 65536, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 4096, r, 65536, false), 0);
	assert_memory_equal(w, r, 65536);
	assert_int_equal(run_io(f, IOS_BDEV_FLUSH, 0, NULL, 0, false), 0);

	/* Discard a hole in the middle: it reads back as zeroes. */
	assert_int_equal(run_io(f, IOS_BDEV_DISCARD, 8192, NULL, 16384, false), 0);
	memset(r, 0xff, 65536);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 4096, r, 65536, false), 0);
	assert_fill(r, 4096, 0xa5);
	assert_fill(r + 4096, 16384, 0);
	assert_fill(r + 20480, 65536 - 20480, 0xa5);

	/* Write zeroes, with and without unmap. */
	assert_int_equal(run_io(f, IOS_BDEV_WRITE_ZEROES, 4096, NULL, 4096, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_WRITE_ZEROES, 32768, NULL, 8192, true), 0);
	memset(r, 0xff, 65536);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 4096, r, 65536, false), 0);
	assert_fill(r, 20480, 0);
	assert_fill(r + 20480, 32768 - 4096 - 20480, 0xa5);
	assert_fill(r + 32768 - 4096, 8192, 0);
	assert_fill(r + 32768 - 4096 + 8192, 65536 - (32768 - 4096 + 8192), 0xa5);

	/* The last block, and nothing beyond it. */
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, FILE_SIZE - 4096, w, 4096, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_READ, FILE_SIZE, r, 512, false), -EINVAL);
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, FILE_SIZE - 512, w, 1024, false), -EINVAL);
	free(w);
	free(r);
}

/* A write reaches the kernel inside its submit, not at the next poll: the
 * io-server checks the host's lease just before the submit (lease.h), and
 * a write left in the ring could land after a hang, the lease lapsed. */
static void test_write_reaches_kernel_at_submit(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = xalloc(4096, 0x5a), r[4096];
	struct iovec iov = { .iov_base = w, .iov_len = 4096 };
	struct ios_bdev_io io;
	unsigned before = completed;
	int fd, tries;

	open_dev(f, 64);
	memset(&io, 0, sizeof(io));
	io.op = IOS_BDEV_WRITE;
	io.offset = 8192;
	io.len = 4096;
	io.iov = &iov;
	io.iovcnt = 1;
	io.cb = count_cb;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	/* No poll: the kernel has it (done inline, or by its worker soon). */
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	for (tries = 0; tries < 2000; tries++) {
		assert_int_equal(pread(fd, r, sizeof(r), 8192), (ssize_t)sizeof(r));
		if (!memcmp(r, w, sizeof(r)))
			break;
		usleep(1000);
	}
	close(fd);
	if (tries == 2000)
		fail_msg("the write did not reach the file within 2 s without a poll");
	for (tries = 0; completed == before && tries < 10000000; tries++)
		ios_bdev_poll(f->ch, 64);
	assert_int_equal(completed, before + 1);
	assert_int_equal(io.result, 0);
	free(w);
}

/* More ios than the rings hold: the rest wait inside the backend. */
static void test_deep_queue(void **state)
{
	enum { N = 200, BS = 4096 };
	struct fixture *f = *state;
	static struct ios_bdev_io ios[N];
	static struct iovec iov[N];
	uint8_t *buf = xalloc((size_t)N * BS, 0), *r = xalloc(BS, 0);
	unsigned before, i, spins = 0;

	open_dev(f, 8);
	before = completed;
	for (i = 0; i < N; i++) {
		memset(buf + (size_t)i * BS, (int)(i & 0xff), BS);
		iov[i].iov_base = buf + (size_t)i * BS;
		iov[i].iov_len = BS;
		memset(&ios[i], 0, sizeof(ios[i]));
		ios[i].op = IOS_BDEV_WRITE;
		ios[i].offset = (uint64_t)i * BS;
		ios[i].len = BS;
		ios[i].iov = &iov[i];
		ios[i].iovcnt = 1;
		ios[i].cb = count_cb;
		assert_int_equal(ios_bdev_submit(f->ch, &ios[i]), 0);
	}
	while (completed - before < N && spins++ < 100000000)
		ios_bdev_poll(f->ch, 16);
	assert_int_equal(completed - before, N);
	for (i = 0; i < N; i++)
		assert_int_equal(ios[i].result, 0);
	for (i = 0; i < N; i += 37) {
		assert_int_equal(run_io(f, IOS_BDEV_READ, (uint64_t)i * BS, r, BS, false), 0);
		assert_fill(r, BS, (uint8_t)(i & 0xff));
	}
	free(buf);
	free(r);
}

static void test_direct_io(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = xalloc(8192, 0x3c), *r = xalloc(8192, 0);
	int fd;

	fd = open(f->path, O_RDWR | O_DIRECT);
	if (fd < 0) {
		/* tmpfs and friends: nothing to test here. */
		free(w);
		free(r);
		skip();
	}
	close(fd);
	f->td.backend.direct = true;
	open_dev(f, 16);
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, 512 * 1024, w, 8192, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 512 * 1024, r, 8192, false), 0);
	assert_memory_equal(w, r, 8192);
	free(w);
	free(r);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = xalloc(4096, 1);

	/* Create it first; a read-only device never extends its file. */
	open_dev(f, 8);
	ios_bdev_chan_close(f->ch);
	ios_bdev_close(f->bdev);
	f->td.read_only = true;
	open_dev(f, 8);
	assert_true(f->bdev->read_only);
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, 0, w, 4096, false), -EROFS);
	assert_int_equal(run_io(f, IOS_BDEV_DISCARD, 0, NULL, 4096, false), -EROFS);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 0, w, 4096, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_FLUSH, 0, NULL, 0, false), 0);
	free(w);
}

/* A file cut short behind the server's back: a read there fails with
 * EIO instead of spinning on zero-byte reads. */
static void test_file_shrunk_under_us(void **state)
{
	struct fixture *f = *state;
	uint8_t *r = xalloc(8192, 0);

	open_dev(f, 8);
	assert_int_equal(truncate(f->path, 4096), 0);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 0, r, 4096, false), 0);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 65536, r, 8192, false), -EIO);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_and_never_shrinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_flush_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_reaches_kernel_at_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_shrunk_under_us, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
