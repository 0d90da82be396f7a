#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# trunk-tls.sh BUILD_DIR: trunks between io-servers whose tcp listeners
# speak TLS 1.3 (io_servers[].tls). io0 serves nic-a (host0), io1 nic-b
# (host1), both on network lan: every frame between them crosses the
# trunk, which io0 dials to io1's listener. Each run streams frames
# across the trunk (whole, in order) and answers rr.
#   1. plain tcp under tcpdump: the capture of io1's port holds the bench
#      frames' addresses (so the check below can fail);
#   2. psk (the trunk's PSK from trunk_key_file, identity the dialling
#      io-server's name): the trunk comes up, the capture holds none of
#      them, the trunk proofs are bound to the TLS session;
#   3. psk with another trunk key on io1: the handshake fails, io0 says
#      why, nothing crosses; the hosts stay served;
#   4. cert: io0 verifies io1's certificate against the CA its topology
#      entry names; with io1's certificate from another CA the trunk is
#      refused.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# PATTERN: nic-b's address then nic-a's: every stream frame's Ethernet
# header, a -> b.
PATTERN=52540000000b52540000000a

# topo FILE IO0_TLS IO1_TLS TRUNK_KEY: the rack, each io-server's tls line
# (or none) and the trunk key file io1 reads (io0 reads RUN/trunk.key).
topo() {
	cat >"$1" <<EOF
version: 1
trunk_key_file: $4
io_servers:
  - name: io0
    listen: 127.0.0.1:$P_IO0
    metrics: 127.0.0.1:$P_IOM0
    control: $RUN/io0.ctl
    heartbeat: {interval_ms: 500, dead_after_ms: 10000}
$2
  - name: io1
    listen: 127.0.0.1:$P_IO1
    metrics: 127.0.0.1:$P_IOM1
    control: $RUN/io1.ctl
    heartbeat: {interval_ms: 500, dead_after_ms: 10000}
$3
hosts:
  - name: host0
    metrics: 127.0.0.1:$P_HV0
    control: $RUN/host0.ctl
    key_file: $RUN/host0.key
  - name: host1
    metrics: 127.0.0.1:$P_HV1
    control: $RUN/host1.ctl
    key_file: $RUN/host1.key
$(rack_lan_ab)
EOF
}

# up NAME IO0_TOPO IO1_TOPO: the four daemons, io1 and host1 from IO1_TOPO.
up() {
	local i
	start_daemon IO_PID0 vrio-ioserver-io0 "$RUN/ioserver-io0.log" \
		"$VRIO_IOSERVER_BIN" --config "$2" --node io0
	start_daemon IO_PID1 vrio-ioserver-io1 "$RUN/ioserver-io1.log" \
		"$VRIO_IOSERVER_BIN" --config "$3" --node io1
	wait_for_port "$P_IO0" 20 "$IO_PID0" || fail "$1: io0 is not listening"
	wait_for_port "$P_IO1" 20 "$IO_PID1" || fail "$1: io1 is not listening"
	start_daemon HV_PID0 vrio-localhv-host0 "$RUN/localhv-host0.log" \
		"$VRIO_LOCALHV_BIN" --config "$2" --node host0
	start_daemon HV_PID1 vrio-localhv-host1 "$RUN/localhv-host1.log" \
		"$VRIO_LOCALHV_BIN" --config "$3" --node host1
	wait_for_socket "$RUN/a.sock" 20 "$HV_PID0" || fail "$1: no socket for nic-a"
	wait_for_socket "$RUN/b.sock" 20 "$HV_PID1" || fail "$1: no socket for nic-b"
}

