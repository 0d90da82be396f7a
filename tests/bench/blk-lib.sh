# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# What the blk benchmarks share: one measured run of vrio-bench, the report
# of many, and qemu-storage-daemon to compare with. Source after
# scripts/lib.sh; set BENCH (vrio-bench) and SECS (seconds a run).
# VRIO_BENCH_OPTS adds options to every measured run (such as
# "--spin-us 0": a guest that sleeps for an interrupt at once).
#
# qemu-storage-daemon's configuration is one of:
#
#   strong   its strongest for page-cached 4 KiB random reads on this
#            machine: the file driver with aio=io_uring, the export served
#            from an iothread (QSD_STRONG_IOTHREAD: more of its options, such
#            as poll-max-ns=0; by default QEMU's adaptive polling, up to
#            32768 ns). tests/bench/qsd-tune.sh compares it with the others
#            and with other poll settings. On the shared 2-core VM
#            (2026-12-07, `qsd-tune.sh 3 5`), against it, round by round:
#            io_uring in the main loop 0.87x IOPS at QD 1 (1.08x at QD 32,
#            with a 1.10x p50), the iothread with poll-max-ns=0 0.94x
#            (1.02x), with poll-max-ns=1000000 0.98x (1.03x, 1.21x p50);
#            aio=threads 0.44x (0.65x). At QD 32 the io_uring variants are
#            within the noise of each other; at QD 1 this one is ahead.
#   uring    aio=io_uring in the main loop, no iothread.
#   default  what a user gets without options: aio=threads in the main loop.

QSD_STRONG_IOTHREAD=${QSD_STRONG_IOTHREAD:-}

# qsd_config_text CONFIG: one line saying what CONFIG runs, for the tables.
qsd_config_text() {
	case $1 in
	strong) echo "file aio=io_uring, iothread ${QSD_STRONG_IOTHREAD:-poll-max-ns default (32768)}" ;;
	uring) echo "file aio=io_uring, main loop" ;;
	default) echo "file aio=threads (the default), main loop" ;;
	*) die "unknown qsd configuration '$1' (strong, uring or default)" ;;
	esac
}

# qsd_start VAR_PID SOCKET FILE CONFIG LOG: exports FILE over vhost-user-blk
# on SOCKET (one queue, writable) in CONFIG, waits for the socket, stores
# the pid in VAR_PID (tracked for lib_cleanup).
qsd_start() {
	local -n _qsd_pid_out=$1
	local sock=$2 file=$3 config=$4 logfile=$5 aio iothread=()
	local export="type=vhost-user-blk,id=e0,addr.type=unix,addr.path=$sock,node-name=d0"
	export+=",writable=on,num-queues=1"
	qsd_config_text "$config" >/dev/null
	case $config in
	strong)
		aio=io_uring
		iothread=(--object "iothread,id=it0${QSD_STRONG_IOTHREAD:+,$QSD_STRONG_IOTHREAD}")
		export+=",iothread=it0"
		;;
	uring)
		aio=io_uring
		;;
	default)
		aio=threads
		;;
	esac
	rm -f "$sock"
	qemu-storage-daemon "${iothread[@]}" \
		--blockdev "driver=file,node-name=f0,filename=$file,aio=$aio" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--export "$export" >"$logfile" 2>&1 &
	_qsd_pid_out=$!
	track_pid "$_qsd_pid_out" "qemu-storage-daemon ($config)"
	wait_for_socket "$sock" 20 "$_qsd_pid_out" || {
		cat "$logfile" >&2
		die "qemu-storage-daemon ($config) did not start"
	}
}

# reactor_busy HOST:PORT: the io-server's reactors' busy seconds (turns that
# found work, not spinning or sleep), summed.
reactor_busy() {
	http_get "$1" /metrics |
		awk '$1 ~ /^vrio_ioserver_reactor_busy_seconds_total[{ ]/ { s += $2 }
			END { printf "%.6f\n", s }'
}

