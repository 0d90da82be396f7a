#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-vrio-live.sh BUILD_DIR [MIN_ROUNDS] [SECONDS]: a QEMU guest's disk keeps
# working while the rack around it changes (the "live rack" issue, end to
# end). The blk-vrio.sh rack, with two io-server reactors:
#
#   1. io0 (cores: {min: 2, max: 2}) and host0 serve vm1-disk, a 64 MiB
#      file with two queues, over TCP on loopback;
#   2. a TCG guest on vm1-disk runs guest-io loop-verify for SECONDS
#      (default 60): write-verify passes over 1 MiB at 4 MiB with O_DIRECT,
#      each pass with a new seed, one VRIO-PASS line on its console per pass;
#   3. from its first pass on, and for as long as it loops, the host churns
#      the rack, one round after the other:
#        - extra-disk (RAM, 16 MiB) is added to the topology file, on every
#          third round with extra-net (a net device on network lan, a live
#          port of the switch), and both daemons get SIGHUP; the new sockets
#          must appear and both daemons list the devices as attached;
#        - vrio-bench writes 200 random blocks on extra-disk and reads them
#          back, verified;
#        - on odd rounds, vm1-disk moves to the io-server's other reactor
#          (vrioctl move);
#        - the extras are taken out of the file, SIGHUP again: their sockets
#          go and neither daemon lists them any more;
#      every round checks that both daemons live, that vm1-disk is still
#      attached on both, and that the guest (its QEMU pid) still runs, is
#      still in its loop and made a pass within the last 30 s; at least
#      MIN_ROUNDS (default 10) rounds must have ended while it was, and its
#      pass count must have grown meanwhile;
#   4. the guest finishes by itself and every pass verified (its VRIO-RESULT
#      line ends in ok); vm1-disk shows no errors on either daemon, the
#      io-server counted the moves and vm1-disk's requests, local-hv never
#      lost its connection to io0, each daemon's configuration generation
#      went up by two a round;
#   5. SIGTERM to vrio-localhv, then vrio-ioserver: both exit 0, and the
#      backing file holds the last pass's pattern, with the guest's checksum.
#
# It prints what it did: rounds (with and without the net device), moves,
# guest passes, SIGHUP-to-socket and move times. Exits 77 (SKIP) when
# blk-vrio.sh would: the daemons not built, no QEMU, no guest kernel.
# VRIO_SEED and VRIO_KEEP_TMP as in blk-vrio.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

OFF=$((4 << 20))
LEN=$((1 << 20))
QUEUES=2
BENCH_COUNT=200
NET_MAC=52:54:00:00:00:02
STALL_S=30

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	if [[ -f $RUN/console.log ]]; then
		log "--- guest console, without its VRIO-PASS lines ($RUN/console.log) ---"
		grep -av '^VRIO-PASS: ' "$RUN/console.log" | tail -n 20 >&2 || true
		log "last pass: $(grep -a '^VRIO-PASS: ' "$RUN/console.log" | tail -n 1)"
	fi
	die "$*"
}

# write_topo EXTRA_DISK EXTRA_NET: the rack, with or without the extras.
# Written beside and renamed, so that a daemon never reads half a file.
write_topo() {
	cat >"$TOPO.new" <<EOF
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
networks:
  - name: lan
devices:
  - name: vm1-disk
    type: blk
    host: host0
    io_server: io0
    socket: $VRIO_SOCK
    queues: $QUEUES
    backend: {file: $VRIO_DISK, size: 64M}
EOF
	if (($1)); then
		cat >>"$TOPO.new" <<EOF
  - name: extra-disk
    type: blk
    host: host0
    io_server: io0
    socket: $EXTRA_SOCK
    backend: {ram: 16M}
EOF
	fi
	if (($2)); then
		cat >>"$TOPO.new" <<EOF
  - name: extra-net
    type: net
    host: host0
    io_server: io0
    socket: $NET_SOCK
    mac: "$NET_MAC"
    network: lan
EOF
	fi
	mv -f "$TOPO.new" "$TOPO"
}

reload_both() {
	kill -HUP "$VRIO_IO_PID"
	kill -HUP "$VRIO_HV_PID"
}

daemons_alive() {
	pid_alive "$VRIO_IO_PID" || fail "vrio-ioserver died"
	pid_alive "$VRIO_HV_PID" || fail "vrio-localhv died"
}

