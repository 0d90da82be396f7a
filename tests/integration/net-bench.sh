#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-bench.sh BUILD_DIR: virtio-net through vrio with vrio-bench as the
# guests, on loopback. io-server io0 switches network lan (nic-a on host0,
# nic-b on host1: two local-hv, so frames cross two connections and, with
# two reactors, between reactors) and network dmz (nic-d on host1).
#
#   1. stream from nic-a to nic-b: frames arrive whole, in order, none lost
#      (the bench keeps a window of B's ring);
#   2. request/response with 8 in flight: every transaction answered;
#   3. nic-a and nic-d on different networks never hear each other;
#   3b. the same ports behind a vIOMMU (vrio-bench --iommu answering the
#      IOTLB misses of rte_vhost's net path): every frame and transaction;
#   3c. TSO from A (vrio-bench --gso) to B, which did not negotiate it:
#      every segment arrives wire-sized and correct, and is counted;
#   3d. the same with HOST_ECN and CWR (--ecn): local-hv gives the packets
#      back the ECN bit that rte_vhost drops, the io-server counts them
#      from A and cuts them for B, CWR on each packet's first segment only;
#   4. a guest that sends with a MAC not its own gets nothing through, and
#      the switch counts the drops;
#   5. metrics per port and the local-hv's drop counters, through promtool;
#   6. the io-server goes away: the guests' frames are dropped and counted
#      by local-hv (nothing backs up into the guest), and once it is back
#      both local-hv reconnect and traffic flows again; the three daemons
#      stop with status 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# write_topology: the rack in $RUN/topology.yaml, with the control sockets
# IO_CTL, HV_CTL0 and HV_CTL1 (io0, host0, host1) in RUN.
write_topology() {
	IO_CTL=$RUN/io0.ctl
	HV_CTL0=$RUN/host0.ctl
	HV_CTL1=$RUN/host1.ctl
	cat >"$RUN/topology.yaml" <<EOF
version: 1
io_servers:
  - name: io0
    listen: 127.0.0.1:$P_LISTEN
    metrics: 127.0.0.1:$P_IOM
    control: $IO_CTL
    cores: {min: 2, max: 2}
hosts:
  - name: host0
    metrics: 127.0.0.1:$P_HV0
    control: $HV_CTL0
  - name: host1
    metrics: 127.0.0.1:$P_HV1
    control: $HV_CTL1
devices:
  - name: nic-a
    type: net
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    mac: "52:54:00:00:00:0a"
    network: lan
  - name: nic-b
    type: net
    host: host1
    io_server: io0
    socket: $RUN/b.sock
    mac: "52:54:00:00:00:0b"
    network: lan
  - name: nic-d
    type: net
    host: host1
    io_server: io0
    socket: $RUN/d.sock
    mac: "52:54:00:00:00:0d"
    network: dmz
networks:
  - name: lan
  - name: dmz
EOF
}

