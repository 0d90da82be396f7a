#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-vrio.sh BUILD_DIR: guests on two compute nodes talk through the
# io-server's switch. Three network namespaces this test makes stand for the
# rack: the io node (vrio-ioserver, a bridge its hosts reach it on, the
# uplink TAP) and two compute nodes (a vrio-localhv each, and their QEMU TCG
# guests with Linux's virtio_net on vhost-user):
#
#   guest A  host0, network lan       10.77.0.1
#   guest B  host1, network lan       10.77.0.2
#   guest C  host1, network isolated  10.77.0.3
#
#   1. A and B ping each other; B sends 10 MiB of random data to A over TCP,
#      and the md5 A computes is the one B computed before sending;
#   2. C, on another network, gets no answer from A;
#   3. the io node pings A through the uplink TAP of lan;
#   4. the io-server's metrics count the ports' frames, promtool accepts
#      both daemons' expositions, and all three daemons stop with status 0.
#
# The io-server runs two reactors, so the hosts' connections land on
# different ones and frames cross between them. Exits 77 (SKIP) without
# root, network namespaces, /dev/net/tun, QEMU or the guest kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
# rack_netns_cleanup: namespaces in RACK_NETNS go after the daemons in them.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"

BYTES=$((10 << 20))
PIDS=()

