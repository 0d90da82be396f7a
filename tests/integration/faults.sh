#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# faults.sh BUILD_DIR [disconnect]: both daemons inject faults into every
# frame they send (VRIO_FAULTS: 5% dropped, 1% duplicated, 2% reordered,
# seeded), which stacks the reliable layer over TCP. 20,000 random 4 KiB
# writes with verification state, then 20,000 verified reads, then the
# backing file is checked: nothing lost, nothing corrupted. With
# `disconnect`, local-hv's first connection is also cut after 3,000 frames:
# it must reconnect, send what was in flight again, and end the same way.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

main() {
	local build tmp seed retx dups
	build=$(cd "$1" && pwd)
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	VRIO_FAULTS="drop=0.05,duplicate=0.01,reorder=0.02,seed=$seed"
	[[ ${2:-} == disconnect ]] && VRIO_FAULTS+=",disconnect_after=3000"
	export VRIO_FAULTS
	log "VRIO_FAULTS=$VRIO_FAULTS"
	rack_up "$tmp" "$build"

	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$seed" --verify --state "$tmp/a.state" ||
		rack_fail "random writes under faults failed"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$((seed + 1))" --verify \
		--state "$tmp/a.state" || rack_fail "random reads under faults did not verify"

	rack_check_metrics "$tmp"
	retx=$(metric_sum 'vrio_localhv_upstream_retransmits_total' <"$tmp/hv.metrics")
	dups=$(metric_sum 'vrio_localhv_upstream_duplicates_total' <"$tmp/hv.metrics")
	log "local-hv retransmitted $retx frames and discarded $dups duplicates"
	((retx > 0)) || rack_fail "no retransmissions: were faults injected at all?"
	# Both ends count their own connection: the wrapper's work below the
	# reliable layer, and the io-server's per host.
	[[ $(metric_sum 'vrio_localhv_upstream_injected_drops_total' <"$tmp/hv.metrics") -gt 0 ]] ||
		rack_fail "local-hv counts no injected drops"
	[[ $(metric_sum 'vrio_ioserver_connection_retransmits_total{host="host0"}' \
		<"$tmp/io.metrics") -gt 0 ]] || rack_fail "the io-server counts no retransmissions"
	[[ $(metric_sum 'vrio_ioserver_connection_frames_received_total{host="host0"}' \
		<"$tmp/io.metrics") -ge 40000 ]] || rack_fail "the io-server counts too few frames"
	if [[ ${2:-} == disconnect ]]; then
		[[ $(metric_sum 'vrio_localhv_upstream_disconnects_total' <"$tmp/hv.metrics") -ge 1 ]] ||
			rack_fail "the connection was not cut"
	fi
	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/faults${2:+-$2}"
}

lib_traps
main "$@"
