/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software offloads (gso.c): TCP GSO packets over IPv4 and IPv6 (and one
 * VLAN tag) cut into segments whose boundaries, lengths, IP ids, sequence
 * numbers and flags are those a NIC's TSO gives (CWR on the first only,
 * with or without the ECN bit), with checksums verified
 * by an independent, word-at-a-time RFC 1071 sum over the pseudo-header;
 * partial checksums completed; metadata that does not match its headers
 * refused before anything is built.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gso.h"

#define MAXPKT	(VRIO_PKT_MAX_GSO_FRAME)
#define TH_FIN	0x01
#define TH_PSH	0x08
#define TH_ACK	0x10
#define TH_CWR	0x80

static uint8_t pkt[MAXPKT], seg[VRIO_PKT_MAX_FRAME];

/* The reference sum: 16-bit words, carries folded at every step. */
static uint16_t ref_sum(const uint8_t *a, size_t n, uint16_t start)
{
	uint32_t s = start;

	for (size_t i = 0; i < n; i += 2) {
		s += (uint32_t)(a[i] << 8) + (i + 1 < n ? a[i + 1] : 0);
		if (s > 0xffff)
			s = (s & 0xffff) + 1;
	}
	return (uint16_t)s;
}

/* True if the TCP or UDP segment at l4 (len bytes) checks out against its
 * IP addresses: the whole sum, pseudo-header included, is 0xffff. */
static int l4_ok(const uint8_t *ip, int v6, const uint8_t *l4, uint32_t len, uint8_t proto)
{
	uint8_t ph[40];
	size_t n;

	memset(ph, 0, sizeof(ph));
	if (v6) {
		memcpy(ph, ip + 8, 32);
		ph[34] = (uint8_t)(len >> 8);
		ph[35] = (uint8_t)len;
		ph[39] = proto;
		n = 40;
	} else {
		memcpy(ph, ip + 12, 8);
		ph[9] = proto;
		ph[10] = (uint8_t)(len >> 8);
		ph[11] = (uint8_t)len;
		n = 12;
	}
	return ref_sum(l4, len, ref_sum(ph, n, 0)) == 0xffff;
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) << 16 | rd16(p + 2); }

struct shape {
	int v6, vlan;
	uint32_t payload, mss;
	uint8_t flags;
	int ecn;	/* the ECN bit, as Linux sets it on a CWR packet */
};

/* A GSO packet as a Linux guest sends it: 12 bytes of TCP options, the
 * checksum field holding some partial value, metadata pointing at TCP. */
static uint32_t build(const struct shape *sh, struct vrio_pkt_wire *h)
{
	uint32_t l3 = sh->vlan ? 18 : 14, l4 = l3 + (sh->v6 ? 40 : 20), hdrs = l4 + 32;
	uint8_t *ip = pkt + l3, *th = pkt + l4;

	memset(pkt, 0, hdrs);
	memcpy(pkt, "\x52\x54\x00\x00\x00\x02\x52\x54\x00\x00\x00\x01", 12);
	if (sh->vlan) {
		memcpy(pkt + 12, "\x81\x00\x00\x05", 4);
	}
	memcpy(pkt + l3 - 2, sh->v6 ? "\x86\xdd" : "\x08\x00", 2);
	if (sh->v6) {
		ip[0] = 0x60;
		ip[4] = (uint8_t)((32 + sh->payload) >> 8);
		ip[5] = (uint8_t)(32 + sh->payload);
		ip[6] = 6;
		ip[7] = 64;
		ip[8] = 0xfd;
		ip[23] = 1;
		ip[24] = 0xfd;
		ip[39] = 2;
	} else {
		ip[0] = 0x45;
		ip[2] = (uint8_t)((20 + 32 + sh->payload) >> 8);
		ip[3] = (uint8_t)(20 + 32 + sh->payload);
		ip[4] = 0xff;
		ip[5] = 0xfe;		/* the id wraps within the packet */
		ip[6] = 0x40;
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	}
	memcpy(th, "\x9c\x40\x14\x51\xff\xff\xf0\x00\x00\x00\x00\x07", 12);
	th[12] = 8 << 4;
	th[13] = sh->flags;
	th[14] = 0xff;
	th[16] = 0x12;		/* a partial sum: replaced, never trusted */
	th[17] = 0x34;
	memcpy(th + 20, "\x01\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02", 12);
	for (uint32_t i = 0; i < sh->payload; i++)
		pkt[hdrs + i] = (uint8_t)(i * 7 + 3);
	memset(h, 0, sizeof(*h));
	h->flags = VRIO_PKT_F_NEEDS_CSUM;
	h->gso_type = sh->v6 ? VRIO_PKT_GSO_TCPV6 : VRIO_PKT_GSO_TCPV4;
	if (sh->ecn)
		h->gso_type |= VRIO_PKT_GSO_ECN;
	h->gso_size = (uint16_t)sh->mss;
	h->hdr_len = (uint16_t)hdrs;
	h->csum_start = (uint16_t)l4;
	h->csum_offset = 16;
	return hdrs + sh->payload;
}

