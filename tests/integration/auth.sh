#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# auth.sh BUILD_DIR: hosts prove their key on every connection, and get
# only their own devices (hosts[].key_file, proto/auth.h).
#
# The io-server and local-hv each read their own copy of the topology, so
# that one side can be given what the other does not know:
#   1. the same key on both sides: host0's disk works, verified I/O; its
#      local-hv also asks for host1's disk, which the io-server refuses
#      (counted, logged with the peer's address) and which never gets a
#      socket;
#   2. another key on the host: refused both ways, counted on both sides,
#      no socket;
#   3. no key on the host while the io-server has one: refused;
#   4. a key on the host while the io-server has none: the host refuses
#      the io-server, which proved nothing (and vrioctl check warns of
#      the host without a key);
#   5. a reload of the io-server with a key file others may read is
#      refused; one with a new key is taken: the old key is refused, the
#      new one (a restarted local-hv) gets verified I/O.
# Neither daemon dies of any of it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# topo FILE HOST0_KEY DISK_B_HOST: HOST0_KEY is a key file path or "".
topo() {
	local file=$1 key=$2 b_host=$3 key_line=""
	[[ -n $key ]] && key_line="    key_file: $key"
	cat >"$file" <<EOT
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
$key_line
  - name: host1
    key_file: $KEY1
devices:
  - name: disk-a
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK_A
    backend: {ram: 16M}
  - name: disk-b
    type: blk
    host: $b_host
    io_server: io0
    socket: $SOCK_B
    backend: {ram: 16M}
EOT
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# up IO_TOPO HV_TOPO NAME: starts both daemons; the io-server is ready.
up() {
	VRIO_IO_LOG=$RUN/io-$3.log
	VRIO_HV_LOG=$RUN/hv-$3.log
	rm -f "$SOCK_A" "$SOCK_B"
	start_daemon VRIO_IO_PID vrio-ioserver "$VRIO_IO_LOG" \
		"$VRIO_IOSERVER_BIN" --config "$1" --node io0
	wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID" || fail "io-server not listening"
	wait_for_socket "$VRIO_IO_CTL" 20 "$VRIO_IO_PID" || fail "io-server control socket"
	start_daemon VRIO_HV_PID vrio-localhv "$VRIO_HV_LOG" \
		"$VRIO_LOCALHV_BIN" --config "$2" --node host0
	wait_for_socket "$VRIO_HV_CTL" 20 "$VRIO_HV_PID" || fail "local-hv control socket"
}

down() {
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || fail "local-hv did not stop cleanly"
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || fail "io-server did not stop cleanly"
}

# metric DAEMON PREFIX: the sum of the samples, fresh from the daemon.
metric() {
	local addr=$VRIO_IO_METRICS
	[[ $1 == hv ]] && addr=$VRIO_HV_METRICS
	http_get "$addr" /metrics 2>/dev/null | metric_sum "$2"
}

at_least() { (($(metric "$1" "$2") >= $3)); }

# refused NAME IO_FAILS: after two refused connections in a row (the host
# tries again), the io-server counted at least IO_FAILS failures (0: none
# at all), disk-a has no socket and both daemons live.
refused() {
	local name=$1 io_min=$2
	wait_until 20 at_least hv 'vrio_localhv_upstream_auth_failures_total' 2 ||
		fail "$name: local-hv counted no refused connection"
	at_least io 'vrio_ioserver_auth_failures_total{host="host0"}' "$io_min" ||
		fail "$name: the io-server counted $(metric io vrio_ioserver_auth_failures_total) failures, want >= $io_min"
	((io_min > 0)) || (($(metric io vrio_ioserver_auth_failures_total) == 0)) ||
		fail "$name: the io-server counted a failure it did not see"
	[[ ! -e $SOCK_A ]] || fail "$name: disk-a was served without authentication"
	pid_alive "$VRIO_IO_PID" || fail "$name: the io-server died"
	pid_alive "$VRIO_HV_PID" || fail "$name: local-hv died"
}

main() {
	local build wrong
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || skip "vrio-bench or vrioctl not built in $build"
	make_tmpdir RUN
	vrio_addrs "$RUN"
	SOCK_A=$RUN/a.sock
	SOCK_B=$RUN/b.sock
	KEY0=$RUN/host0.key
	KEY1=$RUN/host1.key
	wrong=$RUN/wrong.key
	(umask 077; head -c 32 /dev/urandom >"$KEY0"; head -c 32 /dev/urandom >"$KEY1"
	 head -c 32 /dev/urandom >"$wrong")

	log "1: one key on both sides; host0 also asks for host1's disk"
	topo "$RUN/io.yaml" "$KEY0" host1
	topo "$RUN/hv.yaml" "$KEY0" host0
	up "$RUN/io.yaml" "$RUN/hv.yaml" good
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "disk-a never came up"
	"$BENCH" --socket "$SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --count 2000 \
		--seed 7 --verify --state "$RUN/a.state" || fail "writes on an authenticated host"
	"$BENCH" --socket "$SOCK_A" --rw randread --bs 4096 --iodepth 8 --count 2000 \
		--seed 8 --verify --state "$RUN/a.state" || fail "reads on an authenticated host"
	wait_until 20 at_least io 'vrio_ioserver_attach_refused_total{host="host0"}' 1 ||
		fail "the io-server did not count host0's attach of host1's disk"
	grep -q 'host0@127\.0\.0\.1:[0-9]*: attach: disk-b belongs to host host1' "$VRIO_IO_LOG" ||
		fail "the refused attach is not logged with the peer's address"
	grep -q 'hello, authenticated' "$VRIO_IO_LOG" || fail "the io-server did not authenticate"
	[[ ! -e $SOCK_B ]] || fail "host0 got a socket for host1's disk"
	(($(metric io vrio_ioserver_auth_failures_total) == 0)) || fail "a failure with the right key"
	(($(metric hv vrio_localhv_upstream_auth_failures_total) == 0)) ||
		fail "local-hv counted a failure with the right key"
	down

	log "2: another key on the host"
	topo "$RUN/hv.yaml" "$wrong" host0
	up "$RUN/io.yaml" "$RUN/hv.yaml" wrong
	refused "wrong key" 2
	grep -q '127\.0\.0\.1:[0-9]*: host host0 refused: the connection ended before it proved' \
		"$VRIO_IO_LOG" || fail "wrong key: the io-server's refusal is not logged with the peer's address"
	grep -q 'answered with a wrong proof' "$VRIO_HV_LOG" || fail "wrong key: local-hv logged no refusal"
	down

	log "3: no key on the host, one on the io-server"
	topo "$RUN/hv.yaml" "" host0
	up "$RUN/io.yaml" "$RUN/hv.yaml" nokey-host
	refused "no key on the host" 2
	grep -q '127\.0\.0\.1:[0-9]*: host host0 refused: it sent no nonce' "$VRIO_IO_LOG" ||
		fail "no key on the host: the io-server's refusal is not logged"
	grep -q 'refused this host.s proof' "$VRIO_HV_LOG" || fail "no key on the host: local-hv logged nothing"
	down

	log "4: a key on the host, none on the io-server"
	topo "$RUN/io-nokey.yaml" "" host1
	# vrioctl check warns of a host without a key, and of it alone.
	"$VRIOCTL" check "$RUN/io.yaml" 2>"$RUN/check.err" >/dev/null || fail "check io.yaml"
	[[ ! -s $RUN/check.err ]] || fail "check warns with every key set: $(cat "$RUN/check.err")"
	"$VRIOCTL" check "$RUN/io-nokey.yaml" 2>"$RUN/check.err" >/dev/null || fail "check io-nokey.yaml"
	grep -q "warning: host 'host0' has no key_file" "$RUN/check.err" ||
		fail "check does not warn of host0 without a key"
	! grep -q "host1" "$RUN/check.err" || fail "check warns of host1, which has a key"
	topo "$RUN/hv.yaml" "$KEY0" host0
	up "$RUN/io-nokey.yaml" "$RUN/hv.yaml" nokey-io
	refused "no key on the io-server" 0
	grep -q 'did not prove this host' "$VRIO_HV_LOG" || fail "no key on the io-server: no log line"
	down

	log "5: a key rotated on a running io-server (reload), an unsafe key file refused"
	topo "$RUN/hv.yaml" "$KEY0" host0
	up "$RUN/io.yaml" "$RUN/hv.yaml" rotate
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "rotate: disk-a never came up"
	chmod 644 "$KEY0"
	local rc=0
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload >"$RUN/reload.out" 2>&1 || rc=$?
	((rc == 1)) || fail "a reload with a key file others can read exited $rc"
	grep -q "host0.key has mode 0644" "$RUN/reload.out" ||
		fail "the refused reload does not say why: $(cat "$RUN/reload.out")"
	chmod 600 "$KEY0"
	cp -p "$KEY0" "$RUN/old.key"
	(umask 077; head -c 48 /dev/urandom >"$KEY0")
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload >/dev/null || fail "the reload with a new key failed"
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || fail "local-hv did not stop"
	# The old key no longer opens the door ...
	topo "$RUN/hv-old.yaml" "$RUN/old.key" host0
	start_daemon VRIO_HV_PID vrio-localhv "$RUN/hv-old.log" \
		"$VRIO_LOCALHV_BIN" --config "$RUN/hv-old.yaml" --node host0
	VRIO_HV_LOG=$RUN/hv-old.log
	wait_until 20 at_least hv 'vrio_localhv_upstream_auth_failures_total' 1 ||
		fail "rotate: the old key was not refused"
	[[ ! -e $SOCK_A ]] || fail "rotate: the old key got disk-a"
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || fail "local-hv did not stop"
	# ... the new one, read by a restarted local-hv, does.
	start_daemon VRIO_HV_PID vrio-localhv "$RUN/hv-new.log" \
		"$VRIO_LOCALHV_BIN" --config "$RUN/hv.yaml" --node host0
	VRIO_HV_LOG=$RUN/hv-new.log
	wait_for_socket "$SOCK_A" 20 "$VRIO_HV_PID" || fail "rotate: the new key did not get disk-a"
	"$BENCH" --socket "$SOCK_A" --rw randwrite --bs 4096 --iodepth 8 --count 1000 \
		--seed 9 --verify --state "$RUN/r.state" || fail "rotate: writes with the new key"
	"$BENCH" --socket "$SOCK_A" --rw randread --bs 4096 --iodepth 8 --count 1000 \
		--seed 10 --verify --state "$RUN/r.state" || fail "rotate: reads with the new key"
	down
	echo "PASS: integration/auth"
}

lib_traps
main "$@"
