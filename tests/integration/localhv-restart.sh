#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# localhv-restart.sh BUILD_DIR: vrio-localhv killed (SIGKILL) twice under
# verified writes and started again, with vrio-bench playing a VMM with
# reconnect=1 (--reconnect: it keeps the inflight region and hands it to
# the new local-hv, with the same memory and rings).
#
#   1. vrio-bench writes at queue depth 24 on two queues of disk-a,
#      verifying what it reads back later (--state);
#   2. twice: the io-server's test hook (bdev_fault hold_ms) holds back
#      the next answer; once it holds one and has answered 8 more after it,
#      local-hv is killed, so completions are out of order at the kill; it
#      is started again, the bench reconnects, and the new local-hv sends
#      again what the region lists as in flight (it logs so, and counts it
#      in vrio_localhv_inflight_resubmitted_total);
#   3. the run ends with 0 errors, 0 verify failures and 2 reconnects;
#      a second run reads everything back and verifies it, and the backing
#      file holds what was written last.
#
# Without the region, the held request would never be answered (the
# bench's run times out) and the ones answered after it would be taken
# again from the used index.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

HOLD_MS=3000
AFTER=8
KILLS=2
REQUESTS_METRIC='vrio_ioserver_requests_total{device="disk-a"'
RESUBMITTED_METRIC='vrio_localhv_inflight_resubmitted_total{device="disk-a"}'

io_requests() {
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$TMP/io.metrics" >/dev/null || return 1
	metric_sum "$REQUESTS_METRIC" <"$TMP/io.metrics"
}
held_count() { grep -ac 'test hook: holding back the answer to request' "$VRIO_IO_LOG" || true; }
released_count() { grep -ac 'test hook: answer to request .* released' "$VRIO_IO_LOG" || true; }
holding() { (($(held_count) >= HELD)); }
answered_after() { local n; n=$(io_requests) && ((n >= HELD_AT + AFTER)); }
resubmit_line() { grep -a 'sent again the .* left in flight (inflight region)' "$VRIO_HV_LOG" || true; }
resubmitting() { [[ -n $(resubmit_line) ]]; }
reconnected() { [[ $(grep -c 'reconnecting' "$TMP/writes.log") -ge $1 ]]; }

main() {
	local build seed bpid rc=0 k n metric total=0 line
	build=$(cd "$1" && pwd)
	VRIOCTL=$build/tools/vrioctl
	[[ -x $VRIOCTL ]] || skip "vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrio-bench's JSON"
	make_tmpdir TMP
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $TMP"
	rack_up "$TMP" "$build"

	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 24 --queues 2 \
		--size 8M --runtime 20 --timeout 30000 --seed "$seed" --verify \
		--state "$TMP/a.state" --reconnect --json >"$TMP/writes.json" 2>"$TMP/writes.log" &
	bpid=$!
	track_pid "$bpid" "vrio-bench writes"
	sleep 1
	HELD=0
	for ((k = 1; k <= KILLS; k++)); do
		HELD=$((HELD + 1))
		"$VRIOCTL" --socket "$VRIO_IO_CTL" call bdev_fault \
			"{\"device\": \"disk-a\", \"hold_ms\": $HOLD_MS}" >/dev/null ||
			rack_fail "bdev_fault hold_ms"
		wait_until 10 holding || rack_fail "the io-server held back no answer"
		HELD_AT=$(io_requests) || rack_fail "io-server metrics unavailable"
		wait_until 5 answered_after || rack_fail "fewer than $AFTER answers after the held one"
		(($(released_count) < HELD)) ||
			rack_fail "the hold ran out before the kill: the machine is too slow for $HOLD_MS ms"
		stop_pid "$VRIO_HV_PID" 5 KILL || true
		log "killed vrio-localhv ($k of $KILLS) with an answer held and $AFTER or more after it"
		mv "$VRIO_HV_LOG" "$TMP/localhv.killed-$k.log"
		start_daemon VRIO_HV_PID vrio-localhv "$VRIO_HV_LOG" \
			"$VRIO_LOCALHV_BIN" --config "$VRIO_TOPO" --node host0
		wait_until 30 resubmitting ||
			rack_fail "the new vrio-localhv sent nothing again from the inflight region"
		wait_until 10 reconnected "$k" || rack_fail "vrio-bench did not reconnect"
		line=$(resubmit_line)
		log "local-hv $((k + 1)): $line"
		# One line per queue: a queue's requests are sent again once.
		[[ -z $(sed -n 's/.*: queue \([0-9]*\): sent again.*/\1/p' <<<"$line" | sort | uniq -d) ]] ||
			rack_fail "the region's requests were sent more than once"
		n=$(sed -n 's/.*sent again the \([0-9]*\) request(s).*/\1/p' <<<"$line" |
			awk '{ s += $1 } END { print s + 0 }')
		vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$TMP/hv.metrics" || rack_fail "hv metrics"
		metric=$(metric_sum "$RESUBMITTED_METRIC" <"$TMP/hv.metrics")
		((metric == n && n >= 1)) || rack_fail "local-hv counted $metric resubmitted, logged $n"
		total=$((total + metric))
		wait_until 10 eval '(($(released_count) >= HELD))' ||
			rack_fail "the held answer was never released"
	done

	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	cat "$TMP/writes.log" >&2
	((rc == 0)) || rack_fail "writes across the restarts failed (status $rc)"
	[[ $(json "$TMP/writes.json" "j['errors']") == 0 ]] || rack_fail "errors"
	[[ $(json "$TMP/writes.json" "j['verify_failures']") == 0 ]] || rack_fail "verify failures"
	[[ $(json "$TMP/writes.json" "j['reconnects']") == "$KILLS" ]] ||
		rack_fail "vrio-bench reconnected $(json "$TMP/writes.json" "j['reconnects']") times, not $KILLS"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 16 --size 8M \
		--count 20000 --seed "$((seed + 1))" --verify --state "$TMP/a.state" --quiet ||
		rack_fail "data written across the restarts does not read back"
	! grep -a 'guest error' "$VRIO_HV_LOG" || rack_fail "the new vrio-localhv broke the device"
	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$TMP/a.state" ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/localhv-restart ($(json "$TMP/writes.json" "j['ops']") writes," \
		"$total request(s) sent again from the inflight region over $KILLS kills)"
}

lib_traps
main "$@"
