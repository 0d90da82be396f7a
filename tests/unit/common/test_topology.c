/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "topology.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Lines 1-6: a valid head that the cases below extend. */
#define V     "version: 1\n"
#define IOS   "io_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\n"
#define HOSTS "hosts:\n  - name: host0\n"
#define HDR   V IOS HOSTS
/* Lines 7-12: a device without its type-specific keys; its mapping is at 8:5. */
#define DEV(type) \
	"devices:\n  - name: d0\n    type: " type "\n    host: host0\n    io_server: io0\n" \
	"    socket: /run/vrio/d0.sock\n"
#define BLK   DEV("blk")
#define NET   DEV("net")
#define RAM   "    backend: {ram: 64M}\n"
#define MAC   "    mac: \"52:54:00:00:00:01\"\n"
#define LAN   "    network: lan\n"
#define NETS  "networks:\n  - name: lan\n"
/* A second device, lines 14-19 after BLK RAM; its mapping is at 15:5. */
#define DEV2(name, sock) \
	"  - name: " name "\n    type: blk\n    host: host0\n    io_server: io0\n" \
	"    socket: " sock "\n    backend: {ram: 1M}\n"

/* Eight EAL arguments. */
#define EAL8  "-v -v -v -v -v -v -v -v "

struct bad_case {
	const char *what;
	const char *text;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{ "empty file", "",
	  "topo.yaml:1:1: empty topology (expected a mapping with version, io_servers and hosts)" },
	{ "only a comment", "# nothing here\n",
	  "topo.yaml:1:1: empty topology (expected a mapping with version, io_servers and hosts)" },
	{ "root is a list", "- a\n- b\n",
	  "topo.yaml:1:1: expected a mapping with version, io_servers and hosts at the top, got a sequence" },
	{ "root is a scalar", "hello\n",
	  "topo.yaml:1:1: expected a mapping with version, io_servers and hosts at the top, got 'hello'" },
	{ "syntax: unclosed flow sequence", "version: 1\nio_servers: [\n",
	  "topo.yaml:3:1: did not find expected node content (while parsing a flow node that starts at 3:1)" },
	{ "syntax: bad indentation", "version: 1\nhosts:\n  - name: a\n   bad: b\n",
	  "topo.yaml:4:4: did not find expected '-' indicator "
	  "(while parsing a block collection that starts at 3:3)" },
	{ "syntax: mapping in a plain value", "version: 1\nhosts: a: b\n",
	  "topo.yaml:2:9: mapping values are not allowed in this context" },
	{ "syntax: unclosed quote", "version: 1\nhosts:\n  - name: \"abc\n",
	  "topo.yaml:4:1: found unexpected end of stream "
	  "(while scanning a quoted scalar that starts at 3:11)" },
	{ "syntax: undefined alias", "version: 1\nio_servers: *ios\n",
	  "topo.yaml:2:13: found undefined alias" },
	{ "syntax: invalid UTF-8", "version: 1\nhosts: \xff\n",
	  "topo.yaml:2:8: invalid leading UTF-8 octet" },
	{ "two documents", HDR "---\nversion: 1\n",
	  "topo.yaml:8:1: expected a single YAML document" },
	{ "version 2", "version: 2\n" IOS HOSTS,
	  "topo.yaml:1:10: unsupported topology version 2 (expected 1)" },
	{ "version not a number", "version: one\n" IOS HOSTS,
	  "topo.yaml:1:10: expected an integer for 'version', got 'one'" },
	{ "version missing", IOS HOSTS,
	  "topo.yaml:1:1: topology: missing required key 'version'" },
	{ "hosts missing", V IOS,
	  "topo.yaml:1:1: topology: missing required key 'hosts'" },
	{ "unknown top-level key", HDR "hostz: []\n",
	  "topo.yaml:7:1: unknown key 'hostz' in topology "
	  "(expected one of: version, io_servers, hosts, devices, networks, trunk_key_file)" },
	{ "duplicate top-level key", HDR "hosts: []\n",
	  "topo.yaml:7:1: duplicate key 'hosts'" },
	{ "non-scalar key", HDR "? [a]\n: b\n",
	  "topo.yaml:7:3: expected a key name in topology, got a sequence" },
	{ "io_servers empty", V "io_servers: []\n" HOSTS,
	  "topo.yaml:2:13: 'io_servers' must list at least one io_server" },
	{ "io_servers a mapping", V "io_servers: {name: io0}\n" HOSTS,
	  "topo.yaml:2:13: expected a sequence for 'io_servers', got a mapping" },
	{ "io_server entry a scalar", V "io_servers:\n  - io0\n" HOSTS,
	  "topo.yaml:3:5: expected a mapping for each entry of 'io_servers', got 'io0'" },
	{ "unknown io_server key", V IOS "    listn: 127.0.0.1:7401\n" HOSTS,
	  "topo.yaml:5:5: unknown key 'listn' in io_server "
	  "(expected one of: name, transport, listen, metrics, control, cores, faults, dpdk, "
	  "heartbeat, tls)" },
	{ "tls not a mapping", V IOS "    tls: yes\n" HOSTS,
	  "topo.yaml:5:10: expected a mapping for 'tls', got 'yes'" },
	{ "tls empty", V IOS "    tls: {psk: false}\n" HOSTS,
	  "topo.yaml:5:10: tls: expected 'psk: true', or 'cert', 'key' and 'ca' (PEM files)" },
	{ "tls cert without ca", V IOS "    tls: {cert: /c.pem, key: /k.pem}\n" HOSTS,
	  "topo.yaml:5:10: tls: expected 'psk: true', or 'cert', 'key' and 'ca' (PEM files)" },
	{ "tls psk and cert", V IOS "    tls: {psk: true, cert: /c.pem}\n" HOSTS,
	  "topo.yaml:5:10: tls: 'psk: true' or 'cert', 'key' and 'ca', not both" },
	{ "tls unknown key", V IOS "    tls: {pks: true}\n" HOSTS,
	  "topo.yaml:5:11: unknown key 'pks' in tls (expected one of: psk, cert, key, ca)" },
	{ "tls over shm", V "io_servers:\n  - name: io0\n    transport: shm\n"
	  "    listen: /tmp/x.sock\n    tls: {psk: true}\n" HOSTS,
	  "topo.yaml:6:5: io_server 'io0': 'tls' goes with transport tcp, not shm" },
	{ "tls psk, a host without a key", V IOS "    tls: {psk: true}\n" HOSTS
	  "devices:\n  - name: d0\n    type: blk\n    host: host0\n    io_server: io0\n"
	  "    socket: /tmp/d0.sock\n    backend: {ram: 1M}\n",
	  "topo.yaml:11:11: device 'd0': io_server 'io0' has tls: {psk: true}, but host 'host0' "
	  "has no key_file to derive its PSK from" },
	{ "io_server without listen", V "io_servers:\n  - name: io0\n" HOSTS,
	  "topo.yaml:3:5: io_server: missing required key 'listen'" },
	{ "io_server without name", V "io_servers:\n  - listen: 127.0.0.1:7400\n" HOSTS,
	  "topo.yaml:3:5: io_server: missing required key 'name'" },
	{ "io_server name with a space", V "io_servers:\n  - name: io 0\n" HOSTS,
	  "topo.yaml:3:11: invalid name 'io 0' for 'name' (expected 1 to 63 of A-Z a-z 0-9 _ . -)" },
	{ "io_server name too long", V "io_servers:\n  - name: "
	  "a123456789b123456789c123456789d123456789e123456789f123456789abcd\n" HOSTS,
	  "topo.yaml:3:11: invalid name "
	  "'a123456789b123456789c123456789d123456789e123456789f123456789abcd' for 'name' "
	  "(expected 1 to 63 of A-Z a-z 0-9 _ . -)" },
	{ "duplicate io_server", V IOS "  - name: io0\n    listen: 127.0.0.1:7401\n" HOSTS,
	  "topo.yaml:5:11: io_server 'io0' is already defined at 3:5" },
	{ "listen without port", V "io_servers:\n  - name: io0\n    listen: 127.0.0.1\n" HOSTS,
	  "topo.yaml:4:13: expected host:port (like 127.0.0.1:7400 or [::1]:7400) for 'listen', "
	  "got '127.0.0.1'" },
	{ "metrics port out of range", V IOS "    metrics: 127.0.0.1:70000\n" HOSTS,
	  "topo.yaml:5:14: expected host:port (like 127.0.0.1:7400 or [::1]:7400) for 'metrics', "
	  "got '127.0.0.1:70000'" },
	{ "listen empty", V "io_servers:\n  - name: io0\n    listen:\n" HOSTS,
	  "topo.yaml:4:12: expected host:port for 'listen', got an empty value" },
	{ "unknown transport", V IOS "    transport: udp\n" HOSTS,
	  "topo.yaml:5:16: unknown transport 'udp' (expected tcp, shm, dpdk, rdma)" },
	{ "shm listen not a path",
	  V "io_servers:\n  - name: io0\n    transport: shm\n    listen: 127.0.0.1:7400\n" HOSTS,
	  "topo.yaml:5:13: expected an absolute path for 'listen', got '127.0.0.1:7400'" },
	{ "tcp listen given before the transport is still checked",
	  V "io_servers:\n  - name: io0\n    listen: /run/x.sock\n    transport: tcp\n" HOSTS,
	  "topo.yaml:4:13: expected host:port (like 127.0.0.1:7400 or [::1]:7400) for 'listen', "
	  "got '/run/x.sock'" },
	{ "dpdk listen not a MAC",
	  V "io_servers:\n  - name: io0\n    transport: dpdk\n    listen: 127.0.0.1:7400\n" HOSTS,
	  "topo.yaml:5:13: expected a MAC address of six hex octets (like 52:54:00:00:00:01) "
	  "for 'listen', got '127.0.0.1:7400'" },
	{ "dpdk listen multicast",
	  V "io_servers:\n  - name: io0\n    transport: dpdk\n    listen: \"03:00:00:00:00:01\"\n"
	  HOSTS,
	  "topo.yaml:5:13: 'listen' must be a unicast address, got 03:00:00:00:00:01" },
	{ "dpdk settings on a tcp io_server", V IOS "    dpdk: {port: 0}\n" HOSTS,
	  "topo.yaml:5:5: io_server 'io0': 'dpdk' goes with transport dpdk, not tcp" },
	{ "unknown dpdk key", V IOS "    dpdk: {eal: --no-pci, prt: 1}\n" HOSTS,
	  "topo.yaml:5:27: unknown key 'prt' in dpdk (expected one of: eal, port)" },
	{ "unknown faults key", V IOS "    faults: {drop: 0.05, lose: 1}\n" HOSTS,
	  "topo.yaml:5:26: unknown key 'lose' in faults (expected one of: seed, drop, duplicate, "
	  "reorder, delay_us, disconnect_after)" },
	{ "fault probability above 1", V IOS "    faults: {drop: 5}\n" HOSTS,
	  "topo.yaml:5:20: expected a probability between 0 and 1 for 'drop', got '5'" },
	{ "fault probability not a number", V IOS "    faults: {reorder: often}\n" HOSTS,
	  "topo.yaml:5:23: expected a probability between 0 and 1 for 'reorder', got 'often'" },
	{ "heartbeat not a mapping", V IOS "    heartbeat: 100\n" HOSTS,
	  "topo.yaml:5:16: expected a mapping for 'heartbeat', got '100'" },
	{ "unknown heartbeat key", V IOS "    heartbeat: {interval: 100}\n" HOSTS,
	  "topo.yaml:5:17: unknown key 'interval' in heartbeat "
	  "(expected one of: interval_ms, dead_after_ms)" },
	{ "heartbeat interval too short", V IOS "    heartbeat: {interval_ms: 5}\n" HOSTS,
	  "topo.yaml:5:30: 'interval_ms' must be between 10 and 60000, got 5" },
	{ "heartbeat dead_after not above twice the interval",
	  V IOS "    heartbeat: {interval_ms: 200, dead_after_ms: 400}\n" HOSTS,
	  "topo.yaml:5:50: heartbeat: 'dead_after_ms' (400) must be more than twice "
	  "'interval_ms' (200)" },
	{ "heartbeat interval alone above half the default dead_after",
	  V IOS "    heartbeat: {interval_ms: 500}\n" HOSTS,
	  "topo.yaml:5:16: heartbeat: 'dead_after_ms' (1000) must be more than twice "
	  "'interval_ms' (500)" },
	{ "unknown cores key", V IOS "    cores: {min: 1, maks: 2}\n" HOSTS,
	  "topo.yaml:5:21: unknown key 'maks' in cores (expected one of: min, max, busy_high, "
	  "busy_low)" },
	{ "cores busy_low not below busy_high",
	  V IOS "    cores: {min: 1, max: 2, busy_high: 60, busy_low: 60}\n" HOSTS,
	  "topo.yaml:5:12: cores: 'busy_low' (60) must be below 'busy_high' (60)" },
	{ "cores busy_high out of range", V IOS "    cores: {busy_high: 101}\n" HOSTS,
	  "topo.yaml:5:24: 'busy_high' must be between 2 and 100, got 101" },
	{ "cores min above max", V IOS "    cores: {min: 4, max: 2}\n" HOSTS,
	  "topo.yaml:5:12: cores: 'min' (4) is greater than 'max' (2)" },
	{ "cores max out of range", V IOS "    cores: {max: 65}\n" HOSTS,
	  "topo.yaml:5:18: 'max' must be between 1 and 64, got 65" },
	{ "cores a scalar", V IOS "    cores: 2\n" HOSTS,
	  "topo.yaml:5:12: expected a mapping for 'cores', got '2'" },
	{ "unknown host key", HDR "    metric: 127.0.0.1:9401\n",
	  "topo.yaml:7:5: unknown key 'metric' in host (expected one of: name, metrics, control, "
	  "dpdk, key_file)" },
	{ "dpdk not a mapping", HDR "    dpdk: net_memif0\n",
	  "topo.yaml:7:11: expected a mapping for 'dpdk', got 'net_memif0'" },
	{ "dpdk port out of range", HDR "    dpdk: {port: 70000}\n",
	  "topo.yaml:7:18: 'port' must be between 0 and 65535, got 70000" },
	{ "dpdk port neither an id nor a name", HDR "    dpdk: {port: net memif}\n",
	  "topo.yaml:7:18: expected a port id or a device name (like net_memif0) for 'port', "
	  "got 'net memif'" },
	{ "dpdk eal with quotes", HDR "    dpdk: {eal: \"--vdev='net_memif0'\"}\n",
	  "topo.yaml:7:17: 'eal' is split at blanks and takes no quotes or escapes, "
	  "got --vdev='net_memif0'" },
	{ "dpdk eal only blanks", HDR "    dpdk: {eal: \"  \"}\n",
	  "topo.yaml:7:17: expected EAL arguments for 'eal', got '  '" },
	{ "dpdk eal on two lines", HDR "    dpdk: {eal: \"-m 64\\n--no-pci\"}\n",
	  "topo.yaml:7:17: expected EAL arguments on one line for 'eal', got '-m 64?--no-pci'" },
	{ "dpdk eal too long", HDR "    dpdk: {eal: " EAL8 EAL8 EAL8 EAL8 EAL8 EAL8 EAL8 EAL8 "-v}\n",
	  "topo.yaml:7:17: 'eal' holds at most 64 arguments, got 65" },
	{ "control relative", V IOS "    control: run/io0.sock\n" HOSTS,
	  "topo.yaml:5:14: expected an absolute path for 'control', got 'run/io0.sock'" },
	{ "control a mapping", HDR "    control: {path: /run/h.sock}\n",
	  "topo.yaml:7:14: expected an absolute path for 'control', got a mapping" },
	{ "control empty", HDR "    control:\n",
	  "topo.yaml:7:13: expected an absolute path for 'control', got an empty value" },
	{ "control too long", HDR "    control: /run/vrio/"
	  "012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012.sock\n",
	  "topo.yaml:7:14: 'control' path is 108 bytes long, a unix socket path holds at most 107" },
	{ "control twice", HDR "    control: /run/a.sock\n    control: /run/b.sock\n",
	  "topo.yaml:8:5: duplicate key 'control'" },
	{ "control of two io_servers",
	  V IOS "    control: /run/c.sock\n  - name: io1\n    listen: 127.0.0.1:7401\n"
	  "    control: /run/c.sock\n" HOSTS,
	  "topo.yaml:8:14: io_server 'io1': control '/run/c.sock' is already used by io_server 'io0'" },
	{ "control of a host on an io_server's default", HDR "    control: /run/vrio/io0.sock\n",
	  "topo.yaml:7:14: host 'host0': control '/run/vrio/io0.sock' is already used by "
	  "io_server 'io0'" },
	{ "host and io_server of one name", V IOS "hosts:\n  - name: io0\n",
	  "topo.yaml:6:5: host 'io0': control '/run/vrio/io0.sock' (the default) is already used "
	  "by io_server 'io0'" },
	{ "control clash with hosts first",
	  V "hosts:\n  - name: h0\n    control: /run/x.sock\nio_servers:\n  - name: io0\n"
	  "    listen: 127.0.0.1:7400\n    control: /run/x.sock\n",
	  "topo.yaml:8:14: io_server 'io0': control '/run/x.sock' is already used by host 'h0'" },
	{ "control of two hosts", HDR "    control: /run/h.sock\n  - name: host1\n"
	  "    control: /run/h.sock\n",
	  "topo.yaml:9:14: host 'host1': control '/run/h.sock' is already used by host 'host0'" },
	{ "device socket on a host's control", HDR "devices:\n  - name: d0\n    type: blk\n"
	  "    host: host0\n    io_server: io0\n    socket: /run/vrio/host0.sock\n" RAM,
	  "topo.yaml:12:13: device 'd0': socket '/run/vrio/host0.sock' is the control socket of "
	  "host 'host0'" },
	{ "device socket on an io_server's control", HDR "devices:\n  - name: d0\n    type: blk\n"
	  "    host: host0\n    io_server: io0\n    socket: /run/vrio/io0.sock\n" RAM,
	  "topo.yaml:12:13: device 'd0': socket '/run/vrio/io0.sock' is the control socket of "
	  "io_server 'io0'" },
	{ "host without name", V IOS "hosts:\n  - metrics: 127.0.0.1:9401\n",
	  "topo.yaml:6:5: host: missing required key 'name'" },
	{ "duplicate host", HDR "  - name: host0\n",
	  "topo.yaml:7:11: host 'host0' is already defined at 6:5" },
	{ "unknown device key", HDR BLK RAM "    colour: red\n",
	  "topo.yaml:14:5: unknown key 'colour' in device (expected one of: name, type, host, "
	  "io_server, socket, queues, queue_size, read_only, backend, mac, network, iommu, "
	  "interpose, standby, coalesce_us, offloads)" },
	{ "coalesce_us too long", HDR BLK RAM "    coalesce_us: 101\n",
	  "topo.yaml:14:18: 'coalesce_us' must be between 0 and 100, got 101" },
	{ "coalesce_us negative", HDR BLK RAM "    coalesce_us: -1\n",
	  "topo.yaml:14:18: expected an integer for 'coalesce_us', got '-1'" },
	{ "coalesce_us for a net device", HDR NET MAC LAN "    coalesce_us: 5\n" NETS,
	  "topo.yaml:15:5: device 'd0': 'coalesce_us' is only valid for blk devices" },
	{ "standby not an io_server", HDR BLK RAM "    standby: io9\n",
	  "topo.yaml:14:14: device 'd0': standby 'io9' is not defined under io_servers" },
	{ "standby the io_server itself", HDR BLK RAM "    standby: io0\n",
	  "topo.yaml:14:14: device 'd0': standby 'io0' is its io_server already; name another "
	  "io_server" },
	{ "standby over a ram backend",
	  V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n" HOSTS BLK RAM "    standby: io1\n",
	  "topo.yaml:16:14: device 'd0': a standby needs storage both io-servers reach: a file "
	  "backend (a file or block device), not ram" },
	{ "standby for a net device", HDR NET MAC LAN "    standby: io0\n" NETS,
	  "topo.yaml:15:5: device 'd0': 'standby' is only valid for blk devices" },
	{ "interpose not a list", HDR BLK RAM "    interpose: {throttle: {iops: 1}}\n",
	  "topo.yaml:14:16: expected a list of stages for 'interpose', got a mapping" },
	{ "interpose unknown stage", HDR BLK RAM "    interpose:\n      - throttel: {iops: 1}\n",
	  "topo.yaml:15:9: interpose: unknown stage 'throttel' (known: throttle, crypt, mirror, "
	  "acl, police, capture)" },
	{ "interpose two keys", HDR BLK RAM "    interpose:\n      - {throttle: {iops: 1}, crypt: {}}\n",
	  "topo.yaml:15:9: interpose: each stage is one 'name: {settings}'" },
	{ "throttle without a limit", HDR BLK RAM "    interpose:\n      - throttle: {burst_ms: 5}\n",
	  "topo.yaml:15:19: throttle: no limit: give iops, bps or a read_/write_ one" },
	{ "throttle bad key", HDR BLK RAM "    interpose:\n      - throttle: {speed: 5}\n",
	  "topo.yaml:15:20: unknown key 'speed' in throttle (expected one of: iops, bps, read_iops, "
	  "read_bps, write_iops, write_bps, burst_ms)" },
	{ "throttle zero iops", HDR BLK RAM "    interpose:\n      - throttle: {iops: 0}\n",
	  "topo.yaml:15:26: 'iops' must be between 1 and 4294967295, got 0" },
	{ "throttle bad rate", HDR BLK RAM "    interpose:\n      - throttle: {bps: 10Q}\n",
	  "topo.yaml:15:25: expected a number of bytes (suffix K, M, G or T, optional /s) for "
	  "'bps', got '10Q'" },
	{ "crypt without a key file", HDR BLK RAM "    interpose:\n      - crypt: {sector_size: 512}\n",
	  "topo.yaml:15:16: crypt: missing required key 'key_file'" },
	{ "crypt other cipher", HDR BLK RAM
	  "    interpose:\n      - crypt: {cipher: aes-cbc, key_file: /k}\n",
	  "topo.yaml:15:25: expected aes-xts-plain64 for 'cipher', got 'aes-cbc'" },
	{ "crypt sector size", HDR BLK RAM
	  "    interpose:\n      - crypt: {key_file: /k, sector_size: 1024}\n",
	  "topo.yaml:15:44: expected 512 or 4096 for 'sector_size', got '1024'" },
	{ "crypt large IVs of small sectors", HDR BLK RAM
	  "    interpose:\n      - crypt: {key_file: /k, iv_large_sectors: true}\n",
	  "topo.yaml:15:31: crypt: 'iv_large_sectors' goes with sector_size 4096" },
	{ "mirror without a backend", HDR BLK RAM "    interpose:\n      - mirror: {direct: true}\n",
	  "topo.yaml:15:17: mirror: missing required key 'file' or 'ram'" },
	{ "mirror on null", HDR BLK RAM "    interpose:\n      - mirror: {null: 1M}\n",
	  "topo.yaml:15:18: unknown key 'null' in mirror (expected one of: file, ram, size, direct)" },
	{ "stage twice", HDR BLK RAM
	  "    interpose:\n      - throttle: {iops: 1}\n      - throttle: {iops: 2}\n",
	  "topo.yaml:16:9: interpose: 'throttle' is already in the chain at 15:9" },
	{ "mirror before crypt", HDR BLK RAM
	  "    interpose:\n      - mirror: {ram: 1M}\n      - crypt: {key_file: /k}\n",
	  "topo.yaml:16:9: device 'd0': crypt after the mirror at 15:9 would leave the mirror's "
	  "copy in plaintext; list crypt first" },
	{ "disk stage on a net device", HDR NET MAC LAN
	  "    interpose:\n      - crypt: {key_file: /k}\n" NETS,
	  "topo.yaml:16:9: device 'd0': stage 'crypt' is only valid for blk devices" },
	{ "net stage on a disk", HDR BLK RAM "    interpose:\n      - police: {in: {rate: 1M}}\n",
	  "topo.yaml:15:9: device 'd0': stage 'police' is only valid for net devices" },
	{ "police without a direction", HDR NET MAC LAN "    interpose:\n      - police: {}\n" NETS,
	  "topo.yaml:16:17: police: give 'in', 'out' or both" },
	{ "acl bad action", HDR NET MAC LAN
	  "    interpose:\n      - acl: {rules: [{action: drop}]}\n" NETS,
	  "topo.yaml:16:32: expected allow or deny for 'action', got 'drop'" },
	{ "acl bad prefix", HDR NET MAC LAN
	  "    interpose:\n      - acl: {rules: [{action: deny, src: 10.0.0.0/33}]}\n" NETS,
	  "topo.yaml:16:43: expected an IPv4 or IPv6 address, with an optional /prefix for 'src', "
	  "got '10.0.0.0/33'" },
	{ "acl ports without tcp or udp", HDR NET MAC LAN
	  "    interpose:\n      - acl: {rules: [{action: deny, proto: icmp, dport: 22}]}\n" NETS,
	  "topo.yaml:16:51: acl: ports go with proto tcp or udp" },
	{ "capture without a file", HDR NET MAC LAN "    interpose:\n      - capture: {snaplen: 96}\n" NETS,
	  "topo.yaml:16:18: capture: missing required key 'file'" },
	{ "iommu policy unknown", HDR BLK RAM "    iommu: {policy: lazy}\n",
	  "topo.yaml:14:21: expected strict or deferred for 'policy', got 'lazy'" },
	{ "iommu batch zero", HDR BLK RAM "    iommu: {policy: deferred, batch: 0}\n",
	  "topo.yaml:14:38: 'batch' must be between 1 and 1024, got 0" },
	{ "iommu on a net device", HDR NET MAC LAN "    iommu: {policy: strict}\n" NETS,
	  "topo.yaml:15:5: device 'd0': 'iommu' is only valid for blk devices" },
	{ "duplicate device key", HDR BLK RAM "    host: host0\n",
	  "topo.yaml:14:5: duplicate key 'host'" },
	{ "device without socket",
	  HDR "devices:\n  - name: d0\n    type: blk\n    host: host0\n    io_server: io0\n" RAM,
	  "topo.yaml:8:5: device: missing required key 'socket'" },
	{ "device without type",
	  HDR "devices:\n  - name: d0\n    host: host0\n    io_server: io0\n    socket: /s\n" RAM,
	  "topo.yaml:8:5: device: missing required key 'type'" },
	{ "unknown device type", HDR DEV("scsi") RAM,
	  "topo.yaml:9:11: unknown device type 'scsi' (expected blk or net)" },
	{ "blk without backend", HDR BLK,
	  "topo.yaml:8:5: device 'd0': missing required key 'backend' for a blk device" },
	{ "net without mac", HDR NET LAN NETS,
	  "topo.yaml:8:5: device 'd0': missing required key 'mac' for a net device" },
	{ "net without network", HDR NET MAC NETS,
	  "topo.yaml:8:5: device 'd0': missing required key 'network' for a net device" },
	{ "blk with mac", HDR BLK RAM MAC,
	  "topo.yaml:14:5: device 'd0': 'mac' is only valid for net devices" },
	{ "net with backend", HDR NET MAC LAN RAM NETS,
	  "topo.yaml:15:5: device 'd0': 'backend' is only valid for blk devices" },
	{ "net with read_only", HDR NET "    read_only: true\n" MAC LAN NETS,
	  "topo.yaml:13:5: device 'd0': 'read_only' is only valid for blk devices" },
	{ "duplicate device", HDR BLK RAM DEV2("d0", "/run/vrio/d1.sock"),
	  "topo.yaml:14:11: device 'd0' is already defined at 8:5" },
	{ "duplicate socket", HDR BLK RAM DEV2("d1", "/run/vrio/d0.sock"),
	  "topo.yaml:18:13: device 'd1': socket '/run/vrio/d0.sock' is already used by device 'd0'" },
	{ "relative socket", HDR "devices:\n  - name: d0\n    type: blk\n    host: host0\n"
	  "    io_server: io0\n    socket: run/d0.sock\n" RAM,
	  "topo.yaml:12:13: expected an absolute path for 'socket', got 'run/d0.sock'" },
	{ "socket too long", HDR "devices:\n  - name: d0\n    type: blk\n    host: host0\n"
	  "    io_server: io0\n    socket: /run/vrio/"
	  "012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012.sock\n"
	  RAM,
	  "topo.yaml:12:13: 'socket' path is 108 bytes long, a unix socket path holds at most 107" },
	{ "dangling host", HDR "devices:\n  - name: d0\n    type: blk\n    host: host9\n"
	  "    io_server: io0\n    socket: /s\n" RAM,
	  "topo.yaml:10:11: device 'd0': host 'host9' is not defined under hosts" },
	{ "dangling io_server", HDR "devices:\n  - name: d0\n    type: blk\n    host: host0\n"
	  "    io_server: io1\n    socket: /s\n" RAM,
	  "topo.yaml:11:16: device 'd0': io_server 'io1' is not defined under io_servers" },
	{ "dangling network", HDR NET MAC "    network: wan\n" NETS,
	  "topo.yaml:14:14: device 'd0': network 'wan' is not defined under networks" },
	{ "device on an empty host list", V IOS "hosts: []\n" BLK RAM,
	  "topo.yaml:9:11: device 'd0': host 'host0' is not defined under hosts" },
	{ "queues not a number", HDR BLK RAM "    queues: two\n",
	  "topo.yaml:14:13: expected an integer for 'queues', got 'two'" },
	{ "queues negative", HDR BLK RAM "    queues: -1\n",
	  "topo.yaml:14:13: expected an integer for 'queues', got '-1'" },
	{ "queues hexadecimal", HDR BLK RAM "    queues: 0x10\n",
	  "topo.yaml:14:13: expected an integer for 'queues', got '0x10'" },
	{ "queues zero", HDR BLK RAM "    queues: 0\n",
	  "topo.yaml:14:13: 'queues' must be between 1 and 64, got 0" },
	{ "queues too many", HDR BLK RAM "    queues: 65\n",
	  "topo.yaml:14:13: 'queues' must be between 1 and 64, got 65" },
	{ "queues overflow", HDR BLK RAM "    queues: 99999999999999999999999\n",
	  "topo.yaml:14:13: 'queues' must be between 1 and 64, got 99999999999999999999999" },
	{ "queue_size not a power of two", HDR BLK RAM "    queue_size: 100\n",
	  "topo.yaml:14:17: 'queue_size' must be a power of two, got 100" },
	{ "queue_size too big", HDR BLK RAM "    queue_size: 2048\n",
	  "topo.yaml:14:17: 'queue_size' must be between 2 and 1024, got 2048" },
	{ "queue_size one", HDR BLK RAM "    queue_size: 1\n",
	  "topo.yaml:14:17: 'queue_size' must be between 2 and 1024, got 1" },
	{ "bad bool", HDR BLK RAM "    read_only: maybe\n",
	  "topo.yaml:14:16: expected true or false for 'read_only', got 'maybe'" },
	{ "offloads not a bool", HDR NET MAC LAN "    offloads: off\n" NETS,
	  "topo.yaml:15:15: expected true or false for 'offloads', got 'off'" },
	{ "blk with offloads", HDR BLK RAM "    offloads: false\n",
	  "topo.yaml:14:5: device 'd0': 'offloads' is only valid for net devices" },
	{ "backend a scalar", HDR BLK "    backend: /var/d0.img\n",
	  "topo.yaml:13:14: expected a mapping for 'backend', got '/var/d0.img'" },
	{ "unknown backend key", HDR BLK "    backend: {path: /var/d0.img}\n",
	  "topo.yaml:13:15: unknown key 'path' in backend "
	  "(expected one of: file, ram, size, direct, null)" },
	{ "backend file and ram", HDR BLK "    backend: {file: /var/d0.img, ram: 1M}\n",
	  "topo.yaml:13:34: backend: 'file' and 'ram' exclude each other" },
	{ "backend ram and null", HDR BLK "    backend: {null: 1M, ram: 1M}\n",
	  "topo.yaml:13:25: backend: 'ram' and 'null' exclude each other" },
	{ "backend file and null", HDR BLK "    backend: {file: /var/d0.img, null: 1M}\n",
	  "topo.yaml:13:34: backend: 'file' and 'null' exclude each other" },
	{ "backend neither file nor ram", HDR BLK "    backend: {size: 1M}\n",
	  "topo.yaml:13:14: backend: missing required key 'file', 'ram' or 'null'" },
	{ "backend null with size", HDR BLK "    backend: {null: 1M, size: 2M}\n",
	  "topo.yaml:13:25: backend: 'size' goes with 'file'; 'null' takes the size" },
	{ "backend null with direct", HDR BLK "    backend: {null: 1M, direct: true}\n",
	  "topo.yaml:13:25: backend: 'direct' goes with 'file' only" },
	{ "null size zero", HDR BLK "    backend: {null: 0}\n",
	  "topo.yaml:13:21: 'null' must be a positive multiple of 512 bytes, got 0" },
	{ "backend ram with size", HDR BLK "    backend: {ram: 1M, size: 2M}\n",
	  "topo.yaml:13:24: backend: 'size' goes with 'file'; 'ram' takes the size" },
	{ "backend ram with direct", HDR BLK "    backend: {ram: 1M, direct: true}\n",
	  "topo.yaml:13:24: backend: 'direct' goes with 'file' only" },
	{ "bad size suffix", HDR BLK "    backend: {ram: 12X}\n",
	  "topo.yaml:13:20: expected a size (bytes, or a number with suffix K, M, G or T) for 'ram', "
	  "got '12X'" },
	{ "size lower-case suffix", HDR BLK "    backend: {ram: 1m}\n",
	  "topo.yaml:13:20: expected a size (bytes, or a number with suffix K, M, G or T) for 'ram', "
	  "got '1m'" },
	{ "size not whole sectors", HDR BLK "    backend: {file: /d.img, size: 1000}\n",
	  "topo.yaml:13:35: 'size' must be a positive multiple of 512 bytes, got 1000" },
	{ "size zero", HDR BLK "    backend: {ram: 0}\n",
	  "topo.yaml:13:20: 'ram' must be a positive multiple of 512 bytes, got 0" },
	{ "size overflows", HDR BLK "    backend: {ram: 17179869184T}\n",
	  "topo.yaml:13:20: 'ram' must be a positive multiple of 512 bytes, got 17179869184T" },
	{ "mac too short", HDR NET "    mac: 52:54:00:00:00\n" LAN NETS,
	  "topo.yaml:13:10: expected a MAC address of six hex octets (like 52:54:00:00:00:01) "
	  "for 'mac', got '52:54:00:00:00'" },
	{ "mac not hex", HDR NET "    mac: 52:54:00:00:00:0g\n" LAN NETS,
	  "topo.yaml:13:10: expected a MAC address of six hex octets (like 52:54:00:00:00:01) "
	  "for 'mac', got '52:54:00:00:00:0g'" },
	{ "mac multicast", HDR NET "    mac: 01:00:5e:00:00:01\n" LAN NETS,
	  "topo.yaml:13:10: 'mac' must be a unicast address, got 01:00:5e:00:00:01" },
	{ "mac all zero", HDR NET "    mac: 00:00:00:00:00:00\n" LAN NETS,
	  "topo.yaml:13:10: 'mac' must be a unicast address, got 00:00:00:00:00:00" },
	{ "mac used twice on a network",
	  HDR NET MAC LAN "  - name: d1\n    type: net\n    host: host0\n    io_server: io0\n"
	  "    socket: /run/vrio/d1.sock\n    mac: 52:54:00:00:00:01\n    network: lan\n" NETS,
	  "topo.yaml:20:10: device 'd1': mac 52:54:00:00:00:01 is already used by device 'd0' "
	  "on network 'lan'" },
	{ "unknown network key", HDR "networks:\n  - name: lan\n    vlan: 3\n",
	  "topo.yaml:9:5: unknown key 'vlan' in network (expected one of: name, mtu, ageing, "
	  "uplink, io_servers)" },
	{ "network mtu too large", HDR "networks:\n  - name: lan\n    mtu: 9001\n",
	  "topo.yaml:9:10: 'mtu' must be between 68 and 9000, got 9001" },
	{ "network ageing zero", HDR "networks:\n  - name: lan\n    ageing: 0\n",
	  "topo.yaml:9:13: 'ageing' must be between 1 and 86400, got 0" },
	{ "uplink without tap", HDR "networks:\n  - name: lan\n    uplink: {}\n",
	  "topo.yaml:9:13: uplink: missing required key 'tap'" },
	{ "uplink tap name too long",
	  HDR "networks:\n  - name: lan\n    uplink: {tap: abcdefghijklmnop}\n",
	  "topo.yaml:9:19: expected an interface name of 1 to 15 characters, without '/', ':' "
	  "or blanks for 'tap', got 'abcdefghijklmnop'" },
	{ "uplink tap with a slash", HDR "networks:\n  - name: lan\n    uplink: {tap: a/b}\n",
	  "topo.yaml:9:19: expected an interface name of 1 to 15 characters, without '/', ':' "
	  "or blanks for 'tap', got 'a/b'" },
	{ "uplink tap on two networks",
	  HDR "networks:\n  - name: lan\n    uplink: {tap: up0}\n  - name: wan\n"
	  "    uplink: {tap: up0}\n",
	  "topo.yaml:11:13: network 'wan': tap 'up0' is already the uplink of network 'lan'" },
	{ "net device with 33 queue pairs", HDR NET MAC LAN "    queues: 33\n" NETS,
	  "topo.yaml:15:13: device 'd0': a net device has 1 to 32 queue pairs, got 33" },
	{ "net device with no queue pair", HDR NET MAC LAN "    queues: 0\n" NETS,
	  "topo.yaml:15:13: 'queues' must be between 1 and 64, got 0" },
	{ "network outside its explicit io_servers",
	  V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n" HOSTS
	  "devices:\n  - name: d0\n    type: net\n    host: host0\n    io_server: io0\n"
	  "    socket: /run/vrio/d0.sock\n" MAC LAN
	  "  - name: d1\n    type: net\n    host: host0\n    io_server: io1\n"
	  "    socket: /run/vrio/d1.sock\n    mac: 52:54:00:00:00:02\n" LAN
	  NETS "    io_servers: [io0]\n",
	  "topo.yaml:20:16: device 'd1': io_server 'io1' is not one of the io_servers of network "
	  "'lan'" },
	{ "network with an uplink across io-servers",
	  V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n" HOSTS
	  "devices:\n  - name: d0\n    type: net\n    host: host0\n    io_server: io0\n"
	  "    socket: /run/vrio/d0.sock\n" MAC LAN
	  "  - name: d1\n    type: net\n    host: host0\n    io_server: io1\n"
	  "    socket: /run/vrio/d1.sock\n    mac: 52:54:00:00:00:02\n" LAN
	  NETS "    uplink: {tap: up0}\n",
	  "topo.yaml:26:13: network 'lan': an uplink needs the network on one io_server, but it "
	  "spans io0 and io1" },
	{ "network io_servers unknown", HDR NETS "    io_servers: [io0, io9]\n",
	  "topo.yaml:9:23: network 'lan': io_server 'io9' is not defined under io_servers" },
	{ "network io_servers twice", HDR NETS "    io_servers: [io0, io0]\n",
	  "topo.yaml:9:23: network 'lan': io_server 'io0' is listed twice" },
	{ "network io_servers empty", HDR NETS "    io_servers: []\n",
	  "topo.yaml:9:17: expected a list of io_server names for 'io_servers', got a sequence" },
	{ "network io_servers a scalar", HDR NETS "    io_servers: io0\n",
	  "topo.yaml:9:17: expected a list of io_server names for 'io_servers', got 'io0'" },
	{ "network across transports",
	  V IOS "  - name: io1\n    transport: shm\n    listen: /run/vrio/io1.sock\n" HOSTS
	  NETS "    io_servers: [io0, io1]\n",
	  "topo.yaml:11:5: network 'lan' spans io_servers 'io0' (tcp) and 'io1' (shm): trunks "
	  "need one transport" },
	{ "network across a psk listener without a trunk key",
	  V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n    tls: {psk: true}\n" HOSTS
	  NETS "    io_servers: [io0, io1]\n",
	  "topo.yaml:11:5: network 'lan' spans io_server 'io1', whose listener has tls: "
	  "{psk: true}: its trunks' PSK comes from trunk_key_file, and there is none" },
	{ "duplicate network", HDR "networks:\n  - name: lan\n  - name: lan\n",
	  "topo.yaml:9:11: network 'lan' is already defined at 8:5" },
	{ "networks a scalar", HDR "networks: lan\n",
	  "topo.yaml:7:11: expected a sequence for 'networks', got 'lan'" },
	{ "line break in a quoted value", HDR "networks:\n  - name: \"a\\nb\"\n",
	  "topo.yaml:8:11: invalid name 'a?b' for 'name' (expected 1 to 63 of A-Z a-z 0-9 _ . -)" },
};

