#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-mq.sh BUILD_DIR: virtio-net multiqueue with vrio-bench as the guests
# (--net --queues N), on loopback. io-server io0 switches network lan:
# nic-a (host0) and nic-b (host1) with 4 queue pairs, nic-c (host1) with 1.
#
#   1. a 4-pair stream from nic-a to nic-b in 16 UDP flows: every frame
#      arrives whole, none out of order within its flow, all four of A's
#      transmit queues carry frames and each of B's receive queues gets a
#      share (local-hv spreads them by flow hash), and local-hv's
#      per-queue counters agree;
#   2. request/response on 4 pairs: every transaction answered;
#   3. a driver that enables 2 of the 4 pairs: its frames arrive, and only
#      its 2 receive queues fill (local-hv follows the enabled set);
#   4. one pair on the 4-pair devices still works (frames all on pair 0);
#   5. 8 pairs asked of a 4-pair device, and 2 of the 1-pair nic-c, are
#      refused at negotiation (GET_QUEUE_NUM, no VIRTIO_NET_F_MQ);
#   6. promtool accepts the expositions; the daemons stop with status 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

write_topology() {
	IO_CTL=$RUN/io0.ctl
	cat >"$RUN/topology.yaml" <<EOT
version: 1
io_servers:
  - name: io0
    listen: 127.0.0.1:$P_LISTEN
    metrics: 127.0.0.1:$P_IOM
    control: $IO_CTL
    cores: {min: 2, max: 2}
    # A loaded machine can hold a daemon up for a second: no reconnect
    # (and its lost frames) in the middle of a count.
    heartbeat: {interval_ms: 100, dead_after_ms: 10000}
hosts:
  - name: host0
    metrics: 127.0.0.1:$P_HV0
    control: $RUN/host0.ctl
  - name: host1
    metrics: 127.0.0.1:$P_HV1
    control: $RUN/host1.ctl
devices:
  - name: nic-a
    type: net
    host: host0
    io_server: io0
    socket: $RUN/a.sock
    mac: "52:54:00:00:00:0a"
    network: lan
    queues: 4
  - name: nic-b
    type: net
    host: host1
    io_server: io0
    socket: $RUN/b.sock
    mac: "52:54:00:00:00:0b"
    network: lan
    queues: 4
  - name: nic-c
    type: net
    host: host1
    io_server: io0
    socket: $RUN/c.sock
    mac: "52:54:00:00:00:0c"
    network: lan
networks:
  - name: lan
EOT
}

# queue_frames HOSTPORT DEVICE DIRECTION: local-hv's frames per queue pair,
# space-separated, queue 0 first.
queue_frames() {
	local q out=""
	http_get "127.0.0.1:$1" /metrics >"$RUN/q.metrics" || fail "no local-hv metrics on $1"
	for q in 0 1 2 3; do
		out+="$(metric_sum "vrio_localhv_net_queue_frames_total{device=\"$2\",queue=\"$q\",direction=\"$3\"}" <"$RUN/q.metrics") "
	done
	echo "$out"
}

