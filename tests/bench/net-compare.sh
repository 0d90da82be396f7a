#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-compare.sh BUILD_DIR [SECONDS] [ROUNDS]: vrio-bench's net mode between
# two virtio-net ports,
#
#   vrio     both ports on one vrio-localhv, switched by vrio-ioserver over
#            TCP on loopback (the remote hop, twice per frame);
#   vrio2    the same ports on two io-servers, io0 and io1, whose switches a
#            trunk joins: each frame crosses it (three TCP hops);
#   testpmd  dpdk-testpmd forwarding between two net_vhost ports (io mode,
#            one forwarding core): a local switch with no network hop.
#
# The same client drives both, as the virtio driver of both ports. Cases:
# stream of 64-byte frames (packets per second), and request/response with
# one transaction in flight (round trip). Rounds alternate between the two;
# testpmd runs only during its own rounds, since its forwarding core spins.
# Prints medians, the backend's CPU seconds per run, and vrio/testpmd ratios.
#
# VRIO_ONLY="vrio testpmd" runs only the systems named (default: all three).
# VRIO_BASE_BUILD=DIR adds `base`: the vrio rack from another build (main,
# say), its runs alternating with vrio's in each round, the same vrio-bench
# driving both; prints vrio/base medians and the per-round ratios, the A/B
# of a change.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
ONLY=${VRIO_ONLY:-vrio vrio2 testpmd}

wanted() { [[ " $ONLY " == *" $1 "* || ($1 == base && -n ${VRIO_BASE_BUILD:-}) ]]; }


# one_run SYS MODE A B PIDS...: appends "value p99 cpu" to $TMP/SYS.MODE
one_run() {
	local sys=$1 mode=$2 a=$3 b=$4 t0 t1 out
	shift 4
	t0=$(cpu_ticks "$@")
	out=$("$BENCH" --net "$mode" --socket "$a" --peer-socket "$b" --runtime "$SECS" \
		--mac-a 52:54:00:00:00:0a --mac-b 52:54:00:00:00:0b --quiet --json) ||
		die "$sys $mode: vrio-bench failed: $out"
	t1=$(cpu_ticks "$@")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" "$mode" >>"$TMP/$sys.$mode" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
loss = r["lost"] / max(r["sent"], 1)
print(f'{r["pps"]:.0f} {r["rtt_us"]["p50"]:.1f} {r["rtt_us"]["p99"]:.1f} {cpu:.2f} {loss:.6f}')
PY
}

# vrio_up_net SYS [io1]: the rack of SYS (vrio, or vrio2 with nic-b on a
# second io-server); sets SYS_PIDS (its daemons) and SYS_STOP (name pid
# log, for each).
vrio_up_net() {
	local sys=$1 b_ios=${2:-io0} p_listen p_iom p_hvm p_io1 p_iom1 io1=""
	local dir=$TMP/$sys
	free_port p_listen
	free_port p_iom
	free_port p_hvm
	mkdir -p "$dir"
	vrio_ctl_paths "$dir"
	if [[ $b_ios == io1 ]]; then
		free_port p_io1
		free_port p_iom1
		io1="  - {name: io1, listen: 127.0.0.1:$p_io1, metrics: 127.0.0.1:$p_iom1, control: $dir/io1.ctl}"
	fi
	cat >"$dir/topology.yaml" <<EOF
version: 1
io_servers:
  - name: io0
    listen: 127.0.0.1:$p_listen
    metrics: 127.0.0.1:$p_iom
    control: $VRIO_IO_CTL
$io1
hosts:
  - name: host0
    metrics: 127.0.0.1:$p_hvm
    control: $VRIO_HV_CTL
devices:
  - name: nic-a
    type: net
    host: host0
    io_server: io0
    socket: $dir/a.sock
    mac: "52:54:00:00:00:0a"
    network: lan
  - name: nic-b
    type: net
    host: host0
    io_server: $b_ios
    socket: $dir/b.sock
    mac: "52:54:00:00:00:0b"
    network: lan
networks:
  - name: lan
EOF
	VRIO_IO_LISTEN=127.0.0.1:$p_listen
	local -n pids=${sys}_PIDS stop=${sys}_STOP
	pids=()
	stop=()
	if [[ -n $io1 ]]; then
		start_daemon IO1_PID vrio-ioserver-io1 "$dir/ioserver-io1.log" \
			"$VRIO_IOSERVER_BIN" --config "$dir/topology.yaml" --node io1
		wait_for_port "$p_io1" 20 "$IO1_PID" || die "$sys: io1 is not listening"
		pids+=("$IO1_PID")
		stop+=(vrio-ioserver-io1 "$IO1_PID" "$dir/ioserver-io1.log")
	fi
	vrio_start "$dir" "$dir/topology.yaml" "$dir/a.sock" "$dir/b.sock"
	pids+=("$VRIO_IO_PID" "$VRIO_HV_PID")
	stop=(vrio-localhv "$VRIO_HV_PID" "$VRIO_HV_LOG" vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG"
	      "${stop[@]}")
	if [[ -n $io1 ]]; then
		# The first frames would be dropped while the trunk comes up.
		wait_until 20 trunk_up "127.0.0.1:$p_iom" || die "$sys: the trunk did not come up"
	fi
}