# fetch_devices: both daemons' `devices --json`, in RUN/io.devices and
# RUN/hv.devices.
fetch_devices() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/io.devices" ||
		fail "vrioctl devices on the io-server failed"
	"$VRIOCTL" --socket "$VRIO_HV_CTL" devices --json >"$RUN/hv.devices" ||
		fail "vrioctl devices on local-hv failed"
}

# states NAME: NAME's state on the io-server, then on local-hv, from the
# last fetch_devices ("absent" where it is not listed).
states() {
	python3 - "$1" "$RUN/io.devices" "$RUN/hv.devices" <<'PY'
import json, sys
out = []
for f in sys.argv[2:]:
    devs = json.load(open(f))["devices"]
    out += [next((d["state"] for d in devs if d["name"] == sys.argv[1]), "absent")]
print(" ".join(out))
PY
}

# on_both STATE NAME: both daemons list NAME in STATE.
on_both() {
	fetch_devices
	[[ $(states "$2") == "$1 $1" ]]
}

# device_field CTL_FILE NAME KEY: a field of NAME in a devices --json file.
device_field() {
	json "$1" "[d['$3'] for d in j['devices'] if d['name'] == '$2'][0]"
}

generation() { # CTL
	"$VRIOCTL" --socket "$1" status --json >"$RUN/status.json" || fail "vrioctl status on $1"
	json "$RUN/status.json" "j['config']['generation']"
}

guest_passes() { grep -ac '^VRIO-PASS: ' "$RUN/console.log" 2>/dev/null || true; }
guest_finished_loop() { grep -aq '^VRIO-RESULT: loop-verify ' "$RUN/console.log"; }

# guest_looping: the guest's QEMU runs and its loop has not ended.
guest_looping() {
	pid_alive "$QEMU_PID" && pid_alive "$GUEST_PID" && ! guest_finished_loop
}

# guest_started: true once the guest made its first pass; fails the test if
# it stopped before that.
guest_started() {
	((GUEST_PASSES = $(guest_passes), GUEST_PASSES > 0)) && return 0
	guest_looping || fail "the guest stopped before its first pass"
	return 1
}

qemu_pid_known() {
	QEMU_PID=$(sed -n 's/.*booting guest (pid \([0-9]*\),.*/\1/p' "$RUN/run-guest.log")
	[[ -n $QEMU_PID ]] && return 0
	pid_alive "$GUEST_PID" || fail "run-guest.sh ended before booting QEMU: $(cat "$RUN/run-guest.log")"
	return 1
}

# move_disk: vm1-disk to the io-server's other reactor.
move_disk() {
	local to=$((1 - DISK_REACTOR))
	"$VRIOCTL" --socket "$VRIO_IO_CTL" move vm1-disk "$to" --json >"$RUN/move.json" ||
		fail "moving vm1-disk to reactor $to failed: $(cat "$RUN/move.json")"
	[[ $(json "$RUN/move.json" "'%d %d' % (j['from'], j['to'])") == "$DISK_REACTOR $to" ]] ||
		fail "vm1-disk did not move from $DISK_REACTOR to $to: $(cat "$RUN/move.json")"
	json "$RUN/move.json" "j['duration_us']" >>"$RUN/moves.us"
	DISK_REACTOR=$to
	MOVES=$((MOVES + 1))
}

# bench_extra ROUND: verified random writes on extra-disk, then reads.
bench_extra() {
	local i=$1 rw
	for rw in randwrite randread; do
		"$BENCH" --socket "$EXTRA_SOCK" --rw "$rw" --count "$BENCH_COUNT" --iodepth 4 \
			--seed "$((SEED + 1000 + i))" --verify --state "$RUN/extra.state" \
			--quiet >"$RUN/bench.log" 2>&1 ||
			fail "round $i: vrio-bench $rw on extra-disk failed: $(cat "$RUN/bench.log")"
	done
}

