#!/usr/bin/env bash
# The test command: install dependencies, build with warnings as errors, run
# every test (unit, integration, end to end with a QEMU guest), then build
# again with AddressSanitizer + UndefinedBehaviorSanitizer and run the unit
# and integration tests under it. Skipped tests are listed with their reason.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

"$top/scripts/deps.sh"

run_suite() { # build-dir label-regex cmake-args...
	local dir=$1 labels=$2
	shift 2
	cmake -S "$top" -B "$dir" -DVRIO_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs" >/dev/null
	(cd "$dir" && ctest --output-on-failure -L "$labels" -j1)
}

echo "== build and test (RelWithDebInfo, -Werror)"
run_suite "$top/build" 'unit|integration|e2e'

echo "== build and test with ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run_suite "$top/build-asan" 'unit|integration' -DVRIO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
