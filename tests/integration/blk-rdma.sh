#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-rdma.sh BUILD_DIR: the blk-tcp.sh scenario over the rdma transport.
# The host has no RDMA, so it runs inside a QEMU TCG guest (the e2e guest
# kernel with the soft-RoCE and 9p modules): the host's root is shared read
# only and the run directory read-write, at the same path, and the guest
# runs this script again (--guest) chrooted into the host's root:
#
#   1. a dummy netdev with 10.77.0.1/24 (MTU 9000, so RoCE MTU 4096) and
#      soft-RoCE on it (rxe0); the backend's unit test (test_rdma) there;
#   2. vrio-ioserver listening there with transport rdma, then vrio-localhv;
#   3. vrio-bench: COUNT random 4 KiB writes (2 queues, depth 32) recorded
#      in a state file, then COUNT random reads verified against it; then
#      1 MiB and 192 KiB writes and verified reads on the RAM device, frames
#      too large for a receive buffer (the RDMA READ path);
#   4. the io-server restarted (SIGTERM, exit 0): vrio-localhv reconnects
#      and reads still verify;
#   5. 4 KiB random reads on the RAM device at depth 1 and 32, for figures;
#   6. SIGTERM to both daemons: both exit 0;
#   7. the same figures over tcp on the guest's loopback, for comparison.
#
# The guest prints VRIO-RESULT lines; the host checks them, then checks the
# backing file (in the shared directory) against the state, block by block.
# VRIO_RDMA_COUNT sets COUNT (default 20000). Exits 77 (SKIP) without QEMU,
# the daemons, or a kernel with the modules.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
RDMA_IP=10.77.0.1
RDMA_PORT=7600
TCP_PORT=7601
# crc32_generic is no dependency of rdma_rxe by symbol, but rxe needs it.
MODULES=(virtio_pci 9pnet_virtio 9p crc32_generic udp_tunnel ip6_udp_tunnel ib_core ib_uverbs
	rdma_rxe configfs ib_cm iw_cm rdma_cm rdma_ucm dummy)
COUNT=${VRIO_RDMA_COUNT:-20000}
BENCH_QD1_COUNT=2000
BENCH_QD32_COUNT=10000

# write_rack_topology FILE TRANSPORT LISTEN RUN_DIR SOCK_DIR: io0 serves
# disk-a (a file in RUN_DIR) and disk-b (RAM) to host0. The vhost-user and
# control sockets (vrio_ctl_paths SOCK_DIR) are in SOCK_DIR, a guest path:
# the shared RUN_DIR is a 9p mount.
write_rack_topology() {
	local file=$1 transport=$2 listen=$3 run=$4 socks=$5
	vrio_ctl_paths "$socks"
	cat >"$file" <<EOF
version: 1
io_servers:
  - name: io0
    transport: $transport
    listen: $listen
    metrics: 127.0.0.1:9600
    control: $VRIO_IO_CTL
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    metrics: 127.0.0.1:9601
    control: $VRIO_HV_CTL
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $socks/disk-a.sock
    queues: 2
    backend: {file: $run/disk-a.img, size: 64M}
  - name: disk-b
    type: blk
    host: host0
    io_server: io0
    socket: $socks/disk-b.sock
    queues: 1
    backend: {ram: 32M}
EOF
}

# ---------------------------------------------------------------------------
# Guest side.

result() { echo "VRIO-RESULT: $*"; }

# guest_fail WHAT: reports WHAT and exits; the trap stops the daemons.
guest_fail() {
	result "$1 ERROR ${2:-failed}"
	show_log vrio-localhv "${VRIO_HV_LOG:-}"
	show_log vrio-ioserver "${VRIO_IO_LOG:-}"
	exit 1
}

# json_num JSON KEY: the number after "KEY": in one line of JSON.
json_num() {
	local re="\"$2\":([0-9.]+)"
	[[ $1 =~ $re ]] && printf '%s\n' "${BASH_REMATCH[1]}"
}

# bench_figures TRANSPORT QD COUNT: 4 KiB random reads on disk-b.
bench_figures() {
	local transport=$1 qd=$2 count=$3 out
	out=$("$BENCH" --socket "$SOCKS/disk-b.sock" --rw randread --bs 4096 --iodepth "$qd" \
		--count "$count" --seed 5 --json --quiet) || guest_fail "bench-$transport-qd$qd"
	result "bench transport=$transport rw=randread bs=4096 qd=$qd ops=$(json_num "$out" ops)" \
		"iops=$(json_num "$out" iops) p50_us=$(json_num "$out" p50)" \
		"p99_us=$(json_num "$out" p99) ok"
}