static int parse_bad(const struct bad_case *bc, char *err, size_t errlen)
{
	struct vrio_topology *t = NULL;
	int ret;

	err[0] = '\0';
	ret = vrio_topology_parse("topo.yaml", bc->text, strlen(bc->text), &t, err, errlen);
	if (t)
		print_message("case '%s' was accepted\n", bc->what);
	assert_null(t);
	return ret;
}

static void test_bad_topologies(void **state)
{
	unsigned failed = 0;
	char err[512];

	/* Report every row that fails before stopping at the first. */
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		int ret = parse_bad(&bad_cases[i], err, sizeof(err));

		if (ret != -EINVAL || strcmp(err, bad_cases[i].msg) != 0) {
			print_message("case '%s' (ret %d)\n  want: %s\n  got:  %s\n", bad_cases[i].what,
				      ret, bad_cases[i].msg, err);
			failed++;
		}
	}
	for (size_t i = 0; failed && i < ARRAY_SIZE(bad_cases); i++) {
		assert_int_equal(parse_bad(&bad_cases[i], err, sizeof(err)), -EINVAL);
		assert_string_equal(err, bad_cases[i].msg);
	}
	assert_int_equal(failed, 0);
}

/* A null backend: its size, nothing else; as large as a size may be. */
static void test_null_backend(void **state)
{
	static const char text[] = HDR BLK "    backend: {null: 16T}\n";
	struct vrio_topology *t = NULL;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, sizeof(text) - 1, &t, err,
					     sizeof(err)), 0);
	assert_int_equal(t->devices[0].backend.kind, VRIO_BACKEND_NULL);
	assert_int_equal(t->devices[0].backend.size, 16ull << 40);
	assert_null(t->devices[0].backend.path);
	assert_false(t->devices[0].backend.direct);
	vrio_topology_free(t);
}

