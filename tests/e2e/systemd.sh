#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# systemd.sh BUILD_DIR: the Debian packages (scripts/package.sh, into
# BUILD_DIR/pkg) installed under a real systemd, as PID 1 of a
# systemd-nspawn container with its own network namespace (only its
# loopback; nothing leaves it):
#
#   1. `systemd-analyze verify` of both packaged units, instantiated, with
#      ExecStart pointing at the packaged binaries and the packaged man
#      pages for their Documentation=; any output about them is a failure;
#   2. a Debian root (debootstrap minbase + systemd + dbus, + every package
#      the .debs' Depends name), cached in $VRIO_CACHE/systemd-root and used
#      through an overlay (or a copy), so that runs never change it; the
#      container (with the host's /sys/module, read-only: nspawn hides it
#      and DPDK's EAL needs it) boots until `systemctl is-system-running`
#      says running or degraded;
#   3. `dpkg -i` of the four packages inside it, which finds every
#      dependency installed; a one-device topology written over the
#      packaged /etc/vrio/topology.yaml;
#   4. `systemctl start vrio-ioserver@io0`, then `vrio-localhv@host0`: both
#      are active as soon as start returns (Type=notify), the vhost-user
#      socket and both control sockets (explicit control: paths in the
#      container's /run/vrio, the units' RuntimeDirectory) exist already,
#      StatusText is the daemon's; vrio-bench (randrw, verify) passes
#      against the socket; the io-server's metrics, fetched on the
#      container's loopback, count the requests;
#   5. WatchdogUSec is 10s and both daemons are still the same processes,
#      never restarted, past 12 s (so they ping the watchdog);
#   6. stop under load: with a vrio-bench running, `systemctl stop` of
#      vrio-localhv@host0, then vrio-ioserver@io0: both end with
#      Result=success, ExecMainCode=exited, ExecMainStatus=0 (drained on
#      SIGTERM, exit 0); the bench ends (it may fail: its backend left);
#   7. reload: both units started again (generation 1); a second blk device
#      (RAM) added to the topology inside the container, then `systemctl
#      reload` of the io-server, then of local-hv: the io-server's
#      generation (`vrioctl --node io0 status --json`, the installed
#      vrioctl) goes from 1 to 2, then local-hv's, whose new vhost-user
#      socket appears and takes verified I/O; both units are active with
#      the same MainPID and no restart; then a file that is not YAML and
#      `systemctl reload` of both: each daemon counts reloads.failed == 1
#      (on its control socket), keeps its generation, and both stay active,
#      the same processes;
#   8. the transports under the units' hardening, each the same way: the
#      topology swapped in, both units started by systemctl (the
#      io-server's StatusText names its listen:), each unit's journal (of
#      that start) says its transport opened (the io-server's port or
#      socket; local-hv connected to it), 4,000 verified requests through
#      both, both stopped by systemctl with exit 0:
#      a. dpdk over net_af_packet on a veth pair in the container, the
#         io-server's port on one end and local-hv's on the other;
#      b. dpdk over net_af_xdp on the same pair; a SKIP line (and the test
#         goes on) when the kernel has no AF_XDP, or the io-server cannot
#         open the port even as a plain transient service (xdp_probe);
#      c. dpdk over net_memif, its socket in /run/vrio (the io-server the
#         memif server, stopped first);
#      d. shm, its listen: socket in /run/vrio;
#      the DPDK drivers are those the packages recommend; then both units
#      are started again, on tcp;
#   9. the packages removed under the running units: `dpkg -r` stops both
#      instances (prerm), and leaves nothing they shipped but the edited
#      conffile (the units are gone from systemd); `dpkg -P` also removes
#      /etc/vrio and the enablement links `systemctl enable` made;
#  10. the container powers off.
#
# Installs debootstrap and systemd-container with apt-get when they are
# missing. Exits 77 (SKIP) when not root, the packaging tools (dpkg-dev,
# scdoc) are missing, or systemd-nspawn, debootstrap or the Debian archive
# are unavailable. A case of step 8 this machine cannot run prints a line
# "SKIP: CASE: why" and the rest goes on; the PASS line names it.
# VRIO_CACHE (default ~/.cache/vrio) holds the root; VRIO_DEBIAN_MIRROR
# overrides the archive found in apt's sources; VRIO_KEEP_TMP=1 keeps the
# run directory (logs; the container root is an overlay, unmounted).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

SUITE=bookworm
IO_UNIT=vrio-ioserver@io0.service
HV_UNIT=vrio-localhv@host0.service
SOCK=/run/vrio/vm1-disk.sock
SOCK2=/run/vrio/vm2-disk.sock
DISK=/var/lib/vrio/vm1-disk.img
TOPO=/etc/vrio/topology.yaml
# Paths in the container, whose /run is its own: the units' default
# directory, given explicitly.
IO_CTL=/run/vrio/io0.sock
HV_CTL=/run/vrio/host0.sock
IO_LISTEN=127.0.0.1:7400
IO_METRICS=127.0.0.1:9400
HV_METRICS=127.0.0.1:9401
REQUESTS_METRIC='vrio_ioserver_requests_total{device="vm1-disk"'
ROOT_CACHE=$VRIO_CACHE/systemd-root
# Besides minbase and the packages' dependencies and recommendations
# (procps among them: its /bin/kill is the units' ExecReload; the DPDK
# drivers): iproute2 for step 8's veth pair.
BASE_PACKAGES=systemd,systemd-sysv,dbus,iproute2
DEBS=()
# Step 8: what its current case puts in the topology (io0's transport and
# listen:, each daemon's DPDK port: its dpdk.eal, none for shm); the MAC of
# the io-server's end of the veth pair; the cases this machine could not
# run (case_skip).
CASE_TRANSPORT=
CASE_LISTEN=
CASE_IO_EAL=
CASE_HV_EAL=
DPDK_MAC=02:00:00:00:00:01
SKIPPED=()

NSPAWN_PID=
LEADER=
OVERLAY=
TMP=
STDOUT_FD=
STDERR_FD=

step() { printf '== %s\n' "$*"; }

