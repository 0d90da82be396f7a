#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# soak.sh BUILD_DIR [SECONDS]: a soak of standby failover (default 600 s).
# Two io-servers on loopback (tcp), io0 and io1, and four blk devices on
# files, d0 and d2 served by io0 with io1 as standby, d1 and d3 the other
# way round. One vrio-bench per device runs verified random reads and
# writes for the whole soak (queue depth 8, a 4 MiB region each, so
# blocks are rewritten often), while
#   - every 20 s the io-server in turn (io0, io1, io0, ...) is killed
#     (kill -9) and started again 3 s later: its devices fail over;
#   - every 45 s local-hv is stopped, by turns with SIGTERM (its drain) and
#     kill -9, and started again. vrio-bench plays QEMU with reconnect=1
#     (--reconnect): it keeps the inflight region, reconnects to the new
#     local-hv and carries on, which sends again what was in flight.
# Each bench must end with 0 errors, 0 verify failures and one reconnect
# per restart; at the end every device's file holds what was written last
# (--check-file).
# Resident memory (VmRSS) of each daemon is measured per life from a
# comparable state to the end of that life: for local-hv from 10 s after
# its start; for an io-server from 10 s after it last began to serve more
# devices than before in that life (a restarted one idles until its peer
# fails, then takes over its devices: growing into a new load is not a
# leak), so a life is measured only while it serves what it will serve to
# its end. Prints the growth of each life measured, the mapping in
# /proc/PID/smaps that grew most, and the largest; fails if one grew by 1%
# or more over 5 s or more. Prints the failovers and the longest request.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# SOAK_KILL_EVERY=0 kills no io-server (a baseline for the memory figures).
KILL_EVERY=${SOAK_KILL_EVERY:-20}
RESTART_AFTER=3
HV_EVERY=${SOAK_HV_EVERY:-45}
WARMUP=10
NDEV=4

soak_fail() {
	local f
	for f in "$RUN"/*.log; do
		[[ $f == */bench-* ]] || show_log "$(basename "$f")" "$f"
	done
	die "$*"
}

write_topo() {
	local i io sb
	{
		echo "version: 1"
		echo "io_servers:"
		for io in io0 io1; do
			echo "  - name: $io"
			echo "    transport: tcp"
			echo "    listen: ${LISTEN[$io]}"
			echo "    control: $RUN/$io.ctl"
			echo "    cores: {min: 1, max: 1}"
		done
		echo "hosts:"
		echo "  - name: host0"
		echo "    metrics: $HV_METRICS"
		echo "    control: $RUN/host0.ctl"
		echo "devices:"
		for ((i = 0; i < NDEV; i++)); do
			if ((i % 2 == 0)); then io=io0 sb=io1; else io=io1 sb=io0; fi
			echo "  - name: d$i"
			echo "    type: blk"
			echo "    host: host0"
			echo "    io_server: $io"
			echo "    standby: $sb"
			echo "    socket: $RUN/d$i.sock"
			echo "    backend: {file: $RUN/d$i.img, size: 64M}"
		done
	} >"$TOPO"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# smaps_by_name PID: resident kB per mapping name (anonymous ones as [anon]).
smaps_by_name() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { n = NF >= 6 ? $6 : "[anon]"; next }
	     /^Rss:/ { r[n] += $2 }
	     END { for (k in r) print k, r[k] }' "/proc/$1/smaps" 2>/dev/null | sort
}