/* standby: resolved to the other io_server; absent, NULL. */
static void test_standby(void **state)
{
	static const char text[] = V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n" HOSTS BLK
		"    backend: {file: /srv/d0.img}\n    standby: io1\n";
	static const char plain[] = HDR BLK RAM;
	struct vrio_topology *t = NULL;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, sizeof(text) - 1, &t, err,
					     sizeof(err)), 0);
	assert_non_null(t->devices[0].standby);
	assert_string_equal(t->devices[0].standby->name, "io1");
	assert_string_equal(t->devices[0].io_server->name, "io0");
	vrio_topology_free(t);
	t = NULL;
	assert_int_equal(vrio_topology_parse("topo.yaml", plain, sizeof(plain) - 1, &t, err,
					     sizeof(err)), 0);
	assert_null(t->devices[0].standby);
	vrio_topology_free(t);
}

/* The message is cut to the buffer, never past it. */
/* A shm io-server with faults: the listen path and every fault key land. */
static void test_faults_and_shm(void **state)
{
	static const char text[] = V
		"io_servers:\n"
		"  - name: io0\n"
		"    listen: /run/vrio/io0.shm\n"
		"    transport: shm\n"
		"    faults: {seed: 7, drop: 0.05, duplicate: 0.01, reorder: 0.02, delay_us: 50,\n"
		"             disconnect_after: 1000}\n"
		"  - name: io1\n"
		"    listen: 127.0.0.1:7401\n" HOSTS;
	struct vrio_topology *t = NULL;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, sizeof(text) - 1, &t, err,
					     sizeof(err)), 0);
	assert_string_equal(t->io_servers[0].transport, "shm");
	assert_string_equal(t->io_servers[0].listen, "/run/vrio/io0.shm");
	assert_true(t->io_servers[0].faults.enabled);
	assert_int_equal(t->io_servers[0].faults.seed, 7);
	assert_true(t->io_servers[0].faults.drop == 0.05);
	assert_true(t->io_servers[0].faults.duplicate == 0.01);
	assert_true(t->io_servers[0].faults.reorder == 0.02);
	assert_int_equal(t->io_servers[0].faults.delay_us, 50);
	assert_int_equal(t->io_servers[0].faults.disconnect_after, 1000);
	assert_false(t->io_servers[1].faults.enabled);
	assert_string_equal(t->io_servers[1].transport, "tcp");
	vrio_topology_free(t);
}

