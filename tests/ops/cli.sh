#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# cli.sh BUILD_DIR: every binary answers --version and --help on stdout with
# exit status 0 and nothing on stderr. The four print one version, the one
# the build took (BUILD_DIR/generated/version.c): in a git tree, its
# describe form (TAG[-N]-gHASH[-dirty], or 0.4.0-gHASH before the first
# tag) whose HASH is a commit of this repository; outside git, the
# project's version.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build=$1 bin name out err rc want hash tmp fallback
	local -a bins=(io-server/vrio-ioserver local-hv/vrio-localhv tools/vrioctl tools/vrio-bench)
	for bin in "${bins[@]}"; do
		[[ -x $build/$bin ]] || skip "$bin not built in $build"
	done
	want=$(sed -n 's/^const char vrio_version\[\] = "\(.*\)";$/\1/p' "$build/generated/version.c")
	[[ -n $want ]] || die "no version in $build/generated/version.c"
	lib_traps
	make_tmpdir tmp
	err=$tmp/stderr

	for bin in "${bins[@]}"; do
		name=${bin##*/}
		rc=0
		out=$("$build/$bin" --version 2>"$err") || rc=$?
		((rc == 0)) || die "$name --version: exit status $rc"
		[[ ! -s $err ]] || die "$name --version wrote to stderr: $(cat "$err")"
		[[ $out == "$name $want" ]] || die "$name --version printed '$out', expected '$name $want'"
		rc=0
		out=$("$build/$bin" --help 2>"$err") || rc=$?
		((rc == 0)) || die "$name --help: exit status $rc"
		[[ ! -s $err ]] || die "$name --help wrote to stderr: $(cat "$err")"
		[[ $out == usage:* ]] || die "$name --help does not start with usage: '${out:0:60}'"
		grep -q -- '--version' <<<"$out" || die "$name --help does not mention --version"
		printf '%s --version: %s\n' "$name" "$want"
	done

	if git -C "$VRIO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		[[ $want =~ ^[0-9][0-9A-Za-z.~+]*(-[0-9]+)?-g([0-9a-f]{7,40})(-dirty)?$ ]] ||
			die "version '$want' is not in git describe's form (TAG[-N]-gHASH[-dirty])"
		hash=${BASH_REMATCH[2]}
		git -C "$VRIO_ROOT" cat-file -e "$hash^{commit}" 2>/dev/null ||
			die "version '$want' names $hash, not a commit of $VRIO_ROOT"
	else
		fallback=$(sed -n 's/^project(vrio VERSION \([^ ]*\) .*/\1/p' "$VRIO_ROOT/CMakeLists.txt")
		[[ $want == "$fallback" ]] ||
			die "outside git the version should be the project's, $fallback, not $want"
	fi
	echo "PASS: ops/cli"
}

main "$@"