# blk_run OUT SOCKET QD METRICS ROLE=PID...: 4 KiB random reads over the
# first 64 MiB at queue depth QD for SECS, and appends to OUT one JSON line:
# the bench's figures, the CPU seconds of each daemon (utime + stime of PID,
# named ROLE) over the run, with METRICS (an io-server's HOST:PORT, or "")
# its reactors' busy seconds, and with METRICS "IO_HOST:PORT,HV_HOST:PORT"
# (local-hv's too) the breakdown (vrio-bench --breakdown, as "hops").
blk_run() {
	local out=$1 sock=$2 qd=$3 metrics=$4 arg res b0=0 b1=0
	local -a roles=() pids=() t0=() t1=() bd=()
	shift 4
	for arg in "$@"; do
		roles+=("${arg%%=*}")
		pids+=("${arg#*=}")
	done
	if [[ $metrics == *,* ]]; then
		bd=(--breakdown --metrics "$metrics")
		metrics=${metrics%%,*}
	fi
	[[ -z $metrics ]] || b0=$(reactor_busy "$metrics") || die "no metrics on $metrics"
	for arg in "${pids[@]}"; do t0+=("$(cpu_ticks "$arg")"); done
	# shellcheck disable=SC2086 # options, split
	res=$("$BENCH" --socket "$sock" --rw randread --bs 4096 --iodepth "$qd" \
		--runtime "$SECS" --size 64M --json --quiet "${bd[@]}" ${VRIO_BENCH_OPTS:-}) ||
		die "vrio-bench on $sock failed"
	for arg in "${pids[@]}"; do t1+=("$(cpu_ticks "$arg")"); done
	[[ -z $metrics ]] || b1=$(reactor_busy "$metrics") || die "no metrics on $metrics"
	python3 - "$res" "$(getconf CLK_TCK)" "$b0" "$b1" "${roles[*]}" "${t0[*]}" "${t1[*]}" \
		>>"$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
hz, b0, b1 = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
roles, t0, t1 = (a.split() for a in sys.argv[5:8])
print(json.dumps({
    "ops": r["ops"], "secs": r["elapsed_s"], "iops": r["iops"],
    "p50": r["lat_us"]["p50"], "p99": r["lat_us"]["p99"],
    "bench_cpu": r["cpu_user_s"] + r["cpu_sys_s"],
    "cpu": {k: (int(b) - int(a)) / hz for k, a, b in zip(roles, t0, t1)},
    "busy": b1 - b0, "lat_mean": r["lat_us"]["mean"],
    "hops": r.get("breakdown", {}),
}))
PY
}

