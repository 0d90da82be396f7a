#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-vrio-restart.sh BUILD_DIR: vrio-localhv killed (SIGKILL) under a QEMU
# guest while a request it sent is held back and later ones have been
# answered, then started again: the guest never sees it.
#
#   1. vrio-ioserver and vrio-localhv as in blk-vrio.sh; a TCG guest whose
#      vhost-user-blk chardev has reconnect=1 runs four writers at once
#      (guest-io loop-verify over four ranges: each pass writes its range
#      with a new pattern and reads it back);
#   2. once the writers pass, the io-server's test hook (bdev_fault
#      hold_ms) holds back the next answer from the backend for 6 s; once
#      it holds one and has answered 8 more after it, vrio-localhv is
#      killed: completions are out of order at the kill;
#   3. the hold runs out (its answer goes nowhere), vrio-localhv starts
#      again, QEMU reconnects and hands it the inflight region;
#   4. the new vrio-localhv sends again exactly the heads the region lists
#      as in flight, the held request's head among them, each once
#      (vrio_localhv_inflight_resubmitted_total is the count it logged);
#   5. every writer's passes verify, the guest logged no I/O error, and
#      the backing file holds each range's last pattern.
#
# Without the region QEMU restarts the ring from the guest's used index:
# the held request would never be answered (its writer hangs until the
# guest's timeout) and one answered after it would be taken again.
#
# Exits 77 (SKIP) when the daemons are not built, or QEMU or the guest
# kernel package is unavailable. VRIO_SEED and VRIO_KEEP_TMP as in
# blk-qsd.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

OFF=$((4 << 20))
LEN=$((256 << 10))
WRITERS=4
SECS=20
HOLD_MS=6000
AFTER=8		# answers after the held one before the kill
REQUESTS_METRIC='vrio_ioserver_requests_total{device="vm1-disk"'
RESUBMITTED_METRIC='vrio_localhv_inflight_resubmitted_total{device="vm1-disk"}'

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	[[ -n ${OLD_HV_LOG:-} ]] && show_log "the killed vrio-localhv" "$OLD_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	[[ -n ${CONSOLE:-} && -f $CONSOLE ]] && { log "--- guest console ---"; tail -n 30 "$CONSOLE" >&2; }
	[[ -n ${CONSOLE:-} && -f $CONSOLE.qemu ]] && { log "--- QEMU ---"; tail -n 20 "$CONSOLE.qemu" >&2; }
	die "$*"
}

io_requests() {
	local out=$TMP/io.metrics
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$out" >/dev/null || return 1
	metric_sum "$REQUESTS_METRIC" <"$out"
}

