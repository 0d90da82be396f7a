#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# throttle-move.sh BUILD_DIR: a throttled disk moves between reactors with
# its queue full. One io-server, two reactors; disk-t (RAM) behind
# `throttle: {iops: 10}`. vrio-bench writes at random, verified, at QD 32
# for 20 s, so about 31 requests wait in the throttle's queue at any time
# (3 s of them). Meanwhile (in the first half, however slow the machine):
#   1. disk-t moves to the other reactor and back, twice each way: every
#      move ends in under a second (waiting for the queue would take
#      ~3 s), and the queue (vrio_ioserver_throttle_queued) went along;
#   2. the writes end with no error and no verify failure, and read back
#      verified: nothing was lost, doubled or reordered by the moves;
#   3. the limit held across them: over the whole run (the queue drains
#      after the 20 s at the same rate) no more than 10 a second and the
#      burst, and no less than 85% of that.
# It prints each move's duration.
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
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    control: $VRIO_HV_CTL
devices:
  - name: disk-t
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK
    backend: {ram: 16M}
    interpose:
      - throttle: {iops: 10, burst_ms: 1000}
EOF
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

reactor() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json" ||
		fail "vrioctl devices"
	json "$RUN/devices.json" "[d['reactor'] for d in j['devices'] if d['name'] == 'disk-t'][0]"
}

queued() {
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || fail "io metrics"
	metric_sum 'vrio_ioserver_throttle_queued{device="disk-t"' <"$RUN/io.metrics"
}

queue_long() { (($(queued) >= 16)); }

# move: disk-t to the other reactor; appends the duration (us).
move() {
	local from to q
	from=$(reactor)
	to=$((1 - from))
	# The bench keeps 32 in flight, so the queue is long once it has
	# connected and its first burst has gone; how soon varies with load.
	wait_until 10 queue_long ||
		fail "only $(queued) requests queued after waiting 10 s to move: the test needs a long queue"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" move disk-t "$to" --json >"$RUN/move.json" ||
		fail "moving disk-t to reactor $to: $(cat "$RUN/move.json")"
	[[ $(json "$RUN/move.json" "'%d %d' % (j['from'], j['to'])") == "$from $to" ]] ||
		fail "disk-t did not move from $from to $to: $(cat "$RUN/move.json")"
	json "$RUN/move.json" "j['duration_us']" >>"$RUN/moves.us"
	q=$(queued)
	((q >= 8)) || fail "the queue did not come along: $q queued after the move"
}

main() {
	local build bench us ops i
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || skip "vrio-bench or vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrioctl --json"
	make_tmpdir RUN
	vrio_addrs "$RUN"
	SOCK=$RUN/t.sock
	write_topo "$RUN/topology.yaml"
	vrio_start "$RUN" "$RUN/topology.yaml" "$SOCK"

	"$BENCH" --socket "$SOCK" --rw randwrite --bs 4096 --iodepth 32 --size 8M --runtime 20 \
		--verify --state "$RUN/w.state" --json --quiet >"$RUN/w.json" 2>"$RUN/w.err" &
	bench=$!
	track_pid "$bench" vrio-bench
	: >"$RUN/moves.us"
	sleep 1.5
	for i in 1 2 3 4; do
		move
		sleep 0.5
	done
	pid_alive "$bench" || fail "the writes ended before the moves did: $(cat "$RUN/w.err")"
	wait "$bench" || fail "the writes failed: $(cat "$RUN/w.err")"
	untrack_pid "$bench"
	[[ $(json "$RUN/w.json" "j['errors'] + j['verify_failures']") == 0 ]] ||
		fail "the writes saw errors: $(cat "$RUN/w.json")"
	[[ $(json "$RUN/w.json" "j['timeout'] or j['disconnected']") == False ]] ||
		fail "the writes timed out or were disconnected"
	us=$(sort -n "$RUN/moves.us" | tail -1)
	((us < 1000000)) || fail "a move took $us us: it waited for the throttle's queue"

	# The limit across the moves: no more than 10 a second over the run
	# (20 s, then the queue drains at that rate) and the burst's 10, and
	# not much less (a second of burst lets the throttle catch up after a
	# stall of this shared machine; integration/throttle holds precision).
	ops=$(json "$RUN/w.json" "'%d in %.1f s, %.2f a second' % (j['ops'], j['elapsed_s'], j['iops'])")
	json "$RUN/w.json" "10 * j['elapsed_s'] * 0.85 <= j['ops'] <= 10 * j['elapsed_s'] * 1.02 + 10" |
		grep -q True ||
		fail "under iops 10 across the moves: $ops"

	# Everything reads back; the throttle still applies, so a small area.
	write_topo "$RUN/topology.yaml"
	sed -i '/interpose:/,$d' "$RUN/topology.yaml"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload >/dev/null || fail "reload without the throttle"
	"$BENCH" --socket "$SOCK" --rw read --bs 4096 --iodepth 16 --size 8M --verify \
		--state "$RUN/w.state" >"$RUN/readback.log" 2>&1 ||
		fail "disk-t does not read back: $(cat "$RUN/readback.log")"
	vrio_down || fail "the daemons did not stop cleanly"
	log "moves with a full throttle queue, us: $(tr '\n' ' ' <"$RUN/moves.us")"
	log "writes under iops 10: $ops, 0 errors, read back verified"
	echo "PASS: integration/throttle-move"
}

lib_traps
main "$@"
