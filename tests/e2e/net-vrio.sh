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
# rack, start_rack, guest, wait_line, result_of, fail.
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

BYTES=$((10 << 20))
# write_topology: the rack in $RUN/topology.yaml, with the control sockets
# IO_CTL (io0) and HV_CTL[i] (host0, host1) in RUN.
write_topology() {
	rack_topology io0
	cat >>"$RUN/topology.yaml" <<EOF
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

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local rc=0 m
	rack_prepare "$1"
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

	wait_guests || rc=1
	for m in a b c; do
		cat "$RUN/results-$m"
	done
	((rc == 0)) || fail "a guest failed (consoles in $RUN)"
	same_md5 a b
	log "10 MiB from B to A: md5 $MD5 on both sides"
	result_of c net-isolated | grep -q ' ok$' || fail "guest C reached across networks"

	io_metrics 0 "$RUN/io.metrics" ||
		fail "no io-server metrics"
	hv_metrics 0 "$RUN/hv0.metrics" ||
		fail "no local-hv metrics"
	lint_metrics "$RUN/io.metrics" "$RUN/hv0.metrics"
	# 10 MiB from B to A, and A's acknowledgements the other way (in
	# 1500-byte frames or, with the guests' TSO, far fewer large ones).
	m=$(metric_sum 'vrio_ioserver_switch_bytes_total{network="lan",port="vm-b-net",direction="in"}' <"$RUN/io.metrics")
	((m > BYTES)) || fail "the switch counted only $m bytes from vm-b-net"
	m=$(metric_sum 'vrio_ioserver_switch_bytes_total{network="lan",port="vm-a-net",direction="out"}' <"$RUN/io.metrics")
	((m > BYTES)) || fail "the switch counted only $m bytes to vm-a-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="vm-a-net",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from vm-a-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="vm-c-net",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from vm-c-net"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="uplink:vrup0",direction="in"}' <"$RUN/io.metrics")
	((m > 0)) || fail "the switch counted no frames from the uplink"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="vm-c-net",direction="out"}' <"$RUN/io.metrics")
	((m == 0)) || fail "$m frames reached vm-c-net from elsewhere"

	stop_rack
	echo "PASS: e2e/net-vrio"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
