#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# demo.sh: vrio end to end on one fresh Debian 12 machine.
#
#   sudo scripts/demo.sh [--skip-deps] [--skip-build] [--build-dir DIR]
#                        [--run-dir DIR]
#
# Installs the dependencies (scripts/deps.sh), builds vrio into build/,
# writes a one-rack topology into the run dir (default /tmp/vrio-demo:
# loopback ports, the daemons' control sockets, a 64 MiB backing file,
# host0's key, so that every connection is authenticated),
# starts vrio-ioserver and vrio-localhv, boots a QEMU guest whose virtio-blk
# disk is served through them, has it write 1 MiB and read it back, checks
# the backing file, shows both daemons' metrics, stops everything and exits
# 0 on success. The run dir keeps the topology, the logs and the metrics
# afterwards.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OFF=$((4 << 20))
LEN=$((1 << 20))
QUEUES=2
MARKER=.vrio-demo

skip_deps=0
skip_build=0
build_dir=$VRIO_ROOT/build
run_dir=/tmp/vrio-demo

usage() {
	# The header comment is the manual.
	sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit "${1:-2}"
}

parse_args() {
	while (($#)); do
		case $1 in
		-h | --help) usage 0 ;;
		--skip-deps) skip_deps=1 ;;
		--skip-build) skip_build=1 ;;
		--build-dir)
			(($# >= 2)) || usage
			build_dir=$2
			shift
			;;
		--run-dir)
			(($# >= 2)) || usage
			run_dir=$2
			shift
			;;
		*) usage ;;
		esac
		shift
	done
}

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }

install_deps() {
	if ((skip_deps)); then
		say "skipped (--skip-deps)"
		return 0
	fi
	((EUID == 0)) || die "installing dependencies needs root: sudo $0 (or --skip-deps)"
	if [[ -f $VRIO_ROOT/scripts/deps.sh ]]; then
		bash "$VRIO_ROOT/scripts/deps.sh"
	else
		say "scripts/deps.sh not found: assuming the dependencies are installed"
	fi
}

build() {
	if ((skip_build)); then
		say "skipped (--skip-build)"
	else
		need_cmd cmake
		cmake -S "$VRIO_ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
		cmake --build "$build_dir" -j "$(nproc)" >"$build_dir/demo-build.log" 2>&1 || {
			tail -n 30 "$build_dir/demo-build.log" >&2
			die "build failed (full log: $build_dir/demo-build.log)"
		}
	fi
	vrio_binaries "$build_dir" || die "daemons not built: $VRIO_IOSERVER_BIN, $VRIO_LOCALHV_BIN"
	say "vrio-ioserver: $VRIO_IOSERVER_BIN"
	say "vrio-localhv:  $VRIO_LOCALHV_BIN"
}

# prepare_run_dir: empties the run dir, refusing one this script did not
# create (it holds the marker file).
prepare_run_dir() {
	if [[ -e $run_dir && ! -f $run_dir/$MARKER ]] &&
		[[ -n $(find "$run_dir" -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null) ]]; then
		die "$run_dir exists and was not made by demo.sh: choose another --run-dir"
	fi
	rm -rf -- "$run_dir"
	mkdir -p "$run_dir"
	touch "$run_dir/$MARKER"
	run_dir=$(cd "$run_dir" && pwd)
}

make_guest() {
	local guest=$1 rc=0
	bash "$VRIO_ROOT/scripts/guest-image.sh" "$guest" || rc=$?
	((rc == 0)) || die "could not build the guest image (status $rc)"
	say "kernel $(cat "$guest/kernel-release") + busybox initramfs with guest-io, in $guest"
}

describe_rack() {
	say "topology: $VRIO_TOPO"
	say "  io-server io0   (pid $VRIO_IO_PID): tcp $VRIO_IO_LISTEN, metrics http://$VRIO_IO_METRICS/metrics"
	say "  local-hv host0  (pid $VRIO_HV_PID): metrics http://$VRIO_HV_METRICS/metrics"
	say "  control sockets: $VRIO_IO_CTL, $VRIO_HV_CTL (vrioctl --socket PATH status)"
	say "  host0's key: $VRIO_HOST_KEY (32 random bytes, mode 0600): every connection proves it"
	say "  device vm1-disk: virtio-blk, $QUEUES queues, vhost-user socket $VRIO_SOCK"
	say "                   backed by $VRIO_DISK (64 MiB) on io0"
	say "logs: $VRIO_IO_LOG, $VRIO_HV_LOG"
}

