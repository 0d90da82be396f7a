#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# failover.sh BUILD_DIR: standby failover with lease-based fencing. Two
# io-servers on loopback (tcp), io0 and io1, serve one file; disk-a names
# io0 as its io_server and io1 as its standby. vrio-bench writes at random
# over a 1 MiB region (so that every block is written again and again, and
# a late write of old data cannot hide), verified, through a throttle that
# keeps requests queued in the io-server, while
#   1. io0 is stopped (SIGSTOP): local-hv must move disk-a to io1 once
#      io0's lease has lapsed; the longest request is the stall the guest
#      saw (printed against the 2 s goal; the test fails only far past it), and
#      no request fails;
#   2. io0 is resumed (SIGCONT) once io1 has written the region over: it
#      must execute none of the writes it held (it counts them as fenced,
#      and the region reads back as last written through io1). The one
#      exception is lease.h's window: a write io0 had handed to the kernel
#      before the stop, which an io_uring worker (stopped with io0) lands
#      at the SIGCONT. io0 must report each such write (log line with its
#      sector, vrio_ioserver_late_writes_total), and every block that does
#      not read back as last written must be one it reported;
#   3. io1 is killed (kill -9): disk-a fails back to io0, no error;
#   4. io1 is started again, and `vrioctl move` takes disk-a to io1 and
#      back to io0 under load, no error.
# Finally everything written reads back, and the backing file holds it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

DEAD_AFTER_MS=1000
INTERVAL_MS=100
# The goal is a takeover within 2 s of the failure: printed, as a figure.
# The test fails only past STALL_FAIL_MS, which no takeover reaches on a
# working build (the bench's own timeout is 20 s): on a loaded 2-core
# machine (a sanitizer build, another job's load) every thread gets a
# fraction of a core and a correct takeover took 3.5-5 s.
STALL_LIMIT_MS=2000
STALL_FAIL_MS=10000
REGION=1M
# A throttle keeps requests queued inside the io-server (in a closed loop
# at queue depth 16 they are otherwise mostly at the backend or answered),
# so that the stopped io-server holds some when it wakes.
IOPS=1000
STOPPED_PID=

fo_cleanup() {
	local rc=$?
	set +e
	[[ -n $STOPPED_PID ]] && kill -CONT "$STOPPED_PID" 2>/dev/null
	(exit "$rc")
	lib_cleanup
}

fail() {
	show_log vrio-localhv "$HV_LOG"
	show_log "vrio-ioserver io0" "$IO0_LOG"
	show_log "vrio-ioserver io1" "$IO1_LOG"
	die "$*"
}

# served_by: the io-server local-hv shows disk-a on, and its state.
served_by() {
	"$VRIOCTL" --socket "$HV_CTL" --timeout 2 devices 2>/dev/null |
		awk '$1 == "disk-a" { print $5, $3 }'
}
attached_on() { [[ $(served_by) == "$1 attached" ]]; }
# io0 no longer has disk-a attached: what it held has been dealt with.
io0_let_go() {
	"$VRIOCTL" --socket "$IO0_CTL" --timeout 2 devices 2>/dev/null |
		awk '$1 == "disk-a" { print $3 }' | grep -qx detached
}

hv_metrics() { http_get "$HV_METRICS" /metrics; }
upstream_up() {
	[[ $(hv_metrics | metric_sum "vrio_localhv_upstream_up{io_server=\"$1\"}") == 1 ]]
}

write_topo() {
	cat >"$TOPO" <<EOT
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $IO0_LISTEN
    metrics: $IO0_METRICS
    control: $IO0_CTL
    cores: {min: 1, max: 1}
    heartbeat: {interval_ms: $INTERVAL_MS, dead_after_ms: $DEAD_AFTER_MS}
  - name: io1
    transport: tcp
    listen: $IO1_LISTEN
    metrics: $IO1_METRICS
    control: $IO1_CTL
    cores: {min: 1, max: 1}
    heartbeat: {interval_ms: $INTERVAL_MS, dead_after_ms: $DEAD_AFTER_MS}
hosts:
  - name: host0
    metrics: $HV_METRICS
    control: $HV_CTL
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    standby: io1
    socket: $SOCK
    queues: 2
    backend: {file: $DISK, size: 64M}
    interpose:
      - throttle: {iops: $IOPS}
EOT
}

