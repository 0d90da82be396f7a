#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# stages.sh BUILD_DIR [SECONDS] [ROUNDS]: what each disk interposition
# stage costs. One io-server with one reactor (so a stage's cost is the
# reactor's), over TCP on loopback, serves RAM disks that differ only in
# their chain:
#
#   none      no stage
#   throttle  throttle: {iops: 50000000, bps: 1T}: the buckets are charged
#             and checked on every request but never hold one back, so
#             what shows is the stage's own cost
#   crypt     crypt: aes-xts-plain64 with a 64-byte key file (mode 0400)
#   mirror    mirror: {ram: ...}: each write also to a second RAM disk
#
# Each round runs every disk in turn: 4 KiB random writes at QD 32 (IOPS
# and the io-server's CPU microseconds per I/O), then 128 KiB sequential
# writes at QD 32 (MiB/s). Prints medians of ROUNDS, and the median of
# each round's ratio to `none` in that round (every other round runs the
# disks in reverse order); then each stage's own time per request
# (vrio_ioserver_stage_seconds_total over its requests) against the plain
# disk's CPU per I/O, and for crypt its throughput on one core.
# VRIO_STAGES="throttle ..." runs only those.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-3}
ROUNDS=${3:-5}
STAGES=${VRIO_STAGES:-throttle crypt mirror}

# chain NAME: the interpose list of disk NAME.
chain() {
	case $1 in
	none) ;;
	throttle) echo "      - throttle: {iops: 50000000, bps: 1T}" ;;
	crypt) echo "      - crypt: {cipher: aes-xts-plain64, key_file: $RUN/xts.key}" ;;
	mirror) echo "      - mirror: {ram: 256M}" ;;
	esac
}

# write_topo FILE NAME...: one reactor, a RAM disk per NAME.
write_topo() {
	local file=$1 n
	shift
	cat >"$file" <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    control: $VRIO_HV_CTL
devices:
EOF
	for n in "$@"; do
		cat >>"$file" <<EOF
  - name: $n
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/$n.sock
    backend: {ram: 256M}
EOF
		if [[ $n != none ]]; then
			printf '    interpose:\n%s\n' "$(chain "$n")" >>"$file"
		fi
	done
}

# run NAME RW BS: one run on disk NAME; appends "iops mib_s cpu_us_per_io"
# to $RUN/NAME.RW.
run() {
	local t0 t1 out
	t0=$(cpu_ticks "$VRIO_IO_PID")
	out=$("$BENCH" --socket "$RUN/$1.sock" --rw "$2" --bs "$3" --iodepth 32 \
		--runtime "$SECS" --json --quiet) || die "$1 $2: vrio-bench failed"
	t1=$(cpu_ticks "$VRIO_IO_PID")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" >>"$RUN/$1.$2" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r["errors"]:
    sys.exit("errors")
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f'{r["iops"]:.0f} {r["mib_s"]:.1f} {cpu * 1e6 / max(r["ops"], 1):.2f}')
PY
}

main() {
	local build n i have=() socks=() order=()
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	need_cmd python3
	make_tmpdir RUN
	vrio_addrs "$RUN"
	head -c 64 /dev/urandom >"$RUN/xts.key"
	chmod 0400 "$RUN/xts.key"
	have=(none $STAGES)
	write_topo "$RUN/topology.yaml" "${have[@]}"
	for n in "${have[@]}"; do socks+=("$RUN/$n.sock"); done
	vrio_start "$RUN" "$RUN/topology.yaml" "${socks[@]}"
	log "${SECS}s runs, $ROUNDS rounds, one reactor, RAM disks: ${have[*]}"

	for ((i = 0; i < ROUNDS; i++)); do
		# Every other round in reverse, so no disk always runs first.
		order=("${have[@]}")
		((i % 2 == 0)) || order=($(printf '%s\n' "${have[@]}" | tac))
		for n in "${order[@]}"; do
			run "$n" randwrite 4096
			run "$n" write 131072
		done
	done

	printf '%-9s %10s %7s %10s   %10s %7s\n' stage "4K IOPS" ratio "CPU us/IO" "128K MiB/s" ratio
	for n in "${have[@]}"; do
		printf '%-9s %10s %7s %10s   %10s %7s\n' "$n" "$(median_col 1 "$RUN/$n.randwrite")" \
			"$(median_ratio 1 "$RUN/$n.randwrite" "$RUN/none.randwrite")" \
			"$(median_col 3 "$RUN/$n.randwrite")" "$(median_col 2 "$RUN/$n.write")" \
			"$(median_ratio 2 "$RUN/$n.write" "$RUN/none.write")"
	done
	# Each stage's own code (its request and completion calls, timed one
	# call in 64): per request, and against the plain disk's CPU per I/O.
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || die "metrics"
	python3 - "$RUN/io.metrics" "$(median_col 3 "$RUN/none.randwrite")" <<'PY'
import re, sys
v = {}
for line in open(sys.argv[1]):
    m = re.match(r'vrio_ioserver_stage_(requests|bytes|seconds)_total\{device="(\w+)",stage="\w+"\} (\S+)', line)
    if m:
        v.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
base = float(sys.argv[2]) * 1000
for name, s in v.items():
    if not s.get("requests") or not s.get("seconds"):
        continue
    ns = s["seconds"] / s["requests"] * 1e9
    line = "%s: %.0f ns a request in its own code, %.1f%% of the plain disk's %.0f ns CPU per I/O" % (
        name, ns, 100 * ns / base, base)
    if name == "crypt":
        line += "; %.2f GiB/s on one core (%.1f GiB in %.2f s)" % (
            s["bytes"] / s["seconds"] / 2**30, s["bytes"] / 2**30, s["seconds"])
    print(line)
PY
	vrio_down
}

lib_traps
main "$@"
