#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# crypt.sh BUILD_DIR [SECONDS] [ROUNDS]: what the crypt stage costs, and
# how fast it encrypts on one core. One io-server with one reactor, over
# TCP on loopback, serves three 256 MiB RAM disks that differ only in
# their chain:
#
#   plain   no stage
#   c512    crypt: aes-xts-plain64, 512-byte sectors (dm-crypt's default)
#   c4096   crypt: sector_size 4096, iv_large_sectors
#
# Each round runs every disk in turn at QD 32: 4 KiB and 64 KiB random
# writes and random reads (writes are encrypted on the way in, reads
# decrypted on the way back). It prints the medians of ROUNDS: IOPS, MiB/s,
# the io-server's CPU microseconds per I/O, and the median of each round's
# IOPS ratio to `plain` in that round; then each crypt stage's own
# throughput, bytes through it over the time spent in its code
# (vrio_ioserver_stage_seconds_total), which is what one core does, and
# for comparison OpenSSL's raw AES-256-XTS on one core (openssl speed) on
# 512- and 4096-byte buffers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-3}
ROUNDS=${3:-3}
DISKS=(plain c512 c4096)
LOADS=("randwrite 4096" "randread 4096" "randwrite 65536" "randread 65536")

chain() {
	case $1 in
	c512) echo "      - crypt: {cipher: aes-xts-plain64, key_file: $RUN/xts.key}" ;;
	c4096) echo "      - crypt: {cipher: aes-xts-plain64, key_file: $RUN/xts.key, sector_size: 4096, iv_large_sectors: true}" ;;
	esac
}

write_topo() {
	local n
	cat >"$1" <<EOF
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
	for n in "${DISKS[@]}"; do
		cat >>"$1" <<EOF
  - name: $n
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/$n.sock
    backend: {ram: 256M}
EOF
		[[ $n == plain ]] || printf '    interpose:\n%s\n' "$(chain "$n")" >>"$1"
	done
}

# run DISK RW BS: appends "iops mib_s cpu_us_per_io" to $RUN/DISK.RW.BS.
run() {
	local t0 t1 out
	t0=$(cpu_ticks "$VRIO_IO_PID")
	out=$("$BENCH" --socket "$RUN/$1.sock" --rw "$2" --bs "$3" --iodepth 32 \
		--runtime "$SECS" --json --quiet) || die "$1 $2 $3: vrio-bench failed"
	t1=$(cpu_ticks "$VRIO_IO_PID")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" >>"$RUN/$1.$2.$3" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r["errors"]:
    sys.exit("errors")
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f'{r["iops"]:.0f} {r["mib_s"]:.1f} {cpu * 1e6 / max(r["ops"], 1):.2f}')
PY
}

# openssl_xts BYTES: OpenSSL's aes-256-xts on one core, GiB/s.
openssl_xts() {
	openssl speed -evp aes-256-xts -seconds 2 -bytes "$1" 2>/dev/null |
		awk '/^AES-256-XTS/ { v = $2; sub(/k$/, "", v); printf "%.2f", v * 1000 / 2^30 }'
}

main() {
	local build n r i f socks=()
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	need_cmd python3
	make_tmpdir RUN
	vrio_addrs "$RUN"
	(umask 077 && head -c 64 /dev/urandom >"$RUN/xts.key")
	write_topo "$RUN/topology.yaml"
	for n in "${DISKS[@]}"; do socks+=("$RUN/$n.sock"); done
	vrio_start "$RUN" "$RUN/topology.yaml" "${socks[@]}"
	log "${SECS}s runs at QD 32, $ROUNDS rounds, one reactor, RAM disks: ${DISKS[*]}"

	for ((i = 0; i < ROUNDS; i++)); do
		for r in "${LOADS[@]}"; do
			for n in "${DISKS[@]}"; do
				# shellcheck disable=SC2086 # "RW BS"
				run "$n" $r
			done
		done
	done

	printf '%-6s %-16s %9s %9s %10s %7s\n' disk run IOPS MiB/s "CPU us/IO" "ratio"
	for r in "${LOADS[@]}"; do
		for n in "${DISKS[@]}"; do
			f=$RUN/$n.${r/ /.}
			printf '%-6s %-16s %9s %9s %10s %7s\n' "$n" "$r" "$(median_col 1 "$f")" \
				"$(median_col 2 "$f")" "$(median_col 3 "$f")" \
				"$(median_ratio 1 "$f" "$RUN/plain.${r/ /.}")"
		done
	done
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || die "metrics"
	for n in c512 c4096; do
		python3 - "$RUN/io.metrics" "$n" <<'PY'
import re, sys
v = {}
for line in open(sys.argv[1]):
    m = re.match(r'vrio_ioserver_stage_(bytes|seconds)_total\{device="%s",stage="crypt"\} (\S+)'
                 % sys.argv[2], line)
    if m:
        v[m.group(1)] = float(m.group(2))
print("%-6s stage's own code: %.2f GiB/s on one core (%.1f GiB in %.2f s)" %
      (sys.argv[2], v["bytes"] / v["seconds"] / 2**30, v["bytes"] / 2**30, v["seconds"]))
PY
	done
	if have_cmd openssl; then
		printf 'openssl speed -evp aes-256-xts, one core: %s GiB/s on 512-byte buffers, %s GiB/s on 4096\n' \
			"$(openssl_xts 512)" "$(openssl_xts 4096)"
	fi
	vrio_down
}

lib_traps
main "$@"
