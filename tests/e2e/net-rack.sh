# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# The e2e net rack: QEMU TCG guests on two compute nodes whose vhost-user
# NICs the io-server switches, all in network namespaces this file makes.
# Source after scripts/lib.sh and tests/integration/rack.sh (for
# rack_netns_cleanup, which the caller traps on EXIT). The caller sets RUN
# and GUEST (the guest image directory) and writes $RUN/topology.yaml with
# io0 listening on 10.99.0.1:7400, the control sockets IO_CTL (io0) and
# HV_CTL[0..1] (host0, host1), and net devices vm-a-net (socket
# $RUN/a.sock, on host0), vm-b-net and vm-c-net ($RUN/b.sock and
# $RUN/c.sock, on host1).
#
#   rack_prepare BUILD
#                skips unless BUILD has the daemons and QEMU and the guest
#                image (GUEST) are there; makes RUN, then rack
#   rack         the namespaces: IO_NS (the io node, a bridge at
#                10.99.0.1/24) and HV_NS[0..1] (the compute nodes, each on
#                a veth to it); skips without root, iproute2, bridges or
#                /dev/net/tun
#   rack_topology io0|trunk
#                begins $RUN/topology.yaml: io0 (two cores) or, for trunk,
#                io0 and io1 on the io node, host0 and host1, up to
#                "devices:", which the caller appends; sets IO_CTL, HV_CTL
#   start_rack   the io-server in IO_NS, a local-hv in each HV_NS; waits
#                for their sockets (IO_PID, HV_PID0, HV_PID1)
#   start_trunk_rack
#                io0 and io1 in IO_NS (IO_PID0, IO_PID1; control sockets
#                $RUN/io0.ctl, $RUN/io1.ctl), a local-hv in each HV_NS
#   stop_rack    stops the daemons, failing unless each exits with 0
#   guest NAME NS SOCKET MAC RUN PARAM...
#                boots a guest in the background (its pid in PIDS); its
#                console in $RUN/console-NAME.log, its results in
#                $RUN/results-NAME; NET_OPTS, when set, are more
#                virtio-net-pci properties (run-guest.sh --net-opts);
#                GUEST_ARGS (an array) adds options of run-guest.sh
#   ns_metrics NS JOB ADDR OUT
#                a daemon's exposition, fetched from inside namespace NS
#   io_metrics N OUT, hv_metrics N OUT
#                io-server ioN's (at 127.0.0.1:9400 + 2N) or hostN's
#                local-hv's (127.0.0.1:9401 in HV_NS[N]) exposition
#   trunk_up     io0 counts its trunk to io1 up
#   lint_metrics FILE...
#                promtool accepts each exposition (when installed)
#   OFF_OPTS     virtio-net-pci properties that turn the device's checksum,
#                TSO and ECN offloads off (for NET_OPTS)
#   feature_names BITS, check_offloads WHO BITS on|off
#                the names of a guest's virtio-net feature bits; fails
#                unless it negotiated every offload (on) or none (off)
#   wait_guests  waits for every guest in PIDS; status 1 when one failed
#   md5_of NAME RUN, same_md5 RECEIVER SENDER [FLOW]
#                the md5 in a guest's result line; fails unless RECEIVER's
#                net-recv md5 is SENDER's net-send md5 (sets MD5)
#   wait_line FILE PATTERN SECONDS, result_of NAME RUN, fail MESSAGE

PIDS=()