/* heartbeat: defaults, one key given, both given. */
static void test_heartbeat(void **state)
{
	static const char text[] = V
		"io_servers:\n"
		"  - name: io0\n"
		"    listen: 127.0.0.1:7400\n"
		"  - name: io1\n"
		"    listen: 127.0.0.1:7401\n"
		"    heartbeat: {dead_after_ms: 3000}\n"
		"  - name: io2\n"
		"    listen: 127.0.0.1:7402\n"
		"    heartbeat:\n"
		"      interval_ms: 10\n"
		"      dead_after_ms: 30\n" HOSTS;
	struct vrio_topology *t = NULL;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, sizeof(text) - 1, &t, err,
					     sizeof(err)), 0);
	assert_int_equal(t->io_servers[0].heartbeat.interval_ms, VRIO_TOPO_HB_INTERVAL_MS);
	assert_int_equal(t->io_servers[0].heartbeat.dead_after_ms, VRIO_TOPO_HB_DEAD_AFTER_MS);
	assert_int_equal(t->io_servers[1].heartbeat.interval_ms, 100);
	assert_int_equal(t->io_servers[1].heartbeat.dead_after_ms, 3000);
	assert_int_equal(t->io_servers[2].heartbeat.interval_ms, 10);
	assert_int_equal(t->io_servers[2].heartbeat.dead_after_ms, 30);
	vrio_topology_free(t);
}

