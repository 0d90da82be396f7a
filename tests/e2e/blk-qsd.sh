#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-qsd.sh BUILD_DIR: the e2e guest against qemu-storage-daemon, vrio's
# reference vhost-user-blk backend. It validates the guest tooling and gives
# the baseline that blk-vrio.sh repeats through vrio:
#
#   1. a 64 MiB raw image served by qemu-storage-daemon (2 queues);
#   2. a TCG guest writes 1 MiB at 4 MiB with O_DIRECT and reads it back;
#   3. qemu-storage-daemon stops (SIGTERM, exit status 0);
#   4. the image holds the pattern, with the checksum the guest wrote.
#
# Exits 77 (SKIP) when QEMU or the guest kernel package is unavailable.
# VRIO_SEED picks the pattern seed (default: random, printed); VRIO_KEEP_TMP=1
# keeps the temporary directory with the logs.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

OFF=$((4 << 20))
LEN=$((1 << 20))
QUEUES=2

start_qsd() {
	local -n _qsd_pid_out=$1
	local disk=$2 sock=$3 logfile=$4
	start_daemon _qsd_pid_out qemu-storage-daemon "$logfile" qemu-storage-daemon \
		--blockdev "driver=file,node-name=f0,filename=$disk" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--export "type=vhost-user-blk,id=e0,addr.type=unix,addr.path=$sock,node-name=d0,writable=on,num-queues=$QUEUES"
	wait_for_socket "$sock" 10 "$_qsd_pid_out" || {
		show_log qemu-storage-daemon "$logfile"
		die "qemu-storage-daemon did not create $sock"
	}
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build_dir guest tmp disk sock seed qsd rc=0 line file_line
	build_dir=$(mkdir -p "$1" && cd "$1" && pwd)
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	have_cmd qemu-storage-daemon || skip "qemu-storage-daemon not installed (qemu-system-x86)"

	guest=$build_dir/tests/e2e/guest
	guest_image "$guest"
	make_tmpdir tmp
	disk=$tmp/disk.img
	sock=$tmp/qsd.sock
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	truncate -s 64M "$disk"
	log "seed $seed, image $disk"

	start_qsd qsd "$disk" "$sock" "$tmp/qsd.log"
	run_guest "$tmp/results" --socket "$sock" --kernel-dir "$guest" --run blk-pattern \
		--off "$OFF" --len "$LEN" --seed "$seed" --queues "$QUEUES" \
		--log "$tmp/console.log" || {
		show_log qemu-storage-daemon "$tmp/qsd.log"
		die "guest run failed"
	}
	cat "$tmp/results"
	stop_pid "$qsd" 10 || rc=$?
	((rc == 0)) || die "qemu-storage-daemon exited with status $rc"

	file_line=$(check_file "$guest/guest-io" "$disk" "$OFF" "$LEN" "$seed") ||
		die "backing file check failed: $file_line"
	printf '%s\n' "$file_line"
	line=$(grep ' write-verify ' "$tmp/results")
	[[ $(result_field "$line" sum_written) == "$(result_field "$file_line" sum)" ]] ||
		die "checksum written by the guest differs from the backing file's"
	echo "PASS: e2e/blk-qsd"
}

lib_traps
main "$@"
