#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-acl.sh BUILD_DIR: an acl on a guest's port, between real guests. The
# rack of net-vrio.sh (net-rack.sh: an io node and two compute nodes in
# network namespaces, QEMU TCG guests with Linux's virtio_net), with all
# three guests on network lan:
#
#   guest A  host0  10.77.0.1  vm-a-net, behind the acl below
#   guest B  host1  10.77.0.2
#   guest C  host1  10.77.0.3
#
#   acl: {default: deny, rules: [ARP both ways; ICMP from A to B; ICMP from
#         B to A; any other ICMP denied]}
#
#   1. A pings B and is answered; B pings A and is answered; C pings B (so
#      C is up and on the network);
#   2. C answers A's ARP, yet A's pings to C get no answer;
#   3. the acl's counters say why: rule 1 counted ARP, rules 2 and 3 the
#      echoes between A and B, rule 4 (deny ICMP) at least A's three
#      pings to C, and the stage dropped as many as rule 4 and the default
#      matched; promtool accepts the exposition; the daemons stop with 0.
#
# Exits 77 (SKIP) without root, network namespaces, QEMU or the guest
# kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
# rack_netns_cleanup: namespaces in RACK_NETNS go after the daemons in them.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
# rack, start_rack, guest, wait_line, result_of, fail.
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

write_topology() {
	rack_topology io0
	cat >>"$RUN/topology.yaml" <<EOT
  - name: vm-a-net
    type: net
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    mac: "52:54:00:77:00:01"
    network: lan
    interpose:
      - acl:
          default: deny
          rules:
            - {action: allow, ethertype: arp}
            - {action: allow, dir: in, proto: icmp, dst: 10.77.0.2}
            - {action: allow, dir: out, proto: icmp, src: 10.77.0.2}
            - {action: deny, proto: icmp}
  - name: vm-b-net
    type: net
    host: host1
    io_server: io0
    socket: $RUN/b.sock
    mac: "52:54:00:77:00:02"
    network: lan
  - name: vm-c-net
    type: net
    host: host1
    io_server: io0
    socket: $RUN/c.sock
    mac: "52:54:00:77:00:03"
    network: lan
networks:
  - name: lan
EOT
}

# hits RULE: vm-a-net's acl hits for RULE (a number or "default").
hits() {
	metric_sum "vrio_ioserver_acl_rule_hits_total{device=\"vm-a-net\",rule=\"$1\"}" \
		<"$RUN/io.metrics"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local rc=0 a m pid arp to_b from_b denied dflt drops
	rack_prepare "$1"
	write_topology
	start_rack

	# B and C stay up (linger) until A is done; then they are stopped.
	guest b "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:77:00:02 net-acl ip=10.77.0.2/24 \
		peer=10.77.0.1 linger=280
	guest c "${HV_NS[1]}" "$RUN/c.sock" 52:54:00:77:00:03 net-acl ip=10.77.0.3/24 \
		peer=10.77.0.2 linger=280
	guest a "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 net-acl ip=10.77.0.1/24 \
		peer=10.77.0.2 deny=10.77.0.3
	a=${PIDS[2]}
	wait "$a" || rc=$?
	untrack_pid "$a"
	cat "$RUN/results-a"
	((rc == 0)) || fail "guest A failed (consoles in $RUN)"
	result_of a net-ping | grep -q 'peer=10.77.0.2 ok$' || fail "A did not reach B"
	result_of a net-arp | grep -q 'peer=10.77.0.3 ok$' || fail "C did not answer A's ARP"
	result_of a net-denied | grep -q 'peer=10.77.0.3 ok$' || fail "C answered A's pings"
	wait_line "$RUN/console-b.log" '^VRIO-RESULT: net-ping peer=10.77.0.1 ok' 10 ||
		fail "B did not reach A through the acl"
	wait_line "$RUN/console-c.log" '^VRIO-RESULT: net-ping peer=10.77.0.2 ok' 10 ||
		fail "C was not up: it did not reach B"
	log "A reaches B, B reaches A, C reaches B; C answers A's ARP but not its pings"
	for pid in "${PIDS[0]}" "${PIDS[1]}"; do
		stop_pid "$pid" 10 || true
		untrack_pid "$pid"
	done

	io_metrics 0 "$RUN/io.metrics" ||
		fail "no io-server metrics"
	lint_metrics "$RUN/io.metrics"
	arp=$(hits 1)
	to_b=$(hits 2)
	from_b=$(hits 3)
	denied=$(hits 4)
	dflt=$(hits default)
	drops=$(metric_sum 'vrio_ioserver_stage_drops_total{device="vm-a-net",stage="acl",reason="rule"}' \
		<"$RUN/io.metrics")
	log "acl on vm-a-net: rule 1 (ARP) $arp hits, 2 (ICMP to B) $to_b, 3 (ICMP from B)" \
		"$from_b, 4 (deny ICMP) $denied, default (deny) $dflt; $drops frames dropped"
	((arp > 0)) || fail "no ARP counted by rule 1"
	((to_b > 0 && from_b > 0)) || fail "the echoes between A and B were not counted"
	((denied >= 3)) || fail "rule 4 counted $denied frames, fewer than A's 3 pings to C"
	((drops == denied + dflt)) || fail "the stage dropped $drops, rules said $((denied + dflt))"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="vm-c-net",direction="out"}' \
		<"$RUN/io.metrics")
	((m > 0)) || fail "nothing reached vm-c-net"

	stop_rack
	echo "PASS: e2e/net-acl"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
