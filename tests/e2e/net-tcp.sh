#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# net-tcp.sh BUILD_DIR: TCP throughput between two QEMU TCG guests on vrio
# virtio-net ports, with the device's offloads on and off. The rack of
# net-trunk (net-rack.sh: an io node and two compute nodes in network
# namespaces), io0 and io1 both on the io node, one network:
#
#   guest A  host0, io0, lan   10.77.0.1   guest-tcp server (port 5001)
#   guest B  host1, io0, lan   10.77.0.2   client, case "one": one io-server
#   guest C  host1, io1, lan   10.77.0.3   client, case "trunk": every frame
#                                          crosses the trunk io1 -> io0
#
# Each run boots a guest pair with offloads "on" (QEMU's virtio-net-pci
# defaults: whatever vrio's device offers), "off" (QEMU told to offer no
# checksum, TSO, ECN or UFO feature) or "mixed" (the sender on, the
# receiver off: what the sender hands the device whole must reach the
# receiver in wire-sized, checksummed frames). The client streams
# for SECS seconds and guest-tcp's server checks every byte (a pattern of
# the offset); the test passes when each run's data arrives intact, the
# server counted what the client sent, and each guest negotiated the
# device's checksum, TSO and ECN features (CSUM, GUEST_CSUM, HOST_TSO4/6,
# GUEST_TSO4/6, HOST_ECN) when its offloads are on and none of them when
# off.
# Throughput and retransmits are printed, not asserted.
#
# Environment: VRIO_TCP_SECS (5), VRIO_TCP_CONNS (1), VRIO_TCP_ROUNDS (1;
# more gives medians and per-round on/off ratios: tests/bench/net-tcp.sh),
# VRIO_TCP_RUNS, the CASE:OFFLOADS runs of a round ("one:on one:off
# one:mixed trunk:on trunk:off"). Results in RUN/tcp.results, one line a
# run: "round case offloads client_mbps server_mbps retrans".
#
# Exits 77 (SKIP) without root, network namespaces, QEMU or the guest kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/rack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/net-rack.sh"

SECS=${VRIO_TCP_SECS:-5}
CONNS=${VRIO_TCP_CONNS:-1}
ROUNDS=${VRIO_TCP_ROUNDS:-1}
RUNS=${VRIO_TCP_RUNS:-one:on one:off one:mixed trunk:on trunk:off}
# net-rack.sh's OFF_OPTS, and no GUEST_ECN or UFO offered either.
OFF_OPTS+=,guest_ecn=off,host_ufo=off,guest_ufo=off

write_topology() {
	rack_topology trunk
	# shellcheck disable=SC2153 # RUN is rack_prepare's
	cat >>"$RUN/topology.yaml" <<EOT
  - {name: vm-a-net, type: net, host: host0, io_server: io0, socket: $RUN/a.sock, mac: "52:54:00:77:00:01", network: lan}
  - {name: vm-b-net, type: net, host: host1, io_server: io0, socket: $RUN/b.sock, mac: "52:54:00:77:00:02", network: lan}
  - {name: vm-c-net, type: net, host: host1, io_server: io1, socket: $RUN/c.sock, mac: "52:54:00:77:00:03", network: lan}
networks:
  - name: lan
EOT
}

# one_run ROUND CASE OFFLOADS: guest A serves, the case's client sends;
# appends a line to RUN/tcp.results.
one_run() {
	local round=$1 kase=$2 offl=$3 client mac ip rc=0 line sline sent got m g a_opts c_opts
	local tag=$kase-$offl-$round
	case $kase in
	one) client=b mac=52:54:00:77:00:02 ip=10.77.0.2 ;;
	trunk) client=c mac=52:54:00:77:00:03 ip=10.77.0.3 ;;
	*) die "unknown case $kase" ;;
	esac
	# The device properties of the receiver (A) and of the sender.
	case $offl in
	on) a_opts='' c_opts='' ;;
	off) a_opts=$OFF_OPTS c_opts=$OFF_OPTS ;;
	mixed) a_opts=$OFF_OPTS c_opts= ;;
	*) die "unknown offloads $offl" ;;
	esac
	# shellcheck disable=SC2034 # net-rack.sh's guest adds to it
	PIDS=()
	NET_OPTS=$a_opts guest "a-$tag" "${HV_NS[0]}" "$RUN/a.sock" 52:54:00:77:00:01 tcp-server \
		ip=10.77.0.1/24 peer="$ip" port=5001 linger=1
	NET_OPTS=$c_opts guest "$client-$tag" "${HV_NS[1]}" "$RUN/$client.sock" "$mac" tcp-client "ip=$ip/24" \
		peer=10.77.0.1 port=5001 "secs=$SECS" "conns=$CONNS" linger=1
	wait_guests || rc=1
	((rc == 0)) || {
		cat "$RUN/results-a-$tag" "$RUN/results-$client-$tag" >&2 || true
		fail "$kase, offloads $offl: a guest failed (consoles in $RUN)"
	}
	line=$(result_of "$client-$tag" tcp-client)
	sline=$(result_of "a-$tag" tcp-server)
	[[ $line == *' ok' && $sline == *' ok' ]] ||
		fail "$kase, offloads $offl: client '$line', server '$sline'"
	sent=$(result_field "$line" bytes)
	got=$(result_field "$sline" bytes)
	((sent > 0 && sent == got)) || fail "$kase, offloads $offl: sent $sent bytes, received $got"
	FEAT_A=$(result_field "$(result_of "a-$tag" net-features)" features)
	FEAT_C=$(result_field "$(result_of "$client-$tag" net-features)" features)
	check_offloads A "$FEAT_A" "$([[ -z $a_opts ]] && echo on || echo off)"
	check_offloads "$client" "$FEAT_C" "$([[ -z $c_opts ]] && echo on || echo off)"
	m=$(result_field "$line" mbps)
	g=$(result_field "$sline" mbps)
	echo "$round $kase $offl $m $g $(result_field "$line" retrans)" >>"$RUN/tcp.results"
	log "round $round, $kase io-server(s), offloads $offl: $m Mbit/s ($sent bytes in" \
		"$(result_field "$line" secs) s, checked by the receiver), $(result_field "$line" retrans) retransmits"
	log "  features: A $(feature_names "$FEAT_A")"
	log "  features: $client $(feature_names "$FEAT_C")"
	echo "$kase $offl $FEAT_A $FEAT_C" >>"$RUN/tcp.features"
}

