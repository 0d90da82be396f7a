#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# throttle-compare.sh BUILD_DIR [SECONDS] [ROUNDS]: how closely vrio's
# throttle stage and qemu-storage-daemon's throttle filter (a throttle
# group, QEMU's leaky buckets) hold a limit, driven by the same client,
# vrio-bench at QD 32, in turns in one run. Both serve a file in /dev/shm
# (qsd with aio=io_uring, its strongest for this); vrio over TCP on
# loopback. Cases:
#
#   iops 2000   4 KiB random reads
#   iops 1500   (SPDK rounds IOPS limits up to a multiple of 1000)
#   iops 150
#   bps 24M     64 KiB random reads, 384 a second (SPDK: 1 MiB/s multiples)
#
# For each, from 1 s after the start (the burst), the worst error of the
# 1 s windows against the limit, the median and worst of the 100 ms
# windows, the rate over the run, and the daemons' CPU microseconds per
# request. Medians over ROUNDS.
#
# VRIO_SELDOM=IOPS measures work that comes seldom instead: vrio alone,
# throttled to IOPS, 4 KiB random reads at queue depth VRIO_QD (default 1),
# each daemon's CPU microseconds per request (utime + stime over the run)
# and the latency; then both daemons' CPU at rest. With VRIO_BASE_BUILD=DIR
# a second rack from that build (main, say) runs in turns with this one,
# round by round, and the per-round ratios to it are printed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-6}
ROUNDS=${3:-3}

CASES=("iops 2000 4096" "iops 1500 4096" "iops 150 4096" "bps 25165824 65536")

write_topo() { # KIND LIMIT
	cat >"$TOPO.new" <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    control: $VRIO_IO_CTL
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    control: $VRIO_HV_CTL
devices:
  - name: disk
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/vrio.sock
    backend: {file: $DISK}
    interpose:
      - throttle: {$1: $2}
EOF
	mv -f "$TOPO.new" "$TOPO"
}

generation() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" status --json >"$RUN/status.json"
	json "$RUN/status.json" "j['config']['generation']"
}

generation_past() { (($(generation) > $1)); }

vrio_limit() { # KIND LIMIT
	local gen
	gen=$(generation)
	write_topo "$1" "$2"
	kill -HUP "$VRIO_IO_PID"
	wait_until 10 generation_past "$gen" || die "the io-server did not take the new limit"
}

qsd_start() { # KIND LIMIT
	local key=iops-total
	[[ $1 == bps ]] && key=bps-total
	rm -f "$RUN/qsd.sock"
	qemu-storage-daemon \
		--object "{\"qom-type\":\"throttle-group\",\"id\":\"tg0\",\"limits\":{\"$key\":$2}}" \
		--blockdev "{\"driver\":\"file\",\"node-name\":\"f0\",\"filename\":\"$DISK\",\"aio\":\"io_uring\"}" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--blockdev driver=throttle,node-name=t0,throttle-group=tg0,file=d0 \
		--export "type=vhost-user-blk,id=e0,addr.type=unix,addr.path=$RUN/qsd.sock,node-name=t0,writable=on,num-queues=1" \
		>"$RUN/qsd.log" 2>&1 &
	QSD_PID=$!
	track_pid "$QSD_PID" qemu-storage-daemon
	wait_for_socket "$RUN/qsd.sock" 20 "$QSD_PID" || {
		cat "$RUN/qsd.log" >&2
		die "qemu-storage-daemon did not start"
	}
}

qsd_stop() {
	stop_pid "$QSD_PID" 15 || true
	untrack_pid "$QSD_PID"
}