down() {
	rack_stop 2 2
	rm -f "$RUN"/*.sock
	for i in 0 1; do
		mv "$RUN/ioserver-io$i.log" "$RUN/$1-io$i.log"
		mv "$RUN/localhv-host$i.log" "$RUN/$1-host$i.log"
	done
}

# traffic NAME: a stream and rr across the trunk.
traffic() {
	local out full
	full=$(rx_full 1 b)
	out=$(net_bench stream a b --timeout 8000 --count 20000 --frame-size 1000) ||
		fail "$1: stream failed: $out"
	stream_check "$1" "$out" 1 b "$full" 20000
	out=$(net_bench rr a b --timeout 8000 --count 500 --iodepth 4) || fail "$1: rr failed: $out"
	[[ $(json_str "$out" "j['received']") == 500 ]] || fail "$1: rr: $out"
	log "$1: 20,000 frames and 500 transactions across the trunk"
}

# capture_start NAME / capture_stop: tcpdump on io1's port (the trunk and
# host1's connection).
capture_start() {
	CAP=$RUN/$1.pcap
	tcpdump -i lo -U -s 0 -w "$CAP" "tcp port $P_IO1" 2>"$RUN/$1.tcpdump.log" &
	CAP_PID=$!
	track_pid "$CAP_PID" tcpdump
	wait_until 10 grep -q 'listening on' "$RUN/$1.tcpdump.log" || fail "tcpdump did not start"
}

capture_stop() {
	sleep 0.5
	stop_pid "$CAP_PID" 5 || true
	untrack_pid "$CAP_PID"
}

# grep reads to the end (no -q): see tls.sh.
in_capture() { xxd -p "$1" | tr -d '\n' | grep "$2" >/dev/null; }

main() {
	local build out
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	have_cmd openssl || skip "no openssl command"
	make_tmpdir RUN
	for p in P_IO0 P_IO1 P_IOM0 P_IOM1 P_HV0 P_HV1; do
		free_port "$p"
	done
	(
		umask 077
		for k in host0 host1 trunk other; do
			head -c 32 /dev/urandom >"$RUN/$k.key"
		done
	)
	local snoop=1
	have_cmd tcpdump && have_cmd xxd || {
		snoop=0
		log "SKIP (part): no tcpdump or xxd: the captures are not checked"
	}

	# 1. Plain tcp.
	topo "$RUN/plain.yaml" "" "" "$RUN/trunk.key"
	up plain "$RUN/plain.yaml" "$RUN/plain.yaml"
	wait_until 20 trunk_up 0 io1 || fail "plain: the trunk did not come up"
	((snoop == 0)) || capture_start plain
	traffic plain
	if ((snoop)); then
		capture_stop
		in_capture "$CAP" "$PATTERN" || fail "plain: the capture holds no frame of the stream"
	fi
	down plain

	# 2. psk.
	topo "$RUN/psk.yaml" "    tls: {psk: true}" "    tls: {psk: true}" "$RUN/trunk.key"
	up psk "$RUN/psk.yaml" "$RUN/psk.yaml"
	wait_until 20 trunk_up 0 io1 || fail "psk: the trunk did not come up over TLS"
	wait_until 20 trunk_up 1 io0 || fail "psk: io1 does not see the trunk up"
	((snoop == 0)) || capture_start psk
	traffic psk
	if ((snoop)); then
		capture_stop
		if in_capture "$CAP" "$PATTERN"; then
			fail "psk: the stream's frames crossed the trunk in the clear"
		fi
		log "psk: the capture holds none of the stream's headers"
	fi
	grep -q 'trunk to io1 up' "$RUN/ioserver-io0.log" || fail "psk: io0 logged no trunk up"
	down psk

	# 3. psk, io1 with another trunk key: refused by TLS, hosts served.
	topo "$RUN/psk-other.yaml" "    tls: {psk: true}" "    tls: {psk: true}" "$RUN/other.key"
	up psk-other "$RUN/psk.yaml" "$RUN/psk-other.yaml"
	wait_until 20 grep -q 'trunk to io1' "$RUN/ioserver-io0.log" || true
	sleep 3
	trunk_up 0 io1 && fail "psk-other: the trunk came up under two trunk keys"
	grep -Eqi 'tls|handshake' "$RUN/ioserver-io0.log" ||
		fail "psk-other: io0 does not say why the trunk failed"
	log "psk-other: io0: $(grep -m1 -Ei 'tls|handshake' "$RUN/ioserver-io0.log")"
	if out=$(net_bench rr a b --count 10 --timeout 2000 2>&1); then
		fail "psk-other: frames crossed a trunk under two keys: $out"
	fi
	pid_alive "$HV_PID0" && pid_alive "$HV_PID1" || fail "psk-other: a local-hv died"
	down psk-other

	# 4. cert.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=rack-ca -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=other-ca -keyout "$RUN/oca.key" -out "$RUN/oca.pem" 2>/dev/null
	for i in io0 io1; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$i" \
			-keyout "$RUN/$i.key" -out "$RUN/$i.csr" 2>/dev/null
		openssl x509 -req -in "$RUN/$i.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" \
			-CAcreateserial -days 2 -out "$RUN/$i.pem" 2>/dev/null
	done
	openssl x509 -req -in "$RUN/io1.csr" -CA "$RUN/oca.pem" -CAkey "$RUN/oca.key" \
		-CAcreateserial -days 2 -out "$RUN/io1-other.pem" 2>/dev/null
	topo "$RUN/cert.yaml" "    tls: {cert: $RUN/io0.pem, key: $RUN/io0.key, ca: $RUN/ca.pem}" \
		"    tls: {cert: $RUN/io1.pem, key: $RUN/io1.key, ca: $RUN/ca.pem}" "$RUN/trunk.key"
	up cert "$RUN/cert.yaml" "$RUN/cert.yaml"
	wait_until 20 trunk_up 0 io1 || fail "cert: the trunk did not come up over TLS"
	traffic cert
	down cert
	# io1 presents a certificate from another CA than its entry names:
	# io0 refuses it (host1's local-hv reads the same entry and refuses it
	# too; host0 still reaches io0).
	topo "$RUN/cert-other.yaml" "    tls: {cert: $RUN/io0.pem, key: $RUN/io0.key, ca: $RUN/ca.pem}" \
		"    tls: {cert: $RUN/io1-other.pem, key: $RUN/io1.key, ca: $RUN/ca.pem}" "$RUN/trunk.key"
	start_daemon IO_PID0 vrio-ioserver-io0 "$RUN/ioserver-io0.log" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/cert.yaml" --node io0
	start_daemon IO_PID1 vrio-ioserver-io1 "$RUN/ioserver-io1.log" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/cert-other.yaml" --node io1
	wait_for_port "$P_IO1" 20 "$IO_PID1" || fail "cert-other: io1 is not listening"
	wait_until 20 grep -q 'certificate verify failed' "$RUN/ioserver-io0.log" ||
		fail "cert-other: io0 did not refuse io1's certificate"
	trunk_up 0 io1 && fail "cert-other: the trunk came up with a certificate from another CA"
	log "cert-other: io0: $(grep -m1 'certificate verify failed' "$RUN/ioserver-io0.log")"
	for i in 0 1; do
		vrio_stop "vrio-ioserver-io$i" "$(eval echo "\$IO_PID$i")" "$RUN/ioserver-io$i.log" ||
			fail "cert-other: io$i did not stop cleanly"
	done
	echo "PASS: integration/trunk-tls"
}

lib_traps
main "$@"