summary() {
	local run kase offl f ratios
	for run in $RUNS; do
		kase=${run%%:*} offl=${run#*:}
		f=$RUN/tcp.$kase.$offl
		awk -v k="$kase" -v o="$offl" '$2 == k && $3 == o' "$RUN/tcp.results" >"$f"
		echo "net-tcp: $kase $offl: median $(median_col 4 "$f") Mbit/s over $(wc -l <"$f")" \
			"runs ($(cut -d' ' -f4 "$f" | tr '\n' ' ' | sed 's/ $//'))," \
			"retransmits $(cut -d' ' -f6 "$f" | tr '\n' ' ' | sed 's/ $//')"
	done
	for kase in one trunk; do
		[[ " $RUNS " == *" $kase:on "* && " $RUNS " == *" $kase:off "* ]] || continue
		ratios=$(paste -d' ' "$RUN/tcp.$kase.on" "$RUN/tcp.$kase.off" |
			awk '{ printf "%.2f ", $4 / $10 }')
		echo "net-tcp: $kase on/off per round: $ratios(median $(median_ratio 4 \
			"$RUN/tcp.$kase.on" "$RUN/tcp.$kase.off"))"
	done
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local r run i m f
	[[ $SECS =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
		die "VRIO_TCP_SECS, VRIO_TCP_CONNS and VRIO_TCP_ROUNDS are positive integers"
	rack_prepare "$1"
	write_topology
	start_trunk_rack
	wait_until 20 trunk_up || fail "the trunk io0 -> io1 did not come up"

	: >"$RUN/tcp.results"
	for ((r = 1; r <= ROUNDS; r++)); do
		for run in $RUNS; do
			[[ $run =~ ^(one|trunk):(on|off|mixed)$ ]] || die "VRIO_TCP_RUNS: bad run $run"
			one_run "$r" "${run%%:*}" "${run#*:}"
		done
	done
	summary

	for i in 0 1; do
		io_metrics "$i" "$RUN/io$i.metrics" || fail "no io$i metrics"
		hv_metrics "$i" "$RUN/host$i.metrics" ||
			fail "no host$i metrics"
	done
	# Where the retransmitted segments were lost, as far as vrio counts.
	for i in io0 io1 host0 host1; do
		grep -E '^vrio_[a-z]+_(net|switch|trunk)_drops_total\{' "$RUN/$i.metrics" |
			awk -v d="$i" '$2 > 0 { print "net-tcp: drops on " d ": " $0 }'
	done
	if [[ " $RUNS " == *" trunk:"* ]]; then
		# Each trunk run carries at least the client's SECS of data.
		m=$(metric_sum 'vrio_ioserver_trunk_bytes_total{peer="io1",direction="in"}' <"$RUN/io0.metrics")
		((m > 1000000)) || fail "io0 counted only $m bytes in from io1: the trunk case did not cross it"
		f=$(metric_sum 'vrio_ioserver_trunk_frames_total{peer="io1",direction="in"}' <"$RUN/io0.metrics")
		echo "net-tcp: trunk io1 -> io0 over all trunk runs: $f frames, $m bytes," \
			"$((m / (f > 0 ? f : 1))) bytes a frame"
	fi
	stop_rack
	echo "PASS: e2e/net-tcp"
}

lib_traps
trap rack_netns_cleanup EXIT
main "$@"
