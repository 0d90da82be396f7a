#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-offload.sh BUILD_DIR: virtio-net offloads end to end, proved by the
# guests' own TCP stacks. The rack of net-vrio (tests/e2e/net-rack.sh: an
# io node, two compute nodes, QEMU TCG guests with Linux's virtio_net), all
# three ports on one network:
#
#   guest A  host0  10.77.0.1  QEMU's defaults: offloads on
#   guest B  host1  10.77.0.2  QEMU's defaults: offloads on
#   guest C  host1  10.77.0.3  csum, guest_csum, host/guest_tso4/6 off
#
#   1. B sends 10 MiB of random data to A over TCP; A's md5 is B's. Both
#      negotiated CSUM, GUEST_CSUM, HOST_TSO4/6 and GUEST_TSO4/6 (their
#      /sys/class/net/eth0/device/features), and B's TSO segments reached
#      A whole: more bytes than 1514 per frame out to A's port, none
#      segmented by the io-server;
#   2. B (booted again) sends 10 MiB to C, which negotiated none of them:
#      the io-server cut B's large segments into wire-sized ones and
#      completed B's partial checksums, counted on C's port, and C's stack,
#      which checks every checksum itself, got the md5 B sent;
#   3. the io node (the kernel behind lan's uplink TAP, opened with
#      IFF_VNET_HDR and TSO offloads) sends 10 MiB to A (booted again):
#      md5 matching, in frames larger than 1514 bytes on average from the
#      uplink port (the kernel's TSO packets taken whole);
#   4. no frame was dropped for bad offload metadata on either side.
#
# About 2 minutes under TCG. Exits 77 (SKIP) as net-vrio does.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
# shellcheck source=tests/integration/rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
# shellcheck source=tests/e2e/net-rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

BYTES=$((10 << 20))

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
    uplink: {tap: vroff0}
EOT
}

# offloads_are NAME on|off: the guest's negotiated offload bits.
offloads_are() {
	local f
	f=$(result_field "$(result_of "$1" net-features)" features)
	check_offloads "$1" "$f" "$2"
	log "guest $1 ($2): features $f"
}

# transfer TAG SERVER SERVER_SOCK SERVER_MAC SERVER_IP SERVER_OPTS: B sends
# BYTES to the server guest, which checks them; both boot fresh.
transfer() {
	local tag=$1 srv=$2 sock=$3 mac=$4 ip=$5 opts=$6 rc=0
	PIDS=()
	# shellcheck disable=SC2034 # read by net-rack.sh's guest
	NET_OPTS=$opts
	guest "$srv-$tag" "${HV_NS[$([[ $srv == a ]] && echo 0 || echo 1)]}" "$sock" "$mac" \
		net-serve "ip=$ip/24" peer=10.77.0.2 "bytes=$BYTES" linger=2
	NET_OPTS=
	guest "b-$tag" "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:77:00:02 net-send ip=10.77.0.2/24 \
		"peer=$ip" "bytes=$BYTES" linger=1
	wait_guests || rc=1
	((rc == 0)) || {
		cat "$RUN/results-$srv-$tag" "$RUN/results-b-$tag" >&2 || true
		fail "$tag: a guest failed (consoles in $RUN)"
	}
	WHAT=$tag same_md5 "$srv-$tag" "b-$tag"
	log "$tag: 10 MiB from B to $srv, md5 $MD5 on both sides"
}

# drops_for METRIC REASON FILE: the sum of METRIC over every series with
# that reason label.
drops_for() {
	grep "^$1{.*reason=\"$2\"" "$3" | awk '{ s += $NF } END { printf "%.0f\n", s + 0 }'
}

