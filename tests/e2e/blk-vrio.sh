#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-vrio.sh BUILD_DIR [iommu]: the e2e guest through vrio, the blk-qsd.sh scenario
# with vrio-localhv as the vhost-user backend and vrio-ioserver serving the
# backing file over TCP on loopback:
#
#   1. a topology with free loopback ports and a 64 MiB backing file;
#   2. vrio-ioserver, then vrio-localhv (once the io-server listens);
#   3. a TCG guest (vhost-user-blk, 2 queues, 2 CPUs) writes 1 MiB at 4 MiB
#      with O_DIRECT and reads it back;
#   4. the backing file holds the pattern, with the guest's checksum;
#   5. both daemons serve /metrics, and the io-server counts requests for
#      vm1-disk;
#   6. SIGTERM to vrio-localhv, then vrio-ioserver: both exit 0.
#
# With `iommu` the guest has a vIOMMU: the q35 machine with intel-iommu
# (device-iotlb on), iommu_platform=on on the disk, the kernel booted with
# intel_iommu=on iommu.strict=1, so that every DMA mapping is made and torn
# down through local-hv's IOTLB: local-hv must count misses (the VMM's
# translations it asked for) and invalidations (strict: each forwarded to
# the io-server and acknowledged before the guest's unmap returns).
#
# Exits 77 (SKIP) when the daemons are not built, or QEMU or the guest
# kernel package is unavailable. VRIO_SEED and VRIO_KEEP_TMP as in
# blk-qsd.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

OFF=$((4 << 20))
LEN=$((1 << 20))
QUEUES=2
REQUESTS_METRIC='vrio_ioserver_requests_total{device="vm1-disk"'

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# check_metrics DIR: fetches both daemons' metrics and checks that the
# io-server counted requests for vm1-disk.
check_metrics() {
	local dir=$1 requests
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$dir/ioserver.metrics" ||
		fail "io-server metrics unavailable"
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$dir/localhv.metrics" ||
		fail "local-hv metrics unavailable"
	[[ -s $dir/localhv.metrics ]] || fail "local-hv served empty metrics"
	requests=$(metric_sum "$REQUESTS_METRIC" <"$dir/ioserver.metrics")
	log "io-server counted $requests requests for vm1-disk"
	((requests > 0)) || fail "io-server metrics show no requests for vm1-disk ($REQUESTS_METRIC...})"
}

main() {
	[[ $# -eq 1 || ( $# -eq 2 && $2 == iommu ) ]] || die "usage: $0 BUILD_DIR [iommu]"
	local build_dir guest tmp seed line file_line m
	local -a gopt=()
	[[ ${2:-} == iommu ]] && gopt=(--iommu)
	build_dir=$(mkdir -p "$1" && cd "$1" && pwd)
	vrio_binaries "$build_dir" || skip "daemons not built ($VRIO_IOSERVER_BIN, $VRIO_LOCALHV_BIN)"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"

	guest=$build_dir/tests/e2e/guest
	guest_image "$guest"
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $tmp"

	vrio_up "$tmp"
	run_guest "$tmp/results" --socket "$VRIO_SOCK" --kernel-dir "$guest" --run blk-pattern \
		--off "$OFF" --len "$LEN" --seed "$seed" --queues "$QUEUES" "${gopt[@]}" \
		--log "$tmp/console.log" || fail "guest run failed"
	cat "$tmp/results"

	file_line=$(check_file "$guest/guest-io" "$VRIO_DISK" "$OFF" "$LEN" "$seed") ||
		fail "backing file check failed: $file_line"
	printf '%s\n' "$file_line"
	line=$(grep ' write-verify ' "$tmp/results")
	[[ $(result_field "$line" sum_written) == "$(result_field "$file_line" sum)" ]] ||
		fail "checksum written by the guest differs from the backing file's"

	check_metrics "$tmp"
	if [[ ${2:-} == iommu ]]; then
		for m in misses invalidations; do
			[[ $(metric_sum "vrio_localhv_iotlb_${m}_total{device=\"vm1-disk\"}" \
				<"$tmp/localhv.metrics") -gt 0 ]] || fail "local-hv counted no IOTLB $m"
		done
		[[ $(metric_sum 'vrio_ioserver_iotlb_invalidations_total{device="vm1-disk"}' \
			<"$tmp/ioserver.metrics") -gt 0 ]] ||
			fail "the io-server acknowledged no invalidation"
		log "IOTLB: $(metric_sum 'vrio_localhv_iotlb_misses_total{device="vm1-disk"}' \
			<"$tmp/localhv.metrics") misses, $(metric_sum \
			'vrio_localhv_iotlb_invalidations_total{device="vm1-disk"}' \
			<"$tmp/localhv.metrics") invalidations forwarded and acknowledged"
	fi
	vrio_down || die "a daemon did not stop cleanly"
	echo "PASS: e2e/blk-vrio${2:+-$2}"
}

lib_traps
main "$@"
