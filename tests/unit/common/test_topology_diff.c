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
#include "topology_diff.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Lines 1-10 of every text: two io-servers (io0 at 3:5, io1 at 5:5), two
 * hosts (host0 at 8:5, host1 at 9:5); the first device starts at 11:5.
 */
#define IO0_(listen, extra) "  - name: io0\n    listen: " listen "\n" extra
#define IO1                 "  - name: io1\n    listen: 127.0.0.1:7401\n"
#define HOSTS               "hosts:\n  - name: host0\n  - name: host1\n"
#define HEAD_(io0)          "version: 1\nio_servers:\n" io0 IO1 HOSTS "devices:\n"
#define HEAD                HEAD_(IO0_("127.0.0.1:7400", ""))
/* The same without devices. */
#define EMPTY_(io0)         "version: 1\nio_servers:\n" io0 IO1 HOSTS "devices: []\n"
#define EMPTY               EMPTY_(IO0_("127.0.0.1:7400", ""))

/* A blk device: six lines, then `extra`. */
#define BLKX(name, host, ios, sock, backend, extra) \
	"  - name: " name "\n    type: blk\n    host: " host "\n    io_server: " ios "\n" \
	"    socket: " sock "\n    backend: " backend "\n" extra
#define BLKE(name, extra) BLKX(name, "host0", "io0", "/run/vrio/" name ".sock", "{ram: 1M}", extra)
#define BLK(name)         BLKE(name, "")

/* A net device on host0: seven lines. */
#define NETX(name, ios, mac, net) \
	"  - name: " name "\n    type: net\n    host: host0\n    io_server: " ios "\n" \
	"    socket: /run/vrio/" name ".sock\n    mac: \"" mac "\"\n    network: " net "\n"
#define NET(name, net) NETX(name, "io0", "52:54:00:00:00:01", net)
#define LAN            "networks:\n  - name: lan\n"
#define LAN_WAN        LAN "  - name: wan\n"

#define IOS VRIO_ROLE_IOSERVER
#define HOST VRIO_ROLE_HOST

struct diff_case {
	const char *what;
	const char *old_text, *new_text;
	enum vrio_topo_role role;
	const char *node;
	/* The entries in order: "added d1, removed d0, live d0 read_only+iommu,
	 * refused d0" ("refused -" for a node or a network). */
	const char *changes;
	size_t unchanged;
	/* NULL: nothing refused; else part of a REFUSED message. */
	const char *msg;
	const char *new_networks;	/* names, blank-separated */
};

