#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# rack.sh BUILD_DIR [HOSTS] [DEVICES] [SECONDS] [ROUNDS]: one io-server
# serving HOSTS (default 2) local-hv processes with DEVICES (default 8) RAM
# disks each, over TCP on loopback; one vrio-bench per device. Each of
# ROUNDS (default 3) rounds measures, in this order:
#
#   idle      all daemons up, no I/O, for 3 s: their CPU, in % of a core
#             (every local-hv and the io-server summed, and the io-server
#             alone).
#   equal     every device 4 KiB random reads at QD 8 for SECONDS (default
#             5): aggregate IOPS, IOPS per busy io-server core (the
#             requests over the reactors' busy seconds,
#             vrio_ioserver_reactor_busy_seconds_total), IOPS per
#             io-server CPU second, and Jain's index over the devices' IOPS
#             ((sum x)^2 / (n sum x^2); 1 is perfectly even).
#   solo      device 1 of host FAIR_HOST (env, default 0) alone at QD 1:
#             its p99 as vrio-bench sees it, and as the io-server's
#             latency histogram (arrival to response queued) bounds it.
#   beside    the same, with device 0 of host 0 at QD 128 beside it: both
#             p99s, and their ratios to solo (same round).
#
# Medians over rounds, and the per-round beside/solo ratios. CORES (env,
# default "{min: 1, max: 1}") is the io-server's cores entry.
#
# VRIO_BASE_BUILD=DIR (env): an A/B against another build (main). Each
# round then starts the daemons of both builds in turn, alternating which
# goes first, and the end prints both builds' medians and the per-round
# ratios this/base.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

HOSTS=${2:-2}
DEVS=${3:-8}
SECS=${4:-5}
ROUNDS=${5:-3}
CORES=${CORES:-"{min: 1, max: 1}"}
FAIR_HOST=${FAIR_HOST:-0}
HIST_P99="$(dirname "${BASH_SOURCE[0]}")/hist_p99.py"

write_topo() {
	local h d
	{
		cat <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: $CORES
hosts:
EOF
		for ((h = 0; h < HOSTS; h++)); do
			printf '  - name: h%d\n    control: %s/h%d.ctl\n' "$h" "$RUN" "$h"
		done
		echo "devices:"
		for ((h = 0; h < HOSTS; h++)); do
			for ((d = 0; d < DEVS; d++)); do
				cat <<EOF
  - name: h$h-d$d
    type: blk
    host: h$h
    io_server: io0
    socket: $RUN/h$h-d$d.sock
    backend: {ram: 16M}
EOF
			done
		done
	} >"$TOPO"
}