# one SOCKET RATE BS PIDS...: appends "worst_1s median_100ms worst_100ms
# rate_err cpu_us" to stdout.
one() {
	local sock=$1 rate=$2 bs=$3 t0 t1
	shift 3
	t0=$(cpu_ticks "$@")
	"$BENCH" --socket "$sock" --rw randread --bs "$bs" --iodepth 32 --size 60M \
		--runtime "$SECS" --window-ms 100 --json --quiet >"$RUN/one.json" ||
		die "vrio-bench on $sock failed"
	t1=$(cpu_ticks "$@")
	python3 - "$RUN/one.json" "$rate" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
j = json.load(open(sys.argv[1]))
rate = float(sys.argv[2])
ops = j['windows']['ops'][10:]
full = len(ops) - 1            # the last window is cut short
ops = ops[:full]
e100 = [abs(o - rate / 10) / (rate / 10) for o in ops]
secs = [sum(ops[i:i + 10]) for i in range(0, len(ops) - 9, 10)]
e1 = [abs(s - rate) / rate for s in secs]
run = abs(sum(ops) / (len(ops) / 10) - rate) / rate
cpu = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
print('%.4f %.4f %.4f %.4f %.1f' % (max(e1), statistics.median(e100), max(e100), run,
      cpu * 1e6 / max(j['ops'], 1)))
PY
}

pct() { awk -v c="$1" '{ print $c }' "$2" | median | awk '{ printf "%.2f%%", $1 * 100 }'; }

# seldom_start NAME BUILD: a rack of NAME's own from BUILD, throttled to
# $SELDOM IOPS, in $RUN/NAME.
seldom_start() {
	local dir=$RUN/$1
	mkdir -p "$dir"
	vrio_binaries "$2" || die "daemons not built in $2"
	vrio_addrs "$dir"
	RUN=$dir TOPO=$dir/topology.yaml write_topo iops "$SELDOM"
	vrio_start "$dir" "$dir/topology.yaml" "$dir/vrio.sock"
	SPIDS[$1]="$VRIO_IO_PID $VRIO_HV_PID"
}

seldom_stop() {
	read -r VRIO_IO_PID VRIO_HV_PID <<<"${SPIDS[$1]}"
	VRIO_IO_LOG=$RUN/$1/ioserver.log VRIO_HV_LOG=$RUN/$1/localhv.log vrio_down
}

# seldom_one NAME: one run on NAME's rack; appends "iops p50 p99 io_us hv_us"
# to $RUN/NAME.res (CPU microseconds per request of io-server, local-hv).
seldom_one() {
	local io hv a0 a1 b0 b1
	read -r io hv <<<"${SPIDS[$1]}"
	a0=$(cpu_ticks "$io")
	b0=$(cpu_ticks "$hv")
	"$BENCH" --socket "$RUN/$1/vrio.sock" --rw randread --bs 4096 --iodepth "$QD" \
		--size 60M --runtime "$SECS" --json --quiet >"$RUN/one.json" ||
		die "vrio-bench on $1 failed"
	a1=$(cpu_ticks "$io")
	b1=$(cpu_ticks "$hv")
	python3 - "$RUN/one.json" "$(getconf CLK_TCK)" "$a0" "$a1" "$b0" "$b1" >>"$RUN/$1.res" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
hz = int(sys.argv[2])
a0, a1, b0, b1 = (int(x) for x in sys.argv[3:7])
n = max(j['ops'], 1)
print('%.0f %.1f %.1f %.2f %.2f' % (j['iops'], j['lat_us']['p50'], j['lat_us']['p99'],
      (a1 - a0) / hz * 1e6 / n, (b1 - b0) / hz * 1e6 / n))
PY
}

