#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# run-guest.sh: boots the e2e guest (scripts/guest-image.sh) under QEMU TCG
# with one vhost-user-blk disk, waits for it to power off, prints its
# VRIO-RESULT lines and exits 0 only when there is at least one and every
# one of them ends in "ok".
#
#   run-guest.sh --socket SOCK --kernel-dir DIR [--run NAME] [--off BYTES]
#                [--len BYTES] [--seed N] [--queues N] [--smp N] [--mem MIB]
#                [--dev /dev/vda] [--log FILE] [--timeout SECONDS]
#                [--share DIR --script FILE [--keep DIR]...] [--cpu MODEL]
#                [--net-socket SOCK --mac MAC [--net-queues N]]
#                [--param KEY=VALUE]... [--iommu] [--reconnect] [--net-opts OPTS]
#
# --socket     vhost-user-blk socket (the backend listens, QEMU connects);
#              without it the guest has no disk
# --kernel-dir holds vmlinuz and initrd.cpio.gz
# --run        what the guest's /init runs (blk-pattern, blk-verify,
#              blk-loop, blk-info; comma-separated for several); default
#              blk-pattern
# --queues     num-queues of the vhost-user-blk-pci device (default 1)
# --smp        guest CPUs (default: as many as queues, at most 4; the guest
#              driver uses at most one hardware queue per CPU)
# --log        serial console log (default: a temporary file); QEMU's own
#              output goes to LOG.qemu
# --timeout    QEMU is killed after this many seconds (default 120)
# --share      for --run host-script: the host's root goes to the guest
#              read-only (9p tag hostroot) and DIR read-write (tag vrio-run)
# --script     for --run host-script: what the guest runs, a host path
# --keep       for --run host-script: a host directory the guest sees at its
#              path although it lies under /tmp or /run, which the guest
#              mounts empty (the source tree and the build of a fresh clone
#              in /tmp, say); repeatable
# --cpu        QEMU's -cpu (host binaries may need more than its default)
# --net-socket a vhost-user-net socket: the guest gets a virtio-net NIC on
#              it (MSI-X off: QEMU 7.2 under TCG needs vectors=0), with --mac
# --net-opts   more properties of the virtio-net-pci device, comma-separated
#              (e.g. csum=off,guest_csum=off: what the device offers)
# --net-queues queue pairs of that NIC (default 1): above 1, the netdev's
#              queues=N and the device's mq=on (still without MSI-X: with
#              vectors=6, QEMU 7.2 under TCG crashes as it starts the NIC)
# --iommu      a vIOMMU: the q35 machine with intel-iommu (device-iotlb on),
#              iommu_platform=on and ats=on on the vhost-user devices, and the
#              guest booted with intel_iommu=on iommu.strict=1
# --reconnect  QEMU connects to --socket again (reconnect=1) when the
#              backend goes away, as over a backend restart
# --param      vrio.KEY=VALUE on the guest's command line (guest-init.sh:
#              ip, peer, bytes, linger for the net-* runs, secs for
#              blk-loop and blk-writers, writers); repeatable
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

socket=
kernel_dir=
run=blk-pattern
off=$((4 << 20))
len=$((1 << 20))
seed=1
queues=1
smp=
mem=256
dev=/dev/vda
logfile=
timeout_s=120
share=
script=
keep=
cpu=
net_socket=
mac=
net_opts=
net_queues=1
params=
iommu=0
reconnect=

usage() {
	# The header comment is the manual.
	sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit "${1:-2}"
}

