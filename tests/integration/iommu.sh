#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# iommu.sh BUILD_DIR: blk devices behind a vIOMMU, vrio-bench playing the
# VMM's IOTLB (--iommu: IOVAs, misses answered page by page on the backend
# channel). Every frame between the daemons is held back 20 ms (VRIO_FAULTS
# delay), so that requests are surely in flight when an invalidation comes.
#
#   1. 2,000 verified writes, then reads, on disk-a (a file) through the
#      IOTLB; the backing file holds what was written;
#   2. strict (disk-b): reads in flight when the VMM invalidates their
#      buffers have all completed when it gets the acknowledgement, and no
#      byte lands in the range afterwards;
#   3. deferred (disk-c, batch 64 / 100 ms): the acknowledgement may come
#      first; the reads still complete right, and the exposure is exported;
#   4. a read into an IOVA the VMM never maps breaks that device (disk-b)
#      and no other: disk-a still verifies;
#   5. IOTLB metrics on local-hv, invalidations on the io-server, promtool;
#      both daemons stop with status 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

fail() {
	show_log vrio-localhv "$RUN/localhv.log"
	show_log vrio-ioserver "$RUN/ioserver.log"
	die "$*"
}

main() {
	local build seed p_listen p_iom p_hvm m
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	make_tmpdir RUN
	free_port p_listen
	free_port p_iom
	free_port p_hvm
	vrio_ctl_paths "$RUN"
	cat >"$RUN/topology.yaml" <<EOF
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
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    backend: {file: $RUN/disk-a.img, size: 32M}
  - name: disk-b
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/b.sock
    backend: {ram: 16M}
  - name: disk-c
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/c.sock
    backend: {ram: 16M}
    iommu: {policy: deferred, batch: 64, delay_ms: 100}
EOF
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	export VRIO_FAULTS="delay_us=20000,seed=$seed"
	start_daemon IO_PID vrio-ioserver "$RUN/ioserver.log" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node io0
	wait_for_port "$p_listen" 20 "$IO_PID" || fail "vrio-ioserver is not listening"
	wait_for_socket "$VRIO_IO_CTL" 20 "$IO_PID" || fail "vrio-ioserver serves no control socket"
	start_daemon HV_PID vrio-localhv "$RUN/localhv.log" \
		"$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" --node host0
	unset VRIO_FAULTS
	for m in a b c; do
		wait_for_socket "$RUN/$m.sock" 20 "$HV_PID" || fail "no socket for disk-$m"
	done
	wait_for_socket "$VRIO_HV_CTL" 20 "$HV_PID" || fail "vrio-localhv serves no control socket"

	"$BENCH" --socket "$RUN/a.sock" --iommu --rw randwrite --iodepth 32 --count 2000 \
		--seed "$seed" --verify --state "$RUN/a.state" --quiet ||
		fail "writes through the IOTLB failed"
	"$BENCH" --socket "$RUN/a.sock" --iommu --rw randread --iodepth 32 --count 2000 \
		--seed "$((seed + 1))" --verify --state "$RUN/a.state" --quiet ||
		fail "reads through the IOTLB did not verify"

	"$BENCH" --socket "$RUN/b.sock" --iommu-check invalidate ||
		fail "strict: the invalidation's promise was broken"
	"$BENCH" --socket "$RUN/c.sock" --iommu-check invalidate --iommu-deferred ||
		fail "deferred: the reads did not survive the invalidation"
	"$BENCH" --socket "$RUN/b.sock" --iommu-check unmapped ||
		fail "a read into an unmapped IOVA was not refused"
	"$BENCH" --socket "$RUN/a.sock" --iommu --rw randread --iodepth 8 --count 500 \
		--seed "$((seed + 2))" --verify --state "$RUN/a.state" --quiet ||
		fail "disk-a stopped working when disk-b broke"

	vrio_metrics vrio-localhv "127.0.0.1:$p_hvm" "$RUN/hv.metrics" || fail "no local-hv metrics"
	vrio_metrics vrio-ioserver "127.0.0.1:$p_iom" "$RUN/io.metrics" || fail "no io-server metrics"
	if have_cmd promtool; then
		promtool check metrics <"$RUN/hv.metrics" || fail "promtool rejects local-hv's"
		promtool check metrics <"$RUN/io.metrics" || fail "promtool rejects the io-server's"
	fi
	[[ $(metric_sum 'vrio_localhv_device_broken{device="disk-b"}' <"$RUN/hv.metrics") == 1 ]] ||
		fail "disk-b is not broken after the unmapped IOVA"
	[[ $(metric_sum 'vrio_localhv_device_broken{device="disk-a"}' <"$RUN/hv.metrics") == 0 ]] ||
		fail "disk-a broke too"
	grep -q 'disk-b: guest error: the VMM did not answer an IOTLB miss' "$RUN/localhv.log" ||
		fail "the log does not say why disk-b broke"
	[[ $(metric_sum 'vrio_localhv_iotlb_misses_total{device="disk-a"}' <"$RUN/hv.metrics") -gt 0 ]] ||
		fail "no IOTLB misses counted for disk-a"
	[[ $(metric_sum 'vrio_localhv_iotlb_hits_total{device="disk-a"}' <"$RUN/hv.metrics") -gt 0 ]] ||
		fail "no IOTLB hits counted for disk-a"
	[[ $(metric_sum 'vrio_localhv_iotlb_invalidation_seconds_count{device="disk-b"}' \
		<"$RUN/hv.metrics") -ge 1 ]] || fail "no invalidation time recorded for disk-b"
	# Deferred: a stale mapping lived (until its batch, or the device's
	# stop); strict: none ever did.
	python3 - "$RUN/hv.metrics" <<'PY' || fail "the exposure is not what the policies promise"
import re, sys
text = open(sys.argv[1]).read()
def stale(dev):
    m = re.search(r'^vrio_localhv_iotlb_stale_max_seconds\{device="%s"\} (\S+)$' % dev, text, re.M)
    return float(m.group(1)) if m else -1
sys.exit(0 if stale("disk-c") > 0.001 and stale("disk-b") == 0 else 1)
PY
	[[ $(metric_sum 'vrio_ioserver_iotlb_invalidations_total{device="disk-b"}' <"$RUN/io.metrics") -ge 1 ]] ||
		fail "the io-server acknowledged no invalidation for disk-b"
	vrio_stop vrio-localhv "$HV_PID" "$RUN/localhv.log" || fail "local-hv did not stop cleanly"
	vrio_stop vrio-ioserver "$IO_PID" "$RUN/ioserver.log" || fail "the io-server did not stop cleanly"
	"$BENCH" --check-file "$RUN/disk-a.img" --state "$RUN/a.state" --zero-unwritten ||
		die "disk-a's backing file does not hold what was written"
	echo "PASS: integration/iommu"
}

lib_traps
main "$@"