static const struct diff_case diff_cases[] = {
	{ "nothing changed", HEAD BLK("d0") BLK("d1"), HEAD BLK("d0") BLK("d1"), IOS, "io0",
	  "", 2, NULL, "" },
	{ "nothing changed, host", HEAD BLK("d0") BLK("d1"), HEAD BLK("d0") BLK("d1"), HOST,
	  "host0", "", 2, NULL, "" },
	{ "device added", HEAD BLK("d0"), HEAD BLK("d0") BLK("d1"), IOS, "io0",
	  "added d1", 1, NULL, "" },
	{ "device added, host", HEAD BLK("d0"), HEAD BLK("d1") BLK("d0"), HOST, "host0",
	  "added d1", 1, NULL, "" },
	{ "device removed", HEAD BLK("d0") BLK("d1"), HEAD BLK("d1"), IOS, "io0",
	  "removed d0", 1, NULL, "" },
	{ "device removed, host", HEAD BLK("d0") BLK("d1"), HEAD BLK("d0"), HOST, "host0",
	  "removed d1", 1, NULL, "" },
	{ "read_only flipped", HEAD BLK("d0") BLK("d1"), HEAD BLK("d0") BLKE("d1", "    read_only: true\n"),
	  IOS, "io0", "live d1 read_only", 1, NULL, "" },
	{ "read_only flipped, host", HEAD BLKE("d0", "    read_only: yes\n"), HEAD BLK("d0"),
	  HOST, "host0", "live d0 read_only", 0, NULL, "" },
	{ "iommu policy", HEAD BLK("d0"), HEAD BLKE("d0", "    iommu: {policy: deferred}\n"),
	  IOS, "io0", "live d0 iommu", 0, NULL, "" },
	{ "iommu batch", HEAD BLKE("d0", "    iommu: {policy: deferred}\n"),
	  HEAD BLKE("d0", "    iommu: {policy: deferred, batch: 8}\n"), HOST, "host0",
	  "live d0 iommu", 0, NULL, "" },
	{ "iommu written as its defaults", HEAD BLK("d0"),
	  HEAD BLKE("d0", "    iommu: {policy: strict, batch: 32, delay_ms: 10}\n"), IOS, "io0",
	  "", 1, NULL, "" },
	{ "a stage added", HEAD BLK("d0"),
	  HEAD BLKE("d0", "    interpose:\n      - throttle: {iops: 100}\n"), IOS, "io0",
	  "live d0 interpose", 0, NULL, "" },
	{ "a stage retuned", HEAD BLKE("d0", "    interpose:\n      - throttle: {iops: 100}\n"),
	  HEAD BLKE("d0", "    interpose:\n      - throttle: {iops: 200}\n"), IOS, "io0",
	  "live d0 interpose", 0, NULL, "" },
	{ "stages reordered", HEAD BLKE("d0", "    interpose:\n      - throttle: {iops: 1}\n"
					"      - mirror: {ram: 1M}\n"),
	  HEAD BLKE("d0", "    interpose:\n      - mirror: {ram: 1M}\n      - throttle: {iops: 1}\n"),
	  IOS, "io0", "live d0 interpose", 0, NULL, "" },
	{ "the same chain", HEAD BLKE("d0", "    interpose:\n      - throttle: {iops: 1, bps: 1M}\n"),
	  HEAD BLKE("d0", "    interpose:\n      - throttle: {bps: 1024K, iops: 1}\n"), IOS, "io0",
	  "", 1, NULL, "" },
	{ "coalesce_us", HEAD BLK("d0"), HEAD BLKE("d0", "    coalesce_us: 8\n"), HOST, "host0",
	  "live d0 coalesce_us", 0, NULL, "" },
	{ "read_only and iommu", HEAD BLK("d0"),
	  HEAD BLKE("d0", "    read_only: true\n    iommu: {delay_ms: 5}\n"), IOS, "io0",
	  "live d0 read_only+iommu", 0, NULL, "" },
	{ "queues", HEAD BLKE("d0", "    queues: 2\n"), HEAD BLKE("d0", "    queues: 4\n"), IOS, "io0",
	  "refused d0", 0,
	  "new.yaml:11:5: device 'd0': queues cannot change while the device exists (2 -> 4); "
	  "remove it and add it back", "" },
	{ "queues, host", HEAD BLKE("d0", "    queues: 2\n"), HEAD BLKE("d0", "    queues: 4\n"),
	  HOST, "host0", "refused d0", 0,
	  "new.yaml:11:5: device 'd0': queues cannot change while the device exists (2 -> 4)", "" },
	{ "queue_size", HEAD BLK("d0") BLK("d1"), HEAD BLK("d0") BLKE("d1", "    queue_size: 512\n"),
	  IOS, "io0", "refused d1", 1,
	  "new.yaml:17:5: device 'd1': queue_size cannot change while the device exists "
	  "(256 -> 512); remove it and add it back", "" },
	{ "backend path",
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img}", ""),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/b.img}", ""),
	  IOS, "io0", "refused d0", 0,
	  "new.yaml:11:5: device 'd0': backend cannot change while the device exists "
	  "(file /var/a.img -> file /var/b.img); remove it and add it back", "" },
	{ "backend size",
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img, size: 1G}", ""),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img, size: 2G}", ""),
	  IOS, "io0", "refused d0", 0,
	  "device 'd0': backend cannot change while the device exists "
	  "(file /var/a.img, size 1G -> file /var/a.img, size 2G)", "" },
	{ "backend direct",
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img}", ""),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img, direct: true}",
		    ""),
	  IOS, "io0", "refused d0", 0,
	  "(file /var/a.img -> file /var/a.img, direct)", "" },
	{ "backend kind", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: /var/a.img}", ""),
	  HOST, "host0", "refused d0", 0,
	  "device 'd0': backend cannot change while the device exists (ram 1M -> file /var/a.img)",
	  "" },
	{ "ram size", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{ram: 1536K}", ""),
	  IOS, "io0", "refused d0", 0, "(ram 1M -> ram 1536K)", "" },
	{ "ram to null", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{null: 1M}", ""),
	  IOS, "io0", "refused d0", 0, "(ram 1M -> null 1M)", "" },
	{ "type, reported alone", HEAD BLK("d0"), HEAD NET("d0", "lan") LAN, IOS, "io0",
	  "refused d0", 0,
	  "new.yaml:11:5: device 'd0': type cannot change while the device exists (blk -> net); "
	  "remove it and add it back", "lan" },
	{ "socket", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/other.sock", "{ram: 1M}", ""),
	  HOST, "host0", "refused d0", 0,
	  "new.yaml:11:5: device 'd0': socket cannot change while the device exists "
	  "(/run/vrio/d0.sock -> /run/vrio/other.sock)", "" },
	{ "mac", HEAD NET("n0", "lan") LAN, HEAD NETX("n0", "io0", "52:54:00:00:00:02", "lan") LAN,
	  IOS, "io0", "refused n0", 0,
	  "new.yaml:11:5: device 'n0': mac cannot change while the device exists "
	  "(52:54:00:00:00:01 -> 52:54:00:00:00:02)", "" },
	{ "network", HEAD NET("n0", "lan") LAN_WAN, HEAD NET("n0", "wan") LAN_WAN, IOS, "io0",
	  "refused n0", 0,
	  "new.yaml:11:5: device 'n0': network cannot change while the device exists "
	  "(lan -> wan); remove it and add it back", "wan" },
	{ "network, host", HEAD NET("n0", "lan") LAN_WAN, HEAD NET("n0", "wan") LAN_WAN, HOST,
	  "host0", "refused n0", 0, "device 'n0': network cannot change", "" },
	{ "host, the host it leaves", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host1", "io0", "/run/vrio/d0.sock", "{ram: 1M}", ""), HOST, "host0",
	  "refused d0", 0,
	  "new.yaml:11:5: device 'd0': host cannot change while the device exists "
	  "(host0 -> host1); remove it and add it back", "" },
	{ "host, the host it joins", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host1", "io0", "/run/vrio/d0.sock", "{ram: 1M}", ""), HOST, "host1",
	  "refused d0", 0, "device 'd0': host cannot change while the device exists (host0 -> host1)",
	  "" },
	{ "host, its io_server", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host1", "io0", "/run/vrio/d0.sock", "{ram: 1M}", ""), IOS, "io0",
	  "refused d0", 0, "device 'd0': host cannot change", "" },
	{ "io_server, the io_server it leaves", HEAD BLK("d0") BLK("d1"),
	  HEAD BLK("d0") BLKX("d1", "host0", "io1", "/run/vrio/d1.sock", "{ram: 1M}", ""), IOS,
	  "io0", "refused d1", 1,
	  "new.yaml:17:5: device 'd1': io_server cannot change while the device exists "
	  "(io0 -> io1); remove it and add it back", "" },
	{ "io_server, the io_server it joins", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io1", "/run/vrio/d0.sock", "{ram: 1M}", ""), IOS, "io1",
	  "refused d0", 0, "device 'd0': io_server cannot change while the device exists (io0 -> io1)",
	  "" },
	{ "io_server, its host", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io1", "/run/vrio/d0.sock", "{ram: 1M}", ""), HOST, "host0",
	  "refused d0", 0, "device 'd0': io_server cannot change", "" },
	{ "another io_server's device", HEAD BLK("d0") BLKX("d1", "host0", "io1", "/run/vrio/d1.sock",
							      "{ram: 1M}", ""),
	  HEAD BLK("d0") BLKX("d1", "host0", "io1", "/run/vrio/d1.sock", "{ram: 2M}",
			      "    queues: 3\n"),
	  IOS, "io0", "", 1, NULL, "" },
	{ "another host's device", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{ram: 2M}", ""), HOST, "host1",
	  "", 0, NULL, "" },
	{ "another io_server added and removed", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "")
	  "  - name: io2\n    listen: 127.0.0.1:7402\n" HOSTS "devices:\n" BLK("d0"),
	  IOS, "io0", "", 1, NULL, "" },
	{ "a host added", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1 HOSTS "  - name: host2\n"
	  "devices:\n" BLK("d0") BLKX("d1", "host2", "io0", "/run/vrio/d1.sock", "{ram: 1M}", ""),
	  IOS, "io0", "added d1", 1, NULL, "" },
	{ "a host added, seen by another host", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1 HOSTS "  - name: host2\n"
	  "devices:\n" BLK("d0") BLKX("d1", "host2", "io0", "/run/vrio/d1.sock", "{ram: 1M}", ""),
	  HOST, "host0", "", 1, NULL, "" },
	{ "a network with a net device", HEAD BLK("d0"), HEAD BLK("d0") NET("n0", "lan") LAN_WAN,
	  IOS, "io0", "added n0", 1, NULL, "lan" },
	{ "a network without devices", HEAD BLK("d0"), HEAD BLK("d0") LAN, IOS, "io0",
	  "", 1, NULL, "" },
	{ "a network that gains its first device here", HEAD BLK("d0") LAN_WAN,
	  HEAD BLK("d0") NET("n0", "wan") NETX("n1", "io0", "52:54:00:00:00:02", "lan") LAN_WAN,
	  IOS, "io0", "added n0, added n1", 1, NULL, "lan wan" },
	{ "a network on another io_server", HEAD BLK("d0"),
	  HEAD BLK("d0") NETX("n0", "io1", "52:54:00:00:00:01", "lan") LAN, IOS, "io0",
	  "", 1, NULL, "" },
	{ "network mtu", HEAD NET("n0", "lan") LAN, HEAD NET("n0", "lan") LAN "    mtu: 9000\n",
	  IOS, "io0", "refused -", 1,
	  "new.yaml:19:5: network 'lan': mtu cannot change while its devices exist (1500 -> 9000); "
	  "remove them and add them back", "" },
	{ "network mtu, host", HEAD NET("n0", "lan") LAN, HEAD NET("n0", "lan") LAN "    mtu: 9000\n",
	  HOST, "host0", "", 1, NULL, "" },
	{ "network ageing and uplink", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") LAN "    ageing: 30\n    uplink: {tap: up0}\n", IOS, "io0",
	  "refused -, refused -", 1,
	  "new.yaml:19:5: network 'lan': uplink cannot change while its devices exist "
	  "(none -> up0)", "" },
	{ "a network that comes to span two io_servers", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") NETX("n1", "io1", "52:54:00:00:00:02", "lan") LAN, IOS, "io0",
	  "", 1, NULL, "" },
	{ "a spanning network, seen from the new io_server", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") NETX("n1", "io1", "52:54:00:00:00:02", "lan") LAN, IOS, "io1",
	  "added n1", 0, NULL, "lan" },
	{ "a spanning network, a host", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") NETX("n1", "io1", "52:54:00:00:00:02", "lan") LAN, HOST, "host0",
	  "added n1", 1, NULL, "" },
	{ "a spanning network gains a device", HEAD NET("n0", "lan") NETX("n1", "io1",
	  "52:54:00:00:00:02", "lan") LAN,
	  HEAD NET("n0", "lan") NETX("n1", "io1", "52:54:00:00:00:02", "lan")
	  NETX("n2", "io0", "52:54:00:00:00:03", "lan") LAN, IOS, "io0", "added n2", 1, NULL, "" },
	{ "network mtu of another io_server", HEAD BLK("d0") NETX("n0", "io1", "52:54:00:00:00:01",
								"lan") LAN,
	  HEAD BLK("d0") NETX("n0", "io1", "52:54:00:00:00:01", "lan") LAN "    mtu: 1400\n",
	  IOS, "io0", "", 1, NULL, "" },
	{ "own listen", HEAD BLK("d0"), HEAD_(IO0_("127.0.0.1:7410", "")) BLK("d0"), IOS, "io0",
	  "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': listen cannot change while running "
	  "(127.0.0.1:7400 -> 127.0.0.1:7410); restart the daemon", "" },
	{ "own control", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7400", "    control: /run/vrio/ctl-io0.sock\n")) BLK("d0"), IOS,
	  "io0", "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': control cannot change while running "
	  "(/run/vrio/io0.sock -> /run/vrio/ctl-io0.sock); restart the daemon", "" },
	{ "own cores", EMPTY, EMPTY_(IO0_("127.0.0.1:7400", "    cores: {max: 2}\n")), IOS, "io0",
	  "refused -", 0, "io_server 'io0': cores cannot change while running (min 1, max 1 -> "
	  "min 1, max 2)", "" },
	{ "own metrics, host", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1
	  "hosts:\n  - name: host0\n    metrics: 127.0.0.1:9401\n  - name: host1\n"
	  "devices:\n" BLK("d0"),
	  HOST, "host0", "refused -", 1,
	  "new.yaml:8:5: host 'host0': metrics cannot change while running "
	  "(none -> 127.0.0.1:9401); restart the daemon", "" },
	{ "another host's metrics", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1
	  "hosts:\n  - name: host0\n  - name: host1\n    metrics: 127.0.0.1:9401\n"
	  "devices:\n" BLK("d0"),
	  HOST, "host0", "", 1, NULL, "" },
	{ "own listen, another io_server", HEAD BLK("d0"), HEAD_(IO0_("127.0.0.1:7410", "")) BLK("d0"),
	  IOS, "io1", "", 0, NULL, "" },
	{ "its io_server's listen, host", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7410", "")) BLK("d0"), HOST, "host0", "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': listen cannot change while host 'host0' is connected to "
	  "it (127.0.0.1:7400 -> 127.0.0.1:7410); restart both daemons", "" },
	{ "its io_server's faults, host", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7400", "    faults: {drop: 0.1}\n")) BLK("d0"), HOST, "host0",
	  "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': faults cannot change while host 'host0' is connected to "
	  "it (none -> drop 0.1); restart both daemons", "" },
	{ "its io_server's heartbeat, host", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7400", "    heartbeat: {interval_ms: 50}\n")) BLK("d0"), HOST,
	  "host0", "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': heartbeat cannot change while host 'host0' is connected "
	  "to it (interval_ms 100, dead_after_ms 1000 -> interval_ms 50, dead_after_ms 1000); "
	  "restart both daemons", "" },
	{ "its io_server's tls, host", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7400", "    tls: {cert: /c.pem, key: /k.pem, ca: /ca.pem}\n"))
	  BLK("d0"), HOST, "host0", "refused -", 1,
	  "new.yaml:3:5: io_server 'io0': tls cannot change while host 'host0' is connected to "
	  "it (none -> /c.pem); restart both daemons", "" },
	{ "its io_server's metrics, host", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7400", "    metrics: 127.0.0.1:9400\n")) BLK("d0"), HOST, "host0",
	  "", 1, NULL, "" },
	{ "an io_server's listen, host without devices there", HEAD BLK("d0"),
	  HEAD_(IO0_("127.0.0.1:7410", "")) BLK("d0"), HOST, "host1", "", 0, NULL, "" },
	{ "an io_server's listen, host whose first device there is new", EMPTY,
	  HEAD_(IO0_("127.0.0.1:7410", "")) BLK("d0"), HOST, "host0", "added d0", 0, NULL, "" },
	{ "io_server removed", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") HOSTS "devices:\n" BLK("d0"), IOS,
	  "io1", "refused -", 0, "old.yaml:5:5: node 'io1' is no longer an io_server in new.yaml",
	  "" },
	{ "io_server becomes a host", EMPTY,
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") HOSTS "  - name: io1\n",
	  IOS, "io1", "refused -", 0, "new.yaml:8:5: node 'io1' is no longer an io_server in new.yaml",
	  "" },
	{ "host removed", HEAD BLK("d0"),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1 "hosts:\n  - name: host0\n"
	  "devices:\n" BLK("d0"),
	  HOST, "host1", "refused -", 0, "old.yaml:9:5: node 'host1' is no longer a host in new.yaml",
	  "" },
	{ "removed node, nothing else listed", HEAD BLKX("d0", "host1", "io0", "/s", "{ram: 1M}", ""),
	  "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1 "hosts:\n  - name: host0\n"
	  "devices:\n" BLK("d1"),
	  HOST, "host1", "refused -", 0, "node 'host1' is no longer a host", "" },
	{ "one added and one refused", HEAD BLKE("d0", "    queues: 2\n"),
	  HEAD BLKE("d0", "    queues: 4\n") BLK("d1"), IOS, "io0", "refused d0, added d1", 0,
	  "device 'd0': queues cannot change", "" },
	{ "order", HEAD BLK("d0") BLK("d1") BLK("d2") BLKE("d4", "    queues: 2\n"),
	  HEAD BLK("d3") BLKE("d4", "    queues: 4\n") BLKE("d2", "    read_only: true\n") BLK("d0"),
	  IOS, "io0", "refused d4, removed d1, added d3, live d2 read_only", 1,
	  "new.yaml:17:5: device 'd4': queues cannot change", "" },
	{ "two keys of one device", HEAD BLK("d0"),
	  HEAD BLKX("d0", "host0", "io0", "/run/vrio/x.sock", "{ram: 1M}", "    queues: 2\n"
		    "    read_only: true\n"),
	  IOS, "io0", "refused d0, refused d0", 0, "device 'd0': queues cannot change", "" },
};

