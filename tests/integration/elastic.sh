#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# elastic.sh BUILD_DIR: elastic io-server cores (cores: {min: 1, max: 2},
# busy_high 25%, busy_low 10%).
#   1. At rest one reactor is active; reactor 1 is parked: its thread is
#      blocked in the kernel and uses no CPU over 2 s.
#   2. Two RAM devices take verified random writes at QD 32: reactor 1 is
#      unparked and a device moves onto it (vrio_ioserver_reactors_active
#      2, _balancer_moves_total{result="ok"} >= 1) within a few seconds.
#   3. The load stops: the device moves back and reactor 1 parks again
#      within 12 s (the policy's bound is 10 s, plus sampling; how soon it
#      may park, the hysteresis, is test_balance's to check: here the end
#      of the load is only known to within a second or two).
#   4. Both devices read back verified in full; no request failed, and
#      both daemons stop with exit 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

write_topo() {
	cat >"$1" <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    # Low thresholds: here the load generators share the machine's two
    # cores with the io-server, whose reactor reaches about 50% busy.
    cores: {min: 1, max: 2, busy_high: 25, busy_low: 10}
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
devices:
  - name: d0
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/d0.sock
    backend: {ram: 16M}
  - name: d1
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/d1.sock
    backend: {ram: 16M}
EOF
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# metric NAME_AND_LABELS: the io-server's current value (summed).
metric() {
	http_get "$VRIO_IO_METRICS" /metrics >"$RUN/metrics.txt" || fail "no metrics"
	metric_sum "$1" <"$RUN/metrics.txt"
}

metric_is() { [[ $(metric "$1") == "$2" ]]; }
metric_ge() { (($(metric "$1") >= $2)); }

# within SECONDS CMD...: CMD succeeds within SECONDS of wall time, tried
# every 200 ms (a scrape costs more than wait_until's 10 ms steps).
within() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		(($(now_ms) < end)) || return 1
		sleep 0.2
	done
}

# reactor_tid N: the thread id of reactorN in the io-server.
reactor_tid() {
	local t
	for t in /proc/"$VRIO_IO_PID"/task/*; do
		if [[ $(cat "$t/comm") == "reactor$1" ]]; then
			echo "${t##*/}"
			return 0
		fi
	done
	return 1
}

# thread_ticks TID: its utime + stime.
thread_ticks() {
	local stat
	local -a f
	stat=$(cat "/proc/$VRIO_IO_PID/task/$1/stat")
	stat=${stat##*) }
	read -r -a f <<<"$stat"
	echo $((f[11] + f[12]))
}

bench() {
	"$BENCH" --socket "$RUN/$1.sock" --bs 4096 --seed "$2" --verify --state "$RUN/$1.state" \
		--json --quiet "${@:3}"
}

# check_run FILE WHAT: a vrio-bench report with requests and no error.
check_run() {
	[[ $(json "$1" "j.get('errors', 1) == 0 and j.get('verify_failures', 1) == 0 and j['ops'] > 0") == True ]] ||
		fail "$2: $(cat "$1")"
}

main() {
	local build seed tid t0 t1 p0 p1 rc0 rc1 elapsed
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	[[ -x $BENCH ]] || skip "vrio-bench not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrio-bench --json"
	make_tmpdir RUN
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $RUN"

	vrio_addrs "$RUN"
	write_topo "$RUN/topology.yaml"
	vrio_start "$RUN" "$RUN/topology.yaml" "$RUN/d0.sock" "$RUN/d1.sock"

	# 1. At rest: one active, reactor 1 parked and costing nothing.
	within 10 metric_is vrio_ioserver_reactors_active 1 ||
		fail "not one active reactor at rest: $(grep -E 'reactors_active|parked' "$RUN/metrics.txt")"
	metric_is 'vrio_ioserver_reactor_parked{reactor="1"}' 1 || fail "reactor 1 is not parked"
	tid=$(reactor_tid 1) || fail "no reactor1 thread"
	t0=$(thread_ticks "$tid")
	sleep 2
	t1=$(thread_ticks "$tid")
	((t1 == t0)) || fail "parked reactor1 used $((t1 - t0)) ticks of CPU in 2 s"
	[[ $(awk '{ print $3 }' "/proc/$VRIO_IO_PID/task/$tid/stat") == S ]] ||
		fail "parked reactor1 is not blocked in the kernel"
	log "reactor1 parked: 0 ticks in 2 s, state S"

	# 2. Load on both devices: a second reactor becomes active and a
	# device moves onto it.
	bench d0 "$seed" --rw randwrite --iodepth 32 --runtime 12 >"$RUN/w0.json" &
	p0=$!
	track_pid "$p0" vrio-bench
	bench d1 "$((seed + 1))" --rw randwrite --iodepth 32 --runtime 12 >"$RUN/w1.json" &
	p1=$!
	track_pid "$p1" vrio-bench
	t0=$(now_ms)
	if ! within 10 metric_is vrio_ioserver_reactors_active 2; then
		fail "no second reactor under load: $(grep -E 'busy_ratio|reactors_active' "$RUN/metrics.txt")"
	fi
	log "second reactor active $(($(now_ms) - t0)) ms into the load"
	within 5 metric_ge 'vrio_ioserver_balancer_moves_total{result="ok"}' 1 ||
		fail "no device moved onto the new reactor"
	metric_is 'vrio_ioserver_reactor_devices{reactor="1"}' 1 ||
		fail "reactor 1 does not serve one device: $(grep reactor_devices "$RUN/metrics.txt")"
	rc0=0 rc1=0
	wait "$p0" || rc0=$?
	untrack_pid "$p0"
	wait "$p1" || rc1=$?
	untrack_pid "$p1"
	((rc0 == 0 && rc1 == 0)) || fail "verified writes failed (exit $rc0, $rc1)"
	check_run "$RUN/w0.json" "writes on d0"
	check_run "$RUN/w1.json" "writes on d1"

	# 3. Quiet again: packed and parked.
	t0=$(now_ms)
	within 12 metric_is vrio_ioserver_reactors_active 1 ||
		fail "reactor 1 not parked 12 s after the load stopped"
	elapsed=$(($(now_ms) - t0))
	metric_is 'vrio_ioserver_reactor_parked{reactor="1"}' 1 || fail "reactor 1 not parked"
	metric_is 'vrio_ioserver_reactor_devices{reactor="0"}' 2 || fail "devices not packed on reactor 0"
	metric_ge vrio_ioserver_reactor_parks_total 1 || fail "no park counted"
	log "parked again $elapsed ms after the load stopped"

	# 4. Everything written reads back.
	bench d0 "$seed" --rw randread --iodepth 8 >"$RUN/r0.json" || fail "d0 did not read back"
	bench d1 "$((seed + 1))" --rw randread --iodepth 8 >"$RUN/r1.json" || fail "d1 did not read back"
	check_run "$RUN/r0.json" "reads on d0"
	check_run "$RUN/r1.json" "reads on d1"
	metric_is 'vrio_ioserver_balancer_moves_total{result="failed"}' 0 || fail "a move failed"
	vrio_down || die "a daemon did not stop cleanly"
	echo "PASS: integration/elastic"
}

lib_traps
main "$@"
