#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-demo.sh: the io-server as the rack's virtual switch, on one machine.
#
#   sudo scripts/net-demo.sh [--skip-deps] [--skip-build]
#
# Installs the dependencies, builds vrio into build/, and runs
# tests/e2e/net-vrio.sh: three network namespaces stand for an io node and
# two compute nodes; three QEMU guests with Linux's virtio_net attach
# through two vrio-localhv; A and B (network lan) ping each other and move
# 10 MiB with matching checksums, C (network isolated) cannot reach them,
# and the io node pings A through lan's uplink TAP. The run directory (its
# path is printed) keeps the topology, the daemons' logs, the guests'
# consoles and both daemons' metrics.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

skip_deps=0
skip_build=0
for a in "$@"; do
	case $a in
	--skip-deps) skip_deps=1 ;;
	--skip-build) skip_build=1 ;;
	*) sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
	esac
done
((skip_deps)) || "$VRIO_ROOT/scripts/deps.sh"
if ((!skip_build)); then
	cmake -S "$VRIO_ROOT" -B "$VRIO_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$VRIO_ROOT/build" -j"$(nproc)" >/dev/null
fi
VRIO_KEEP_TMP=1 exec bash "$VRIO_ROOT/tests/e2e/net-vrio.sh" "$VRIO_ROOT/build"
