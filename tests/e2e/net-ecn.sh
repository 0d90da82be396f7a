#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-ecn.sh BUILD_DIR: HOST_ECN with real guests. The rack of net-vrio
# (tests/e2e/net-rack.sh), one io-server, guests with QEMU's defaults
# (every offload vrio offers, HOST_ECN among them):
#
#   guest A  host0  10.77.0.1  guest-tcp server; Linux's default tcp_ecn=2
#                              answers a connection that asks for ECN
#   guest B  host1  10.77.0.2  the sender, chrooted into this machine's
#                              root (run-guest.sh's host-script) for its
#                              tc: tcp_ecn=1, and netem on its eth0 that
#                              marks CE instead of dropping on 2% of its
#                              packets (ECT: the data of its ECN connection)
#
# A echoes the marks (ECE); B's stack answers with CWR on its next data,
# and a TSO packet with CWR goes to the device whole with the header's ECN
# bit since B negotiated HOST_ECN. rte_vhost drops the bit, local-hv sets
# it again from CWR, the io-server counts the packet from B's port and,
# as no guest takes ECN, cuts it for A, CWR on the first segment only.
# Passes when both guests negotiated HOST_ECN (and the other offloads),
# netem marked packets, guest-tcp's receiver found every byte of B's
# stream intact (A's stack checks each checksum), the io-server counted
# ECN packets from B's port and segmented as many for A, and no frame was
# dropped for bad offload metadata.
#
# The guest image has sch_netem and 9p added (its own directory beside the
# default one). About 2 minutes under TCG. Exits 77 (SKIP) as net-vrio
# does, and without tc or busybox (the sender runs this machine's).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
# shellcheck source=tests/integration/rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
# shellcheck source=tests/e2e/net-rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

SECS=10
# Modules of the sender's guest: its NIC, the host's root over 9p, netem.
ECN_MODULES=(virtio_pci virtio_net 9p 9pnet_virtio sch_netem)

write_topology() {
	rack_topology io0
	cat >>"$RUN/topology.yaml" <<EOT
  - {name: vm-a-net, type: net, host: host0, io_server: io0, socket: $RUN/a.sock, mac: "52:54:00:77:00:01", network: lan}
  - {name: vm-b-net, type: net, host: host1, io_server: io0, socket: $RUN/b.sock, mac: "52:54:00:77:00:02", network: lan}
  - {name: vm-c-net, type: net, host: host1, io_server: io0, socket: $RUN/c.sock, mac: "52:54:00:77:00:03", network: lan}
networks:
  - name: lan
EOT
}

# The sender, under this machine's /bin/sh chrooted into its root with
# the guest's kernel (guest-init.sh's host-script): one VRIO-RESULT line
# per step, as the guest's own runs print them.
write_sender() {
	cat >"$RUN/sender.sh" <<EOT
res() { echo "VRIO-RESULT: \$*"; }
n=0
while [ ! -e /sys/class/net/eth0 ]; do
	[ \$n -lt 100 ] || { res "net-up ERROR no eth0"; exit 1; }
	sleep 0.1
	n=\$((n + 1))
done
echo 1 >/proc/sys/net/ipv4/tcp_ecn || { res "tcp-ecn ERROR cannot set tcp_ecn"; exit 1; }
ip link set lo up && ip addr add 10.77.0.2/24 dev eth0 && ip link set eth0 up ||
	{ res "net-up ERROR cannot configure eth0"; exit 1; }
res "net-features features=\$(cat /sys/class/net/eth0/device/features) ok"
tc qdisc add dev eth0 root netem loss 2% ecn ||
	{ res "netem ERROR tc cannot add netem with ecn"; exit 1; }
n=0
until why=\$(busybox ping -c 1 -W 1 10.77.0.1 2>&1); do
	n=\$((n + 1))
	[ \$n -lt 180 ] || { res "net-ping ERROR no answer from 10.77.0.1:" \$why; exit 1; }
	sleep 1
done
res "net-ping peer=10.77.0.1 ok"
$RUN/guest-tcp client 10.77.0.1 5001 ${SECS}s 1 || exit 1
# netem counts a packet it marked as a drop: "dropped N" in its stats.
res "netem marked=\$(tc -s qdisc show dev eth0 | sed -n 's/.*dropped \\([0-9]*\\).*/\\1/p' | head -n 1) ok"
sleep 1
EOT
}