fail() {
	local f
	for f in "$RUN"/*.log; do
		[[ -e $f ]] && show_log "$(basename "$f")" "$f"
	done
	die "$*"
}

# rack_prepare BUILD: the daemons of BUILD, QEMU, the guest image in
# GUEST, a fresh RUN, the rack's namespaces; or a skip.
rack_prepare() {
	local build
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	have_cmd qemu-system-x86_64 || skip "qemu-system-x86_64 not installed (qemu-system-x86)"
	GUEST=$build/tests/e2e/guest
	guest_image "$GUEST"
	make_tmpdir RUN
	rack
}

# rack: the io node's bridge at 10.99.0.1, each compute node on a veth to it.
rack() {
	local p=vrio-$$ i
	[[ $(id -u) == 0 ]] || skip "needs root for network namespaces"
	have_cmd ip || skip "needs iproute2"
	[[ -c /dev/net/tun ]] || skip "no /dev/net/tun for the uplink TAP"
	IO_NS=$p-io
	HV_NS=("$p-h0" "$p-h1")
	ip netns add "$IO_NS" 2>/dev/null || skip "cannot create a network namespace"
	RACK_NETNS+=("$IO_NS")
	ip -n "$IO_NS" link set lo up
	ip -n "$IO_NS" link add br0 type bridge || skip "no bridge support in this kernel"
	ip -n "$IO_NS" addr add 10.99.0.1/24 dev br0
	ip -n "$IO_NS" link set br0 up
	for i in 0 1; do
		ip netns add "${HV_NS[i]}"
		RACK_NETNS+=("${HV_NS[i]}")
		ip -n "${HV_NS[i]}" link set lo up
		ip link add "vh$i-$$" netns "${HV_NS[i]}" type veth peer name "vi$i-$$" netns "$IO_NS"
		ip -n "$IO_NS" link set "vi$i-$$" master br0 up
		ip -n "${HV_NS[i]}" addr add "10.99.0.$((i + 2))/24" dev "vh$i-$$"
		ip -n "${HV_NS[i]}" link set "vh$i-$$" up
	done
}

# start_hosts: a local-hv in each HV_NS; waits for the sockets of vm-a-net,
# vm-b-net and vm-c-net (HV_PID0, HV_PID1).
start_hosts() {
	local i
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			ip netns exec "${HV_NS[i]}" "$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" \
			--node "host$i"
	done
	wait_for_socket "$RUN/a.sock" 20 "$HV_PID0" || fail "host0 serves no socket for vm-a-net"
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "host1 serves no socket for vm-b-net"
	wait_for_socket "$RUN/c.sock" 20 "$HV_PID1" || fail "host1 serves no socket for vm-c-net"
}

# rack_topology io0|trunk: the head of $RUN/topology.yaml, through "devices:".
rack_topology() {
	IO_CTL=$RUN/io0.ctl
	HV_CTL=("$RUN/host0.ctl" "$RUN/host1.ctl")
	{
		echo "version: 1"
		echo "io_servers:"
		echo "  - name: io0"
		echo "    listen: 10.99.0.1:7400"
		echo "    metrics: 127.0.0.1:9400"
		echo "    control: $IO_CTL"
		if [[ $1 == trunk ]]; then
			echo "  - name: io1"
			echo "    listen: 10.99.0.1:7401"
			echo "    metrics: 127.0.0.1:9402"
			echo "    control: $RUN/io1.ctl"
		else
			echo "    cores: {min: 2, max: 2}"
		fi
		echo "hosts:"
		echo "  - name: host0"
		echo "    metrics: 127.0.0.1:9401"
		echo "    control: ${HV_CTL[0]}"
		echo "  - name: host1"
		echo "    metrics: 127.0.0.1:9401"
		echo "    control: ${HV_CTL[1]}"
		echo "devices:"
	} >"$RUN/topology.yaml"
}

start_rack() {
	start_daemon IO_PID vrio-ioserver "$RUN/ioserver.log" \
		ip netns exec "$IO_NS" "$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node io0
	wait_for_port 7400 20 "$IO_PID" || fail "vrio-ioserver is not listening"
	wait_for_socket "$IO_CTL" 20 "$IO_PID" || fail "vrio-ioserver serves no control socket"
	start_hosts
	wait_for_socket "${HV_CTL[0]}" 20 "$HV_PID0" || fail "host0 serves no control socket"
	wait_for_socket "${HV_CTL[1]}" 20 "$HV_PID1" || fail "host1 serves no control socket"
}

# start_trunk_rack: io0 and io1 in IO_NS (control sockets RUN/io0.ctl and
# RUN/io1.ctl; IO_PID0, IO_PID1), then start_hosts.
start_trunk_rack() {
	local i
	for i in 0 1; do
		start_daemon "IO_PID$i" "vrio-ioserver-io$i" "$RUN/ioserver-io$i.log" \
			ip netns exec "$IO_NS" "$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" \
			--node "io$i"
	done
	# shellcheck disable=SC2153 # start_daemon set IO_PID0 and IO_PID1
	wait_for_socket "$RUN/io0.ctl" 20 "$IO_PID0" || fail "io0 serves no control socket"
	# shellcheck disable=SC2153
	wait_for_socket "$RUN/io1.ctl" 20 "$IO_PID1" || fail "io1 serves no control socket"
	start_hosts
}

# stop_rack: stops both local-hv, then the io-server (IO_PID) or io0 and
# io1 (IO_PID0, IO_PID1); fails unless each exits with status 0.
stop_rack() {
	local i
	vrio_stop vrio-localhv-host0 "$HV_PID0" "$RUN/localhv-host0.log" || fail "host0's local-hv did not stop cleanly"
	vrio_stop vrio-localhv-host1 "$HV_PID1" "$RUN/localhv-host1.log" || fail "host1's local-hv did not stop cleanly"
	if [[ -n ${IO_PID:-} ]]; then
		vrio_stop vrio-ioserver "$IO_PID" "$RUN/ioserver.log" || fail "the io-server did not stop cleanly"
		return 0
	fi
	for i in 0 1; do
		vrio_stop "vrio-ioserver-io$i" "$(eval echo "\$IO_PID$i")" "$RUN/ioserver-io$i.log" ||
			fail "io$i did not stop cleanly"
	done
}

# guest NAME NS SOCKET MAC RUN PARAM...: boots a guest in the background.
guest() {
	local name=$1 ns=$2 sock=$3 mac=$4 what=$5 pid p
	local -a params=()
	shift 5
	for p in "$@"; do
		params+=(--param "$p")
	done
	ip netns exec "$ns" bash "$VRIO_ROOT/tests/e2e/run-guest.sh" --kernel-dir "$GUEST" \
		--net-socket "$sock" --mac "$mac" --run "$what" --timeout 300 \
		--log "$RUN/console-$name.log" ${NET_OPTS:+--net-opts "$NET_OPTS"} "${params[@]}" \
		${GUEST_ARGS[@]+"${GUEST_ARGS[@]}"} >"$RUN/results-$name" 2>"$RUN/guest-$name.log" &
	pid=$!
	track_pid "$pid" "guest $name"
	PIDS+=("$pid")
}

# wait_line FILE PATTERN SECONDS
wait_line() {
	local n=0
	until grep -aq "$2" "$1" 2>/dev/null; do
		((n < $3 * 10)) || return 1
		sleep 0.1
		n=$((n + 1))
	done
}

result_of() { # NAME RUN: the guest's VRIO-RESULT line for RUN
	grep -a "^VRIO-RESULT: $2 " "$RUN/results-$1" | tr -d '\r' | tail -n 1
}

# ns_metrics NS JOB ADDR OUT: lib.sh's vrio_metrics run inside namespace NS.
ns_metrics() {
	ip netns exec "$1" bash -c "source '$VRIO_ROOT/scripts/lib.sh'; vrio_metrics '$2' '$3' '$4'"
}

io_metrics() { # N OUT
	ns_metrics "$IO_NS" "io$1" "127.0.0.1:$((9400 + 2 * $1))" "$2"
}

hv_metrics() { # N OUT
	ns_metrics "${HV_NS[$1]}" "host$1" 127.0.0.1:9401 "$2"
}

trunk_up() {
	io_metrics 0 "$RUN/io0.metrics" >/dev/null 2>&1 &&
		[[ $(metric_sum 'vrio_ioserver_trunk_up{peer="io1"}' <"$RUN/io0.metrics") == 1 ]]
}

# lint_metrics FILE...: fails unless promtool, when installed, accepts each.
lint_metrics() {
	local f
	have_cmd promtool || return 0
	for f in "$@"; do
		promtool check metrics <"$f" || fail "promtool rejects $(basename "$f")"
	done
}

# QEMU's virtio-net-pci properties that offer none of the device's checksum,
# TSO and ECN offloads.
# shellcheck disable=SC2034 # for the tests that source this file
OFF_OPTS=csum=off,guest_csum=off,host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off,host_ecn=off

# The device's offloads, as virtio-net feature bits: CSUM, GUEST_CSUM,
# GUEST_TSO4, GUEST_TSO6, HOST_TSO4, HOST_TSO6, HOST_ECN.
OFFLOAD_BITS=(0 1 7 8 11 12 13)

# feature_names BITS: the names of the virtio-net feature bits set in a
# sysfs features string (bit 0 first).
feature_names() {
	local bits=$1 i names=""
	local -A name=([0]=CSUM [1]=GUEST_CSUM [2]=CTRL_GUEST_OFFLOADS [5]=MAC
		[7]=GUEST_TSO4 [8]=GUEST_TSO6 [9]=GUEST_ECN [10]=GUEST_UFO
		[11]=HOST_TSO4 [12]=HOST_TSO6 [13]=HOST_ECN [14]=HOST_UFO
		[15]=MRG_RXBUF [16]=STATUS [17]=CTRL_VQ [18]=CTRL_RX [19]=CTRL_VLAN [20]=CTRL_RX_EXTRA
		[21]=GUEST_ANNOUNCE [22]=MQ [23]=CTRL_MAC_ADDR [28]=INDIRECT_DESC
		[29]=EVENT_IDX [32]=VERSION_1 [33]=ACCESS_PLATFORM)
	for ((i = 0; i < ${#bits}; i++)); do
		[[ ${bits:i:1} == 1 ]] && names+=" ${name[$i]:-bit$i}"
	done
	echo "${names# }"
}

# check_offloads WHO BITS on|off: fails unless the guest negotiated every
# offload bit (on) or none of them (off), so that offloads that silently
# stop being negotiated fail the test.
check_offloads() {
	local who=$1 bits=$2 want=$3 b v
	[[ -n $bits ]] || fail "guest $who printed no features"
	[[ $want == on ]] && v=1 || v=0
	for b in "${OFFLOAD_BITS[@]}"; do
		[[ ${bits:b:1} == "$v" ]] ||
			fail "guest $who, offloads $want: feature bit $b is '${bits:b:1}' in $bits: $(feature_names "$bits")"
	done
}

# wait_guests: waits for every guest in PIDS; returns 1 when one failed.
wait_guests() {
	local pid rc=0
	for pid in "${PIDS[@]}"; do
		wait "$pid" || rc=1
		untrack_pid "$pid"
	done
	return "$rc"
}

md5_of() { # NAME RUN: the md5= of the guest's VRIO-RESULT line for RUN
	result_of "$1" "$2" | sed -n 's/.* md5=\([0-9a-f]*\) .*/\1/p'
}

# same_md5 RECEIVER SENDER [FLOW]: fails unless the md5 of RECEIVER's
# net-recv line (that of flow FLOW, when given) is that of SENDER's
# net-send line; sets MD5 to it. WHAT, when set, begins the failure.
same_md5() {
	local r s run=${3:+ flow=$3}
	r=$(md5_of "$1" "net-recv$run")
	s=$(md5_of "$2" "net-send$run")
	[[ -n $r && $r == "$s" ]] ||
		fail "${WHAT:+$WHAT: }${3:+flow $3: }guest $1 received md5 '$r', guest $2 sent md5 '$s'"
	# shellcheck disable=SC2034 # read by the caller
	MD5=$r
}
