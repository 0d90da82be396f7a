#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# trunk-over.sh BUILD_DIR TRANSPORT: a network spanning two io-servers
# whose rack runs over TRANSPORT, dpdk or shm (trunk.sh runs tcp). io0
# serves nic-a (host0), io1 nic-b (host1), both on network lan: every frame
# between them crosses the trunk io0 -> io1.
#
# dpdk: the trunk is vrio frames as raw Ethernet under the reliable layer
# (sequencing, acknowledgement, retransmission), as the hosts' connections
# are. One network namespace this test makes holds a bridge (the rack's
# Ethernet) and a veth pair per daemon; each daemon drives its end through
# net_af_packet.
# shm: the trunk is a pair of shared-memory rings, io0 dialling io1's
# socket; a side that sleeps is woken by a doorbell it asked for.
#
#   1. a stream of 50,000 frames across the trunk: whole, in order; rr;
#   1b. (shm) everything idle for 2 s, so both trunk ends sleep: rr again
#      gets every transaction through, woken by doorbells;
#   2. (dpdk) the trunk black-holed for 0.6 s (the bridge isolates io0's and
#      io1's ports from each other; the hosts still reach both) under rr
#      with 8 in flight: the reliable layer sends again what the hole took,
#      no transaction is lost, the trunk stays up;
#   3. (dpdk) black-holed past dead_after under a stream: both ends
#      declare it down and count it; every frame lost is counted, by io0 as
#      unacknowledged in the connection when it died or as sent while the
#      trunk was down (or further on, by io1 or host1); io0 dials again
#      once the hole is gone, and a stream and rr then get everything
#      through;
#   4. the trunk's metrics through promtool; the four daemons stop with 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lsan-dpdk.supp"

IO_MAC=(02:00:00:00:00:01 02:00:00:00:00:02)
HV_MAC=(02:00:00:00:00:11 02:00:00:00:00:12)

NS=
in_ns() { rack_ns "$NS" "$@"; }

# One veth pair a daemon: NAME's end for its af_packet port, b-NAME on the
# bridge.
make_lan() {
	local i
	[[ $(id -u) == 0 ]] || skip "the rack's Ethernet needs root for a network namespace"
	have_cmd ip || skip "no iproute2"
	have_cmd bridge || skip "no bridge command (iproute2) to isolate bridge ports"
	rack_kernel_has PACKET || skip "the kernel has no AF_PACKET sockets"
	rack_pmd_present af_packet || skip "DPDK has no af_packet PMD"
	NS=vrio-$$-trunk
	ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace"
	RACK_NETNS+=("$NS")
	ip -n "$NS" link set lo up
	ip -n "$NS" link add br0 type bridge || skip "cannot create a bridge"
	ip -n "$NS" link set br0 up
	for i in io0 io1 hv0 hv1; do
		ip -n "$NS" link add "$i" type veth peer name "b-$i" || skip "cannot create a veth pair"
		ip -n "$NS" link set "b-$i" master br0
		ip -n "$NS" link set "b-$i" up
	done
	ip -n "$NS" link set io0 address "${IO_MAC[0]}"
	ip -n "$NS" link set io1 address "${IO_MAC[1]}"
	ip -n "$NS" link set hv0 address "${HV_MAC[0]}"
	ip -n "$NS" link set hv1 address "${HV_MAC[1]}"
	for i in io0 io1 hv0 hv1; do
		ip -n "$NS" link set "$i" up
	done
	bridge -n "$NS" link set dev b-io0 isolated off ||
		skip "the bridge cannot isolate ports (to cut the trunk alone)"
}

# hole on|off: io0's and io1's bridge ports cannot reach each other (the
# hosts' ports still reach both).
hole() {
	bridge -n "$NS" link set dev b-io0 isolated "$1"
	bridge -n "$NS" link set dev b-io1 isolated "$1"
}

eal() { # IFACE
	echo "--vdev=net_af_packet0,iface=$1,framecnt=4096"
}