/* What the trunks of an io_server carry: "-NET@PEER" for each pair the new
 * file drops, then "+NET@PEER" for each it adds. */
#define IO2 "  - name: io2\n    listen: 127.0.0.1:7402\n"
#define HEAD3 "version: 1\nio_servers:\n" IO0_("127.0.0.1:7400", "") IO1 IO2 HOSTS "devices:\n"
#define N1(net) NETX("n1", "io1", "52:54:00:00:00:02", net)
#define N2(net) NETX("n2", "io2", "52:54:00:00:00:03", net)

static const struct trunk_case {
	const char *what;
	const char *old_text, *new_text;
	enum vrio_topo_role role;
	const char *node;
	const char *trunks;
} trunk_cases[] = {
	{ "lan comes to span io1", HEAD NET("n0", "lan") LAN, HEAD NET("n0", "lan") N1("lan") LAN,
	  IOS, "io0", "+lan@io1" },
	{ "lan comes to span io1, seen from io1", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") N1("lan") LAN, IOS, "io1", "+lan@io0" },
	{ "lan leaves io1", HEAD NET("n0", "lan") N1("lan") LAN, HEAD NET("n0", "lan") LAN,
	  IOS, "io0", "-lan@io1" },
	{ "lan leaves io1, seen from io1", HEAD NET("n0", "lan") N1("lan") LAN,
	  HEAD NET("n0", "lan") LAN, IOS, "io1", "-lan@io0" },
	{ "a spanning network gains a device where it already is",
	  HEAD NET("n0", "lan") N1("lan") LAN,
	  HEAD NET("n0", "lan") N1("lan") NETX("n2", "io0", "52:54:00:00:00:03", "lan") LAN,
	  IOS, "io0", "" },
	{ "a new network spanning both", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") NETX("n3", "io0", "52:54:00:00:00:04", "wan") N1("wan") LAN_WAN,
	  IOS, "io0", "+wan@io1" },
	{ "a network with an explicit span", HEAD NET("n0", "lan") LAN,
	  HEAD NET("n0", "lan") "networks:\n  - name: lan\n    io_servers: [io0, io1]\n",
	  IOS, "io1", "+lan@io0" },
	{ "a spanning network removed whole", HEAD NET("n0", "lan") N1("lan") LAN,
	  HEAD BLK("d0") LAN, IOS, "io0", "-lan@io1" },
	{ "lan moves from io1 to io2", HEAD3 NET("n0", "lan") N1("lan") LAN,
	  HEAD3 NET("n0", "lan") N2("lan") LAN, IOS, "io0", "-lan@io1, +lan@io2" },
	{ "lan moves from io1 to io2, seen from io1", HEAD3 NET("n0", "lan") N1("lan") LAN,
	  HEAD3 NET("n0", "lan") N2("lan") LAN, IOS, "io1", "-lan@io0" },
	{ "lan moves from io1 to io2, seen from io2", HEAD3 NET("n0", "lan") N1("lan") LAN,
	  HEAD3 NET("n0", "lan") N2("lan") LAN, IOS, "io2", "+lan@io0" },
	{ "a span between two other io_servers", HEAD3 BLK("d0") LAN,
	  HEAD3 BLK("d0") N1("lan") N2("lan") LAN, IOS, "io0", "" },
	{ "a span gained, host", HEAD NET("n0", "lan") LAN, HEAD NET("n0", "lan") N1("lan") LAN,
	  HOST, "host0", "" },
};

static void test_trunk_table(void **state)
{
	struct vrio_topology *o = NULL, *n = NULL;
	struct vrio_topo_diff d;
	char err[256], got[256];
	unsigned failed = 0;
	size_t k;

	for (size_t i = 0; i < ARRAY_SIZE(trunk_cases); i++) {
		const struct trunk_case *tc = &trunk_cases[i];

		assert_int_equal(vrio_topology_parse("old.yaml", tc->old_text, strlen(tc->old_text),
						     &o, err, sizeof(err)), 0);
		assert_int_equal(vrio_topology_parse("new.yaml", tc->new_text, strlen(tc->new_text),
						     &n, err, sizeof(err)), 0);
		assert_int_equal(vrio_topology_diff(o, n, tc->role, tc->node, &d), 0);
		assert_false(d.refused);
		got[0] = '\0';
		for (k = 0; k < d.n_trunks; k++) {
			const struct vrio_topo_trunk_change *c = &d.trunks[k];

			/* Each side points into the file it is from. */
			assert_ptr_equal(c->net, c->added ? &n->networks[c->net - n->networks] :
							    &o->networks[c->net - o->networks]);
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%c%s@%s",
				 k ? ", " : "", c->added ? '+' : '-', c->net->name, c->peer->name);
		}
		if (strcmp(got, tc->trunks)) {
			print_message("case '%s'\n  want: [%s]\n  got:  [%s]\n", tc->what,
				      tc->trunks, got);
			failed++;
		}
		vrio_topology_diff_free(&d);
		assert_null(d.trunks);
		vrio_topology_free(o);
		vrio_topology_free(n);
	}
	assert_int_equal(failed, 0);
}

