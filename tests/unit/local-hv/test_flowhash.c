/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The receive queue of a frame for a multiqueue guest: the frames of one
 * flow (whatever their payload, length or fragment) land on one queue,
 * different flows spread over the queues, VLAN tags are looked through,
 * non-IP and cut-short frames still get a queue, and a queue index is
 * always below the number of queues.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flowhash.h"

struct flow {
	unsigned vlans;		/* tags in front of the ethertype */
	int v6;
	uint8_t proto;
	uint32_t src, dst;	/* low 32 bits of the addresses */
	uint16_t sport, dport;
	uint16_t frag;		/* IPv4 flags and offset field */
};

/* Build an Ethernet frame of `len` bytes (payload filled with `fill`). */
static uint32_t build(uint8_t *b, const struct flow *f, uint32_t len, uint8_t fill)
{
	static const uint8_t dmac[6] = { 0x52, 0x54, 0, 0, 0, 1 }, smac[6] = { 0x52, 0x54, 0, 0, 0, 2 };
	uint32_t off = 12, l4;

	memset(b, fill, len);
	memcpy(b, dmac, 6);
	memcpy(b + 6, smac, 6);
	for (unsigned i = 0; i < f->vlans; i++) {
		b[off] = i == 0 && f->vlans == 2 ? 0x88 : 0x81;
		b[off + 1] = i == 0 && f->vlans == 2 ? 0xa8 : 0x00;
		b[off + 2] = 0;
		b[off + 3] = (uint8_t)(10 + i);
		off += 4;
	}
	b[off] = f->v6 ? 0x86 : 0x08;
	b[off + 1] = f->v6 ? 0xdd : 0x00;
	off += 2;
	if (f->v6) {
		b[off] = 0x60;
		b[off + 6] = f->proto;
		memset(b + off + 8, 0xfd, 32);
		memcpy(b + off + 20, &f->src, 4);
		memcpy(b + off + 36, &f->dst, 4);
		l4 = off + 40;
	} else {
		b[off] = 0x45;
		b[off + 6] = (uint8_t)(f->frag >> 8);
		b[off + 7] = (uint8_t)f->frag;
		b[off + 9] = f->proto;
		memcpy(b + off + 12, &f->src, 4);
		memcpy(b + off + 16, &f->dst, 4);
		l4 = off + 20;
	}
	b[l4] = (uint8_t)(f->sport >> 8);
	b[l4 + 1] = (uint8_t)f->sport;
	b[l4 + 2] = (uint8_t)(f->dport >> 8);
	b[l4 + 3] = (uint8_t)f->dport;
	return l4 + 4;
}

static uint32_t hash_of(const struct flow *f, uint32_t len, uint8_t fill)
{
	uint8_t b[1600];

	build(b, f, len, fill);
	return lhv_flow_hash(b, len);
}

static void test_same_flow_same_queue(void **state)
{
	static const struct flow flows[] = {
		{ 0, 0, 6, 0x0100000a, 0x0200000a, 40000, 5201, 0 },
		{ 0, 0, 17, 0x0100000a, 0x0200000a, 53, 53, 0 },
		{ 1, 0, 6, 0x0100000a, 0x0200000a, 40000, 5201, 0 },
		{ 2, 0, 6, 0x0100000a, 0x0200000a, 40000, 5201, 0 },
		{ 0, 1, 6, 0x01, 0x02, 40000, 22, 0 },
		{ 1, 1, 17, 0x01, 0x02, 4789, 4789, 0 },
		{ 0, 0, 1, 0x0100000a, 0x0200000a, 0, 0, 0 },	/* ICMP */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(flows) / sizeof(flows[0]); i++) {
		uint32_t h = hash_of(&flows[i], 80, 0);

		/* Payload and length are not the flow. */
		assert_int_equal(hash_of(&flows[i], 1514, 0xaa), h);
		assert_int_equal(hash_of(&flows[i], 200, 0x55), h);
		for (unsigned n = 1; n <= 32; n++)
			assert_int_equal(lhv_flow_queue(hash_of(&flows[i], 900, 7), n),
					 lhv_flow_queue(h, n));
	}
}

/* Many flows that differ only in a port, or only in an address, fill
 * every queue roughly evenly. */