scraped() { # NAME{LABELS}: its value in the io-server's exposition scraped last
	metric_sum "$1" <"$RUN/io.metrics"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build fa fb marked ecn_b seg_a line sline sent got m i
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	have_cmd tc || skip "no tc (iproute2) for the sender's netem"
	have_cmd busybox || skip "no busybox for the sender's ping"
	GUEST=$build/tests/e2e/guest-ecn
	VRIO_GUEST_MODULES="${ECN_MODULES[*]}" guest_image "$GUEST"
	make_tmpdir RUN
	rack
	write_topology
	start_rack
	# The guest sees this machine's /tmp empty: what it runs is in RUN,
	# its shared directory.
	cp "$GUEST/guest-tcp" "$RUN/guest-tcp"
	write_sender
	chmod 0755 "$RUN"

	# B first: its boot (9p, the chroot) is the slower, and A gives up
	# when B does not answer its ping within a minute.
	PIDS=()
	GUEST_ARGS=(--share "$RUN" --script "$RUN/sender.sh" --mem 512)
	guest b "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:77:00:02 host-script
	GUEST_ARGS=()
	wait_line "$RUN/console-b.log" '^VRIO-RESULT: net-features' 240 ||
		fail "guest B did not bring its NIC up (console in $RUN)"
	guest a "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 tcp-server ip=10.77.0.1/24 \
		peer=10.77.0.2 port=5001 linger=1
	wait_guests || {
		cat "$RUN/results-a" "$RUN/results-b" >&2 || true
		fail "a guest failed (consoles in $RUN)"
	}
	line=$(result_of b tcp-client)
	sline=$(result_of a tcp-server)
	[[ $line == *' ok' && $sline == *' ok' ]] || fail "client '$line', server '$sline'"
	sent=$(result_field "$line" bytes)
	got=$(result_field "$sline" bytes)
	((sent > 0 && sent == got)) || fail "B sent $sent bytes, A received $got"
	fa=$(result_field "$(result_of a net-features)" features)
	fb=$(result_field "$(result_of b net-features)" features)
	check_offloads A "$fa" on
	check_offloads B "$fb" on
	marked=$(result_field "$(result_of b netem)" marked)
	((marked > 0)) || fail "netem marked no packet of B's: $(result_of b netem)"
	log "B to A: $sent bytes in $(result_field "$line" secs) s, checked by A," \
		"$(result_field "$line" retrans) retransmits, $marked packets marked CE by B's netem"

	io_metrics 0 "$RUN/io.metrics" || fail "no io-server metrics"
	ecn_b=$(scraped 'vrio_ioserver_switch_ecn_packets_total{network="lan",port="vm-b-net",direction="in"}')
	seg_a=$(scraped 'vrio_ioserver_switch_ecn_segmented_total{network="lan",port="vm-a-net"}')
	((ecn_b > 0)) || fail "the io-server counted no ECN packet from B ($marked marked CE)"
	((seg_a > 0 && seg_a <= ecn_b)) ||
		fail "$ecn_b ECN packets from B, $seg_a segmented for A"
	m=$(scraped 'vrio_ioserver_switch_ecn_packets_total{network="lan",port="vm-a-net",direction="out"}')
	((m == 0)) || fail "$m ECN packets went whole to A"
	log "B's TSO packets with CWR: $ecn_b whole from B with the ECN bit, $seg_a cut for A"
	m=$(grep '^vrio_ioserver_switch_drops_total{.*reason="bad_offload"' "$RUN/io.metrics" |
		awk '{ s += $NF } END { print s + 0 }')
	((m == 0)) || fail "the switch dropped $m frames for bad offload metadata"
	for i in 0 1; do
		hv_metrics "$i" "$RUN/hv$i.metrics" || fail "no host$i metrics"
		m=$(grep '^vrio_localhv_net_drops_total{.*reason="bad_offload"' "$RUN/hv$i.metrics" |
			awk '{ s += $NF } END { print s + 0 }')
		((m == 0)) || fail "host$i dropped $m frames for bad offload metadata"
		lint_metrics "$RUN/hv$i.metrics"
	done
	lint_metrics "$RUN/io.metrics"
	stop_rack
	echo "PASS: e2e/net-ecn"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
