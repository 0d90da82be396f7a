#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# mirror.sh BUILD_DIR [ROUNDS] [FRACTIONS]: how long the mirror stage takes
# to resynchronise for a given dirty fraction. One io-server reactor
# serves a 1 GiB disk with a 1 GiB mirror, both RAM (VRIO_MIRROR_FILES=1:
# both files in the run directory, buffered). For each fraction F (default
# "0.01 0.1 0.5 1"), ROUNDS times (default 3):
#   1. the control socket's bdev_fault makes every io of the mirror fail;
#   2. vrio-bench writes F of the disk once, sequentially in 64 KiB
#      requests (exactly F of the 64 KiB regions become dirty; no error);
#   3. the fault is lifted, and the mirror resyncs from its dirty map.
# Prints, per fraction, the medians of: the bytes the resync copied, its
# duration as the stage measures it (from the probe that found the mirror
# back to the flush that ended the copy), the rate, and the time from the
# lift to "ok" (which adds the wait for the next probe, at most 1 s).
# Then, for the largest fraction, the guest's 4 KiB random-read IOPS at
# QD 32 over 3 s that hold a resync (lifted 0.5 s in; the share of the
# 3 s it lasted is printed), against the same 3 s with none.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

ROUNDS=${2:-3}
FRACTIONS=${3:-0.01 0.1 0.5 1}
SIZE=$((1 << 30))

write_topo() {
	local backend mirror
	if [[ ${VRIO_MIRROR_FILES:-0} == 1 ]]; then
		backend="{file: $RUN/disk.img, size: 1G}"
		mirror="{file: $RUN/mirror.img}"
	else
		backend="{ram: 1G}"
		mirror="{ram: 1G}"
	fi
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
    control: $VRIO_HV_CTL
devices:
  - name: disk
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK
    backend: $backend
    interpose:
      - mirror: $mirror
EOF
}

mirror() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json" ||
		die "vrioctl devices"
	json "$RUN/devices.json" "[d['mirror']['$1'] for d in j['devices'] if d['name'] == 'disk'][0]"
}

mirror_is() { [[ $(mirror state) == "$1" ]]; }

fault() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" call bdev_fault \
		"{\"device\": \"disk\", \"fail\": $1}" >/dev/null || die "bdev_fault $1"
}

# dirty BYTES: degrades the mirror and writes BYTES from the start.
dirty() {
	fault true
	"$BENCH" --socket "$SOCK" --rw write --bs 65536 --iodepth 16 --size "$1" --json \
		--quiet >"$RUN/dirty.json" || die "the writes failed while the mirror was failed"
	[[ $(json "$RUN/dirty.json" "j['errors']") == 0 ]] || die "the guest saw errors"
	mirror_is degraded || die "the mirror is not degraded: $(mirror state)"
}

# iops SECS: 4 KiB random reads at QD 32 over the disk.
iops() {
	"$BENCH" --socket "$SOCK" --rw randread --bs 4096 --iodepth 32 --runtime "$1" --json \
		--quiet >"$RUN/load.json" || die "the reads failed"
	json "$RUN/load.json" "'%.0f' % j['iops']"
}

main() {
	local build f i bytes t0 wall load_pid alone during secs windows
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	need_cmd python3
	make_tmpdir RUN
	vrio_addrs "$RUN"
	SOCK=$RUN/disk.sock
	write_topo "$RUN/topology.yaml"
	vrio_start "$RUN" "$RUN/topology.yaml" "$SOCK"
	"$BENCH" --socket "$SOCK" --rw read --count 1 --quiet >/dev/null || die "first read"
	wait_until 300 mirror_is ok || die "the first copy did not end"
	# Both copies written once, so no round pays for first-touch faults
	# (RAM) or block allocation (files).
	"$BENCH" --socket "$SOCK" --rw write --bs 1048576 --iodepth 8 --quiet >/dev/null ||
		die "the warm-up writes failed"
	log "$ROUNDS rounds, fractions $FRACTIONS of a 1 GiB disk," \
		"$([[ ${VRIO_MIRROR_FILES:-0} == 1 ]] && echo files || echo RAM), one reactor"

	printf '%-8s %12s %10s %10s %12s\n' dirty "copied MiB" "resync s" "GiB/s" "lift->ok s"
	for f in $FRACTIONS; do
		: >"$RUN/r.$f"
		bytes=$(python3 -c "print(int($f * $SIZE) // 65536 * 65536)")
		for ((i = 0; i < ROUNDS; i++)); do
			dirty "$bytes"
			t0=$(now_ms)
			fault false
			wait_until 300 mirror_is ok || die "no resync after the fault was lifted"
			wall=$(($(now_ms) - t0))
			echo "$(mirror last_resync_bytes) $(mirror last_resync_s) $wall" >>"$RUN/r.$f"
		done
		python3 - "$RUN/r.$f" "$f" <<'PY'
import statistics as s, sys
rows = [l.split() for l in open(sys.argv[1])]
b = s.median(float(r[0]) for r in rows)
t = s.median(float(r[1]) for r in rows)
w = s.median(float(r[2]) for r in rows)
print('%-8s %12.0f %10.3f %10.2f %12.3f' % ('%g%%' % (float(sys.argv[2]) * 100), b / 2**20, t,
      b / t / 2**30 if t else 0, w / 1000))
PY
	done

	# The guest during a resync of the largest fraction (a long one: the
	# reads run while it goes, then alone).
	f=${FRACTIONS##* }
	bytes=$(python3 -c "print(int($f * $SIZE) // 65536 * 65536)")
	secs=3
	dirty "$bytes"
	"$BENCH" --socket "$SOCK" --rw randread --bs 4096 --iodepth 32 --runtime "$secs" \
		--window-ms 100 --json --quiet >"$RUN/during.json" &
	load_pid=$!
	track_pid "$load_pid" vrio-bench
	sleep 0.5
	fault false
	wait_until 300 mirror_is ok || die "no resync"
	wait "$load_pid" || die "the reads failed during the resync"
	untrack_pid "$load_pid"
	during=$(json "$RUN/during.json" "'%.0f' % j['iops']")
	windows=$(json "$RUN/during.json" \
		"'lowest 100 ms window %d IOPS, median %d' % (min(j['windows']['ops'][1:-1]) * 10, sorted(j['windows']['ops'][1:-1])[len(j['windows']['ops'][1:-1]) // 2] * 10)")
	alone=$(iops "$secs")
	log "4K randread QD32: $during IOPS over ${secs}s holding a resync of" \
		"$(mirror last_resync_bytes) bytes ($(mirror last_resync_s) s of the ${secs}), $alone IOPS" \
		"over ${secs}s with none; with the resync: $windows"
	vrio_down
}

lib_traps
main "$@"
