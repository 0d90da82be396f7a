#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-trunk.sh BUILD_DIR: guests on two compute nodes whose ports live on
# two io-servers, joined by a trunk. The rack of net-vrio (net-rack.sh:
# an io node and two compute nodes in network namespaces), with io0 and
# io1 both on the io node (10.99.0.1:7400 and :7401):
#
#   guest A  host0, io0, network lan       10.77.0.1
#   guest B  host1, io1, network lan       10.77.0.2
#   guest C  host1, io1, network isolated  10.77.0.3 (isolated lists
#            io_servers [io0, io1], so it is trunked too)
#
#   1. A and B ping each other across the trunk; B sends 10 MiB of random
#      data to A over TCP, and the md5 A computes is the one B computed;
#   2. C, on another network, gets no answer from A;
#   3. both io-servers count the frames over the trunk, none of lan's
#      reach isolated, promtool accepts them, and all four daemons stop
#      with status 0.
#
# Exits 77 (SKIP) without root, network namespaces, QEMU or the guest kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

BYTES=$((10 << 20))

write_topology() {
	rack_topology trunk
	cat >>"$RUN/topology.yaml" <<EOT
  - {name: vm-a-net, type: net, host: host0, io_server: io0, socket: $RUN/a.sock, mac: "52:54:00:77:00:01", network: lan}
  - {name: vm-b-net, type: net, host: host1, io_server: io1, socket: $RUN/b.sock, mac: "52:54:00:77:00:02", network: lan}
  - {name: vm-c-net, type: net, host: host1, io_server: io1, socket: $RUN/c.sock, mac: "52:54:00:77:00:03", network: isolated}
networks:
  - name: lan
  - name: isolated
    io_servers: [io0, io1]
EOT
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local rc=0 m i
	rack_prepare "$1"
	write_topology
	start_trunk_rack
	wait_until 20 trunk_up || fail "the trunk io0 -> io1 did not come up"

	guest a "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 net-serve ip=10.77.0.1/24 \
		peer=10.77.0.2 "bytes=$BYTES" linger=10
	guest b "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:77:00:02 net-send ip=10.77.0.2/24 \
		peer=10.77.0.1 "bytes=$BYTES" linger=2
	guest c "${HV_NS[1]}" "$RUN/c.sock" 52:54:00:77:00:03 net-isolated ip=10.77.0.3/24 \
		peer=10.77.0.1

	wait_guests || rc=1
	for m in a b c; do
		cat "$RUN/results-$m"
	done
	((rc == 0)) || fail "a guest failed (consoles in $RUN)"
	same_md5 a b
	log "10 MiB from B (io1) to A (io0) across the trunk: md5 $MD5 on both sides"
	result_of c net-isolated | grep -q ' ok$' || fail "guest C reached across networks"

	for i in 0 1; do
		io_metrics "$i" "$RUN/io$i.metrics" || fail "no io$i metrics"
		lint_metrics "$RUN/io$i.metrics"
	done
	# 10 MiB from B to A (in 1500-byte frames or, with the guests' TSO,
	# far fewer large ones: they cross the trunk whole).
	m=$(metric_sum 'vrio_ioserver_trunk_bytes_total{peer="io1",direction="in"}' <"$RUN/io0.metrics")
	((m > BYTES)) || fail "io0 counted only $m bytes in from io1"
	m=$(metric_sum 'vrio_ioserver_switch_bytes_total{network="lan",port="vm-a-net",direction="out"}' <"$RUN/io0.metrics")
	((m > BYTES)) || fail "io0's switch counted only $m bytes to vm-a-net"
	m=$(metric_sum 'vrio_ioserver_trunk_frames_total{peer="io0",direction="in"}' <"$RUN/io1.metrics")
	((m > 0)) || fail "io1 counted no frames in from io0"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="trunk:io1",direction="in"}' <"$RUN/io0.metrics")
	((m > 0)) || fail "C's broadcasts did not reach io0's switch of isolated"
	m=$(metric_sum 'vrio_ioserver_switch_frames_total{network="isolated",port="vm-c-net",direction="out"}' <"$RUN/io1.metrics")
	((m == 0)) || fail "$m frames reached vm-c-net from elsewhere"

	stop_rack
	echo "PASS: e2e/net-trunk"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