static void render(const struct vrio_topo_diff *d, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < d->n; i++) {
		const struct vrio_topo_change *c = &d->v[i];
		const struct vrio_topo_device *dev = c->new_dev ? c->new_dev : c->old_dev;

		n += (size_t)snprintf(buf + n, len - n, "%s%s %s", i ? ", " : "",
				      vrio_topo_change_kind_name(c->kind), dev ? dev->name : "-");
		for (unsigned bit = 1, sep = ' '; c->kind == VRIO_CHANGE_LIVE && bit; bit <<= 1) {
			if (!(c->keys & bit))
				continue;
			n += (size_t)snprintf(buf + n, len - n, "%c%s", sep,
					      vrio_topo_live_key_name(bit));
			sep = '+';
		}
		assert_true(n < len);
	}
}

/* What holds for every entry, whatever the case. */
static void check_entries(const struct diff_case *dc, const struct vrio_topo_diff *d)
{
	bool any_refused = false;

	for (size_t i = 0; i < d->n; i++) {
		const struct vrio_topo_change *c = &d->v[i];
		unsigned line, col;
		char file[16];

		switch (c->kind) {
		case VRIO_CHANGE_ADDED:
			assert_null(c->old_dev);
			assert_non_null(c->new_dev);
			break;
		case VRIO_CHANGE_REMOVED:
			assert_non_null(c->old_dev);
			assert_null(c->new_dev);
			break;
		case VRIO_CHANGE_LIVE:
			assert_non_null(c->old_dev);
			assert_non_null(c->new_dev);
			assert_true(c->keys != 0);
			assert_string_equal(c->old_dev->name, c->new_dev->name);
			break;
		case VRIO_CHANGE_REFUSED:
			any_refused = true;
			/* Every refusal names FILE:LINE:COL. */
			if (sscanf(c->msg, "%15[a-z.]:%u:%u: ", file, &line, &col) != 3 ||
			    (strcmp(file, "old.yaml") && strcmp(file, "new.yaml")))
				fail_msg("case '%s': refusal without a position: %s", dc->what, c->msg);
			break;
		}
		if (c->kind != VRIO_CHANGE_REFUSED)
			assert_string_equal(c->msg, "");
	}
	assert_int_equal(d->refused, any_refused);
}

