/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The pcap writer (pcap.c), read back in C: the file header (nanosecond
 * magic, version 2.4, snaplen, LINKTYPE_ETHERNET), each record's lengths
 * and bytes, frames cut at snaplen with their original length kept,
 * timestamps; rotation at max_size into PATH.1, PATH.2, ... each a whole
 * file of its own; a larger snaplen starting a new file; a ring that
 * fills refusing frames while every frame it took reaches the file; a
 * second capture to a file another writes refused; and a path that
 * cannot be opened failing with the path. Then the capture
 * stage in a chain: the frame goes on, and is in the file once the stage
 * is gone.
 */
#include <errno.h>
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

#include "ioserver_internal.h"
#include "pcap.h"

struct hdr {
	uint32_t magic;
	uint16_t major, minor;
	int32_t zone;
	uint32_t sigfigs, snaplen, linktype;
};

struct rec {
	uint32_t sec, nsec, incl, orig;
};

static char dir[] = "/tmp/vrio-pcap-XXXXXX";

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fill(uint8_t *f, uint32_t len, uint32_t seq)
{
	for (uint32_t i = 0; i < len; i++)
		f[i] = (uint8_t)(seq * 13u + i);
}

/* Reads a capture file; checks its header; returns its records' count and
 * checks each against the frame seq (first + index), len_of(seq) bytes long
 * and cut at snaplen. */
static unsigned check_file(const char *path, unsigned snaplen, uint32_t first,
			   uint32_t (*len_of)(uint32_t), uint64_t *size)
{
	FILE *fp = fopen(path, "rb");
	uint8_t want[9100], got[9100];
	struct hdr h;
	struct rec r;
	unsigned n = 0;
	uint32_t len;
	struct stat sb;

	if (!fp)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fread(&h, sizeof(h), 1, fp), 1);
	assert_int_equal(h.magic, 0xa1b23c4d);
	assert_int_equal(h.major, 2);
	assert_int_equal(h.minor, 4);
	assert_int_equal(h.zone, 0);
	assert_int_equal(h.snaplen, snaplen);
	assert_int_equal(h.linktype, 1);
	while (fread(&r, sizeof(r), 1, fp) == 1) {
		len = len_of(first + n);
		assert_int_equal(r.orig, len);
		assert_int_equal(r.incl, len < snaplen ? len : snaplen);
		assert_true(r.nsec < 1000000000u);
		assert_int_equal((uint64_t)r.sec * 1000000000ull + r.nsec,
				 1700000000ull * 1000000000ull + (first + n) * 1000ull);
		assert_int_equal(fread(got, 1, r.incl, fp), r.incl);
		fill(want, len, first + n);
		assert_memory_equal(got, want, r.incl);
		n++;
	}
	assert_true(feof(fp));
	fclose(fp);
	assert_int_equal(stat(path, &sb), 0);
	*size = (uint64_t)sb.st_size;
	return n;
}

static uint32_t len_mixed(uint32_t seq)
{
	return 60 + (seq * 97u) % 1455;
}

static uint32_t len_200(uint32_t seq)
{
	return 200;
}

static uint64_t ts(uint32_t seq)
{
	return 1700000000ull * 1000000000ull + seq * 1000ull;
}

static void add_frames(struct ios_pcap *p, uint32_t first, uint32_t n, uint32_t (*len_of)(uint32_t))
{
	uint8_t f[9100];

	for (uint32_t s = first; s < first + n; s++) {
		fill(f, len_of(s), s);
		/* The writer keeps up with a producer that waits for room. */
		while (!ios_pcap_add(p, f, len_of(s), ts(s)))
			usleep(100);
	}
}

static void test_records(void **state)
{
	struct ios_pcap_opts o = { .snaplen = 128 };
	struct ios_pcap *p;
	char path[128], why[256] = "";
	uint64_t size, want = 24;

	snprintf(path, sizeof(path), "%s/one.pcap", dir);
	o.path = path;
	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), 0);
	add_frames(p, 0, 5000, len_mixed);
	ios_pcap_close(p);
	assert_int_equal(check_file(path, 128, 0, len_mixed, &size), 5000);
	for (uint32_t s = 0; s < 5000; s++)
		want += 16 + (len_mixed(s) < 128 ? len_mixed(s) : 128);
	assert_int_equal(size, want);
}

