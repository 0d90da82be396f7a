#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# clean-stop.sh BUILD_DIR: SIGTERM on either daemon under verified load.
#
# 1. vrio-ioserver gets SIGTERM under random writes at QD 32 on a file
#    disk. It must exit 0 having answered every request it took before its
#    connections close: it logs how many were in flight at the stop, and
#    its goodbye tells local-hv how many it took on the connection, which
#    local-hv checks against the answers it received
#    (vrio_localhv_upstream_goodbye_unanswered_total stays 0). What it did
#    not take local-hv sends again to a new io-server on the same file,
#    and the load ends with no error and no verify failure.
# 2. vrio-localhv gets SIGTERM under the same load. It must exit 0 having
#    finished every request it took before the frontend's socket goes:
#    vrio-bench then finds no request in flight behind the used index
#    (lost_on_restore 0: a frontend that restarts its ring from there, as
#    QEMU does on reconnect, loses nothing), and what is still in flight
#    was never taken. A new local-hv serves the data back, verified.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

# hv_metric NAME: the sum of a local-hv metric.
hv_metric() {
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$TMP/hv.metrics" >/dev/null ||
		rack_fail "local-hv metrics"
	metric_sum "$1" <"$TMP/hv.metrics"
}

# flowing N: local-hv has sent more than N requests of disk-a.
flowing() {
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$TMP/flow.metrics" >/dev/null 2>&1 || return 1
	(($(metric_sum 'vrio_localhv_requests_total{device="disk-a"' <"$TMP/flow.metrics") > $1))
}

# field FILE NAME: a top-level number or boolean of vrio-bench's JSON.
field() {
	python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' \
		"$1" "$2"
}

io_stop() {
	local bpid rc=0 before taken took resent0 resent1 notice answered
	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--runtime 8 --timeout 20000 --seed "$SEED" --verify --state "$TMP/a.state" \
		--json >"$TMP/io-stop.json" 2>"$TMP/io-stop.err" &
	bpid=$!
	track_pid "$bpid" "vrio-bench (io-server stop)"
	before=$(hv_metric vrio_localhv_requests_total)
	wait_until 10 flowing "$((before + FLOW))" || rack_fail "no load flows on disk-a"
	resent0=$(hv_metric vrio_localhv_upstream_resent_total)
	log "SIGTERM to vrio-ioserver (pid $VRIO_IO_PID) under load"
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" ||
		rack_fail "vrio-ioserver did not exit 0 on SIGTERM"
	grep -E 'drain timed out|abandoning' "$VRIO_IO_LOG" &&
		rack_fail "the io-server abandoned requests at its stop"
	notice=$(grep -m1 'stopping: answered the' "$VRIO_IO_LOG") ||
		rack_fail "the io-server did not say goodbye after answering what it had taken"
	log "io-server: ${notice#*: }"
	answered=$(sed -E 's/.*answered the ([0-9]+) request.*/\1/' <<<"$notice")
	((answered > 0 || ${HELD:-0} == 0)) ||
		rack_fail "the throttled io-server had nothing in flight at its stop"
	grep -q 'closed by the peer after the goodbye' "$VRIO_IO_LOG" ||
		rack_fail "local-hv did not close first after the goodbye"
	wait_until 5 grep -q 'is stopping: it answered all' "$VRIO_HV_LOG" ||
		rack_fail "local-hv did not take the io-server's goodbye for a clean stop"
	notice=$(grep -m1 'is stopping: it answered all' "$VRIO_HV_LOG")
	log "local-hv: ${notice#*: }"
	took=$(sed -E 's/.*answered all ([0-9]+) request.*/\1/' <<<"$notice")
	taken=$(sed -E 's/.*; ([0-9]+) it did not take.*/\1/' <<<"$notice")
	[[ $(hv_metric vrio_localhv_upstream_goodbye_unanswered_total) == 0 ]] ||
		rack_fail "the io-server's goodbye claims answers local-hv never received"
	[[ $(hv_metric vrio_localhv_upstream_goodbyes_total) == 1 ]] ||
		rack_fail "local-hv did not count one goodbye"
	[[ $(hv_metric vrio_localhv_upstream_protocol_errors_total) == 0 ]] ||
		rack_fail "local-hv took the goodbye for a protocol error"

	start_daemon VRIO_IO_PID vrio-ioserver "$TMP/ioserver2.log" \
		"$VRIO_IOSERVER_BIN" --config "$VRIO_TOPO" --node io0
	VRIO_IO_LOG=$TMP/ioserver2.log
	wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID" ||
		rack_fail "the io-server did not come back"
	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	cat "$TMP/io-stop.err" >&2
	cat "$TMP/io-stop.json"
	((rc == 0)) || rack_fail "the load across the io-server's stop failed (status $rc)"
	[[ $(field "$TMP/io-stop.json" errors) == 0 &&
		$(field "$TMP/io-stop.json" verify_failures) == 0 ]] ||
		rack_fail "errors or verify failures across the io-server's stop"
	resent1=$(hv_metric vrio_localhv_upstream_resent_total)
	log "io-server stop: $answered request(s) in flight at SIGTERM answered before the goodbye," \
		"$took taken on the connection all answered, $taken not taken;" \
		"$((resent1 - resent0)) sent again to the new io-server"
	((resent1 - resent0 == taken)) ||
		rack_fail "local-hv sent again $((resent1 - resent0)) request(s), not the $taken the io-server had not taken"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 16 --count 20000 \
		--seed "$((SEED + 1))" --verify --state "$TMP/a.state" >"$TMP/read1.log" 2>&1 ||
		{ cat "$TMP/read1.log" >&2; rack_fail "data written across the io-server's stop does not read back"; }
}