# start_io NAME: starts io-server NAME, waits until it listens and answers.
start_io() {
	local name=$1 pid_var=${1^^}_PID listen_var=${1^^}_LISTEN ctl_var=${1^^}_CTL
	local log_var=${1^^}_LOG
	printf -v "$log_var" '%s' "$RUN/$name.log"
	start_daemon "$pid_var" "vrio-ioserver $name" "${!log_var}" \
		"$VRIO_IOSERVER_BIN" --config "$TOPO" --node "$name"
	wait_for_listen "${!listen_var}" 20 "${!pid_var}" || fail "$name is not listening"
	wait_for_socket "${!ctl_var}" 20 "${!pid_var}" || fail "$name has no control socket"
}

# load SECONDS TAG: verified random writes on the region in the background
# (BENCH_PID); the report goes to $RUN/TAG.json.
load() {
	"$BENCH" --socket "$SOCK" --rw randwrite --bs 4096 --iodepth 16 --queues 2 \
		--size "$REGION" --runtime "$1" --timeout 20000 --seed "$((SEED + ${#TAG_SEEN}))" \
		--verify --state "$RUN/a.state" --json >"$RUN/$2.json" 2>"$RUN/$2.log" &
	BENCH_PID=$!
	TAG_SEEN+=x
	track_pid "$BENCH_PID" "vrio-bench $2"
}

# load_done TAG: waits for the load; it must have run with no error.
load_done() {
	local rc=0
	untrack_pid "$BENCH_PID"
	wait "$BENCH_PID" || rc=$?
	((rc == 0)) || { cat "$RUN/$1.log" >&2; fail "$1: the load failed (status $rc)"; }
	[[ $(json "$RUN/$1.json" "j['errors']") == 0 ]] || fail "$1: the load saw errors"
	[[ $(json "$RUN/$1.json" "j['verify_failures']") == 0 ]] ||
		fail "$1: the load saw verify failures"
}

# read_back TAG: every block of the region reads as last written.
read_back() {
	"$BENCH" --socket "$SOCK" --rw randread --bs 4096 --iodepth 8 --size "$REGION" \
		--count 4096 --seed "$((SEED + 99))" --verify --state "$RUN/a.state" \
		>"$RUN/$1.log" 2>&1 || fail "$1: the region does not read back as written: $(cat "$RUN/$1.log")"
}

# read_back_seq TAG: one sequential pass over the region, verified; sets
# BAD to the number of blocks that did not read back as last written.
read_back_seq() {
	local rc=0
	"$BENCH" --socket "$SOCK" --rw read --bs 4096 --iodepth 8 --size "$REGION" \
		--verify --state "$RUN/a.state" --json >"$RUN/$1.json" 2>"$RUN/$1.log" || rc=$?
	BAD=$(json "$RUN/$1.json" "j['verify_failures']" 2>/dev/null) ||
		fail "$1: the read-back failed (status $rc): $(cat "$RUN/$1.log")"
	[[ $(json "$RUN/$1.json" "j['errors']") == 0 ]] ||
		fail "$1: the read-back saw errors: $(cat "$RUN/$1.log")"
}

# late_landed_only TAG LATE: each block the read-back TAG found stale is at
# a sector io0 logged as written late (after its lease), and there are no
# more of them than io0 counted.
late_landed_only() {
	local sector n=0
	((BAD <= $2)) ||
		fail "$1: $BAD block(s) do not read back as last written; io0 reported $2 late write(s): $(cat "$RUN/$1.log")"
	while read -r sector; do
		grep -q "disk-a: write at sector $sector (" "$IO0_LOG" ||
			fail "$1: sector $sector does not read back as last written, and io0 did not report a late write there: $(cat "$RUN/$1.log")"
		n=$((n + 1))
	done < <(grep -o 'verify: queue [0-9]* block [0-9]* (sector [0-9]*)' "$RUN/$1.log" |
		 grep -o '[0-9]*)$' | tr -d ')' | sort -u)
	((n == BAD || BAD > 10)) || fail "$1: $BAD stale block(s) but $n shown: $(cat "$RUN/$1.log")"
}

# stall TAG: the longest request of a load, in ms.
stall() { json "$RUN/$1.json" "int(j['lat_us']['max'] / 1000)"; }

