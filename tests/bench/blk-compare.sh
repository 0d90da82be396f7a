#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-compare.sh BUILD_DIR [SECONDS] [ROUNDS]: 4 KiB random reads at queue
# depth 1 and 32 from vrio-bench, through vrio (vrio-localhv -> TCP on
# loopback -> vrio-ioserver -> file) and through qemu-storage-daemon's
# vhost-user-blk export of the same file, alternating in one run. Prints the
# median of ROUNDS runs per case: IOPS, p50/p99 latency, and the CPU seconds
# the backend process(es) and the bench used per run, then vrio/qsd ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}


# one_run SOCKET QD PIDS...: prints "iops p50 p99 backend_cpu bench_cpu"
one_run() {
	local sock=$1 qd=$2 t0 t1 out
	shift 2
	t0=$(cpu_ticks "$@")
	out=$("$BENCH" --socket "$sock" --rw randread --bs 4096 --iodepth "$qd" \
		--runtime "$SECS" --size 64M --json --quiet)
	t1=$(cpu_ticks "$@")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
bench_cpu = r["cpu_user_s"] + r["cpu_sys_s"]
print(f'{r["iops"]:.0f} {r["lat_us"]["p50"]:.1f} {r["lat_us"]["p99"]:.1f} {cpu:.2f} {bench_cpu:.2f}')
PY
}


main() {
	local build tmp qsd_sock qsd_pid qd r sys col
	build=$(cd "$1" && pwd)
	BENCH=$build/tools/vrio-bench
	vrio_binaries "$build" || die "build vrio first (cmake --build $build)"
	have_cmd qemu-storage-daemon || die "qemu-storage-daemon not installed"
	make_tmpdir tmp

	vrio_up "$tmp"
	# Fill the region read, so both read real data, not holes.
	"$BENCH" --socket "$VRIO_SOCK" --rw write --bs 1048576 --iodepth 4 --size 64M \
		--count 64 --quiet >/dev/null

	qsd_sock=$tmp/qsd.sock
	qemu-storage-daemon \
		--blockdev "driver=file,node-name=f0,filename=$VRIO_DISK" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--export "type=vhost-user-blk,id=e0,addr.type=unix,addr.path=$qsd_sock,node-name=d0,writable=on,num-queues=1" \
		>"$tmp/qsd.log" 2>&1 &
	qsd_pid=$!
	track_pid "$qsd_pid" qemu-storage-daemon
	wait_for_socket "$qsd_sock" 20 "$qsd_pid" || die "qemu-storage-daemon did not start"

	for qd in 1 32; do
		for ((r = 0; r < ROUNDS; r++)); do
			one_run "$VRIO_SOCK" "$qd" "$VRIO_IO_PID" "$VRIO_HV_PID" >>"$tmp/vrio.$qd"
			one_run "$qsd_sock" "$qd" "$qsd_pid" >>"$tmp/qsd.$qd"
		done
	done

	printf '\n4 KiB random read, %s s per run, median of %s runs (CPU in seconds per run)\n' \
		"$SECS" "$ROUNDS"
	printf '%-6s %-4s %10s %9s %9s %12s %10s\n' system qd IOPS p50_us p99_us backend_cpu bench_cpu
	for qd in 1 32; do
		for sys in vrio qsd; do
			printf '%-6s %-4s' "$sys" "$qd"
			for col in 1 2 3 4 5; do
				printf ' %10s' "$(awk -v c=$col '{ print $c }' "$tmp/$sys.$qd" | median)"
			done
			printf '\n'
		done
	done
	printf '\nratios vrio/qsd (medians):\n'
	for qd in 1 32; do
		python3 - "$tmp/vrio.$qd" "$tmp/qsd.$qd" "$qd" <<'PY'
import statistics, sys
def med(path, col):
    return statistics.median(float(l.split()[col]) for l in open(path))
v, q, qd = sys.argv[1], sys.argv[2], sys.argv[3]
print(f'qd {qd}: IOPS {med(v,0)/med(q,0):.2f}x  p50 {med(v,1)/med(q,1):.2f}x  '
      f'p99 {med(v,2)/med(q,2):.2f}x  backend CPU {med(v,3)/max(med(q,3),0.01):.2f}x')
PY
	done
	vrio_down
}

lib_traps
main "$@"