# io_server N: its entry in the topology, over $TRANSPORT.
io_server() {
	local listen dpdk=
	local -n iom=P_IOM$1
	if [[ $TRANSPORT == dpdk ]]; then
		listen=${IO_MAC[$1]}
		dpdk="    dpdk: {eal: \"$(eal "io$1")\"}"
	else
		listen=$RUN/io$1.shm
	fi
	printf '  - name: io%s\n    transport: %s\n    listen: %s\n' "$1" "$TRANSPORT" "$listen"
	printf '    metrics: 127.0.0.1:%s\n    control: %s\n' "$iom" "$RUN/io$1.ctl"
	printf '    cores: {min: 1, max: 1}\n'
	# Over shm a long interval: a sleeping trunk end must be woken by a
	# doorbell, not by its next heartbeat.
	if [[ $TRANSPORT == dpdk ]]; then
		printf '    heartbeat: {interval_ms: 200, dead_after_ms: 3000}\n'
	else
		printf '    heartbeat: {interval_ms: 1000, dead_after_ms: 10000}\n'
	fi
	[[ -z $dpdk ]] || printf '%s\n' "$dpdk"
}

host() { # N: its entry in the topology
	local -n hvm=P_HV$1
	printf '  - name: host%s\n    metrics: 127.0.0.1:%s\n    control: %s\n' "$1" "$hvm" "$RUN/host$1.ctl"
	[[ $TRANSPORT != dpdk ]] || printf '    dpdk: {eal: "%s"}\n' "$(eal "hv$1")"
}

write_rack() {
	cat >"$RUN/topology.yaml" <<EOF
version: 1
io_servers:
$(io_server 0)
$(io_server 1)
hosts:
$(host 0)
$(host 1)
$(rack_lan_ab)
EOF
}

bench() { # MODE ARGS...: a -> b, with an 8 s timeout (a stalled frame is late, not lost)
	in_ns net_bench "$1" a b --timeout 8000 "${@:2}"
}

io_metric() { # N PREFIX: the sum of PREFIX's samples on io-server N
	local -n port=P_IOM$1
	in_ns http_get "127.0.0.1:$port" /metrics | metric_sum "$2"
}

trunk_up() { # N PEER
	[[ $(io_metric "$1" "vrio_ioserver_trunk_up{peer=\"$2\"}") == 1 ]]
}

trunk_down() { # N PEER
	[[ $(io_metric "$1" "vrio_ioserver_trunk_up{peer=\"$2\"}") == 0 ]]
}

# show_drops: every non-zero drop counter of the four daemons, for a
# failure's log.
show_drops() {
	local i port
	for i in 0 1; do
		port=P_IOM$i
		in_ns http_get "127.0.0.1:${!port}" /metrics | grep -E '^vrio_[a-z_]*drops_total' |
			grep -v ' 0$' | sed "s/^/io$i: /" >&2 || true
		port=P_HV$i
		in_ns http_get "127.0.0.1:${!port}" /metrics | grep -E '^vrio_[a-z_]*drops_total' |
			grep -v ' 0$' | sed "s/^/host$i: /" >&2 || true
	done
}

frames_in() { # io1's frames in from io0
	io_metric 1 'vrio_ioserver_trunk_frames_total{peer="io0",direction="in"}'
}

