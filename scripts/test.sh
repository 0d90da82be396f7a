#!/usr/bin/env bash
# The test command: install dependencies, build with warnings as errors,
# build the Debian packages (scripts/package.sh), run every test (unit,
# integration, end to end with QEMU guests and the packages under systemd,
# the packages themselves), run the README's demo command as typed, then
# build again with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the unit and integration tests under it, then run every libFuzzer target
# for VRIO_FUZZ_SECONDS (default 30) each when clang can build them. Skipped
# tests are listed with their reason.
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

# Why libFuzzer harnesses cannot be built here, or nothing if they can.
no_libfuzzer() {
	local tmp why=
	command -v clang >/dev/null || { echo "clang not installed"; return; }
	tmp=$(mktemp -d /tmp/vrio-fuzzcheck.XXXXXX)
	echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$tmp/t.c"
	clang -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" 2>/dev/null ||
		why="clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing?)"
	rm -rf "$tmp"
	echo "$why"
}

fuzz_secs=${VRIO_FUZZ_SECONDS:-30}
echo "== fuzzing: every libFuzzer target for $fuzz_secs s"
why=$(no_libfuzzer)
if [ -n "$why" ]; then
	echo "SKIP fuzz: $why"
else
	cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_C_COMPILER="$(command -v clang)" -DVRIO_WERROR=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$top/build-fuzz" -j"$jobs" >/dev/null
	# What a target finds stays here (run.sh prints where); a crash, leak,
	# timeout or broken property fails the run.
	art="$top/build-fuzz/artifacts-$(date +%Y%m%d-%H%M%S)"
	VRIO_FUZZ_ARTIFACTS="$art" tests/fuzz/run.sh "$top/build-fuzz" "$fuzz_secs"
	rmdir "$art" 2>/dev/null || true
fi