parse_args() {
	while (($#)); do
		[[ $1 == -h || $1 == --help ]] && usage 0
		if [[ $1 == --iommu ]]; then
			iommu=1
			shift
			continue
		fi
		if [[ $1 == --reconnect ]]; then
			reconnect=,reconnect=1
			shift
			continue
		fi
		(($# >= 2)) || usage
		case $1 in
		--socket) socket=$2 ;;
		--kernel-dir) kernel_dir=$2 ;;
		--run) run=$2 ;;
		--off) off=$2 ;;
		--len) len=$2 ;;
		--seed) seed=$2 ;;
		--queues) queues=$2 ;;
		--smp) smp=$2 ;;
		--mem) mem=$2 ;;
		--dev) dev=$2 ;;
		--log) logfile=$2 ;;
		--timeout) timeout_s=$2 ;;
		--share) share=$2 ;;
		--script) script=$2 ;;
		--keep) keep+=${keep:+,}$2 ;;
		--cpu) cpu=$2 ;;
		--net-socket) net_socket=$2 ;;
		--mac) mac=$2 ;;
		--net-opts) net_opts=$2 ;;
		--net-queues) net_queues=$2 ;;
		--param) params+=" vrio.$2" ;;
		*) usage ;;
		esac
		shift 2
	done
	[[ -n $kernel_dir ]] || usage
	check_values
	[[ -z $socket || -S $socket ]] || die "no vhost-user socket at $socket"
	[[ -z $net_socket || -S $net_socket ]] || die "no vhost-user socket at $net_socket"
	[[ -z $net_socket || -n $mac ]] || die "--net-socket needs --mac"
	[[ -z $share || -d $share ]] || die "no directory $share to share"
	[[ -n $share && -n $script || -z $share$script ]] || die "--share and --script go together"
	[[ -f $kernel_dir/vmlinuz && -f $kernel_dir/initrd.cpio.gz ]] ||
		die "$kernel_dir lacks vmlinuz or initrd.cpio.gz (scripts/guest-image.sh builds them)"
}

