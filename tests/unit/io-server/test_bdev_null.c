/* SPDX-License-Identifier: BSD-3-Clause */
/* The null backend: what each operation answers, and what it leaves behind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bdev.h"
#include "frame.h"

#define DEV_SIZE (1ull << 20)

struct fixture {
	struct vrio_topo_device td;
	struct ios_bdev *bdev;
	struct ios_bdev_chan *ch;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ios_bdev_register_builtin(), 0);
	f->td.name = (char *)"null-disk";
	f->td.type = VRIO_DEV_BLK;
	f->td.queues = 1;
	f->td.queue_size = 64;
	f->td.backend.kind = VRIO_BACKEND_NULL;
	f->td.backend.size = DEV_SIZE;
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
	free(f);
	return 0;
}

static void open_dev(struct fixture *f)
{
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), 0);
	assert_int_equal(ios_bdev_chan_open(f->bdev, 64, &f->ch), 0);
}

static unsigned completed;

static void count_cb(struct ios_bdev_io *io)
{
	completed++;
}

static void prep(struct ios_bdev_io *io, struct iovec *iov, enum ios_bdev_op op, uint64_t off,
		 void *buf, uint64_t len)
{
	memset(io, 0, sizeof(*io));
	io->op = op;
	io->offset = off;
	io->len = len;
	io->cb = count_cb;
	if (buf) {
		iov->iov_base = buf;
		iov->iov_len = len;
		io->iov = iov;
		io->iovcnt = 1;
	}
}

/* Submits; the answer comes from the next poll, never from the submit. */
static int run_io(struct fixture *f, enum ios_bdev_op op, uint64_t off, void *buf, uint64_t len)
{
	struct ios_bdev_io io;
	struct iovec iov;
	int rc;

	prep(&io, &iov, op, off, buf, len);
	completed = 0;
	rc = ios_bdev_submit(f->ch, &io);
	if (rc < 0)
		return rc;
	assert_int_equal(completed, 0);
	assert_int_equal(ios_bdev_poll(f->ch, 16), 1);
	assert_int_equal(completed, 1);
	assert_int_equal(ios_bdev_poll(f->ch, 16), 0);
	return io.result;
}

static void test_registered(void **state)
{
	const struct ios_bdev_ops *ops = ios_bdev_find(VRIO_BACKEND_NULL);

	assert_ptr_equal(ops, &ios_bdev_null_ops);
	assert_string_equal(ops->name, "null");
	/* The model offers discard and write-zeroes for it. */
	assert_non_null(ops->discard);
	assert_non_null(ops->write_zeroes);
	/* Completions come from poll() right after the submit. */
	assert_null(ops->chan_fd);
}

static void test_open(void **state)
{
	struct fixture *f = *state;

	/* Nothing is allocated for the size: a petabyte opens. */
	f->td.backend.size = 1ull << 50;
	open_dev(f);
	assert_int_equal(f->bdev->size, 1ull << 50);
	assert_int_equal(f->bdev->block_size, IOS_SECTOR_SIZE);
	assert_int_equal(f->bdev->phys_block_size, IOS_SECTOR_SIZE);
	assert_false(f->bdev->read_only);
	assert_true(ios_bdev_has_discard(f->bdev));
	assert_true(ios_bdev_has_write_zeroes(f->bdev));
	ios_bdev_chan_close(f->ch);
	f->ch = NULL;
	ios_bdev_close(f->bdev);
	f->bdev = NULL;

	f->td.backend.size = IOS_SECTOR_SIZE + 100;
	open_dev(f);
	assert_int_equal(f->bdev->size, IOS_SECTOR_SIZE);
	ios_bdev_chan_close(f->ch);
	f->ch = NULL;
	ios_bdev_close(f->bdev);
	f->bdev = NULL;

	f->td.backend.size = IOS_SECTOR_SIZE - 1;
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), -EINVAL);
	f->bdev = NULL;
}

struct op_case {
	const char *what;
	enum ios_bdev_op op;
	uint64_t off, len;
	bool read_only, fault;
	int submit;	/* what the submit returns */
	int result;	/* then what the completion carries */
};

