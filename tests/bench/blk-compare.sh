#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-compare.sh BUILD_DIR [SECONDS] [ROUNDS]: 4 KiB random reads at queue
# depth 1 and 32 from vrio-bench, in one run, through
#
#   vrio         vrio-localhv -> TCP on loopback -> vrio-ioserver (one
#                reactor) -> a 64 MiB page-cached file through io_uring
#   vrio-null    the same daemons, a disk on the null backend: the data
#                path alone
#   qsd          qemu-storage-daemon at its strongest for this workload
#                (tests/bench/blk-lib.sh: aio=io_uring, an iothread)
#   qsd-default  qemu-storage-daemon as it comes (aio=threads, main loop)
#
# the qsd rows each on their own copy of vrio's file, all filled with the
# same data. Every round runs every system in turn, so all see the same
# machine. Prints medians over ROUNDS of IOPS, p50/p99, the CPU time per
# I/O of each daemon (io-server, local-hv, qsd) and of the daemons
# together, IOPS per busy io-server core, and each system's ratios to qsd;
# then where vrio's time goes (vrio-bench --breakdown), and each daemon's CPU at rest.
# QSD_STRONG_IOTHREAD tries other iothread options for the qsd row.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/blk-lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
SYSTEMS=(vrio vrio-null qsd qsd-default)
unset VRIO_FAULTS

main() {
	local build tmp qd r sys sock qsd_pid qsd_default_pid
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "build vrio first (cmake --build $build)"
	have_cmd qemu-storage-daemon || die "qemu-storage-daemon not installed"
	make_tmpdir tmp

	RACK_TRANSPORT=tcp RACK_B_BACKEND="{null: 64M}" rack_up "$tmp" "$build"
	# Fill the region read, so every system reads data, not holes.
	"$BENCH" --socket "$RACK_SOCK_A" --rw write --bs 1048576 --iodepth 4 --size 64M \
		--count 64 --quiet >/dev/null || die "cannot fill vrio's disk"
	cp "$RACK_DISK_A" "$tmp/qsd.img"
	cp "$RACK_DISK_A" "$tmp/qsd-default.img"
	qsd_start qsd_pid "$tmp/qsd.sock" "$tmp/qsd.img" strong "$tmp/qsd.log"
	qsd_start qsd_default_pid "$tmp/qsd-default.sock" "$tmp/qsd-default.img" default \
		"$tmp/qsd-default.log"

	for qd in 1 32; do
		for ((r = 0; r < ROUNDS; r++)); do
			for sys in "${SYSTEMS[@]}"; do
				case $sys in
				vrio | vrio-null)
					sock=$RACK_SOCK_A
					[[ $sys == vrio-null ]] && sock=$RACK_SOCK_B
					blk_run "$tmp/$sys.$qd" "$sock" "$qd" "$VRIO_IO_METRICS,$VRIO_HV_METRICS" \
						io-server="$VRIO_IO_PID" local-hv="$VRIO_HV_PID"
					;;
				qsd)
					blk_run "$tmp/$sys.$qd" "$tmp/qsd.sock" "$qd" "" qsd="$qsd_pid"
					;;
				qsd-default)
					blk_run "$tmp/$sys.$qd" "$tmp/qsd-default.sock" "$qd" "" \
						qsd="$qsd_default_pid"
					;;
				esac
			done
		done
	done

	printf '\n4 KiB random read, %s s a run, medians of %s rounds; %s CPUs, load %s\n' \
		"$SECS" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'qsd:         %s\nqsd-default: %s\n\n' "$(qsd_config_text strong)" \
		"$(qsd_config_text default)"
	blk_report "$tmp" "1 32" qsd "${SYSTEMS[@]}"
	blk_idle "$SECS" io-server="$VRIO_IO_PID" local-hv="$VRIO_HV_PID" qsd="$qsd_pid"
	vrio_down || die "a vrio daemon did not stop cleanly"
}

lib_traps
main "$@"
