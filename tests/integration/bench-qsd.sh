#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# vrio-bench against qemu-storage-daemon's vhost-user-blk export: random
# writes with a verification map, a read-back from a second process, an
# offline check of the image, and one malformed chain that qsd must refuse.
#
# usage: bench-qsd.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: bench-qsd.sh BUILD_DIR}
bench=$build/tools/vrio-bench

if ! command -v qemu-storage-daemon >/dev/null 2>&1; then
	echo "SKIP: qemu-storage-daemon not installed"
	exit 77
fi
if [ ! -x "$bench" ]; then
	echo "FAIL: $bench is not built"
	exit 1
fi

dir=$(mktemp -d)
qsd_pid=

cleanup() {
	if [ -n "$qsd_pid" ]; then
		kill "$qsd_pid" 2>/dev/null || true
		wait "$qsd_pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	if [ -s "$dir/qsd.log" ]; then
		echo "--- qemu-storage-daemon log"
		cat "$dir/qsd.log"
	fi
	exit 1
}

run() {
	echo "+ ${*#"$build/"}"
	"$@"
}

sock=$dir/vu.sock
truncate -s 64M "$dir/disk.img"
qemu-storage-daemon \
	--blockdev driver=file,node-name=f0,filename="$dir/disk.img" \
	--blockdev driver=raw,node-name=d0,file=f0 \
	--export type=vhost-user-blk,id=e0,addr.type=unix,addr.path="$sock",node-name=d0,writable=on,num-queues=1 \
	>"$dir/qsd.log" 2>&1 &
qsd_pid=$!

for _ in $(seq 100); do
	[ -S "$sock" ] && break
	kill -0 "$qsd_pid" 2>/dev/null || fail "qemu-storage-daemon exited"
	sleep 0.1
done
[ -S "$sock" ] || fail "no socket at $sock after 10 s"

run "$bench" --socket "$sock" --rw randwrite --bs 4096 --count 5000 --iodepth 32 \
	--verify --state "$dir/state" --quiet || fail "randwrite with verification"
run "$bench" --socket "$sock" --rw randread --bs 4096 --count 5000 --iodepth 32 \
	--verify --state "$dir/state" --seed 2 --quiet || fail "randread verification in a second process"
run "$bench" --check-file "$dir/disk.img" --state "$dir/state" || fail "offline check of the image"

# The checker must not be vacuous: a copy with its first MiB zeroed fails.
cp "$dir/disk.img" "$dir/bad.img"
dd if=/dev/zero of="$dir/bad.img" bs=1M count=1 conv=notrunc status=none
if "$bench" --check-file "$dir/bad.img" --state "$dir/state" --quiet >/dev/null; then
	fail "check-file accepted a corrupted image"
fi

# A looped chain: qsd must neither complete it nor die, and must serve the next client.
run "$bench" --socket "$sock" --inject loop --timeout 1000 --quiet || fail "inject loop"
kill -0 "$qsd_pid" 2>/dev/null || fail "qemu-storage-daemon died on a looped chain"
run "$bench" --socket "$sock" --rw randread --count 1000 --iodepth 8 \
	--verify --state "$dir/state" --quiet || fail "verification after the injected fault"

echo "PASS: bench-qsd"
