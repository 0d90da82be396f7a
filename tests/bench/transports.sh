#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# transports.sh BUILD_DIR [SECONDS] [ROUNDS]: 4 KiB random reads at queue
# depth 1 and 32 from vrio-bench through each transport, and through
# qemu-storage-daemon, in one run. Every system is started once, each on a
# 64 MiB file it fills first, and the runs alternate between systems round
# by round, so that all of them see the same machine. Prints the median of
# ROUNDS runs per case: IOPS, p50/p99 latency, the CPU time per I/O of
# each daemon (io-server, local-hv, qsd), IOPS per io-server core, and
# ratios to qsd and to tcp (tests/bench/blk-lib.sh's table).
#
#   tcp         vrio-localhv -> TCP on loopback -> vrio-ioserver
#   tls         the same with TLS 1.3 on it (io_servers[].tls: {psk: true};
#               TLS_AES_128_GCM_SHA256)
#   shm         the same over shared-memory rings (the local-sidecore case)
#   dpdk-memif  the dpdk transport over a memif pair
#   dpdk-xdp    the dpdk transport over net_af_xdp on a veth pair between two
#               network namespaces (root, and a kernel with AF_XDP)
#   qsd         qemu-storage-daemon's vhost-user-blk export at its strongest
#               for this workload (aio=io_uring, an iothread: blk-lib.sh)
#   qsd-default the same as it comes (aio=threads, main loop)
#
# VRIO_QDS="1 8 32" sets the queue depths (default 1 and 32).
# VRIO_NULL=SIZE: vrio's systems read a disk on the null backend of that
# size ({null: SIZE}: the data path without a backend) instead of the file.
# VRIO_ONLY="tcp shm qsd" runs only the systems named. VRIO_BASE_BUILD=DIR
# adds tcp-base and shm-base: the same racks from another build (main, say),
# alternating with this build's round by round: an A/B of a change, with
# ratios to tcp-base and shm-base. VRIO_COALESCE=US adds tcp-co and shm-co:
# this build's racks with coalesce_us: US on their devices, alternating with
# tcp and shm (coalesce_us as the default), with ratios to both.
#
# The host has no RDMA: with VRIO_BENCH_RDMA=1 the script then runs
# tests/integration/blk-rdma.sh, which measures rdma and tcp inside a QEMU
# TCG guest with soft-RoCE (about 90 s), and prints those figures as a
# second table; they compare with each other, not with the host's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/blk-lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
# The queue depths, each run for every system in every round.
QDS=${VRIO_QDS:-1 32}
unset VRIO_FAULTS

declare -A SOCK PIDS METRICS STOP


# one_run SYSTEM QD: one blk_run of SYSTEM into $TMP/SYSTEM.QD.
one_run() {
	# shellcheck disable=SC2086 # PIDS holds a list
	blk_run "$TMP/$1.$2" "${SOCK[$1]}" "$2" "${METRICS[$1]:-}" ${PIDS[$1]}
}

# pids_of SYSTEM: its daemons' pids.
pids_of() {
	local p
	for p in ${PIDS[$1]}; do
		echo "${p#*=}"
	done
}

# fill SYSTEM: write the region read, so every system reads data, not holes.
fill() {
	"$BENCH" --socket "${SOCK[$1]}" --rw write --bs 1048576 --iodepth 4 --size 64M \
		--count 64 --quiet >/dev/null || die "$1: cannot fill the disk"
}

# vrio_system NAME TRANSPORT [DPDK_PORT]: a rack of its own in a directory
# of its own; its disk-a is what the bench reads.
vrio_system() {
	local name=$1 run=$TMP/$1 build=$BUILD
	wanted "$name" || return 0
	[[ $name == *-base ]] && build=$VRIO_BASE_BUILD
	mkdir -p "$run"
	RACK_TRANSPORT=$2 RACK_DPDK_IO_EAL= RACK_DPDK_HV_EAL= RACK_IO_NS= RACK_HV_NS= RACK_TLS=
	RACK_COALESCE=
	[[ $name == tls ]] && RACK_TLS=psk
	[[ $name == *-co ]] && RACK_COALESCE=$VRIO_COALESCE
	[[ -n ${3:-} ]] && rack_dpdk_port "$run" "$3"
	RACK_B_BACKEND=
	[[ -n ${VRIO_NULL:-} ]] && RACK_B_BACKEND="{null: $VRIO_NULL}"
	VRIO_LOG_PREFIX="transports ($name)" rack_up "$run" "$build"
	BENCH=$BUILD/tools/vrio-bench
	SOCK[$name]=$RACK_SOCK_A
	[[ -n ${VRIO_NULL:-} ]] && SOCK[$name]=$RACK_SOCK_B
	PIDS[$name]="io-server=$VRIO_IO_PID local-hv=$VRIO_HV_PID"
	# Its reactors' busy time, where the io-server's port is reachable
	# from here (not from inside a network namespace).
	[[ -n $RACK_IO_NS ]] || METRICS[$name]=$VRIO_IO_METRICS,$VRIO_HV_METRICS
	# What rack_down needs, to stop this rack at the end.
	STOP[$name]=$(declare -p VRIO_IO_PID VRIO_HV_PID VRIO_IO_LOG VRIO_HV_LOG RACK_DPDK_IO_EAL |
		tr '\n' ';')
	SYSTEMS+=("$name")
}

