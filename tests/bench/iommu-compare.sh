#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# iommu-compare.sh BUILD_DIR [SECONDS] [ROUNDS]: 4 KiB random reads at queue
# depth 1 and 32 from vrio-bench through vrio (TCP on loopback, RAM disks),
#
#   none      no vIOMMU;
#   mapped    behind a vIOMMU (vrio-bench answers local-hv's IOTLB misses),
#             buffers mapped once and kept: the cost of translation alone;
#   strict    behind a vIOMMU that unmaps each request's buffer once it is
#             done (as Linux with iommu.strict=1): every unmap is forwarded
#             to the io-server and acknowledged before the VMM hears back;
#   deferred  the same unmaps on a device with policy deferred (batches of
#             at most 32, or 10 ms): the VMM hears back at once.
#
# Rounds alternate between the cases. Prints medians of IOPS, p50/p99, the
# daemons' CPU seconds per run, ratios to `none`, and the deferred device's
# exposure (the longest a stale mapping lived).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
unset VRIO_FAULTS

# one_run CASE SOCKET QD ARGS...: appends "iops p50 p99 cpu" to $TMP/CASE.QD
one_run() {
	local name=$1 sock=$2 qd=$3 t0 t1 out
	shift 3
	t0=$(cpu_ticks "$IO_PID" "$HV_PID")
	out=$("$BENCH" --socket "$sock" --rw randread --bs 4096 --iodepth "$qd" \
		--runtime "$SECS" --json --quiet "$@") || die "$name qd $qd: vrio-bench failed"
	t1=$(cpu_ticks "$IO_PID" "$HV_PID")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" >>"$TMP/$name.$qd" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f'{r["iops"]:.0f} {r["lat_us"]["p50"]:.1f} {r["lat_us"]["p99"]:.1f} {cpu:.2f}')
PY
}

main() {
	local p_listen p_iom p_hvm r qd name
	BUILD=$(cd "$1" && pwd)
	BENCH=$BUILD/tools/vrio-bench
	vrio_binaries "$BUILD" || die "build vrio first (cmake --build $BUILD)"
	make_tmpdir TMP
	free_port p_listen
	free_port p_iom
	free_port p_hvm
	vrio_ctl_paths "$TMP"
	cat >"$TMP/topology.yaml" <<EOT
version: 1
io_servers:
  - name: io0
    listen: 127.0.0.1:$p_listen
    metrics: 127.0.0.1:$p_iom
    control: $VRIO_IO_CTL
hosts:
  - name: host0
    metrics: 127.0.0.1:$p_hvm
    control: $VRIO_HV_CTL
devices:
  - name: strict
    type: blk
    host: host0
    io_server: io0
    socket: $TMP/s.sock
    backend: {ram: 64M}
  - name: deferred
    type: blk
    host: host0
    io_server: io0
    socket: $TMP/d.sock
    backend: {ram: 64M}
    iommu: {policy: deferred, batch: 32, delay_ms: 10}
EOT
	start_daemon IO_PID vrio-ioserver "$TMP/ioserver.log" \
		"$VRIO_IOSERVER_BIN" --config "$TMP/topology.yaml" --node io0
	wait_for_port "$p_listen" 20 "$IO_PID" || die "vrio-ioserver is not listening"
	start_daemon HV_PID vrio-localhv "$TMP/localhv.log" \
		"$VRIO_LOCALHV_BIN" --config "$TMP/topology.yaml" --node host0
	wait_for_socket "$TMP/d.sock" 20 "$HV_PID" || die "vrio-localhv serves no sockets"

	for qd in 1 32; do
		for ((r = 0; r < ROUNDS; r++)); do
			one_run none "$TMP/s.sock" "$qd"
			one_run mapped "$TMP/s.sock" "$qd" --iommu
			one_run strict "$TMP/s.sock" "$qd" --iommu-unmap
			one_run deferred "$TMP/d.sock" "$qd" --iommu-unmap
		done
	done
	vrio_metrics vrio-localhv "127.0.0.1:$p_hvm" "$TMP/hv.metrics" || die "no metrics"

	printf '\n4 KiB random read, RAM disks, %s s per run, median of %s runs (daemons CPU s per run)\n' \
		"$SECS" "$ROUNDS"
	printf '%-9s %-4s %10s %9s %9s %12s %9s\n' case qd IOPS p50_us p99_us daemons_cpu vs_none
	for qd in 1 32; do
		for name in none mapped strict deferred; do
			python3 - "$name" "$qd" "$TMP/$name.$qd" "$TMP/none.$qd" <<'PY'
import statistics, sys
name, qd, mine, base = sys.argv[1:]
def med(p, c):
    return statistics.median(float(l.split()[c]) for l in open(p))
print(f'{name:<9} {qd:<4} {med(mine,0):10.0f} {med(mine,1):9.1f} {med(mine,2):9.1f} '
      f'{med(mine,3):12.2f} {med(mine,0)/med(base,0):8.2f}x')
PY
		done
	done
	printf '\nIOTLB, over the whole run:\n'
	grep -E '^vrio_localhv_iotlb_(misses|invalidations)_total|^vrio_localhv_iotlb_stale_max_seconds|^vrio_localhv_iotlb_invalidation_seconds_(sum|count)' \
		"$TMP/hv.metrics" | sed 's/^/  /'
	vrio_stop vrio-localhv "$HV_PID" "$TMP/localhv.log" || die "local-hv did not stop cleanly"
	vrio_stop vrio-ioserver "$IO_PID" "$TMP/ioserver.log" || die "the io-server did not stop cleanly"
}

lib_traps
main "$@"
