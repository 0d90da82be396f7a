#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bad-input.sh BUILD_DIR: a hostile guest and a hostile peer. While
# vrio-bench runs verified I/O on disk-b, other vrio-bench instances post
# malformed chains on disk-a (a loop, an out-of-range head, a next index out
# of range, a buffer outside guest memory, a zero-length buffer, a readable
# buffer after a writable one, a chain too long), and garbage is written to
# the io-server's port. Neither daemon may die, disk-b's run must verify, the
# malformed chains must not complete, and disk-a's breakage must show in the
# local-hv log and metrics. Afterwards a fresh frontend on disk-a works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

KINDS=(loop head-oob next-oob addr-oob zero-len read-after-write too-long)

main() {
	local build tmp seed kind bpid rc errs host port
	build=$(cd "$1" && pwd)
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	rack_up "$tmp" "$build"

	"$BENCH" --socket "$RACK_SOCK_B" --rw randrw --bs 4096 --iodepth 4 --runtime 10 \
		--seed "$seed" --verify --quiet >"$tmp/good.log" 2>&1 &
	bpid=$!
	track_pid "$bpid" "vrio-bench disk-b"

	for kind in "${KINDS[@]}"; do
		"$BENCH" --socket "$RACK_SOCK_A" --inject "$kind" --timeout 1000 \
			>"$tmp/inject-$kind.log" 2>&1 || {
			cat "$tmp/inject-$kind.log" >&2
			rack_fail "inject $kind: the bad chain was completed or the bench failed"
		}
		rack_alive
		grep -q "disk-a: guest error" "$VRIO_HV_LOG" ||
			rack_fail "inject $kind: local-hv did not log disk-a's error"
	done

	# A peer that is not a local-hv: garbage on the io-server's port.
	host=${VRIO_IO_LISTEN%:*}
	port=${VRIO_IO_LISTEN##*:}
	timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"; head -c 4096 /dev/urandom >&3; cat <&3 >/dev/null' \
		_ "$host" "$port" || true
	rack_alive

	# The bench bounds its own run (--runtime, --timeout): wait for it.
	rc=0
	untrack_pid "$bpid"
	wait "$bpid" || rc=$?
	((rc == 0)) || { cat "$tmp/good.log" >&2; rack_fail "disk-b's verified run failed"; }

	rack_check_metrics "$tmp"
	for kind in loop head_out_of_range next_out_of_range bad_address zero_length \
		read_after_write too_long; do
		errs=$(metric_sum "vrio_localhv_chain_errors_total{device=\"disk-a\",reason=\"$kind\"}" \
			<"$tmp/hv.metrics")
		((errs >= 1)) || rack_fail "metrics show no $kind error on disk-a"
	done
	errs=$(metric_sum 'vrio_localhv_chain_errors_total{device="disk-b"' <"$tmp/hv.metrics")
	((errs == 0)) || rack_fail "disk-b shows chain errors"
	[[ $(metric_sum 'vrio_localhv_device_broken{device="disk-a"}' <"$tmp/hv.metrics") == 1 ]] ||
		rack_fail "disk-a is not shown broken"

	# A guest reset (a new frontend) brings disk-a back.
	"$BENCH" --socket "$RACK_SOCK_A" --rw randrw --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify || rack_fail "disk-a did not recover after a reset"

	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	echo "PASS: integration/bad-input"
}

lib_traps
main "$@"