fail() {
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

# busy_s: the io-server reactors' busy seconds so far.
busy_s() {
	http_get "$VRIO_IO_METRICS" /metrics >"$RUN/metrics.txt" || fail "no metrics"
	awk '/^vrio_ioserver_reactor_busy_seconds_total/ { s += $2 } END { printf "%.6f\n", s }' \
		"$RUN/metrics.txt"
}

# scrape OUT: the io-server's exposition.
scrape() { http_get "$VRIO_IO_METRICS" /metrics >"$1" || fail "no metrics"; }

daemon_ticks() { cpu_ticks "$VRIO_IO_PID" "${HV_PIDS[@]}"; }

# bench OUT SOCKET QD [more]: one vrio-bench run, its JSON in OUT.
bench() {
	"$BENCH" --socket "$2" --rw randread --bs 4096 --iodepth "$3" --runtime "$SECS" \
		--json --quiet "${@:4}" >"$1"
}

check() {
	[[ $(json "$1" "j['errors'] == 0 and j['ops'] > 0") == True ]] || fail "$1: $(cat "$1")"
}

round() {
	local r=$1 t0 t1 b0 b1 h d i pids=() ops hz idle_all idle_io io0 io1 solo beside
	hz=$(getconf CLK_TCK)

	# idle
	t0=$(daemon_ticks)
	io0=$(cpu_ticks "$VRIO_IO_PID")
	sleep 3
	t1=$(daemon_ticks)
	io1=$(cpu_ticks "$VRIO_IO_PID")
	idle_all=$(awk -v t="$((t1 - t0))" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * t / hz / 3 }')
	idle_io=$(awk -v t="$((io1 - io0))" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * t / hz / 3 }')

	# equal
	b0=$(busy_s)
	io0=$(cpu_ticks "$VRIO_IO_PID")
	i=0
	for ((h = 0; h < HOSTS; h++)); do
		for ((d = 0; d < DEVS; d++)); do
			bench "$RUN/eq.$i.json" "$RUN/h$h-d$d.sock" 8 &
			pids+=($!)
			track_pid "$!" vrio-bench
			i=$((i + 1))
		done
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || fail "vrio-bench $i failed"
		untrack_pid "${pids[$i]}"
		check "$RUN/eq.$i.json"
	done
	b1=$(busy_s)
	io1=$(cpu_ticks "$VRIO_IO_PID")
	python3 - "$RUN" "${#pids[@]}" "$b0" "$b1" "$((io1 - io0))" "$hz" >>"$OUT/equal.txt" <<'EOF'
import json, sys
run, n, b0, b1, ticks, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
x = []
ops = 0
for i in range(n):
    j = json.load(open(f"{run}/eq.{i}.json"))
    x.append(j['ops'] / j['elapsed_s'])
    ops += j['ops']
agg = sum(x)
jain = agg * agg / (n * sum(v * v for v in x))
busy = max(b1 - b0, 1e-9)
cpu = max(ticks / hz, 1e-9)
print(f"{agg:.0f} {ops / busy:.0f} {ops / cpu:.0f} {jain:.4f} {busy:.3f} {min(x):.0f} {max(x):.0f}")
EOF

	# solo, then beside
	scrape "$RUN/m0.txt"
	bench "$RUN/solo.json" "$RUN/h$FAIR_HOST-d1.sock" 1 || fail "solo run failed"
	scrape "$RUN/m1.txt"
	check "$RUN/solo.json"
	bench "$RUN/deep.json" "$RUN/h0-d0.sock" 128 &
	d=$!
	track_pid "$d" vrio-bench
	bench "$RUN/beside.json" "$RUN/h$FAIR_HOST-d1.sock" 1 || fail "beside run failed"
	wait "$d" || fail "the QD 128 run failed"
	untrack_pid "$d"
	scrape "$RUN/m2.txt"
	check "$RUN/beside.json"
	check "$RUN/deep.json"
	solo=$(json "$RUN/solo.json" "j['lat_us']['p99']")
	beside=$(json "$RUN/beside.json" "j['lat_us']['p99']")
	s_solo=$(python3 "$HIST_P99" "$RUN/m0.txt" "$RUN/m1.txt" "h$FAIR_HOST-d1")
	s_beside=$(python3 "$HIST_P99" "$RUN/m1.txt" "$RUN/m2.txt" "h$FAIR_HOST-d1")
	echo "$solo $beside $(json "$RUN/deep.json" "round(j['iops'])") $s_solo $s_beside" \
		>>"$OUT/fair.txt"
	echo "$idle_all $idle_io" >>"$OUT/idle.txt"
	log "round $r ($LABEL): idle ${idle_all}% (io-server ${idle_io}%); equal: $(tail -n1 "$OUT/equal.txt");" \
		"QD1 p99 solo ${solo} us, beside QD128 ${beside} us; in the io-server <= ${s_solo} us," \
		"<= ${s_beside} us"
}

# up BUILD LABEL: the daemons of BUILD, results under $RUN/LABEL.
up() {
	local h pid
	vrio_binaries "$1" || skip "daemons not built in $1"
	BENCH=$1/tools/vrio-bench
	[[ -x $BENCH ]] || skip "vrio-bench not built in $1"
	LABEL=$2
	OUT=$RUN/$2
	mkdir -p "$OUT"
	VRIO_IO_LOG=$RUN/ioserver.$2.log
	start_daemon VRIO_IO_PID vrio-ioserver "$VRIO_IO_LOG" \
		"$VRIO_IOSERVER_BIN" --config "$TOPO" --node io0
	wait_for_listen "$VRIO_IO_LISTEN" 20 "$VRIO_IO_PID" || fail "io-server not listening"
	HV_PIDS=()
	for ((h = 0; h < HOSTS; h++)); do
		start_daemon pid vrio-localhv "$RUN/h$h.$2.log" \
			"$VRIO_LOCALHV_BIN" --config "$TOPO" --node "h$h"
		HV_PIDS+=("$pid")
	done
	for ((h = 0; h < HOSTS; h++)); do
		wait_for_socket "$RUN/h$h-d$((DEVS - 1)).sock" 20 "${HV_PIDS[$h]}" ||
			fail "h$h did not create its sockets"
	done
	wait_for_port "${VRIO_IO_METRICS##*:}" 10 || fail "no io-server metrics"
	sleep 1
}

down() {
	local h
	scrape "$OUT/end.txt"
	for ((h = HOSTS - 1; h >= 0; h--)); do
		vrio_stop vrio-localhv "${HV_PIDS[$h]}" "$RUN/h$h.$LABEL.log" ||
			die "h$h did not stop cleanly"
	done
	vrio_stop vrio-ioserver "$VRIO_IO_PID" "$VRIO_IO_LOG" || die "the io-server did not stop cleanly"
}

# summary LABEL: the medians of one build's rounds.
summary() {
	OUT=$RUN/$1
	echo "rack ($1): $HOSTS hosts x $DEVS RAM devices on one io-server (cores $CORES)," \
		"QD 8 4 KiB random reads, ${SECS}s, medians of $ROUNDS rounds"
	echo "  idle CPU, all daemons:        $(median_col 1 "$OUT/idle.txt") % of a core" \
		"(io-server $(median_col 2 "$OUT/idle.txt") %)"
	echo "  aggregate IOPS:               $(median_col 1 "$OUT/equal.txt")"
	echo "  IOPS per busy io-server core: $(median_col 2 "$OUT/equal.txt")" \
		"(busy core-seconds per run: $(median_col 5 "$OUT/equal.txt"))"
	echo "  IOPS per io-server CPU second: $(median_col 3 "$OUT/equal.txt")"
	echo "  Jain's index over devices:    $(median_col 4 "$OUT/equal.txt")" \
		"(per round: $(cut -d' ' -f4 "$OUT/equal.txt" | tr '\n' ' '))"
	echo "  QD 1 p99 solo / beside QD 128: $(median_col 1 "$OUT/fair.txt") us /" \
		"$(median_col 2 "$OUT/fair.txt") us, per-round ratios:" \
		"$(awk '{ printf "%.2f ", $2 / $1 }' "$OUT/fair.txt")"
	echo "  the same inside the io-server: <= $(median_col 4 "$OUT/fair.txt") us /" \
		"<= $(median_col 5 "$OUT/fair.txt") us (histogram bucket bounds), per-round ratios:" \
		"$(awk '{ printf "%.2f ", $5 / $4 }' "$OUT/fair.txt")"
	echo "  (QD 1: h$FAIR_HOST-d1, QD 128: h0-d0 at $(median_col 3 "$OUT/fair.txt") IOPS)"
	echo "  elastic cores over the last run: $(metric_sum vrio_ioserver_reactor_unparks_total <"$OUT/end.txt")" \
		"unpark(s), $(metric_sum vrio_ioserver_reactor_parks_total <"$OUT/end.txt") park(s)," \
		"$(metric_sum 'vrio_ioserver_balancer_moves_total{result="ok"}' <"$OUT/end.txt") device move(s)"
}

# ab: the per-round ratios this/base.
ab() {
	python3 - "$RUN/this" "$RUN/base" <<'EOF'
import sys
def rows(d, f):
    return [[float(v) for v in l.split()] for l in open(f"{d}/{f}") if l.strip()]
t, b = sys.argv[1], sys.argv[2]
te, be = rows(t, "equal.txt"), rows(b, "equal.txt")
tf, bf = rows(t, "fair.txt"), rows(b, "fair.txt")
def med(x):
    x = sorted(x); n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2
def line(name, r):
    print(f"  {name:30s} median {med(r):.3f}, per round: " + " ".join(f"{v:.3f}" for v in r))
print("A/B, this build / VRIO_BASE_BUILD, per round (daemons of both in the same round):")
line("aggregate IOPS", [x[0] / y[0] for x, y in zip(te, be)])
line("IOPS per busy io-server core", [x[1] / y[1] for x, y in zip(te, be)])
line("IOPS per io-server CPU second", [x[2] / y[2] for x, y in zip(te, be)])
line("Jain's index", [x[3] / y[3] for x, y in zip(te, be)])
line("QD 128 neighbour's IOPS", [x[2] / y[2] for x, y in zip(tf, bf)])
print("  QD 1 p99 beside/solo, io-server, this | base per round: " +
      " ".join(f"{x[4] / x[3]:.2f}|{y[4] / y[3]:.2f}" for x, y in zip(tf, bf)))
print("  QD 1 p99 beside/solo, vrio-bench, this | base per round: " +
      " ".join(f"{x[1] / x[0]:.2f}|{y[1] / y[0]:.2f}" for x, y in zip(tf, bf)))
EOF
}

main() {
	local build base r
	build=$(cd "$1" && pwd)
	have_cmd python3 || skip "python3 is needed to read vrio-bench --json"
	((DEVS >= 2)) || die "DEVICES must be at least 2 (the fairness pair)"
	make_tmpdir RUN
	TOPO=$RUN/topology.yaml
	vrio_addrs "$RUN"
	write_topo
	log "$HOSTS hosts x $DEVS RAM devices, cores $CORES, ${SECS}s runs, $ROUNDS rounds"

	if [[ -z ${VRIO_BASE_BUILD:-} ]]; then
		up "$build" this
		for ((r = 1; r <= ROUNDS; r++)); do
			round "$r"
		done
		down
		summary this
		return 0
	fi
	base=$(cd "$VRIO_BASE_BUILD" && pwd)
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2)); then
			up "$base" base && round "$r" && down
			up "$build" this && round "$r" && down
		else
			up "$build" this && round "$r" && down
			up "$base" base && round "$r" && down
		fi
	done
	summary this
	summary base
	ab
}

lib_traps
main "$@"
