#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# trunk-reload.sh BUILD_DIR: networks that change the io-servers they span
# by reload, with vrio-bench as the guests, on loopback. io0 serves host0's
# ports, io1 host1's. Network `other` spans both from the start (d on io0,
# e on io1) and is never touched: a stream d -> e runs across each reload
# below and must lose nothing, and the trunk io0 -> io1 must never go down
# or connect again while it carries `other`.
#
#   1. lan on io0 only (a and c): the trunk carries `other` alone;
#   2. a reload adds b on io1 to lan: the trunk carries lan too, and a
#      stream a -> b crosses it whole and in order;
#   3. a reload adds a new network wan (1 on io0, 2 on io1): frames cross;
#   4. a reload of io0 alone takes b out of lan: what io1 (not yet
#      reloaded) still sends for lan is counted as unknown_network at io0;
#      then io1 and host1 reload too, and lan lives on io0 only again;
#   5. a reload that leaves no network shared closes the trunk: no
#      trunk_up series on either side, and every daemon stays up and
#      stops cleanly. promtool accepts the metrics after each step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# dev NAME IO HOST NET: a net device line; its socket and MAC from NAME.
dev() {
	echo "  - {name: nic-$1, type: net, host: $3, io_server: $2, socket: $RUN/$1.sock, mac: \"52:54:00:00:00:0$1\", network: $4}"
}

# write_rack STEP: the topology of step 1 to 5 (see above).
write_rack() {
	local step=$1
	{
		echo "version: 1"
		rack_io_servers 2 "{interval_ms: 500, dead_after_ms: 10000}"
		rack_hosts 2
		echo "devices:"
		dev a io0 host0 lan
		dev c io0 host0 lan
		dev d io0 host0 other
		((step == 2 || step == 3)) && dev b io1 host1 lan
		((step >= 3)) && dev 1 io0 host0 wan
		((step >= 3 && step < 5)) && dev 2 io1 host1 wan
		((step < 5)) && dev e io1 host1 other
		# io1 keeps a device (of a network of its own), so that it
		# still has something to serve when it shares nothing.
		dev f io1 host1 solo
		printf 'networks:\n  - name: lan\n  - name: other\n  - name: wan\n  - name: solo\n'
	} >"$RUN/topology.yaml"
}

bench() { # MODE A B ARGS...: lib.sh's net_bench with trunk.sh's 8 s timeout
	net_bench "$1" "$2" "$3" --timeout 8000 "${@:4}"
}

io_has() { # N PREFIX: io-server N exports a sample starting with PREFIX
	local -n port=P_IOM$1
	local m
	m=$(http_get "127.0.0.1:$port" /metrics) || return 2
	grep -qF "$2" <<<"$m"
}

# carries N PEER NET: io-server N's switch of NET has the trunk's port.
carries() {
	io_has "$1" "vrio_ioserver_switch_port_up{network=\"$3\",port=\"trunk:$2\"} 1"
}

not_carries() { ! io_has "$1" "vrio_ioserver_switch_port_up{network=\"$3\",port=\"trunk:$2\"}"; }

reload() { # CTL...: vrioctl reload on each, which waits for the outcome
	local ctl
	for ctl in "$@"; do
		"$VRIOCTL" --socket "$RUN/$ctl.ctl" reload --json >"$RUN/reload-$ctl.json" ||
			fail "reload of $ctl failed: $(cat "$RUN/reload-$ctl.json")"
	done
}

# The trunk that carries `other` is the same connection throughout.
untouched() { # WHEN
	[[ $(io_metric 0 'vrio_ioserver_trunk_connects_total{peer="io1"}') == 1 &&
		$(io_metric 0 'vrio_ioserver_trunk_downs_total{peer="io1"}') == 0 &&
		$(io_metric 1 'vrio_ioserver_trunk_connects_total{peer="io0"}') == 1 ]] ||
		fail "$1: the trunk carrying 'other' went down or connected again"
	trunk_up 0 io1 || fail "$1: the trunk is not up"
}

