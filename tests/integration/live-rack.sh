#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# live-rack.sh BUILD_DIR [ROUNDS] [SECONDS]: a rack that changes while it
# carries I/O. Device A (a file, two queues) takes verified random writes
# at QD 8 for SECONDS (default 40); meanwhile, ROUNDS times (default 20):
#   - device B is added to the topology file and both daemons get SIGHUP;
#     B's socket must appear, and verified writes and reads on it succeed;
#   - A moves to the other io-server reactor (vrioctl move);
#   - B is taken out of the file, SIGHUP again; its socket must go and both
#     daemons must forget it (vrioctl devices --json);
#   - A moves back.
# Then a broken file is reloaded (by SIGHUP and by `vrioctl reload`): both
# refuse it with FILE:LINE:COL and nothing changes. A must end with 0
# errors and 0 verify failures; it is read back in full, both daemons stop
# with exit 0 and the backing file is checked block by block.
#
# It prints what it measured: A's latency before the churn and during it,
# SIGHUP to B's socket, and the duration of each move (medians and worst).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# write_topo FILE WITH_B: the rack, with or without B; written beside and
# renamed, so that a daemon never reads half a file.
write_topo() {
	cat >"$1.new" <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK_A
    queues: 2
    backend: {file: $DISK_A, size: 64M}
EOF
	if (($2)); then
		cat >>"$1.new" <<EOF
  - name: disk-b
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK_B
    backend: {ram: 16M}
EOF
	fi
	mv -f "$1.new" "$1"
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

alive() {
	pid_alive "$VRIO_IO_PID" || fail "vrio-ioserver died"
	pid_alive "$VRIO_HV_PID" || fail "vrio-localhv died"
}

# has_device CTL NAME: the daemon's `devices` lists NAME.
has_device() {
	"$VRIOCTL" --socket "$1" devices --json >"$RUN/devices.json" || fail "vrioctl devices on $1"
	[[ $(json "$RUN/devices.json" "any(d['name'] == '$2' for d in j['devices'])") == True ]]
}

not_device() { ! has_device "$1" "$2"; }

reload_both() {
	kill -HUP "$VRIO_IO_PID"
	kill -HUP "$VRIO_HV_PID"
}

# generation CTL: the daemon's configuration generation.
generation() {
	"$VRIOCTL" --socket "$1" status --json >"$RUN/status.json" || fail "vrioctl status on $1"
	json "$RUN/status.json" "j['config']['generation']"
}

# move_a: A to the other reactor of the two.
move_a() {
	local to=$((1 - A_REACTOR))
	"$VRIOCTL" --socket "$VRIO_IO_CTL" move disk-a "$to" --json >"$RUN/move.json" ||
		fail "moving disk-a to reactor $to"
	[[ $(json "$RUN/move.json" "'%d %d' % (j['from'], j['to'])") == "$A_REACTOR $to" ]] ||
		fail "disk-a did not move from $A_REACTOR to $to: $(cat "$RUN/move.json")"
	json "$RUN/move.json" "j['duration_us']" >>"$RUN/moves.us"
	A_REACTOR=$to
}

main() {
	local build rounds=${2:-20} secs=${3:-40} seed i gen_io gen_hv t0 bench_pid rc
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || skip "vrio-bench or vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrioctl --json"
	make_tmpdir RUN
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $RUN, $rounds rounds over ${secs}s"

	vrio_addrs "$RUN"
	SOCK_A=$RUN/a.sock
	SOCK_B=$RUN/b.sock
	DISK_A=$RUN/a.img
	TOPO=$RUN/topology.yaml
	write_topo "$TOPO" 0
	vrio_start "$RUN" "$TOPO" "$SOCK_A"

	# A's latency with nothing else going on, for comparison.
	"$BENCH" --socket "$SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --queues 2 \
		--runtime 5 --seed "$seed" --verify --state "$RUN/a.state" --json --quiet \
		>"$RUN/quiet.json" || fail "A's writes failed before the churn"

	"$BENCH" --socket "$SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --queues 2 \
		--runtime "$secs" --seed "$((seed + 1))" --verify --state "$RUN/a.state" --json \
		--quiet >"$RUN/churn.json" 2>"$RUN/churn.err" &
	bench_pid=$!
	track_pid "$bench_pid" vrio-bench
	sleep 1

	: >"$RUN/moves.us"
	: >"$RUN/socket.ms"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json"
	A_REACTOR=$(json "$RUN/devices.json" "[d['reactor'] for d in j['devices'] if d['name'] == 'disk-a'][0]")
	for ((i = 0; i < rounds; i++)); do
		alive
		write_topo "$TOPO" 1
		t0=$(now_ms)
		reload_both
		wait_until 10 test -S "$SOCK_B" || fail "round $i: B's socket did not appear"
		echo $(($(now_ms) - t0)) >>"$RUN/socket.ms"
		"$BENCH" --socket "$SOCK_B" --rw randwrite --bs 4096 --iodepth 4 --count 300 \
			--seed "$((seed + 2 + i))" --verify --state "$RUN/b.state" --quiet >/dev/null ||
			fail "round $i: writes on B failed"
		"$BENCH" --socket "$SOCK_B" --rw randread --bs 4096 --iodepth 4 --count 300 \
			--seed "$((seed + 2 + i))" --verify --state "$RUN/b.state" --quiet >/dev/null ||
			fail "round $i: reads on B did not verify"
		move_a

		write_topo "$TOPO" 0
		reload_both
		wait_until 10 gone "$SOCK_B" || fail "round $i: B's socket is still there"
		wait_until 10 not_device "$VRIO_HV_CTL" disk-b || fail "round $i: local-hv kept B"
		wait_until 10 not_device "$VRIO_IO_CTL" disk-b || fail "round $i: the io-server kept B"
		# B comes back empty: a RAM disk removed is gone.
		rm -f "$RUN/b.state"
		move_a
	done
	log "$rounds rounds of add, use, remove and moves done"

	# A broken file changes nothing, by SIGHUP or by vrioctl.
	gen_io=$(generation "$VRIO_IO_CTL")
	gen_hv=$(generation "$VRIO_HV_CTL")
	printf 'version: 1\nio_servers: [\n' >"$TOPO"
	reload_both
	rc=0
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload --json >"$RUN/bad.json" || rc=$?
	((rc == 1)) || fail "vrioctl reload of a broken file exited $rc"
	[[ $(json "$RUN/bad.json" "j['data']['line']") == 3 ]] ||
		fail "the refusal names no line: $(cat "$RUN/bad.json")"
	grep -q "topology.yaml:3:" "$RUN/bad.json" || fail "no FILE:LINE:COL in $(cat "$RUN/bad.json")"
	wait_until 10 grep -q "reload refused" "$VRIO_HV_LOG" || fail "local-hv did not refuse it"
	alive
	[[ $(generation "$VRIO_IO_CTL") == "$gen_io" && $(generation "$VRIO_HV_CTL") == "$gen_hv" ]] ||
		fail "a broken file changed the configuration generation"
	[[ $(json "$RUN/status.json" "j['config']['reloads']['failed']") -ge 1 ]] ||
		fail "local-hv did not count the failed reload"
	has_device "$VRIO_HV_CTL" disk-a || fail "local-hv lost A on a broken file"
	write_topo "$TOPO" 0

	wait "$bench_pid" || fail "A's writes failed during the churn: $(cat "$RUN/churn.err")"
	untrack_pid "$bench_pid"
	[[ $(json "$RUN/churn.json" "j['errors'] + j['verify_failures']") == 0 ]] ||
		fail "A saw errors: $(cat "$RUN/churn.json")"
	[[ $(json "$RUN/churn.json" "j['timeout'] or j['disconnected']") == False ]] ||
		fail "A timed out or was disconnected"
	"$BENCH" --socket "$SOCK_A" --rw read --bs 4096 --iodepth 16 --queues 2 --verify \
		--state "$RUN/a.state" >"$RUN/readback.log" 2>&1 ||
		fail "A does not read back: $(cat "$RUN/readback.log")"

	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json"
	[[ $(json "$RUN/devices.json" "[d['moves'] for d in j['devices'] if d['name'] == 'disk-a'][0]") \
		== $((2 * rounds)) ]] || fail "the moves were not counted"
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || fail "io metrics"
	grep -q '^vrio_ioserver_device_moves_total{device="disk-a"}' "$RUN/io.metrics" ||
		fail "no moves metric"
	grep -q "^vrio_ioserver_config_generation $((2 * rounds + 1))\$" "$RUN/io.metrics" ||
		fail "the io-server's generation is not $((2 * rounds + 1))"
	if have_cmd promtool; then
		promtool check metrics <"$RUN/io.metrics" || fail "promtool rejects the exposition"
	fi

	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$DISK_A" --state "$RUN/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"

	log "A before the churn: $(json "$RUN/quiet.json" "'%.0f IOPS, p50 %.1f us, p99 %.1f us' % (j['iops'], j['lat_us']['p50'], j['lat_us']['p99'])")"
	log "A during the churn: $(json "$RUN/churn.json" "'%.0f IOPS, p50 %.1f us, p99 %.1f us' % (j['iops'], j['lat_us']['p50'], j['lat_us']['p99'])")"
	log "SIGHUP to B's socket, ms: $(median_max "$RUN/socket.ms")"
	log "move of A, us: $(median_max "$RUN/moves.us") ($(wc -l <"$RUN/moves.us") moves)"
	echo "PASS: integration/live-rack"
}

lib_traps
main "$@"