/* dpdk: on an io-server and hosts: the arguments split, the port kept. */
static void test_dpdk(void **state)
{
	static const char text[] = V
		"io_servers:\n"
		"  - name: io0\n"
		"    transport: dpdk\n"
		"    listen: \"02:00:00:00:00:0A\"\n"
		"    dpdk: {eal: \" --vdev=net_memif0,role=server\t -m 512 \", port: net_memif0}\n"
		"hosts:\n"
		"  - name: host0\n"
		"    dpdk:\n"
		"      eal: --vdev=net_af_packet0,iface=veth0\n"
		"      port: 1\n"
		"  - name: host1\n";
	struct vrio_topology *t = NULL;
	const struct vrio_topo_dpdk *d;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, sizeof(text) - 1, &t, err,
					     sizeof(err)), 0);
	assert_string_equal(t->io_servers[0].transport, "dpdk");
	assert_string_equal(t->io_servers[0].listen, "02:00:00:00:00:0a");
	d = &t->io_servers[0].dpdk;
	assert_string_equal(d->port, "net_memif0");
	assert_int_equal(d->n_eal, 3);
	assert_string_equal(d->eal[0], "--vdev=net_memif0,role=server");
	assert_string_equal(d->eal[1], "-m");
	assert_string_equal(d->eal[2], "512");
	assert_null(d->eal[3]);
	d = &t->hosts[0].dpdk;
	assert_string_equal(d->port, "1");
	assert_int_equal(d->n_eal, 1);
	assert_string_equal(d->eal[0], "--vdev=net_af_packet0,iface=veth0");
	assert_null(d->eal[1]);
	d = &t->hosts[1].dpdk;
	assert_null(d->port);
	assert_null(d->eal);
	assert_int_equal(d->n_eal, 0);
	vrio_topology_free(t);
}