check_stall() {
	local ms=$1 what=$2
	((ms <= STALL_FAIL_MS)) ||
		fail "$what: the guest waited $ms ms (goal ${STALL_LIMIT_MS} ms; a working takeover stays under ${STALL_FAIL_MS} ms even on a loaded machine)"
	if ((ms <= STALL_LIMIT_MS)); then
		log "$what: the guest waited $ms ms: within the ${STALL_LIMIT_MS} ms goal"
	else
		log "$what: the guest waited $ms ms: over the ${STALL_LIMIT_MS} ms goal (a loaded machine?)"
	fi
}

main() {
	local build p t0 t_moved moved_ms stall1 stall2 fenced late resent hv_inflight rc
	build=$(cd "$1" && pwd)
	make_tmpdir RUN
	vrio_binaries "$build" || skip "daemons not built in $build"
	VRIOCTL=$build/tools/vrioctl
	BENCH=$build/tools/vrio-bench
	[[ -x $VRIOCTL && -x $BENCH ]] || skip "vrioctl or vrio-bench not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrio-bench's JSON"
	SEED=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	TAG_SEEN=
	for p in IO0_LISTEN IO1_LISTEN IO0_METRICS IO1_METRICS HV_METRICS; do
		free_port "${p}_PORT"
		printf -v "$p" '127.0.0.1:%s' "$(eval echo "\$${p}_PORT")"
	done
	IO0_CTL=$RUN/io0.ctl
	IO1_CTL=$RUN/io1.ctl
	HV_CTL=$RUN/host0.ctl
	HV_LOG=$RUN/localhv.log
	IO0_LOG=$RUN/io0.log
	IO1_LOG=$RUN/io1.log
	TOPO=$RUN/topology.yaml
	DISK=$RUN/disk-a.img
	SOCK=$RUN/disk-a.sock
	write_topo
	log "seed $SEED"
	start_io io0
	start_io io1
	start_daemon HV_PID vrio-localhv "$HV_LOG" "$VRIO_LOCALHV_BIN" --config "$TOPO" --node host0
	wait_for_socket "$SOCK" 20 "$HV_PID" || fail "local-hv did not create $SOCK"
	wait_until 10 attached_on io0 || fail "disk-a never attached on io0 (shown: $(served_by))"

	# 1. io0 hangs under load.
	load 9 stop
	sleep 2
	t0=$(now_ms)
	kill -STOP "$IO0_PID"
	STOPPED_PID=$IO0_PID
	log "io0 (pid $IO0_PID) stopped under verified writes"
	wait_until 10 attached_on io1 || fail "disk-a did not move to io1 (shown: $(served_by))"
	t_moved=$(now_ms)
	moved_ms=$((t_moved - t0))
	hv_inflight=$(grep -o 'moved from io-server io0 to io1 ([^)]*); [0-9]* request' "$HV_LOG" |
		tail -n1 | grep -o '[0-9]* request' | cut -d' ' -f1)
	log "disk-a attached on io1 $moved_ms ms after SIGSTOP; ${hv_inflight:-?} request(s) were in flight"
	load_done stop
	stall1=$(stall stop)
	log "takeover: the longest request waited $stall1 ms"
	check_stall "$stall1" "SIGSTOP of io0"

	# 2. io0 wakes after io1 has written every block of the region again:
	# a late write of what io0 held would now read back as old data.
	load 4 wake
	load_done wake
	kill -CONT "$IO0_PID"
	STOPPED_PID=
	log "io0 resumed while io1 serves disk-a"
	wait_until 10 io0_let_go || fail "io0 never let go of disk-a after SIGCONT"
	http_get "$IO0_METRICS" /metrics >"$RUN/io0-wake.metrics" || fail "io0 metrics"
	fenced=$(metric_sum 'vrio_ioserver_fenced_requests_total{device="disk-a"}' <"$RUN/io0-wake.metrics")
	late=$(metric_sum 'vrio_ioserver_late_writes_total{device="disk-a"}' <"$RUN/io0-wake.metrics")
	read_back_seq readback-wake
	late_landed_only readback-wake "${late:-0}"
	log "io0 dropped $fenced late write(s) it held while stopped; its kernel landed $late it" \
		"had taken before the stop, $BAD of them over newer data; every other block reads back" \
		"as last written through io1"
	if ((BAD > 0)); then
		# Known stale now: written again, so that the later phases check
		# every block.
		"$BENCH" --socket "$SOCK" --rw write --bs 4096 --iodepth 8 --size "$REGION" \
			--verify --state "$RUN/a.state" >"$RUN/rewrite.log" 2>&1 ||
			fail "rewriting the region: $(cat "$RUN/rewrite.log")"
	fi
	# The throttle held requests in io0 when it stopped: each was dropped.
	((fenced >= 1)) || fail "io0 fenced none of the ${hv_inflight:-?} request(s) it held" 
	attached_on io1 || fail "disk-a left io1 when io0 woke (shown: $(served_by))"

	# 3. io1, now serving, is killed: back to io0.
	load 7 kill
	sleep 2
	t0=$(now_ms)
	kill -9 "$IO1_PID"
	wait "$IO1_PID" 2>/dev/null || true
	untrack_pid "$IO1_PID"
	log "io1 (pid $IO1_PID) killed under verified writes"
	wait_until 10 attached_on io0 || fail "disk-a did not fail back to io0 (shown: $(served_by))"
	log "disk-a attached on io0 $(($(now_ms) - t0)) ms after kill -9 of io1"
	load_done kill
	stall2=$(stall kill)
	log "failback: the longest request waited $stall2 ms"
	check_stall "$stall2" "kill -9 of io1"

	# 4. io1 again, and the operator's moves under load.
	start_io io1
	wait_until 10 upstream_up io1 || fail "local-hv did not connect to io1 again"
	load 8 move
	sleep 1
	rc=0
	"$VRIOCTL" --socket "$HV_CTL" --timeout 15 move disk-a io1 >"$RUN/move1.out" 2>&1 || rc=$?
	((rc == 0)) || fail "vrioctl move disk-a io1: $(cat "$RUN/move1.out")"
	log "$(cat "$RUN/move1.out")"
	attached_on io1 || fail "disk-a is not on io1 after the move (shown: $(served_by))"
	sleep 1
	"$VRIOCTL" --socket "$HV_CTL" --timeout 15 move disk-a io0 >"$RUN/move2.out" 2>&1 || rc=$?
	((rc == 0)) || fail "vrioctl move disk-a io0: $(cat "$RUN/move2.out")"
	log "$(cat "$RUN/move2.out")"
	attached_on io0 || fail "disk-a is not on io0 after the move back (shown: $(served_by))"
	load_done move
	"$VRIOCTL" --socket "$HV_CTL" --timeout 5 move disk-a io9 >"$RUN/move3.out" 2>&1 &&
		fail "a move to an io-server that is not disk-a's succeeded"
	read_back readback-end

	hv_metrics >"$RUN/hv.metrics" || fail "local-hv metrics"
	[[ $(metric_sum 'vrio_localhv_failovers_total{device="disk-a"}' <"$RUN/hv.metrics") == 2 ]] ||
		fail "local-hv did not count two moves to the standby (the failover and the move)"
	[[ $(metric_sum 'vrio_localhv_failbacks_total{device="disk-a"}' <"$RUN/hv.metrics") == 2 ]] ||
		fail "local-hv did not count two moves back (the failback and the move)"
	[[ $(metric_sum 'vrio_localhv_device_on_standby{device="disk-a"}' <"$RUN/hv.metrics") == 0 ]] ||
		fail "disk-a shown on its standby"
	resent=$(metric_sum 'vrio_localhv_upstream_resent_total' <"$RUN/hv.metrics")
	log "requests sent again to the other io-server: $resent"
	if have_cmd promtool; then
		promtool check metrics <"$RUN/hv.metrics" || fail "promtool rejects local-hv's exposition"
		http_get "$IO0_METRICS" /metrics | promtool check metrics ||
			fail "promtool rejects io0's exposition"
	fi

	pid_alive "$IO0_PID" || fail "io0 died"
	pid_alive "$HV_PID" || fail "local-hv died"
	vrio_stop vrio-localhv "$HV_PID" "$HV_LOG" || fail "local-hv did not stop cleanly"
	vrio_stop "vrio-ioserver io0" "$IO0_PID" "$IO0_LOG" || fail "io0 did not stop cleanly"
	vrio_stop "vrio-ioserver io1" "$IO1_PID" "$IO1_LOG" || fail "io1 did not stop cleanly"
	"$BENCH" --check-file "$DISK" --state "$RUN/a.state" ||
		die "the backing file does not hold what was written"
	log "takeover after SIGSTOP: attached on the standby after $moved_ms ms, longest request" \
		"$stall1 ms; failback after kill -9: longest request $stall2 ms; fenced late writes: $fenced"
	echo "PASS: integration/failover"
}

trap fo_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