/* Rotation at 64 KiB: 200-byte frames make 216-byte records, 303 of them
 * fit after the header; every file is whole, none larger. */
static void test_rotation(void **state)
{
	struct ios_pcap_opts o = { .snaplen = 65535, .max_size = 65536 };
	struct ios_pcap *p;
	char path[128], name[160], why[256] = "";
	unsigned total = 0, n, files = 0;
	uint64_t size;

	snprintf(path, sizeof(path), "%s/rot.pcap", dir);
	o.path = path;
	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), 0);
	add_frames(p, 0, 2000, len_200);
	ios_pcap_close(p);
	for (;; files++) {
		if (files)
			snprintf(name, sizeof(name), "%s.%u", path, files);
		else
			snprintf(name, sizeof(name), "%s", path);
		if (access(name, F_OK) != 0)
			break;
		n = check_file(name, 65535, total, len_200, &size);
		assert_true(size <= 65536);
		if (total + n < 2000)
			assert_int_equal(n, (65536 - 24) / 216);
		total += n;
	}
	assert_int_equal(total, 2000);
	assert_int_equal(files, (2000 + 302) / 303);
}

static void test_snaplen_grows(void **state)
{
	struct ios_pcap_opts o = { .snaplen = 64 };
	struct ios_pcap *p;
	char path[128], name[160], why[256] = "";
	uint64_t size;

	snprintf(path, sizeof(path), "%s/snap.pcap", dir);
	o.path = path;
	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), 0);
	add_frames(p, 0, 10, len_200);
	ios_pcap_set(p, 1000, 0);
	add_frames(p, 10, 10, len_200);
	ios_pcap_close(p);
	assert_int_equal(check_file(path, 64, 0, len_200, &size), 10);
	snprintf(name, sizeof(name), "%s.1", path);
	assert_int_equal(check_file(name, 1000, 10, len_200, &size), 10);
}

/* A producer faster than the disk: refused frames are refused whole, and
 * every frame taken is in the file, in order. */
static void test_ring_full(void **state)
{
	struct ios_pcap_opts o = { .snaplen = 65535, .ring_bytes = 256 << 10 };
	struct ios_pcap_stats st;
	struct ios_pcap *p;
	char path[128], why[256] = "";
	uint8_t f[1500];
	unsigned taken = 0, refused = 0;
	FILE *fp;
	struct hdr h;
	struct rec r;
	uint32_t seq, last = 0;

	snprintf(path, sizeof(path), "%s/full.pcap", dir);
	o.path = path;
	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), 0);
	for (uint32_t s = 1; s <= 20000; s++) {
		memset(f, 0, sizeof(f));
		memcpy(f, &s, sizeof(s));
		if (ios_pcap_add(p, f, sizeof(f), ts(s)))
			taken++;
		else
			refused++;
	}
	ios_pcap_get_stats(p, &st);
	assert_true(st.queued <= 256 << 10);
	ios_pcap_close(p);
	printf("ring full: %u frames taken, %u refused\n", taken, refused);
	assert_true(refused > 0);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(&h, sizeof(h), 1, fp), 1);
	for (unsigned i = 0; i < taken; i++) {
		assert_int_equal(fread(&r, sizeof(r), 1, fp), 1);
		assert_int_equal(r.incl, sizeof(f));
		assert_int_equal(fread(f, 1, sizeof(f), fp), sizeof(f));
		memcpy(&seq, f, sizeof(seq));
		assert_true(seq > last);
		last = seq;
	}
	assert_int_equal(fread(&r, 1, 1, fp), 0);
	fclose(fp);
}

/* Two captures never write one file: the second is refused and the
 * first's file left whole; once the first is closed the path is free. */
static void test_one_writer(void **state)
{
	struct ios_pcap_opts o = { .snaplen = 100 };
	struct ios_pcap *p, *q = NULL;
	char path[128], alias[160], why[512] = "";
	uint64_t size;

	snprintf(path, sizeof(path), "%s/one-writer.pcap", dir);
	snprintf(alias, sizeof(alias), "%s/../%s/one-writer.pcap", dir, strrchr(dir, '/') + 1);
	o.path = path;
	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), 0);
	add_frames(p, 0, 10, len_200);
	o.path = alias;
	assert_int_equal(ios_pcap_open(&o, &q, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "another capture writes it"));
	assert_null(q);
	ios_pcap_close(p);
	assert_int_equal(check_file(path, 100, 0, len_200, &size), 10);
	assert_int_equal(ios_pcap_open(&o, &q, why, sizeof(why)), 0);
	ios_pcap_close(q);
	assert_int_equal(check_file(path, 100, 0, len_200, &size), 0);
}

