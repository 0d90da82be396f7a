#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-mq.sh BUILD_DIR: virtio-net multiqueue between two guests on two
# compute nodes, in the rack of net-vrio.sh (tests/e2e/net-rack.sh). Each
# guest has two vCPUs and a NIC with two queue pairs (the topology's
# queues: 2, QEMU's netdev queues=2 and mq=on):
#
#   1. inside each guest, eth0 uses two receive and two transmit queues
#      (/sys/class/net/eth0/queues);
#   2. B sends 10 MiB to A as four TCP flows at once, from fixed ports, two
#      on each vCPU, and A's md5 of each flow is the one B computed;
#   3. local-hv's per-queue counters show B's frames taken from both its
#      transmit queues and A's frames put in both its receive queues: at
#      least one each. The split of the four flows over A's queues varied
#      between quiet runs (542/920 frames, then 2/511) although the ports
#      are fixed and the hash has no seed: not understood yet, so the
#      exact spreading is checked by integration/net-mq with vrio-bench. Which transmit queue a frame
#      takes is the guest's choice: without MSI-X (QEMU 7.2 under TCG
#      crashes with it) the one interrupt lands on one vCPU, and TCP sends
#      most segments from there, so B's second queue carries only the
#      frames its pinned sender wrote itself: some, not half (as few as
#      10 in a quiet run), so any frame there passes: a flow whose
#      socket took that queue would never complete if local-hv did not
#      serve it;
#   4. promtool accepts the expositions; the daemons stop with status 0.
#
# Exits 77 (SKIP) without root, network namespaces, /dev/net/tun, QEMU or
# the guest kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
# shellcheck source=tests/integration/rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
# shellcheck source=tests/e2e/net-rack.sh
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

BYTES=$((10 << 20))
FLOWS=4

# write_topology: net-rack.sh's rack, every port with two queue pairs (C's
# socket is there for start_rack; no guest uses it).
write_topology() {
	local n mac
	rack_topology io0
	for n in a b c; do
		case $n in
		a) mac=52:54:00:78:00:01 ;;
		b) mac=52:54:00:78:00:02 ;;
		c) mac=52:54:00:78:00:03 ;;
		esac
		cat >>"$RUN/topology.yaml" <<EOT
  - name: vm-$n-net
    type: net
    host: $([[ $n == a ]] && echo host0 || echo host1)
    io_server: io0
    socket: $RUN/$n.sock
    mac: "$mac"
    network: lan
    queues: 2
EOT
	done
	cat >>"$RUN/topology.yaml" <<EOT
networks:
  - name: lan
EOT
}

# frames HOST_METRICS DEVICE QUEUE DIRECTION
frames() {
	metric_sum "vrio_localhv_net_queue_frames_total{device=\"$2\",queue=\"$3\",direction=\"$4\"}" <"$1"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local rc=0 k m q
	rack_prepare "$1"
	write_topology
	start_rack

	GUEST_ARGS=(--smp 2 --net-queues 2)
	guest a "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:78:00:01 net-mq-serve ip=10.77.0.1/24 \
		peer=10.77.0.2 "bytes=$BYTES" "flows=$FLOWS" pairs=2 linger=5
	guest b "${HV_NS[1]}" "$RUN/b.sock" 52:54:00:78:00:02 net-mq-send ip=10.77.0.2/24 \
		peer=10.77.0.1 "bytes=$BYTES" "flows=$FLOWS" pairs=2 linger=1
	wait_guests || rc=1
	cat "$RUN/results-a" "$RUN/results-b"
	((rc == 0)) || fail "a guest failed (consoles in $RUN)"
	for m in a b; do
		result_of "$m" net-queues | grep -q 'rx=2 tx=2 cpus=2 ok$' ||
			fail "guest $m does not use two queue pairs on two vCPUs"
	done
	for ((k = 0; k < FLOWS; k++)); do
		same_md5 a b "$k"
	done
	log "10 MiB from B to A in $FLOWS flows: every md5 matches"

	io_metrics 0 "$RUN/io.metrics" ||
		fail "no io-server metrics"
	for m in 0 1; do
		hv_metrics "$m" "$RUN/hv$m.metrics" ||
			fail "no local-hv metrics on host$m"
	done
	lint_metrics "$RUN/io.metrics" "$RUN/hv0.metrics" "$RUN/hv1.metrics"
	grep -a '^vrio_localhv_net_queue_frames_total' "$RUN/hv0.metrics" "$RUN/hv1.metrics" >&2
	for q in 0 1; do
		m=$(frames "$RUN/hv1.metrics" vm-b-net "$q" to_ioserver)
		((m > 0)) || fail "B's transmit queue $q carried no frame"
		m=$(frames "$RUN/hv0.metrics" vm-a-net "$q" to_guest)
		((m > 0)) || fail "A's receive queue $q got no frame"
	done
	# Frames may be TSO segments of up to 64 KiB (offloads): count bytes.
	m=$(metric_sum 'vrio_localhv_bytes_total{device="vm-a-net",direction="to_guest"}' <"$RUN/hv0.metrics")
	((m > BYTES)) || fail "A received only $m bytes for 10 MiB"

	stop_rack
	echo "PASS: e2e/net-mq"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
