#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# modes.sh: every script that the README or CI tells someone to run, and
# every *.sh under scripts/ and tests/, is committed executable (mode
# 100755 in git's index, what a fresh clone gets); those the README or CI
# name also start with a #! line (the others may be libraries to source),
# so that they run as typed. A script the README names without its
# directory (`live-rack.sh build 10 3`) is found by its file name: every
# file of that name must pass. A name the README gives that git does not
# have is a failure too. Skipped outside a git work tree (a tarball has no
# modes to check).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

main() {
	local f mode path first bad=0 n=0
	local -A mode_of=() named=()
	local -a tracked hits

	have_cmd git || skip "git not found"
	git -C "$VRIO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
		skip "$VRIO_ROOT is not a git work tree"
	while read -r mode _ _ path; do
		mode_of[$path]=$mode
	done < <(git -C "$VRIO_ROOT" ls-files -s)
	tracked=("${!mode_of[@]}")

	# What CI runs, and what .ci/run itself runs.
	named[.ci/run]=".ci/run"
	for f in $(grep -o '[A-Za-z0-9_./-]*\.sh' "$VRIO_ROOT/.ci/run" | sort -u); do
		named[$f]=".ci/run"
	done
	# What the README shows.
	for f in $(grep -oE '(^|[^A-Za-z0-9_./-])[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.sh' \
		"$VRIO_ROOT/README.md" | sed 's/^[^A-Za-z0-9_.]//' | sort -u); do
		if [[ $f == */* ]]; then
			named[$f]=README.md
			continue
		fi
		mapfile -t hits < <(printf '%s\n' "${tracked[@]}" | grep -E "(^|/)${f//./\\.}\$" || true)
		if ((${#hits[@]} == 0)); then
			log "README.md names $f: no file in git has that name"
			bad=1
		fi
		for path in "${hits[@]}"; do
			named[$path]="README.md (as $f)"
		done
	done
	for f in "${tracked[@]}"; do
		[[ $f == scripts/*.sh || $f == tests/*.sh ]] && named[$f]=${named[$f]:-"its directory"}
	done

	for f in $(printf '%s\n' "${!named[@]}" | sort); do
		n=$((n + 1))
		mode=${mode_of[$f]:-}
		if [[ -z $mode ]]; then
			log "$f (from ${named[$f]}) is not in git"
			bad=1
			continue
		fi
		if [[ $mode != 100755 ]]; then
			log "$f (from ${named[$f]}) has mode $mode in git, not 100755: git update-index --chmod=+x $f"
			bad=1
		fi
		first=$(head -c 2 "$VRIO_ROOT/$f")
		if [[ ${named[$f]} != "its directory" && $first != '#!' ]]; then
			log "$f (from ${named[$f]}) does not start with #!"
			bad=1
		fi
	done
	((bad == 0)) || die "scripts that do not run as typed (above)"
	echo "PASS: ops/modes ($n scripts, all 100755, those named with a #! line)"
}

main "$@"
