# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# Shell helpers shared by scripts/*.sh and tests/e2e/*.sh. Source it; it
# defines functions and a few variables, and runs nothing by itself.
#
# Process hygiene: every background process a script starts is registered
# with track_pid, and lib_cleanup (installed by lib_traps) stops them by pid
# in reverse order of start, then removes the registered temporary
# directories. Nothing is ever killed by name.

VRIO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VRIO_CACHE=${VRIO_CACHE:-${HOME:-/root}/.cache/vrio}
VRIO_LOG_PREFIX=${VRIO_LOG_PREFIX:-$(basename "$0")}

# Exit code that CTest treats as "skipped" (SKIP_RETURN_CODE).
VRIO_SKIP=77

_lib_pids=()
_lib_pid_names=()
_lib_tmpdirs=()
_lib_ports=()

log() { printf '%s: %s\n' "$VRIO_LOG_PREFIX" "$*" >&2; }
die() { log "error: $*"; exit 1; }
skip() { printf 'SKIP: %s\n' "$*"; exit "$VRIO_SKIP"; }

have_cmd() { command -v "$1" >/dev/null 2>&1; }
need_cmd() {
	local c
	for c in "$@"; do
		have_cmd "$c" || die "required command not found: $c"
	done
}

# make_tmpdir VAR: creates a temporary directory removed at exit (kept when
# VRIO_KEEP_TMP=1, for post-mortems) and stores its path in VAR.
make_tmpdir() {
	local -n _tmpdir_out=$1
	_tmpdir_out=$(mktemp -d "${TMPDIR:-/tmp}/vrio.XXXXXX")
	_lib_tmpdirs+=("$_tmpdir_out")
}

# track_pid PID NAME: registers a background process for lib_cleanup.
track_pid() {
	_lib_pids+=("$1")
	_lib_pid_names+=("$2")
}

untrack_pid() {
	local i
	for i in "${!_lib_pids[@]}"; do
		if [[ ${_lib_pids[$i]} == "$1" ]]; then
			unset '_lib_pids[i]' '_lib_pid_names[i]'
		fi
	done
}

# pid_alive PID: true while PID runs (a zombie, exited but not yet reaped,
# counts as gone).
pid_alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# stop_pid PID [TIMEOUT_S] [SIGNAL]: sends SIGNAL (TERM) to PID, waits up to
# TIMEOUT_S (10) for it to exit, then SIGKILLs it. Returns the process's exit
# status when it is a child of this shell (128+n for a signal), 0 otherwise.
stop_pid() {
	local pid=$1 timeout=${2:-10} sig=${3:-TERM} n=0 rc=0
	untrack_pid "$pid"
	if pid_alive "$pid"; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		while pid_alive "$pid" && ((n < timeout * 10)); do
			sleep 0.1
			n=$((n + 1))
		done
		if pid_alive "$pid"; then
			log "pid $pid did not stop within ${timeout}s after SIG$sig: killing it"
			kill -s KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	# 127: not our child (or already reaped); its status is unknowable here.
	((rc == 127)) && rc=0
	return "$rc"
}

