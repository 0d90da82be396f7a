#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# floor.sh [ITERS] [ROUNDS]: the floor under a 4 KiB read's round trip at
# QD 1 on this machine, for each shape of the stack, with no storage work
# at all (tests/bench/chain.c: a request goes along a chain of processes
# that busy-poll as vrio's pollers do, each giving the core away after an
# empty look, and 4 KiB come back):
#
#   local     guest + one backend process over shared memory: the shape of
#             qemu-storage-daemon's vhost-user-blk export
#   vrio-shm  guest + local-hv + io-server, the second hop shared memory
#   vrio-tcp  the same, the second hop TCP on loopback
#   local-pause  "local" with pause instead of sched_yield (two processes
#             on two cores can keep theirs)
#
# Three polling processes share two cores in the vrio shapes: the handoffs
# cost what the kernel's scheduler and loopback TCP cost here. Medians of
# ROUNDS (default 3) runs of ITERS (default 50000) round trips each; compare
# with transports.sh's QD 1 p50 (vrio and qsd) from the same machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

ITERS=${1:-50000}
ROUNDS=${2:-3}
make_tmpdir TMP
lib_traps

cc -O2 -Wall -o "$TMP/chain" "$(dirname "${BASH_SOURCE[0]}")/chain.c"
CASES=("local:-n 2 -l shm" "vrio-shm:-n 3 -l shm" "vrio-tcp:-n 3 -l tcp" "local-pause:-n 2 -l shm -w pause")

for ((r = 1; r <= ROUNDS; r++)); do
	for c in "${CASES[@]}"; do
		name=${c%%:*}
		# shellcheck disable=SC2086
		out=$(timeout 120 "$TMP/chain" ${c#*:} -i "$ITERS") || { echo "floor.sh: $name failed" >&2; exit 1; }
		echo "floor.sh: round $r $name: $out" >&2
		# p50 p99 cpu
		awk '{ for (i = 1; i <= NF; i++) { if ($i == "p50") a = $(i+1); if ($i == "p99") b = $(i+1); if ($i == "cpu") c = $(i+1) } print a, b, c }' \
			<<<"$out" >>"$TMP/$name"
	done
done

printf '\nQD 1 round trip floor, 4 KiB back, medians of %d rounds of %d; %s CPUs, load %s\n' \
	"$ROUNDS" "$ITERS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %8s %8s %14s\n' shape p50_us p99_us cpu_us/trip
for c in "${CASES[@]}"; do
	name=${c%%:*}
	printf '%-12s %8s %8s %14s\n' "$name" "$(median_col 1 "$TMP/$name")" \
		"$(median_col 2 "$TMP/$name")" "$(median_col 3 "$TMP/$name")"
done