# churn_round I: extra-disk (and, every third round, extra-net) in, used,
# out; on odd rounds vm1-disk moves while they are attached.
churn_round() {
	local i=$1 net=$(($1 % 3 == 1)) t0 s
	daemons_alive
	write_topo 1 "$net"
	t0=$(now_ms)
	reload_both
	wait_until 20 test -S "$EXTRA_SOCK" || fail "round $i: extra-disk's socket did not appear"
	if ((net)); then
		wait_until 20 test -S "$NET_SOCK" || fail "round $i: extra-net's socket did not appear"
	fi
	echo $(($(now_ms) - t0)) >>"$RUN/add.ms"
	wait_until 20 on_both attached extra-disk ||
		fail "round $i: extra-disk is not attached on both daemons (io, hv: $(states extra-disk))"
	if ((net)); then
		wait_until 20 on_both attached extra-net ||
			fail "round $i: extra-net is not attached on both daemons (io, hv: $(states extra-net))"
		NET_ROUNDS=$((NET_ROUNDS + 1))
	fi
	bench_extra "$i"
	((i % 2 == 0)) || move_disk

	write_topo 0 0
	reload_both
	for s in "$EXTRA_SOCK" "$NET_SOCK"; do
		wait_until 20 gone "$s" || fail "round $i: $s is still there after the removal"
	done
	wait_until 20 on_both absent extra-disk ||
		fail "round $i: extra-disk still listed after the removal (io, hv: $(states extra-disk))"
	wait_until 20 on_both absent extra-net ||
		fail "round $i: extra-net still listed after the removal (io, hv: $(states extra-net))"
	# A RAM disk removed is gone: the next round's extra-disk starts empty.
	rm -f "$RUN/extra.state"
	[[ $(states vm1-disk) == "attached attached" ]] ||
		fail "round $i: vm1-disk was disturbed (io, hv: $(states vm1-disk))"
	daemons_alive
}

# check_metrics: the churn never cost local-hv its connection to io0 (which
# would have re-sent vm1-disk's requests in flight), and the io-server
# served vm1-disk.
check_metrics() {
	local n
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || fail "io-server metrics"
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$RUN/hv.metrics" || fail "local-hv metrics"
	n=$(metric_sum 'vrio_localhv_upstream_disconnects_total{io_server="io0"}' <"$RUN/hv.metrics")
	((n == 0)) || fail "local-hv lost its connection to io0 $n times during the churn"
	n=$(metric_sum 'vrio_ioserver_requests_total{device="vm1-disk"' <"$RUN/io.metrics")
	((n > 0)) || fail "the io-server counted no requests for vm1-disk"
	REQUESTS=$n
}

# start_guest SECONDS: boots the guest in the background (GUEST_PID is
# run-guest.sh, QEMU_PID its QEMU).
start_guest() {
	local secs=$1
	bash "$VRIO_ROOT/tests/e2e/run-guest.sh" --socket "$VRIO_SOCK" --kernel-dir "$GUEST" \
		--run blk-loop --off "$OFF" --len "$LEN" --seed "$SEED" --queues "$QUEUES" \
		--param "secs=$secs" --timeout "$((secs + 240))" --log "$RUN/console.log" \
		>"$RUN/results" 2>"$RUN/run-guest.log" &
	GUEST_PID=$!
	track_pid "$GUEST_PID" run-guest.sh
	wait_until 60 qemu_pid_known || fail "run-guest.sh did not start QEMU"
	log "guest booting (QEMU pid $QEMU_PID), looping for ${secs}s"
}