static const struct op_case op_cases[] = {
	{ "read", IOS_BDEV_READ, 4096, 4096, false, false, 0, 0 },
	{ "read the last sector", IOS_BDEV_READ, DEV_SIZE - 512, 512, false, false, 0, 0 },
	{ "read past the end", IOS_BDEV_READ, DEV_SIZE - 512, 1024, false, false, 0, -EINVAL },
	{ "read far past the end", IOS_BDEV_READ, UINT64_MAX - 511, 512, false, false, 0, -EINVAL },
	{ "read, faulty", IOS_BDEV_READ, 0, 4096, false, true, 0, -EIO },
	{ "read, read-only", IOS_BDEV_READ, 0, 4096, true, false, 0, 0 },
	{ "write", IOS_BDEV_WRITE, 0, 4096, false, false, 0, 0 },
	{ "write past the end", IOS_BDEV_WRITE, DEV_SIZE, 512, false, false, 0, -EINVAL },
	{ "write, faulty", IOS_BDEV_WRITE, 0, 4096, false, true, 0, -EIO },
	{ "write, read-only", IOS_BDEV_WRITE, 0, 4096, true, false, -EROFS, 0 },
	{ "flush", IOS_BDEV_FLUSH, 0, 0, false, false, 0, 0 },
	{ "flush, read-only", IOS_BDEV_FLUSH, 0, 0, true, false, 0, 0 },
	{ "flush, faulty", IOS_BDEV_FLUSH, 0, 0, false, true, 0, -EIO },
	{ "discard", IOS_BDEV_DISCARD, 0, DEV_SIZE, false, false, 0, 0 },
	{ "discard past the end", IOS_BDEV_DISCARD, 512, DEV_SIZE, false, false, 0, -EINVAL },
	{ "discard, read-only", IOS_BDEV_DISCARD, 0, 512, true, false, -EROFS, 0 },
	{ "write zeroes", IOS_BDEV_WRITE_ZEROES, 512, 8192, false, false, 0, 0 },
	{ "write zeroes, faulty", IOS_BDEV_WRITE_ZEROES, 0, 512, false, true, 0, -EIO },
	{ "write zeroes, read-only", IOS_BDEV_WRITE_ZEROES, 0, 512, true, false, -EROFS, 0 },
};

static void test_ops(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[8192];
	unsigned failed = 0;

	for (size_t i = 0; i < sizeof(op_cases) / sizeof(op_cases[0]); i++) {
		const struct op_case *c = &op_cases[i];
		bool data = c->op == IOS_BDEV_READ || c->op == IOS_BDEV_WRITE;
		int rc;

		f->td.read_only = c->read_only;
		open_dev(f);
		ios_bdev_set_fault(f->bdev, c->fault);
		assert_true(c->len <= sizeof(buf) || !data);
		rc = run_io(f, c->op, c->off, data ? buf : NULL, c->len);
		if (rc != (c->submit ? c->submit : c->result)) {
			print_message("case '%s': want %d, got %d\n", c->what,
				      c->submit ? c->submit : c->result, rc);
			failed++;
		}
		ios_bdev_chan_close(f->ch);
		f->ch = NULL;
		ios_bdev_close(f->bdev);
		f->bdev = NULL;
	}
	f->td.read_only = false;
	assert_int_equal(failed, 0);
}

/* A read hands back zeroes whatever the buffer held: it is the io-server's
 * and was another request's. Across iovecs, and only the io's length. */
static void test_read_zeroes_the_buffer(void **state)
{
	struct fixture *f = *state;
	uint8_t a[1024], b[4096];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct ios_bdev_io io;

	open_dev(f);
	memset(a, 0xa5, sizeof(a));
	memset(b, 0x5a, sizeof(b));
	prep(&io, iov, IOS_BDEV_READ, 0, NULL, 1024 + 2048);
	io.iov = iov;
	io.iovcnt = 2;
	completed = 0;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_int_equal(io.result, 0);
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal(a[i], 0);
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], i < 2048 ? 0 : 0x5a);

	/* A failed read leaves the buffer alone. */
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(run_io(f, IOS_BDEV_READ, DEV_SIZE, b, 512), -EINVAL);
	assert_int_equal(b[0], 0x5a);
}

