#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# heartbeat.sh BUILD_DIR: a hung peer is found, not only a closed one.
# vrio-bench runs verified random reads and writes on disk-a while
#   1. the io-server is stopped (SIGSTOP) for 3 s,
#   2. then for 12 s (local-hv keeps reconnecting into the hung server),
#   3. then local-hv is stopped for 3 s (the io-server's side).
# In 1 and 2 local-hv must declare the io-server dead within dead_after
# (1500 ms here, from io0's heartbeat:) plus a margin, not before, and
# show disk-a as dead in `vrioctl devices` and in its metrics; after
# SIGCONT it must reconnect and attach again. In 3 the io-server must
# close the silent connection and count it. The run ends with no error
# and no verify failure; everything written reads back and the backing
# file holds it. Prints the detection and recovery times.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

DEAD_AFTER_MS=1500
INTERVAL_MS=100
# What the test adds to the daemon's verdict: polling vrioctl on a loaded
# 2-core machine.
MARGIN_MS=1000
# How late a daemon's own timer may fire on such a machine (a sanitizer
# build included): its verdict comes after dead_after, and by this much
# at most.
VERDICT_LATE_MS=500
STOPPED_PID=

# A stopped daemon ignores SIGTERM: resume it before lib_cleanup stops it.
# Without errexit here, or the `(exit rc)` that hands lib_cleanup the
# script's status would end the trap before the daemons are stopped.
hb_cleanup() {
	local rc=$?
	set +e
	[[ -n $STOPPED_PID ]] && kill -CONT "$STOPPED_PID" 2>/dev/null
	(exit "$rc")
	lib_cleanup
}

# dev_state SOCKET DEVICE: the device's state in `vrioctl devices` (the
# table: polled every few ms, so no interpreter to start each time).
dev_state() {
	"$VRIOCTL" --socket "$1" --timeout 2 devices 2>/dev/null |
		awk -v d="$2" '$1 == d { print $3 }'
}

# sleep_until_ms T: sleeps until now_ms reaches T (at once if it has).
sleep_until_ms() {
	local left=$(($1 - $(now_ms)))
	((left > 0)) || return 0
	sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
}

hv_state_is() { [[ $(dev_state "$VRIO_HV_CTL" disk-a) == "$1" ]]; }
io_state_is_not() { [[ $(dev_state "$VRIO_IO_CTL" disk-a) != "$1" ]]; }

# stop_io SECONDS: SIGSTOP the io-server, time local-hv's verdict, check
# what it shows, SIGCONT after SECONDS, time the recovery.
stop_io() {
	local secs=$1 t0 t_dead t_cont t_back dead_ms back_ms before silence
	before=$(metric_sum 'vrio_localhv_upstream_heartbeat_timeouts_total' < <(hv_metrics))
	t0=$(now_ms)
	kill -STOP "$VRIO_IO_PID"
	STOPPED_PID=$VRIO_IO_PID
	log "io-server (pid $VRIO_IO_PID) stopped for ${secs}s under load"
	wait_until 10 hv_state_is dead || rack_fail "local-hv never showed disk-a as dead"
	t_dead=$(now_ms)
	dead_ms=$((t_dead - t0))
	silence=$(grep -o 'sent nothing for [0-9]* ms: declared dead' "$VRIO_HV_LOG" | tail -n1 |
		awk '{ print $4 }')
	log "local-hv showed disk-a dead $dead_ms ms after SIGSTOP; its verdict: silent for" \
		"$silence ms (dead_after ${DEAD_AFTER_MS} ms)"
	((silence >= DEAD_AFTER_MS && silence <= DEAD_AFTER_MS + VERDICT_LATE_MS)) ||
		rack_fail "local-hv's verdict came after $silence ms of silence"
	((dead_ms >= DEAD_AFTER_MS - 2 * INTERVAL_MS)) ||
		rack_fail "declared dead after $dead_ms ms, before dead_after"
	((dead_ms <= DEAD_AFTER_MS + MARGIN_MS)) ||
		rack_fail "declared dead after $dead_ms ms, later than dead_after + ${MARGIN_MS} ms"
	hv_metrics >"$RUN/hv-dead.metrics"
	[[ $(metric_sum 'vrio_localhv_device_state{device="disk-a",state="dead"}' \
		<"$RUN/hv-dead.metrics") == 1 ]] || rack_fail "metrics do not show disk-a dead"
	[[ $(metric_sum 'vrio_localhv_device_state{device="disk-a",state="attached"}' \
		<"$RUN/hv-dead.metrics") == 0 ]] || rack_fail "metrics still show disk-a attached"
	[[ $(metric_sum 'vrio_localhv_upstream_dead{io_server="io0"}' <"$RUN/hv-dead.metrics") == 1 ]] ||
		rack_fail "metrics do not show io0 dead"
	[[ $(metric_sum 'vrio_localhv_upstream_up{io_server="io0"}' <"$RUN/hv-dead.metrics") == 0 ]] ||
		rack_fail "metrics show io0 up while it is dead"
	[[ $(metric_sum 'vrio_localhv_upstream_heartbeat_timeouts_total' <"$RUN/hv-dead.metrics") -gt \
		$before ]] || rack_fail "the heartbeat timeout was not counted"
	sleep_until_ms $((t0 + secs * 1000))
	hv_state_is dead || rack_fail "disk-a is no longer shown dead while the io-server is stopped"
	t_cont=$(now_ms)
	kill -CONT "$VRIO_IO_PID"
	STOPPED_PID=
	wait_until 10 hv_state_is attached || rack_fail "disk-a did not attach again after SIGCONT"
	t_back=$(now_ms)
	back_ms=$((t_back - t_cont))
	log "io-server resumed after $((t_cont - t0)) ms; disk-a attached again $back_ms ms later"
	echo "io-${secs}s $dead_ms $silence $back_ms" >>"$RUN/times"
}

