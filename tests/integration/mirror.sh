#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# mirror.sh BUILD_DIR [SECONDS]: the mirror stage under verified writes.
# One file device (256 MiB) with `mirror: {file: ...}`:
#   1. the mirror's first full copy starts when local-hv attaches the
#      device, before any request (the stage's requests metric stays 0);
#      it ends ok;
#   2. what the mirror took but no flush covered is copied again when it
#      falls: a writer over [128M, 144M) is stopped (SIGSTOP) before its
#      closing flush, the fault is set, and the writer's flush fails on the
#      mirror (not for the guest). The mirror then loses that range as a
#      page cache would (it is put back as it was at the last flush), and
#      once the fault is lifted and it resyncs, the range matches the
#      backing file again (cmp);
#   3. vrio-bench writes at random, verified, at QD 16 for SECONDS
#      (default 30) over the device's first 64 MiB;
#   4. a third of the way in, the control socket's bdev_fault test hook
#      makes every io of the mirror fail: the device keeps serving (no
#      guest error), the mirror is "degraded" in `vrioctl devices` and in
#      vrio_ioserver_mirror_degraded;
#   5. a few seconds later the hook is lifted: the probe finds the mirror
#      back within a second, it resynchronises from its dirty map (the
#      remaining-bytes metric falls to 0; it copies at most the written
#      quarter of the device, not all of it) and is ok again while the
#      writes go on;
#   6. the writes end with no error and no verify failure; everything is
#      read back and verified; both daemons stop with exit 0; the backing
#      file and the mirror are identical (cmp) and each passes
#      vrio-bench --check-file against the writes' map.
# It prints the resync's time, the bytes it copied and the dirty fraction.
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
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
devices:
  - name: disk
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK
    backend: {file: $DISK, size: 256M}
    interpose:
      - mirror: {file: $MIRROR}
EOF
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# mirror FIELD: the io-server's word on disk's mirror (vrioctl devices);
# each process its own file, as watch_resync runs beside the main one.
mirror() {
	local out=$RUN/devices.$BASHPID.json
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$out" || fail "vrioctl devices"
	json "$out" "[d['mirror']['$1'] for d in j['devices'] if d['name'] == 'disk'][0]"
}

mirror_is() { [[ $(mirror state) == "$1" ]]; }

# device FIELD: the io-server's word on disk (vrioctl devices).
device() {
	local out=$RUN/devices.$BASHPID.json
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$out" || fail "vrioctl devices"
	json "$out" "[d['$1'] for d in j['devices'] if d['name'] == 'disk'][0]"
}

idle() { [[ $(device in_flight) == 0 ]]; }
past() { (($(now_ms) >= $1)); }

# metric NAME [LABELS]: disk's sample of a family (LABELS: more of them,
# ',stage="mirror"').
metric() {
	local out=$RUN/io.$BASHPID.metrics
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$out" || fail "io metrics"
	metric_sum "$1{device=\"disk\"${2:-}}" <"$out"
}

fault() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" call bdev_fault \
		"{\"device\": \"disk\", \"target\": \"mirror\", \"fail\": $1}" >/dev/null ||
		fail "bdev_fault $1"
}

# watch_resync FILE: "MS STATE REMAINING_BYTES" lines (the state from
# vrioctl, the bytes from the metric) until the mirror is ok.
watch_resync() {
	local state
	: >"$1"
	while :; do
		state=$(mirror state)
		echo "$(now_ms) $state $(metric vrio_ioserver_mirror_resync_remaining_bytes)" >>"$1"
		[[ $state != ok ]] || break
		sleep 0.02
	done
}

