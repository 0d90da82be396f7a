#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-tcp.sh BUILD_DIR: the guests' TCP load program (tests/e2e/guest-tcp.c)
# on the host's loopback, so that net-tcp's verdicts can be trusted:
#
#   1. 3 connections for 1 s, and 1 connection of an odd byte count: both
#      sides say ok and count the same bytes;
#   2. one byte flipped by the sender (GUEST_TCP_CORRUPT): the server finds
#      the mismatch at that offset and both sides fail with MISMATCH;
#   3. nonsense arguments are refused.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# serve PORT RUNS OUT: a guest-tcp server in the background (SERVER_PID),
# once it listens.
serve() {
	"$GT" server "$1" "$2" >"$3" 2>&1 &
	SERVER_PID=$!
	track_pid "$SERVER_PID" guest-tcp-server
	wait_for_port "$1" 10 "$SERVER_PID" || die "guest-tcp server does not listen on $1"
}

# served: waits for the server; its status in SERVER_RC.
served() {
	SERVER_RC=0
	wait "$SERVER_PID" || SERVER_RC=$?
	untrack_pid "$SERVER_PID"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build tmp port line sline rc
	build=$(cd "$1" && pwd)
	GT=$build/tests/e2e/guest/guest-tcp
	build_guest_tcp "$GT"
	make_tmpdir tmp
	free_port port

	serve "$port" 2 "$tmp/server"
	line=$("$GT" client 127.0.0.1 "$port" 1s 3) || die "client failed: $line"
	echo "$line"
	[[ $line == *' conns=3 '*' ok' ]] || die "unexpected client line: $line"
	line=$("$GT" client 127.0.0.1 "$port" 1000003) || die "client failed: $line"
	echo "$line"
	[[ $(result_field "$line" bytes) == 1000003 ]] || die "sent other than 1000003 bytes: $line"
	served
	cat "$tmp/server"
	((SERVER_RC == 0)) || die "the server exited with $SERVER_RC"
	sline=$(grep -c '^VRIO-RESULT: tcp-server .* ok$' "$tmp/server") || true
	((sline == 2)) || die "the server did not report two good runs"
	grep -q ' bytes=1000003 .* ok$' "$tmp/server" || die "the server did not count 1000003 bytes"

	serve "$port" 1 "$tmp/server"
	rc=0
	line=$(GUEST_TCP_CORRUPT=654321 "$GT" client 127.0.0.1 "$port" 4M 2>"$tmp/client.err") || rc=$?
	echo "$line"
	if ((rc != 1)) || [[ $line != *' MISMATCH' ]]; then
		die "a flipped byte went unnoticed (status $rc): $line"
	fi
	served
	cat "$tmp/server"
	((SERVER_RC == 1)) || die "the server exited with $SERVER_RC, not 1 (MISMATCH)"
	grep -q 'first mismatch at byte 654321$' "$tmp/server" ||
		die "the server did not place the mismatch at byte 654321"

	for line in "client 127.0.0.1 $port" "client 127.0.0.1 0 1s" "client nohost $port 1s" \
		"client 127.0.0.1 $port 0s" "client 127.0.0.1 $port 1s 17" "server 70000" "nonsense"; do
		rc=0
		# shellcheck disable=SC2086
		"$GT" $line >/dev/null 2>&1 || rc=$?
		((rc == 2)) || die "guest-tcp $line: status $rc, not 2"
	done
	echo "PASS: e2e/guest-tcp"
}

lib_traps
main "$@"