hv_metrics() {
	http_get "$VRIO_HV_METRICS" /metrics
}

# stop_hv SECONDS: SIGSTOP local-hv; the io-server must close the silent
# connection (disk-a no longer attached there) within dead_after + margin.
stop_hv() {
	local secs=$1 t0 ms silence
	t0=$(now_ms)
	kill -STOP "$VRIO_HV_PID"
	STOPPED_PID=$VRIO_HV_PID
	log "local-hv (pid $VRIO_HV_PID) stopped for ${secs}s under load"
	wait_until 10 io_state_is_not attached ||
		rack_fail "the io-server never let go of the stopped host's device"
	ms=$(($(now_ms) - t0))
	silence=$(grep -o 'sent nothing for [0-9]* ms: declared dead' "$VRIO_IO_LOG" | tail -n1 |
		awk '{ print $4 }')
	log "the io-server let go of disk-a $ms ms after SIGSTOP; its verdict: silent for" \
		"${silence:-?} ms"
	((ms >= DEAD_AFTER_MS - 2 * INTERVAL_MS && ms <= DEAD_AFTER_MS + MARGIN_MS)) ||
		rack_fail "the io-server's verdict took $ms ms (dead_after ${DEAD_AFTER_MS} ms)"
	((silence >= DEAD_AFTER_MS && silence <= DEAD_AFTER_MS + VERDICT_LATE_MS)) ||
		rack_fail "the io-server's verdict came after ${silence:-?} ms of silence"
	sleep_until_ms $((t0 + secs * 1000))
	kill -CONT "$VRIO_HV_PID"
	STOPPED_PID=
	wait_until 10 hv_state_is attached || rack_fail "disk-a did not attach again"
	echo "hv-${secs}s $ms $silence -" >>"$RUN/times"
}

main() {
	local build seed bpid rc=0 resent
	build=$(cd "$1" && pwd)
	make_tmpdir RUN
	VRIOCTL=$build/tools/vrioctl
	[[ -x $VRIOCTL ]] || skip "vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrio-bench's JSON"
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	# shellcheck disable=SC2034 # read by rack_up
	RACK_IO_HEARTBEAT="interval_ms: $INTERVAL_MS, dead_after_ms: $DEAD_AFTER_MS"
	rack_up "$RUN" "$build"
	wait_until 10 hv_state_is attached || rack_fail "disk-a never attached"

	# A request may wait out a 12 s hang: the timeout is longer.
	"$BENCH" --socket "$RACK_SOCK_A" --rw randrw --bs 4096 --iodepth 16 --queues 2 \
		--runtime 32 --timeout 30000 --seed "$seed" --verify --state "$RUN/a.state" \
		--json >"$RUN/load.json" 2>"$RUN/load.log" &
	bpid=$!
	track_pid "$bpid" "vrio-bench load"
	sleep 2
	stop_io 3
	sleep 2
	stop_io 12
	sleep 2
	stop_hv 3

	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	cat "$RUN/load.log" >&2
	((rc == 0)) || rack_fail "the load across the hangs failed (status $rc)"
	[[ $(json "$RUN/load.json" "j['errors']") == 0 ]] || rack_fail "the load saw errors"
	[[ $(json "$RUN/load.json" "j['verify_failures']") == 0 ]] ||
		rack_fail "the load saw verify failures"
	log "load: $(json "$RUN/load.json" "j['ops']") requests, $(json "$RUN/load.json" \
		"j['verified']") reads verified, 0 errors, 0 verify failures"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 16 --count 20000 \
		--seed "$((seed + 1))" --verify --state "$RUN/a.state" >"$RUN/readback.log" 2>&1 ||
		rack_fail "data written across the hangs does not read back: $(cat "$RUN/readback.log")"

	rack_check_metrics "$RUN"
	resent=$(metric_sum 'vrio_localhv_upstream_resent_total' <"$RUN/hv.metrics")
	log "requests sent again after the reconnects: $resent"
	[[ $(metric_sum 'vrio_localhv_upstream_heartbeat_timeouts_total' <"$RUN/hv.metrics") -ge 2 ]] ||
		rack_fail "local-hv counted fewer than two heartbeat timeouts"
	[[ $(metric_sum 'vrio_ioserver_heartbeat_timeouts_total{host="host0"}' \
		<"$RUN/io.metrics") -ge 1 ]] || rack_fail "the io-server did not count the silent host"
	[[ $(metric_sum 'vrio_localhv_upstream_dead' <"$RUN/hv.metrics") == 0 ]] ||
		rack_fail "io0 still shown dead"
	grep -q 'sent nothing for .* ms: declared dead' "$VRIO_HV_LOG" ||
		rack_fail "local-hv logged no line naming the dead io-server"

	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$RUN/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	log "stopped  shown_after_ms  silent_at_verdict_ms  attached_again_ms"
	while read -r what dead silence back; do
		log "$(printf '%-8s %-15s %-21s %s' "$what" "$dead" "$silence" "$back")"
	done <"$RUN/times"
	echo "PASS: integration/heartbeat"
}

trap hb_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
