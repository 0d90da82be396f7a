/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The acl: rules as the topology loader reads them (a YAML line each),
 * compiled (acl.c) and matched against frames built here, as a table:
 * ethertypes with ARP and VLAN tags, IPv4 and IPv6 prefixes, protocols
 * with ICMPv6 neighbour discovery behind a hop-by-hop header, port ranges,
 * fragments, directions, first match and the default, and frames cut
 * short or malformed. Every frame is also parsed at every shorter length
 * from a buffer of exactly that length (AddressSanitizer builds catch a
 * read past it). Then the stage (stage_acl.c) in a chain: a denied frame
 * goes no further, counted per rule and as a drop (through ios_chain_start
 * it ends at the model's done); a retune keeps the counters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "ioserver_internal.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TOPO_HEAD \
	"version: 1\nio_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\n" \
	"hosts:\n  - name: host0\n" \
	"devices:\n  - name: nic\n    type: net\n    host: host0\n    io_server: io0\n" \
	"    socket: /run/vrio/nic.sock\n    mac: \"52:54:00:00:00:01\"\n    network: lan\n" \
	"    interpose:\n"
#define TOPO_TAIL "networks:\n  - name: lan\n"

/* A topology whose device has the given interpose list (YAML lines). */
static struct vrio_topology *load(const char *interpose)
{
	size_t n = sizeof(TOPO_HEAD TOPO_TAIL) + strlen(interpose);
	struct vrio_topology *t = NULL;
	char *text = malloc(n), err[512] = "";

	assert_non_null(text);
	snprintf(text, n, TOPO_HEAD "%s" TOPO_TAIL, interpose);
	if (vrio_topology_parse("acl.yaml", text, strlen(text), &t, err, sizeof(err)) != 0)
		fail_msg("%s\n%s", err, text);
	free(text);
	return t;
}

static struct ios_acl *compile_yaml(const char *acl)
{
	char line[2048];
	struct vrio_topology *t;
	struct ios_acl *a;

	snprintf(line, sizeof(line), "      - acl: %s\n", acl);
	t = load(line);
	a = ios_acl_compile(&t->devices[0].stages[0].u.acl);
	assert_non_null(a);
	vrio_topology_free(t);
	return a;
}

/* ---- frames ---- */

enum l4 { L4_NONE, L4_PORTS, L4_ICMP };

struct fspec {
	unsigned tags;			/* VLAN tags before the ethertype */
	uint16_t type;
	unsigned ipv;			/* 0, 4 or 6 */
	const char *src, *dst;
	uint8_t proto;
	uint16_t sport, dport;
	uint8_t icmp_type;
	bool later_fragment;
	bool hop_by_hop;		/* IPv6: an options header first */
	unsigned ihl;			/* IPv4: header words, 0: 5 */
	int cut;			/* > 0: keep this many bytes; < 0: drop this many */
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t build(const struct fspec *s, uint8_t *f)
{
	uint32_t off = 12, l3, l4, len;
	uint8_t proto = s->proto;

	memset(f, 0, 256);
	memcpy(f, "\x52\x54\x00\x00\x00\x02\x52\x54\x00\x00\x00\x01", 12);
	for (unsigned i = 0; i < s->tags; i++) {
		put16(f + off, i == 0 && s->tags > 1 ? 0x88a8 : 0x8100);
		put16(f + off + 2, (uint16_t)(100 + i));
		off += 4;
	}
	put16(f + off, s->type);
	l3 = off + 2;
	if (s->ipv == 4) {
		unsigned ihl = s->ihl ? s->ihl : 5;

		f[l3] = (uint8_t)(0x40 | ihl);
		f[l3 + 9] = proto;
		if (s->later_fragment)
			put16(f + l3 + 6, 0x2000 | 185);
		inet_pton(AF_INET, s->src ? s->src : "192.0.2.1", f + l3 + 12);
		inet_pton(AF_INET, s->dst ? s->dst : "192.0.2.2", f + l3 + 16);
		l4 = l3 + (ihl < 5 ? 20 : ihl * 4);
	} else if (s->ipv == 6) {
		f[l3] = 0x60;
		f[l3 + 6] = s->hop_by_hop ? 0 : proto;
		f[l3 + 7] = 64;
		inet_pton(AF_INET6, s->src ? s->src : "2001:db8::1", f + l3 + 8);
		inet_pton(AF_INET6, s->dst ? s->dst : "2001:db8::2", f + l3 + 24);
		l4 = l3 + 40;
		if (s->hop_by_hop) {
			f[l4] = proto;		/* next header */
			f[l4 + 1] = 0;		/* 8 bytes */
			l4 += 8;
		}
		if (s->later_fragment) {
			memmove(f + l4 + 8, f + l4, 8);
			f[l4] = proto;
			put16(f + l4 + 2, 185 << 3);
			f[l3 + 6] = 44;
			l4 += 8;
		}
	} else {
		l4 = l3 + 28;			/* ARP's size, or any payload */
	}
	if (s->ipv && (proto == 6 || proto == 17)) {
		put16(f + l4, s->sport);
		put16(f + l4 + 2, s->dport);
	} else if (s->ipv && (proto == 1 || proto == 58)) {
		f[l4] = s->icmp_type;
	}
	len = l4 + 20;
	if (s->ipv == 4)
		put16(f + l3 + 2, (uint16_t)(len - l3));
	if (s->ipv == 6)
		put16(f + l3 + 4, (uint16_t)(len - l3 - 40));
	if (s->cut > 0)
		len = (uint32_t)s->cut;
	else if (s->cut < 0)
		len -= (uint32_t)-s->cut;
	return len;
}

/* ---- the table ---- */

#define IN IOS_ACL_DIR_IN
#define OUT IOS_ACL_DIR_OUT

#define ARP	{ .type = 0x0806 }
#define V4(...)	{ .type = 0x0800, .ipv = 4, __VA_ARGS__ }
#define V6(...)	{ .type = 0x86dd, .ipv = 6, __VA_ARGS__ }

static const struct {
	const char *name;
	const char *acl;		/* the stage's YAML */
	struct fspec frame;
	unsigned dir;
	int rule;			/* the index that matches, -1: the default */
	bool allow;
} cases[] = {
	/* ethertypes */
	{ "arp matches arp", "{default: deny, rules: [{action: allow, ethertype: arp}]}",
	  ARP, IN, 0, true },
	{ "arp is not ipv4", "{default: deny, rules: [{action: allow, ethertype: arp}]}",
	  V4(.proto = 1), IN, -1, false },
	{ "a number", "{rules: [{action: deny, ethertype: 0x88b6}]}", { .type = 0x88b6 }, OUT, 0,
	  false },
	{ "vlan: the inner ethertype", "{rules: [{action: deny, ethertype: ipv4}]}",
	  V4(.tags = 1, .proto = 6, .dport = 80), IN, 0, false },
	{ "qinq: the inner ethertype", "{rules: [{action: deny, ethertype: ipv6}]}",
	  V6(.tags = 2, .proto = 17), IN, 0, false },
	{ "vlan: addresses inside", "{rules: [{action: deny, src: 10.0.0.0/8}]}",
	  V4(.tags = 1, .src = "10.9.8.7"), IN, 0, false },
	{ "three tags: no ethertype", "{rules: [{action: deny, ethertype: ipv4}]}",
	  V4(.tags = 3), IN, -1, true },
	{ "vlan tag cut short", "{rules: [{action: deny, ethertype: ipv4}]}",
	  V4(.tags = 1, .cut = 15), IN, -1, true },
	/* IPv4 prefixes */
	{ "v4 src in /8", "{rules: [{action: deny, src: 10.0.0.0/8}]}", V4(.src = "10.1.2.3"), IN,
	  0, false },
	{ "v4 src outside /8", "{rules: [{action: deny, src: 10.0.0.0/8}]}",
	  V4(.src = "11.0.0.1"), IN, -1, true },
	{ "v4 /32", "{rules: [{action: deny, dst: 192.0.2.7}]}", V4(.dst = "192.0.2.7"), IN, 0,
	  false },
	{ "v4 /32 off by one", "{rules: [{action: deny, dst: 192.0.2.7}]}",
	  V4(.dst = "192.0.2.6"), IN, -1, true },
	{ "v4 /0", "{rules: [{action: deny, dst: 0.0.0.0/0}]}", V4(.dst = "203.0.113.9"), IN, 0,
	  false },
	{ "v4 /23 edge", "{rules: [{action: deny, src: 10.0.2.0/23}]}", V4(.src = "10.0.3.255"),
	  IN, 0, false },
	{ "v4 /23 beyond", "{rules: [{action: deny, src: 10.0.2.0/23}]}", V4(.src = "10.0.4.0"),
	  IN, -1, true },
	{ "v4 src and dst", "{rules: [{action: deny, src: 10.0.0.1, dst: 10.0.0.2}]}",
	  V4(.src = "10.0.0.1", .dst = "10.0.0.3"), IN, -1, true },
	{ "v4 rule, v6 frame", "{rules: [{action: deny, dst: 0.0.0.0/0}]}", V6(.proto = 6), IN,
	  -1, true },
	/* IPv6 prefixes */
	{ "v6 /16", "{rules: [{action: deny, dst: \"fd00::/16\"}]}", V6(.dst = "fd00:1::1"), IN,
	  0, false },
	{ "v6 /16 outside", "{rules: [{action: deny, dst: \"fd00::/16\"}]}",
	  V6(.dst = "fe80::1"), IN, -1, true },
	{ "v6 /64: the second half is free", "{rules: [{action: deny, src: \"2001:db8::/64\"}]}",
	  V6(.src = "2001:db8::ffff:1"), IN, 0, false },
	{ "v6 /64: the first half is not", "{rules: [{action: deny, src: \"2001:db8::/64\"}]}",
	  V6(.src = "2001:db8:0:1::1"), IN, -1, true },
	{ "v6 /127 across the halves", "{rules: [{action: deny, src: \"2001:db8::2/127\"}]}",
	  V6(.src = "2001:db8::3"), IN, 0, false },
	{ "v6 /127 neighbour", "{rules: [{action: deny, src: \"2001:db8::2/127\"}]}",
	  V6(.src = "2001:db8::4"), IN, -1, true },
	{ "v6 rule, v4 frame", "{rules: [{action: deny, src: \"::/0\"}]}", V4(.proto = 6), IN, -1,
	  true },
	/* protocols */
	{ "tcp over v4", "{rules: [{action: deny, proto: tcp}]}", V4(.proto = 6), IN, 0, false },
	{ "tcp over v6", "{rules: [{action: deny, proto: tcp}]}", V6(.proto = 6), IN, 0, false },
	{ "udp is not tcp", "{rules: [{action: deny, proto: udp}]}", V4(.proto = 6), IN, -1,
	  true },
	{ "icmp", "{rules: [{action: deny, proto: icmp}]}", V4(.proto = 1, .icmp_type = 8), IN, 0,
	  false },
	{ "a protocol is not arp", "{rules: [{action: deny, proto: icmp}]}", ARP, IN, -1, true },
	{ "icmpv6: neighbour solicitation", "{rules: [{action: deny, proto: icmpv6}]}",
	  V6(.proto = 58, .icmp_type = 135, .dst = "ff02::1:ff00:2"), OUT, 0, false },
	{ "icmpv6 behind hop-by-hop (MLD)", "{rules: [{action: deny, proto: icmpv6}]}",
	  V6(.proto = 58, .icmp_type = 143, .hop_by_hop = true), IN, 0, false },
	{ "icmpv6 with ethertype ipv6", "{rules: [{action: deny, ethertype: ipv6, proto: icmpv6}]}",
	  V6(.proto = 58, .icmp_type = 136), IN, 0, false },
	{ "ethertype ipv4 with icmpv6: no v6", "{rules: [{action: deny, ethertype: ipv4, proto: 58}]}",
	  V6(.proto = 58), IN, -1, true },
	{ "a number", "{rules: [{action: deny, proto: 47}]}", V4(.proto = 47), IN, 0, false },
	{ "tcp behind hop-by-hop", "{rules: [{action: deny, proto: tcp, dport: 443}]}",
	  V6(.proto = 6, .dport = 443, .hop_by_hop = true), IN, 0, false },
	/* ports */
	{ "dport", "{rules: [{action: deny, proto: tcp, dport: 80}]}", V4(.proto = 6, .dport = 80),
	  IN, 0, false },
	{ "dport off by one", "{rules: [{action: deny, proto: tcp, dport: 80}]}",
	  V4(.proto = 6, .dport = 81), IN, -1, true },
	{ "sport range low end", "{rules: [{action: deny, proto: udp, sport: 1024-65535}]}",
	  V4(.proto = 17, .sport = 1024), IN, 0, false },
	{ "sport range high end", "{rules: [{action: deny, proto: udp, sport: 1024-65535}]}",
	  V6(.proto = 17, .sport = 65535), IN, 0, false },
	{ "sport below the range", "{rules: [{action: deny, proto: udp, sport: 1024-65535}]}",
	  V4(.proto = 17, .sport = 1023), IN, -1, true },
	{ "both ports", "{rules: [{action: deny, proto: tcp, sport: 5000-5010, dport: 22}]}",
	  V4(.proto = 6, .sport = 5005, .dport = 22), IN, 0, false },
	{ "both ports, one off", "{rules: [{action: deny, proto: tcp, sport: 5000-5010, dport: 22}]}",
	  V4(.proto = 6, .sport = 5011, .dport = 22), IN, -1, true },
	{ "ports are tcp's", "{rules: [{action: deny, proto: tcp, dport: 53}]}",
	  V4(.proto = 17, .dport = 53), IN, -1, true },
	{ "v4 options before the ports", "{rules: [{action: deny, proto: tcp, dport: 80}]}",
	  V4(.proto = 6, .dport = 80, .ihl = 7), IN, 0, false },
	/* fragments */
	{ "v4 later fragment: the protocol", "{rules: [{action: deny, proto: udp}]}",
	  V4(.proto = 17, .later_fragment = true), IN, 0, false },
	{ "v4 later fragment: no ports", "{rules: [{action: deny, proto: udp, dport: 0-65534}]}",
	  V4(.proto = 17, .dport = 7, .later_fragment = true), IN, -1, true },
	{ "v6 later fragment: the protocol", "{rules: [{action: deny, proto: udp}]}",
	  V6(.proto = 17, .later_fragment = true), IN, 0, false },
	{ "v6 later fragment: no ports", "{rules: [{action: deny, proto: udp, dport: 7}]}",
	  V6(.proto = 17, .dport = 7, .later_fragment = true), IN, -1, true },
	/* directions */
	{ "in rule, in frame", "{rules: [{action: deny, dir: in, proto: icmp}]}", V4(.proto = 1),
	  IN, 0, false },
	{ "in rule, out frame", "{rules: [{action: deny, dir: in, proto: icmp}]}", V4(.proto = 1),
	  OUT, -1, true },
	{ "out rule, out frame", "{rules: [{action: deny, dir: out, proto: icmp}]}",
	  V4(.proto = 1), OUT, 0, false },
	{ "out rule, in frame", "{rules: [{action: deny, dir: out, proto: icmp}]}",
	  V4(.proto = 1), IN, -1, true },
	{ "both, out frame", "{rules: [{action: deny, dir: both, proto: icmp}]}", V4(.proto = 1),
	  OUT, 0, false },
	/* order and the default */
	{ "first match wins", "{rules: [{action: allow, proto: tcp, dport: 22}, {action: deny, proto: tcp}]}",
	  V4(.proto = 6, .dport = 22), IN, 0, true },
	{ "the second rule", "{rules: [{action: allow, proto: tcp, dport: 22}, {action: deny, proto: tcp}]}",
	  V4(.proto = 6, .dport = 23), IN, 1, false },
	{ "default deny", "{default: deny, rules: [{action: allow, proto: tcp}]}",
	  V4(.proto = 17), IN, -1, false },
	{ "default allow", "{rules: [{action: deny, proto: tcp}]}", V4(.proto = 17), IN, -1, true },
	{ "no rules", "{default: deny}", ARP, OUT, -1, false },
	{ "a rule with no fields matches all", "{rules: [{action: deny}]}", { .type = 0x1234 }, IN,
	  0, false },
	/* cut short and malformed */
	{ "runt: no ethertype", "{rules: [{action: deny, ethertype: arp}]}", { .type = 0x0806, .cut = 10 },
	  IN, -1, true },
	{ "runt: a rule with no fields still", "{rules: [{action: deny}]}", { .type = 0x0806, .cut = 10 },
	  IN, 0, false },
	{ "v4 header cut: ethertype only", "{rules: [{action: deny, ethertype: ipv4}]}",
	  V4(.proto = 6, .cut = 14 + 19), IN, 0, false },
	{ "v4 header cut: no addresses", "{rules: [{action: deny, src: 0.0.0.0/0}]}",
	  V4(.proto = 6, .cut = 14 + 19), IN, -1, true },
	{ "v4 header cut: no protocol", "{rules: [{action: deny, proto: tcp}]}",
	  V4(.proto = 6, .cut = 14 + 19), IN, -1, true },
	{ "tcp cut before the ports: protocol", "{rules: [{action: deny, proto: tcp}]}",
	  V4(.proto = 6, .dport = 80, .cut = 14 + 20 + 3), IN, 0, false },
	{ "tcp cut before the ports: no ports", "{rules: [{action: deny, proto: tcp, dport: 80}]}",
	  V4(.proto = 6, .dport = 80, .cut = 14 + 20 + 3), IN, -1, true },
	{ "v4 ihl below 5", "{rules: [{action: deny, proto: tcp}]}", V4(.proto = 6, .ihl = 4), IN,
	  -1, true },
	{ "v4 options past the frame", "{rules: [{action: deny, proto: tcp}]}",
	  V4(.proto = 6, .ihl = 15, .cut = 14 + 40), IN, -1, true },
	{ "v6 header cut", "{rules: [{action: deny, proto: udp}]}", V6(.proto = 17, .cut = 14 + 39),
	  IN, -1, true },
	{ "v6 options header cut", "{rules: [{action: deny, proto: icmpv6}]}",
	  V6(.proto = 58, .hop_by_hop = true, .cut = 14 + 40 + 7), IN, -1, true },
	{ "not ipv4 inside", "{rules: [{action: deny, proto: 0}]}",
	  { .type = 0x0800, .ipv = 6, .proto = 0 }, IN, -1, true },
};

static void test_table(void **state)
{
	uint8_t f[256], *copy;
	struct ios_acl_pkt pkt;
	struct ios_acl *acl;
	uint32_t len;
	int rule;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		acl = compile_yaml(cases[i].acl);
		len = build(&cases[i].frame, f);
		copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, f, len);
		ios_acl_parse(copy, len, &pkt);
		rule = ios_acl_match(acl, &pkt, cases[i].dir);
		if (rule != cases[i].rule || ios_acl_allows(acl, rule) != cases[i].allow)
			fail_msg("%s: rule %d (%s), want %d (%s)", cases[i].name, rule,
				 ios_acl_allows(acl, rule) ? "allow" : "deny", cases[i].rule,
				 cases[i].allow ? "allow" : "deny");
		free(copy);
		ios_acl_free(acl);
	}
}