# lib_cleanup: the EXIT trap; keeps the script's exit status.
lib_cleanup() {
	local rc=$? i d
	local -a idx=("${!_lib_pids[@]}")
	for ((i = ${#idx[@]} - 1; i >= 0; i--)); do
		log "stopping ${_lib_pid_names[${idx[i]}]} (pid ${_lib_pids[${idx[i]}]})"
		stop_pid "${_lib_pids[${idx[i]}]}" 5 || true
	done
	for d in "${_lib_tmpdirs[@]}"; do
		if [[ ${VRIO_KEEP_TMP:-0} == 1 ]]; then
			log "keeping $d"
		else
			rm -rf -- "$d"
		fi
	done
	return "$rc"
}

# lib_traps: installs lib_cleanup at exit. Signals become a plain exit
# (128 + signal number) so that the cleanup also runs when the script is
# interrupted inside `wait`, where bash would otherwise die without running
# its EXIT trap.
lib_traps() {
	trap lib_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# wait_for_socket PATH TIMEOUT_S [PID]: waits for a unix socket to appear;
# fails early when PID (the process expected to create it) exits.
wait_for_socket() {
	local path=$1 timeout=$2 pid=${3:-} n=0
	while [[ ! -S $path ]]; do
		if [[ -n $pid ]] && ! pid_alive "$pid"; then
			log "pid $pid exited before creating $path"
			return 1
		fi
		if ((n >= timeout * 10)); then
			log "timed out after ${timeout}s waiting for socket $path"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
}

# port_listening PORT [PID]: true when some TCP socket listens on PORT (any
# address), in PID's network namespace (by default ours). Reads /proc so
# that it opens no connection to the server.
port_listening() {
	local hex net=/proc/${2:-self}/net
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' "$net/tcp" "$net/tcp6" 2>/dev/null
}

port_in_use() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# wait_for_port PORT TIMEOUT_S [PID]: waits until PORT is listening.
wait_for_port() {
	local port=$1 timeout=$2 pid=${3:-} n=0
	until port_listening "$port" "$pid"; do
		if [[ -n $pid ]] && ! pid_alive "$pid"; then
			log "pid $pid exited before listening on port $port"
			return 1
		fi
		if ((n >= timeout * 10)); then
			log "timed out after ${timeout}s waiting for port $port"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
}

# rdma_listening IP:PORT: true when an rdma_cm id listens there (rdma_cm
# ports do not show in /proc/net/tcp).
rdma_listening() {
	rdma resource show cm_id 2>/dev/null | grep -q "state LISTEN .*src-addr $1 "
}

# wait_for_rdma_listen IP:PORT TIMEOUT_S [PID]: waits until rdma_listening.
wait_for_rdma_listen() {
	local addr=$1 timeout=$2 pid=${3:-} n=0
	until rdma_listening "$addr"; do
		if [[ -n $pid ]] && ! pid_alive "$pid"; then
			log "pid $pid exited before listening on rdma $addr"
			return 1
		fi
		if ((n >= timeout * 10)); then
			log "timed out after ${timeout}s waiting for rdma $addr"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
}

# wait_for_listen ADDR TIMEOUT_S [PID]: waits for an io-server's listen
# address: a TCP port for host:port, a socket file for a path (shm), an
# rdma_cm listener for host:port when VRIO_IO_TRANSPORT is rdma.
wait_for_listen() {
	if [[ $1 == /* ]]; then
		wait_for_socket "$@"
	elif [[ ${VRIO_IO_TRANSPORT:-} == rdma ]]; then
		wait_for_rdma_listen "$@"
	elif [[ $1 =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]]; then
		# A MAC (dpdk): nothing to probe from outside, but the io-server
		# serves its metrics only once it listens.
		wait_for_port "${VRIO_IO_METRICS##*:}" "${@:2}"
	else
		wait_for_port "${1##*:}" "${@:2}"
	fi
}

# cpu_ticks PID...: utime + stime of the processes, in clock ticks (for
# the benchmarks' CPU columns).
cpu_ticks() {
	local p sum=0 stat
	local -a f
	for p in "$@"; do
		stat=$(cat "/proc/$p/stat")
		stat=${stat##*) }
		read -r -a f <<<"$stat"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# median_col FIELD FILE: the median of a space-separated column.
median_col() { cut -d' ' -f"$1" "$2" | median; }

# median_ratio FIELD FILE BASE: the median over rounds (lines) of FILE's
# FIELD over BASE's in the same round: runs side by side share the
# machine's noise.
median_ratio() {
	paste -d' ' <(cut -d' ' -f"$1" "$2") <(cut -d' ' -f"$1" "$3") |
		awk '{ printf "%.3f\n", $1 / $2 }' | median
}

# json FILE EXPR: prints a Python expression over the JSON document in FILE
# (bound to j), e.g. json status.json "j['config']['generation']".
json() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# json_str JSON EXPR: json's Python expression over j, the document given
# as a string (vrio-bench --json's output), e.g. json_str "$out" "j['sent']".
json_str() {
	python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# net_bench MODE FROM TO ARGS...: vrio-bench ($BENCH) --net MODE with the
# port $RUN/FROM.sock as its A and $RUN/TO.sock as its B, MACs
# 52:54:00:00:00:0FROM and 0TO, a JSON report on stdout.
net_bench() {
	"$BENCH" --net "$1" --socket "$RUN/$2.sock" --peer-socket "$RUN/$3.sock" \
		--mac-a "52:54:00:00:00:0$2" --mac-b "52:54:00:00:00:0$3" --quiet --json "${@:4}"
}

# now_ms: milliseconds, for durations of a few seconds.
now_ms() { date +%s%3N; }

# wait_until SECONDS CMD...: polls CMD every 10 ms until it succeeds; fails
# after SECONDS.
wait_until() {
	local limit=$(($1 * 100)) n=0
	shift
	until "$@"; do
		((++n < limit)) || return 1
		sleep 0.01
	done
}

gone() { [[ ! -e $1 ]]; }

# median_max FILE: "median M, max X" of a column of numbers.
median_max() {
	printf 'median %s, max %s' "$(median <"$1")" "$(sort -n "$1" | tail -1)"
}

# free_port VAR: picks an unused loopback TCP port, distinct from the ones
# this script already picked, and stores it in VAR.
free_port() {
	local -n _free_port_out=$1
	local p tries=0 used
	while ((tries < 1000)); do
		p=$((20000 + RANDOM % 40000))
		tries=$((tries + 1))
		port_in_use "$p" && continue
		for used in "${_lib_ports[@]}"; do
			[[ $used == "$p" ]] && continue 2
		done
		_lib_ports+=("$p")
		_free_port_out=$p
		return 0
	done
	die "no free TCP port found"
}

# http_get HOST:PORT PATH [TIMEOUT_S]: prints the body of an HTTP/1.0 GET.
# Uses bash's /dev/tcp, so it needs neither curl nor python. Fails on a
# status other than 200.
http_get() {
	local hostport=$1 path=$2 timeout=${3:-5}
	local host=${hostport%:*} port=${hostport##*:} response status
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	response=$(timeout "$timeout" bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
		cat <&3' _ "$host" "$port" "$path") || {
		log "GET http://$hostport$path failed"
		return 1
	}
	# The status line without a pipe into head: printf writes a long
	# response in several chunks, and when head has left after the first
	# line the next write dies of SIGPIPE, which pipefail turns into a
	# failed assignment (4 in 300 for a 26 KB exposition here).
	status=${response%%$'\n'*}
	status=${status%$'\r'}
	if [[ $status != HTTP/1.[01]\ 200* ]]; then
		log "GET http://$hostport$path: unexpected status '$status'"
		return 1
	fi
	printf '%s\n' "$response" | tr -d '\r' | sed '1,/^$/d'
}

# metric_sum PREFIX < EXPOSITION: sums the values of the samples whose line
# starts with PREFIX (a metric name, optionally with the start of its
# labels). The value is the first field after the labels (an optional
# timestamp follows it). Prints 0 when none match.
metric_sum() {
	awk -v p="$1" '
		index($0, p) != 1 { next }
		{
			rest = $0
			if (match(rest, /}[ \t]+/))
				rest = substr(rest, RSTART + RLENGTH)
			else
				sub(/^[^ \t]+[ \t]+/, "", rest)
			split(rest, v, /[ \t]+/)
			s += v[1]
		}
		END { printf "%.0f\n", s + 0 }'
}

# ---------------------------------------------------------------------------
# Racks of several io-servers on loopback (the trunk tests). Ports come
# from free_port: P_IO<i> (listen), P_IOM<i> (metrics), P_HV<i> (a host's
# metrics, optional); control sockets are RUN/io<i>.ctl, RUN/host<i>.ctl.

# rack_io_servers N HEARTBEAT: the io_servers section, io0 to io<N-1>, each
# with `heartbeat: HEARTBEAT`.
rack_io_servers() {
	local i port listen
	echo "io_servers:"
	for ((i = 0; i < $1; i++)); do
		listen=P_IO$i port=P_IOM$i
		printf '  - name: io%s\n    listen: 127.0.0.1:%s\n    metrics: 127.0.0.1:%s\n' \
			"$i" "${!listen}" "${!port}"
		printf '    control: %s/io%s.ctl\n    heartbeat: %s\n' "$RUN" "$i" "$2"
	done
}

# rack_hosts N: the hosts section, host0 to host<N-1>, with metrics where
# P_HV<i> is set.
rack_hosts() {
	local i port
	echo "hosts:"
	for ((i = 0; i < $1; i++)); do
		port=P_HV$i
		printf '  - name: host%s\n' "$i"
		if [[ -n ${!port:-} ]]; then
			printf '    metrics: 127.0.0.1:%s\n' "${!port}"
		fi
		printf '    control: %s/host%s.ctl\n' "$RUN" "$i"
	done
}

# rack_lan_ab: the devices and networks sections of two io-servers'
# network lan: nic-a (host0, io0) and nic-b (host1, io1), sockets in RUN.
rack_lan_ab() {
	cat <<EOF
devices:
  - {name: nic-a, type: net, host: host0, io_server: io0, socket: $RUN/a.sock, mac: "52:54:00:00:00:0a", network: lan}
  - {name: nic-b, type: net, host: host1, io_server: io1, socket: $RUN/b.sock, mac: "52:54:00:00:00:0b", network: lan}
networks:
  - name: lan
EOF
}

# rack_stop N_IO N_HOSTS: stops the local-hvs host<i> (pids HV_PID<i>, logs
# RUN/localhv-host<i>.log), then the io-servers io<i> (IO_PID<i>,
# RUN/ioserver-io<i>.log); fails unless each exits with status 0.
rack_stop() {
	local i pid
	for ((i = 0; i < $2; i++)); do
		pid=HV_PID$i
		vrio_stop "vrio-localhv-host$i" "${!pid}" "$RUN/localhv-host$i.log" ||
			fail "host$i did not stop cleanly"
	done
	for ((i = 0; i < $1; i++)); do
		pid=IO_PID$i
		vrio_stop "vrio-ioserver-io$i" "${!pid}" "$RUN/ioserver-io$i.log" ||
			fail "io$i did not stop cleanly"
	done
}

# rx_full HOST PORT: frames host HOST's local-hv (metrics on P_HV<HOST>)
# had no room for in the receive ring of port PORT's guest (nic-PORT, a
# vrio-bench B that fell behind a stream): a loss outside the switches and
# the trunks.
rx_full() {
	local port=P_HV$1
	http_get "127.0.0.1:${!port}" /metrics |
		metric_sum "vrio_localhv_net_drops_total{device=\"nic-$2\",reason=\"guest_rx_full\"}"
}

# stream_check WHEN OUT HOST PORT FULL0 [SENT]: a net_bench stream's report
# OUT, to PORT on host HOST: in order, undamaged, and each frame lost one
# that PORT's guest had no room for (FULL0: rx_full HOST PORT before the
# stream), none lost in the switches or on a trunk. SENT: what it must
# have sent, when given.
stream_check() {
	local sent received full
	sent=$(json_str "$2" "j['sent']")
	received=$(json_str "$2" "j['received']")
	full=$(($(rx_full "$3" "$4") - $5))
	[[ -z ${6:-} || $sent == "$6" ]] || fail "$1: the stream sent $sent frames, not $6: $2"
	((sent > 0 && received + full == sent)) ||
		fail "$1: $((sent - received)) frames lost, $full of them for want of room in $4's ring: $2"
	[[ $(json_str "$2" "j['bad']") == 0 && $(json_str "$2" "j['reordered']") == 0 ]] ||
		fail "$1: frames damaged or reordered: $2"
	log "$1: $received of $sent frames, in order ($full found $4's ring full)"
}

# io_metric N PREFIX: the sum of PREFIX's samples on io-server N.
io_metric() {
	local port=P_IOM$1
	http_get "127.0.0.1:${!port}" /metrics | metric_sum "$2"
}

# trunk_up N PEER: io-server N's trunk to PEER is up.
trunk_up() {
	[[ $(io_metric "$1" "vrio_ioserver_trunk_up{peer=\"$2\"}") == 1 ]]
}

# ---------------------------------------------------------------------------
# Guest side: the guest programs, the guest image and the guest runner.

VRIO_GUEST_IO_SRC="$VRIO_ROOT/tests/e2e/guest-io.c"
VRIO_GUEST_TCP_SRC="$VRIO_ROOT/tests/e2e/guest-tcp.c"

# build_guest_prog OUT SRC: builds a static guest program from one C file
# when OUT is missing or older than SRC.
build_guest_prog() {
	local out=$1 src=$2
	if [[ -x $out && $out -nt $src ]]; then
		return 0
	fi
	need_cmd gcc
	mkdir -p "$(dirname "$out")"
	log "building $out"
	gcc -static -O2 -std=gnu11 -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes \
		-Wshadow -Wformat=2 -Wundef -Wwrite-strings -Wvla -Werror \
		-o "$out.tmp" "$src" ||
		die "could not build $(basename "$out") (static glibc comes with libc6-dev)"
	mv -f "$out.tmp" "$out"
}

# build_guest_io OUT: the guest-io program (block patterns).
build_guest_io() { build_guest_prog "$1" "$VRIO_GUEST_IO_SRC"; }

# build_guest_tcp OUT: the guest-tcp program (a checked TCP stream).
build_guest_tcp() { build_guest_prog "$1" "$VRIO_GUEST_TCP_SRC"; }

# guest_image DIR: makes sure DIR holds vmlinuz, initrd.cpio.gz, guest-io and
# guest-tcp.
# Exits with VRIO_SKIP when the kernel package cannot be obtained.
guest_image() {
	local rc=0
	bash "$VRIO_ROOT/scripts/guest-image.sh" "$1" || rc=$?
	((rc == VRIO_SKIP)) && skip "no guest kernel: the kernel package or a module it needs could not be obtained"
	((rc == 0)) || die "guest image build failed"
}

# run_guest OUT ARGS...: runs tests/e2e/run-guest.sh with the given options
# and writes its VRIO-RESULT lines to OUT. It runs as a registered
# background process, so that a signal to this script stops it (and so its
# QEMU): call it directly, never inside $(...), where the registration
# would be lost.
run_guest() {
	local out=$1 pid rc=0
	shift
	bash "$VRIO_ROOT/tests/e2e/run-guest.sh" "$@" >"$out" &
	pid=$!
	track_pid "$pid" run-guest.sh
	wait "$pid" || rc=$?
	untrack_pid "$pid"
	return "$rc"
}

# check_file GUEST_IO FILE OFF LEN SEED: checks the pattern in a backing file.
check_file() {
	local guest_io=$1
	shift
	"$guest_io" check-file "$@"
}

# result_field LINE KEY: prints the value of KEY=VALUE in a VRIO-RESULT line.
result_field() {
	local w
	for w in $1; do
		if [[ $w == "$2="* ]]; then
			printf '%s\n' "${w#*=}"
			return 0
		fi
	done
	return 1
}

# ---------------------------------------------------------------------------
# vrio daemons: topology, start, stop.

# vrio_ctl_paths DIR: sets VRIO_IO_CTL and VRIO_HV_CTL to DIR/io0.ctl and
# DIR/host0.ctl, the control sockets (control:) a script's topology gives
# io0 and host0. Never the default /run/vrio/NODE.sock: a daemon refuses to
# start where another one's control socket is live, and tests run side by
# side. A unix socket path has at most 107 bytes: DIR must be short.
vrio_ctl_paths() {
	VRIO_IO_CTL=$1/io0.ctl
	VRIO_HV_CTL=$1/host0.ctl
	((${#VRIO_HV_CTL} <= 107)) || die "$VRIO_HV_CTL: too long for a unix socket"
}

# vrio_addrs DIR: a one-io-server, one-host rack's addresses on loopback:
# VRIO_IO_LISTEN, VRIO_IO_METRICS and VRIO_HV_METRICS on free ports, and
# the control sockets VRIO_IO_CTL and VRIO_HV_CTL in DIR (vrio_ctl_paths).
vrio_addrs() {
	local p_listen p_io_metrics p_hv_metrics
	free_port p_listen
	free_port p_io_metrics
	free_port p_hv_metrics
	VRIO_IO_LISTEN=127.0.0.1:$p_listen
	VRIO_IO_METRICS=127.0.0.1:$p_io_metrics
	VRIO_HV_METRICS=127.0.0.1:$p_hv_metrics
	vrio_ctl_paths "$1"
}

# write_topology FILE IO_LISTEN IO_METRICS HOST_METRICS SOCKET DISK QUEUES
# IO_CTL HV_CTL [KEY_FILE] writes a one-host, one-io-server, one-blk-device
# topology (the shape of deploy/topology.example.yaml) with the given
# loopback addresses, paths and control sockets, and host0's key_file
# when KEY_FILE is given.
write_topology() {
	local file=$1 listen=$2 io_metrics=$3 host_metrics=$4 sock=$5 disk=$6
	local queues=$7 io_ctl=$8 hv_ctl=$9 key=${10:-} key_line=""
	[[ -n $key ]] && key_line="    key_file: $key"
	cat >"$file" <<EOF
version: 1
io_servers:
  - name: io0
    transport: tcp
    listen: $listen
    metrics: $io_metrics
    control: $io_ctl
hosts:
  - name: host0
    metrics: $host_metrics
    control: $hv_ctl
$key_line
devices:
  - name: vm1-disk
    type: blk
    host: host0
    io_server: io0
    socket: $sock
    queues: $queues
    backend: {file: $disk, size: 64M}
EOF
}

# show_log NAME FILE: prints the last lines of a daemon's log, for failures.
show_log() {
	[[ -f $2 ]] || return 0
	log "--- last lines of $1 log ($2) ---"
	tail -n 30 "$2" >&2
	log "--- end of $1 log ---"
}

# show_run_logs: show_log for every $RUN/*.log, the daemons' logs of a test.
show_run_logs() {
	local f
	for f in "$RUN"/*.log; do
		[[ -e $f ]] && show_log "$(basename "$f")" "$f"
	done
	return 0
}

# fail MESSAGE: a test's failure: its daemons' logs (show_run_logs), then
# die. A test that wants more on failure defines its own.
fail() {
	show_run_logs
	die "$*"
}

# start_daemon VAR NAME LOG CMD...: starts CMD in the background with its
# stdout and stderr in LOG, registers it, and stores its pid in VAR.
start_daemon() {
	local -n _daemon_pid_out=$1
	local name=$2 logfile=$3
	shift 3
	"$@" >"$logfile" 2>&1 &
	_daemon_pid_out=$!
	track_pid "$_daemon_pid_out" "$name"
	log "started $name (pid $_daemon_pid_out): $*"
}

# vrio_binaries BUILD_DIR: sets VRIO_IOSERVER_BIN and VRIO_LOCALHV_BIN; fails
# when either is not built.
vrio_binaries() {
	VRIO_IOSERVER_BIN=$1/io-server/vrio-ioserver
	VRIO_LOCALHV_BIN=$1/local-hv/vrio-localhv
	[[ -x $VRIO_IOSERVER_BIN && -x $VRIO_LOCALHV_BIN ]]
}

# start_io0_hosts PORT [CTL]: from $RUN/topology.yaml, vrio-ioserver --node
# io0 (IO_PID, RUN/ioserver.log), waited for on 127.0.0.1:PORT (and its
# control socket CTL, when given), then a vrio-localhv for host0 and for
# host1 (HV_PID0, HV_PID1, RUN/localhv-hostN.log). stop_io0_hosts stops
# them, failing unless each exits with status 0.
start_io0_hosts() {
	local i
	start_daemon IO_PID vrio-ioserver "$RUN/ioserver.log" \
		"$VRIO_IOSERVER_BIN" --config "$RUN/topology.yaml" --node io0
	wait_for_port "$1" 20 "$IO_PID" || fail "vrio-ioserver is not listening"
	if [[ -n ${2:-} ]]; then
		wait_for_socket "$2" 20 "$IO_PID" || fail "vrio-ioserver serves no control socket"
	fi
	for i in 0 1; do
		start_daemon "HV_PID$i" "vrio-localhv-host$i" "$RUN/localhv-host$i.log" \
			"$VRIO_LOCALHV_BIN" --config "$RUN/topology.yaml" --node "host$i"
	done
}

stop_io0_hosts() {
	vrio_stop vrio-localhv-host0 "$HV_PID0" "$RUN/localhv-host0.log" || fail "host0 did not stop cleanly"
	vrio_stop vrio-localhv-host1 "$HV_PID1" "$RUN/localhv-host1.log" || fail "host1 did not stop cleanly"
	vrio_stop vrio-ioserver "$IO_PID" "$RUN/ioserver.log" || fail "the io-server did not stop cleanly"
}

# vrio_up RUN_DIR: lays out a one-device rack in RUN_DIR (topology with
# free loopback ports, control sockets in RUN_DIR, a 64 MiB backing file,
# host0's key_file VRIO_HOST_KEY when that is set) and starts
# vrio-ioserver, then vrio-localhv, each once the previous is ready. Needs vrio_binaries first. Sets: VRIO_TOPO VRIO_DISK VRIO_SOCK
# VRIO_IO_LISTEN VRIO_IO_METRICS VRIO_HV_METRICS VRIO_IO_CTL VRIO_HV_CTL
# VRIO_IO_PID VRIO_HV_PID VRIO_IO_LOG VRIO_HV_LOG.
vrio_up() {
	local run=$1
	vrio_addrs "$run"
	VRIO_TOPO=$run/topology.yaml
	VRIO_DISK=$run/disk.img
	VRIO_SOCK=$run/vm1-disk.sock
	rm -f "$VRIO_SOCK"
	truncate -s 64M "$VRIO_DISK"
	write_topology "$VRIO_TOPO" "$VRIO_IO_LISTEN" "$VRIO_IO_METRICS" "$VRIO_HV_METRICS" \
		"$VRIO_SOCK" "$VRIO_DISK" 2 "$VRIO_IO_CTL" "$VRIO_HV_CTL" "${VRIO_HOST_KEY:-}"

	vrio_start "$run" "$VRIO_TOPO" "$VRIO_SOCK"
}

# vrio_start RUN_DIR TOPOLOGY SOCKET...: starts vrio-ioserver (node io0),
# then vrio-localhv (node host0) once the io-server listens on
# VRIO_IO_LISTEN (a host:port, or a socket path for shm) and serves its
# control socket VRIO_IO_CTL, and waits for every SOCKET and for
# VRIO_HV_CTL. VRIO_IO_CTL and VRIO_HV_CTL (vrio_ctl_paths) must be the
# topology's control: of io0 and host0; once vrio_start returns, `vrioctl
# --socket "$VRIO_IO_CTL" status` answers. Logs go to RUN_DIR. The arrays
# VRIO_IO_WRAP and VRIO_HV_WRAP, when set, prefix each daemon's command
# (ip netns exec NS). Sets VRIO_IO_PID VRIO_HV_PID VRIO_IO_LOG VRIO_HV_LOG.
vrio_start() {
	local run=$1 topo=$2 sock
	shift 2
	: "${VRIO_IO_CTL:?vrio_start: no VRIO_IO_CTL (vrio_ctl_paths)}"
	: "${VRIO_HV_CTL:?vrio_start: no VRIO_HV_CTL (vrio_ctl_paths)}"
	VRIO_IO_LOG=$run/ioserver.log
	VRIO_HV_LOG=$run/localhv.log
	start_daemon VRIO_IO_PID vrio-ioserver "$VRIO_IO_LOG" \
		"${VRIO_IO_WRAP[@]}" "$VRIO_IOSERVER_BIN" --config "$topo" --node io0
	if ! wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID"; then
		show_log vrio-ioserver "$VRIO_IO_LOG"
		die "vrio-ioserver is not listening on $VRIO_IO_LISTEN"
	fi
	if ! wait_for_socket "$VRIO_IO_CTL" 20 "$VRIO_IO_PID"; then
		show_log vrio-ioserver "$VRIO_IO_LOG"
		die "vrio-ioserver did not create its control socket $VRIO_IO_CTL"
	fi
	start_daemon VRIO_HV_PID vrio-localhv "$VRIO_HV_LOG" \
		"${VRIO_HV_WRAP[@]}" "$VRIO_LOCALHV_BIN" --config "$topo" --node host0
	for sock in "$@" "$VRIO_HV_CTL"; do
		if ! wait_for_socket "$sock" 20 "$VRIO_HV_PID"; then
			show_log vrio-localhv "$VRIO_HV_LOG"
			show_log vrio-ioserver "$VRIO_IO_LOG"
			die "vrio-localhv did not create $sock"
		fi
	done
}

# vrio_metrics NAME HOST:PORT OUT: waits for a daemon's metrics port and
# saves its /metrics exposition in OUT.
vrio_metrics() {
	local name=$1 addr=$2 out=$3
	if ! wait_for_port "${addr##*:}" 10; then
		log "$name serves no metrics on $addr"
		return 1
	fi
	http_get "$addr" /metrics >"$out" || {
		log "could not fetch http://$addr/metrics from $name"
		return 1
	}
}

# vrio_stop NAME PID LOG: stops a daemon with SIGTERM and fails unless it
# exits with status 0.
vrio_stop() {
	local name=$1 pid=$2 logfile=$3 rc=0
	stop_pid "$pid" 15 || rc=$?
	if ((rc != 0)); then
		log "$name (pid $pid) exited with status $rc on SIGTERM"
		show_log "$name" "$logfile"
		return 1
	fi
	log "$name (pid $pid) stopped, exit status 0"
}

# vrio_down: stops vrio-localhv, then vrio-ioserver (the order of a drain:
# no new requests, then the server); fails unless both exit 0.
vrio_down() {
	local rc=0
	vrio_stop vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" || rc=1
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || rc=1
	return "$rc"
}
