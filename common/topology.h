/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rack topology: one YAML file that every daemon reads, each taking its
 * own role from --node NAME. See deploy/topology.example.yaml.
 */
#ifndef VRIO_COMMON_TOPOLOGY_H
#define VRIO_COMMON_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vrio_dev_type {
	VRIO_DEV_BLK = 1,
	VRIO_DEV_NET = 2,
};

enum vrio_backend_kind {
	VRIO_BACKEND_NONE = 0,
	VRIO_BACKEND_FILE,	/* a file or block device, through io_uring */
	VRIO_BACKEND_RAM,
	VRIO_BACKEND_NULL,	/* stores nothing, reads zeroes: the data path alone */
};

/* Faults injected into every connection to or from an io-server (tests). */
struct vrio_topo_faults {
	bool enabled;
	uint64_t seed;
	double drop, duplicate, reorder;	/* probabilities per frame, 0..1 */
	unsigned delay_us;			/* extra delay per frame */
	uint64_t disconnect_after;		/* frames sent; 0 = never */
};

/* A node's DPDK settings (dpdk:), for the dpdk transport. */
struct vrio_topo_dpdk {
	char *port;		/* a port id or a device name; NULL: port 0 */
	char **eal;		/* extra EAL arguments, NULL-terminated; NULL if none */
	unsigned n_eal;
};

/*
 * Every node (io_server or host) has a control socket, a unix socket path
 * (JSON-RPC 2.0, root only). Without `control:` it is
 * VRIO_TOPO_CONTROL_DIR "/NAME.sock", filled in by the loader so that the
 * daemon and `vrioctl --node NAME` agree. Control paths are unique in the
 * rack and differ from every device's socket.
 */
#define VRIO_TOPO_CONTROL_DIR	"/run/vrio"

/*
 * Liveness on every connection to or from an io-server (heartbeat:): each
 * side sends a Heartbeat when it has sent nothing for interval_ms, and
 * closes a connection on which nothing arrived for dead_after_ms.
 */
#define VRIO_TOPO_HB_INTERVAL_MS	100
#define VRIO_TOPO_HB_DEAD_AFTER_MS	1000

struct vrio_topo_heartbeat {
	unsigned interval_ms;	/* default 100, 10..60000 */
	unsigned dead_after_ms;	/* default 1000, more than 2 x interval_ms, up to 600000 */
};

/* A net device's queues: are queue pairs, one receive and one transmit
 * virtqueue each, within local-hv's 64 virtqueues per device. */
#define VRIO_NET_MAX_QUEUE_PAIRS	32u

#define VRIO_TOPO_BUSY_HIGH	75u
#define VRIO_TOPO_BUSY_LOW	50u

/* io_servers[].tls: TLS 1.3 on its tcp listener, for every connection to
 * it (hosts and trunks alike). psk: each host's PSK is derived from its
 * key_file (transport/tls.h); otherwise the io-server's certificate and
 * key, and the CA that the hosts verify it against. */
struct vrio_topo_tls {
	bool enabled;
	bool psk;
	char *cert, *key, *ca;
	unsigned line, col;	/* the tls: key, for messages */
};

struct vrio_topo_ioserver {
	char *name;
	char *transport;	/* "tcp" (default), "shm" or "dpdk" */
	char *listen;		/* tcp: "host:port"; shm: a unix socket path; dpdk: a MAC */
	struct vrio_topo_faults faults;
	struct vrio_topo_dpdk dpdk;
	char *metrics;		/* "host:port" or NULL */
	char *control;		/* control socket; never NULL (see VRIO_TOPO_CONTROL_DIR) */
	unsigned cores_min;	/* default 1 */
	unsigned cores_max;	/* default cores_min */
	/* Percent busy of the active reactors: above busy_high one more is
	 * unparked; once their load would fit under busy_low on one fewer,
	 * one is packed and parked. busy_low < busy_high. */
	unsigned cores_busy_high;	/* default VRIO_TOPO_BUSY_HIGH */
	unsigned cores_busy_low;	/* default VRIO_TOPO_BUSY_LOW */
	struct vrio_topo_heartbeat heartbeat;	/* both ends of its connections */
	struct vrio_topo_tls tls;
	unsigned line, col;	/* where the entry starts, for messages */
};

