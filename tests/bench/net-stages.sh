#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-stages.sh BUILD_DIR [SECONDS] [ROUNDS]: what each net interposition
# stage costs. One io-server with one reactor (so a stage's cost is the
# reactor's), over TCP on loopback, switches pairs of ports that differ
# only in their chains, each pair on a network of its own, all on one
# local-hv. The stage is on the sending port, so each frame meets it once:
#
#   none     no stage
#   acl      eight rules, the bench's frames matching the last (seven IPv4/
#            IPv6 address, protocol and port rules before it)
#   police   both ways at 100 GB/s: every frame is charged and checked,
#            none dropped, so what shows is the stage's cost
#   capture  every frame to a pcap file in the run's directory, with the
#            default snaplen
#
# Each round streams 64-byte frames from one port of each pair to the
# other, in turn. Prints medians over ROUNDS of packets/s, the ratio to
# `none` in the same round (runs side by side share the machine's noise)
# and the io-server's CPU nanoseconds per frame. Then what each stage adds
# to a frame on the reactor, measured in a loop over the real chain code
# (bench_ioserver_net_stages), as a share of what the io-server spends on a
# frame without stages: what the stage costs in packets/s where the reactor
# is the bottleneck, a figure the machine's noise does not blur.
# VRIO_NET_STAGES="acl ..." runs only those.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SECS=${2:-5}
ROUNDS=${3:-3}
STAGES=${VRIO_NET_STAGES:-acl police capture}

# chain NAME PORT: the interpose list of port PORT (a or b) of pair NAME.
chain() {
	case $1.$2 in
	acl.a)
		cat <<EOF
      - acl:
          default: deny
          rules:
            - {action: deny, src: 192.0.2.0/24}
            - {action: deny, dst: "2001:db8::/32"}
            - {action: allow, proto: tcp, dport: 22}
            - {action: deny, proto: udp, sport: 0-1023}
            - {action: allow, ethertype: arp}
            - {action: allow, proto: icmpv6}
            - {action: deny, dir: in, ethertype: 0x86dd}
            - {action: allow, ethertype: 0x88b6}
EOF
		;;
	police.a) echo "      - police: {in: {rate: 100G}, out: {rate: 100G}}" ;;
	capture.a) echo "      - capture: {file: $RUN/capture.pcap}" ;;
	esac
}

# write_topo FILE NAME...: one reactor, a pair of ports per NAME.
write_topo() {
	local file=$1 n p i=0
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
networks:
EOF
	for n in "$@"; do
		echo "  - name: net-$n" >>"$file"
	done
	echo "devices:" >>"$file"
	for n in "$@"; do
		i=$((i + 1))
		for p in a b; do
			cat >>"$file" <<EOF
  - name: $n-$p
    type: net
    host: host0
    io_server: io0
    socket: $RUN/$n-$p.sock
    mac: "52:54:00:00:0$i:0$p"
    network: net-$n
EOF
			if [[ -n $(chain "$n" "$p") ]]; then
				printf '    interpose:\n%s\n' "$(chain "$n" "$p")" >>"$file"
			fi
		done
	done
}

# run NAME I: one stream on pair NAME (the I-th); appends "pps cpu_ns" to
# $RUN/NAME.
run() {
	local t0 t1 out
	t0=$(cpu_ticks "$VRIO_IO_PID")
	out=$("$BENCH" --net stream --socket "$RUN/$1-a.sock" --peer-socket "$RUN/$1-b.sock" \
		--mac-a "52:54:00:00:0$2:0a" --mac-b "52:54:00:00:0$2:0b" --frame-size 64 \
		--runtime "$SECS" --quiet --json) || die "$1: vrio-bench failed: $out"
	t1=$(cpu_ticks "$VRIO_IO_PID")
	python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" >>"$RUN/$1" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r["bad"]:
    sys.exit("frames damaged: %s" % sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f'{r["pps"]:.0f} {cpu * 1e9 / max(r["received"], 1):.0f}')
PY
}

main() {
	local build n i r ns base stages have=() socks=()
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || die "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	MICRO=$build/tests/unit/io-server/bench_ioserver_net_stages
	[[ -x $MICRO ]] || die "$MICRO not built (cmocka missing?)"
	need_cmd python3
	make_tmpdir RUN
	vrio_addrs "$RUN"
	read -r -a stages <<<"$STAGES"
	have=(none "${stages[@]}")
	write_topo "$RUN/topology.yaml" "${have[@]}"
	for n in "${have[@]}"; do socks+=("$RUN/$n-a.sock" "$RUN/$n-b.sock"); done
	vrio_start "$RUN" "$RUN/topology.yaml" "${socks[@]}"
	log "${SECS}s streams of 64-byte frames, $ROUNDS rounds, one reactor: ${have[*]}"

	for ((r = 0; r < ROUNDS; r++)); do
		i=0
		for n in "${have[@]}"; do
			i=$((i + 1))
			run "$n" "$i"
		done
	done

	printf '%-9s %10s %7s %12s\n' stage "pps" ratio "CPU ns/frame"
	for n in "${have[@]}"; do
		printf '%-9s %10s %7s %12s\n' "$n" "$(median_col 1 "$RUN/$n")" \
			"$(median_ratio 1 "$RUN/$n" "$RUN/none")" "$(median_col 2 "$RUN/$n")"
	done
	vrio_down
	"$MICRO" 2000000 "$RUN" >"$RUN/micro" || die "bench_ioserver_net_stages failed"
	# The io-server's own time a frame without stages: the best round's
	# (the least idle polling counted in).
	base=$(cut -d' ' -f2 "$RUN/none" | sort -n | head -n 1)
	while read -r n ns; do
		[[ " ${have[*]} " == *" $n "* ]] || continue
		printf '%-8s +%5.1f ns a frame on the reactor: %4.1f%% of the io-server'"'"'s %s\n' \
			"$n" "$ns" "$(python3 -c "print(100 * $ns / $base)")" "$base"
	done <"$RUN/micro"
}

lib_traps
main "$@"