static void check_shape(const struct shape *sh)
{
	struct vrio_pkt_wire h;
	struct ios_gso_plan pl;
	uint32_t len = build(sh, &h), l3 = sh->vlan ? 18 : 14, l4 = l3 + (sh->v6 ? 40 : 20);
	uint32_t hdrs = l4 + 32, off = 0, want_n = (sh->payload + sh->mss - 1) / sh->mss;

	if (!want_n)
		want_n = 1;
	assert_int_equal(vrio_pkt_wire_check(&h, len, 1518), 0);
	assert_int_equal(ios_gso_plan(pkt, len, &h, 1518, &pl), 0);
	assert_int_equal(pl.nseg, want_n);
	for (uint32_t i = 0; i < pl.nseg; i++) {
		uint32_t n = ios_gso_seg_len(&pl, i), data = n - hdrs;
		const uint8_t *ip = seg + l3, *th = seg + l4;
		int last = i + 1 == pl.nseg;

		assert_true(n <= 1518);
		assert_int_equal(data, last ? sh->payload - off : sh->mss);
		memset(seg, 0xaa, sizeof(seg));
		ios_gso_build(pkt, &pl, i, seg);
		assert_memory_equal(seg, pkt, 12);
		assert_memory_equal(seg + hdrs, pkt + hdrs + off, data);
		if (sh->v6) {
			assert_int_equal(rd16(ip + 4), n - l3 - 40);
		} else {
			assert_int_equal(rd16(ip + 2), n - l3);
			assert_int_equal(rd16(ip + 4), (0xfffe + i) & 0xffff);
			assert_int_equal(ref_sum(ip, 20, 0), 0xffff);
		}
		assert_int_equal(rd32(th + 4), (uint32_t)(0xfffff000u + off));
		assert_int_equal(th[13] & (TH_PSH | TH_FIN), last ? sh->flags & (TH_PSH | TH_FIN) : 0);
		assert_int_equal(th[13] & TH_CWR, i == 0 ? sh->flags & TH_CWR : 0);
		assert_int_equal(th[13] & TH_ACK, TH_ACK);
		assert_memory_equal(th + 20, pkt + l4 + 20, 12);	/* options kept */
		assert_true(l4_ok(ip, sh->v6, th, n - l4, 6));
		off += data;
	}
	assert_int_equal(off, sh->payload);
}