# blk_idle SECS ROLE=PID...: each daemon's CPU over SECS with no I/O, in
# percent of a core.
blk_idle() {
	local secs=$1 arg line="at rest over $1 s, % of a core:"
	local -a t0=()
	shift
	for arg in "$@"; do t0+=("$(cpu_ticks "${arg#*=}")"); done
	sleep "$secs"
	local i=0
	for arg in "$@"; do
		line+=$(awk -v a="${t0[$i]}" -v b="$(cpu_ticks "${arg#*=}")" -v hz="$(getconf CLK_TCK)" \
			-v s="$secs" -v n="${arg%%=*}" 'BEGIN { printf "  %s %.2f", n, 100 * (b - a) / hz / s }')
		i=$((i + 1))
	done
	printf '%s\n' "$line"
}

# blk_report DIR QDS BASES SYSTEM...: the table of DIR/SYSTEM.QD (blk_run's
# lines), medians over the rounds, then each system's ratios to each of
# BASES (medians of ratios taken round by round: the rounds ran side by
# side).
# CPU per I/O is each daemon's CPU time (utime + stime, all threads) over
# the requests the bench completed. IOPS per io-server core, two ways:
# "cpu", requests over the io-server's CPU seconds (a core it keeps busy,
# spinning included: the cost); "busy", requests over its reactors' busy
# seconds (vrio_ioserver_reactor_busy_seconds_total: wall time of turns
# that found work, which on a shared machine includes time the reactor was
# preempted or had yielded, so it reads lower).
blk_report() {
	local dir=$1 qds=$2 bases=$3
	shift 3
	python3 - "$dir" "$qds" "$bases" "$@" <<'PY'
import json, os, statistics, sys
d, qds, bases, systems = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
roles = ["io-server", "local-hv", "qsd"]
def runs(s, qd):
    p = f"{d}/{s}.{qd}"
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def us(run, role):
    c = run["cpu"].get(role)
    return None if c is None else 1e6 * c / max(run["ops"], 1)
def total(run):
    return 1e6 * sum(run["cpu"].values()) / max(run["ops"], 1)
def fmt(x, spec):
    return "-" if x is None else format(x, spec)
print(f'{"system":<12} {"qd":>3} {"IOPS":>9} {"p50_us":>7} {"p99_us":>7} '
      + " ".join(f"{r:>9}" for r in roles)
      + f' {"daemons":>8} {"IOPS/core":>10} {"IOPS/core":>10}')
print(f'{"":<12} {"":>3} {"":>9} {"":>7} {"":>7} '
      + " ".join(f"{'us/IO':>9}" for r in roles)
      + f' {"us/IO":>8} {"cpu":>10} {"busy":>10}')
for qd in qds:
    for s in systems:
        rs = runs(s, qd)
        if not rs:
            continue
        busy = med([r["ops"] / r["busy"] if r["busy"] > 0 else None for r in rs])
        cpu = med([r["ops"] / r["cpu"]["io-server"] if r["cpu"].get("io-server") else None
                   for r in rs])
        print(f'{s:<12} {qd:>3} {med([r["iops"] for r in rs]):9.0f} '
              f'{med([r["p50"] for r in rs]):7.1f} {med([r["p99"] for r in rs]):7.1f} '
              + " ".join(f'{fmt(med([us(r, role) for r in rs]), ".2f"):>9}' for role in roles)
              + f' {med([total(r) for r in rs]):8.2f} {fmt(cpu, ",.0f"):>10} {fmt(busy, ",.0f"):>10}')
for base in bases:
    if not any(runs(base, qd) for qd in qds):
        continue
    print(f"\nratios to {base}, round by round, medians (IOPS: higher is better; p50 and CPU per I/O: lower is):")
    for qd in qds:
        b = runs(base, qd)
        for s in systems:
            rs = runs(s, qd)
            if s == base or not rs or not b:
                continue
            n = min(len(rs), len(b))
            iops = med([rs[i]["iops"] / b[i]["iops"] for i in range(n)])
            p50 = med([rs[i]["p50"] / b[i]["p50"] for i in range(n)])
            cpu = med([total(rs[i]) / total(b[i]) for i in range(n)])
            # The thin compute node: local-hv against a whole local daemon.
            hv = med([us(rs[i], "local-hv") / total(b[i])
                      if "local-hv" in rs[i]["cpu"] and "qsd" in b[i]["cpu"] else None
                      for i in range(n)])
            print(f'{s:<12} qd {qd:>2}: IOPS {iops:.2f}x  p50 {p50:.2f}x  daemons CPU/IO {cpu:.2f}x'
                  + (f'  local-hv CPU/IO over {base}\'s {hv:.2f}x' if hv is not None else ""))
            # Two io-servers: its own CPU per I/O and IOPS per busy core,
            # each round's ratio listed.
            if all("io-server" in r["cpu"] for r in rs[:n] + b[:n]):
                io = [us(rs[i], "io-server") / us(b[i], "io-server") for i in range(n)]
                busy = [(rs[i]["ops"] / rs[i]["busy"]) / (b[i]["ops"] / b[i]["busy"])
                        for i in range(n) if rs[i]["busy"] > 0 and b[i]["busy"] > 0]
                print(f'{"":<12}        io-server CPU/IO {med(io):.2f}x ('
                      + " ".join(f"{x:.2f}" for x in io) + ')'
                      + (f'  IOPS/busy core {med(busy):.2f}x (' + " ".join(f"{x:.2f}" for x in busy)
                         + ')' if busy else ""))
            # Two local-hvs (an A/B of local-hv): its own CPU per I/O.
            if all("local-hv" in r["cpu"] for r in rs[:n] + b[:n]):
                hvs = [us(rs[i], "local-hv") / us(b[i], "local-hv") for i in range(n)]
                print(f'{"":<12}        local-hv CPU/IO {med(hvs):.2f}x ('
                      + " ".join(f"{x:.2f}" for x in hvs) + ')')
# The breakdown (vrio-bench --breakdown computes it: tools/bench/breakdown.h):
# where a request's time goes, medians over the rounds.
hops = [("guest", None), ("hv submit", "hv_submit"), ("wire", None),
        ("io queue", "io_queue"), ("io backend", "io_backend"),
        ("io respond", "io_respond"), ("hv complete", "hv_complete")]
def hop(run, key, f="mean"):
    h = run.get("hops", {}).get(key)
    return None if h is None else h[f]
def derived(run, name):
    return run.get("hops", {}).get(name)
header = False
for qd in qds:
    for s in systems:
        rs = [r for r in runs(s, qd) if r.get("hops", {}).get("remote")]
        if not rs:
            continue
        if not header:
            print("\nbreakdown, us a request (mean, then the hop's median from its histogram), medians of rounds:")
            print(f'{"system":<12} {"qd":>3} {"":>4} {"total":>7} ' + " ".join(f"{n:>11}" for n, _ in hops)
                  + f' {"irq/IO":>7} {"hv sleep/IO":>11} {"io sleep/IO":>11}')
            header = True
        mean = [med([derived(r, n) if k is None else hop(r, k) for r in rs]) for n, k in hops]
        p50 = [None if k is None else med([hop(r, k, "p50") for r in rs]) for n, k in hops]
        print(f'{s:<12} {qd:>3} {"mean":>4} {med([r["lat_mean"] for r in rs]):7.1f} '
              + " ".join(f'{fmt(x, ".1f"):>11}' for x in mean)
              + f' {fmt(med([r["hops"].get("irqs_per_io") for r in rs]), ".2f"):>7}'
              + f' {fmt(med([r["hops"].get("hv_sleeps_per_io") for r in rs]), ".2f"):>11}'
              + f' {fmt(med([r["hops"].get("io_sleeps_per_io") for r in rs]), ".2f"):>11}')
        print(f'{"":<12} {"":>3} {"p50":>4} {med([r["p50"] for r in rs]):7.1f} '
              + " ".join(f'{fmt(x, ".1f"):>11}' for x in p50))
PY
}