# A daemon's life: its RSS from a comparable state, then at its end.
declare -A PID BORN RSS0 IO_LOG SERVING SAMPLED NSERVED
start_io() {
	local io=$1
	NSTART=$((NSTART + 1))
	IO_LOG[$io]=$RUN/$io-$NSTART.log
	start_daemon "PID[$io]" "vrio-ioserver $io" "${IO_LOG[$io]}" \
		"$VRIO_IOSERVER_BIN" --config "$TOPO" --node "$io"
	wait_for_listen "${LISTEN[$io]}" 20 "${PID[$io]}" || soak_fail "$io is not listening"
	BORN[$io]=$SECONDS
	RSS0[$io]=
	SERVING[$io]=
	NSERVED[$io]=0
}
start_hv() {
	local i
	NSTART=$((NSTART + 1))
	HV_LOG=$RUN/localhv-$NSTART.log
	start_daemon "PID[hv]" vrio-localhv "$HV_LOG" \
		"$VRIO_LOCALHV_BIN" --config "$TOPO" --node host0
	for ((i = 0; i < NDEV; i++)); do
		wait_for_socket "$RUN/d$i.sock" 20 "${PID[hv]}" || soak_fail "no socket d$i"
	done
	BORN[hv]=$SECONDS
	RSS0[hv]=
}
# served IO: how many devices the io-server has attached now.
served() {
	{ "$VRIOCTL" --socket "$RUN/$1.ctl" --timeout 2 devices 2>/dev/null || true; } |
		awk '$3 == "attached" { n++ } END { print n + 0 }'
}
# sample NAME: the baseline, WARMUP seconds after the start, or for an
# io-server after it last took on more devices than it served before in
# this life (the baseline is dropped and taken again then).
sample() {
	local n=$1 k
	if [[ $n != hv ]]; then
		k=$(served "$n")
		if ((k > NSERVED[$n])); then
			NSERVED[$n]=$k
			SERVING[$n]=$SECONDS
			RSS0[$n]=
		fi
		[[ -n ${SERVING[$n]} ]] || return 0
	fi
	[[ -z ${RSS0[$n]} ]] || return 0
	if ((SECONDS - ${SERVING[$n]:-${BORN[$n]}} >= WARMUP)); then
		RSS0[$n]=$(rss_kb "${PID[$n]}")
		SAMPLED[$n]=$SECONDS
		smaps_by_name "${PID[$n]}" >"$RUN/smaps0-$n"
	fi
	return 0
}
# life_end NAME: records the growth over the life that ends now, and the
# mapping that grew most.
life_end() {
	local n=$1 now top
	now=$(rss_kb "${PID[$n]}")
	if [[ -n ${RSS0[$n]} ]] && ((RSS0[$n] > 0)); then
		top=$(smaps_by_name "${PID[$n]}" | join -a1 -e0 -o 0,1.2,2.2 - "$RUN/smaps0-$n" |
			awk '{ d = $2 - $3 } NR == 1 || d > best { best = d; name = $1 }
			     END { printf "%s:%+dkB", name, best }')
		awk -v n="$n" -v a="${RSS0[$n]}" -v b="$now" -v s="$((SECONDS - SAMPLED[$n]))" \
			-v d="${NSERVED[$n]:-$NDEV}" -v t="$top" \
			'BEGIN { printf "%s %d %d %d %.3f %d %s\n", n, s, a, b, (b - a) * 100 / a, d, t }' \
			>>"$RUN/rss"
	fi
}

bench_start() {
	local i
	BPIDS=()
	for ((i = 0; i < NDEV; i++)); do
		"$BENCH" --socket "$RUN/d$i.sock" --rw randrw --bs 4096 --iodepth 8 --size 4M \
			--runtime "$1" --timeout 20000 --seed "$((SEED + i))" --verify --reconnect \
			--state "$RUN/d$i.state" --json >"$RUN/bench-d$i.json" \
			2>"$RUN/bench-d$i.log" &
		BPIDS+=($!)
		track_pid "$!" "vrio-bench d$i"
	done
}

bench_wait() {
	local i rc f
	for ((i = 0; i < NDEV; i++)); do
		rc=0
		untrack_pid "${BPIDS[$i]}"
		wait "${BPIDS[$i]}" || rc=$?
		f=$RUN/bench-d$i
		((rc == 0)) || { tail -n 30 "$f.log" >&2; soak_fail "d$i: status $rc"; }
		[[ $(json "$f.json" "j['errors']") == 0 ]] || soak_fail "d$i: errors"
		[[ $(json "$f.json" "j['verify_failures']") == 0 ]] || soak_fail "d$i: verify failures"
		[[ $(json "$f.json" "j['reconnects']") == "$HV_RESTARTS" ]] ||
			soak_fail "d$i: $(json "$f.json" "j['reconnects']") reconnects for $HV_RESTARTS restarts"
		echo "$(json "$f.json" "j['ops']") $(json "$f.json" "int(j['lat_us']['max'] / 1000)")" \
			>>"$RUN/runs"
	done
}

main() {
	local build total bench_end next_kill next_hv victim=io0 restart_at="" restart_io="" i
	build=$(cd "$1" && pwd)
	total=${2:-600}
	vrio_binaries "$build" || die "build vrio first (cmake --build $build)"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	have_cmd python3 || die "python3 is needed to read vrio-bench's JSON"
	make_tmpdir RUN
	NSTART=0
	SEED=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	declare -gA LISTEN
	free_port p0
	free_port p1
	free_port p2
	LISTEN[io0]=127.0.0.1:$p0
	LISTEN[io1]=127.0.0.1:$p1
	HV_METRICS=127.0.0.1:$p2
	TOPO=$RUN/topology.yaml
	write_topo
	log "soak of $total s, seed $SEED, in $RUN"
	start_io io0
	start_io io1
	start_hv
	bench_end=$((SECONDS + total))
	next_kill=$((SECONDS + KILL_EVERY))
	next_hv=$((SECONDS + HV_EVERY))
	HV_RESTARTS=0
	: >"$RUN/runs"
	: >"$RUN/rss"
	bench_start "$total"
	while ((SECONDS < bench_end)) || [[ -n $restart_io ]]; do
		for i in io0 io1 hv; do sample "$i"; done
		if [[ -n $restart_io ]] && ((SECONDS >= restart_at)); then
			start_io "$restart_io"
			restart_io=
		elif [[ -z $restart_io ]] && ((KILL_EVERY > 0 && SECONDS >= next_kill &&
						SECONDS < bench_end - 4)); then
			life_end "$victim"
			kill -9 "${PID[$victim]}"
			wait "${PID[$victim]}" 2>/dev/null || true
			untrack_pid "${PID[$victim]}"
			log "killed $victim"
			echo "$victim" >>"$RUN/kills"
			restart_io=$victim
			restart_at=$((SECONDS + RESTART_AFTER))
			[[ $victim == io0 ]] && victim=io1 || victim=io0
			next_kill=$((SECONDS + KILL_EVERY))
		fi
		if ((HV_EVERY > 0 && SECONDS >= next_hv && SECONDS < bench_end - 10)); then
			life_end hv
			if ((HV_RESTARTS % 2 == 0)); then
				vrio_stop vrio-localhv "${PID[hv]}" "$HV_LOG" ||
					soak_fail "local-hv did not stop cleanly"
				log "stopped local-hv (SIGTERM)"
			else
				kill -9 "${PID[hv]}"
				wait "${PID[hv]}" 2>/dev/null || true
				log "killed local-hv"
			fi
			untrack_pid "${PID[hv]}"
			HV_RESTARTS=$((HV_RESTARTS + 1))
			start_hv
			next_hv=$((SECONDS + HV_EVERY))
		fi
		sleep 0.5
	done
	bench_wait
	life_end hv
	vrio_stop vrio-localhv "${PID[hv]}" "$HV_LOG" || soak_fail "local-hv did not stop cleanly"
	untrack_pid "${PID[hv]}"
	for i in io0 io1; do
		life_end "$i"
		vrio_stop "vrio-ioserver $i" "${PID[$i]}" "${IO_LOG[$i]}" || soak_fail "$i did not stop cleanly"
		untrack_pid "${PID[$i]}"
	done
	for ((i = 0; i < NDEV; i++)); do
		"$BENCH" --check-file "$RUN/d$i.img" --state "$RUN/d$i.state" ||
			soak_fail "d$i: the file does not hold what was written"
	done
	log "$NDEV benches over $((HV_RESTARTS + 1)) local-hv lives ($HV_RESTARTS reconnects each)," \
		"$(awk '{ s += $1 } END { print s }' "$RUN/runs") requests, 0 errors, 0 verify failures;" \
		"$(cat "$RUN"/localhv-*.log 2>/dev/null | grep -c 'left in flight (inflight region)' || true)" \
		"queue(s) sent again from the inflight region; $(wc -l <"$RUN/kills" 2>/dev/null || echo 0)" \
		"io-servers killed; devices moved (local-hv's logs): $(cat "$RUN"/localhv-*.log 2>/dev/null |
		grep -c 'moved from io-server' || true)"
	cut -d' ' -f2 "$RUN/runs" >"$RUN/longest"
	log "longest request of a device (ms): $(median_max "$RUN/longest")"
	log "resident memory per life, measured while it served what it served to its end (daemon, s measured, kB, kB, growth %, devices, mapping that grew most):"
	sort -k5 -n "$RUN/rss" | while read -r l; do log "  $l"; done
	awk '$2 >= 5 && $5 >= 1 { bad = 1 } END { exit bad }' "$RUN/rss" ||
		die "a daemon's resident memory grew by 1% or more over a life"
	echo "PASS: soak"
}

trap lib_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