# unflushed_recopied SEED: step 2.
unflushed_recopied() {
	local u_pid t_u runtime=5 lost
	dd if="$MIRROR" of="$RUN/flushed.img" bs=1M skip=128 count=16 status=none
	t_u=$(now_ms)
	"$BENCH" --socket "$SOCK" --rw randwrite --bs 4096 --iodepth 16 --offset 128M --size 16M \
		--runtime "$runtime" --timeout 60000 --seed "$1" --json --quiet \
		>"$RUN/unflushed.json" 2>"$RUN/unflushed.err" &
	u_pid=$!
	track_pid "$u_pid" vrio-bench
	wait_until 10 mirror_took 4194304 || fail "the writer over [128M, 144M) wrote nothing"
	kill -STOP "$u_pid"
	past $((t_u + runtime * 1000 - 500)) && fail "the writer was not stopped before its end"
	wait_until 10 idle || fail "requests still in flight with the writer stopped"
	fault true
	# Its deadline passes while it is stopped: it only flushes on.
	wait_until $((runtime + 2)) past $((t_u + runtime * 1000 + 200)) || fail "the writer's deadline did not pass"
	kill -CONT "$u_pid"
	wait "$u_pid" || fail "the stopped writer failed: $(cat "$RUN/unflushed.err")"
	untrack_pid "$u_pid"
	[[ $(json "$RUN/unflushed.json" "j['errors']") == 0 ]] ||
		fail "the writer saw errors: $(cat "$RUN/unflushed.json")"
	wait_until 10 mirror_is degraded || fail "the failed flush left the mirror $(mirror state)"
	lost=$(mirror dirty_bytes)
	((lost >= 4 << 20)) || fail "a failed flush left $lost dirty bytes: the unflushed writes are not"
	# The mirror loses what it never flushed.
	dd if="$RUN/flushed.img" of="$MIRROR" bs=1M seek=128 conv=notrunc status=none
	fault false
	wait_until 30 mirror_is ok || fail "the mirror did not resync after the failed flush"
	cmp -i $((128 << 20)) -n $((16 << 20)) "$DISK" "$MIRROR" ||
		fail "[128M, 144M) differs: writes the mirror had not flushed were not copied again"
	log "failed flush: $lost dirty bytes (the writes since the last good flush), copied" \
		"$(mirror last_resync_bytes) in $(mirror last_resync_s) s"
}

# mirror_took BYTES: the mirror stage saw at least BYTES.
mirror_took() { (($(metric vrio_ioserver_stage_bytes_total ',stage="mirror"') >= $1)); }

