#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# trunk.sh BUILD_DIR: networks that span io-servers, with vrio-bench as
# the guests, on loopback. io0 serves nic-a (lan) and nic-d (dmz) of
# host0; io1 serves nic-b (lan) and nic-e (dmz) of host1: every frame
# between the hosts crosses the trunk io0 -> io1 (io0 dials: its name sorts
# first). io2 serves nic-c (lan, host1, idle): lan's trunks are a mesh of
# three.
#
#   1. vrioctl check shows lan on three io-servers, dmz on two;
#   2. stream nic-a -> nic-b across the trunk: whole, in order, none lost;
#      rr with 8 in flight: every transaction answered; dmz too; io2 got
#      the frames flooded before nic-b was learned and, split horizon,
#      sent none of them on to another io-server;
#   3. isolation across io-servers: nic-a (lan) and nic-e (dmz) never hear
#      each other, nor nic-a and nic-d on the same io-server;
#   4. the trunk cut (ss -K on io0's socket) under a stream: the trunk is
#      dialled again, frames lost while it was down are counted
#      (vrio_ioserver_trunk_drops_total{reason="down"}), and afterwards a
#      stream and rr get everything through;
#   5. per-trunk metrics through promtool; the five daemons stop with 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# A long dead_after: on a loaded 2-core machine a daemon starved for a
# second is not dead, and nothing here needs a silent peer found quickly
# (the trunk cut resets the connection).
write_rack() {
	{
		echo "version: 1"
		rack_io_servers 3 "{interval_ms: 500, dead_after_ms: 10000}"
		rack_hosts 2
		cat <<EOF
devices:
  - {name: nic-a, type: net, host: host0, io_server: io0, socket: $RUN/a.sock, mac: "52:54:00:00:00:0a", network: lan}
  - {name: nic-d, type: net, host: host0, io_server: io0, socket: $RUN/d.sock, mac: "52:54:00:00:00:0d", network: dmz}
  - {name: nic-b, type: net, host: host1, io_server: io1, socket: $RUN/b.sock, mac: "52:54:00:00:00:0b", network: lan}
  - {name: nic-e, type: net, host: host1, io_server: io1, socket: $RUN/e.sock, mac: "52:54:00:00:00:0e", network: dmz}
  - {name: nic-c, type: net, host: host1, io_server: io2, socket: $RUN/c.sock, mac: "52:54:00:00:00:0c", network: lan}
networks:
  - name: lan
  - name: dmz
EOF
	} >"$RUN/topology.yaml"
}

# The bench's own timeout (1 s: a transaction, or a stream's tail, later
# than that is lost) is raised to 8 s: a loaded 2-core machine or an ASan
# build has stalls of over a second, and a frame really lost never comes.
bench() { # MODE A B ARGS...: lib.sh's net_bench, with that timeout
	net_bench "$1" "$2" "$3" --timeout 8000 "${@:4}"
}

trunk_count_above() { # COUNTER MIN: io0's trunk counter is above MIN
	sleep 0.1
	(($(io_metric 0 "vrio_ioserver_trunk_${1}_total{peer=\"io1\"}") > $2))
}

# impostor PORT NODE: connects to 127.0.0.1:PORT and sends a Hello that
# says it is NODE (a CTRL frame, proto/frame.h, around a protobuf Ctrl
# {seq: 1, hello: {version: 1, node: NODE}}), then hangs up.
impostor() {
	python3 - "$1" "$2" <<'PY'
import socket, struct, sys, time
node = sys.argv[2].encode()
hello = b'\x08\x01' + b'\x12' + bytes([len(node)]) + node
ctrl = b'\x08\x01' + b'\x52' + bytes([len(hello)]) + hello
hdr = struct.pack('<IBBHIIIIII', 0x4f495256, 1, 1, 0, 0, 0, len(ctrl), 0, 0, 0)
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(hdr + ctrl)
time.sleep(0.5)
s.close()
PY
}

# cut_trunk: aborts io0's end of the trunk (the kernel resets it); host1's
# own connection to io1 stays.
cut_trunk() {
	local sport
	sport=$(ss -tnpH state established "( dport = :$P_IO1 )" |
		awk -v pid="pid=$IO_PID0," 'index($0, pid) { n = split($3, a, ":"); print a[n] }')
	[[ -n $sport ]] || return 1
	ss -K -tn state established "( dport = :$P_IO1 and sport = :$sport )" >/dev/null
}