static void test_open_fails(void **state)
{
	struct ios_pcap_opts o = { .path = "/nonexistent-dir/x.pcap", .snaplen = 100 };
	struct ios_pcap *p = NULL;
	char why[256] = "";

	assert_int_equal(ios_pcap_open(&o, &p, why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "cannot open /nonexistent-dir/x.pcap: No such file or directory");
	assert_null(p);
}

/* The stage: frames both ways go on and are in the file once it is gone;
 * a path it cannot open fails the chain with the device and the path. */
static void test_stage(void **state)
{
	char text[1024], path[128], err[256] = "", why[512] = "";
	struct vrio_topology *t = NULL;
	struct ios_device d = { .name = "nic" };
	struct ios_chain *c = NULL;
	struct ios_req req;
	uint8_t f[300];

	snprintf(path, sizeof(path), "%s/stage.pcap", dir);
	snprintf(text, sizeof(text),
		 "version: 1\nio_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\n"
		 "hosts:\n  - name: host0\n"
		 "devices:\n  - name: nic\n    type: net\n    host: host0\n    io_server: io0\n"
		 "    socket: /run/vrio/nic.sock\n    mac: \"52:54:00:00:00:01\"\n"
		 "    network: lan\n    interpose:\n      - capture: {file: %s, snaplen: 100}\n"
		 "  - name: nic2\n    type: net\n    host: host0\n    io_server: io0\n"
		 "    socket: /run/vrio/nic2.sock\n    mac: \"52:54:00:00:00:02\"\n"
		 "    network: lan\n    interpose:\n"
		 "      - capture: {file: /nonexistent-dir/y.pcap}\n"
		 "networks:\n  - name: lan\n", path);
	assert_int_equal(vrio_topology_parse("cap.yaml", text, strlen(text), &t, err, sizeof(err)), 0);
	assert_int_equal(ios_chain_build(&d, &t->devices[0], &c, why, sizeof(why)), 0);
	d.chain = c;
	for (uint32_t s = 0; s < 20; s++) {
		fill(f, len_200(s), s);
		memset(&req, 0, sizeof(req));
		req.dev = &d;
		req.t_start = vrio_now_ns();
		req.u.net = (struct ios_net_req){ .eth = f, .len = len_200(s), .out = s & 1 };
		assert_true(ios_chain_run(&d, &req));
	}
	assert_int_equal(c->stages[0]->st.requests, 20);
	assert_int_equal(c->stages[0]->st.drops[IOS_STAGE_DROP_BUFFER], 0);
	ios_chain_put(c);
	/* The stage's timestamps are its clock's: only the frames are checked. */
	{
		FILE *fp = fopen(path, "rb");
		struct hdr h;
		struct rec r;
		unsigned n = 0;

		assert_non_null(fp);
		assert_int_equal(fread(&h, sizeof(h), 1, fp), 1);
		assert_int_equal(h.snaplen, 100);
		while (fread(&r, sizeof(r), 1, fp) == 1) {
			assert_int_equal(r.incl, 100);
			assert_int_equal(r.orig, 200);
			assert_int_equal(fread(f, 1, r.incl, fp), r.incl);
			n++;
		}
		fclose(fp);
		assert_int_equal(n, 20);
	}

	d.chain = NULL;
	c = NULL;
	why[0] = '\0';
	snprintf(d.name, sizeof(d.name), "nic2");
	assert_int_equal(ios_chain_build(&d, &t->devices[1], &c, why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "device 'nic2': cannot open /nonexistent-dir/y.pcap: "
				 "No such file or directory");
	vrio_topology_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_snaplen_grows),
		cmocka_unit_test(test_ring_full),
		cmocka_unit_test(test_one_writer),
		cmocka_unit_test(test_open_fails),
		cmocka_unit_test(test_stage),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
