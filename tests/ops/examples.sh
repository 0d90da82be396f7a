#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# examples.sh BUILD_DIR: every example topology the packages ship
# (deploy/topology.example.yaml, deploy/examples/*.yaml) loads with
# `vrioctl check`, the daemons' own loader.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local vrioctl=$1/tools/vrioctl f n=0
	[[ -x $vrioctl ]] || skip "vrioctl not built in $1"
	for f in "$VRIO_ROOT"/deploy/topology.example.yaml "$VRIO_ROOT"/deploy/examples/*.yaml; do
		"$vrioctl" check "$f" || die "example topology ${f#"$VRIO_ROOT"/} does not load"
		n=$((n + 1))
	done
	echo "PASS: ops/examples ($n topologies)"
}

main "$@"
