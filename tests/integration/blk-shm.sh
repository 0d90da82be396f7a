#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-shm.sh BUILD_DIR: blk-tcp.sh over the shm transport. Both daemons and
# vrio-bench on one machine, the io-server listening on a socket path and
# local-hv's requests in shared-memory rings: 20,000 random 4 KiB writes
# with verification state, then 20,000 random reads verified against it,
# the RAM device alongside (also 64 KiB blocks, at QD 16: frames that take
# the rings back to their start while the other side lags, shm.c's
# SHM_REWIND), both daemons stopped with SIGTERM (exit 0), then the backing
# file compared with what was written, block by block.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

main() {
	local build tmp seed
	build=$(cd "$1" && pwd)
	make_tmpdir tmp
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $tmp"
	RACK_TRANSPORT=shm rack_up "$tmp" "$build"
	[[ -S $VRIO_IO_LISTEN ]] || rack_fail "the io-server has no socket at $VRIO_IO_LISTEN"

	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --seed "$seed" --verify --state "$tmp/a.state" ||
		rack_fail "random writes failed"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --seed "$((seed + 1))" --verify --state "$tmp/a.state" ||
		rack_fail "random reads did not verify"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randwrite --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$tmp/b.state" || rack_fail "RAM device writes"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$tmp/b.state" || rack_fail "RAM device reads"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randwrite --bs 65536 --iodepth 16 --count 3000 \
		--seed "$seed" --verify --state "$tmp/c.state" || rack_fail "RAM device 64 KiB writes"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 65536 --iodepth 16 --count 3000 \
		--seed "$((seed + 2))" --verify --state "$tmp/c.state" ||
		rack_fail "RAM device 64 KiB reads did not verify"

	# The requests took the shared-memory connection, not some other way.
	grep -q "connection from shm pid $VRIO_HV_PID" "$VRIO_IO_LOG" ||
		rack_fail "the io-server logged no shm connection from local-hv (pid $VRIO_HV_PID)"
	rack_check_metrics "$tmp"
	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	[[ ! -e $VRIO_IO_LISTEN ]] || die "the io-server left its socket $VRIO_IO_LISTEN behind"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/blk-shm"
}

lib_traps
main "$@"