main() {
	local build out n sent q rx0 rx1 i
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	# shellcheck disable=SC2034 # run by lib.sh's net_bench
	BENCH=$build/tools/vrio-bench
	make_tmpdir RUN
	free_port P_LISTEN
	free_port P_IOM
	free_port P_HV0
	free_port P_HV1
	write_topology

	start_io0_hosts "$P_LISTEN"
	for i in a b c; do
		wait_for_socket "$RUN/$i.sock" 20 || fail "no socket for nic-$i"
	done

	# 1. Four pairs, sixteen flows.
	n=100000
	out=$(net_bench stream a b --queues 4 --count $n --frame-size 256 --timeout 9000) || fail "4-pair stream failed: $out"
	log "4-pair stream: $(json_str "$out" "j['received']") of $n frames, $(json_str "$out" "j['pps']") packets/s," \
		"A sent on pairs $(json_str "$out" "j['tx_pairs']"), B received on $(json_str "$out" "j['rx_pairs']")"
	if [[ $(json_str "$out" "j['sent']") != "$n" || $(json_str "$out" "j['received']") != "$n" ]]; then
		http_get "127.0.0.1:$P_HV0" /metrics | grep -a 'net_drops_total{device="nic-a"\|queue_frames' >&2 || true
		http_get "127.0.0.1:$P_HV1" /metrics | grep -a 'net_drops_total{device="nic-b"\|queue_frames' >&2 || true
		http_get "127.0.0.1:$P_IOM" /metrics | grep -a 'switch_drops_total{network="lan",port="nic-[ab]"' >&2 || true
		fail "4-pair stream: frames lost: $out"
	fi
	[[ $(json_str "$out" "j['bad']") == 0 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "4-pair stream: frames damaged or out of order within a flow: $out"
	[[ $(json_str "$out" "min(j['tx_pairs']) == $n // 4 and len(j['tx_pairs']) == 4") == True ]] ||
		fail "4-pair stream: A did not send a quarter on each pair: $out"
	# 16 flows over 4 queues by a hash: each queue gets at least one flow
	# in most draws, not all; what is checked is that more than one does.
	[[ $(json_str "$out" "sum(1 for x in j['rx_pairs'] if x > 0)") -ge 2 ]] ||
		fail "4-pair stream: B received on one queue only: $out"
	[[ $(json_str "$out" "sum(j['rx_pairs'])") == "$n" ]] || fail "4-pair stream: per-pair counts do not add up: $out"
	read -r -a q <<<"$(queue_frames "$P_HV0" nic-a to_ioserver)"
	for i in 0 1 2 3; do
		((q[i] >= n / 4)) || fail "local-hv took only ${q[i]} frames from nic-a's transmit queue $i"
	done
	read -r -a q <<<"$(queue_frames "$P_HV1" nic-b to_guest)"
	log "local-hv put ${q[*]} frames in nic-b's receive queues 0-3"
	# local-hv also counts the hellos (broadcast, a few, on one queue).
	[[ $(json_str "$out" "all(0 <= int(c) - x <= 50 for c, x in zip('${q[*]}'.split(), j['rx_pairs']))") == True ]] ||
		fail "local-hv's per-queue counts (${q[*]}) are not what B received: $out"

	# 2. Request/response over four pairs.
	out=$(net_bench rr a b --queues 4 --count 8000 --iodepth 8 --timeout 9000) || fail "4-pair rr failed: $out"
	[[ $(json_str "$out" "j['received']") == 8000 && $(json_str "$out" "j['lost']") == 0 ]] ||
		fail "4-pair rr: transactions lost: $out"
	log "4-pair rr: 8000 transactions answered, p50 $(json_str "$out" "j['rtt_us']['p50']") us"

	# 3. Two of four pairs enabled: nic-b's queues 2 and 3 get nothing more.
	read -r -a q <<<"$(queue_frames "$P_HV1" nic-b to_guest)"
	out=$(net_bench stream a b --queues 2 --count 20000 --frame-size 256 --timeout 9000) || fail "2-pair stream failed: $out"
	[[ $(json_str "$out" "j['received']") == 20000 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "2-pair stream on 4-pair devices: $out"
	read -r -a rx1 <<<"$(queue_frames "$P_HV1" nic-b to_guest)"
	((rx1[2] == q[2] && rx1[3] == q[3])) ||
		fail "frames went to receive queues the driver did not enable: ${q[*]} -> ${rx1[*]}"
	# Plus the hellos.
	n=$((rx1[0] + rx1[1] - q[0] - q[1]))
	((n >= 20000 && n <= 20050)) ||
		fail "the 2-pair stream's frames are not all on queues 0 and 1: ${q[*]} -> ${rx1[*]}"
	log "2 of 4 pairs enabled: 20000 frames on receive queues 0-1 ($((rx1[0] - q[0])) + $((rx1[1] - q[1])))"

	# 4. One pair on a 4-pair device.
	rx0=("${rx1[@]}")
	out=$(net_bench stream a b --count 20000 --timeout 9000) || fail "1-pair stream on 4-pair devices failed: $out"
	[[ $(json_str "$out" "j['received']") == 20000 && $(json_str "$out" "j['reordered']") == 0 ]] ||
		fail "1-pair stream on 4-pair devices: $out"
	read -r -a rx1 <<<"$(queue_frames "$P_HV1" nic-b to_guest)"
	n=$((rx1[0] - rx0[0]))
	((n >= 20000 && n <= 20050 && rx1[1] == rx0[1])) || fail "a 1-pair driver's frames went elsewhere than queue 0: ${rx0[*]} -> ${rx1[*]}"

	# 5. More pairs than the device has.
	if out=$(net_bench stream a b --queues 8 --count 10 2>&1); then
		fail "8 pairs of a 4-pair device were accepted: $out"
	fi
	grep -q 'has 4 queue pairs, 8 asked for' <<<"$out" || fail "8 pairs refused for another reason: $out"
	if out=$(net_bench stream c b --queues 2 --count 10 2>&1); then
		fail "2 pairs of a 1-pair device were accepted: $out"
	fi
	grep -q 'offers no multiqueue' <<<"$out" || fail "2 pairs of nic-c refused for another reason: $out"
	log "8 pairs of a 4-pair device and 2 of a 1-pair device refused at negotiation"

	vrio_metrics vrio-ioserver "127.0.0.1:$P_IOM" "$RUN/io.metrics" || fail "no io-server metrics"
	vrio_metrics vrio-localhv "127.0.0.1:$P_HV1" "$RUN/hv1.metrics" || fail "no local-hv metrics"
	if have_cmd promtool; then
		promtool check metrics <"$RUN/io.metrics" || fail "promtool rejects the io-server's"
		promtool check metrics <"$RUN/hv1.metrics" || fail "promtool rejects local-hv's"
	fi
	stop_io0_hosts
	echo "PASS: integration/net-mq"
}

lib_traps
main "$@"
