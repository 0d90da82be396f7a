#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# breakdown.sh BUILD_DIR: vrio-bench --breakdown over TCP on loopback.
# With --topology it finds both daemons' metrics and the device of its
# socket: while another bench loads the other device, its breakdown counts
# exactly its own requests; with --metrics (every device summed) it counts
# more. Every hop is present and non-negative, the hops fit inside the
# bench's mean latency and the io-server's inside its total, and there is
# at most one guest interrupt per request. Then coalesce_us is turned on by
# a reload (a live change) and a guest that sleeps at once still completes
# every verified request with at most one interrupt per request.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rack.sh"

N=20000

# check_breakdown FILE OPS: the report's breakdown holds together.
check_breakdown() {
	python3 - "$1" "$2" <<'PY' || rack_fail "breakdown of $1 does not hold together"
import json, sys
r = json.load(open(sys.argv[1]))
ops, b = int(sys.argv[2]), r["breakdown"]
def need(ok, what):
    if not ok:
        sys.exit(f"{sys.argv[1]}: {what}: {json.dumps(b)}")
need(r["ops"] == ops, f"{r['ops']} requests, not {ops}")
hops = ("hv_submit", "hv_complete", "remote", "io_total", "io_queue", "io_backend", "io_respond")
for h in hops:
    need(b.get(h) and b[h]["n"] > 0, f"no {h}")
    need(b[h]["mean"] >= 0, f"{h} negative")
    need(b[h]["p50"] is None or b[h]["p50"] >= 0, f"{h} median negative")
eps = 0.5
need(abs(b["total"] - r["lat_us"]["mean"]) < 0.01, "total is not the bench's mean")
need(b["guest"] >= -eps, "local-hv's hops exceed the bench's latency")
need(b["wire"] >= -eps, "the io-server's time exceeds local-hv's round trip")
inner = b["io_queue"]["mean"] + b["io_backend"]["mean"] + b["io_respond"]["mean"]
need(inner <= b["io_total"]["mean"] + eps, "the io-server's hops exceed its total")
outer = b["hv_submit"]["mean"] + b["remote"]["mean"] + b["hv_complete"]["mean"]
need(outer <= b["total"] + eps, "the hops exceed the total")
need(0 < b["irqs_per_io"] <= 1.0, "interrupts per request out of (0, 1]")
need(b["hv_sleeps_per_io"] >= 0 and b["io_sleeps_per_io"] >= 0, "negative sleeps")
print(f'{sys.argv[1]}: total {b["total"]:.1f} us = guest {b["guest"]:.1f} + local-hv '
      f'{b["hv_submit"]["mean"] + b["hv_complete"]["mean"]:.1f} + wire {b["wire"]:.1f} + '
      f'io-server {b["io_total"]["mean"]:.1f}; {b["responses"]:.0f} responses, '
      f'{b["irqs_per_io"]:.3f} interrupts per request')
PY
}

# responses FILE: the responses the breakdown counted.
responses() {
	python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["breakdown"]["responses"]))' "$1"
}

main() {
	local build rc load
	build=$(cd "$1" && pwd)
	make_tmpdir TMP
	log "run dir $TMP"
	rack_up "$TMP" "$build"

	# Found in the topology: disk-b's own series only, while disk-a is busy.
	"$BENCH" --socket "$RACK_SOCK_A" --rw randread --bs 4096 --iodepth 4 --runtime 30 \
		--quiet >/dev/null &
	load=$!
	track_pid "$load" "vrio-bench on disk-a"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 4 --count "$N" \
		--json --quiet --breakdown --topology "$VRIO_TOPO" >"$TMP/topo.json" ||
		rack_fail "vrio-bench --breakdown --topology failed"
	check_breakdown "$TMP/topo.json" "$N"
	[[ $(responses "$TMP/topo.json") == "$N" ]] ||
		rack_fail "disk-b's breakdown counted $(responses "$TMP/topo.json") responses, not $N"
	# Given the endpoints: every device summed, disk-a's requests too.
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 4 --count "$N" \
		--json --quiet --breakdown --metrics "$VRIO_IO_METRICS,$VRIO_HV_METRICS" \
		>"$TMP/all.json" || rack_fail "vrio-bench --breakdown --metrics failed"
	check_breakdown "$TMP/all.json" "$N"
	(($(responses "$TMP/all.json") > N)) || rack_fail "--metrics did not sum disk-a's requests"
	kill "$load"
	wait "$load" || true

	# The text report, and refusals.
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 1 --count 2000 \
		--breakdown --topology "$VRIO_TOPO" >"$TMP/text.out" || rack_fail "text breakdown failed"
	grep -q '^breakdown of the mean latency' "$TMP/text.out" || rack_fail "no text breakdown"
	grep -q 'guest interrupts per I/O' "$TMP/text.out" || rack_fail "no interrupts per I/O"
	rc=0
	"$BENCH" --socket "$TMP/nowhere.sock" --count 10 --breakdown --topology "$VRIO_TOPO" \
		--quiet 2>"$TMP/refused.err" || rc=$?
	((rc != 0)) && grep -q 'no device of .* has the socket' "$TMP/refused.err" ||
		rack_fail "a socket the topology does not have was not refused"

	# coalesce_us, live: a guest that asks for an interrupt as soon as it
	# has nothing to do is never left waiting for one.
	sed -i 's|^    backend: {ram: 32M}$|&\n    coalesce_us: 20|' "$VRIO_TOPO"
	grep -q 'coalesce_us: 20' "$VRIO_TOPO" || die "could not edit $VRIO_TOPO"
	"$build/tools/vrioctl" --socket "$VRIO_HV_CTL" reload >"$TMP/reload.out" ||
		rack_fail "the reload failed: $(cat "$TMP/reload.out")"
	wait_until 10 grep -q 'disk-b: guest interrupts now held up to 20 us' "$VRIO_HV_LOG" ||
		rack_fail "local-hv did not apply coalesce_us"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randwrite --bs 4096 --iodepth 8 --count "$N" \
		--size 16M --spin-us 0 --verify --state "$TMP/b.state" --json --quiet --breakdown \
		--topology "$VRIO_TOPO" >"$TMP/co-write.json" || rack_fail "writes with coalescing"
	"$BENCH" --socket "$RACK_SOCK_B" --rw randread --bs 4096 --iodepth 8 --count "$N" \
		--size 16M --spin-us 0 --verify --state "$TMP/b.state" --json --quiet --breakdown \
		--topology "$VRIO_TOPO" >"$TMP/co-read.json" || rack_fail "verified reads with coalescing"
	check_breakdown "$TMP/co-read.json" "$N"

	rack_alive
	vrio_down || die "a daemon did not stop cleanly"
	echo "PASS: integration/breakdown"
}

lib_traps
main "$@"