static bool run_case(const struct diff_case *dc)
{
	struct vrio_topology *o = NULL, *n = NULL;
	struct vrio_topo_diff d;
	char err[256] = "", got[512], nets[256] = "";
	bool ok = true, found = false;

	if (vrio_topology_parse("old.yaml", dc->old_text, strlen(dc->old_text), &o, err,
				sizeof(err)) ||
	    vrio_topology_parse("new.yaml", dc->new_text, strlen(dc->new_text), &n, err,
				sizeof(err))) {
		print_message("case '%s': %s\n", dc->what, err);
		vrio_topology_free(o);
		return false;
	}
	assert_int_equal(vrio_topology_diff(o, n, dc->role, dc->node, &d), 0);
	check_entries(dc, &d);
	render(&d, got, sizeof(got));
	for (size_t i = 0; i < d.n_new_networks; i++) {
		strcat(nets, i ? " " : "");
		strcat(nets, d.new_networks[i]->name);
	}
	for (size_t i = 0; i < d.n; i++) {
		if (d.v[i].kind == VRIO_CHANGE_REFUSED && dc->msg && strstr(d.v[i].msg, dc->msg))
			found = true;
	}
	if (strcmp(got, dc->changes) || d.unchanged != dc->unchanged ||
	    strcmp(nets, dc->new_networks) || d.refused != (dc->msg != NULL) ||
	    (dc->msg && !found)) {
		print_message("case '%s'\n  want: [%s] unchanged %zu networks [%s] refused %s\n"
			      "  got:  [%s] unchanged %zu networks [%s]\n", dc->what, dc->changes,
			      dc->unchanged, dc->new_networks, dc->msg ? dc->msg : "-", got,
			      d.unchanged, nets);
		for (size_t i = 0; i < d.n; i++)
			if (d.v[i].kind == VRIO_CHANGE_REFUSED)
				print_message("        %s\n", d.v[i].msg);
		ok = false;
	}
	vrio_topology_diff_free(&d);
	assert_null(d.v);
	assert_int_equal(d.n, 0);
	vrio_topology_free(o);
	vrio_topology_free(n);
	return ok;
}