main() {
	local build out sent received i lost down connects downs full0
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	# shellcheck disable=SC2034 # run by lib.sh's net_bench
	BENCH=$build/tools/vrio-bench
	make_tmpdir RUN
	for p in P_IO0 P_IO1 P_IO2 P_IOM0 P_IOM1 P_IOM2 P_HV0 P_HV1; do
		free_port "$p"
	done
	write_rack

	out=$("$build/tools/vrioctl" check "$RUN/topology.yaml") || fail "vrioctl check: $out"
	grep -qx 'network lan: io_servers io0, io1, io2 (3 trunks)' <<<"$out" ||
		fail "vrioctl check does not show lan's span: $out"
	grep -qx 'network dmz: io_servers io0, io1 (1 trunk)' <<<"$out" ||
		fail "vrioctl check does not show dmz's span: $out"

	for i in 0 1 2; do
		start_daemon "IO_PID$i" "vrio-ioserver-io$i" "$RUN/ioserver-io$i.log" \
			"$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node "io$i"
	done
	wait_for_port "$P_IO0" 20 "$IO_PID0" || fail "io0 is not listening"
	wait_for_port "$P_IO1" 20 "$IO_PID1" || fail "io1 is not listening"
	wait_for_port "$P_IO2" 20 "$IO_PID2" || fail "io2 is not listening"
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			"$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" --node "host$i"
	done
	for s in a d; do
		wait_for_socket "$RUN/$s.sock" 20 "$HV_PID0" || fail "no socket for nic-$s"
	done
	for s in b e c; do
		wait_for_socket "$RUN/$s.sock" 20 "$HV_PID1" || fail "no socket for nic-$s"
	done
	wait_until 20 trunk_up 0 io1 || fail "the trunk io0 -> io1 did not come up"
	wait_until 20 trunk_up 1 io0 || fail "io1 does not see the trunk up"
	wait_until 20 trunk_up 2 io0 || fail "the trunk io0 -> io2 did not come up"
	wait_until 20 trunk_up 2 io1 || fail "the trunk io1 -> io2 did not come up"

	full0=$(rx_full 1 b)
	out=$(bench stream a b --count 100000 --frame-size 1000) || fail "stream failed: $out"
	stream_check "stream across the trunk, $(json_str "$out" "j['pps']") packets/s" "$out" 1 b \
		"$full0" 100000
	out=$(bench rr a b --count 10000 --iodepth 8) || fail "rr failed: $out"
	log "rr across the trunk: $(json_str "$out" "j['received']") transactions, p50 $(json_str "$out" "j['rtt_us']['p50']") us"
	[[ $(json_str "$out" "j['received']") == 10000 && $(json_str "$out" "j['lost']") == 0 ]] ||
		fail "rr: transactions lost: $out"
	out=$(bench rr e d --count 2000) || fail "rr on dmz failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "rr on dmz: $out"
	[[ $(io_metric 1 'vrio_ioserver_trunk_frames_total{peer="io0",direction="in"}') -ge 100000 ]] ||
		fail "io1 counted too few frames in from io0"
	# Split horizon: io2 heard lan's floods from io0 and io1 (the hellos,
	# the unknown destinations before learning) and, with nothing of its
	# own to send, sent nothing to either.
	[[ $(io_metric 2 'vrio_ioserver_trunk_frames_total{peer="io0",direction="in"}') -gt 0 ]] ||
		fail "io2 heard none of lan's floods"
	[[ $(io_metric 2 'vrio_ioserver_trunk_frames_total{peer="io0",direction="out"}') == 0 &&
		$(io_metric 2 'vrio_ioserver_trunk_frames_total{peer="io1",direction="out"}') == 0 ]] ||
		fail "io2 sent frames it got from a trunk on to another trunk"

	# Isolation: across the trunk, and on one io-server.
	if out=$(bench rr a e --count 10 --timeout 2000 2>&1); then
		fail "nic-a (lan) and nic-e (dmz, on io1) heard each other: $out"
	fi
	grep -q 'no hello' <<<"$out" || fail "isolation run (a, e) failed for another reason: $out"
	if out=$(bench rr a d --count 10 --timeout 2000 2>&1); then
		fail "nic-a (lan) and nic-d (dmz) heard each other: $out"
	fi
	grep -q 'no hello' <<<"$out" || fail "isolation run (a, d) failed for another reason: $out"
	[[ $(io_metric 1 'vrio_ioserver_switch_frames_total{network="dmz",port="nic-e",direction="out"}') -lt 2100 ]] ||
		fail "frames from lan reached nic-e"

	# Someone else says it is io0 while the trunk is up: its connection is
	# refused, and the live trunk stays.
	downs=$(io_metric 1 'vrio_ioserver_trunk_downs_total{peer="io0"}')
	impostor "$P_IO1" io0 || fail "the impostor could not connect to io1"
	sleep 0.5
	trunk_up 1 io0 && [[ $(io_metric 1 'vrio_ioserver_trunk_downs_total{peer="io0"}') == "$downs" ]] ||
		fail "a second connection that said it was io0 brought the live trunk down"
	out=$(bench rr a b --count 200) || fail "rr after the impostor failed: $out"
	[[ $(json_str "$out" "j['received']") == 200 ]] || fail "rr after the impostor: $out"

	# The trunk cut under a stream: io0's end is aborted (the kernel
	# resets the connection), io0 dials again.
	have_cmd ss || skip "no ss to cut the trunk with"
	ss -K -tn state established "( dport = :1 )" >/dev/null 2>&1 ||
		skip "ss -K cannot abort sockets here"
	connects=$(io_metric 0 'vrio_ioserver_trunk_connects_total{peer="io1"}')
	bench stream a b --runtime 6 --frame-size 1000 >"$RUN/cut.json" 2>"$RUN/cut.err" &
	local bpid=$!
	track_pid "$bpid" vrio-bench
	sleep 1.5
	cut_trunk || fail "found no trunk connection of io0's to cut"
	wait_until 10 trunk_count_above downs 0 || fail "the trunk did not go down when cut"
	wait_until 20 trunk_count_above connects "$connects" || fail "the trunk was not dialled again"
	wait "$bpid" || true
	untrack_pid "$bpid"
	out=$(cat "$RUN/cut.json")
	sent=$(json_str "$out" "j['sent']")
	received=$(json_str "$out" "j['received']")
	down=$(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",reason="down"}')
	lost=$((sent - received))
	log "trunk cut under a stream: $received of $sent frames arrived, $lost lost; io0 counted $down dropped while the trunk was down"
	((lost > 0)) || fail "a cut trunk lost nothing: $out"
	((down > 0)) || fail "io0 counted no frames dropped while the trunk was down"
	[[ $(json_str "$out" "j['bad']") == 0 ]] || fail "frames damaged across the cut: $out"
	wait_until 20 trunk_up 1 io0 || fail "io1 does not see the trunk back"

	full0=$(rx_full 1 b)
	out=$(bench stream a b --count 20000 --frame-size 1000) || fail "stream after the cut failed: $out"
	stream_check "stream after the cut" "$out" 1 b "$full0" 20000
	out=$(bench rr b a --count 2000 --iodepth 4) || fail "rr after the cut failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "rr after the cut: $out"
	log "after the cut: 20,000 frames and 2,000 transactions, none lost"

	for i in 0 1 2; do
		local -n port=P_IOM$i
		vrio_metrics "io$i" "127.0.0.1:$port" "$RUN/io$i.metrics" || fail "no io$i metrics"
		if have_cmd promtool; then
			promtool check metrics <"$RUN/io$i.metrics" || fail "promtool rejects io$i's"
		fi
	done
	for i in 0 1; do
		pid_alive "$(eval echo "\$HV_PID$i")" || fail "host$i's local-hv died"
	done
	grep -q '^vrio_ioserver_switch_frames_total{network="lan",port="trunk:io0",direction="in"}' \
		"$RUN/io1.metrics" || fail "io1 exports no switch counters for its trunk port"

	rack_stop 3 2
	echo "PASS: integration/trunk"
}

lib_traps
main "$@"