main() {
	local build out i n sent received
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	make_tmpdir RUN
	free_port P_LISTEN
	free_port P_IOM
	free_port P_HV0
	free_port P_HV1
	write_topology

	start_io0_hosts "$P_LISTEN" "$IO_CTL"
	wait_for_socket "$RUN/a.sock" 20 "$HV_PID0" || fail "no socket for nic-a"
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "no socket for nic-b"
	wait_for_socket "$RUN/d.sock" 20 "$HV_PID1" || fail "no socket for nic-d"
	wait_for_socket "$HV_CTL0" 20 "$HV_PID0" || fail "host0 serves no control socket"
	wait_for_socket "$HV_CTL1" 20 "$HV_PID1" || fail "host1 serves no control socket"

	out=$(net_bench stream a b --count 200000 --frame-size 1000) || fail "stream failed: $out"
	sent=$(json_str "$out" "j['sent']")
	received=$(json_str "$out" "j['received']")
	log "stream: $received of $sent frames, $(json_str "$out" "j['pps']") packets/s"
	[[ $sent == 200000 && $received == 200000 ]] || fail "stream: $received of $sent frames arrived"
	[[ $(json_str "$out" "j['bad']") == 0 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "stream: frames damaged or out of order: $out"

	out=$(net_bench rr a b --count 20000 --iodepth 8) || fail "rr failed: $out"
	log "rr: $(json_str "$out" "j['received']") transactions, p50 $(json_str "$out" "j['rtt_us']['p50']") us"
	[[ $(json_str "$out" "j['received']") == 20000 && $(json_str "$out" "j['lost']") == 0 ]] ||
		fail "rr: transactions lost: $out"

	out=$(net_bench stream a b --count 50000 --iommu) || fail "stream behind a vIOMMU failed: $out"
	[[ $(json_str "$out" "j['received']") == 50000 && $(json_str "$out" "j['bad']") == 0 ]] ||
		fail "stream behind a vIOMMU: $out"
	out=$(net_bench rr a b --count 2000 --iommu) || fail "rr behind a vIOMMU failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "rr behind a vIOMMU: $out"
	log "behind a vIOMMU: 50,000 frames and 2,000 transactions, none lost"

	# Offloads: A negotiates CSUM and HOST_TSO4 and sends TCP packets of
	# 20.5 segments of 1448 bytes with a partial checksum; B negotiated
	# none, so the io-server segments them: B checks that every segment
	# is wire-sized, with right lengths, sequence, flags, checksums, bytes.
	out=$(net_bench stream a b --count 2000 --gso 1448) || fail "gso stream failed: $out"
	log "gso: $(json_str "$out" "j['received']") TSO packets as $(json_str "$out" "j['segments']") segments at B"
	[[ $(json_str "$out" "j['received']") == 2000 && $(json_str "$out" "j['segments']") == 42000 &&
		$(json_str "$out" "j['bad']") == 0 ]] || fail "gso stream: $out"
	# ECN: A negotiates HOST_ECN and sends each packet with CWR and the
	# header's ECN bit. rte_vhost drops the bit; local-hv sets it again
	# from CWR; the io-server counts the packets from nic-a (below: 1000,
	# none of the 2000 above) and cuts them for B, CWR on the first
	# segment of each only (B counts anything else as bad).
	out=$(net_bench stream a b --count 1000 --gso 1448 --ecn) || fail "ecn stream failed: $out"
	log "ecn: $(json_str "$out" "j['received']") TSO packets with CWR as $(json_str "$out" "j['segments']") segments at B"
	[[ $(json_str "$out" "j['received']") == 1000 && $(json_str "$out" "j['segments']") == 21000 &&
		$(json_str "$out" "j['bad']") == 0 ]] || fail "ecn stream: $out"

	# Different networks: neither hello gets through.
	if out=$(net_bench rr a d --count 10 2>&1); then
		fail "nic-a and nic-d (another network) heard each other: $out"
	fi
	grep -q 'no hello' <<<"$out" || fail "isolation run failed for another reason: $out"

	# A spoofed source MAC: a claims to be b.
	if out=$("$BENCH" --net rr --socket "$RUN/a.sock" --peer-socket "$RUN/b.sock" \
		--mac-a 52:54:00:00:00:0b --mac-b 52:54:00:00:00:0c --quiet --count 10 2>&1); then
		fail "frames with a spoofed source MAC got through: $out"
	fi

	vrio_metrics vrio-ioserver "127.0.0.1:$P_IOM" "$RUN/io.metrics" || fail "no io-server metrics"
	vrio_metrics vrio-localhv "127.0.0.1:$P_HV1" "$RUN/hv1.metrics" || fail "no local-hv metrics"
	if have_cmd promtool; then
		promtool check metrics <"$RUN/io.metrics" || fail "promtool rejects the io-server's"
		promtool check metrics <"$RUN/hv1.metrics" || fail "promtool rejects local-hv's"
	fi
	[[ $(metric_sum 'vrio_ioserver_switch_drops_total{network="lan",port="nic-a",reason="src_mac"}' \
		<"$RUN/io.metrics") -gt 0 ]] || fail "no src_mac drops counted for nic-a"
	[[ $(metric_sum 'vrio_ioserver_switch_gso_segments_total{network="lan",port="nic-b"}' \
		<"$RUN/io.metrics") == 63000 ]] || fail "the switch did not count 63,000 segments for nic-b"
	[[ $(metric_sum 'vrio_ioserver_switch_ecn_packets_total{network="lan",port="nic-a",direction="in"}' \
		<"$RUN/io.metrics") == 1000 ]] || fail "the switch did not count 1,000 ECN packets from nic-a"
	[[ $(metric_sum 'vrio_ioserver_switch_ecn_segmented_total{network="lan",port="nic-b"}' \
		<"$RUN/io.metrics") == 1000 ]] || fail "the switch did not cut 1,000 ECN packets for nic-b"
	[[ $(metric_sum 'vrio_ioserver_switch_frames_total{network="dmz",port="nic-d",direction="out"}' \
		<"$RUN/io.metrics") == 0 ]] || fail "frames crossed into dmz"
	[[ $(metric_sum 'vrio_ioserver_switch_frames_total{network="lan",port="nic-b",direction="out"}' \
		<"$RUN/io.metrics") -ge 272000 ]] || fail "the switch counted too few frames to nic-b"
	grep -q '^vrio_localhv_net_drops_total{device="nic-b",reason="guest_rx_full"}' \
		"$RUN/hv1.metrics" || fail "local-hv exports no net drop counters"
	for i in 0 1; do
		pid_alive "$(eval echo "\$HV_PID$i")" || fail "host$i's local-hv died"
	done

	vrio_stop vrio-ioserver "$IO_PID" "$RUN/ioserver.log" || fail "the io-server did not stop cleanly"
	if out=$(net_bench stream a b --count 1000 2>&1); then
		fail "frames went through without an io-server: $out"
	fi
	vrio_metrics vrio-localhv "127.0.0.1:$P_HV0" "$RUN/hv0.metrics" || fail "no local-hv metrics"
	[[ $(metric_sum 'vrio_localhv_net_drops_total{device="nic-a",reason="upstream_down"}' \
		<"$RUN/hv0.metrics") -gt 0 ]] || fail "local-hv counted no upstream_down drops for nic-a"
	start_daemon IO_PID vrio-ioserver "$RUN/ioserver2.log" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node io0
	wait_for_port "$P_LISTEN" 20 "$IO_PID" || fail "vrio-ioserver did not come back"
	wait_for_socket "$IO_CTL" 20 "$IO_PID" || fail "the io-server's control socket did not come back"
	for i in 0 1; do
		local port=$P_HV0
		((i == 0)) || port=$P_HV1
		for ((n = 0; n < 100; n++)); do
			http_get "127.0.0.1:$port" /metrics 2>/dev/null |
				grep -q '^vrio_localhv_upstream_up{io_server="io0"} 1' && break
			sleep 0.1
		done
		((n < 100)) || fail "host$i did not reconnect within 10 s"
	done
	out=$(net_bench rr a b --count 2000) || fail "rr after the io-server came back failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "rr after the restart: $out"
	log "after an io-server restart: $(json_str "$out" "j['received']") transactions answered"

	stop_io0_hosts
	echo "PASS: integration/net-bench"
}

lib_traps
main "$@"