static void test_diff_table(void **state)
{
	unsigned failed = 0;

	/* Report every row that fails, then fail. */
	for (size_t i = 0; i < ARRAY_SIZE(diff_cases); i++)
		failed += !run_case(&diff_cases[i]);
	assert_int_equal(failed, 0);
}

/* A value too long for a message keeps its head and tail. */
static void test_long_values(void **state)
{
#define LONG_DIR "/var/lib/vrio/a-rather-long-directory-name/and-another-one/"
	static const char old_text[] = HEAD
		BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: " LONG_DIR "disk-one.img}", "");
	static const char new_text[] = HEAD
		BLKX("d0", "host0", "io0", "/run/vrio/d0.sock", "{file: " LONG_DIR "disk-two.img}", "");
#undef LONG_DIR
	struct vrio_topology *o = NULL, *n = NULL;
	struct vrio_topo_diff d;
	char err[256] = "";

	assert_int_equal(vrio_topology_parse("old.yaml", old_text, strlen(old_text), &o, err,
					     sizeof(err)), 0);
	assert_int_equal(vrio_topology_parse("new.yaml", new_text, strlen(new_text), &n, err,
					     sizeof(err)), 0);
	assert_int_equal(vrio_topology_diff(o, n, VRIO_ROLE_IOSERVER, "io0", &d), 0);
	assert_int_equal(d.n, 1);
	assert_true(d.refused);
	assert_non_null(strstr(d.v[0].msg, "disk-one.img -> "));
	assert_non_null(strstr(d.v[0].msg, "disk-two.img); remove it and add it back"));
	assert_non_null(strstr(d.v[0].msg, "..."));
	vrio_topology_diff_free(&d);
	vrio_topology_free(o);
	vrio_topology_free(n);
}

