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