# rdma_setup: soft-RoCE over a dummy netdev (rdma_cm resolves no route on
# loopback).
rdma_setup() {
	ip link set lo up
	# Loading the dummy module may have made dummy0 already.
	if ! ip link show dummy0 >/dev/null 2>&1; then
		ip link add dummy0 type dummy || guest_fail rdma-link "cannot add dummy0"
	fi
	ip link set dummy0 mtu 9000
	ip addr add "$RDMA_IP/24" dev dummy0
	ip link set dummy0 up
	rdma link add rxe0 type rxe netdev dummy0 || guest_fail rdma-link "rdma link add failed"
	rdma link show rxe0/1 | grep -q ACTIVE || guest_fail rdma-link "rxe0 is not active"
	result "rdma-link dev=rxe0 netdev=dummy0 addr=$RDMA_IP ok"
}

# unit_test BUILD: the backend's own test, which needs an RDMA device.
unit_test() {
	local t=$1/tests/unit/transport/test_rdma
	if [[ ! -x $t ]]; then
		result "unit-rdma not built (no cmocka) ok"
		return 0
	fi
	VRIO_TEST_RDMA_ADDR=$RDMA_IP timeout 300 "$t" >"$RUN/test_rdma.log" 2>&1 || {
		tail -n 40 "$RUN/test_rdma.log" >&2
		guest_fail unit-rdma "test_rdma failed"
	}
	result "unit-rdma $(grep -c '^\[       OK \]' "$RUN/test_rdma.log") tests ok"
}

# restart_ioserver RUN_DIR: SIGTERM (exit 0), start again; vrio-localhv
# must reconnect by itself.
restart_ioserver() {
	local run=$1
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" ||
		guest_fail rdma-reconnect "vrio-ioserver did not exit 0 on SIGTERM"
	VRIO_IO_LOG=$run/ioserver-2.log
	start_daemon VRIO_IO_PID vrio-ioserver "$VRIO_IO_LOG" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/rdma.yaml" --node io0
	wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID" ||
		guest_fail rdma-reconnect "vrio-ioserver did not listen again"
	wait_for_socket "$VRIO_IO_CTL" 20 "$VRIO_IO_PID" ||
		guest_fail rdma-reconnect "vrio-ioserver did not open its control socket again"
	"$BENCH" --socket "$SOCKS/disk-a.sock" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 2000 --seed "$((SEED + 2))" --verify --state "$RUN/a.state" --quiet ||
		guest_fail rdma-reconnect "reads after the restart did not verify"
	[[ $(grep -c "connected to $VRIO_IO_LISTEN" "$VRIO_HV_LOG") -ge 2 ]] ||
		guest_fail rdma-reconnect "vrio-localhv did not reconnect"
	result "rdma-reconnect verified ok"
}

# phase TRANSPORT LISTEN: one rack up; with rdma also the data checks.
phase() {
	local transport=$1 listen=$2 run=$RUN/$1 t0 rc=0
	mkdir -p "$run"
	VRIO_IO_TRANSPORT=$transport
	VRIO_IO_LISTEN=$listen
	vrio_start "$run" "$RUN/$transport.yaml" "$SOCKS/disk-a.sock" "$SOCKS/disk-b.sock"
	result "start transport=$transport listen=$listen ok"
	if [[ $transport == rdma ]]; then
		t0=$SECONDS
		"$BENCH" --socket "$SOCKS/disk-a.sock" --rw randwrite --bs 4096 --iodepth 32 \
			--queues 2 --count "$COUNT" --seed "$SEED" --verify --state "$RUN/a.state" \
			--quiet || guest_fail rdma-write "random writes failed"
		result "rdma-write count=$COUNT bs=4096 secs=$((SECONDS - t0)) ok"
		t0=$SECONDS
		"$BENCH" --socket "$SOCKS/disk-a.sock" --rw randread --bs 4096 --iodepth 32 \
			--queues 2 --count "$COUNT" --seed "$((SEED + 1))" --verify \
			--state "$RUN/a.state" --quiet || guest_fail rdma-read "reads did not verify"
		result "rdma-read count=$COUNT bs=4096 secs=$((SECONDS - t0)) verified ok"
		# Larger than a receive buffer: a descriptor and an RDMA READ, in
		# both directions (write requests, read responses).
		for bs in 1048576 196608; do
			"$BENCH" --socket "$SOCKS/disk-b.sock" --rw randwrite --bs "$bs" --iodepth 8 \
				--count 64 --seed "$SEED" --verify --state "$RUN/b-$bs.state" --quiet ||
				guest_fail rdma-bulk "$bs-byte writes failed"
			"$BENCH" --socket "$SOCKS/disk-b.sock" --rw randread --bs "$bs" --iodepth 8 \
				--count 64 --seed "$SEED" --verify --state "$RUN/b-$bs.state" --quiet ||
				guest_fail rdma-bulk "$bs-byte reads did not verify"
			result "rdma-bulk bs=$bs count=64 verified ok"
		done
		restart_ioserver "$run"
	fi
	bench_figures "$transport" 1 "$BENCH_QD1_COUNT"
	bench_figures "$transport" 32 "$BENCH_QD32_COUNT"
	pid_alive "$VRIO_IO_PID" || guest_fail "stop-$transport" "vrio-ioserver died"
	pid_alive "$VRIO_HV_PID" || guest_fail "stop-$transport" "vrio-localhv died"
	vrio_down || rc=1
	((rc == 0)) || guest_fail "stop-$transport" "a daemon did not exit 0 on SIGTERM"
	result "stop transport=$transport exit=0 ok"
}