# qsd_system NAME CONFIG: qemu-storage-daemon in CONFIG (blk-lib.sh) on a
# file of its own.
qsd_system() {
	local name=$1 run=$TMP/$1 pid
	wanted "$name" || return 0
	mkdir -p "$run"
	truncate -s 64M "$run/disk.img"
	qsd_start pid "$run/qsd.sock" "$run/disk.img" "$2" "$run/qsd.log"
	SOCK[$name]=$run/qsd.sock
	PIDS[$name]="qsd=$pid"
	SYSTEMS+=("$name")
}

# wanted SYSTEM: true unless VRIO_ONLY leaves it out.
wanted() {
	local base=${1%-base}
	[[ -z ${VRIO_ONLY:-} || " $VRIO_ONLY " == *" ${base%-co} "* ]]
}

report() {
	printf '\n4 KiB random read, %s s a run, medians of %s rounds; %s CPUs, load %s\n' \
		"$SECS" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	if [[ -n ${SOCK[qsd]:-} ]]; then
		printf 'qsd:         %s\nqsd-default: %s\n' "$(qsd_config_text strong)" \
			"$(qsd_config_text default)"
	fi
	printf '\n'
	local bases="qsd tcp"
	[[ -z ${VRIO_BASE_BUILD:-} ]] || bases+=" tcp-base shm-base"
	[[ -z ${VRIO_COALESCE:-} ]] || bases+=" shm"
	blk_report "$TMP" "$QDS" "$bases" "${SYSTEMS[@]}"
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
	local qd r sys t_start t_end files
	BUILD=$(cd "$1" && pwd)
	BENCH=$BUILD/tools/vrio-bench
	vrio_binaries "$BUILD" || die "build vrio first (cmake --build $BUILD)"
	make_tmpdir TMP
	SYSTEMS=()

	vrio_system tcp tcp
	vrio_system tls tcp
	vrio_system shm shm
	if [[ -n ${VRIO_BASE_BUILD:-} ]]; then
		VRIO_BASE_BUILD=$(cd "$VRIO_BASE_BUILD" && pwd)
		vrio_system tcp-base tcp
		vrio_system shm-base shm
	fi
	if [[ -n ${VRIO_COALESCE:-} ]]; then
		vrio_system tcp-co tcp
		vrio_system shm-co shm
	fi
	if ! wanted dpdk-memif; then
		:
	elif rack_pmd_present memif; then
		vrio_system dpdk-memif dpdk memif
	else
		log "dpdk-memif: SKIP: DPDK has no memif PMD"
	fi
	if ! wanted dpdk-xdp; then
		:
	elif [[ $(id -u) == 0 ]] && rack_kernel_has XDP && rack_pmd_present af_xdp; then
		vrio_system dpdk-xdp dpdk af_xdp
	else
		log "dpdk-xdp: SKIP: needs root, AF_XDP in the kernel and DPDK's af_xdp PMD"
	fi
	if ! wanted qsd && ! wanted qsd-default; then
		:
	elif have_cmd qemu-storage-daemon; then
		qsd_system qsd strong
		qsd_system qsd-default default
	else
		log "qsd: SKIP: qemu-storage-daemon not installed"
	fi
	for sys in "${SYSTEMS[@]}"; do
		fill "$sys"
	done

	declare -A T0
	for sys in "${SYSTEMS[@]}"; do
		# shellcheck disable=SC2046 # a list of pids
		T0[$sys]=$(cpu_ticks $(pids_of "$sys"))
	done
	t_start=$(date +%s.%N)
	for qd in $QDS; do
		for ((r = 0; r < ROUNDS; r++)); do
			for sys in "${SYSTEMS[@]}"; do
				one_run "$sys" "$qd"
			done
		done
	done
	t_end=$(date +%s.%N)
	report
	# What each system cost while the others ran: a poller that never backs
	# off shows here.
	printf '\nidle cost: CPU of each system while the others ran, in %% of one core\n'
	for sys in "${SYSTEMS[@]}"; do
		files=()
		for qd in $QDS; do files+=("$TMP/$sys.$qd"); done
		# shellcheck disable=SC2046 # a list of pids
		python3 - "$sys" "${T0[$sys]}" "$(cpu_ticks $(pids_of "$sys"))" "$(getconf CLK_TCK)" \
			"$t_start" "$t_end" "$SECS" "$ROUNDS" "${files[@]}" <<'PY'
import json, sys
name, t0, t1, hz, start, end, secs, rounds = sys.argv[1:9]
own = sum(sum(json.loads(l)["cpu"].values()) for p in sys.argv[9:] for l in open(p))
idle_wall = float(end) - float(start) - len(sys.argv[9:]) * int(rounds) * float(secs)
idle_cpu = (int(t1) - int(t0)) / int(hz) - own
print(f'{name:<11} {100 * max(idle_cpu, 0) / max(idle_wall, 1e-9):6.1f}%')
PY
	done

	for sys in "${SYSTEMS[@]}"; do
		[[ $sys == qsd* ]] && continue
		eval "${STOP[$sys]}"
		rack_down || die "$sys: a daemon did not stop cleanly"
	done
	[[ ${VRIO_BENCH_RDMA:-0} == 1 ]] && rdma_report
	return 0
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
