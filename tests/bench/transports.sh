#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# transports.sh BUILD_DIR [SECONDS] [ROUNDS]: 4 KiB random reads at queue
# depth 1 and 32 from vrio-bench through each transport, and through
# qemu-storage-daemon, in one run. Every system is started once, each on a
# 64 MiB file it fills first, and the runs alternate between systems round
# by round, so that all of them see the same machine. Prints the median of
# ROUNDS runs per case: IOPS, p50/p99 latency, the CPU seconds the
# backend process(es) used per run, and ratios to tcp and to qsd.
#
#   tcp        vrio-localhv -> TCP on loopback -> vrio-ioserver
#   shm        the same over shared-memory rings (the local-sidecore case)
#   dpdk-memif the dpdk transport over a memif pair
#   dpdk-xdp   the dpdk transport over net_af_xdp on a veth pair between two
#              network namespaces (root, and a kernel with AF_XDP)
#   qsd        qemu-storage-daemon's vhost-user-blk export
#
# The host has no RDMA: with VRIO_BENCH_RDMA=1 the script then runs
# tests/integration/blk-rdma.sh, which measures rdma and tcp inside a QEMU
# TCG guest with soft-RoCE (about 90 s), and prints those figures as a
# second table; they compare with each other, not with the host's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
unset VRIO_FAULTS

declare -A SOCK PIDS STOP


# one_run SYSTEM QD: prints "iops p50 p99 backend_cpu"
one_run() {
	local sys=$1 qd=$2 t0 t1 out
	# shellcheck disable=SC2086 # PIDS holds a list
	t0=$(cpu_ticks ${PIDS[$sys]})
	out=$("$BENCH" --socket "${SOCK[$sys]}" --rw randread --bs 4096 --iodepth "$qd" \
		--runtime "$SECS" --size 64M --json --quiet) || die "$sys: vrio-bench failed"
	# shellcheck disable=SC2086
	t1=$(cpu_ticks ${PIDS[$sys]})
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f'{r["iops"]:.0f} {r["lat_us"]["p50"]:.1f} {r["lat_us"]["p99"]:.1f} {cpu:.2f}')
PY
}

# fill SYSTEM: write the region read, so every system reads data, not holes.
fill() {
	"$BENCH" --socket "${SOCK[$1]}" --rw write --bs 1048576 --iodepth 4 --size 64M \
		--count 64 --quiet >/dev/null || die "$1: cannot fill the disk"
}

# vrio_system NAME TRANSPORT [DPDK_PORT]: a rack of its own in a directory
# of its own; its disk-a is what the bench reads.
vrio_system() {
	local name=$1 run=$TMP/$1
	mkdir -p "$run"
	RACK_TRANSPORT=$2 RACK_DPDK_IO_EAL= RACK_DPDK_HV_EAL= RACK_IO_NS= RACK_HV_NS=
	[[ -n ${3:-} ]] && rack_dpdk_port "$run" "$3"
	VRIO_LOG_PREFIX="transports ($name)" rack_up "$run" "$BUILD"
	SOCK[$name]=$RACK_SOCK_A
	PIDS[$name]="$VRIO_IO_PID $VRIO_HV_PID"
	# What rack_down needs, to stop this rack at the end.
	STOP[$name]=$(declare -p VRIO_IO_PID VRIO_HV_PID VRIO_IO_LOG VRIO_HV_LOG RACK_DPDK_IO_EAL |
		tr '\n' ';')
	SYSTEMS+=("$name")
}

qsd_system() {
	local run=$TMP/qsd pid
	mkdir -p "$run"
	truncate -s 64M "$run/disk.img"
	qemu-storage-daemon \
		--blockdev "driver=file,node-name=f0,filename=$run/disk.img" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--export "type=vhost-user-blk,id=e0,addr.type=unix,addr.path=$run/qsd.sock,node-name=d0,writable=on,num-queues=1" \
		>"$run/qsd.log" 2>&1 &
	pid=$!
	track_pid "$pid" qemu-storage-daemon
	wait_for_socket "$run/qsd.sock" 20 "$pid" || die "qemu-storage-daemon did not start"
	SOCK[qsd]=$run/qsd.sock
	PIDS[qsd]=$pid
	SYSTEMS+=(qsd)
}


report() {
	local qd sys col
	printf '\n4 KiB random read, %s s per run, median of %s runs (backend CPU in seconds per run)\n' \
		"$SECS" "$ROUNDS"
	printf '%-11s %-4s %10s %9s %9s %12s %9s %9s\n' system qd IOPS p50_us p99_us backend_cpu \
		vs_tcp vs_qsd
	for qd in 1 32; do
		for sys in "${SYSTEMS[@]}"; do
			for col in 1 2 3 4; do
				awk -v c=$col '{ print $c }' "$TMP/$sys.$qd" | median
			done | tr '\n' ' ' >"$TMP/$sys.$qd.med"
		done
		for sys in "${SYSTEMS[@]}"; do
			python3 - "$sys" "$qd" "$TMP/$sys.$qd.med" "$TMP/tcp.$qd.med" \
				"$TMP/qsd.$qd.med" <<'PY'
import os, sys
name, qd, mine, tcp, qsd = sys.argv[1:]
m = [float(x) for x in open(mine).read().split()]
def ratio(path):
    if not os.path.exists(path):
        return '-'
    return f'{m[0] / float(open(path).read().split()[0]):.2f}x'
print(f'{name:<11} {qd:<4} {m[0]:10.0f} {m[1]:9.1f} {m[2]:9.1f} {m[3]:12.2f} '
      f'{ratio(tcp):>9} {ratio(qsd):>9}')
PY
		done
	done
	printf '(vs_tcp, vs_qsd: IOPS ratios of the medians)\n'
}