static void test_spread(void **state)
{
	static const unsigned nqs[] = { 2, 3, 4, 8 };
	const unsigned flows = 4000;

	(void)state;
	for (size_t k = 0; k < sizeof(nqs) / sizeof(nqs[0]); k++) {
		for (unsigned what = 0; what < 4; what++) {
			unsigned count[8] = { 0 }, n = nqs[k];

			for (unsigned i = 0; i < flows; i++) {
				struct flow f = { what == 3 ? 1 : 0, what == 2, 6, 0x0100000a, 0x0200000a,
						  40000, 5201, 0 };

				if (what == 0 || what >= 2)
					f.sport = (uint16_t)(32768 + i);
				else
					f.src = 0x0a000000u + i;
				count[lhv_flow_queue(hash_of(&f, 80, 0), n)]++;
			}
			for (unsigned q = 0; q < n; q++) {
				/* Expected flows/n each; allow +-25%. */
				assert_true(count[q] * n * 4 > flows * 3);
				assert_true(count[q] * n * 4 < flows * 5);
			}
		}
	}
}

/* Ports are read behind the VLAN tags: flows that differ only in a port
 * get different hashes there too; an untagged and a tagged frame of the
 * same addresses and ports hash alike (the tag is not the flow). */
static void test_vlan(void **state)
{
	struct flow a = { 1, 0, 6, 0x0100000a, 0x0200000a, 40000, 5201, 0 }, b = a, c = a;

	(void)state;
	b.sport = 40001;
	assert_int_not_equal(hash_of(&a, 80, 0), hash_of(&b, 80, 0));
	c.vlans = 0;
	assert_int_equal(hash_of(&a, 80, 0), hash_of(&c, 80, 0));
	c.vlans = 2;
	assert_int_equal(hash_of(&a, 80, 0), hash_of(&c, 80, 0));
}

/* The fragments of one datagram share a queue: the first fragment (ports
 * present, MF set) and a later one (offset, no ports) hash on addresses. */
static void test_fragments(void **state)
{
	struct flow first = { 0, 0, 17, 0x0100000a, 0x0200000a, 5000, 6000, 0x2000 };
	struct flow later = first;

	(void)state;
	later.frag = 0x00b9;	/* offset 1480 / 8 */
	later.sport = 0x1234;	/* payload bytes, not ports */
	later.dport = 0x5678;
	assert_int_equal(hash_of(&first, 1514, 0), hash_of(&later, 600, 1));
}

/* ARP and other non-IP frames: by MAC addresses and ethertype; frames cut
 * short anywhere do not read past their end (ASan) and get a queue. */
static void test_non_ip_and_short(void **state)
{
	uint8_t arp[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 2, 0x08, 0x06 };
	uint8_t arp2[60];
	struct flow f = { 2, 1, 6, 1, 2, 3, 4, 0 };
	uint8_t b[200];
	uint32_t full = build(b, &f, sizeof(b), 0);

	(void)state;
	memcpy(arp2, arp, sizeof(arp));
	arp2[30] = 9;		/* another target address: same sender, same queue */
	assert_int_equal(lhv_flow_hash(arp, sizeof(arp)), lhv_flow_hash(arp2, sizeof(arp2)));
	arp2[11] = 3;		/* another sender */
	assert_int_not_equal(lhv_flow_hash(arp, sizeof(arp)), lhv_flow_hash(arp2, sizeof(arp2)));
	for (uint32_t len = 0; len <= full; len++) {
		uint8_t *cut = test_malloc(len ? len : 1);

		memcpy(cut, b, len);
		assert_true(lhv_flow_queue(lhv_flow_hash(cut, len), 4) < 4);
		test_free(cut);
	}
}

static void test_queue_bounds(void **state)
{
	static const uint32_t hashes[] = { 0, 1, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu };

	(void)state;
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
		assert_int_equal(lhv_flow_queue(hashes[i], 0), 0);
		assert_int_equal(lhv_flow_queue(hashes[i], 1), 0);
		for (unsigned n = 1; n <= 64; n++)
			assert_true(lhv_flow_queue(hashes[i], n) < n);
	}
	assert_int_equal(lhv_flow_queue(0xffffffffu, 32), 31);
	assert_int_equal(lhv_flow_queue(0, 32), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_flow_same_queue),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_vlan),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_non_ip_and_short),
		cmocka_unit_test(test_queue_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
