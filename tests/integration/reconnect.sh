#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# reconnect.sh BUILD_DIR: the io-server dies under load and comes back.
# While it is gone local-hv shows disk-a as unreachable.
# vrio-bench writes with verification state on disk-a while vrio-ioserver
# is killed (SIGKILL: no drain) and restarted; vrio-localhv must reconnect,
# re-attach and send the requests that were in flight again, so the run
# completes without an error. A second run reads everything back and
# verifies it, and the backing file is checked.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

# hv_state_is STATE: disk-a's state in local-hv's `vrioctl devices`.
hv_state_is() {
	[[ $("$VRIOCTL" --socket "$VRIO_HV_CTL" --timeout 2 devices 2>/dev/null |
		awk '$1 == "disk-a" { print $3 }') == "$1" ]]
}

main() {
	local build tmp seed bpid rc=0 resent
	build=$(cd "$1" && pwd)
	VRIOCTL=$build/tools/vrioctl
	[[ -x $VRIOCTL ]] || skip "vrioctl not built in $build"
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	rack_up "$tmp" "$build"

	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--runtime 6 --timeout 20000 --seed "$seed" --verify --state "$tmp/a.state" \
		>"$tmp/writes.log" 2>&1 &
	bpid=$!
	track_pid "$bpid" "vrio-bench writes"
	sleep 2
	log "killing vrio-ioserver (pid $VRIO_IO_PID) under load"
	stop_pid "$VRIO_IO_PID" 5 KILL || true
	# Closed, then refused: shown as such, not as a hang.
	wait_until 5 hv_state_is unreachable ||
		rack_fail "local-hv does not show disk-a unreachable while the io-server is gone"
	sleep 1
	start_daemon VRIO_IO_PID vrio-ioserver "$tmp/ioserver2.log" \
		"$VRIO_IOSERVER_BIN" --config "$VRIO_TOPO" --node io0
	VRIO_IO_LOG=$tmp/ioserver2.log
	wait_for_port "${VRIO_IO_LISTEN##*:}" 20 "$VRIO_IO_PID" || rack_fail "io-server did not come back"

	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	cat "$tmp/writes.log"
	((rc == 0)) || rack_fail "writes across the restart failed"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 16 --count 20000 \
		--seed "$((seed + 1))" --verify --state "$tmp/a.state" ||
		rack_fail "data written across the restart does not read back"

	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$tmp/hv.metrics" || rack_fail "hv metrics"
	[[ $(metric_sum 'vrio_localhv_upstream_disconnects_total' <"$tmp/hv.metrics") -ge 1 ]] ||
		rack_fail "local-hv did not count the disconnect"
	resent=$(metric_sum 'vrio_localhv_upstream_resent_total' <"$tmp/hv.metrics")
	log "requests sent again after the reconnect: $resent"

	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/reconnect"
}

lib_traps
main "$@"