struct vrio_topo_host {
	char *name;
	char *metrics;		/* "host:port" or NULL */
	char *control;		/* control socket; never NULL (see VRIO_TOPO_CONTROL_DIR) */
	struct vrio_topo_dpdk dpdk;
	/* The host's secret (keyfile.h, VRIO_AUTH_KEY_MIN bytes or more) that
	 * it and the io-servers prove on every connection; NULL: none, the
	 * host connects unauthenticated. */
	char *key_file;
	unsigned line, col;
};

struct vrio_topo_backend {
	enum vrio_backend_kind kind;
	char *path;		/* file */
	uint64_t size;		/* ram, null: required; file: 0 = the file's size */
	bool direct;		/* file: O_DIRECT */
};

struct vrio_topo_network {
	char *name;
	unsigned mtu;		/* default 1500, 68..9000: the largest IP packet */
	unsigned ageing_s;	/* learned MAC addresses expire; default 300 */
	char *uplink_tap;	/* a TAP device on the io-server node, or NULL */
	/* The io-servers that switch it (its span): the explicit list
	 * (io_servers:) in its order, else those of its net devices in the
	 * order they first appear; none if it has neither. Each runs the
	 * network's switch, joined to the others by trunks. */
	struct vrio_topo_ioserver **span;
	size_t n_span;
	bool span_explicit;	/* from io_servers: */
	uint32_t id;		/* on the trunks' PKT frames: unique in the file */
	unsigned line, col;
};

/* True if io-server `name` switches network n. */
bool vrio_topo_network_spans(const struct vrio_topo_network *n, const char *name);

/*
 * Interposition (interpose:): a device's chain of stages, applied in order
 * on requests and in reverse on completions by the io-server. Disk stages
 * go with blk devices, network stages with net devices.
 */
enum vrio_stage_kind {
	VRIO_STAGE_THROTTLE = 1,	/* blk: a token bucket on IOPS and bytes */
	VRIO_STAGE_CRYPT,		/* blk: AES-XTS at rest, as dm-crypt plain */
	VRIO_STAGE_MIRROR,		/* blk: writes to a second backend too */
	VRIO_STAGE_ACL,			/* net: stateless filter */
	VRIO_STAGE_POLICE,		/* net: a rate limit per direction */
	VRIO_STAGE_CAPTURE,		/* net: pcap of both directions */
	VRIO_STAGE_KIND_MAX = VRIO_STAGE_CAPTURE,
};

struct vrio_topo_throttle {
	/* Per second; 0: no limit. iops/bps count every request; the read_
	 * and write_ ones only reads or writes (and discards). */
	uint64_t iops, bps, read_iops, read_bps, write_iops, write_bps;
	unsigned burst_ms;	/* what may pass at once after idling, default 100 */
};

struct vrio_topo_crypt {
	char *key_file;		/* the raw 64-byte AES-XTS-256 key */
	unsigned sector_size;	/* 512 (default) or 4096 */
	bool iv_large_sectors;	/* 4096: the IV counts 4096-byte sectors */
};

struct vrio_topo_mirror {
	struct vrio_topo_backend backend;	/* file or ram, as backend: */
};

struct vrio_topo_police_dir {
	uint64_t rate;		/* bytes per second; 0: no limit */
	uint64_t burst;		/* bytes, default rate / 10 */
};

struct vrio_topo_police {
	struct vrio_topo_police_dir in, out;	/* from / to the guest */
};

struct vrio_topo_capture {
	char *file;
	unsigned snaplen;	/* default 65535 */
	uint64_t max_size;	/* rotate at, default 0: never */
};

enum vrio_acl_dir { VRIO_ACL_IN = 1, VRIO_ACL_OUT = 2, VRIO_ACL_BOTH = 3 };

struct vrio_topo_acl_rule {
	bool allow;
	unsigned dir;		/* enum vrio_acl_dir */
	int ethertype;		/* -1: any */
	bool has_src, has_dst;
	uint8_t src[16], dst[16];	/* IPv4 in the first 4 bytes, or IPv6 */
	unsigned src_len, dst_len;	/* prefix lengths */
	bool v6;		/* src/dst are IPv6 */
	int proto;		/* -1: any; IPPROTO_* */
	unsigned sport_lo, sport_hi, dport_lo, dport_hi;	/* 0..65535 when unset */
	unsigned line, col;
};

struct vrio_topo_acl {
	bool default_allow;
	struct vrio_topo_acl_rule *rules;
	unsigned n_rules;
};