seldom() {
	local r sys col io hv t0 t1
	local -a systems=(vrio)
	declare -gA SPIDS
	QD=${VRIO_QD:-1}
	[[ -n ${VRIO_BASE_BUILD:-} ]] && systems+=(base)
	seldom_start vrio "$BUILD"
	[[ -n ${VRIO_BASE_BUILD:-} ]] && seldom_start base "$(cd "$VRIO_BASE_BUILD" && pwd)"
	log "throttled to $SELDOM IOPS, QD $QD, ${SECS}s runs, $ROUNDS rounds: ${systems[*]}"
	for ((r = 0; r < ROUNDS; r++)); do
		for sys in "${systems[@]}"; do
			seldom_one "$sys"
		done
	done
	printf '%-6s %8s %9s %9s %16s %16s\n' system IOPS "p50 us" "p99 us" \
		"io-server us/IO" "local-hv us/IO"
	for sys in "${systems[@]}"; do
		printf '%-6s' "$sys"
		for col in 1 2 3 4 5; do
			printf ' %*s' $((col < 4 ? (col == 1 ? 8 : 9) : 16)) "$(median_col "$col" "$RUN/$sys.res")"
		done
		printf '\n'
	done
	if [[ -n ${VRIO_BASE_BUILD:-} ]]; then
		printf '%-6s' "ratio"
		for col in 1 2 3 4 5; do
			printf ' %*s' $((col < 4 ? (col == 1 ? 8 : 9) : 16)) \
				"$(median_ratio "$col" "$RUN/vrio.res" "$RUN/base.res")"
		done
		printf '   (vrio / base, median of the per-round ratios)\n'
		for col in 4 5; do
			printf 'per-round ratios, column %s:' "$col"
			paste -d' ' <(cut -d' ' -f"$col" "$RUN/vrio.res") \
				<(cut -d' ' -f"$col" "$RUN/base.res") |
				awk '{ printf " %.3f", $1 / $2 }'
			printf '\n'
		done
	fi
	for sys in "${systems[@]}"; do
		read -r io hv <<<"${SPIDS[$sys]}"
		t0="$(cpu_ticks "$io") $(cpu_ticks "$hv")"
		sleep 5
		t1="$(cpu_ticks "$io") $(cpu_ticks "$hv")"
		echo "$t0 $t1" | awk -v s="$sys" -v hz="$(getconf CLK_TCK)" '{
			printf "%s at rest over 5 s, %% of a core: io-server %.2f local-hv %.2f\n",
				s, 100 * ($3 - $1) / hz / 5, 100 * ($4 - $2) / hz / 5 }'
	done
	for sys in "${systems[@]}"; do
		seldom_stop "$sys"
	done
}

main() {
	local build c kind limit bs rate r sys
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	need_cmd python3
	have_cmd qemu-storage-daemon || die "qemu-storage-daemon not installed"
	make_tmpdir RUN
	TMPDIR=/dev/shm make_tmpdir SHM
	DISK=$SHM/disk.img
	truncate -s 64M "$DISK"
	vrio_addrs "$RUN"
	if [[ -n ${VRIO_SELDOM:-} ]]; then
		SELDOM=$VRIO_SELDOM BUILD=$build
		seldom
		return
	fi
	TOPO=$RUN/topology.yaml
	write_topo iops 2000
	vrio_start "$RUN" "$TOPO" "$RUN/vrio.sock"
	log "${SECS}s runs, $ROUNDS rounds, QD 32; the first second (the burst) left out"

	printf '%-12s %-5s %10s %12s %12s %10s %10s\n' limit system "worst 1s" "median 100ms" \
		"worst 100ms" "run" "CPU us/IO"
	for c in "${CASES[@]}"; do
		read -r kind limit bs <<<"$c"
		rate=$limit
		[[ $kind == bps ]] && rate=$((limit / bs))
		vrio_limit "$kind" "$limit"
		qsd_start "$kind" "$limit"
		: >"$RUN/vrio.res"
		: >"$RUN/qsd.res"
		for ((r = 0; r < ROUNDS; r++)); do
			one "$RUN/vrio.sock" "$rate" "$bs" "$VRIO_IO_PID" "$VRIO_HV_PID" >>"$RUN/vrio.res"
			one "$RUN/qsd.sock" "$rate" "$bs" "$QSD_PID" >>"$RUN/qsd.res"
		done
		qsd_stop
		for sys in vrio qsd; do
			printf '%-12s %-5s %10s %12s %12s %10s %10s\n' "$kind $limit" "$sys" \
				"$(pct 1 "$RUN/$sys.res")" "$(pct 2 "$RUN/$sys.res")" \
				"$(pct 3 "$RUN/$sys.res")" "$(pct 4 "$RUN/$sys.res")" \
				"$(awk '{ print $5 }' "$RUN/$sys.res" | median)"
		done
	done
	vrio_down
}

lib_traps
main "$@"