trunk_up() { # METRICS_ADDR
	[[ $(http_get "$1" /metrics | metric_sum 'vrio_ioserver_trunk_up{') == 1 ]]
}

vrio_down_net() { # SYS
	local -n stop=${1}_STOP
	local i
	for ((i = 0; i < ${#stop[@]}; i += 3)); do
		vrio_stop "${stop[i]}" "${stop[i + 1]}" "${stop[i + 2]}" ||
			die "$1: ${stop[i]} did not stop cleanly"
	done
}

testpmd_up() {
	local dir=$TMP/testpmd
	mkdir -p "$dir"
	rm -f "$dir/a.sock" "$dir/b.sock"
	# testpmd reads stdin until it closes: hold it open with a pipe.
	mkfifo "$dir/stdin"
	dpdk-testpmd --no-huge -m 1024 --no-pci --file-prefix="vrio-bench-$$" \
		--vdev "net_vhost0,iface=$dir/a.sock,queues=1" \
		--vdev "net_vhost1,iface=$dir/b.sock,queues=1" -l 0,1 -- \
		--forward-mode=io --auto-start --no-mlockall --stats-period 0 --nb-cores=1 \
		--total-num-mbufs=16384 <"$dir/stdin" >"$dir/testpmd.log" 2>&1 &
	TP_PID=$!
	track_pid "$TP_PID" dpdk-testpmd
	exec {TP_FD}>"$dir/stdin"
	wait_for_socket "$dir/b.sock" 30 "$TP_PID" || die "dpdk-testpmd did not start"
}

testpmd_down() {
	exec {TP_FD}>&-
	stop_pid "$TP_PID" 10 || true
	untrack_pid "$TP_PID"
	rm -f "$TMP/testpmd/stdin"
}


col() { # FILE COL
	awk -v c="$2" '{ print $c }' "$1" | median
}

main() {
	local r mode sys systems=()
	BUILD=$(cd "$1" && pwd)
	BENCH=$BUILD/tools/vrio-bench
	vrio_binaries "$BUILD" || die "build vrio first (cmake --build $BUILD)"
	! wanted testpmd || have_cmd dpdk-testpmd || die "dpdk-testpmd not installed (Debian's dpdk-dev)"
	make_tmpdir TMP
	if wanted vrio; then
		vrio_up_net vrio
		systems+=(vrio)
	fi
	if wanted base; then
		vrio_binaries "$(cd "$VRIO_BASE_BUILD" && pwd)" ||
			die "VRIO_BASE_BUILD=$VRIO_BASE_BUILD holds no vrio build"
		vrio_up_net base
		vrio_binaries "$BUILD"
		systems+=(base)
	fi
	if wanted vrio2; then
		vrio_up_net vrio2 io1
		systems+=(vrio2)
	fi
	wanted testpmd && systems+=(testpmd)
	((${#systems[@]})) || die "VRIO_ONLY=$ONLY names no system (vrio vrio2 testpmd)"

	for ((r = 0; r < ROUNDS; r++)); do
		for mode in stream rr; do
			for sys in vrio base vrio2; do
				[[ " ${systems[*]} " == *" $sys "* ]] || continue
				local -n sys_pids=${sys}_PIDS
				one_run "$sys" "$mode" "$TMP/$sys/a.sock" "$TMP/$sys/b.sock" "${sys_pids[@]}"
				unset -n sys_pids
			done
		done
		if wanted testpmd; then
			testpmd_up
			for mode in stream rr; do
				one_run testpmd "$mode" "$TMP/testpmd/a.sock" "$TMP/testpmd/b.sock" "$TP_PID"
			done
			testpmd_down
		fi
	done
	for sys in vrio base vrio2; do
		[[ " ${systems[*]} " != *" $sys "* ]] || vrio_down_net "$sys"
	done

	printf '\nvirtio-net A -> B, %s s per run, median of %s runs (backend CPU in seconds per run)\n' \
		"$SECS" "$ROUNDS"
	printf '%-8s %-16s %12s %9s %9s %12s %8s\n' system case packets/s p50_us p99_us \
		backend_cpu loss
	for mode in stream rr; do
		for sys in "${systems[@]}"; do
			printf '%-8s %-16s %12s %9s %9s %12s %8s\n' "$sys" \
				"$([[ $mode == stream ]] && echo 'stream 64 B' || echo 'rr 64 B, QD 1')" \
				"$(col "$TMP/$sys.$mode" 1)" "$(col "$TMP/$sys.$mode" 2)" \
				"$(col "$TMP/$sys.$mode" 3)" "$(col "$TMP/$sys.$mode" 4)" \
				"$(col "$TMP/$sys.$mode" 5)"
		done
	done
	python3 - "$TMP" "${systems[@]}" <<'PY'
import statistics, sys
d, systems = sys.argv[1], sys.argv[2:]
def col(sys_, mode, c):
    return [float(l.split()[c]) for l in open(f'{d}/{sys_}.{mode}')]
def med(sys_, mode, c):
    return statistics.median(col(sys_, mode, c))
def rounds(a, b, mode, c):
    return ' '.join(f'{x / y:.2f}' if y else '-' for x, y in zip(col(a, mode, c), col(b, mode, c)))
def ab(a, b, title):
    if a not in systems or b not in systems:
        return
    print(f'\nratios {a}/{b}, {title} (medians; per round):')
    cpf = [(ca / max(pa, 1)) / (cb / max(pb, 1)) if cb else 0
           for pa, ca, pb, cb in zip(col(a, 'stream', 0), col(a, 'stream', 3),
                                     col(b, 'stream', 0), col(b, 'stream', 3))]
    print(f'stream: packets/s {med(a,"stream",0)/med(b,"stream",0):.2f}x '
          f'({rounds(a, b, "stream", 0)}), backend CPU per frame '
          f'{statistics.median(cpf):.2f}x ({" ".join(f"{x:.2f}" for x in cpf)})')
    print(f'rr: transactions/s {med(a,"rr",0)/med(b,"rr",0):.2f}x '
          f'({rounds(a, b, "rr", 0)}), '
          f'p50 {med(a,"rr",1)/med(b,"rr",1):.3g}x ({rounds(a, b, "rr", 1)}), '
          f'p99 {med(a,"rr",2)/med(b,"rr",2):.3g}x ({rounds(a, b, "rr", 2)})')
ab('vrio2', 'vrio', 'a frame across a trunk')
ab('vrio', 'base', 'this build against VRIO_BASE_BUILD')
if 'vrio' in systems and 'testpmd' in systems:
    print('\nratios vrio/testpmd (medians; per round):')
    print(f'stream: packets/s {med("vrio","stream",0)/med("testpmd","stream",0):.2f}x '
          f'({rounds("vrio", "testpmd", "stream", 0)})')
    print(f'rr: transactions/s {med("vrio","rr",0)/med("testpmd","rr",0):.2f}x, '
          f'p50 {med("vrio","rr",1)/med("testpmd","rr",1):.1f}x, '
          f'p99 {med("vrio","rr",2)/med("testpmd","rr",2):.1f}x')
PY
}

lib_traps
main "$@"
