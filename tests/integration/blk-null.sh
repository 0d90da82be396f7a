#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-null.sh BUILD_DIR: vrio-bench on a null backend (backend: {null: 1T})
# over TCP on loopback. Random reads and writes at QD 32 all succeed; what
# was written is not kept (verified reads of it all fail, and each of them
# is counted by the io-server as a read that succeeded: the data differs,
# not the status); the file device beside it still verifies; both daemons
# stop cleanly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

N=20000

# bench_json OUT ARGS...: runs vrio-bench with --json into OUT; its exit
# status is the caller's to judge.
bench_json() {
	local out=$1
	shift
	"$BENCH" --socket "$RACK_SOCK_B" --bs 4096 --iodepth 32 --json --quiet "$@" >"$out"
}

# field FILE KEY: a top-level number of a JSON report.
field() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# io_requests OP: the io-server's count of disk-b's requests of that op.
io_requests() {
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$TMP/io.metrics" || rack_fail "io metrics"
	metric_sum "vrio_ioserver_requests_total{device=\"disk-b\",op=\"$1\"}" <"$TMP/io.metrics"
}

main() {
	local build seed rc reads
	build=$(cd "$1" && pwd)
	make_tmpdir TMP
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	log "seed $seed, run dir $TMP"
	RACK_B_BACKEND="{null: 1T}" rack_up "$TMP" "$build"

	bench_json "$TMP/read.json" --rw randread --count "$N" --seed "$seed" ||
		rack_fail "random reads on null failed"
	[[ $(field "$TMP/read.json" ops) == "$N" ]] || rack_fail "not every read completed"
	bench_json "$TMP/write.json" --rw randwrite --count "$N" --size 64M --seed "$seed" \
		--verify --state "$TMP/b.state" || rack_fail "random writes on null failed"
	bench_json "$TMP/rw.json" --rw randrw --count "$N" --seed "$((seed + 2))" ||
		rack_fail "mixed reads and writes on null failed"

	# Dropped: reading back what was written finds none of it.
	reads=$(io_requests read)
	rc=0
	bench_json "$TMP/verify.json" --rw randread --count 2000 --size 64M --seed "$((seed + 1))" \
		--verify --state "$TMP/b.state" || rc=$?
	((rc != 0)) || rack_fail "reads of dropped writes verified"
	[[ $(field "$TMP/verify.json" errors) == 0 ]] || rack_fail "reads of dropped writes failed"
	(($(field "$TMP/verify.json" verify_failures) > 0)) ||
		rack_fail "no read of a written block differed"
	[[ $(field "$TMP/verify.json" verified) == 0 ]] ||
		rack_fail "a read of a dropped write returned its data"
	(($(io_requests read) == reads + 2000)) || rack_fail "the io-server did not count the reads"

	# The file device on the same io-server is not disturbed.
	"$BENCH" --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$TMP/a.state" --quiet || rack_fail "file writes"
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 8 --count 2000 \
		--seed "$seed" --verify --state "$TMP/a.state" --quiet || rack_fail "file reads"

	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	log "null: $(field "$TMP/read.json" iops) read IOPS at QD 32"
	echo "PASS: integration/blk-null"
}

lib_traps
main "$@"
