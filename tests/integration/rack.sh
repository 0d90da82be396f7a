# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# A two-device rack on loopback for integration tests: io-server io0, host
# host0, blk devices disk-a (a file) and disk-b (RAM, or the backend
# mapping RACK_B_BACKEND, such as "{null: 1T}"). Source after
# scripts/lib.sh. rack_up RUN_DIR BUILD_DIR starts it (vrio_start) and sets,
# besides what vrio_start sets: VRIO_TOPO VRIO_IO_LISTEN VRIO_IO_METRICS
# VRIO_HV_METRICS VRIO_IO_CTL VRIO_HV_CTL (the control sockets, in RUN_DIR)
# RACK_DISK_A RACK_SOCK_A RACK_SOCK_B BENCH. vrio_down stops it.
# RACK_TRANSPORT (tcp, the default, shm or dpdk) picks the transport; with
# shm the io-server listens on a socket path in RUN_DIR, with dpdk on the
# MAC RACK_DPDK_MAC (02:00:00:00:00:01) of the port that RACK_DPDK_IO_EAL
# adds to its EAL (RACK_DPDK_HV_EAL: local-hv's).
# RACK_IO_NS and RACK_HV_NS, when set, name the network namespaces each
# daemon runs in. RACK_IO_HEARTBEAT, when set, is io0's heartbeat: mapping
# ("interval_ms: 100, dead_after_ms: 1500"). RACK_A_STAGE, when set, is
# disk-a's one interposition stage ("throttle: {iops: 3000}"). RACK_TLS=psk
# puts TLS 1.3 on io0's tcp listener (tls: {psk: true}) and gives host0 a
# key_file in RUN_DIR. RACK_COALESCE, when set, is both devices'
# coalesce_us.

rack_up() {
	local run=$1 build=$2 transport=${RACK_TRANSPORT:-tcp} p_listen p_iom p_hvm
	local io_dpdk="" hv_dpdk="" io_hb="" a_chain="" io_tls="" hv_key="" co=""
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	[[ -x $BENCH ]] || skip "vrio-bench not built in $build"
	free_port p_iom
	free_port p_hvm
	if [[ $transport == shm ]]; then
		VRIO_IO_LISTEN=$run/io0.shm
	elif [[ $transport == dpdk ]]; then
		VRIO_IO_LISTEN=${RACK_DPDK_MAC:-02:00:00:00:00:01}
		io_dpdk="    dpdk: {eal: \"$RACK_DPDK_IO_EAL\"}"
		hv_dpdk="    dpdk: {eal: \"$RACK_DPDK_HV_EAL\"}"
	else
		free_port p_listen
		VRIO_IO_LISTEN=127.0.0.1:$p_listen
	fi
	[[ -n ${RACK_IO_HEARTBEAT:-} ]] && io_hb="    heartbeat: {$RACK_IO_HEARTBEAT}"
	if [[ ${RACK_TLS:-} == psk ]]; then
		io_tls="    tls: {psk: true}"
		hv_key="    key_file: $run/host0.key"
		(umask 077; head -c 32 /dev/urandom >"$run/host0.key")
	fi
	[[ -n ${RACK_COALESCE:-} ]] && co="    coalesce_us: $RACK_COALESCE"
	[[ -n ${RACK_A_STAGE:-} ]] && a_chain=$(printf '    interpose:\n      - %s' "$RACK_A_STAGE")
	VRIO_IO_METRICS=127.0.0.1:$p_iom
	VRIO_HV_METRICS=127.0.0.1:$p_hvm
	VRIO_TOPO=$run/topology.yaml
	RACK_DISK_A=$run/disk-a.img
	RACK_SOCK_A=$run/disk-a.sock
	RACK_SOCK_B=$run/disk-b.sock
	vrio_ctl_paths "$run"
	cat >"$VRIO_TOPO" <<EOT
version: 1
io_servers:
  - name: io0
    transport: $transport
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: {min: 1, max: 1}
$io_dpdk
$io_hb
$io_tls
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
$hv_dpdk
$hv_key
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $RACK_SOCK_A
    queues: 2
    backend: {file: $RACK_DISK_A, size: 64M}
$co
$a_chain
  - name: disk-b
    type: blk
    host: host0
    io_server: io0
    socket: $RACK_SOCK_B
    queues: 1
    backend: ${RACK_B_BACKEND:-{ram: 32M\}}
$co
EOT
	VRIO_IO_WRAP=()
	VRIO_HV_WRAP=()
	if [[ -n ${RACK_IO_NS:-} ]]; then
		VRIO_IO_WRAP=(ip netns exec "$RACK_IO_NS")
	fi
	if [[ -n ${RACK_HV_NS:-} ]]; then
		VRIO_HV_WRAP=(ip netns exec "$RACK_HV_NS")
	fi
	vrio_start "$run" "$VRIO_TOPO" "$RACK_SOCK_A" "$RACK_SOCK_B"
}

