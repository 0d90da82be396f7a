# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# A two-device rack on loopback for integration tests: io-server io0, host
# host0, blk devices disk-a (a file) and disk-b (RAM). Source after
# scripts/lib.sh. rack_up RUN_DIR BUILD_DIR sets:
#   RACK_TOPO RACK_DISK_A RACK_SOCK_A RACK_SOCK_B RACK_IO_LISTEN
#   RACK_IO_METRICS RACK_HV_METRICS RACK_IO_PID RACK_HV_PID RACK_IO_LOG
#   RACK_HV_LOG BENCH

rack_up() {
	local run=$1 build=$2 p_listen p_iom p_hvm
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	[[ -x $BENCH ]] || skip "vrio-bench not built in $build"
	free_port p_listen
	free_port p_iom
	free_port p_hvm
	RACK_IO_LISTEN=127.0.0.1:$p_listen
	RACK_IO_METRICS=127.0.0.1:$p_iom
	RACK_HV_METRICS=127.0.0.1:$p_hvm
	RACK_TOPO=$run/topology.yaml
	RACK_DISK_A=$run/disk-a.img
	RACK_SOCK_A=$run/disk-a.sock
	RACK_SOCK_B=$run/disk-b.sock
	RACK_IO_LOG=$run/ioserver.log
	RACK_HV_LOG=$run/localhv.log
	cat >"$RACK_TOPO" <<EOT
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $RACK_IO_LISTEN
    metrics: $RACK_IO_METRICS
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    metrics: $RACK_HV_METRICS
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
	start_daemon RACK_IO_PID vrio-ioserver "$RACK_IO_LOG" \
		"$VRIO_IOSERVER_BIN" --config "$RACK_TOPO" --node io0
	wait_for_port "$p_listen" 20 "$RACK_IO_PID" || rack_fail "vrio-ioserver did not listen"
	start_daemon RACK_HV_PID vrio-localhv "$RACK_HV_LOG" \
		"$VRIO_LOCALHV_BIN" --config "$RACK_TOPO" --node host0
	wait_for_socket "$RACK_SOCK_A" 20 "$RACK_HV_PID" || rack_fail "no socket for disk-a"
	wait_for_socket "$RACK_SOCK_B" 20 "$RACK_HV_PID" || rack_fail "no socket for disk-b"
}

rack_fail() {
	show_log vrio-localhv "$RACK_HV_LOG"
	show_log vrio-ioserver "$RACK_IO_LOG"
	die "$*"
}

# rack_alive: both daemons still run.
rack_alive() {
	pid_alive "$RACK_IO_PID" || rack_fail "vrio-ioserver died"
	pid_alive "$RACK_HV_PID" || rack_fail "vrio-localhv died"
}

# rack_check_metrics DIR: saves both expositions and runs promtool on them.
rack_check_metrics() {
	local dir=$1 name
	vrio_metrics vrio-ioserver "$RACK_IO_METRICS" "$dir/io.metrics" || rack_fail "io metrics"
	vrio_metrics vrio-localhv "$RACK_HV_METRICS" "$dir/hv.metrics" || rack_fail "hv metrics"
	if have_cmd promtool; then
		for name in io hv; do
			promtool check metrics <"$dir/$name.metrics" ||
				rack_fail "promtool rejects the $name exposition"
		done
	else
		log "promtool not installed: exposition not linted"
	fi
}

rack_down() {
	local rc=0
	vrio_stop vrio-localhv "$RACK_HV_PID" "$RACK_HV_LOG" || rc=1
	vrio_stop vrio-ioserver "$RACK_IO_PID" "$RACK_IO_LOG" || rc=1
	return "$rc"
}