static void test_short_error_buffer(void **state)
{
	struct vrio_topology *t = NULL;
	char err[16];

	memset(err, 'x', sizeof(err));
	assert_int_equal(vrio_topology_parse("topo.yaml", "- a\n", 4, &t, err, 12), -EINVAL);
	assert_string_equal(err, "topo.yaml:1");
	assert_int_equal(err[12], 'x');
	assert_int_equal(vrio_topology_parse("topo.yaml", "- a\n", 4, &t, NULL, 0), -EINVAL);
	assert_null(t);
}

static const char good_text[] =
	"version: 1\n"
	"devices:\n"			/* before the entries they name */
	"  - name: disk0\n"
	"    type: blk\n"
	"    host: h1\n"
	"    io_server: io1\n"
	"    socket: /run/vrio/disk0.sock\n"
	"    backend: {file: disks/disk0.img, size: 1G, direct: yes}\n"
	"    read_only: true\n"
	"  - name: disk1\n"
	"    type: blk\n"
	"    host: h0\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/disk1.sock\n"
	"    queues: 4\n"
	"    queue_size: 1024\n"
	"    backend:\n"
	"      ram: 4KiB\n"
	"  - name: nic0\n"
	"    type: net\n"
	"    host: h1\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/nic0.sock\n"
	"    mac: 52:54:00:AB:cd:0E\n"
	"    network: lan\n"
	"io_servers:\n"
	"  - name: io0\n"
	"    listen: 127.0.0.1:7400\n"
	"  - name: io1\n"
	"    transport: tcp\n"
	"    listen: \"[::1]:7401\"\n"
	"    metrics: localhost:9400\n"
	"    control: /var/run/io1.ctl\n"
	"    cores: {max: 4}\n"
	"  - name: io2\n"
	"    listen: 127.0.0.1:0\n"
	"    cores: {min: 3}\n"
	"hosts:\n"
	"  - name: h0\n"
	"  - name: h1\n"
	"    metrics: 127.0.0.1:9401\n"
	"    control: /run/vrio/ctl/h1.sock\n"
	"networks:\n"
	"  - name: lan\n"
	"    mtu: 9000\n"
	"    ageing: 60\n"
	"    uplink: {tap: vrio-up0}\n"
	"  - name: dmz\n";