# rack_ns NS CMD...: runs CMD (a lib.sh function too) in network namespace
# NS, or here when NS is empty.
rack_ns() {
	local ns=$1
	shift
	if [[ -z $ns ]]; then
		"$@"
	else
		# shellcheck disable=SC2016 # the inner script expands its own arguments
		VRIO_LOG_PREFIX=$VRIO_LOG_PREFIX ip netns exec "$ns" \
			bash -c 'source "$1"; shift; "$@"' _ "$VRIO_ROOT/scripts/lib.sh" "$@"
	fi
}

rack_fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# rack_alive: both daemons still run.
rack_alive() {
	pid_alive "$VRIO_IO_PID" || rack_fail "vrio-ioserver died"
	pid_alive "$VRIO_HV_PID" || rack_fail "vrio-localhv died"
}

# rack_check_metrics DIR: saves both expositions and runs promtool on them.
rack_check_metrics() {
	local dir=$1 name
	rack_ns "${RACK_IO_NS:-}" vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$dir/io.metrics" ||
		rack_fail "io metrics"
	rack_ns "${RACK_HV_NS:-}" vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$dir/hv.metrics" ||
		rack_fail "hv metrics"
	if have_cmd promtool; then
		for name in io hv; do
			promtool check metrics <"$dir/$name.metrics" ||
				rack_fail "promtool rejects the $name exposition"
		done
	else
		log "promtool not installed: exposition not linted"
	fi
}

# ---- the dpdk transport's ports ----

RACK_NETNS=()
_rack_nveth=0

# rack_pmd_present NAME: the EAL can load librte_net_NAME. Debian's DPDK
# loads its PMDs from a plugin directory; without one they are built in.
rack_pmd_present() {
	local libdir d found_dir=0
	libdir=$(pkg-config --variable=libdir libdpdk 2>/dev/null) || return 0
	for d in "$libdir"/dpdk/pmds-*; do
		[[ -d $d ]] || continue
		found_dir=1
		[[ -e $d/librte_net_$1.so ]] && return 0
	done
	((found_dir == 0))
}

rack_kernel_has() {
	awk -v p="$1" '$1 == p { f = 1 } END { exit !f }' /proc/net/protocols
}

