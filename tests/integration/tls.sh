#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tls.sh BUILD_DIR: TLS 1.3 on the tcp transport (io_servers[].tls,
# transport/tls.h), with the hosts' HMAC proofs inside it.
#   1. psk: verified I/O; the io-server logs an authenticated hello;
#      `openssl s_client -tls1_3 -psk` (a client nobody here wrote), given
#      host0's PSK derived by `openssl kdf`, negotiates TLSv1.3 with the
#      io-server; with another PSK it is refused;
#   2. psk: a host with another key is refused by TLS (no socket);
#   3. cert: verified I/O; s_client verifies the io-server's certificate
#      against the CA and negotiates TLSv1.3; a host given another CA
#      refuses the io-server;
#   4. with tcpdump: the loopback capture of a tls run holds no 16 bytes of
#      the data written, while that of a plain tcp run does (so the check
#      can fail). Skipped without tcpdump.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# topo FILE TLS_LINE KEY_FILE
topo() {
	cat >"$1" <<EOT
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
$2
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
    key_file: $3
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK_A
    backend: {file: $DISK}
EOT
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# up IO_TOPO HV_TOPO NAME
up() {
	VRIO_IO_LOG=$RUN/io-$3.log
	VRIO_HV_LOG=$RUN/hv-$3.log
	rm -f "$SOCK_A"
	start_daemon VRIO_IO_PID vrio-ioserver "$VRIO_IO_LOG" \
		"$VRIO_IOSERVER_BIN" --config "$1" --node io0
	wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID" || fail "io-server not listening"
	start_daemon VRIO_HV_PID vrio-localhv "$VRIO_HV_LOG" \
		"$VRIO_LOCALHV_BIN" --config "$2" --node host0
	wait_for_socket "$VRIO_HV_CTL" 20 "$VRIO_HV_PID" || fail "local-hv control socket"
}

down() {
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || fail "local-hv did not stop cleanly"
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || fail "io-server did not stop cleanly"
}

# io SEED: verified writes then reads on disk-a.
io() {
	"$BENCH" --socket "$SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --count 1000 \
		--size 8M --seed "$1" --verify --state "$RUN/a.state" >/dev/null || fail "writes over tls"
	"$BENCH" --socket "$SOCK_A" --rw randread --bs 4096 --iodepth 8 --count 1000 \
		--size 8M --seed "$(($1 + 1))" --verify --state "$RUN/a.state" >/dev/null ||
		fail "reads over tls"
}

# s_client ARGS...: one TLS 1.3 handshake with the io-server; its output.
s_client() {
	timeout 10 openssl s_client -connect "$VRIO_IO_LISTEN" -tls1_3 "$@" </dev/null 2>&1 || true
}

# count_handshake_failures LOG: lines of refused handshakes.
handshake_failures() { grep -c 'tls: handshake failed' "$1" || true; }
at_least_failures() { (($(handshake_failures "$1") >= $2)); }

# capture NAME SEED: verified I/O on a running rack under tcpdump; sets
# PATTERN to 16 bytes (hex) that the run wrote into the backing file, and
# returns the capture's path in CAP.
capture() {
	local pid off
	CAP=$RUN/$1.pcap
	tcpdump -i lo -U -s 0 -w "$CAP" "tcp port ${VRIO_IO_LISTEN##*:}" 2>"$RUN/$1.tcpdump.log" &
	pid=$!
	track_pid "$pid" tcpdump
	wait_until 10 grep -q 'listening on' "$RUN/$1.tcpdump.log" || fail "tcpdump did not start"
	io "$2"
	sleep 0.5
	stop_pid "$pid" 5 || true
	# The first written block of the file: 16 bytes from its middle.
	off=$(od -A d -t x1 -v -w4096 "$DISK" |
		awk '{ for (i = 2; i <= NF; i++) if ($i != "00") { print $1; exit } }' || true)
	[[ -n $off ]] || fail "$1: nothing written to the backing file"
	PATTERN=$(dd if="$DISK" bs=1 skip=$((off + 1000)) count=16 status=none | xxd -p)
}

# grep reads to the end (no -q): under pipefail a grep that stops at the
# first match can fail xxd's next write with SIGPIPE.
in_capture() { xxd -p "$1" | tr -d '\n' | grep "$2" >/dev/null; }

main() {
	local build psk info n
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	[[ -x $BENCH ]] || skip "vrio-bench not built in $build"
	have_cmd openssl || skip "no openssl command"
	make_tmpdir RUN
	vrio_addrs "$RUN"
	SOCK_A=$RUN/a.sock
	DISK=$RUN/disk.img
	truncate -s 8M "$DISK"
	(umask 077; head -c 32 /dev/urandom >"$RUN/host0.key"; head -c 32 /dev/urandom >"$RUN/wrong.key")

	log "1: psk: verified I/O, and openssl s_client with host0's PSK"
	topo "$RUN/psk.yaml" "    tls: {psk: true}" "$RUN/host0.key"
	up "$RUN/psk.yaml" "$RUN/psk.yaml" psk
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "psk: disk-a never came up"
	io 11
	grep -q 'hello, authenticated' "$VRIO_IO_LOG" || fail "psk: no authenticated hello"
	# The PSK: HKDF-SHA-256(key file, info "vrio-tls-psk-1" NUL "host0").
	info=$(printf 'vrio-tls-psk-1\0host0' | xxd -p | tr -d '\n')
	psk=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$(xxd -p "$RUN/host0.key" | tr -d '\n')" \
		-kdfopt "hexinfo:$info" HKDF | tr -d ':\n')
	[[ ${#psk} == 64 ]] || fail "openssl kdf gave '$psk'"
	s_client -psk "$psk" -psk_identity host0 >"$RUN/sclient-psk.out"
	grep -Eq '^(New|Reused), TLSv1\.3' "$RUN/sclient-psk.out" ||
		fail "psk: s_client did not negotiate TLSv1.3: $(head -c 2000 "$RUN/sclient-psk.out")"
	s_client -psk "$(printf '%064x' 7)" -psk_identity host0 >"$RUN/sclient-bad.out"
	! grep -Eq '^(New|Reused), TLSv1\.3' "$RUN/sclient-bad.out" || fail "psk: s_client got in with another PSK"
	pid_alive "$VRIO_IO_PID" || fail "the io-server died of s_client"
	down

	log "2: psk: a host with another key is refused"
	topo "$RUN/psk-wrong.yaml" "    tls: {psk: true}" "$RUN/wrong.key"
	up "$RUN/psk.yaml" "$RUN/psk-wrong.yaml" psk-wrong
	wait_until 20 at_least_failures "$VRIO_HV_LOG" 2 || fail "psk: the wrong key was not refused twice"
	at_least_failures "$VRIO_IO_LOG" 1 || fail "psk: the io-server logged no refused handshake"
	[[ ! -e $SOCK_A ]] || fail "psk: disk-a was served to a host with another key"
	pid_alive "$VRIO_IO_PID" && pid_alive "$VRIO_HV_PID" || fail "psk: a daemon died"
	down

	log "3: cert: verified I/O, s_client verifies the certificate; another CA is refused"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=vrio-test-ca -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=other-ca -keyout "$RUN/other.key" -out "$RUN/other.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=io0 \
		-keyout "$RUN/io0.key" -out "$RUN/io0.csr" 2>/dev/null
	openssl x509 -req -in "$RUN/io0.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" \
		-CAcreateserial -days 2 -out "$RUN/io0.pem" 2>/dev/null
	chmod 600 "$RUN"/*.key
	topo "$RUN/cert.yaml" "    tls: {cert: $RUN/io0.pem, key: $RUN/io0.key, ca: $RUN/ca.pem}" "$RUN/host0.key"
	up "$RUN/cert.yaml" "$RUN/cert.yaml" cert
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "cert: disk-a never came up"
	io 21
	grep -q 'hello, authenticated' "$VRIO_IO_LOG" || fail "cert: no authenticated hello"
	s_client -CAfile "$RUN/ca.pem" -verify_return_error >"$RUN/sclient-cert.out"
	grep -q '^New, TLSv1\.3' "$RUN/sclient-cert.out" &&
		grep -q 'Verify return code: 0 (ok)' "$RUN/sclient-cert.out" ||
		fail "cert: s_client: $(head -c 2000 "$RUN/sclient-cert.out")"
	s_client -CAfile "$RUN/other.pem" -verify_return_error >"$RUN/sclient-other.out"
	grep -q 'verify error' "$RUN/sclient-other.out" &&
		! grep -q 'Verify return code: 0 (ok)' "$RUN/sclient-other.out" ||
		fail "cert: s_client trusted another CA: $(head -c 2000 "$RUN/sclient-other.out")"
	down
	topo "$RUN/cert-other.yaml" "    tls: {cert: $RUN/io0.pem, key: $RUN/io0.key, ca: $RUN/other.pem}" \
		"$RUN/host0.key"
	up "$RUN/cert.yaml" "$RUN/cert-other.yaml" cert-other
	wait_until 20 at_least_failures "$VRIO_HV_LOG" 2 || fail "cert: the host trusted another CA"
	grep -q 'certificate verify failed' "$VRIO_HV_LOG" || fail "cert: the host's refusal does not say why"
	[[ ! -e $SOCK_A ]] || fail "cert: disk-a came up with the wrong CA"
	down

	if ! have_cmd tcpdump; then
		log "4: SKIP: no tcpdump: the capture is not checked"
		echo "PASS: integration/tls (without the capture check)"
		return 0
	fi
	log "4: a capture of tls traffic holds none of the data written; one of tcp does"
	topo "$RUN/tcp.yaml" "" "$RUN/host0.key"
	truncate -s 0 "$DISK"; truncate -s 8M "$DISK"; rm -f "$RUN/a.state"
	up "$RUN/tcp.yaml" "$RUN/tcp.yaml" cap-tcp
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "tcp: disk-a never came up"
	capture tcp 31
	down
	in_capture "$CAP" "$PATTERN" || fail "the tcp capture lacks the data: the check cannot see it"
	truncate -s 0 "$DISK"; truncate -s 8M "$DISK"; rm -f "$RUN/a.state"
	up "$RUN/psk.yaml" "$RUN/psk.yaml" cap-tls
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "tls: disk-a never came up"
	capture tls 41
	down
	n=$(stat -c %s "$CAP")
	((n > 2 * 1000 * 4096)) || fail "the tls capture is only $n bytes"
	! in_capture "$CAP" "$PATTERN" || fail "the tls capture holds the data written in clear"
	echo "PASS: integration/tls"
}

lib_traps
main "$@"