static void test_names(void **state)
{
	assert_string_equal(vrio_topo_live_key_name(VRIO_LIVE_READ_ONLY), "read_only");
	assert_string_equal(vrio_topo_live_key_name(VRIO_LIVE_IOMMU), "iommu");
	assert_string_equal(vrio_topo_live_key_name(VRIO_LIVE_COALESCE), "coalesce_us");
	assert_string_equal(vrio_topo_live_key_name(VRIO_LIVE_READ_ONLY | VRIO_LIVE_IOMMU),
			    "unknown");
	assert_string_equal(vrio_topo_live_key_name(0), "unknown");
	assert_string_equal(vrio_topo_change_kind_name(VRIO_CHANGE_REFUSED), "refused");
	assert_string_equal(vrio_topo_role_name(VRIO_ROLE_HOST), "host");
	assert_string_equal(vrio_topo_role_name(VRIO_ROLE_IOSERVER), "io_server");
	vrio_topology_diff_free(NULL);
}

/*
 * The hash is of the bytes read: `sha256sum` of the same file prints it.
 * SHA_HEX is what `printf '<SHA_TEXT>' > f; sha256sum f` prints.
 */
#define SHA_TEXT "version: 1\nio_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\nhosts: []\n"
#define SHA_HEX  "fe0e09d7a97bd0d057086e40119d7be51a50417e55173865d5dccce3240f9b3d"

static void test_sha256(void **state)
{
	char tmpl[] = "/tmp/vrio-topo-diff-XXXXXX", path[PATH_MAX], err[PATH_MAX + 128] = "";
	struct vrio_topology *t = NULL, *p = NULL;
	const char *dir = mkdtemp(tmpl);
	FILE *f;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/rack.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(SHA_TEXT, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);

	assert_int_equal(vrio_topology_load(path, &t, err, sizeof(err)), 0);
	assert_string_equal(t->sha256, SHA_HEX);
	assert_int_equal(vrio_topology_parse("rack.yaml", SHA_TEXT, strlen(SHA_TEXT), &p, err,
					     sizeof(err)), 0);
	assert_string_equal(p->sha256, SHA_HEX);
	vrio_topology_free(p);
	p = NULL;
	/* One more byte (a trailing comment), another hash. */
	assert_int_equal(vrio_topology_parse("rack.yaml", SHA_TEXT "#", strlen(SHA_TEXT) + 1, &p,
					     err, sizeof(err)), 0);
	assert_string_not_equal(p->sha256, SHA_HEX);
	vrio_topology_free(p);
	vrio_topology_free(t);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff_table),
		cmocka_unit_test(test_trunk_table),
		cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
