#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# qsd-tune.sh [SECONDS] [ROUNDS]: which qemu-storage-daemon configuration is
# fastest on this machine for what blk-compare.sh measures (vrio-bench, 4
# KiB random reads of a 64 MiB page-cached file, QD 1 and 32). Each
# candidate runs as its own daemon on its own copy of the file, the rounds
# side by side; prints blk-lib.sh's table with ratios to `strong`, the
# configuration blk-compare.sh and transports.sh use. Candidates:
#
#   default       aio=threads, main loop (what a user gets)
#   uring         aio=io_uring, main loop
#   strong-p0     aio=io_uring, iothread, poll-max-ns=0 (no polling)
#   strong        aio=io_uring, iothread, QEMU's adaptive polling (32768 ns)
#   strong-p1m    aio=io_uring, iothread, poll-max-ns=1000000
#
# Needs a build of vrio-bench: VRIO_BUILD (default build/ in the tree).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/blk-lib.sh"

SECS=${1:-3}
ROUNDS=${2:-5}
SYSTEMS=(default uring strong-p0 strong strong-p1m)

main() {
	local tmp sys qd r config
	local -A pid
	BENCH=${VRIO_BUILD:-$VRIO_ROOT/build}/tools/vrio-bench
	[[ -x $BENCH ]] || die "no vrio-bench at $BENCH (set VRIO_BUILD)"
	have_cmd qemu-storage-daemon || die "qemu-storage-daemon not installed"
	make_tmpdir tmp
	head -c 64M /dev/urandom >"$tmp/disk.img"
	for sys in "${SYSTEMS[@]}"; do
		cp "$tmp/disk.img" "$tmp/$sys.img"
		config=${sys%%-*}
		case $sys in
		strong-p0) QSD_STRONG_IOTHREAD=poll-max-ns=0 ;;
		strong-p1m) QSD_STRONG_IOTHREAD=poll-max-ns=1000000 ;;
		*) QSD_STRONG_IOTHREAD= ;;
		esac
		qsd_start "pid[$sys]" "$tmp/$sys.sock" "$tmp/$sys.img" "$config" "$tmp/$sys.log"
	done
	for qd in 1 32; do
		for ((r = 0; r < ROUNDS; r++)); do
			for sys in "${SYSTEMS[@]}"; do
				blk_run "$tmp/$sys.$qd" "$tmp/$sys.sock" "$qd" "" qsd="${pid[$sys]}"
			done
		done
	done
	printf '\n4 KiB random read, %s s a run, medians of %s rounds; %s CPUs, load %s\n\n' \
		"$SECS" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	blk_report "$tmp" "1 32" strong "${SYSTEMS[@]}"
}

lib_traps
main "$@"