static void test_segments(void **state)
{
	static const struct shape shapes[] = {
		{ 0, 0, 10000, 1448, TH_ACK | TH_PSH | TH_FIN | TH_CWR },	/* 7, last short */
		{ 1, 0, 10000, 1428, TH_ACK | TH_PSH | TH_CWR },
		/* ECN: CWR on the first segment only, every sum right */
		{ 0, 0, 10000, 1448, TH_ACK | TH_PSH | TH_CWR, 1 },
		{ 1, 1, 30000, 1428, TH_ACK | TH_CWR, 1 },
		{ 0, 1, 1448, 1448, TH_ACK | TH_PSH | TH_CWR, 1 },	/* one segment */
		{ 0, 1, 2 * 1444, 1444, TH_ACK | TH_PSH },	/* exact multiple */
		{ 0, 0, 65535 - 52, 1448, TH_ACK | TH_PSH },	/* the largest IPv4 */
		{ 1, 0, 65000, 1000, TH_ACK | TH_FIN },
		{ 0, 0, 100, 1448, TH_ACK | TH_PSH | TH_FIN },	/* one segment */
		{ 1, 1, 1, 536, TH_ACK | TH_PSH },		/* one odd byte */
		{ 0, 0, 3001, 3, TH_ACK },			/* many small ones */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		check_shape(&shapes[i]);
}

/* Each row spoils one thing in a good IPv4 (or IPv6) packet. */
static void test_bad_headers(void **state)
{
	static const struct {
		const char *what;
		int v6;
		uint32_t at;	/* byte to set, from the start of the frame; 0: none */
		uint8_t val;
		int field;	/* 1 csum_start, 2 csum_offset, 3 gso_type, 4 gso_size, 5 flags, 6 len */
		uint32_t fval;
		int frame_ok;	/* vrio_pkt_wire_check accepts it: the plan must not */
	} rows[] = {
		{ "UDP in IPv4", 0, 14 + 9, 17, 0, 0, 1 },
		{ "ARP", 0, 13, 0x06, 0, 0, 1 },
		{ "IPv4 with TCPV6", 0, 0, 0, 3, VRIO_PKT_GSO_TCPV6, 1 },
		{ "IPv6 with TCPV4", 1, 0, 0, 3, VRIO_PKT_GSO_TCPV4, 1 },
		{ "IPv6 hop-by-hop header", 1, 14 + 6, 0, 0, 0, 1 },
		{ "IPv4 version 6", 0, 14, 0x65, 0, 0, 1 },
		{ "IPv4 ihl 4", 0, 14, 0x44, 0, 0, 1 },
		{ "csum_start off TCP", 0, 0, 0, 1, 30, 1 },
		{ "csum_offset not TCP's", 0, 0, 0, 2, 6, 1 },
		{ "TCP data offset 4", 0, 14 + 20 + 12, 4 << 4, 0, 0, 1 },
		{ "TCP header past the end", 0, 14 + 20 + 12, 15 << 4, 6, 14 + 20 + 40, 1 },
		{ "segments above the MTU", 0, 0, 0, 4, 1500, 0 },
		{ "gso_size 0", 0, 0, 0, 4, 0, 0 },
		{ "UDP fragmentation (UFO)", 0, 0, 0, 3, 3, 0 },
		{ "UFO with ECN", 0, 0, 0, 3, 3 | VRIO_PKT_GSO_ECN, 0 },
		{ "GSO without NEEDS_CSUM", 0, 0, 0, 5, 0, 0 },
		{ "unknown flag", 0, 0, 0, 5, 1 | 4, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct shape sh = { rows[i].v6, 0, 5000, 1400, TH_ACK };
		struct vrio_pkt_wire h;
		struct ios_gso_plan pl;
		uint32_t len = build(&sh, &h);

		if (rows[i].at)
			pkt[rows[i].at] = rows[i].val;
		switch (rows[i].field) {
		case 1: h.csum_start = (uint16_t)rows[i].fval; break;
		case 2: h.csum_offset = (uint16_t)rows[i].fval; break;
		case 3: h.gso_type = (uint8_t)rows[i].fval; break;
		case 4: h.gso_size = (uint16_t)rows[i].fval; break;
		case 5: h.flags = (uint8_t)rows[i].fval; break;
		case 6: len = rows[i].fval; break;
		}
		if (vrio_pkt_wire_check(&h, len, 1518) != (rows[i].frame_ok ? 0 : -EBADMSG))
			fail_msg("%s: the frame check says %d", rows[i].what,
				 vrio_pkt_wire_check(&h, len, 1518));
		/* What the frame check refuses never reaches a plan. */
		if (rows[i].frame_ok && ios_gso_plan(pkt, len, &h, 1518, &pl) != -EINVAL)
			fail_msg("%s: planned", rows[i].what);
	}
}

/* A partial checksum as Linux leaves it (the pseudo-header's folded sum in
 * the field), completed, then verified by the reference sum. */
static void test_csum_complete(void **state)
{
	static const struct { int v6; uint8_t proto; uint32_t payload; } rows[] = {
		{ 0, 17, 1001 }, { 0, 6, 1400 }, { 1, 17, 7 }, { 1, 6, 8999 - 60 },
	};

	(void)state;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		uint32_t l4 = 14 + (rows[r].v6 ? 40 : 20), hl = rows[r].proto == 6 ? 20 : 8;
		uint32_t l4len = hl + rows[r].payload, len = l4 + l4len, off;
		uint8_t *ip = pkt + 14, ph[40] = { 0 };
		struct vrio_pkt_wire h = { .flags = VRIO_PKT_F_NEEDS_CSUM };
		uint16_t partial;

		memset(pkt, 0, l4 + hl);
		memcpy(pkt + 12, rows[r].v6 ? "\x86\xdd" : "\x08\x00", 2);
		if (rows[r].v6) {
			ip[0] = 0x60;
			ip[6] = rows[r].proto;
			ip[8] = 0xfd;
			ip[23] = 9;
			ip[24] = 0xfd;
			ip[39] = 10;
			memcpy(ph, ip + 8, 32);
			ph[34] = (uint8_t)(l4len >> 8);
			ph[35] = (uint8_t)l4len;
			ph[39] = rows[r].proto;
			partial = ref_sum(ph, 40, 0);
		} else {
			ip[0] = 0x45;
			ip[9] = rows[r].proto;
			memcpy(ip + 12, "\xc0\xa8\x01\x01\xc0\xa8\x01\xfe", 8);
			memcpy(ph, ip + 12, 8);
			ph[9] = rows[r].proto;
			ph[10] = (uint8_t)(l4len >> 8);
			ph[11] = (uint8_t)l4len;
			partial = ref_sum(ph, 12, 0);
		}
		for (uint32_t i = 0; i < rows[r].payload; i++)
			pkt[l4 + hl + i] = (uint8_t)(i * 13 + r);
		off = rows[r].proto == 6 ? 16 : 6;
		pkt[l4 + off] = (uint8_t)(partial >> 8);
		pkt[l4 + off + 1] = (uint8_t)partial;
		h.csum_start = (uint16_t)l4;
		h.csum_offset = (uint16_t)off;
		assert_int_equal(vrio_pkt_wire_check(&h, len, 9018), 0);
		assert_false(l4_ok(ip, rows[r].v6, pkt + l4, l4len, rows[r].proto));
		ios_csum_complete(pkt, len, &h);
		assert_true(l4_ok(ip, rows[r].v6, pkt + l4, l4len, rows[r].proto));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_csum_complete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