main() {
	[[ $# -ge 1 && $# -le 3 ]] || die "usage: $0 BUILD_DIR [MIN_ROUNDS] [SECONDS]"
	local build min_rounds=${2:-10} secs=${3:-60} rounds=0 overlapped=0 rc=0
	local gen_io gen_hv passes0 passes1 progress_at line file_line passes
	local last_seed
	build=$(mkdir -p "$1" && cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built ($VRIO_IOSERVER_BIN, $VRIO_LOCALHV_BIN)"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || die "vrio-bench or vrioctl not built in $build"
	need_cmd python3

	GUEST=$build/tests/e2e/guest
	guest_image "$GUEST"
	make_tmpdir RUN
	SEED=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $SEED, run dir $RUN, at least $min_rounds rounds, guest loops ${secs}s"

	vrio_addrs "$RUN"
	TOPO=$RUN/topology.yaml
	VRIO_DISK=$RUN/disk.img
	VRIO_SOCK=$RUN/vm1-disk.sock
	EXTRA_SOCK=$RUN/extra-disk.sock
	NET_SOCK=$RUN/extra-net.sock
	truncate -s 64M "$VRIO_DISK"
	write_topo 0 0
	vrio_start "$RUN" "$TOPO" "$VRIO_SOCK"

	fetch_devices
	DISK_REACTOR=$(device_field "$RUN/io.devices" vm1-disk reactor)
	gen_io=$(generation "$VRIO_IO_CTL")
	gen_hv=$(generation "$VRIO_HV_CTL")
	MOVES=0
	NET_ROUNDS=0
	: >"$RUN/add.ms"
	: >"$RUN/moves.us"

	start_guest "$secs"
	wait_until 180 guest_started || fail "the guest made no pass within 180 s"
	passes0=$GUEST_PASSES
	passes1=$passes0
	log "guest's first pass done: churning while it loops"
	progress_at=$SECONDS
	while guest_looping; do
		churn_round "$rounds"
		rounds=$((rounds + 1))
		guest_looping || break
		overlapped=$rounds
		# A pass takes well under a second: a guest that makes none for
		# STALL_S has a stuck disk (its driver would wait for ever).
		if (($(guest_passes) > passes1)); then
			passes1=$(guest_passes)
			progress_at=$SECONDS
		elif ((SECONDS - progress_at > STALL_S)); then
			fail "round $rounds: the guest made no pass for ${STALL_S}s (stuck at $passes1)"
		fi
	done
	log "$rounds rounds done, $overlapped of them wholly while the guest looped"
	guest_finished_loop || fail "the guest stopped in the middle of its loop (QEMU pid $QEMU_PID)"
	((overlapped >= min_rounds)) ||
		fail "only $overlapped rounds while the guest looped, not $min_rounds: give it more than ${secs}s"
	((passes1 > passes0)) ||
		fail "the guest made no pass during the churn ($passes0 before, $passes1 after)"

	wait "$GUEST_PID" || rc=$?
	untrack_pid "$GUEST_PID"
	cat "$RUN/results"
	((rc == 0)) || fail "the guest failed (run-guest.sh: $(tail -n 5 "$RUN/run-guest.log"))"
	line=$(grep -a '^VRIO-RESULT: loop-verify ' "$RUN/results") ||
		fail "the guest printed no loop-verify result"
	passes=$(result_field "$line" passes)
	last_seed=$(result_field "$line" last_seed)
	[[ $last_seed == $((SEED + passes - 1)) ]] ||
		fail "the guest's last_seed $last_seed is not seed + passes - 1"

	fetch_devices
	[[ $(device_field "$RUN/io.devices" vm1-disk errors) == 0 &&
		$(device_field "$RUN/hv.devices" vm1-disk errors) == 0 ]] ||
		fail "vm1-disk counted errors: $(cat "$RUN/io.devices" "$RUN/hv.devices")"
	[[ $(device_field "$RUN/io.devices" vm1-disk moves) == "$MOVES" ]] ||
		fail "the io-server counted $(device_field "$RUN/io.devices" vm1-disk moves) moves, not $MOVES"
	[[ $(generation "$VRIO_IO_CTL") == $((gen_io + 2 * rounds)) &&
		$(generation "$VRIO_HV_CTL") == $((gen_hv + 2 * rounds)) ]] ||
		fail "the configuration generations did not go up by 2 a round ($rounds rounds)"

	check_metrics

	vrio_down || die "a daemon did not stop cleanly"
	file_line=$(check_file "$GUEST/guest-io" "$VRIO_DISK" "$OFF" "$LEN" "$last_seed") ||
		die "backing file check failed: $file_line"
	printf '%s\n' "$file_line"
	[[ $(result_field "$line" sum_written) == "$(result_field "$file_line" sum)" ]] ||
		die "checksum written by the guest's last pass differs from the backing file's"

	log "rounds: $rounds ($overlapped while the guest looped), $NET_ROUNDS with extra-net;" \
		"moves of vm1-disk: $MOVES"
	log "guest: $passes verified passes of $((LEN >> 10)) KiB, $((passes1 - passes0)) during the churn;" \
		"the io-server served $REQUESTS requests for vm1-disk"
	log "SIGHUP to the new sockets, ms: $(median_max "$RUN/add.ms")"
	log "move of vm1-disk, us: $(median_max "$RUN/moves.us")"
	echo "PASS: e2e/blk-vrio-live"
}

lib_traps
main "$@"