guest_main() {
	RUN=$1
	vrio_binaries "$2" || guest_fail binaries "not built in $2"
	BENCH=$2/tools/vrio-bench
	SEED=$(cat "$RUN/seed")
	# Sockets live on the guest's own tmpfs, not in the shared (9p) RUN.
	SOCKS=/run/vrio
	mkdir -p "$SOCKS"
	vrio_ctl_paths "$SOCKS"
	rdma_setup
	unit_test "$2"
	phase rdma "$RDMA_IP:$RDMA_PORT"
	phase tcp "127.0.0.1:$TCP_PORT"
}

# ---------------------------------------------------------------------------
# Host side.

# host_fail RUN_DIR MESSAGE: shows the daemons' logs (in the shared
# directory) and fails.
host_fail() {
	local t
	for t in rdma tcp; do
		show_log "vrio-localhv ($t)" "$1/$t/localhv.log"
		show_log "vrio-ioserver ($t)" "$1/$t/ioserver.log"
	done
	die "$2"
}

# expect RUN_DIR PATTERN WHAT: fails unless a result line matches.
expect() {
	grep -q -- "$2" "$1/results" || host_fail "$1" "the guest did not report $3"
}

host_main() {
	local build guest tmp t
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	[[ -x $build/tools/vrio-bench ]] || skip "vrio-bench not built in $build"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "VRIO_RDMA_COUNT is not a count: $COUNT"

	guest=$build/tests/integration/guest-rdma
	VRIO_GUEST_MODULES="${MODULES[*]}" guest_image "$guest"
	make_tmpdir tmp
	chmod 0755 "$tmp"
	echo "${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}" >"$tmp/seed"
	log "seed $(cat "$tmp/seed"), run dir $tmp, $COUNT requests each way"
	write_rack_topology "$tmp/rdma.yaml" rdma "$RDMA_IP:$RDMA_PORT" "$tmp/rdma" /run/vrio
	write_rack_topology "$tmp/tcp.yaml" tcp "127.0.0.1:$TCP_PORT" "$tmp/tcp" /run/vrio
	printf 'VRIO_RDMA_COUNT=%q exec bash %q --guest %q %q\n' "$COUNT" "$SELF" "$tmp" "$build" \
		>"$tmp/run.sh"

	SECONDS=0
	run_guest "$tmp/results" --kernel-dir "$guest" --run host-script --share "$tmp" \
		--script "$tmp/run.sh" --keep "$VRIO_ROOT" --keep "$build" --smp 2 --mem 1024 \
		--cpu max --timeout 540 --log "$tmp/console.log" || host_fail "$tmp" "guest run failed"
	log "guest run took ${SECONDS}s"
	cat "$tmp/results"
	expect "$tmp" "^VRIO-RESULT: rdma-link " "soft-RoCE up"
	expect "$tmp" "^VRIO-RESULT: unit-rdma " "the backend's unit test"
	expect "$tmp" "^VRIO-RESULT: rdma-write count=$COUNT " "the writes over rdma"
	expect "$tmp" "^VRIO-RESULT: rdma-read count=$COUNT .* verified ok" "verified reads"
	expect "$tmp" "^VRIO-RESULT: rdma-bulk bs=1048576 " "1 MiB frames"
	expect "$tmp" "^VRIO-RESULT: rdma-bulk bs=196608 " "192 KiB frames"
	expect "$tmp" "^VRIO-RESULT: rdma-reconnect " "a reconnect after an io-server restart"
	for t in rdma tcp; do
		expect "$tmp" "^VRIO-RESULT: bench transport=$t .* qd=1 " "$t QD1 figures"
		expect "$tmp" "^VRIO-RESULT: bench transport=$t .* qd=32 " "$t QD32 figures"
		expect "$tmp" "^VRIO-RESULT: stop transport=$t exit=0 ok" "a clean $t stop"
	done
	"$build/tools/vrio-bench" --check-file "$tmp/rdma/disk-a.img" --state "$tmp/a.state" \
		--zero-unwritten || host_fail "$tmp" "the backing file does not hold what was written over rdma"
	echo "PASS: integration/blk-rdma"
}

lib_traps
if [[ ${1:-} == --guest ]]; then
	VRIO_LOG_PREFIX="blk-rdma (guest)"
	guest_main "$2" "$3"
else
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	host_main "$1"
fi
