#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every fuzz harness for SECONDS (default 20) from its seed corpus and
# fails if any of them finds a crash, a leak, UB or a timeout.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
#
# The corpus is copied to a temporary directory, so the repository's seeds
# never change; what a harness finds (crash-*, leak-*, timeout-*) and its
# log are kept in $VRIO_FUZZ_ARTIFACTS (default: a directory under /tmp,
# printed at the end). Reproduce with: BUILD_DIR/tests/fuzz/fuzz_T FILE
set -u

usage() { echo "usage: $0 BUILD_DIR [SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
build=$1
secs=${2:-20}
case $secs in ''|*[!0-9]*) usage ;; esac
[ "$secs" -ge 1 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
bindir=$build/tests/fuzz
targets="frame stream topology walker session auth blk ctl vhost_msg gso"

work=$(mktemp -d /tmp/vrio-fuzz.XXXXXX) || exit 1
artifacts=${VRIO_FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$artifacts" || exit 1
cleanup() {
	# Keep the directory only if it holds something found.
	if [ -z "$(ls -A "$artifacts" 2>/dev/null)" ]; then
		rm -rf "$work"
	else
		rm -rf "$work/corpus" "$work/logs"
		rmdir "$work" 2>/dev/null	# empty when the artifacts live elsewhere
	fi
}
trap cleanup EXIT

failed=0
for t in $targets; do
	bin=$bindir/fuzz_$t
	if [ ! -x "$bin" ]; then
		echo "FAIL fuzz_$t: $bin not built (a Clang build: CC=clang cmake ...)"
		failed=1
		continue
	fi
	mkdir -p "$work/corpus/$t" "$work/logs" "$artifacts/$t"
	if [ -d "$here/corpus/$t" ]; then
		cp -r "$here/corpus/$t/." "$work/corpus/$t/"
	fi
	log=$work/logs/$t.log
	t0=$SECONDS
	# The outer timeout only guards against the fuzzer itself hanging.
	timeout --kill-after=10 $((secs + 60)) "$bin" \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$t/" \
		"$work/corpus/$t" >"$log" 2>&1
	rc=$?
	took=$((SECONDS - t0))
	stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	if [ $rc -ne 0 ] || [ -n "$(ls -A "$artifacts/$t")" ]; then
		echo "FAIL fuzz_$t (exit $rc) after ${execs:-?} runs in $took s"
		cp "$log" "$artifacts/$t/fuzz.log"
		grep -E -A 40 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|property violated' \
			"$log" | head -n 60
		failed=1
	else
		rmdir "$artifacts/$t"
		echo "ok   fuzz_$t: ${execs:-?} runs in $took s (${speed:-?} exec/s); $stats"
	fi
done

if [ $failed -ne 0 ]; then
	echo "fuzz: failures; inputs and logs in $artifacts"
	exit 1
fi
exit 0