fail() {
	local f
	for f in "$RUN"/*.log; do
		[[ -e $f ]] && show_log "$(basename "$f")" "$f"
	done
	die "$*"
}

# rack: the io node's bridge at 10.99.0.1, each compute node on a veth to it.
rack() {
	local p=vrio-$$ i
	[[ $(id -u) == 0 ]] || skip "needs root for network namespaces"
	have_cmd ip || skip "needs iproute2"
	[[ -c /dev/net/tun ]] || skip "no /dev/net/tun for the uplink TAP"
	IO_NS=$p-io
	HV_NS=("$p-h0" "$p-h1")
	ip netns add "$IO_NS" 2>/dev/null || skip "cannot create a network namespace"
	RACK_NETNS+=("$IO_NS")
	ip -n "$IO_NS" link set lo up
	ip -n "$IO_NS" link add br0 type bridge || skip "no bridge support in this kernel"
	ip -n "$IO_NS" addr add 10.99.0.1/24 dev br0
	ip -n "$IO_NS" link set br0 up
	for i in 0 1; do
		ip netns add "${HV_NS[i]}"
		RACK_NETNS+=("${HV_NS[i]}")
		ip -n "${HV_NS[i]}" link set lo up
		ip link add "vh$i-$$" netns "${HV_NS[i]}" type veth peer name "vi$i-$$" netns "$IO_NS"
		ip -n "$IO_NS" link set "vi$i-$$" master br0 up
		ip -n "${HV_NS[i]}" addr add "10.99.0.$((i + 2))/24" dev "vh$i-$$"
		ip -n "${HV_NS[i]}" link set "vh$i-$$" up
	done
}

# write_topology: the rack in $RUN/topology.yaml, with the control sockets
# IO_CTL (io0) and HV_CTL[i] (host0, host1) in RUN.
write_topology() {
	IO_CTL=$RUN/io0.ctl
	HV_CTL=("$RUN/host0.ctl" "$RUN/host1.ctl")
	cat >"$RUN/topology.yaml" <<EOF
version: 1
io_servers:
  - name: io0
    listen: 10.99.0.1:7400
    metrics: 127.0.0.1:9400
    control: $IO_CTL
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    metrics: 127.0.0.1:9401
    control: ${HV_CTL[0]}
  - name: host1
    metrics: 127.0.0.1:9401
    control: ${HV_CTL[1]}
devices:
  - name: vm-a-net
    type: net
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    mac: "52:54:00:77:00:01"
    network: lan
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
    network: isolated
networks:
  - name: lan
    uplink: {tap: vrup0}
  - name: isolated
EOF
}

start_rack() {
	local i
	start_daemon IO_PID vrio-ioserver "$RUN/ioserver.log" \
		ip netns exec "$IO_NS" "$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node io0
	wait_for_port 7400 20 "$IO_PID" || fail "vrio-ioserver is not listening"
	wait_for_socket "$IO_CTL" 20 "$IO_PID" || fail "vrio-ioserver serves no control socket"
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			ip netns exec "${HV_NS[i]}" "$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" \
			--node "host$i"
	done
	wait_for_socket "$RUN/a.sock" 20 "$HV_PID0" || fail "host0 serves no socket for vm-a-net"
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "host1 serves no socket for vm-b-net"
	wait_for_socket "$RUN/c.sock" 20 "$HV_PID1" || fail "host1 serves no socket for vm-c-net"
	wait_for_socket "${HV_CTL[0]}" 20 "$HV_PID0" || fail "host0 serves no control socket"
	wait_for_socket "${HV_CTL[1]}" 20 "$HV_PID1" || fail "host1 serves no control socket"
}

# guest NAME NS SOCKET MAC RUN PARAM...: boots a guest in the background.
guest() {
	local name=$1 ns=$2 sock=$3 mac=$4 what=$5 pid p
	local -a params=()
	shift 5
	for p in "$@"; do
		params+=(--param "$p")
	done
	ip netns exec "$ns" bash "$VRIO_ROOT/tests/e2e/run-guest.sh" --kernel-dir "$GUEST" \
		--net-socket "$sock" --mac "$mac" --run "$what" --timeout 300 \
		--log "$RUN/console-$name.log" "${params[@]}" >"$RUN/results-$name" 2>"$RUN/guest-$name.log" &
	pid=$!
	track_pid "$pid" "guest $name"
	PIDS+=("$pid")
}

# wait_line FILE PATTERN SECONDS
wait_line() {
	local n=0
	until grep -aq "$2" "$1" 2>/dev/null; do
		((n < $3 * 10)) || return 1
		sleep 0.1
		n=$((n + 1))
	done
}

result_of() { # NAME RUN: the guest's VRIO-RESULT line for RUN
	grep -a "^VRIO-RESULT: $2 " "$RUN/results-$1" | tr -d '\r' | tail -n 1
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build pid rc=0 sum_a sum_b m
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	GUEST=$build/tests/e2e/guest
	guest_image "$GUEST"
	make_tmpdir RUN
	rack
	write_topology
	start_rack

	guest a "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 net-serve ip=10.77.0.1/24 \
		peer=10.77.0.2 "bytes=$BYTES" linger=10
	guest b "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:77:00:02 net-send ip=10.77.0.2/24 \
		peer=10.77.0.1 "bytes=$BYTES" linger=2
	guest c "${HV_NS[1]}" "$RUN/c.sock" 52:54:00:77:00:03 net-isolated ip=10.77.0.3/24 \
		peer=10.77.0.1

	# The io node reaches guest A through lan's uplink while A is up.
	wait_line "$RUN/console-a.log" '^VRIO-RESULT: net-up' 120 || fail "guest A never came up"
	ip -n "$IO_NS" addr add 10.77.0.254/24 dev vrup0 || fail "no uplink TAP vrup0"
	if ! ip netns exec "$IO_NS" busybox ping -c 3 -W 2 10.77.0.1 >"$RUN/uplink-ping.txt" 2>&1; then
		cat "$RUN/uplink-ping.txt" >&2
		fail "the io node cannot ping guest A through the uplink"
	fi
	log "uplink: $(grep -a 'packet loss' "$RUN/uplink-ping.txt")"

	for pid in "${PIDS[@]}"; do
		wait "$pid" || rc=1
		untrack_pid "$pid"
	done
	for m in a b c; do
		cat "$RUN/results-$m"
	done
	((rc == 0)) || fail "a guest failed (consoles in $RUN)"
	sum_a=$(result_of a net-recv | sed -n 's/.* md5=\([0-9a-f]*\) .*/\1/p')
	sum_b=$(result_of b net-send | sed -n 's/.* md5=\([0-9a-f]*\) .*/\1/p')
	[[ -n $sum_a && $sum_a == "$sum_b" ]] ||
		fail "guest A received md5 '$sum_a', guest B sent md5 '$sum_b'"
	log "10 MiB from B to A: md5 $sum_a on both sides"
	result_of c net-isolated | grep -q ' ok$' || fail "guest C reached across networks"

	ip netns exec "$IO_NS" bash -c "source '$VRIO_ROOT/scripts/lib.sh'; vrio_metrics vrio-ioserver 127.0.0.1:9400 '$RUN/io.metrics'" ||
		fail "no io-server metrics"
	ip netns exec "${HV_NS[0]}" bash -c "source '$VRIO_ROOT/scripts/lib.sh'; vrio_metrics vrio-localhv 127.0.0.1:9401 '$RUN/hv0.metrics'" ||
		fail "no local-hv metrics"
	for m in io hv0; do
		if have_cmd promtool; then
			promtool check metrics <"$RUN/$m.metrics" || fail "promtool rejects $m.metrics"
		fi
	done
	# 10 MiB in 1500-byte frames is over 7,000 of them from B, and A's
	# acknowledgements the other way.
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="vm-b-net",direction="in"}' <"$RUN/io.metrics")
	((m > 7000)) || fail "the switch counted only $m frames from vm-b-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="vm-a-net",direction="out"}' <"$RUN/io.metrics")
	((m > 7000)) || fail "the switch counted only $m frames to vm-a-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="vm-a-net",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from vm-a-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="vm-c-net",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from vm-c-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="uplink:vrup0",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from the uplink"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="vm-c-net",direction="out"}' <"$RUN/io.metrics")
	((m == 0)) || fail "$m frames reached vm-c-net from elsewhere"

	vrio_stop vrio-localhv-host0 "$HV_PID0" "$RUN/localhv-host0.log" || fail "host0's local-hv did not stop cleanly"
	vrio_stop vrio-localhv-host1 "$HV_PID1" "$RUN/localhv-host1.log" || fail "host1's local-hv did not stop cleanly"
	vrio_stop vrio-ioserver "$IO_PID" "$RUN/ioserver.log" || fail "the io-server did not stop cleanly"
	echo "PASS: e2e/net-vrio"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
