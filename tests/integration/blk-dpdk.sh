#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-dpdk.sh BUILD_DIR MODE: the rack over the dpdk transport, vrio frames
# as raw Ethernet packets under the reliable layer. MODE is one of:
#   memif         the io-server is a memif server, local-hv its client, on
#                 a socket in the run directory
#   memif-faults  the same, and both daemons inject faults into every frame
#                 they send (VRIO_FAULTS: 5% dropped, 1% duplicated, 2%
#                 reordered, seeded)
#   memif-disconnect  memif-faults, and local-hv's first connection cut
#                 after 3,000 frames: it must reconnect and end the same way
#   af_packet     a veth pair between two network namespaces this test
#                 makes: the io-server in one, local-hv and vrio-bench in the
#                 other, each on its end through net_af_packet
#   af_xdp        the same through net_af_xdp
# Each: 20,000 random 4 KiB writes with verification state, 20,000 verified
# reads, then the backing file is checked. A mode this machine cannot run
# (no root, no AF_XDP in the kernel, no PMD) is skipped with the reason.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

# Under AddressSanitizer: what DPDK's drivers leak is not ours to report.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lsan-dpdk.supp"

# vrio-bench runs where local-hv does.
bench() {
	rack_ns "${RACK_HV_NS:-}" "$BENCH" "$@"
}

main() {
	local build tmp seed retx cuts t0
	build=$(cd "$1" && pwd)
	MODE=${2:?usage: blk-dpdk.sh BUILD_DIR MODE}
	VRIO_LOG_PREFIX="blk-dpdk-$MODE"
	make_tmpdir tmp
	rack_dpdk_port "$tmp" "${MODE%%-*}"
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	if [[ $MODE == *-faults || $MODE == *-disconnect ]]; then
		VRIO_FAULTS="drop=0.05,duplicate=0.01,reorder=0.02,seed=$seed"
		[[ $MODE == *-disconnect ]] && VRIO_FAULTS+=",disconnect_after=3000"
		export VRIO_FAULTS
		log "VRIO_FAULTS=$VRIO_FAULTS"
	fi
	rack_up "$tmp" "$build"
	grep -q "dpdk: port 0 (net_" "$VRIO_IO_LOG" || rack_fail "the io-server opened no DPDK port"

	t0=$SECONDS
	bench --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$seed" --verify --state "$tmp/a.state" ||
		rack_fail "random writes over dpdk/$MODE failed"
	bench --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$((seed + 1))" --verify \
		--state "$tmp/a.state" || rack_fail "random reads over dpdk/$MODE did not verify"
	log "40,000 verified requests in $((SECONDS - t0)) s"

	rack_check_metrics "$tmp"
	retx=$(metric_sum 'vrio_localhv_upstream_retransmits_total' <"$tmp/hv.metrics")
	log "local-hv retransmitted $retx frames"
	if [[ -n ${VRIO_FAULTS:-} ]]; then
		((retx > 0)) || rack_fail "no retransmissions: were faults injected at all?"
	fi
	cuts=$(metric_sum 'vrio_localhv_upstream_disconnects_total' <"$tmp/hv.metrics")
	if [[ $MODE == *-disconnect ]]; then
		((cuts >= 1)) || rack_fail "the connection was not cut"
		[[ $(metric_sum 'vrio_localhv_upstream_connects_total' <"$tmp/hv.metrics") -gt $cuts ]] ||
			rack_fail "local-hv did not reconnect"
	else
		((cuts == 0)) || rack_fail "the connection dropped"
	fi
	rack_alive
	rack_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/blk-dpdk-$MODE"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