/* Every frame of the table at every length, from a buffer of exactly that
 * length: whatever it parses is within the frame. */
static void test_every_length(void **state)
{
	struct ios_acl_pkt pkt;
	uint8_t f[256], *copy;
	uint32_t len;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		len = build(&cases[i].frame, f);
		for (uint32_t n = 0; n <= len; n++) {
			copy = malloc(n ? n : 1);
			assert_non_null(copy);
			memcpy(copy, f, n);
			ios_acl_parse(copy, n, &pkt);
			if (n < 14)
				assert_int_equal(pkt.ethertype, 0);
			if (pkt.has_ports)
				assert_true(pkt.has_proto && pkt.l3);
			free(copy);
		}
	}
}

/* ---- the stage in a chain ---- */

/* Sends one frame through d's chain as dev_net does (ios_chain_run); true
 * if it passed. */
static bool send_frame(struct ios_device *d, const struct fspec *s, bool out)
{
	static uint8_t f[256];
	struct ios_req *req = calloc(1, sizeof(*req));
	bool passed;

	assert_non_null(req);
	req->dev = d;
	req->u.net.eth = f;
	req->u.net.len = build(s, f);
	req->u.net.out = out;
	passed = ios_chain_run(d, req);
	assert_true(passed != req->u.net.dropped);
	assert_null(req->chain);
	free(req);
	return passed;
}