# rack_veth_pair: two network namespaces joined by a veth pair, loopback up
# in each (the metrics ports), the io-server's end carrying RACK_DPDK_MAC.
# Sets RACK_IO_NS RACK_HV_NS and RACK_VETH_IO RACK_VETH_HV (the ends).
rack_veth_pair() {
	local n=$$-$((_rack_nveth++))
	local io_ns=vrio-$n-io hv_ns=vrio-$n-hv
	[[ $(id -u) == 0 ]] || skip "dpdk over veth needs root for network namespaces"
	have_cmd ip || skip "dpdk over veth needs iproute2"
	ip netns add "$io_ns" 2>/dev/null || skip "cannot create a network namespace"
	RACK_NETNS+=("$io_ns")
	ip netns add "$hv_ns" || die "cannot create a second network namespace"
	RACK_NETNS+=("$hv_ns")
	RACK_VETH_IO=vio$n
	RACK_VETH_HV=vhv$n
	ip link add "$RACK_VETH_IO" netns "$io_ns" type veth peer name "$RACK_VETH_HV" \
		netns "$hv_ns" || skip "cannot create a veth pair"
	ip -n "$io_ns" link set "$RACK_VETH_IO" address "$RACK_DPDK_MAC"
	ip -n "$io_ns" link set lo up
	ip -n "$hv_ns" link set lo up
	ip -n "$io_ns" link set "$RACK_VETH_IO" up
	ip -n "$hv_ns" link set "$RACK_VETH_HV" up
	RACK_IO_NS=$io_ns
	RACK_HV_NS=$hv_ns
}

# rack_dpdk_port RUN_DIR PORT: the next rack_up runs over the dpdk
# transport on PORT, one of
#   memif      the io-server a memif server, local-hv its client, on a
#              socket in RUN_DIR
#   af_packet  a veth pair between two network namespaces (rack_veth_pair):
#              the io-server in one, local-hv in the other, each on its end
#   af_xdp     the same through net_af_xdp
# A port this machine cannot run (no root, no AF_XDP, no PMD) is a SKIP
# with the reason. rack_netns_cleanup deletes the namespaces.
rack_dpdk_port() {
	local run=$1 vdev
	RACK_TRANSPORT=dpdk
	RACK_DPDK_MAC=02:00:00:00:00:01
	RACK_IO_NS=
	RACK_HV_NS=
	case $2 in
	memif)
		rack_pmd_present memif || skip "DPDK has no memif PMD"
		vdev="net_memif0,socket=$run/memif.sock,socket-abstract=no"
		RACK_DPDK_IO_EAL="--vdev=$vdev,role=server,mac=$RACK_DPDK_MAC"
		RACK_DPDK_HV_EAL="--vdev=$vdev,role=client"
		;;
	af_packet)
		rack_kernel_has PACKET || skip "the kernel has no AF_PACKET sockets"
		rack_pmd_present af_packet || skip "DPDK has no af_packet PMD"
		rack_veth_pair
		# Rings deep enough for a window of fragments.
		RACK_DPDK_IO_EAL="--vdev=net_af_packet0,iface=$RACK_VETH_IO,framecnt=4096"
		RACK_DPDK_HV_EAL="--vdev=net_af_packet0,iface=$RACK_VETH_HV,framecnt=4096"
		;;
	af_xdp)
		rack_kernel_has XDP || skip "the kernel has no AF_XDP sockets"
		rack_pmd_present af_xdp || skip "DPDK has no af_xdp PMD"
		rack_veth_pair
		RACK_DPDK_IO_EAL="--vdev=net_af_xdp0,iface=$RACK_VETH_IO,start_queue=0,queue_count=1"
		RACK_DPDK_HV_EAL="--vdev=net_af_xdp0,iface=$RACK_VETH_HV,start_queue=0,queue_count=1"
		;;
	*)
		die "unknown dpdk port '$2' (memif, af_packet or af_xdp)"
		;;
	esac
}

# rack_down: stops the rack. A memif server must not be forwarding when its
# client goes (ENVIRONMENT.md): there the io-server stops first.
rack_down() {
	local rc=0
	if [[ ${RACK_DPDK_IO_EAL:-} == *net_memif* ]]; then
		vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || rc=1
		vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || rc=1
	else
		vrio_down || rc=1
	fi
	return "$rc"
}

# rack_netns_cleanup: an EXIT trap for scripts that made namespaces. They go
# after the daemons in them: lib_cleanup stops those first.
rack_netns_cleanup() {
	local rc=$? ns
	lib_cleanup || true
	for ns in "${RACK_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null || log "could not delete network namespace $ns"
	done
	exit "$rc"
}