main() {
	local build out sent received lost i c0 c1 downs connects dropped unacked down counted
	build=$(cd "$1" && pwd)
	TRANSPORT=${2:?usage: trunk-over.sh BUILD_DIR dpdk|shm}
	VRIO_LOG_PREFIX="trunk-over-$TRANSPORT"
	[[ $TRANSPORT == dpdk || $TRANSPORT == shm ]] || die "unknown transport '$TRANSPORT'"
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	export BENCH RUN
	make_tmpdir RUN
	for p in P_IOM0 P_IOM1 P_HV0 P_HV1; do
		free_port "$p"
	done
	[[ $TRANSPORT != dpdk ]] || make_lan
	write_rack
	out=$("$build/tools/vrioctl" check "$RUN/topology.yaml") || fail "vrioctl check: $out"
	grep -qx 'network lan: io_servers io0, io1 (1 trunk)' <<<"$out" ||
		fail "vrioctl check does not show lan's span: $out"

	local -a ns_exec=()
	[[ -z $NS ]] || ns_exec=(ip netns exec "$NS")
	for i in 0 1; do
		start_daemon "IO_PID$i" "vrio-ioserver-io$i" "$RUN/ioserver-io$i.log" \
			"${ns_exec[@]}" "$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node "io$i"
	done
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			"${ns_exec[@]}" "$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" --node "host$i"
	done
	wait_for_socket "$RUN/a.sock" 30 "$HV_PID0" || fail "no socket for nic-a"
	wait_for_socket "$RUN/b.sock" 30 "$HV_PID1" || fail "no socket for nic-b"
	wait_until 30 trunk_up 0 io1 || fail "the trunk io0 -> io1 did not come up over $TRANSPORT"
	wait_until 30 trunk_up 1 io0 || fail "io1 does not see the trunk up"
	if [[ $TRANSPORT == dpdk ]]; then
		grep -q "dpdk: port 0 (net_af_packet" "$RUN/ioserver-io0.log" ||
			fail "io0 opened no af_packet port"
	fi

	# 1. A stream across the trunk.
	out=$(bench stream --count 50000 --frame-size 1000) || fail "stream failed: $out"
	sent=$(json_str "$out" "j['sent']")
	received=$(json_str "$out" "j['received']")
	log "stream across the $TRANSPORT trunk: $received of $sent frames, $(json_str "$out" "j['pps']") packets/s"
	if [[ $sent != 50000 || $received != 50000 ]]; then
		show_drops
		fail "stream: $received of $sent frames arrived"
	fi
	[[ $(json_str "$out" "j['bad']") == 0 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "stream: frames damaged or out of order: $out"
	out=$(bench rr --count 2000 --iodepth 8) || fail "rr failed: $out"
	log "rr across the $TRANSPORT trunk: $(json_str "$out" "j['received']") transactions, p50 $(json_str "$out" "j['rtt_us']['p50']") us"
	[[ $(json_str "$out" "j['received']") == 2000 && $(json_str "$out" "j['lost']") == 0 ]] ||
		fail "rr: transactions lost: $out"

	if [[ $TRANSPORT == shm ]]; then
		# 1b. Idle long enough for every poller to sleep: the first
		# frame after each spell must ring the trunk's doorbell (without
		# one, it would wait for the next heartbeat, up to 1 s).
		local rtts=()
		for i in 1 2 3; do
			sleep 2.5
			out=$(bench rr --count 1) || fail "rr after an idle trunk failed: $out"
			[[ $(json_str "$out" "j['received']") == 1 ]] || fail "rr after an idle trunk: $out"
			rtts+=("$(json_str "$out" "int(j['rtt_us']['p50'])")")
		done
		log "a transaction after each of three idle spells: ${rtts[*]} us"
		for i in "${rtts[@]}"; do
			((i < 200000)) || fail "a transaction after an idle spell took $i us: no doorbell?"
		done
		stop_all
		echo "PASS: integration/trunk-over-$TRANSPORT"
		return
	fi

	# 2. A hole shorter than dead_after under rr: retransmitted, nothing lost.
	downs=$(io_metric 0 'vrio_ioserver_trunk_downs_total{peer="io1"}')
	bench rr --runtime 4 --iodepth 8 >"$RUN/hole.json" 2>"$RUN/hole.err" &
	local bpid=$!
	track_pid "$bpid" vrio-bench
	sleep 1.5
	hole on
	c0=$(frames_in)
	sleep 0.6
	c1=$(frames_in)
	hole off
	wait "$bpid" || fail "rr across a short hole failed: $(cat "$RUN/hole.json" "$RUN/hole.err")"
	untrack_pid "$bpid"
	out=$(cat "$RUN/hole.json")
	log "rr across a 0.6 s hole: $(json_str "$out" "j['received']") transactions, $(json_str "$out" "j['lost']") lost, p50 $(json_str "$out" "j['rtt_us']['p50']") us; io1 took $((c1 - c0)) trunk frames while the hole was open"
	((c1 - c0 <= 1)) || fail "the hole let $((c1 - c0)) frames through: not a cut"
	[[ $(json_str "$out" "j['lost']") == 0 ]] || fail "the reliable layer lost transactions in a short hole: $out"
	(($(json_str "$out" "j['received']") > 100)) || fail "rr made too few transactions: $out"
	[[ $(io_metric 0 'vrio_ioserver_trunk_downs_total{peer="io1"}') == "$downs" ]] ||
		fail "a hole shorter than dead_after took the trunk down"

	# 3. A hole past dead_after under a stream: down, counted, dialled
	# again. The bench gives up on a window it has not seen arrive after
	# 1 s and sends on, so frames also meet the trunk while it is down.
	connects=$(io_metric 0 'vrio_ioserver_trunk_connects_total{peer="io1"}')
	in_ns net_bench stream a b --timeout 1000 --runtime 9 --frame-size 1000 \
		>"$RUN/cut.json" 2>"$RUN/cut.err" &
	bpid=$!
	track_pid "$bpid" vrio-bench
	sleep 1
	hole on
	wait_until 15 trunk_down 0 io1 || fail "io0 did not declare the black-holed trunk down"
	wait_until 15 trunk_down 1 io0 || fail "io1 did not declare the black-holed trunk down"
	sleep 1.5
	hole off
	wait "$bpid" || true
	untrack_pid "$bpid"
	wait_until 30 trunk_up 0 io1 || fail "the trunk did not come back after the hole"
	wait_until 30 trunk_up 1 io0 || fail "io1 does not see the trunk back"
	out=$(cat "$RUN/cut.json")
	sent=$(json_str "$out" "j['sent']")
	received=$(json_str "$out" "j['received']")
	lost=$((sent - received))
	dropped=$(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",')
	unacked=$(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",reason="unacked"}')
	down=$(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",reason="down"}')
	log "long hole under a stream: $received of $sent frames arrived, $lost lost; io0 counted $dropped dropped toward the trunk ($unacked unacknowledged when it went down, $down while it was down); connects $connects -> $(io_metric 0 'vrio_ioserver_trunk_connects_total{peer="io1"}')"
	((lost > 0)) || fail "a trunk down for seconds lost nothing: $out"
	((unacked > 0)) || fail "io0 counted nothing lost with the dead connection"
	((down > 0)) || fail "io0 counted no frames dropped while the trunk was down"
	# Every frame lost is counted (a frame delivered whose acknowledgement
	# the hole took is counted too: hence at most, not equal).
	# Every frame lost is counted on its way: mostly by io0 (a frame
	# delivered whose acknowledgement the hole took is counted too: hence
	# at most, not equal), else by io1 or host1's local-hv.
	counted=$((dropped + $(io_metric 1 'vrio_ioserver_trunk_drops_total{peer="io0",') +
		$(io_metric 1 'vrio_ioserver_switch_drops_total{network="lan",port="nic-b",') +
		$(in_ns http_get "127.0.0.1:$P_HV1" /metrics |
			metric_sum 'vrio_localhv_net_drops_total{device="nic-b",')))
	if ((lost > counted)); then
		show_drops
		fail "$lost frames lost, only $counted counted ($dropped by io0)"
	fi
	[[ $(json_str "$out" "j['bad']") == 0 ]] || fail "frames damaged across the hole: $out"
	(($(io_metric 0 'vrio_ioserver_trunk_downs_total{peer="io1"}') > downs)) ||
		fail "io0 counted no trunk down"
	(($(io_metric 0 'vrio_ioserver_trunk_connects_total{peer="io1"}') > connects)) ||
		fail "io0 did not dial the trunk again"

	out=$(bench stream --count 20000 --frame-size 1000) || fail "stream after the hole failed: $out"
	[[ $(json_str "$out" "j['received']") == 20000 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "stream after the hole: $out"
	out=$(in_ns net_bench rr b a --timeout 8000 --count 2000 --iodepth 4) ||
		fail "rr after the hole failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "rr after the hole: $out"
	log "after the hole: 20,000 frames and 2,000 transactions, none lost"

	stop_all
	echo "PASS: integration/trunk-over-$TRANSPORT"
}

# 4. Metrics, and a clean stop.
stop_all() {
	local i
	for i in 0 1; do
		local -n port=P_IOM$i
		in_ns http_get "127.0.0.1:$port" /metrics >"$RUN/io$i.metrics" || fail "no io$i metrics"
		if have_cmd promtool; then
			promtool check metrics <"$RUN/io$i.metrics" || fail "promtool rejects io$i's"
		fi
		unset -n port
	done
	for i in 0 1; do
		vrio_stop "vrio-localhv-host$i" "$(eval echo "\$HV_PID$i")" "$RUN/localhv-host$i.log" ||
			fail "host$i did not stop cleanly"
	done
	for i in 0 1; do
		vrio_stop "vrio-ioserver-io$i" "$(eval echo "\$IO_PID$i")" "$RUN/ioserver-io$i.log" ||
			fail "io$i did not stop cleanly"
	done
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