held_line() { grep -a 'test hook: holding back the answer to request' "$VRIO_IO_LOG" || true; }
released() { grep -qa 'test hook: answer to request .* released' "$VRIO_IO_LOG"; }
passing() { grep -qa "^VRIO-PASS: " "$CONSOLE" 2>/dev/null; }
answered_after() { local n; n=$(io_requests) && ((n >= HELD_AT + AFTER)); }
resubmit_line() { grep -a 'sent again the .* left in flight (inflight region)' "$VRIO_HV_LOG" || true; }
holding() { [[ -n $(held_line) ]]; }
resubmitting() { [[ -n $(resubmit_line) ]]; }

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build_dir guest seed gpid line id head heads n metric k file_line last grc=0
	build_dir=$(mkdir -p "$1" && cd "$1" && pwd)
	vrio_binaries "$build_dir" || skip "daemons not built ($VRIO_IOSERVER_BIN, $VRIO_LOCALHV_BIN)"
	VRIOCTL=$build_dir/tools/vrioctl
	[[ -x $VRIOCTL ]] || skip "vrioctl not built"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"

	guest=$build_dir/tests/e2e/guest
	guest_image "$guest"
	make_tmpdir TMP
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $TMP"
	CONSOLE=$TMP/console.log

	vrio_up "$TMP"
	bash "$VRIO_ROOT/tests/e2e/run-guest.sh" --socket "$VRIO_SOCK" --kernel-dir "$guest" \
		--run blk-writers --off "$OFF" --len "$LEN" --seed "$seed" --queues 1 --smp 1 \
		--param "secs=$SECS" --param "writers=$WRITERS" --reconnect --timeout 300 \
		--log "$CONSOLE" >"$TMP/results" &
	gpid=$!
	track_pid "$gpid" run-guest.sh

	wait_until 120 passing || fail "the guest's writers never passed"
	HELD_AT=$(io_requests) || fail "io-server metrics unavailable"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" call bdev_fault \
		"{\"device\": \"vm1-disk\", \"hold_ms\": $HOLD_MS}" >/dev/null || fail "bdev_fault hold_ms"
	wait_until 20 holding || fail "the io-server held back no answer"
	HELD_AT=$(io_requests) || fail "io-server metrics unavailable"
	line=$(held_line)
	id=$(sed -n 's/.*answer to request \(0x[0-9a-f]*\).*/\1/p' <<<"$line")
	head=$((id & 0xffff))
	log "held: $line"
	wait_until 5 answered_after || fail "fewer than $AFTER answers after the held one"
	released && fail "the hold ran out before the kill: the machine is too slow for $HOLD_MS ms"

	kill -KILL "$VRIO_HV_PID"
	wait "$VRIO_HV_PID" 2>/dev/null || true
	untrack_pid "$VRIO_HV_PID"
	log "vrio-localhv killed with $(($(io_requests) - HELD_AT)) answers after the held request (head $head)"
	wait_until 20 released || fail "the held answer was never released"

	OLD_HV_LOG=$TMP/localhv.killed.log
	mv "$VRIO_HV_LOG" "$OLD_HV_LOG"
	start_daemon VRIO_HV_PID vrio-localhv "$VRIO_HV_LOG" \
		"$VRIO_LOCALHV_BIN" --config "$VRIO_TOPO" --node host0
	wait_until 60 resubmitting ||
		fail "the new vrio-localhv sent nothing again from the inflight region"

	wait "$gpid" || grc=$?
	untrack_pid "$gpid"
	cat "$TMP/results"
	((grc == 0)) || fail "guest run failed"

	line=$(resubmit_line)
	log "resubmitted: $line"
	[[ $(wc -l <<<"$line") -eq 1 ]] || fail "the region's requests were sent more than once"
	heads=" ${line##*heads} "
	[[ $heads == *" $head "* ]] || fail "the held request (head $head) was not sent again"
	n=$(sed -n 's/.*sent again the \([0-9]*\) request(s) the last backend left.*/\1/p' <<<"$line")
	[[ $(wc -w <<<"$heads") -eq $n ]] || fail "heads listed differ from the count"
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$TMP/localhv.metrics" || fail "local-hv metrics"
	metric=$(metric_sum "$RESUBMITTED_METRIC" <"$TMP/localhv.metrics")
	((metric == n)) || fail "local-hv counted $metric resubmitted, logged $n"
	[[ $(held_line | wc -l) -eq 1 ]] || fail "the io-server held more than one answer"
	! grep -a 'guest error' "$VRIO_HV_LOG" || fail "the new vrio-localhv broke the device"

	! grep -aiE 'I/O error|blk_update_request|timed out|hung_task' "$CONSOLE" ||
		fail "the guest saw an I/O error"
	for ((k = 0; k < WRITERS; k++)); do
		line=$(grep -a "^VRIO-RESULT: loop-verify dev=.* off=$((OFF + k * LEN)) " "$TMP/results") ||
			fail "no result from writer $k"
		last=$(result_field "$line" last_seed)
		file_line=$(check_file "$guest/guest-io" "$VRIO_DISK" $((OFF + k * LEN)) "$LEN" "$last") ||
			fail "backing file check of writer $k failed: $file_line"
	done
	log "QEMU said: $(grep -a 'vhost' "$CONSOLE.qemu" | sort | uniq -c | tr -s ' ' | paste -sd ';' || true)"
	vrio_down || die "a daemon did not stop cleanly"
	echo "PASS: e2e/blk-vrio-restart ($n request(s) sent again, the held one among them)"
}

lib_traps
main "$@"