/* A read that may lend (no stage works on its data) writes nothing into
 * the buffer: iov[0] points at zeroes of the backend's, marked lent. One
 * that may not, or that fails, or spans two iovecs, lends nothing. */
static void test_read_lends_zeroes(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[VRIO_FRAME_MAX_PAYLOAD];
	struct iovec iov[2] = { { buf, 4096 }, { buf + 4096, 4096 } };
	struct ios_bdev_io io;
	const uint8_t *p;

	open_dev(f);
	memset(buf, 0xa5, sizeof(buf));
	prep(&io, iov, IOS_BDEV_READ, 8192, buf, 4096);
	io.lend = true;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_int_equal(io.result, 0);
	assert_true(io.lent);
	p = io.iov[0].iov_base;
	assert_ptr_not_equal(p, buf);
	assert_int_equal(io.iov[0].iov_len, 4096);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(buf[0], 0xa5);
	assert_int_equal(buf[4095], 0xa5);

	/* The largest read a frame carries is lent too. */
	prep(&io, iov, IOS_BDEV_READ, 0, buf, DEV_SIZE);
	io.lend = true;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_true(io.lent);
	p = io.iov[0].iov_base;
	assert_int_equal(p[DEV_SIZE - 1], 0);
	assert_int_equal(buf[DEV_SIZE - 1], 0xa5);

	/* Without leave, the same read zeroes the buffer, and is not lent
	 * (the flag a previous io left is cleared by the submit). */
	iov[0].iov_base = buf;
	prep(&io, iov, IOS_BDEV_READ, 8192, buf, 4096);
	io.lent = true;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_false(io.lent);
	assert_ptr_equal(io.iov[0].iov_base, buf);
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[4095], 0);

	/* A failed read lends nothing and leaves the buffer alone. */
	memset(buf, 0xa5, 8192);
	prep(&io, iov, IOS_BDEV_READ, DEV_SIZE, buf, 512);
	io.lend = true;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_int_equal(io.result, -EINVAL);
	assert_false(io.lent);
	assert_ptr_equal(io.iov[0].iov_base, buf);
	assert_int_equal(buf[0], 0xa5);

	/* Two iovecs: zeroed in place, as before. */
	prep(&io, iov, IOS_BDEV_READ, 0, NULL, 8192);
	iov[0].iov_base = buf;
	io.iov = iov;
	io.iovcnt = 2;
	io.lend = true;
	assert_int_equal(ios_bdev_submit(f->ch, &io), 0);
	assert_int_equal(ios_bdev_poll(f->ch, 1), 1);
	assert_false(io.lent);
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[8191], 0);
}

/* What was written is not kept. */
static void test_writes_are_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];

	open_dev(f);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(run_io(f, IOS_BDEV_WRITE, 8192, buf, sizeof(buf)), 0);
	/* The write's data stays as it was: the backend reads nothing into it. */
	assert_int_equal(buf[0], 0xee);
	assert_int_equal(run_io(f, IOS_BDEV_READ, 8192, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
}

/* Completions in submission order, at most `budget` a poll. */
static void test_poll_budget(void **state)
{
	struct fixture *f = *state;
	struct ios_bdev_io io[5];
	struct iovec iov[5];
	uint8_t buf[5][512];

	open_dev(f);
	completed = 0;
	for (unsigned i = 0; i < 5; i++) {
		prep(&io[i], &iov[i], i % 2 ? IOS_BDEV_WRITE : IOS_BDEV_READ, i * 512ull, buf[i],
		     512);
		assert_int_equal(ios_bdev_submit(f->ch, &io[i]), 0);
	}
	assert_int_equal(completed, 0);
	assert_int_equal(ios_bdev_poll(f->ch, 2), 2);
	assert_int_equal(completed, 2);
	assert_int_equal(ios_bdev_poll(f->ch, 2), 2);
	assert_int_equal(ios_bdev_poll(f->ch, 2), 1);
	assert_int_equal(ios_bdev_poll(f->ch, 2), 0);
	assert_int_equal(completed, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(io[i].result, 0);
		assert_null(io[i].next);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_zeroes_the_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_lends_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_budget, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