struct vrio_topo_stage {
	enum vrio_stage_kind kind;
	unsigned line, col;
	union {
		struct vrio_topo_throttle throttle;
		struct vrio_topo_crypt crypt;
		struct vrio_topo_mirror mirror;
		struct vrio_topo_acl acl;
		struct vrio_topo_police police;
		struct vrio_topo_capture capture;
	} u;
};

const char *vrio_stage_kind_name(enum vrio_stage_kind k);
/* Same kind and the same settings. */
bool vrio_topo_stage_equal(const struct vrio_topo_stage *a, const struct vrio_topo_stage *b);

#define VRIO_COALESCE_US_MAX 100
#define VRIO_COALESCE_US_DEFAULT 0

struct vrio_topo_device {
	char *name;
	enum vrio_dev_type type;
	struct vrio_topo_host *host;		/* resolved, never NULL */
	struct vrio_topo_ioserver *io_server;	/* resolved, never NULL */
	/* blk, file backend: the io-server that takes the device over when
	 * io_server fails (standby:), on the same storage; NULL: none. */
	struct vrio_topo_ioserver *standby;
	char *socket;		/* vhost-user socket path on the host */
	unsigned queues;	/* default 1; blk: virtqueues 1..64, net: queue pairs 1..VRIO_NET_MAX_QUEUE_PAIRS */
	unsigned queue_size;	/* default 256, power of two 1..1024 */
	bool read_only;		/* blk */
	struct vrio_topo_backend backend;	/* blk */
	char *mac;		/* net: "52:54:00:00:00:01" */
	struct vrio_topo_network *network;	/* net, resolved */
	bool offloads;		/* net: offer checksum and TSO offloads, default true */
	/* blk behind a vIOMMU: how invalidations are handled (iommu:). */
	bool iommu_deferred;	/* default false: strict */
	unsigned iommu_batch;	/* deferred: at most this many pending, default 32 */
	unsigned iommu_delay_ms;	/* deferred: or this old, default 10 */
	/* blk: how long local-hv may hold a guest interrupt for more
	 * completions (coalesce_us:, 0..VRIO_COALESCE_US_MAX; 0: off). */
	unsigned coalesce_us;
	struct vrio_topo_stage *stages;	/* interpose:, in order */
	unsigned n_stages;
	unsigned line, col;
};

struct vrio_topology {
	char *path;
	char sha256[65];	/* of the bytes read, lowercase hex: what sha256sum prints */
	unsigned version;
	struct vrio_topo_ioserver *io_servers;
	size_t n_io_servers;
	struct vrio_topo_host *hosts;
	size_t n_hosts;
	struct vrio_topo_device *devices;
	size_t n_devices;
	struct vrio_topo_network *networks;
	size_t n_networks;
	/* The rack's trunk key (keyfile.h, VRIO_AUTH_KEY_MIN bytes or more):
	 * the io-servers that trunk prove it to each other on every trunk
	 * connection, both ways; NULL: trunks are unauthenticated. */
	char *trunk_key_file;
	unsigned trunk_key_line, trunk_key_col;	/* its value, for messages */
};

/*
 * Load and check a topology. On error returns a negative errno and writes
 * one line "FILE:LINE:COL: message" into err (LINE and COL 1-based). On
 * success t->sha256 is the hash of exactly the bytes parsed.
 */
int vrio_topology_load(const char *path, struct vrio_topology **out, char *err, size_t errlen);
/* The same from memory; `name` stands for the file in messages. */
int vrio_topology_parse(const char *name, const char *text, size_t len,
			struct vrio_topology **out, char *err, size_t errlen);
void vrio_topology_free(struct vrio_topology *t);

struct vrio_topo_ioserver *vrio_topology_ioserver(const struct vrio_topology *t, const char *name);
struct vrio_topo_host *vrio_topology_host(const struct vrio_topology *t, const char *name);
struct vrio_topo_device *vrio_topology_device(const struct vrio_topology *t, const char *name);

const char *vrio_dev_type_name(enum vrio_dev_type t);

/*
 * Every key the loader accepts: fn(section, key, arg) for each, section by
 * section, in the loader's table order. section is "" for the top level,
 * else the path of list and mapping names down to the key's mapping
 * ("io_servers", "io_servers.cores", "devices.backend"); the stages' names
 * are keys of "devices.interpose", their settings are in
 * "devices.interpose.STAGE" ("devices.interpose.acl.rules"). The manual page
 * vrio-topology(5) is checked against it (tests/unit/common).
 */
void vrio_topology_keys(void (*fn)(const char *section, const char *key, void *arg), void *arg);

#endif
