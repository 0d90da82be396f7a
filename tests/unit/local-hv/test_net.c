/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The packet path's metadata (net.c), over hand-built mbufs as rte_vhost's
 * dequeue leaves them: a TSO packet whose TCP header has CWR gets the ECN
 * bit that rte_vhost dropped (IPv4, IPv6, behind a VLAN tag), one without
 * CWR or without TSO never does, nor one whose TCP header is not in the
 * first mbuf; and toward the guest, a packet with the ECN bit is refused
 * (rte_vhost cannot write it), the same one without it taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net.c"

/* net.c's neighbours, not reached by these tests. */
int lhv_up_send(struct lhv_upstream *up, const struct vrio_frame *f, const struct iovec *iov,
		int iovcnt)
{
	(void)up, (void)f, (void)iov, (void)iovcnt;
	return 0;
}

void lhv_poller_watch_vq(struct lhv *l, struct lhv_vq *q, bool on)
{
	(void)l, (void)q, (void)on;
}

static uint8_t buf[2048];

/* An mbuf over buf as the dequeue leaves a packet: its first data_len
 * bytes in this one, Ethernet (a VLAN tag if vlan), IPv4 or IPv6, TCP with
 * `tcp_flags`, and the offload flags. */
static void mbuf_init(struct rte_mbuf *m, uint64_t ol, int v6, int vlan, uint8_t tcp_flags,
		      uint16_t data_len)
{
	uint16_t l2 = vlan ? 18 : 14, l3 = v6 ? 40 : 20;

	memset(m, 0, sizeof(*m));
	memset(buf, 0, sizeof(buf));
	m->buf_addr = buf;
	m->data_len = data_len;
	m->pkt_len = 60000;
	m->nb_segs = 1;
	m->ol_flags = ol | (v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4);
	m->l2_len = l2;
	m->l3_len = l3;
	m->l4_len = 20;
	m->tso_segsz = 1448;
	buf[l2 + l3 + 12] = 5 << 4;
	buf[l2 + l3 + 13] = tcp_flags;
}

static void test_tx_ecn_from_cwr(void **state)
{
	static const struct {
		const char *what;
		uint64_t ol;
		int v6, vlan;
		uint8_t flags;
		uint16_t data_len;	/* 0: the whole buffer */
		uint8_t gso_type;
	} rows[] = {
		{ "TSO4 with CWR", RTE_MBUF_F_TX_TCP_SEG, 0, 0, 0x90, 0, 0x81 },
		{ "TSO4, ECE only", RTE_MBUF_F_TX_TCP_SEG, 0, 0, 0x50, 0, 0x01 },
		{ "TSO6 with CWR", RTE_MBUF_F_TX_TCP_SEG, 1, 0, 0x98, 0, 0x84 },
		{ "TSO6 behind a VLAN tag", RTE_MBUF_F_TX_TCP_SEG, 1, 1, 0x80, 0, 0x84 },
		{ "TSO4 without CWR", RTE_MBUF_F_TX_TCP_SEG, 0, 1, 0x18, 0, 0x01 },
		{ "a partial sum with CWR", RTE_MBUF_F_TX_TCP_CKSUM, 0, 0, 0x90, 0, 0 },
		{ "no offload, CWR", 0, 0, 0, 0x90, 0, 0 },
		{ "TCP flags past the first mbuf", RTE_MBUF_F_TX_TCP_SEG, 0, 0, 0x90, 14 + 20 + 13,
		  0x01 },
		{ "TCP flags last in the first mbuf", RTE_MBUF_F_TX_TCP_SEG, 0, 0, 0x90,
		  14 + 20 + 14, 0x81 },
	};
	struct lhv_dev d;
	struct rte_mbuf m;
	struct vrio_pkt_wire h;

	(void)state;
	memset(&d, 0, sizeof(d));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		mbuf_init(&m, rows[i].ol, rows[i].v6, rows[i].vlan, rows[i].flags,
			  rows[i].data_len ? rows[i].data_len : sizeof(buf));
		if (pkt_meta(&d, &m, &h) != 0)
			fail_msg("%s: refused", rows[i].what);
		if (h.gso_type != rows[i].gso_type)
			fail_msg("%s: gso_type 0x%x, want 0x%x", rows[i].what, h.gso_type,
				 rows[i].gso_type);
		/* What the io-server checks: ECN only on a TCP GSO packet. */
		if (h.gso_type && vrio_pkt_wire_check(&h, 60000, 9018) != 0)
			fail_msg("%s: the io-server would refuse it", rows[i].what);
	}
}

/* Toward a guest that took TSO: never the ECN bit, which rte_vhost's
 * enqueue would not write (the io-server segments such a packet first). */
static void test_rx_ecn_refused(void **state)
{
	struct lhv_dev d;
	struct rte_mbuf m;
	struct vrio_pkt_wire h = {
		.flags = VRIO_PKT_F_NEEDS_CSUM,
		.gso_type = VRIO_PKT_GSO_TCPV4,
		.hdr_len = 54,
		.gso_size = 1448,
		.csum_start = 34,
		.csum_offset = 16,
	};

	(void)state;
	memset(&d, 0, sizeof(d));
	d.features = (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4);
	mbuf_init(&m, 0, 0, 0, 0x90, sizeof(buf));
	buf[12] = 0x08;
	m.ol_flags = 0;
	assert_int_equal(set_meta(&d, &h, &m, buf, sizeof(buf)), 0);
	assert_true(m.ol_flags & RTE_MBUF_F_TX_TCP_SEG);
	m.ol_flags = 0;
	h.gso_type |= VRIO_PKT_GSO_ECN;
	assert_int_equal(set_meta(&d, &h, &m, buf, sizeof(buf)), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_ecn_from_cwr),
		cmocka_unit_test(test_rx_ecn_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
