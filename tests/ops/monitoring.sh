#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# monitoring.sh BUILD_DIR: the names the dashboard and the alert rules use
# are the names a running rack exports. A rack on loopback with what makes
# every family carry samples: a blk device behind the deferred IOTLB
# policy with a throttle and a mirror stage, a net device on a network (the
# switch's port and counters), one io-server and one local-hv; vrio-bench
# writes and reads the disk so the histograms fill. Both expositions pass `promtool check metrics`; then
# every metric that a dashboard query or an alert selects is in one of
# them, with the labels the query matches or groups by
# (tests/ops/monitoring.py names). A renamed metric or label fails here.
# Skipped without promtool, python3's yaml module or the built daemons.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

write_rack() {
	local file=$1 run=$2
	cat >"$file" <<EOF2
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
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
    socket: $run/vm1-disk.sock
    backend: {ram: 64M}
    iommu: {policy: deferred}
    interpose:
      - throttle: {iops: 1000000}
      - mirror: {ram: 64M}
  - name: vm1-net
    type: net
    host: host0
    io_server: io0
    socket: $run/vm1-net.sock
    mac: "52:54:00:00:00:01"
    network: lan
EOF2
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build run f
	build=$(cd "$1" && pwd)
	have_cmd promtool || skip "promtool not found (package prometheus)"
	python3 -c 'import yaml' 2>/dev/null || skip "python3 with yaml not found (package python3-yaml)"
	vrio_binaries "$build" || skip "daemons not built in $build"
	[[ -x $build/tools/vrio-bench ]] || skip "vrio-bench not built"
	lib_traps
	make_tmpdir run

	vrio_addrs "$run"
	write_rack "$run/topology.yaml" "$run"
	vrio_start "$run" "$run/topology.yaml" "$run/vm1-disk.sock" "$run/vm1-net.sock"
	"$build/tools/vrio-bench" --socket "$run/vm1-disk.sock" --rw randrw --iodepth 4 \
		--count 2000 --quiet >"$run/bench.log" 2>&1 || {
		cat "$run/bench.log" >&2
		die "vrio-bench against vm1-disk failed"
	}
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$run/ioserver.metrics" || die "no io-server metrics"
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$run/localhv.metrics" || die "no local-hv metrics"
	vrio_down || die "a daemon did not stop cleanly"

	for f in ioserver localhv; do
		promtool check metrics <"$run/$f.metrics" ||
			die "the $f exposition does not pass promtool check metrics"
	done
	python3 "$VRIO_ROOT/tests/ops/monitoring.py" names "$run/ioserver.metrics" "$run/localhv.metrics" \
		-- "$VRIO_ROOT/deploy/grafana/vrio-rack.json" "$VRIO_ROOT/deploy/prometheus/vrio-alerts.yml" ||
		die "the dashboard or the alerts use names the daemons do not export (above)"
	echo "PASS: ops/monitoring"
}

main "$@"
