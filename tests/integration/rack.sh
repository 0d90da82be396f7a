# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# A two-device rack on loopback for integration tests: io-server io0, host
# host0, blk devices disk-a (a file) and disk-b (RAM). Source after
# scripts/lib.sh. rack_up RUN_DIR BUILD_DIR starts it (vrio_start) and sets,
# besides what vrio_start sets: VRIO_TOPO VRIO_IO_LISTEN VRIO_IO_METRICS
# VRIO_HV_METRICS RACK_DISK_A RACK_SOCK_A RACK_SOCK_B BENCH. vrio_down stops
# it. RACK_TRANSPORT (tcp, the default, shm or dpdk) picks the transport;
# with shm the io-server listens on a socket path in RUN_DIR, with dpdk on
# the MAC RACK_DPDK_MAC (02:00:00:00:00:01) of the port that
# RACK_DPDK_IO_EAL adds to its EAL (RACK_DPDK_HV_EAL: local-hv's).
# RACK_IO_NS and RACK_HV_NS, when set, name the network namespaces each
# daemon runs in.

rack_up() {
	local run=$1 build=$2 transport=${RACK_TRANSPORT:-tcp} p_listen p_iom p_hvm
	local io_dpdk="" hv_dpdk=""
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
	VRIO_IO_METRICS=127.0.0.1:$p_iom
	VRIO_HV_METRICS=127.0.0.1:$p_hvm
	VRIO_TOPO=$run/topology.yaml
	RACK_DISK_A=$run/disk-a.img
	RACK_SOCK_A=$run/disk-a.sock
	RACK_SOCK_B=$run/disk-b.sock
	cat >"$VRIO_TOPO" <<EOT
version: 1
io_servers:
  - name: io0
    transport: $transport
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    cores: {min: 1, max: 1}
$io_dpdk
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
$hv_dpdk
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $RACK_SOCK_A
    queues: 2
    backend: {file: $RACK_DISK_A, size: 64M}
  - name: disk-b
    type: blk
    host: host0
    io_server: io0
    socket: $RACK_SOCK_B
    queues: 1
    backend: {ram: 32M}
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
