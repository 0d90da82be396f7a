#!/usr/bin/env bash
# The test command: install dependencies, build with warnings as errors,
# build the Debian packages (scripts/package.sh), run every test (unit,
# integration, end to end with QEMU guests and the packages under systemd,
# the packages themselves), run the README's demo command as typed, then
# build again with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the unit and integration tests under it. Skipped tests are listed with
# their reason.
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

echo "== build and test (RelWithDebInfo, -Werror), Debian packages"
# The packages' tests (package/debs, e2e/systemd) use these.
"$top/scripts/package.sh" --skip-deps --build-dir "$top/build/pkg"
run_suite "$top/build" 'unit|integration|e2e|package'

echo "== the README's demo, as typed"
scripts/demo.sh

echo "== build and test with ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run_suite "$top/build-asan" 'unit|integration' -DVRIO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