io_metric() { # NAME{LABELS}: its value in the io-server's exposition now
	io_metrics 0 "$RUN/io.metrics" ||
		fail "no io-server metrics"
	metric_sum "$1" <"$RUN/io.metrics"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local frames bytes m i sum_t
	rack_prepare "$1"
	write_topology
	start_rack

	transfer on a "$RUN/a.sock" 52:54:00:77:00:01 10.77.0.1 ""
	offloads_are a-on on
	offloads_are b-on on
	frames=$(io_metric 'vrio_ioserver_switch_frames_total{network="lan",port="vm-a-net",direction="out"}')
	bytes=$(io_metric 'vrio_ioserver_switch_bytes_total{network="lan",port="vm-a-net",direction="out"}')
	((bytes > BYTES && bytes > frames * 1514)) ||
		fail "to A: $bytes bytes in $frames frames: B's large segments did not arrive whole"
	m=$(io_metric 'vrio_ioserver_switch_gso_packets_total{network="lan",port="vm-a-net"}')
	((m == 0)) || fail "the io-server segmented $m packets for A, which takes TSO"
	log "to A: $bytes bytes in $frames frames ($((bytes / frames)) bytes a frame)"

	transfer off c "$RUN/c.sock" 52:54:00:77:00:03 10.77.0.3 "$OFF_OPTS"
	offloads_are c-off off
	offloads_are b-off on
	m=$(io_metric 'vrio_ioserver_switch_gso_packets_total{network="lan",port="vm-c-net"}')
	((m > 0)) || fail "nothing segmented for C, which takes no TSO"
	frames=$(io_metric 'vrio_ioserver_switch_gso_segments_total{network="lan",port="vm-c-net"}')
	((frames > m)) || fail "$m packets for C made only $frames segments"
	bytes=$(io_metric 'vrio_ioserver_switch_csum_completed_total{network="lan",port="vm-c-net"}')
	log "to C: $m TSO packets cut into $frames segments, $bytes checksums completed in software"
	# The io node's kernel sends to A through the uplink TAP.
	PIDS=()
	NET_OPTS=
	guest a-tap "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 net-serve ip=10.77.0.1/24 \
		peer=10.77.0.254 "bytes=$BYTES" linger=2
	ip -n "$IO_NS" addr add 10.77.0.254/24 dev vroff0 || fail "no uplink TAP vroff0"
	head -c "$BYTES" /dev/urandom >"$RUN/tap.data"
	sum_t=$(md5sum <"$RUN/tap.data" | cut -d' ' -f1)
	wait_line "$RUN/console-a-tap.log" '^VRIO-RESULT: net-ping' 120 ||
		fail "guest A never reached the io node"
	for ((i = 0; i < 30; i++)); do
		ip netns exec "$IO_NS" busybox nc -w 5 10.77.0.1 5000 <"$RUN/tap.data" && break
		sleep 1
	done
	((i < 30)) || fail "the io node cannot connect to guest A"
	wait "${PIDS[0]}" || fail "guest A failed after the uplink's transfer (consoles in $RUN)"
	untrack_pid "${PIDS[0]}"
	m=$(md5_of a-tap net-recv)
	[[ $m == "$sum_t" ]] || fail "guest A received md5 '$m' from the uplink, '$sum_t' was sent"
	frames=$(io_metric 'vrio_ioserver_switch_frames_total{network="lan",port="uplink:vroff0",direction="in"}')
	bytes=$(io_metric 'vrio_ioserver_switch_bytes_total{network="lan",port="uplink:vroff0",direction="in"}')
	((bytes > BYTES && bytes > frames * 1514)) ||
		fail "from the uplink: $bytes bytes in $frames frames: the kernel's TSO packets did not come whole"
	log "uplink to A: 10 MiB, md5 $m on both sides, $bytes bytes in $frames frames"

	io_metric vrio_ioserver_up >/dev/null
	m=$(drops_for vrio_ioserver_switch_drops_total bad_offload "$RUN/io.metrics")
	((m == 0)) || fail "the switch dropped $m frames for bad offload metadata"
	for i in 0 1; do
		hv_metrics "$i" "$RUN/hv$i.metrics" ||
			fail "no host$i metrics"
		m=$(drops_for vrio_localhv_net_drops_total bad_offload "$RUN/hv$i.metrics")
		((m == 0)) || fail "host$i dropped $m frames for bad offload metadata"
		lint_metrics "$RUN/hv$i.metrics"
	done
	lint_metrics "$RUN/io.metrics"

	stop_rack
	echo "PASS: e2e/net-offload"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
