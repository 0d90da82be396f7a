#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-tcp.sh BUILD_DIR: both daemons and vrio-bench on loopback. 20,000
# random 4 KiB writes with verification state, then 20,000 random reads
# verified against it (a second process), both daemons stopped with SIGTERM
# (exit 0, in-flight drained), then the backing file is compared with what
# was written, block by block, unwritten blocks included.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

main() {
	local build tmp seed
	build=$(cd "$1" && pwd)
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $tmp"
	rack_up "$tmp" "$build"

	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --seed "$seed" --verify --state "$tmp/a.state" ||
		rack_fail "random writes failed"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --seed "$((seed + 1))" --verify --state "$tmp/a.state" ||
		rack_fail "random reads did not verify"
	# The RAM device works too, and the two do not see each other's data.
	"$BENCH" --socket "$RACK_SOCK_B" --rw randwrite --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$tmp/b.state" || rack_fail "RAM device writes"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$tmp/b.state" || rack_fail "RAM device reads"

	rack_check_metrics "$tmp"
	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/blk-tcp"
}

lib_traps
main "$@"