# show_metrics NAME FILE: a few samples of an exposition, vm1-disk's first.
show_metrics() {
	local name=$1 file=$2 lines
	lines=$(grep -v '^#' "$file" | grep 'vm1-disk' | head -n 8) || true
	[[ -n $lines ]] || lines=$(grep -v '^#' "$file" | head -n 8) || true
	say "$name ($(grep -vc '^#' "$file") samples, saved in $file):"
	printf '%s\n' "$lines" | sed 's/^/    /'
}

main() {
	local guest write_line file_line requests
	parse_args "$@"
	build_dir=$(mkdir -p "$build_dir" && cd "$build_dir" && pwd)
	guest=$build_dir/tests/e2e/guest
	need_cmd truncate timeout awk

	step "1. dependencies"
	install_deps
	need_cmd qemu-system-x86_64
	step "2. build ($build_dir)"
	build
	step "3. guest image"
	make_guest "$guest"

	step "4. start the rack ($run_dir)"
	prepare_run_dir
	# host0's key: both daemons read it, and every connection proves it.
	VRIO_HOST_KEY=$run_dir/host0.key
	(umask 077 && head -c 32 /dev/urandom >"$VRIO_HOST_KEY")
	vrio_up "$run_dir"
	describe_rack

	step "5. guest: write 1 MiB at offset 4 MiB with O_DIRECT, read it back"
	say "QEMU (TCG, 2 vCPUs) attaches vhost-user-blk on $VRIO_SOCK; console: $run_dir/console.log"
	local seed=${VRIO_SEED:-$((RANDOM * 32768 + RANDOM))}
	run_guest "$run_dir/results" --socket "$VRIO_SOCK" --kernel-dir "$guest" \
		--run blk-pattern --off "$OFF" --len "$LEN" --seed "$seed" --queues "$QUEUES" \
		--log "$run_dir/console.log" || {
		show_log vrio-localhv "$VRIO_HV_LOG"
		show_log vrio-ioserver "$VRIO_IO_LOG"
		die "the guest run failed"
	}
	sed 's/^/    /' "$run_dir/results"

	step "6. check the backing file on the io-server side"
	file_line=$(check_file "$guest/guest-io" "$VRIO_DISK" "$OFF" "$LEN" "$seed") ||
		die "backing file check failed: $file_line"
	say "    $file_line"
	write_line=$(grep ' write-verify ' "$run_dir/results")
	say "checksums: guest wrote $(result_field "$write_line" sum_written)," \
		"guest read back $(result_field "$write_line" sum_read)," \
		"backing file holds $(result_field "$file_line" sum)"
	[[ $(result_field "$write_line" sum_written) == "$(result_field "$file_line" sum)" ]] ||
		die "the backing file does not hold what the guest wrote"
	say "=> the data went guest -> local-hv -> TCP -> io-server -> file, and back"

	step "7. metrics"
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$run_dir/ioserver.metrics" ||
		die "no io-server metrics"
	vrio_metrics vrio-localhv "$VRIO_HV_METRICS" "$run_dir/localhv.metrics" ||
		die "no local-hv metrics"
	show_metrics "io-server http://$VRIO_IO_METRICS/metrics" "$run_dir/ioserver.metrics"
	show_metrics "local-hv http://$VRIO_HV_METRICS/metrics" "$run_dir/localhv.metrics"
	requests=$(metric_sum 'vrio_ioserver_requests_total{device="vm1-disk"' <"$run_dir/ioserver.metrics")
	say "io-server served $requests requests for vm1-disk"
	((requests > 0)) || die "the io-server counted no requests for vm1-disk"
	grep -q 'host0@.*: hello, authenticated' "$VRIO_IO_LOG" ||
		die "the io-server did not authenticate host0"
	say "host0 proved its key: \"$(grep -m1 'hello, authenticated' "$VRIO_IO_LOG")\""

	step "8. stop"
	vrio_down || die "a daemon did not stop cleanly"
	say "SIGTERM to vrio-localhv (pid $VRIO_HV_PID), then vrio-ioserver (pid $VRIO_IO_PID): both exited 0"
	say
	say "OK: vrio demo passed; topology, logs and metrics are in $run_dir"
}

lib_traps
main "$@"