rdma_report() {
	local out rc=0
	log "rdma: running tests/integration/blk-rdma.sh for the in-guest figures"
	out=$(VRIO_RDMA_COUNT=2000 bash "$VRIO_ROOT/tests/integration/blk-rdma.sh" "$BUILD" 2>&1) ||
		rc=$?
	if ((rc == VRIO_SKIP)); then
		printf '\nrdma: SKIP: %s\n' "$(grep -m1 '^SKIP:' <<<"$out" | cut -d' ' -f2-)"
		return 0
	fi
	((rc == 0)) || { printf '%s\n' "$out" | tail -20; die "blk-rdma.sh failed"; }
	printf '\nInside a QEMU TCG guest (2 vCPUs, soft-RoCE on a dummy netdev), 4 KiB random read, RAM disk, one run each:\n'
	grep '^VRIO-RESULT: bench ' <<<"$out" >"$TMP/rdma.results" || true
	python3 - "$TMP/rdma.results" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    rows[(kv['transport'], kv['qd'])] = kv
print(f'{"system":<11} {"qd":<4} {"IOPS":>10} {"p50_us":>9} {"p99_us":>9} {"vs_tcp":>9}')
for qd in ('1', '32'):
    for t in ('rdma', 'tcp'):
        r = rows.get((t, qd))
        if not r:
            continue
        base = rows.get(('tcp', qd))
        ratio = f'{float(r["iops"]) / float(base["iops"]):.2f}x' if base else '-'
        print(f'{t:<11} {qd:<4} {float(r["iops"]):10.0f} {float(r["p50_us"]):9.1f} '
              f'{float(r["p99_us"]):9.1f} {ratio:>9}')
PY
}

main() {
	local qd r sys t_start t_end
	BUILD=$(cd "$1" && pwd)
	BENCH=$BUILD/tools/vrio-bench
	vrio_binaries "$BUILD" || die "build vrio first (cmake --build $BUILD)"
	make_tmpdir TMP
	SYSTEMS=()

	vrio_system tcp tcp
	vrio_system shm shm
	if rack_pmd_present memif; then
		vrio_system dpdk-memif dpdk memif
	else
		log "dpdk-memif: SKIP: DPDK has no memif PMD"
	fi
	if [[ $(id -u) == 0 ]] && rack_kernel_has XDP && rack_pmd_present af_xdp; then
		vrio_system dpdk-xdp dpdk af_xdp
	else
		log "dpdk-xdp: SKIP: needs root, AF_XDP in the kernel and DPDK's af_xdp PMD"
	fi
	if have_cmd qemu-storage-daemon; then
		qsd_system
	else
		log "qsd: SKIP: qemu-storage-daemon not installed"
	fi
	for sys in "${SYSTEMS[@]}"; do
		fill "$sys"
	done

	declare -A T0
	for sys in "${SYSTEMS[@]}"; do
		# shellcheck disable=SC2086
		T0[$sys]=$(cpu_ticks ${PIDS[$sys]})
	done
	t_start=$(date +%s.%N)
	for qd in 1 32; do
		for ((r = 0; r < ROUNDS; r++)); do
			for sys in "${SYSTEMS[@]}"; do
				one_run "$sys" "$qd" >>"$TMP/$sys.$qd"
			done
		done
	done
	t_end=$(date +%s.%N)
	report
	# What each system cost while the others ran: a poller that never backs
	# off shows here.
	printf '\nidle cost: CPU of each system while the others ran, in %% of one core\n'
	for sys in "${SYSTEMS[@]}"; do
		# shellcheck disable=SC2086
		python3 - "$sys" "${T0[$sys]}" "$(cpu_ticks ${PIDS[$sys]})" "$(getconf CLK_TCK)" \
			"$t_start" "$t_end" "$SECS" "$ROUNDS" "$TMP/$sys.1" "$TMP/$sys.32" <<'PY'
import sys
name, t0, t1, hz, start, end, secs, rounds = sys.argv[1:9]
own = sum(float(l.split()[3]) for p in sys.argv[9:] for l in open(p))
idle_wall = float(end) - float(start) - 2 * int(rounds) * float(secs)
idle_cpu = (int(t1) - int(t0)) / int(hz) - own
print(f'{name:<11} {100 * max(idle_cpu, 0) / max(idle_wall, 1e-9):6.1f}%')
PY
	done

	for sys in "${SYSTEMS[@]}"; do
		[[ $sys == qsd ]] && continue
		eval "${STOP[$sys]}"
		rack_down || die "$sys: a daemon did not stop cleanly"
	done
	[[ ${VRIO_BENCH_RDMA:-0} == 1 ]] && rdma_report
	return 0
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
