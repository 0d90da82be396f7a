#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-tcp.sh BUILD_DIR [SECONDS] [ROUNDS] [CONNS]: guest TCP throughput,
# the runs of tests/e2e/net-tcp.sh repeated: two QEMU TCG guests on vrio
# virtio-net ports, on one io-server and across a trunk, with the device's
# offloads on and off, each run SECONDS (default 10) of guest-tcp over
# CONNS connections (default 1). Each round makes every run of
# VRIO_TCP_RUNS once (net-tcp.sh: one io-server on, off and mixed, trunk on
# and off), so that they share the machine's noise; prints each one's
# median Mbit/s over ROUNDS (default 3), its runs, their retransmits, and
# the per-round on/off ratios. Every run's data is checked by the
# receiver. 20 to 45 s a run on a 2-core machine, idle or loaded.
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 BUILD_DIR [SECONDS] [ROUNDS] [CONNS]" >&2; exit 2; }
VRIO_TCP_SECS=${2:-10} VRIO_TCP_ROUNDS=${3:-3} VRIO_TCP_CONNS=${4:-1} \
	exec bash "$(dirname "${BASH_SOURCE[0]}")/../e2e/net-tcp.sh" "$1"