static struct ios_req *passed_req, *done_req;

static void on_done(struct ios_req *req)
{
	done_req = req;
}

static void on_submit(struct ios_req *req)
{
	passed_req = req;
	ios_chain_finish(req, on_done);
}

static struct ios_device *net_device(const char *interpose, struct vrio_topology **t)
{
	struct ios_device *d = calloc(1, sizeof(*d));
	struct ios_chain *c = NULL;
	char why[256] = "";

	assert_non_null(d);
	snprintf(d->name, sizeof(d->name), "nic");
	snprintf(d->label, sizeof(d->label), "device=\"nic\"");
	*t = load(interpose);
	d->topo = &(*t)->devices[0];
	if (ios_chain_build(d, d->topo, &c, why, sizeof(why)) != 0)
		fail_msg("chain: %s", why);
	d->chain = c;
	return d;
}

static void free_device(struct ios_device *d, struct vrio_topology *t)
{
	ios_chain_put(d->chain);
	vrio_topology_free(t);
	free(d);
}

static bool has_line(const char *text, const char *line)
{
	const char *p = strstr(text, line);

	return p && (p == text || p[-1] == '\n') && p[strlen(line)] == '\n';
}

static void test_stage(void **state)
{
	static const struct fspec icmp = V4(.proto = 1, .dst = "10.0.0.2");
	static const struct fspec icmp_c = V4(.proto = 1, .dst = "10.0.0.3");
	static const struct fspec arp = ARP;
	struct vrio_topology *t, *t2;
	struct ios_device *d;
	struct ios_stage *st;
	struct vrio_mw w = { 0 };
	const struct ios_stage_ops *ops = ios_stage_ops_find(VRIO_STAGE_ACL);

	assert_ptr_equal(ops, &ios_stage_acl_ops);
	d = net_device("      - acl:\n          default: deny\n          rules:\n"
		       "            - {action: allow, ethertype: arp}\n"
		       "            - {action: allow, dir: in, proto: icmp, dst: 10.0.0.2}\n"
		       "            - {action: deny, proto: icmp}\n", &t);
	st = d->chain->stages[0];
	assert_true(send_frame(d, &arp, false));
	assert_true(send_frame(d, &arp, true));
	assert_true(send_frame(d, &icmp, false));
	assert_false(send_frame(d, &icmp, true));	/* rule 3: not in */
	assert_false(send_frame(d, &icmp_c, false));
	assert_false(send_frame(d, &icmp_c, false));
	assert_false(send_frame(d, &(struct fspec)V6(.proto = 58), false));	/* default */
	assert_int_equal(st->st.requests, 7);
	assert_int_equal(st->st.drops[IOS_STAGE_DROP_RULE], 4);
	assert_int_equal(d->chain->refs, 1);

	/* Through the chain of a model whose stages may hold, a dropped
	 * frame ends at the model's done, without being submitted. */
	{
		static uint8_t f[256];
		struct ios_req req = { .dev = d };

		req.u.net = (struct ios_net_req){ .eth = f, .len = build(&icmp_c, f) };
		passed_req = done_req = NULL;
		ios_chain_start(d, &req, on_submit, on_done);
		assert_ptr_equal(done_req, &req);
		assert_null(passed_req);
		assert_null(req.chain);
		req.u.net = (struct ios_net_req){ .eth = f, .len = build(&icmp, f) };
		passed_req = done_req = NULL;
		ios_chain_start(d, &req, on_submit, on_done);
		assert_ptr_equal(passed_req, &req);
		assert_ptr_equal(done_req, &req);
		assert_int_equal(d->chain->refs, 1);
	}

	ops->samples(st, 0, &w, d->label);
	assert_true(has_line(w.buf, "vrio_ioserver_acl_rule_hits_total{device=\"nic\",rule=\"1\"} 2"));
	assert_true(has_line(w.buf, "vrio_ioserver_acl_rule_hits_total{device=\"nic\",rule=\"2\"} 2"));
	assert_true(has_line(w.buf, "vrio_ioserver_acl_rule_hits_total{device=\"nic\",rule=\"3\"} 4"));
	assert_true(has_line(w.buf, "vrio_ioserver_acl_rule_hits_total{device=\"nic\",rule=\"default\"} 1"));
	free(w.buf);

	/* A reload allows C too: the same stage, the counters kept, the new
	 * rules from the next frame. */
	t2 = load("      - acl:\n          default: deny\n          rules:\n"
		  "            - {action: allow, ethertype: arp}\n"
		  "            - {action: allow, proto: icmp}\n");
	assert_int_equal(ops->retune(st, &t2->devices[0].stages[0], false), 0);
	assert_int_equal(ops->retune(st, &t2->devices[0].stages[0], true), 0);
	assert_true(send_frame(d, &icmp_c, false));
	assert_true(send_frame(d, &icmp, true));
	memset(&w, 0, sizeof(w));
	ops->samples(st, 0, &w, d->label);
	assert_true(has_line(w.buf, "vrio_ioserver_acl_rule_hits_total{device=\"nic\",rule=\"2\"} 4"));
	assert_false(strstr(w.buf, "rule=\"3\""));
	assert_int_equal(st->st.drops[IOS_STAGE_DROP_RULE], 5);
	free(w.buf);
	vrio_topology_free(t2);
	free_device(d, t);
}

/* More rules than it keeps counters for: refused with the place. */
static void test_too_many_rules(void **state)
{
	size_t n = 64 + (IOS_ACL_MAX_RULES + 1) * 40;
	char *text = malloc(n), why[256] = "";
	struct vrio_topology *t;
	struct ios_device d = { .name = "nic" };
	struct ios_stage *st = NULL;
	size_t off;

	assert_non_null(text);
	off = (size_t)snprintf(text, n, "      - acl:\n          rules:\n");
	for (unsigned i = 0; i <= IOS_ACL_MAX_RULES; i++)
		off += (size_t)snprintf(text + off, n - off, "            - {action: deny}\n");
	t = load(text);
	assert_int_equal(ios_stage_acl_ops.create(&d, &t->devices[0].stages[0], &st, why,
						  sizeof(why)), -E2BIG);
	if (!strstr(why, "device 'nic': acl at 16:9: 1025 rules, at most 1024"))
		fail_msg("%s", why);
	vrio_topology_free(t);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_every_length),
		cmocka_unit_test(test_stage),
		cmocka_unit_test(test_too_many_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