/* A network spans the io-servers of its devices, in the order they first
 * appear, or the explicit list; each gets the same id in every file. */
static void test_network_span(void **state)
{
	static const char text[] =
		V IOS "  - name: io1\n    listen: 127.0.0.1:7401\n"
		"  - name: io2\n    listen: 127.0.0.1:7402\n" HOSTS
		"devices:\n  - name: d0\n    type: net\n    host: host0\n    io_server: io1\n"
		"    socket: /run/vrio/d0.sock\n" MAC LAN
		"  - name: d1\n    type: net\n    host: host0\n    io_server: io0\n"
		"    socket: /run/vrio/d1.sock\n    mac: 52:54:00:00:00:02\n" LAN
		"  - name: d2\n    type: net\n    host: host0\n    io_server: io1\n"
		"    socket: /run/vrio/d2.sock\n    mac: 52:54:00:00:00:03\n" LAN
		"networks:\n  - name: wan\n    io_servers: [io2, io0]\n  - name: lan\n";
	struct vrio_topology *t = NULL;
	char err[512] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, strlen(text), &t, err,
					     sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(t->networks[1].name, "lan");
	assert_false(t->networks[1].span_explicit);
	assert_int_equal(t->networks[1].n_span, 2);
	assert_string_equal(t->networks[1].span[0]->name, "io1");
	assert_string_equal(t->networks[1].span[1]->name, "io0");
	assert_true(vrio_topo_network_spans(&t->networks[1], "io0"));
	assert_false(vrio_topo_network_spans(&t->networks[1], "io2"));
	assert_true(t->networks[0].span_explicit);
	assert_int_equal(t->networks[0].n_span, 2);
	assert_string_equal(t->networks[0].span[0]->name, "io2");
	assert_string_equal(t->networks[0].span[1]->name, "io0");
	/* FNV-1a of the name: what a peer built from another file computes. */
	assert_int_equal(t->networks[1].id, 0x56608010u);
	vrio_topology_free(t);
}