# other_start / other_check WHEN: a stream d -> e on `other` around a
# reload, which must lose nothing.
other_start() {
	OTHER_FULL0=$(rx_full 1 e)
	bench stream d e --runtime 4 --frame-size 1000 >"$RUN/other.json" 2>"$RUN/other.err" &
	OTHER_PID=$!
	track_pid "$OTHER_PID" vrio-bench
	sleep 1
}

other_check() {
	wait "$OTHER_PID" || fail "$1: the stream on 'other' failed: $(cat "$RUN/other.err")"
	untrack_pid "$OTHER_PID"
	stream_check "$1: 'other', across the reload" "$(cat "$RUN/other.json")" 1 e "$OTHER_FULL0"
	untouched "$1"
}

# host_of PORT: the host whose local-hv serves the port.
host_of() {
	if [[ $1 == [acd1] ]]; then echo 0; else echo 1; fi
}

stream_ok() { # WHEN A B COUNT: a stream A -> B, whole and in order
	local out full0 hv
	hv=$(host_of "$3")
	full0=$(rx_full "$hv" "$3")
	out=$(bench stream "$2" "$3" --count "$4" --frame-size 1000) ||
		fail "$1: stream $2 -> $3 failed: $out"
	stream_check "$1: stream $2 -> $3" "$out" "$hv" "$3" "$full0" "$4"
}

rr_ok() { # WHEN A B COUNT: rr A -> B, every transaction answered (on one
	# io-server, where a stream outruns the receiving guest)
	local out
	out=$(bench rr "$2" "$3" --count "$4" --iodepth 4) || fail "$1: rr $2 -> $3 failed: $out"
	[[ $(json_str "$out" "j['received']") == "$4" && $(json_str "$out" "j['lost']") == 0 ]] ||
		fail "$1: rr $2 -> $3: $out"
}

metrics_ok() { # WHEN
	local i
	for i in 0 1; do
		local -n port=P_IOM$i
		vrio_metrics "io$i" "127.0.0.1:$port" "$RUN/io$i.metrics" || fail "$1: no io$i metrics"
		if have_cmd promtool; then
			promtool check metrics <"$RUN/io$i.metrics" ||
				fail "$1: promtool rejects io$i's metrics"
		fi
	done
}