# in_ct CMD...: runs CMD inside the container (all its namespaces), bounded.
in_ct() {
	timeout 60 nsenter -t "$LEADER" -a -- "$@"
}

# ct_show UNIT PROPS...: prints `systemctl show` for the given properties.
ct_show() {
	local unit=$1 p args=()
	shift
	for p in "$@"; do
		args+=(-p "$p")
	done
	in_ct systemctl show "${args[@]}" "$unit"
}

# ct_prop UNIT PROP: prints one property's value.
ct_prop() {
	in_ct systemctl show -p "$2" --value "$1"
}

# ct_diag: what the container knows about the units, for failures.
ct_diag() {
	[[ -n $LEADER ]] && pid_alive "$LEADER" || return 0
	log "--- container diagnostics ---"
	in_ct systemctl --no-pager status "$IO_UNIT" "$HV_UNIT" >&2 || true
	in_ct journalctl --no-pager -n 60 -u "$IO_UNIT" -u "$HV_UNIT" >&2 || true
	log "--- end of container diagnostics ---"
}

fail() {
	ct_diag
	die "$*"
}

# ensure_tools: debootstrap and systemd-nspawn, installed when missing.
ensure_tools() {
	local pkgs=()
	have_cmd debootstrap || pkgs+=(debootstrap)
	have_cmd systemd-nspawn || pkgs+=(systemd-container)
	have_cmd nsenter || skip "nsenter not found (util-linux)"
	((${#pkgs[@]} == 0)) && return 0
	have_cmd apt-get || skip "${pkgs[*]} missing and no apt-get to install them"
	log "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! { timeout 300 apt-get update -qq &&
		timeout 300 apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } \
		>"$TMP/apt.log" 2>&1; then
		tail -n 5 "$TMP/apt.log" >&2
		skip "could not install ${pkgs[*]} with apt-get"
	fi
	have_cmd debootstrap || skip "debootstrap unavailable"
	have_cmd systemd-nspawn || skip "systemd-nspawn unavailable"
}

# find_mirror: $VRIO_DEBIAN_MIRROR, else the Debian archive apt is
# configured with (deb822 .sources or one-line lists), the first that
# carries $SUITE.
find_mirror() {
	local f uri
	[[ -n ${VRIO_DEBIAN_MIRROR:-} ]] && { printf '%s\n' "$VRIO_DEBIAN_MIRROR"; return 0; }
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		uri=$(awk -v s="$SUITE" '
			/^[ \t]*$/ { if (u != "" && ok && deb) { print u; exit } u = ""; ok = 0; deb = 0; next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { u = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
			END { if (u != "" && ok && deb) print u }' "$f" | head -n1)
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		uri=$(awk -v s="$SUITE" '
			$1 == "deb" { i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++; if ($i ~ /^\[/ || $i ~ /\]$/) i++
				if ($(i + 1) == s) { print $i; exit } }' "$f")
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	printf '%s\n' http://deb.debian.org/debian
}

# build_debs BUILD_DIR: scripts/package.sh into BUILD_DIR/pkg; sets DEBS.
build_debs() {
	"$VRIO_ROOT/scripts/package.sh" --skip-deps --build-dir "$1/pkg" >"$TMP/debs" \
		2>"$TMP/package.log" || {
		tail -n 30 "$TMP/package.log" >&2
		die "scripts/package.sh failed"
	}
	mapfile -t DEBS <"$TMP/debs"
	((${#DEBS[@]} > 0)) || die "scripts/package.sh built no package"
	log "packages: ${DEBS[*]##*/}"
}

# runtime_packages: what the .debs depend on and recommend, but each
# other: one line, sorted (the first of alternatives, without versions).
runtime_packages() {
	local deb
	for deb in "${DEBS[@]}"; do
		dpkg-deb -f "$deb" Depends Recommends | sed 's/^[A-Za-z]*: //' | tr ',' '\n'
	done | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^vrio-' | sed '/^$/d' |
		sort -u | paste -sd, -
}

# remove_tree DIR: removes DIR, first unmounting what an interrupted
# debootstrap may have left mounted in it (proc, sys, a bound /dev), and
# without crossing into other file systems.
remove_tree() {
	local dir=$1 m
	[[ -e $dir ]] || return 0
	for m in $(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	rm -rf --one-file-system -- "$dir"
}

# build_root PKGS: makes sure $ROOT_CACHE is a debootstrapped root with
# systemd and PKGS (its .vrio-packages stamp says which); builds it when
# missing or different, under a lock.
build_root() {
	local libs=$1 want mirror new lock
	want="$SUITE $BASE_PACKAGES,$libs"
	mkdir -p "$VRIO_CACHE"
	lock=$VRIO_CACHE/systemd-root.lock
	exec {lockfd}>"$lock"
	flock -w 900 "$lockfd" || die "timed out waiting for $lock"
	if [[ -f $ROOT_CACHE/.vrio-packages && $(<"$ROOT_CACHE/.vrio-packages") == "$want" ]]; then
		log "using cached container root $ROOT_CACHE"
		exec {lockfd}>&-
		return 0
	fi
	mirror=$(find_mirror)
	log "building container root $ROOT_CACHE from $mirror ($SUITE)"
	if ! timeout 30 wget -q -O /dev/null "$mirror/dists/$SUITE/Release" 2>/dev/null; then
		exec {lockfd}>&-
		skip "the Debian archive $mirror is unreachable"
	fi
	new=$ROOT_CACHE.new
	remove_tree "$new"
	if ! timeout 900 debootstrap --variant=minbase --include="$BASE_PACKAGES,$libs" \
		"$SUITE" "$new" "$mirror" >"$TMP/debootstrap.log" 2>&1; then
		tail -n 20 "$TMP/debootstrap.log" >&2
		remove_tree "$new"
		exec {lockfd}>&-
		if grep -qiE 'Failed getting release|Couldn.t download|Temporary failure|unable to resolve' \
			"$TMP/debootstrap.log"; then
			skip "debootstrap could not fetch from $mirror"
		fi
		die "debootstrap failed (log above)"
	fi
	printf '%s\n' "$want" >"$new/.vrio-packages"
	remove_tree "$ROOT_CACHE"
	mv "$new" "$ROOT_CACHE"
	exec {lockfd}>&-
	log "container root ready ($(du -sh "$ROOT_CACHE" | cut -f1))"
}

# fresh_root DIR: a writable view of the cached root at DIR/root: an
# overlay with its upper layer in DIR, or a copy when overlays don't mount.
fresh_root() {
	local dir=$1
	mkdir -p "$dir/root" "$dir/upper" "$dir/work"
	if mount -t overlay overlay \
		-o "lowerdir=$ROOT_CACHE,upperdir=$dir/upper,workdir=$dir/work" "$dir/root" 2>/dev/null; then
		OVERLAY=$dir/root
		log "container root: overlay on $ROOT_CACHE"
	else
		log "overlay mount failed: copying $ROOT_CACHE"
		cp -a "$ROOT_CACHE/." "$dir/root/"
	fi
}

# install_vrio: dpkg -i of the packages inside the running container (no
# download: the cached root holds their dependencies), then the test's
# topology over the packaged one.
install_vrio() {
	local deb
	in_ct mkdir -p /tmp/debs || fail "cannot make /tmp/debs in the container"
	for deb in "${DEBS[@]}"; do
		cp "$deb" "/proc/$LEADER/root/tmp/debs/" || fail "cannot copy $deb into the container"
	done
	in_ct sh -c 'dpkg -i /tmp/debs/*.deb' >"$TMP/dpkg-i.log" 2>&1 || {
		cat "$TMP/dpkg-i.log" >&2
		fail "dpkg -i of the packages failed in the container"
	}
	log "installed: $(in_ct dpkg-query -W -f='${Package} ${Version}, ' 'vrio-*')"
	[[ $(in_ct systemctl show -p FragmentPath --value "$IO_UNIT") == /lib/systemd/system/vrio-ioserver@.service ]] ||
		fail "systemd does not see the packaged unit vrio-ioserver@.service"
	write_topology "/proc/$LEADER/root$TOPO" "$IO_LISTEN" "$IO_METRICS" "$HV_METRICS" \
		"$SOCK" "$DISK" 1 "$IO_CTL" "$HV_CTL"
}

# verify_units DIR: systemd-analyze verify of instantiated copies of the
# packaged units, run on the packaged binaries (extracted into DIR), with
# the packaged man pages on MANPATH for their Documentation=.
verify_units() {
	local dir=$1 deb d out
	mkdir -p "$dir/units" "$dir/x"
	for deb in "${DEBS[@]}"; do
		dpkg-deb -x "$deb" "$dir/x"
	done
	for d in ioserver localhv; do
		sed "s#^ExecStart=/usr/bin/vrio-$d #ExecStart=$dir/x/usr/bin/vrio-$d #" \
			"$dir/x/lib/systemd/system/vrio-$d@.service" >"$dir/units/vrio-$d@.service"
		grep -q "^ExecStart=$dir/x/usr/bin/vrio-$d " "$dir/units/vrio-$d@.service" ||
			die "the packaged vrio-$d@.service does not run /usr/bin/vrio-$d"
	done
	dir=$dir/units
	out=$(cd "$dir" && MANPATH=$dir/../x/usr/share/man timeout 60 systemd-analyze verify \
		"$dir/$IO_UNIT" "$dir/$HV_UNIT" 2>&1) || {
		printf '%s\n' "$out" >&2
		die "systemd-analyze verify failed"
	}
	if grep -q 'vrio' <<<"$out"; then
		printf '%s\n' "$out" >&2
		die "systemd-analyze verify complains about the vrio units"
	fi
	[[ -z $out ]] || log "systemd-analyze verify (not about vrio): $out"
}

# container_children PID: the pids of PID's children.
container_children() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

# boot ROOT LOG: boots the container and sets NSPAWN_PID and LEADER (its
# init, a child of systemd-nspawn).
boot() {
	local root=$1 logfile=$2 n=0 c state bind=()
	[[ -d /sys/module ]] && bind=(--bind-ro=/sys/module)
	# systemd-nspawn shows its containers only some of /sys, without
	# /sys/module, and DPDK's EAL (in vrio-localhv) fails without it ("Cannot
	# init VFIO"): give the container the host's, read-only, as a real
	# machine has it.
	# Locked memory (step 8's af_packet rings are MAP_LOCKED): a host's root
	# services have CAP_IPC_LOCK, and the units' LimitMEMLOCK=infinity
	# besides. nspawn drops CAP_IPC_LOCK and caps the container at its own
	# limit, which it raises only where it may (CAP_SYS_RESOURCE, which
	# some CI machines lack): give the container CAP_IPC_LOCK back and try
	# the raise.
	# bpf() (step 8b's af_xdp ports load an XDP program): nspawn's system
	# call filter refuses it with EPERM whatever the capabilities, where a
	# host's root services may make it (CAP_SYS_ADMIN): allow it back.
	systemd-nspawn -D "$root" --boot --private-network --register=no --keep-unit \
		--rlimit=RLIMIT_MEMLOCK=infinity --capability=CAP_IPC_LOCK \
		--system-call-filter=bpf \
		--machine="vrio-e2e-$$" "${bind[@]}" </dev/null >"$logfile" 2>&1 &
	NSPAWN_PID=$!
	track_pid "$NSPAWN_PID" systemd-nspawn
	log "systemd-nspawn started (pid $NSPAWN_PID)"
	while [[ -z $LEADER ]]; do
		pid_alive "$NSPAWN_PID" || { cat "$logfile" >&2; die "systemd-nspawn exited"; }
		for c in $(container_children "$NSPAWN_PID"); do
			if [[ $(readlink "/proc/$c/ns/pid" 2>/dev/null) != "$(readlink /proc/self/ns/pid)" ]]; then
				LEADER=$c
			fi
		done
		((n++ < 300)) || { cat "$logfile" >&2; die "no container init after 30 s"; }
		[[ -n $LEADER ]] || sleep 0.1
	done
	log "container init is pid $LEADER ($(tr '\0' ' ' <"/proc/$LEADER/cmdline"))"
	# Wait until the manager listens, then until the boot is done.
	n=0
	until [[ -S /proc/$LEADER/root/run/systemd/private ]]; do
		pid_alive "$LEADER" || { cat "$logfile" >&2; die "container init exited"; }
		((n++ < 300)) || { cat "$logfile" >&2; die "container manager not listening after 30 s"; }
		sleep 0.1
	done
	state=$(timeout 60 nsenter -t "$LEADER" -a -- systemctl is-system-running --wait 2>/dev/null) || true
	case $state in
	running) ;;
	degraded)
		log "system degraded; failed units:"
		in_ct systemctl --no-pager --failed >&2 || true
		;;
	*)
		cat "$logfile" >&2
		die "container did not boot: is-system-running says '$state'"
		;;
	esac
	log "container is $state"
}

# container_down: powers the container off, kills it if it won't.
container_down() {
	[[ -n $NSPAWN_PID ]] || return 0
	if [[ -n $LEADER ]] && pid_alive "$LEADER" &&
		timeout 10 nsenter -t "$LEADER" -a -- systemctl --no-block poweroff >/dev/null 2>&1; then
		stop_pid "$NSPAWN_PID" 20 CONT || true
	else
		# systemd-nspawn shuts its container down on SIGTERM.
		stop_pid "$NSPAWN_PID" 20 || true
	fi
	NSPAWN_PID=
	# SIGKILL to systemd-nspawn would leave the container's init behind.
	if [[ -n $LEADER ]] && pid_alive "$LEADER"; then
		log "container init $LEADER still running: killing it"
		kill -KILL "$LEADER" 2>/dev/null || true
	fi
	LEADER=
}

cleanup() {
	local rc=$?
	set +e
	# A signal's trap may run inside a redirected function call (in_ct ...
	# >log): report on the script's own output.
	[[ -n $STDOUT_FD ]] && exec 1>&"$STDOUT_FD" 2>&"$STDERR_FD"
	if ((rc != 0)) && [[ -n $NSPAWN_PID ]]; then
		log "failed (status $rc): powering the container off"
	fi
	container_down
	if [[ -n $OVERLAY ]]; then
		umount "$OVERLAY" 2>/dev/null || umount -l "$OVERLAY"
		OVERLAY=
	fi
	lib_cleanup
	exit "$rc"
}

# start_unit UNIT: systemctl start, its start-rate limit reset first. The
# cases start each unit more often than systemd's default limit (5 starts
# in 10 s) allows, and a failed or too-quick start is remembered: an
# operator restarting this often would type the same reset-failed.
start_unit() {
	in_ct systemctl reset-failed "$1" 2>/dev/null || true
	in_ct systemctl start "$1"
}

# check_started UNIT WHAT: after `systemctl start`, the unit is active and
# its StatusText is the daemon's READY status.
check_started() {
	local unit=$1 want=$2 state status
	state=$(in_ct systemctl is-active "$unit") || true
	[[ $state == active ]] || fail "$unit is '$state' right after systemctl start"
	status=$(ct_prop "$unit" StatusText)
	log "$unit: active, StatusText='$status'"
	[[ $status == "$want" ]] || fail "$unit StatusText '$status', expected '$want'"
}

# check_stopped UNIT PID: Result=success, and PID exited (not killed) with
# status 0. The units are enabled, so that systemd keeps them loaded, with
# these properties, once they are inactive.
check_stopped() {
	local unit=$1 pid=$2 out want
	want="ActiveState=inactive ExecMainCode=1 ExecMainPID=$pid ExecMainStatus=0 Result=success"
	out=$(ct_show "$unit" ActiveState Result ExecMainCode ExecMainStatus ExecMainPID |
		sort | paste -sd' ')
	log "$unit after stop: $out"
	[[ $out == "$want" ]] ||
		fail "$unit did not exit 0 on stop (want $want; ExecMainCode=1 is CLD_EXITED)"
}

# metrics ADDR: the exposition at http://ADDR/metrics, fetched in the
# container's network namespace.
metrics() {
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	nsenter -t "$LEADER" -n -- bash -c 'source "$1"; http_get "$2" /metrics' _ \
		"$VRIO_ROOT/scripts/lib.sh" "$1"
}

# ct_status DAEMON...: `vrioctl DAEMON status --json` inside the container
# (--node NAME --config FILE, or --socket PATH).
ct_status() {
	in_ct vrioctl "$@" status --json
}

# json_get JSON KEY: prints the value at KEY, dotted (config.generation).
json_get() {
	python3 -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[k]
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1" "$2"
}

# wait_status KEY WANT DAEMON...: polls the daemon's status until KEY is
# WANT; fails after 20 s with the last answer.
wait_status() {
	local key=$1 want=$2 out="" n=0
	shift 2
	while ((n++ < 200)); do
		if out=$(ct_status "$@" 2>&1) &&
			[[ $(json_get "$out" "$key" 2>/dev/null) == "$want" ]]; then
			return 0
		fi
		sleep 0.1
	done
	printf '%s\n' "$out" >&2
	fail "vrioctl $* status: $key is not $want after 20 s"
}

# ct_wait_socket UNIT PATH: waits up to 20 s for UNIT to create the unix
# socket PATH in the container; fails early once UNIT is not active.
ct_wait_socket() {
	local unit=$1 path=/proc/$LEADER/root$2 n=0
	until [[ -S $path ]]; do
		[[ $(in_ct systemctl is-active "$unit") == active ]] ||
			fail "$unit is not active: it will not create $2"
		((n++ < 200)) || fail "$unit did not create $2 within 20 s"
		sleep 0.1
	done
}

# check_same UNIT PID: the unit is active, still process PID, never
# restarted (a daemon that died on SIGHUP and came back would not be).
check_same() {
	local unit=$1 pid=$2 state out
	state=$(in_ct systemctl is-active "$unit") || true
	[[ $state == active ]] || fail "$unit is '$state' after the reload"
	out=$(ct_show "$unit" MainPID NRestarts | sort | paste -sd' ')
	[[ $out == "MainPID=$pid NRestarts=0" ]] ||
		fail "$unit: $out after the reload, expected MainPID=$pid NRestarts=0"
}

# add_device: appends a second blk device, on RAM, to the topology in the
# container (devices: is its last section) and checks it with vrioctl.
add_device() {
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	in_ct sh -c 'cat >>"$1"' _ "$TOPO" <<EOF || fail "cannot edit $TOPO in the container"
  - name: vm2-disk
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK2
    backend: {ram: 16M}
EOF
	in_ct vrioctl check "$TOPO" | grep -q ' 2 devices$' ||
		fail "the edited $TOPO does not hold 2 devices: $(in_ct vrioctl check "$TOPO" 2>&1)"
}

# check_refused WHAT GENERATION DAEMON...: after a reload of a broken file,
# the daemon counts one failed reload and is still at GENERATION.
check_refused() {
	local what=$1 gen=$2 out
	shift 2
	wait_status config.reloads.failed 1 "$@"
	out=$(ct_status "$@") || fail "vrioctl $* status failed"
	[[ $(json_get "$out" config.generation) == "$gen" ]] ||
		fail "$what: generation $(json_get "$out" config.generation) after a refused reload, was $gen"
	log "$what: reload refused, still generation $gen: $(json_get "$out" config.last_error)"
}

# reload_checks: step 7, with both units freshly started.
reload_checks() {
	local io_pid hv_pid out io_gen hv_gen
	local -a io=(--node io0 --config "$TOPO")
	io_pid=$(ct_prop "$IO_UNIT" MainPID)
	hv_pid=$(ct_prop "$HV_UNIT" MainPID)
	out=$(ct_status "${io[@]}") || fail "vrioctl ${io[*]} status failed in the container"
	io_gen=$(json_get "$out" config.generation)
	[[ $io_gen == 1 && $(json_get "$out" config.reloads.failed) == 0 ]] ||
		fail "the io-server starts at generation $io_gen, with failed reloads: $out"

	add_device
	in_ct systemctl reload "$IO_UNIT" || fail "systemctl reload $IO_UNIT failed"
	wait_status config.generation 2 "${io[@]}"
	log "$IO_UNIT: generation 1 -> 2 after systemctl reload"
	in_ct systemctl reload "$HV_UNIT" || fail "systemctl reload $HV_UNIT failed"
	ct_wait_socket "$HV_UNIT" "$SOCK2"
	wait_status config.generation 2 --node host0 --config "$TOPO"
	log "$HV_UNIT: generation 1 -> 2, $SOCK2 appeared after systemctl reload"
	in_ct timeout 30 vrio-bench --socket "$SOCK2" --rw randrw --bs 4096 --iodepth 8 \
		--count 2000 --verify >"$TMP/bench3.log" 2>&1 || {
		cat "$TMP/bench3.log" >&2
		fail "vrio-bench against the reloaded device $SOCK2 failed"
	}
	check_same "$IO_UNIT" "$io_pid"
	check_same "$HV_UNIT" "$hv_pid"
	[[ $(ct_prop "$IO_UNIT" StatusText) == "serving on $IO_LISTEN, configuration generation 2" ]] ||
		fail "$IO_UNIT StatusText after the reload: '$(ct_prop "$IO_UNIT" StatusText)'"

	# A broken file: refused by both, nothing changes. By --socket: vrioctl
	# --node cannot read the file either.
	out=$(ct_status --socket "$IO_CTL") || fail "no io-server status on $IO_CTL"
	io_gen=$(json_get "$out" config.generation)
	out=$(ct_status --socket "$HV_CTL") || fail "no local-hv status on $HV_CTL"
	hv_gen=$(json_get "$out" config.generation)
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	in_ct sh -c 'printf "version: 1\nio_servers: [\n" >"$1"' _ "$TOPO" ||
		fail "cannot write a broken $TOPO"
	in_ct systemctl reload "$IO_UNIT" || fail "systemctl reload $IO_UNIT (broken file) failed"
	in_ct systemctl reload "$HV_UNIT" || fail "systemctl reload $HV_UNIT (broken file) failed"
	check_refused "$IO_UNIT" "$io_gen" --socket "$IO_CTL"
	check_refused "$HV_UNIT" "$hv_gen" --socket "$HV_CTL"
	check_same "$IO_UNIT" "$io_pid"
	check_same "$HV_UNIT" "$hv_pid"
	in_ct test -S "$SOCK2" || fail "$SOCK2 went away after a refused reload"
}

# ---- step 8: the transports under the units ----

# case_skip CASE WHY: a case this machine cannot run: a SKIP line on the
# test's output, and the test goes on.
case_skip() {
	printf 'SKIP: %s: %s\n' "$1" "$2"
	SKIPPED+=("$1")
}

# case_topology: the one-device topology of the case in CASE_*, over $TOPO.
case_topology() {
	local io_dpdk="" hv_dpdk=""
	[[ -z $CASE_IO_EAL ]] || io_dpdk="    dpdk: {eal: \"$CASE_IO_EAL\"}"
	[[ -z $CASE_HV_EAL ]] || hv_dpdk="    dpdk: {eal: \"$CASE_HV_EAL\"}"
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	in_ct sh -c 'cat >"$1"' _ "$TOPO" <<EOT || fail "cannot write the $CASE_TRANSPORT topology"
version: 1
io_servers:
  - name: io0
    transport: $CASE_TRANSPORT
    listen: "$CASE_LISTEN"
    metrics: $IO_METRICS
    control: $IO_CTL
$io_dpdk
hosts:
  - name: host0
    metrics: $HV_METRICS
    control: $HV_CTL
$hv_dpdk
devices:
  - name: vm1-disk
    type: blk
    host: host0
    io_server: io0
    socket: $SOCK
    backend: {file: $DISK, size: 64M}
EOT
}

# unit_logged UNIT TEXT: UNIT's journal since it last started (its
# invocation's only) has a line with TEXT; waits up to 5 s for journald.
unit_logged() {
	local unit=$1 text=$2 inv n=0
	inv=$(ct_prop "$unit" InvocationID)
	[[ -n $inv ]] || return 1
	# grep reads to the end (no -q), or under pipefail a long journal
	# could fail journalctl with SIGPIPE after the match.
	until in_ct journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$inv" | grep -F -- "$text" >/dev/null; do
		((n++ < 50)) || return 1
		sleep 0.1
	done
}

# case_run CASE IO_TEXT: both units started on the case's topology, the
# io-server first; the io-server's journal (this start's) has IO_TEXT, what
# says its transport opened, and local-hv's that it connected to io0's
# listen:; 4,000 verified requests through both; both stopped by
# systemctl, each exiting 0. With memif ports the io-server stops first: a
# memif server must not be forwarding when its client goes (rack_down);
# otherwise local-hv does, the order of a drain.
case_run() {
	local name=$1 io_text=$2 io_pid hv_pid
	case_topology
	start_unit "$IO_UNIT" || fail "systemctl start $IO_UNIT on $name failed"
	check_started "$IO_UNIT" "serving on $CASE_LISTEN, configuration generation 1"
	start_unit "$HV_UNIT" || fail "systemctl start $HV_UNIT on $name failed"
	check_started "$HV_UNIT" "serving, configuration generation 1"
	in_ct test -S "$SOCK" || fail "$SOCK does not exist once $HV_UNIT is started on $name"
	io_pid=$(ct_prop "$IO_UNIT" MainPID)
	hv_pid=$(ct_prop "$HV_UNIT" MainPID)
	unit_logged "$IO_UNIT" "$io_text" || fail "$IO_UNIT did not log '$io_text' on $name"
	unit_logged "$HV_UNIT" "io0: connected to $CASE_LISTEN" ||
		fail "$HV_UNIT did not log 'io0: connected to $CASE_LISTEN' on $name"
	log "$name: the io-server logged '$io_text', local-hv 'io0: connected to $CASE_LISTEN'"
	in_ct timeout 60 vrio-bench --socket "$SOCK" --rw randrw --bs 4096 --iodepth 8 \
		--count 4000 --verify >"$TMP/bench-case.log" 2>&1 || {
		cat "$TMP/bench-case.log" >&2
		fail "vrio-bench over $name under the units failed"
	}
	sed 's/^/  bench: /' "$TMP/bench-case.log"
	if [[ $CASE_IO_EAL == *net_memif* ]]; then
		in_ct systemctl stop "$IO_UNIT" || fail "systemctl stop $IO_UNIT on $name failed"
		in_ct systemctl stop "$HV_UNIT" || fail "systemctl stop $HV_UNIT on $name failed"
	else
		in_ct systemctl stop "$HV_UNIT" || fail "systemctl stop $HV_UNIT on $name failed"
		in_ct systemctl stop "$IO_UNIT" || fail "systemctl stop $IO_UNIT on $name failed"
	fi
	check_stopped "$IO_UNIT" "$io_pid"
	check_stopped "$HV_UNIT" "$hv_pid"
	log "$name: 4,000 verified requests through both units; both stopped, exit 0"
}

# veth_pair: the veth pair of the dpdk cases, vrio-io (with DPDK_MAC, the
# io-server's) and vrio-hv, in the container's network namespace.
veth_pair() {
	in_ct ip link add vrio-io type veth peer name vrio-hv || fail "cannot make a veth pair in the container"
	in_ct ip link set vrio-io address "$DPDK_MAC" || fail "cannot set vrio-io's address"
	in_ct ip link set vrio-io up || fail "cannot bring vrio-io up"
	in_ct ip link set vrio-hv up || fail "cannot bring vrio-hv up"
}

# case_af_packet: 8a, the dpdk transport over net_af_packet on the veth
# pair (AF_PACKET in RestrictAddressFamilies=, rings deep enough for a
# window of fragments).
case_af_packet() {
	CASE_TRANSPORT=dpdk CASE_LISTEN=$DPDK_MAC
	CASE_IO_EAL="--vdev=net_af_packet0,iface=vrio-io,framecnt=4096"
	CASE_HV_EAL="--vdev=net_af_packet0,iface=vrio-hv,framecnt=4096"
	case_run "dpdk over af_packet" "dpdk: port 0 (net_af_packet0) is up"
}

# xdp_probe VAR: whether this container can open an af_xdp port at all:
# the packaged io-server on the case's topology as a transient service with
# none of the unit's settings but locked memory. Stopped again when it
# could; when it could not, sets VAR to why (from its journal) and fails.
# So a failure under the unit is the unit's, never the machine's.
xdp_probe() {
	local -n _why=$1
	local unit=vrio-xdp-probe.service out err first
	if in_ct systemd-run --quiet --collect --unit="$unit" -p Type=notify \
		-p LimitMEMLOCK=infinity -p TimeoutStartSec=30 \
		/usr/bin/vrio-ioserver --config "$TOPO" --node io0 >/dev/null 2>&1; then
		in_ct systemctl stop "$unit" || fail "cannot stop $unit"
		return 0
	fi
	out=$(in_ct journalctl --no-pager -o cat -u "$unit") || true
	err=$(grep -m1 '^vrio-ioserver: .*\(cannot\|error\)' <<<"$out" | cut -c1-120) || true
	first=$(grep -m1 -i 'not permitted\|not supported' <<<"$out" | sed 's/\. .*//' | cut -c1-120) || true
	[[ -n $err$first ]] || err=$(tail -n1 <<<"$out")
	_why="no af_xdp port in this container even outside the units: $err${first:+ (first: $first)}"
	return 1
}

# case_af_xdp: 8b, the dpdk transport over net_af_xdp on the same veth
# pair (AF_XDP in RestrictAddressFamilies=, locked memory for the UMEM,
# bpf() for its XDP program). A SKIP when the kernel has no AF_XDP or the
# container cannot load an XDP program (xdp_probe).
case_af_xdp() {
	local name="dpdk over af_xdp" why=""
	CASE_TRANSPORT=dpdk CASE_LISTEN=$DPDK_MAC
	CASE_IO_EAL="--vdev=net_af_xdp0,iface=vrio-io,start_queue=0,queue_count=1"
	CASE_HV_EAL="--vdev=net_af_xdp0,iface=vrio-hv,start_queue=0,queue_count=1"
	if ! in_ct grep -q '^XDP ' /proc/net/protocols; then
		case_skip "$name" "the kernel has no AF_XDP sockets (no XDP in /proc/net/protocols)"
		return 0
	fi
	case_topology
	if ! xdp_probe why; then
		case_skip "$name" "$why"
		return 0
	fi
	log "$name: the io-server opens net_af_xdp0 as a plain transient service; now under its unit"
	case_run "$name" "dpdk: port 0 (net_af_xdp0) is up"
}

# case_memif: 8c, the dpdk transport over net_memif: the io-server the
# memif server, local-hv its client, on a socket in /run/vrio (writable to
# both units).
case_memif() {
	local vdev="net_memif0,socket=/run/vrio/memif.sock,socket-abstract=no"
	CASE_TRANSPORT=dpdk CASE_LISTEN=$DPDK_MAC
	CASE_IO_EAL="--vdev=$vdev,role=server,mac=$DPDK_MAC"
	CASE_HV_EAL="--vdev=$vdev,role=client"
	case_run "dpdk over memif" "dpdk: port 0 (net_memif0) is up"
}

# case_shm: 8d, the shm transport: the io-server's listen: socket in
# /run/vrio.
case_shm() {
	CASE_TRANSPORT=shm CASE_LISTEN=/run/vrio/io0-shm.sock CASE_IO_EAL='' CASE_HV_EAL=''
	case_run "shm" "io0: serving on $CASE_LISTEN with"
}

# remove_checks: step 9. With both units running and enabled, dpkg -r
# stops them and leaves nothing the packages shipped but the conffile;
# dpkg -P leaves nothing, enablement links included.
remove_checks() {
	local u f files left
	for u in "$IO_UNIT" "$HV_UNIT"; do
		[[ $(in_ct systemctl is-active "$u") == active ]] || fail "$u is not active before dpkg -r"
	done
	files=$(in_ct dpkg -L vrio-common vrio-ioserver vrio-localhv vrio-tools) ||
		fail "dpkg -L of the packages failed"
	in_ct dpkg -r vrio-ioserver vrio-localhv vrio-tools vrio-common >"$TMP/dpkg-r.log" 2>&1 || {
		cat "$TMP/dpkg-r.log" >&2
		fail "dpkg -r failed in the container"
	}
	for u in "$IO_UNIT" "$HV_UNIT"; do
		[[ $(in_ct systemctl is-active "$u") != active ]] || fail "$u still runs after dpkg -r"
	done
	in_ct systemctl cat vrio-ioserver@.service >/dev/null 2>&1 &&
		fail "systemd still has vrio-ioserver@.service after dpkg -r"
	# What the packages shipped and is still there: directories others
	# share, and the conffile.
	left=$(while IFS= read -r f; do
		if [[ -e /proc/$LEADER/root$f && ! -d /proc/$LEADER/root$f ]]; then
			printf '%s\n' "$f"
		fi
	done <<<"$files")
	[[ $left == /etc/vrio/topology.yaml ]] ||
		fail "dpkg -r left behind more than the conffile: $(paste -sd' ' <<<"$left")"
	# `systemctl enable` links are the admin's: kept until the purge.
	[[ -n $(in_ct find /etc/systemd/system -name "$IO_UNIT") ]] ||
		fail "dpkg -r removed the enablement link of $IO_UNIT"
	log "dpkg -r stopped both units and left only /etc/vrio/topology.yaml (and the enablement links)"
	in_ct dpkg -P vrio-ioserver vrio-localhv vrio-common >"$TMP/dpkg-p.log" 2>&1 || {
		cat "$TMP/dpkg-p.log" >&2
		fail "dpkg -P failed in the container"
	}
	in_ct test -e /etc/vrio && fail "/etc/vrio is still there after dpkg -P"
	left=$(in_ct find /etc/systemd/system -name 'vrio-*') || true
	[[ -z $left ]] || fail "dpkg -P left enablement links: $left"
	[[ -z $(in_ct dpkg-query -W 'vrio-*' 2>/dev/null) ]] || fail "dpkg still knows vrio packages after dpkg -P"
	log "dpkg -P: /etc/vrio and the enablement links are gone"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build_dir pkgs t0 t_hv bench_pid rc io_pid hv_pid requests now out u c
	t0=$SECONDS
	build_dir=$(mkdir -p "$1" && cd "$1" && pwd)
	[[ $(id -u) == 0 ]] || skip "needs root (debootstrap, systemd-nspawn)"
	have_cmd systemd-analyze || skip "systemd-analyze not found (systemd)"
	have_cmd dpkg || skip "not a Debian system (no dpkg)"
	for c in dpkg-deb dpkg-shlibdeps dpkg-buildflags scdoc; do
		have_cmd "$c" || skip "$c not found: cannot build the packages (scripts/deps.sh installs it)"
	done
	have_cmd python3 || skip "python3 not found (reads vrioctl's JSON)"

	exec {STDOUT_FD}>&1 {STDERR_FD}>&2
	lib_traps
	trap cleanup EXIT
	make_tmpdir TMP
	ensure_tools

	step "1. packages; systemd-analyze verify $IO_UNIT $HV_UNIT"
	build_debs "$build_dir"
	verify_units "$TMP/verify"
	log "verify: no complaints"

	step "2. container root ($ROOT_CACHE); boot"
	pkgs=$(runtime_packages)
	log "the packages' dependencies: $pkgs"
	build_root "$pkgs"
	fresh_root "$TMP"
	boot "$TMP/root" "$TMP/nspawn.log"

	step "3. dpkg -i the packages in the container"
	install_vrio

	step "4. systemctl start $IO_UNIT, $HV_UNIT; vrio-bench; metrics"
	# Enabled (the deployment README's way), the units stay loaded once
	# stopped, with their Result and ExecMain* for step 6.
	in_ct systemctl enable "$IO_UNIT" "$HV_UNIT" || fail "systemctl enable failed"
	start_unit "$IO_UNIT" || fail "systemctl start $IO_UNIT failed"
	check_started "$IO_UNIT" "serving on $IO_LISTEN, configuration generation 1"
	in_ct test -f "$DISK" || fail "$DISK was not created (StateDirectory=vrio)"
	in_ct test -S "$IO_CTL" || fail "no control socket $IO_CTL once $IO_UNIT is started"
	start_unit "$HV_UNIT" || fail "systemctl start $HV_UNIT failed"
	t_hv=$SECONDS
	in_ct test -S "$SOCK" || fail "$SOCK does not exist once $HV_UNIT is started (READY before serving?)"
	check_started "$HV_UNIT" "serving, configuration generation 1"
	in_ct test -S "$HV_CTL" || fail "no control socket $HV_CTL once $HV_UNIT is started"
	io_pid=$(ct_prop "$IO_UNIT" MainPID)
	hv_pid=$(ct_prop "$HV_UNIT" MainPID)
	in_ct timeout 30 vrio-bench --socket "$SOCK" --rw randrw --bs 4096 --iodepth 8 \
		--runtime 3 --verify >"$TMP/bench1.log" 2>&1 || {
		cat "$TMP/bench1.log" >&2
		fail "vrio-bench against $SOCK failed inside the container"
	}
	sed 's/^/  bench: /' "$TMP/bench1.log"
	metrics "$IO_METRICS" >"$TMP/ioserver.metrics" || fail "no io-server metrics on $IO_METRICS"
	metrics "$HV_METRICS" >"$TMP/localhv.metrics" || fail "no local-hv metrics on $HV_METRICS"
	[[ -s $TMP/localhv.metrics ]] || fail "local-hv served empty metrics"
	requests=$(metric_sum "$REQUESTS_METRIC" <"$TMP/ioserver.metrics")
	log "io-server counted $requests requests for vm1-disk"
	((requests > 0)) || fail "io-server metrics show no requests for vm1-disk"

	step "5. watchdog: WatchdogUSec=10s, daemons alive past it"
	for u in "$IO_UNIT" "$HV_UNIT"; do
		[[ $(ct_prop "$u" WatchdogUSec) == 10s ]] ||
			fail "$u WatchdogUSec is '$(ct_prop "$u" WatchdogUSec)', expected 10s"
	done
	# Both started at most 13 s ago: past 10 s, a daemon that does not ping
	# is killed (Result=watchdog) and restarted (NRestarts, a new MainPID).
	now=$SECONDS
	if ((now - t_hv < 13)); then
		log "waiting $((13 - (now - t_hv))) s (12 s and more past both starts)"
		sleep $((13 - (now - t_hv)))
	fi
	for u in "$IO_UNIT" "$HV_UNIT"; do
		out=$(ct_show "$u" ActiveState MainPID NRestarts Result | sort | paste -sd' ')
		log "$u: $out"
		[[ $out == "ActiveState=active MainPID=$([[ $u == "$IO_UNIT" ]] && echo "$io_pid" || echo "$hv_pid") NRestarts=0 Result=success" ]] ||
			fail "$u did not keep running past its watchdog interval"
	done

	step "6. stop under load"
	in_ct timeout 30 vrio-bench --socket "$SOCK" --rw randrw --bs 4096 --iodepth 8 \
		--runtime 10 --verify >"$TMP/bench2.log" 2>&1 &
	bench_pid=$!
	track_pid "$bench_pid" vrio-bench
	sleep 2
	pid_alive "$bench_pid" || { cat "$TMP/bench2.log" >&2; fail "vrio-bench ended before the stop"; }
	in_ct systemctl stop "$HV_UNIT" || fail "systemctl stop $HV_UNIT failed"
	in_ct systemctl stop "$IO_UNIT" || fail "systemctl stop $IO_UNIT failed"
	check_stopped "$HV_UNIT" "$hv_pid"
	check_stopped "$IO_UNIT" "$io_pid"
	rc=0
	stop_pid "$bench_pid" 40 CONT || rc=$?
	log "vrio-bench under the stop ended with status $rc (a failure is expected: its backend left)"
	sed 's/^/  bench: /' "$TMP/bench2.log" | tail -n 5

	step "7. reload: a device added, then a broken file"
	start_unit "$IO_UNIT" || fail "systemctl start $IO_UNIT (again) failed"
	start_unit "$HV_UNIT" || fail "systemctl start $HV_UNIT (again) failed"
	reload_checks

	# Each case starts both units on its own topology and stops them again.
	in_ct systemctl stop "$HV_UNIT" "$IO_UNIT" || fail "systemctl stop failed"
	veth_pair
	step "8a. the dpdk transport over af_packet under the units"
	case_af_packet
	step "8b. the dpdk transport over af_xdp under the units"
	case_af_xdp
	step "8c. the dpdk transport over memif under the units"
	case_memif
	step "8d. the shm transport under the units"
	case_shm
	# Step 9 needs both running: back on tcp.
	write_topology "/proc/$LEADER/root$TOPO" "$IO_LISTEN" "$IO_METRICS" "$HV_METRICS" \
		"$SOCK" "$DISK" 1 "$IO_CTL" "$HV_CTL"
	start_unit "$IO_UNIT" || fail "systemctl start $IO_UNIT (on tcp again) failed"
	start_unit "$HV_UNIT" || fail "systemctl start $HV_UNIT (on tcp again) failed"

	step "9. dpkg -r, dpkg -P under the running units"
	remove_checks

	step "10. power off"
	timeout 10 nsenter -t "$LEADER" -a -- systemctl --no-block poweroff >/dev/null 2>&1 ||
		log "poweroff request failed"
	rc=0
	stop_pid "$NSPAWN_PID" 30 CONT || rc=$?
	NSPAWN_PID=
	pid_alive "$LEADER" && fail "container init still running after poweroff"
	LEADER=
	((rc == 0)) || log "systemd-nspawn exited with status $rc"
	log "container powered off; $((SECONDS - t0)) s in all"
	if ((${#SKIPPED[@]} > 0)); then
		echo "PASS: e2e/systemd (skipped: $(printf '%s\n' "${SKIPPED[@]}" | paste -sd, - | sed 's/,/, /g'))"
	else
		echo "PASS: e2e/systemd"
	fi
}

main "$@"
