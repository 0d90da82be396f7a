#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# live-rack.sh BUILD_DIR [SECONDS] [ROUNDS]: what a live rack costs the
# devices that stay. One run, a two-reactor io-server over TCP on loopback:
#
#   placement  4 KiB random reads at QD 1 and 32 on a RAM disk placed on
#              its connection's reactor, then on the other one (requests
#              cross reactors as messages), alternating ROUNDS times;
#   churn      device A takes random writes at QD 8 for SECONDS while
#              nothing happens, while it moves between reactors twice a
#              second, while a device B is added and removed (SIGHUP to
#              both daemons) twice a second, and both; medians of ROUNDS;
#   timings    SIGHUP to B's socket, and the duration of each move.
#
# Prints medians, and the daemons' CPU seconds per run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-10}
ROUNDS=${3:-3}

write_topo() { # WITH_B
	{
		cat <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    control: $VRIO_IO_CTL
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    control: $VRIO_HV_CTL
devices:
  - name: a
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    queues: 2
    backend: {ram: 256M}
EOF
		if (($1)); then
			cat <<EOF
  - name: b
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/b.sock
    backend: {ram: 16M}
EOF
		fi
	} >"$TOPO.new"
	mv -f "$TOPO.new" "$TOPO"
}

move_a() { # REACTOR
	"$VRIOCTL" --socket "$VRIO_IO_CTL" move a "$1" --json >"$RUN/move.json" ||
		die "moving a to reactor $1"
	if [[ $(json "$RUN/move.json" "j['from'] != j['to']") == True ]]; then
		json "$RUN/move.json" "j['duration_us']" >>"$RUN/move.us"
	fi
	A_AT=$1
}

# bench QD RW: one run on A; prints "iops p50 p99 p99.9 cpu"
bench() {
	local t0 t1 out
	t0=$(cpu_ticks "$VRIO_IO_PID" "$VRIO_HV_PID")
	out=$("$BENCH" --socket "$RUN/a.sock" --rw "$2" --bs 4096 --iodepth "$1" --queues 2 \
		--runtime "$SECS" --json --quiet)
	t1=$(cpu_ticks "$VRIO_IO_PID" "$VRIO_HV_PID")
	python3 -c 'import json, sys
r = json.loads(sys.argv[1]); l = r["lat_us"]
if r["errors"] or r["verify_failures"]: sys.exit("errors on A")
print("%.0f %.1f %.1f %.1f %.2f" % (r["iops"], l["p50"], l["p99"], l["p99_9"],
      (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])))' "$out" "$t0" "$t1" \
		"$(getconf CLK_TCK)"
}

# churn MOVES RELOADS: every 0.5 s until the bench is done.
churn() {
	local t0
	while pid_alive "$BENCH_PID"; do
		if (($2)); then
			write_topo 1
			t0=$(now_ms)
			kill -HUP "$VRIO_IO_PID" "$VRIO_HV_PID"
			wait_until 10 test -S "$RUN/b.sock" || die "B's socket did not appear"
			echo $(($(now_ms) - t0)) >>"$RUN/socket.ms"
			write_topo 0
			kill -HUP "$VRIO_HV_PID" "$VRIO_IO_PID"
			wait_until 10 gone "$RUN/b.sock" || die "B's socket did not go"
		fi
		if (($1)); then
			move_a $((1 - A_AT))
		fi
		sleep 0.5
	done
}

summary() { # LABEL FILE
	printf '%-34s %9s IOPS  p50 %7s us  p99 %7s us  p99.9 %7s us  daemons %s s CPU\n' "$1" \
		"$(cut -d' ' -f1 "$2" | median)" "$(cut -d' ' -f2 "$2" | median)" \
		"$(cut -d' ' -f3 "$2" | median)" "$(cut -d' ' -f4 "$2" | median)" \
		"$(cut -d' ' -f5 "$2" | median)"
}

main() {
	local build front qd where mode i
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	need_cmd python3
	make_tmpdir RUN
	vrio_addrs "$RUN"
	TOPO=$RUN/topology.yaml
	write_topo 0
	vrio_start "$RUN" "$TOPO" "$RUN/a.sock"
	front=$(grep -o 'served by reactor[0-9]*' "$VRIO_IO_LOG" | tail -1 | grep -o '[0-9]*$')
	: >"$RUN/move.us"
	: >"$RUN/socket.ms"
	log "${SECS}s runs, $ROUNDS rounds; A's connection is on reactor $front"

	echo "== placement: 4 KiB random reads on A (RAM)"
	for qd in 1 32; do
		for where in same other; do : >"$RUN/$where.$qd"; done
		for ((i = 0; i < ROUNDS; i++)); do
			move_a "$front"
			bench "$qd" randread >>"$RUN/same.$qd"
			move_a $((1 - front))
			bench "$qd" randread >>"$RUN/other.$qd"
		done
		summary "QD $qd, on its connection's reactor" "$RUN/same.$qd"
		summary "QD $qd, on the other reactor" "$RUN/other.$qd"
	done

	echo "== churn: 4 KiB random writes on A at QD 8, something every 0.5 s"
	for mode in "0 0" "1 0" "0 1" "1 1"; do : >"$RUN/churn.${mode// /}"; done
	for ((i = 0; i < ROUNDS; i++)); do
		for mode in "0 0" "1 0" "0 1" "1 1"; do
			bench 8 randwrite >"$RUN/one" &
			BENCH_PID=$!
			track_pid "$BENCH_PID" vrio-bench
			# shellcheck disable=SC2086 # two numbers
			churn $mode
			wait "$BENCH_PID" || die "A failed"
			untrack_pid "$BENCH_PID"
			cat "$RUN/one" >>"$RUN/churn.${mode// /}"
		done
	done
	summary "nothing happens" "$RUN/churn.00"
	summary "A moves between reactors" "$RUN/churn.10"
	summary "B added and removed (SIGHUP)" "$RUN/churn.01"
	summary "both" "$RUN/churn.11"

	echo "== timings"
	echo "SIGHUP to B's socket: $(median_max "$RUN/socket.ms") ms ($(wc -l <"$RUN/socket.ms") reloads)"
	echo "a move of A: $(median_max "$RUN/move.us") us ($(wc -l <"$RUN/move.us") moves)"
	vrio_down >/dev/null 2>&1 || die "a daemon did not stop cleanly"
}

lib_traps
main "$@"