hv_stop() {
	local bpid rc=0 before notice inflight lost late
	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--runtime 20 --timeout 20000 --seed "$((SEED + 2))" --verify --state "$TMP/a.state" \
		--json >"$TMP/hv-stop.json" 2>"$TMP/hv-stop.err" &
	bpid=$!
	track_pid "$bpid" "vrio-bench (local-hv stop)"
	before=$(hv_metric vrio_localhv_requests_total)
	wait_until 10 flowing "$((before + FLOW))" || rack_fail "no load flows on disk-a"
	log "SIGTERM to vrio-localhv (pid $VRIO_HV_PID) under load"
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" ||
		rack_fail "vrio-localhv did not exit 0 on SIGTERM"
	grep 'abandoned' "$VRIO_HV_LOG" && rack_fail "local-hv abandoned requests at its stop"
	notice=$(grep -m1 'stopping: finished the' "$VRIO_HV_LOG") ||
		rack_fail "local-hv did not finish what was in flight before closing"
	log "local-hv: ${notice#*: }"
	(($(sed -E 's/.*finished the ([0-9]+) request.*/\1/' <<<"$notice") > 0 || ${HELD:-0} == 0)) ||
		rack_fail "local-hv had nothing in flight at its stop under the throttle"
	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	cat "$TMP/hv-stop.err" >&2
	cat "$TMP/hv-stop.json"
	# The backend went away: vrio-bench fails the run, and says how.
	[[ $(field "$TMP/hv-stop.json" disconnected) == true ]] ||
		rack_fail "vrio-bench did not see local-hv go (status $rc)"
	[[ $(field "$TMP/hv-stop.json" errors) == 0 &&
		$(field "$TMP/hv-stop.json" verify_failures) == 0 &&
		$(field "$TMP/hv-stop.json" timeout) == false ]] ||
		rack_fail "errors, verify failures or timeouts before local-hv's stop"
	late=$(field "$TMP/hv-stop.json" answered_after_disconnect)
	inflight=$(field "$TMP/hv-stop.json" inflight_at_disconnect)
	lost=$(field "$TMP/hv-stop.json" lost_on_restore)
	log "local-hv stop: $late request(s) answered after the hang-up;" \
		"$inflight left in flight (never taken), $lost of them behind the used index"
	((late == 0)) || rack_fail "local-hv answered $late request(s) after its socket went"
	((lost == 0)) || rack_fail "$lost request(s) local-hv took were left without a used entry"

	start_daemon VRIO_HV_PID vrio-localhv "$TMP/localhv2.log" \
		"$VRIO_LOCALHV_BIN" --config "$VRIO_TOPO" --node host0
	VRIO_HV_LOG=$TMP/localhv2.log
	wait_for_socket "$RACK_SOCK_A" 20 "$VRIO_HV_PID" || rack_fail "local-hv did not come back"
	wait_for_socket "$VRIO_HV_CTL" 20 "$VRIO_HV_PID" || rack_fail "local-hv did not come back"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 16 --count 20000 \
		--seed "$((SEED + 3))" --verify --state "$TMP/a.state" >"$TMP/read2.log" 2>&1 ||
		{ cat "$TMP/read2.log" >&2; rack_fail "data written before local-hv's stop does not read back"; }
}

# round NAME STAGE FLOW: a rack whose disk-a has STAGE (or none), both
# stops once load flows (FLOW requests sent), the file checked.
round() {
	local top=$TMP
	log "--- round: $1 ---"
	mkdir "$top/$1"
	TMP=$top/$1
	RACK_A_STAGE=$2
	FLOW=$3
	rack_up "$TMP" "$BUILD"
	io_stop
	hv_stop
	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	# Not --zero-unwritten: the writes vrio-bench had in flight when local-hv
	# went are unknown to its state, and their blocks hold older data.
	"$BENCH" --check-file "$RACK_DISK_A" --state "$TMP/a.state" ||
		die "the backing file does not hold what was written"
	TMP=$top
}

main() {
	BUILD=$(cd "$1" && pwd)
	make_tmpdir TMP
	SEED=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $SEED"
	# At full speed, whatever is in flight at the signal; then throttled to
	# 3000 IOPS, so that the io-server always holds about 32 requests, which
	# each stop must wait for.
	round full "" 5000
	HELD=1 round throttled "throttle: {iops: 3000}" 1000
	echo "PASS: integration/clean-stop"
}

lib_traps
main "$@"