main() {
	local build i s unknown out
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	# shellcheck disable=SC2034 # run by lib.sh's net_bench
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	have_cmd python3 || skip "python3 is needed to read vrio-bench's JSON"
	make_tmpdir RUN
	for p in P_IO0 P_IO1 P_IOM0 P_IOM1 P_HV0 P_HV1; do
		free_port "$p"
	done

	# 1. lan on io0 only.
	write_rack 1
	for i in 0 1; do
		start_daemon "IO_PID$i" "vrio-ioserver-io$i" "$RUN/ioserver-io$i.log" \
			"$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node "io$i"
	done
	wait_for_port "$P_IO0" 20 "$IO_PID0" || fail "io0 is not listening"
	wait_for_port "$P_IO1" 20 "$IO_PID1" || fail "io1 is not listening"
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			"$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" --node "host$i"
	done
	for s in a c d; do
		wait_for_socket "$RUN/$s.sock" 20 "$HV_PID0" || fail "no socket for nic-$s"
	done
	for s in e f; do
		wait_for_socket "$RUN/$s.sock" 20 "$HV_PID1" || fail "no socket for nic-$s"
	done
	wait_until 20 trunk_up 0 io1 || fail "the trunk io0 -> io1 did not come up"
	wait_until 20 trunk_up 1 io0 || fail "io1 does not see the trunk up"
	carries 0 io1 other || fail "step 1: io0's trunk does not carry 'other'"
	not_carries 0 io1 lan || fail "step 1: io0's trunk carries lan, which is on io0 only"
	rr_ok "step 1" a c 2000
	untouched "step 1"
	metrics_ok "step 1"

	# 2. b on io1 joins lan.
	write_rack 2
	other_start
	reload io0 io1 host1
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "no socket for nic-b"
	other_check "step 2"
	carries 0 io1 lan && carries 1 io0 lan || fail "step 2: the trunk does not carry lan"
	stream_ok "step 2" a b 20000
	stream_ok "step 2" b c 5000
	[[ $(io_metric 1 'vrio_ioserver_switch_frames_total{network="lan",port="trunk:io0",direction="in"}') -ge 20000 ]] ||
		fail "step 2: io1 counted too few lan frames in from io0"
	metrics_ok "step 2"

	# 3. A new network, wan, spanning io0 and io1.
	write_rack 3
	other_start
	reload io0 io1 host0 host1
	wait_for_socket "$RUN/1.sock" 20 "$HV_PID0" || fail "no socket for nic-1"
	wait_for_socket "$RUN/2.sock" 20 "$HV_PID1" || fail "no socket for nic-2"
	other_check "step 3"
	carries 0 io1 wan && carries 1 io0 wan || fail "step 3: the trunk does not carry wan"
	stream_ok "step 3" 1 2 10000
	out=$(bench rr 2 1 --count 2000 --iodepth 4) || fail "step 3: rr on wan failed: $out"
	[[ $(json_str "$out" "j['received']") == 2000 ]] || fail "step 3: rr on wan: $out"

	# 4. b leaves lan: io0 reloads first, and what io1 still sends for
	# lan is dropped and counted at io0.
	write_rack 4
	other_start
	reload io0
	other_check "step 4, io0 reloaded"
	not_carries 0 io1 lan || fail "step 4: io0's trunk still carries lan"
	unknown=$(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",reason="unknown_network"}')
	if out=$(bench rr b a --count 10 --timeout 2000 2>&1); then
		fail "step 4: b reached a after io0 took lan off the trunk: $out"
	fi
	(($(io_metric 0 'vrio_ioserver_trunk_drops_total{peer="io1",reason="unknown_network"}') > unknown)) ||
		fail "step 4: io0 did not count io1's frames for lan as unknown_network"
	pid_alive "$IO_PID1" || fail "step 4: io1 died"
	trunk_up 1 io0 || fail "step 4: frames for an unknown network brought the trunk down"
	other_start
	reload io1 host1
	wait_until 20 gone "$RUN/b.sock" || fail "step 4: nic-b's socket is still there"
	other_check "step 4"
	not_carries 1 io0 lan || fail "step 4: io1's trunk still carries lan"
	carries 0 io1 wan || fail "step 4: io0's trunk lost wan"
	rr_ok "step 4" a c 2000
	stream_ok "step 4" 1 2 5000
	metrics_ok "step 4"

	# 5. Nothing shared any more: the trunk is closed on both sides.
	write_rack 5
	reload io0 io1 host0 host1
	wait_until 20 gone "$RUN/e.sock" || fail "step 5: nic-e's socket is still there"
	wait_until 20 eval '! io_has 0 vrio_ioserver_trunk_up' ||
		fail "step 5: io0 still exports a trunk"
	wait_until 20 eval '! io_has 1 vrio_ioserver_trunk_up' ||
		fail "step 5: io1 still exports a trunk"
	grep -q 'trunk to io1 closed: it carries no network any more' "$RUN/ioserver-io0.log" ||
		fail "step 5: io0 did not log the trunk's close"
	for i in 0 1; do
		pid_alive "$(eval echo "\$IO_PID$i")" || fail "step 5: io$i died"
		pid_alive "$(eval echo "\$HV_PID$i")" || fail "step 5: host$i's local-hv died"
	done
	rr_ok "step 5" a c 2000
	metrics_ok "step 5"

	rack_stop 2 2
	echo "PASS: integration/trunk-reload"
}

lib_traps
main "$@"