main() {
	local build secs=${2:-30} seed bench_pid t_fail t_back dirty copied took size ms samples
	local n_back
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || skip "vrio-bench or vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed to read vrioctl --json"
	have_cmd cmp || skip "cmp is needed"
	make_tmpdir RUN
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $RUN, ${secs}s of writes"
	vrio_addrs "$RUN"
	SOCK=$RUN/disk.sock
	DISK=$RUN/disk.img
	MIRROR=$RUN/mirror.img
	TOPO=$RUN/topology.yaml
	write_topo "$TOPO"
	vrio_start "$RUN" "$TOPO" "$SOCK"
	[[ $(stat -c %s "$MIRROR") == $((256 << 20)) ]] ||
		fail "the mirror was not created at the device's size"

	# 1. The first copy (what a new mirror file holds is not known), with
	# no request: placing the device starts it.
	wait_until 60 mirror_is ok || fail "the first full copy did not end: $(mirror state)"
	[[ $(metric vrio_ioserver_stage_requests_total ',stage="mirror"') == 0 ]] ||
		fail "the mirror saw requests before any guest sent one"
	log "first full copy: $(mirror last_resync_bytes) bytes in $(mirror last_resync_s) s"

	# 2. Writes the mirror took, then a flush it failed.
	unflushed_recopied "$((seed + 1))"

	# 3. Verified writes over the first 64 MiB.
	"$BENCH" --socket "$SOCK" --rw randwrite --bs 4096 --iodepth 16 --size 64M \
		--runtime "$secs" --seed "$seed" --verify --state "$RUN/a.state" --json --quiet \
		>"$RUN/writes.json" 2>"$RUN/writes.err" &
	bench_pid=$!
	track_pid "$bench_pid" vrio-bench
	sleep "$((secs / 3))"

	# 4. The mirror fails; the device goes on.
	pid_alive "$bench_pid" || fail "the writes ended early: $(cat "$RUN/writes.err")"
	fault true
	t_fail=$(now_ms)
	wait_until 10 mirror_is degraded || fail "the mirror is not degraded: $(mirror state)"
	[[ $(metric vrio_ioserver_mirror_degraded) == 1 ]] || fail "no degraded gauge"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices >"$RUN/devices.txt"
	grep -Eq '^disk .*mirror\(degraded\)$' "$RUN/devices.txt" ||
		fail "vrioctl devices does not show the chain: $(cat "$RUN/devices.txt")"
	grep -q "mirror $MIRROR failed" "$VRIO_IO_LOG" || fail "no log line for the failure"
	sleep 4
	pid_alive "$bench_pid" || fail "the writes stopped while the mirror was failed"
	[[ $(mirror state) == degraded ]] || fail "the mirror did not stay degraded"

	# 5. It is back: a probe within a second, then the dirty regions only;
	# the remaining bytes are sampled from before the fault is lifted.
	dirty=$(mirror dirty_bytes)
	n_back=$(grep -c "answers again" "$VRIO_IO_LOG" || true)
	watch_resync "$RUN/remaining" &
	samples=$!
	track_pid "$samples" watch_resync
	wait_until 10 test -s "$RUN/remaining" || fail "no sample of the remaining bytes"
	fault false
	t_back=$(now_ms)
	wait_until 30 mirror_is ok || fail "the mirror did not resync: $(mirror state)"
	ms=$(($(now_ms) - t_back))
	wait "$samples" || true
	untrack_pid "$samples"
	[[ $(tail -1 "$RUN/remaining" | cut -d' ' -f3) == 0 ]] ||
		fail "resync_remaining_bytes did not fall to 0: $(cat "$RUN/remaining")"
	[[ $(head -1 "$RUN/remaining" | cut -d' ' -f3) -gt 0 ]] ||
		fail "resync_remaining_bytes showed nothing to copy: $(cat "$RUN/remaining")"
	[[ $(metric vrio_ioserver_mirror_degraded) == 0 ]] || fail "still degraded by the gauge"
	copied=$(mirror last_resync_bytes)
	took=$(mirror last_resync_s)
	size=$((256 << 20))
	((copied > 0 && copied <= 64 << 20)) ||
		fail "the resync copied $copied bytes: not just the written quarter"
	[[ $(grep -c "answers again" "$VRIO_IO_LOG") == $((n_back + 1)) ]] ||
		fail "the mirror came back more or less than once"
	pid_alive "$bench_pid" || fail "the writes ended before the resync did"

	# 6. The end: no guest error, both copies the same, both verified.
	wait "$bench_pid" || fail "the writes failed: $(cat "$RUN/writes.err")"
	untrack_pid "$bench_pid"
	[[ $(json "$RUN/writes.json" "j['errors'] + j['verify_failures']") == 0 ]] ||
		fail "the guest saw errors: $(cat "$RUN/writes.json")"
	[[ $(json "$RUN/writes.json" "j['timeout'] or j['disconnected']") == False ]] ||
		fail "the writes timed out or were disconnected"
	"$BENCH" --socket "$SOCK" --rw read --bs 4096 --iodepth 16 --size 64M --verify \
		--state "$RUN/a.state" >"$RUN/readback.log" 2>&1 ||
		fail "the device does not read back: $(cat "$RUN/readback.log")"
	mirror_is ok || fail "the mirror is $(mirror state) at the end"
	vrio_down || fail "a daemon did not stop cleanly"
	cmp "$DISK" "$MIRROR" || die "the backing file and the mirror differ"
	"$BENCH" --check-file "$DISK" --state "$RUN/a.state" >"$RUN/check-disk.log" 2>&1 ||
		die "the backing file does not hold the writes: $(tail -3 "$RUN/check-disk.log")"
	"$BENCH" --check-file "$MIRROR" --state "$RUN/a.state" >"$RUN/check-mirror.log" 2>&1 ||
		die "the mirror does not hold the writes: $(tail -3 "$RUN/check-mirror.log")"

	log "writes: $(json "$RUN/writes.json" "'%d at %.0f IOPS, 0 errors' % (j['ops'], j['iops'])")"
	log "degraded for $((t_back - t_fail)) ms; dirty then: $dirty bytes," \
		"$(python3 -c "print('%.1f%%' % (100.0 * $dirty / $size))") of the device"
	log "resync: $copied bytes ($(python3 -c "print('%.1f%%' % (100.0 * $copied / $size))")" \
		"of the device) in $took s; ok ${ms} ms after the fault was lifted" \
		"(probe period 1 s)"
	log "remaining bytes (state, bytes): $(head -1 "$RUN/remaining" | cut -d' ' -f2-) ..." \
		"$(tail -1 "$RUN/remaining" | cut -d' ' -f2-), $(wc -l <"$RUN/remaining") samples"
	log "both files identical, each verified: $(tail -1 "$RUN/check-mirror.log")"
	echo "PASS: integration/mirror"
}

lib_traps
main "$@"