# check_values: the values go into QEMU options and the kernel command line,
# so each must be one well-formed word.
check_values() {
	local n
	for n in "$queues" "$mem" "$timeout_s" "$net_queues" ${smp:+"$smp"}; do
		[[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
	done
	for n in "$off" "$len" "$seed"; do
		[[ $n =~ ^([0-9]+[KkMmGg]?|0x[0-9a-fA-F]+)$ ]] || die "not a number: $n"
	done
	[[ $run =~ ^[a-z0-9-]+(,[a-z0-9-]+)*$ ]] || die "bad --run: $run"
	[[ $dev =~ ^/dev/[a-z0-9]+$ ]] || die "bad --dev: $dev"
	for n in "$share" "$script" ${keep//,/ }; do
		[[ -z $n || $n =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "not a plain absolute path: $n"
	done
	[[ -z $cpu || $cpu =~ ^[a-zA-Z0-9._-]+$ ]] || die "bad --cpu: $cpu"
	[[ -z $net_socket || $net_socket =~ ^/[A-Za-z0-9._/+-]+$ ]] ||
		die "not a plain absolute path: $net_socket"
	[[ -z $mac || $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "bad --mac: $mac"
	[[ -z $net_opts || $net_opts =~ ^[a-z0-9_-]+=[a-z0-9]+(,[a-z0-9_-]+=[a-z0-9]+)*$ ]] ||
		die "bad --net-opts: $net_opts"
	for n in $params; do
		[[ $n =~ ^vrio\.[a-z]+=[A-Za-z0-9./:_-]+$ ]] || die "bad --param: ${n#vrio.}"
	done
	if [[ -z $smp ]]; then
		smp=$((queues < 4 ? queues : 4))
	fi
}

# start_qemu VAR: starts QEMU in the background and stores its pid in VAR.
start_qemu() {
	local -n _qemu_pid_out=$1
	# no_timer_check: Linux checks that the IO-APIC delivers the timer
	# within a few of its ticks and panics ("IO-APIC + timer doesn't
	# work!") when a starved TCG vCPU misses them, as on a loaded machine.
	local append="console=ttyS0 quiet panic=-1 no_timer_check vrio.run=$run vrio.dev=$dev"
	local -a extra=()
	local dopt="" nopt="" mqopt=""
	append+=" vrio.off=$off vrio.len=$len vrio.seed=$seed"
	if ((iommu)); then
		# The IOMMU must come before the devices it translates for.
		extra+=(-machine q35 -device intel-iommu,device-iotlb=on)
		dopt=",iommu_platform=on,ats=on,disable-legacy=on"
		append+=" intel_iommu=on iommu.strict=1"
	fi
	if [[ -n $socket ]]; then
		extra+=(-chardev "socket,id=vu0,path=$socket$reconnect"
			-device "vhost-user-blk-pci,chardev=vu0,num-queues=$queues$dopt")
	fi
	if [[ -n $net_socket ]]; then
		if ((net_queues > 1)); then
			nopt=",queues=$net_queues"
			mqopt=",mq=on"
		fi
		extra+=(-chardev "socket,id=vn0,path=$net_socket"
			-netdev "vhost-user,id=n0,chardev=vn0$nopt"
			-device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,vectors=0$mqopt$dopt${net_opts:+,$net_opts}")
	fi
	append+=$params
	if [[ -n $share ]]; then
		extra+=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
			-virtfs "local,path=$share,mount_tag=vrio-run,security_model=none,multidevs=remap")
		append+=" vrio.share=$share vrio.script=$script${keep:+ vrio.keep=$keep}"
	fi
	[[ -n $cpu ]] && extra+=(-cpu "$cpu")
	: >"$logfile"
	qemu-system-x86_64 -accel tcg -nodefaults -no-user-config -display none \
		-no-reboot -m "$mem" -smp "$smp" \
		-kernel "$kernel_dir/vmlinuz" -initrd "$kernel_dir/initrd.cpio.gz" \
		-append "$append" \
		-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" \
		-numa node,memdev=mem \
		"${extra[@]}" \
		-serial "file:$logfile" \
		</dev/null >"$logfile.qemu" 2>&1 &
	_qemu_pid_out=$!
	track_pid "$_qemu_pid_out" qemu
}

# wait_qemu PID: waits for QEMU to exit by itself within the timeout; kills
# it and fails otherwise.
wait_qemu() {
	local pid=$1 n=0 rc=0
	while pid_alive "$pid"; do
		if ((n >= timeout_s * 10)); then
			log "guest still running after ${timeout_s}s: killing QEMU (pid $pid)"
			stop_pid "$pid" 5 || true
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	untrack_pid "$pid"
	wait "$pid" || rc=$?
	if ((rc != 0)); then
		log "QEMU exited with status $rc"
		return 1
	fi
}

show_failure() {
	log "--- QEMU output ($logfile.qemu) ---"
	tail -n 20 "$logfile.qemu" >&2 || true
	log "--- guest console, last lines ($logfile) ---"
	tail -n 40 "$logfile" >&2 || true
}

# check_results: prints the VRIO-RESULT lines; true when all end in "ok".
check_results() {
	local lines bad
	lines=$(grep -a '^VRIO-RESULT: ' "$logfile" | tr -d '\r') || true
	if [[ -z $lines ]]; then
		log "the guest printed no VRIO-RESULT line"
		return 1
	fi
	printf '%s\n' "$lines"
	bad=$(printf '%s\n' "$lines" | grep -v ' ok$') || true
	if [[ -n $bad ]]; then
		log "guest reported a failure"
		return 1
	fi
}

main() {
	local qpid start elapsed tmp
	parse_args "$@"
	need_cmd qemu-system-x86_64
	if [[ -z $logfile ]]; then
		make_tmpdir tmp
		logfile=$tmp/console.log
	fi
	start=$SECONDS
	start_qemu qpid
	log "booting guest (pid $qpid, run=$run, queues=$queues, smp=$smp), console in $logfile"
	if ! wait_qemu "$qpid"; then
		show_failure
		exit 1
	fi
	elapsed=$((SECONDS - start))
	if ! check_results; then
		show_failure
		exit 1
	fi
	log "guest powered off after ${elapsed}s"
}

lib_traps
main "$@"