static void test_good_topology(void **state)
{
	struct vrio_topology *t = NULL;
	struct vrio_topo_device *d;
	char err[512] = "";
	int ret;

	ret = vrio_topology_parse("/etc/vrio/rack.yaml", good_text, strlen(good_text), &t, err,
				  sizeof(err));
	assert_string_equal(err, "");
	assert_int_equal(ret, 0);
	assert_non_null(t);
	assert_string_equal(t->path, "/etc/vrio/rack.yaml");
	assert_int_equal(t->version, 1);
	assert_int_equal(t->n_io_servers, 3);
	assert_int_equal(t->n_hosts, 2);
	assert_int_equal(t->n_devices, 3);
	assert_int_equal(t->n_networks, 2);
	assert_int_equal(t->networks[0].mtu, 9000);
	assert_int_equal(t->networks[0].ageing_s, 60);
	assert_string_equal(t->networks[0].uplink_tap, "vrio-up0");
	assert_int_equal(t->networks[0].n_span, 1);
	assert_ptr_equal(t->networks[0].span[0], &t->io_servers[0]);
	assert_false(t->networks[0].span_explicit);
	assert_int_equal(t->networks[1].mtu, 1500);
	assert_int_equal(t->networks[1].ageing_s, 300);
	assert_null(t->networks[1].uplink_tap);
	assert_int_equal(t->networks[1].n_span, 0);
	assert_int_not_equal(t->networks[0].id, t->networks[1].id);

	assert_string_equal(t->io_servers[0].name, "io0");
	assert_string_equal(t->io_servers[0].transport, "tcp");
	assert_string_equal(t->io_servers[0].listen, "127.0.0.1:7400");
	assert_null(t->io_servers[0].metrics);
	assert_int_equal(t->io_servers[0].cores_min, 1);
	assert_int_equal(t->io_servers[0].cores_max, 1);
	assert_int_equal(t->io_servers[0].line, 27);
	assert_int_equal(t->io_servers[0].col, 5);
	assert_string_equal(t->io_servers[1].listen, "[::1]:7401");
	assert_string_equal(t->io_servers[1].metrics, "localhost:9400");
	assert_int_equal(t->io_servers[1].cores_min, 1);
	assert_int_equal(t->io_servers[1].cores_max, 4);
	assert_int_equal(t->io_servers[2].cores_min, 3);
	assert_int_equal(t->io_servers[2].cores_max, 3);

	assert_null(t->hosts[0].metrics);
	assert_string_equal(t->hosts[1].metrics, "127.0.0.1:9401");

	/* Control sockets: the default unless the file names one. */
	assert_string_equal(t->io_servers[0].control, "/run/vrio/io0.sock");
	assert_string_equal(t->io_servers[1].control, "/var/run/io1.ctl");
	assert_string_equal(t->io_servers[2].control, "/run/vrio/io2.sock");
	assert_string_equal(t->hosts[0].control, "/run/vrio/h0.sock");
	assert_string_equal(t->hosts[1].control, "/run/vrio/ctl/h1.sock");
	assert_int_equal(strlen(t->sha256), 64);
	assert_int_equal(strspn(t->sha256, "0123456789abcdef"), 64);

	d = vrio_topology_device(t, "disk0");
	assert_ptr_equal(d, &t->devices[0]);
	assert_int_equal(d->type, VRIO_DEV_BLK);
	assert_ptr_equal(d->host, vrio_topology_host(t, "h1"));
	assert_ptr_equal(d->io_server, vrio_topology_ioserver(t, "io1"));
	assert_string_equal(d->socket, "/run/vrio/disk0.sock");
	assert_int_equal(d->queues, 1);
	assert_int_equal(d->queue_size, 256);
	assert_true(d->read_only);
	assert_int_equal(d->backend.kind, VRIO_BACKEND_FILE);
	assert_string_equal(d->backend.path, "/etc/vrio/disks/disk0.img");
	assert_int_equal(d->backend.size, 1ull << 30);
	assert_true(d->backend.direct);
	assert_null(d->mac);
	assert_null(d->network);
	assert_int_equal(d->line, 3);
	assert_int_equal(d->col, 5);

	d = vrio_topology_device(t, "disk1");
	assert_ptr_equal(d->host, &t->hosts[0]);
	assert_ptr_equal(d->io_server, &t->io_servers[0]);
	assert_int_equal(d->queues, 4);
	assert_int_equal(d->queue_size, 1024);
	assert_false(d->read_only);
	assert_int_equal(d->backend.kind, VRIO_BACKEND_RAM);
	assert_null(d->backend.path);
	assert_int_equal(d->backend.size, 4096);
	assert_false(d->backend.direct);

	d = vrio_topology_device(t, "nic0");
	assert_int_equal(d->type, VRIO_DEV_NET);
	assert_ptr_equal(d->host, &t->hosts[1]);
	assert_string_equal(d->mac, "52:54:00:ab:cd:0e");
	assert_ptr_equal(d->network, &t->networks[0]);
	assert_int_equal(d->backend.kind, VRIO_BACKEND_NONE);

	assert_null(vrio_topology_device(t, "disk9"));
	assert_null(vrio_topology_host(t, "io0"));
	assert_null(vrio_topology_ioserver(t, "h0"));
	assert_null(vrio_topology_ioserver(t, NULL));
	assert_string_equal(vrio_dev_type_name(VRIO_DEV_BLK), "blk");
	assert_string_equal(vrio_dev_type_name(VRIO_DEV_NET), "net");
	vrio_topology_free(t);
	vrio_topology_free(NULL);
}

/* Without a directory in the name, a relative backend path stays as written. */
static void test_parse_keeps_relative_path(void **state)
{
	static const char text[] = HDR BLK "    backend: {file: d0.img}\n";
	struct vrio_topology *t = NULL;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("topo.yaml", text, strlen(text), &t, err, sizeof(err)), 0);
	assert_string_equal(t->devices[0].backend.path, "d0.img");
	assert_int_equal(t->devices[0].backend.size, 0);
	vrio_topology_free(t);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
	static const char text[] = HDR BLK "    backend: {file: images/d0.img, size: 512}\n";
	char tmpl[] = "/tmp/vrio-topo-XXXXXX", path[PATH_MAX], real[PATH_MAX], want[2 * PATH_MAX];
	struct vrio_topology *t = NULL, *same = NULL;
	char err[PATH_MAX + 128] = "";
	const char *dir = mkdtemp(tmpl);

	assert_non_null(dir);
	assert_non_null(realpath(dir, real));
	snprintf(path, sizeof(path), "%s/rack.yaml", dir);
	write_file(path, text);

	assert_int_equal(vrio_topology_load(path, &t, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	snprintf(want, sizeof(want), "%s/images/d0.img", real);
	assert_string_equal(t->devices[0].backend.path, want);
	assert_int_equal(t->devices[0].backend.size, 512);
	assert_string_equal(t->path, path);
	/* Read from a file or from memory, the same bytes hash the same. */
	assert_int_equal(vrio_topology_parse("topo.yaml", text, strlen(text), &same, err,
					     sizeof(err)), 0);
	assert_string_equal(t->sha256, same->sha256);
	vrio_topology_free(same);
	vrio_topology_free(t);
	t = NULL;

	/* A content error names the file as the caller did. */
	write_file(path, "version: 1\nio_servers: 3\n");
	assert_int_equal(vrio_topology_load(path, &t, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2:13: expected a sequence for 'io_servers', got '3'", path);
	assert_string_equal(err, want);
	assert_null(t);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(vrio_topology_load(path, &t, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_null(t);

	assert_int_equal(vrio_topology_load(dir, &t, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: Is a directory", dir);
	assert_string_equal(err, want);
	assert_null(t);
	assert_int_equal(rmdir(dir), 0);
}

static void test_example_loads(void **state)
{
	const char *path = VRIO_SOURCE_DIR "/deploy/topology.example.yaml";
	struct vrio_topology *t = NULL;
	struct vrio_topo_device *d;
	char err[512] = "";

	assert_int_equal(vrio_topology_load(path, &t, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(t->n_io_servers, 1);
	assert_int_equal(t->n_hosts, 1);
	assert_int_equal(t->n_devices, 1);
	assert_string_equal(t->io_servers[0].name, "io0");
	assert_string_equal(t->io_servers[0].transport, "tcp");
	assert_string_equal(t->io_servers[0].listen, "127.0.0.1:7400");
	assert_string_equal(t->io_servers[0].metrics, "127.0.0.1:9400");
	assert_int_equal(t->io_servers[0].cores_min, 1);
	assert_int_equal(t->io_servers[0].cores_max, 2);
	assert_string_equal(t->hosts[0].name, "host0");
	assert_string_equal(t->hosts[0].metrics, "127.0.0.1:9401");
	assert_string_equal(t->io_servers[0].control, "/run/vrio/io0.sock");
	assert_string_equal(t->hosts[0].control, "/run/vrio/host0.sock");
	d = vrio_topology_device(t, "vm1-disk");
	assert_non_null(d);
	assert_int_equal(d->type, VRIO_DEV_BLK);
	assert_ptr_equal(d->host, &t->hosts[0]);
	assert_ptr_equal(d->io_server, &t->io_servers[0]);
	assert_string_equal(d->socket, "/run/vrio/vm1-disk.sock");
	assert_int_equal(d->backend.kind, VRIO_BACKEND_FILE);
	assert_string_equal(d->backend.path, "/var/lib/vrio/vm1-disk.img");
	assert_int_equal(d->backend.size, 256ull << 20);
	assert_int_equal(d->queues, 1);
	vrio_topology_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_topologies),
		cmocka_unit_test(test_faults_and_shm),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_null_backend),
		cmocka_unit_test(test_standby),
		cmocka_unit_test(test_dpdk),
		cmocka_unit_test(test_short_error_buffer),
		cmocka_unit_test(test_good_topology),
		cmocka_unit_test(test_network_span),
		cmocka_unit_test(test_parse_keeps_relative_path),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_example_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
