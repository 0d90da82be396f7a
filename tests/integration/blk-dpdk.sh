#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# blk-dpdk.sh BUILD_DIR MODE: the rack over the dpdk transport, vrio frames
# as raw Ethernet packets under the reliable layer. MODE is one of:
#   memif         the io-server is a memif server, local-hv its client, on
#                 a socket in the run directory
#   memif-faults  the same, and both daemons inject faults into every frame
#                 they send (VRIO_FAULTS: 5% dropped, 1% duplicated, 2%
#                 reordered, seeded)
#   af_packet     a veth pair between two network namespaces this test
#                 makes: the io-server in one, local-hv and vrio-bench in the
#                 other, each on its end through net_af_packet
#   af_xdp        the same through net_af_xdp
# Each: 20,000 random 4 KiB writes with verification state, 20,000 verified
# reads, then the backing file is checked. A mode this machine cannot run
# (no root, no AF_XDP in the kernel, no PMD) is skipped with the reason.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

MAC_IO=02:00:00:00:00:01
NS_LIST=()
# Under AddressSanitizer: what DPDK's drivers leak is not ours to report.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lsan-dpdk.supp"

# pmd_present NAME: the EAL can load librte_net_NAME. Debian's DPDK loads
# its PMDs from a plugin directory; without one they are built in.
pmd_present() {
	local libdir d found_dir=0
	libdir=$(pkg-config --variable=libdir libdpdk 2>/dev/null) || return 0
	for d in "$libdir"/dpdk/pmds-*; do
		[[ -d $d ]] || continue
		found_dir=1
		[[ -e $d/librte_net_$1.so ]] && return 0
	done
	((found_dir == 0))
}

kernel_has() {
	awk -v p="$1" '$1 == p { f = 1 } END { exit !f }' /proc/net/protocols
}

# Namespaces go after the daemons in them: lib_cleanup stops those first.
dpdk_cleanup() {
	local rc=$? ns
	lib_cleanup || true
	for ns in "${NS_LIST[@]}"; do
		ip netns del "$ns" 2>/dev/null || log "could not delete network namespace $ns"
	done
	exit "$rc"
}

# veth_pair: two namespaces joined by a veth pair, loopback up in each (the
# metrics ports), the io-server's end carrying its MAC.
veth_pair() {
	local io_ns=vrio-$$-io hv_ns=vrio-$$-hv
	[[ $(id -u) == 0 ]] || skip "$MODE needs root for network namespaces"
	have_cmd ip || skip "$MODE needs iproute2"
	ip netns add "$io_ns" 2>/dev/null || skip "cannot create a network namespace"
	NS_LIST+=("$io_ns")
	ip netns add "$hv_ns" || die "cannot create a second network namespace"
	NS_LIST+=("$hv_ns")
	ip link add "vio$$" netns "$io_ns" type veth peer name "vhv$$" netns "$hv_ns" ||
		skip "cannot create a veth pair"
	ip -n "$io_ns" link set "vio$$" address "$MAC_IO"
	ip -n "$io_ns" link set lo up
	ip -n "$hv_ns" link set lo up
	ip -n "$io_ns" link set "vio$$" up
	ip -n "$hv_ns" link set "vhv$$" up
	RACK_IO_NS=$io_ns
	RACK_HV_NS=$hv_ns
}

setup_mode() {
	local run=$1 vdev
	case $MODE in
	memif | memif-faults)
		pmd_present memif || skip "DPDK has no memif PMD"
		vdev="net_memif0,socket=$run/memif.sock,socket-abstract=no"
		RACK_DPDK_IO_EAL="--vdev=$vdev,role=server,mac=$MAC_IO"
		RACK_DPDK_HV_EAL="--vdev=$vdev,role=client"
		;;
	af_packet)
		kernel_has PACKET || skip "the kernel has no AF_PACKET sockets"
		pmd_present af_packet || skip "DPDK has no af_packet PMD"
		veth_pair
		# Rings deep enough for a window of fragments.
		RACK_DPDK_IO_EAL="--vdev=net_af_packet0,iface=vio$$,framecnt=4096"
		RACK_DPDK_HV_EAL="--vdev=net_af_packet0,iface=vhv$$,framecnt=4096"
		;;
	af_xdp)
		kernel_has XDP || skip "the kernel has no AF_XDP sockets"
		pmd_present af_xdp || skip "DPDK has no af_xdp PMD"
		veth_pair
		RACK_DPDK_IO_EAL="--vdev=net_af_xdp0,iface=vio$$,start_queue=0,queue_count=1"
		RACK_DPDK_HV_EAL="--vdev=net_af_xdp0,iface=vhv$$,start_queue=0,queue_count=1"
		;;
	*)
		die "unknown mode '$MODE' (memif, memif-faults, af_packet or af_xdp)"
		;;
	esac
	RACK_TRANSPORT=dpdk
	RACK_DPDK_MAC=$MAC_IO
}

# vrio-bench runs where local-hv does.
bench() {
	rack_ns "${RACK_HV_NS:-}" "$BENCH" "$@"
}

# The memif server must not be forwarding when its client goes
# (ENVIRONMENT.md): there the io-server stops first.
dpdk_down() {
	local rc=0
	if [[ $MODE == memif* ]]; then
		vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || rc=1
		vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || rc=1
	else
		vrio_down || rc=1
	fi
	return "$rc"
}

main() {
	local build tmp seed retx t0
	build=$(cd "$1" && pwd)
	MODE=${2:?usage: blk-dpdk.sh BUILD_DIR MODE}
	VRIO_LOG_PREFIX="blk-dpdk-$MODE"
	make_tmpdir tmp
	setup_mode "$tmp"
	seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	if [[ $MODE == *-faults ]]; then
		export VRIO_FAULTS="drop=0.05,duplicate=0.01,reorder=0.02,seed=$seed"
		log "VRIO_FAULTS=$VRIO_FAULTS"
	fi
	rack_up "$tmp" "$build"
	grep -q "dpdk: port 0 (net_" "$VRIO_IO_LOG" || rack_fail "the io-server opened no DPDK port"

	t0=$SECONDS
	bench --socket "$RACK_SOCK_A" --rw randwrite --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$seed" --verify --state "$tmp/a.state" ||
		rack_fail "random writes over dpdk/$MODE failed"
	bench --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 32 --queues 2 \
		--count 20000 --timeout 30000 --seed "$((seed + 1))" --verify \
		--state "$tmp/a.state" || rack_fail "random reads over dpdk/$MODE did not verify"
	log "40,000 verified requests in $((SECONDS - t0)) s"

	rack_check_metrics "$tmp"
	retx=$(metric_sum 'vrio_localhv_upstream_retransmits_total' <"$tmp/hv.metrics")
	log "local-hv retransmitted $retx frames"
	if [[ $MODE == *-faults ]]; then
		((retx > 0)) || rack_fail "no retransmissions: were faults injected at all?"
	fi
	[[ $(metric_sum 'vrio_localhv_upstream_disconnects_total' <"$tmp/hv.metrics") == 0 ]] ||
		rack_fail "the connection dropped"
	rack_alive
	dpdk_down || die "a daemon did not stop cleanly"
	"$BENCH" --check-file "$RACK_DISK_A" --state "$tmp/a.state" --zero-unwritten ||
		die "the backing file does not hold what was written"
	echo "PASS: integration/blk-dpdk-$MODE"
}

lib_traps
trap dpdk_cleanup EXIT
main "$@"
