#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# trunk-auth.sh BUILD_DIR: trunks between io-servers prove the rack's
# trunk key (trunk_key_file), both ways. io0 serves nic-a (host0), io1
# nic-b (host1), both on network lan: their frames cross the trunk io0 ->
# io1 (io0 dials). Each io-server reads its own copy of the topology, so
# that they can hold different keys.
#
#   1. vrioctl check warns of a spanning network without trunk_key_file,
#      and not with one;
#   2. io1 holds another key: the trunk is refused on both ends, counted
#      (vrio_ioserver_trunk_auth_failures_total) and logged with the
#      peer's address; the network stays split (nic-a and nic-b do not
#      hear each other);
#   3. io1's key file gets the right key and io1 reloads: the trunk comes
#      up, frames cross whole and in order; the daemons stop with 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

write_rack() { # FILE TRUNK_KEY_FILE ("" for none)
	{
		[[ -n $2 ]] && echo "trunk_key_file: $2"
		echo "version: 1"
		rack_io_servers 2 "{interval_ms: 200, dead_after_ms: 2000}"
		rack_hosts 2
		rack_lan_ab
	} >"$1"
}

auth_failed() { # N PEER: io-server N refused the trunk at least once
	(($(io_metric "$1" "vrio_ioserver_trunk_auth_failures_total{peer=\"$2\"}") > 0))
}

main() {
	local build out i rc full0
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	# shellcheck disable=SC2034 # run by lib.sh's net_bench
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	make_tmpdir RUN
	for p in P_IO0 P_IO1 P_IOM0 P_IOM1 P_HV0 P_HV1; do
		free_port "$p"
	done
	(umask 077; head -c 32 /dev/urandom >"$RUN/trunk.key"
	 head -c 32 /dev/urandom >"$RUN/io1.key")

	log "1: vrioctl check and the trunk key"
	write_rack "$RUN/plain.yaml" ""
	"$VRIOCTL" check "$RUN/plain.yaml" >/dev/null 2>"$RUN/check.err" || fail "check plain.yaml"
	grep -q "warning: network 'lan' spans io_servers and there is no trunk_key_file" \
		"$RUN/check.err" || fail "check does not warn of trunks without a key: $(cat "$RUN/check.err")"
	write_rack "$RUN/io0.yaml" "$RUN/trunk.key"
	write_rack "$RUN/io1.yaml" "$RUN/io1.key"
	"$VRIOCTL" check "$RUN/io0.yaml" >/dev/null 2>"$RUN/check.err" || fail "check io0.yaml"
	! grep -q trunk_key_file "$RUN/check.err" || fail "check warns with a trunk key: $(cat "$RUN/check.err")"

	log "2: io1 holds another trunk key"
	for i in 0 1; do
		start_daemon "IO_PID$i" "vrio-ioserver-io$i" "$RUN/ioserver-io$i.log" \
			"$VRIO_IOSERVER_BIN" --config "$RUN/io$i.yaml" --node "io$i"
	done
	wait_for_port "$P_IO0" 20 "$IO_PID0" || fail "io0 is not listening"
	wait_for_port "$P_IO1" 20 "$IO_PID1" || fail "io1 is not listening"
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			"$VRIO_LOCALHV_BIN" --config "$RUN/io0.yaml" --node "host$i"
	done
	wait_for_socket "$RUN/a.sock" 20 "$HV_PID0" || fail "no socket for nic-a"
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "no socket for nic-b"
	wait_until 20 auth_failed 0 io1 || fail "io0 did not refuse io1's trunk (another key)"
	wait_until 20 auth_failed 1 io0 || fail "io1 did not refuse io0's trunk (another key)"
	! trunk_up 0 io1 || fail "io0 has the trunk up under two keys"
	! trunk_up 1 io0 || fail "io1 has the trunk up under two keys"
	grep -q '127.0.0.1:[0-9]*: trunk to io1 refused: wrong proof' "$RUN/ioserver-io0.log" ||
		fail "io0's refusal is not logged with the peer's address"
	grep -q '127.0.0.1:[0-9]*: trunk from io0 refused' "$RUN/ioserver-io1.log" ||
		fail "io1's refusal is not logged with the peer's address"
	rc=0
	out=$(net_bench rr a b --count 10 --timeout 2000 2>&1) || rc=$?
	((rc != 0)) || fail "nic-a and nic-b heard each other over a refused trunk: $out"
	grep -q 'no hello' <<<"$out" || fail "the split run failed for another reason: $out"
	((!$(io_metric 1 'vrio_ioserver_trunk_frames_total{peer="io0",direction="in"}'))) ||
		fail "io1 took frames from a trunk that did not prove its key"

	log "3: the right key on io1, by a reload"
	cp -p "$RUN/trunk.key" "$RUN/io1.key"
	"$VRIOCTL" --socket "$RUN/io1.ctl" reload >/dev/null || fail "io1's reload failed"
	wait_until 20 trunk_up 0 io1 || fail "the trunk did not come up with the same key"
	wait_until 20 trunk_up 1 io0 || fail "io1 does not see the trunk up"
	full0=$(rx_full 1 b)
	out=$(net_bench stream a b --count 20000 --frame-size 1000 --timeout 30000) ||
		fail "stream failed: $out"
	stream_check "stream across the trunk" "$out" 1 b "$full0" 20000
	# rr's frames are datagrams: on a loaded machine a guest ring may drop
	# one (integration/trunk counts those); here they must cross at all.
	out=$(net_bench rr b a --count 500 --iodepth 4 --timeout 30000) || fail "rr failed: $out"
	(($(json_str "$out" "j['received']") >= 490)) || fail "rr across the trunk: $out"
	grep -q 'trunk to io1 up' "$RUN/ioserver-io0.log" || fail "io0 did not log the trunk up"
	log "same key: 20,000 frames sent in order, $(json_str "$out" "j['received']") of 500 transactions across the trunk"

	rack_stop 2 2
	echo "PASS: integration/trunk-auth"
}

lib_traps
main "$@"
