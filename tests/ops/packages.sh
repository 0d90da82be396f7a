#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# packages.sh BUILD_DIR: the Debian packages, as an operator gets them.
#
#   1. scripts/package.sh --skip-deps --build-dir BUILD_DIR/pkg prints the
#      paths of four .debs, one a line: vrio-common, vrio-ioserver,
#      vrio-localhv, vrio-tools;
#   2. lintian finds no error and no warning in them (what it says is
#      printed);
#   3. their contents: the binaries in /usr/bin; each daemon's unit in
#      /lib/systemd/system runs /usr/bin/DAEMON, reloads with SIGHUP and
#      points at man pages that the packages ship; the five man pages;
#      /etc/vrio/topology.yaml a conffile of vrio-common; the example
#      topologies in /usr/share/doc/vrio/examples/; the dashboard and the
#      alert rules; the Depends of each binary package computed from its
#      shared libraries (libc6 at least), the daemons' on vrio-common of
#      the same version, procps and DPDK's mempool driver;
#   4. dpkg -i of all four into an empty scratch root (dpkg --root, the
#      maintainer scripts run chrootless with DPKG_ROOT, dependencies not
#      installed there: --force-depends), an edited conffile and an
#      instance's enablement link (as `systemctl enable` makes it) added;
#      dpkg -r of all four leaves only those two; dpkg -P leaves nothing
#      outside dpkg's own database, which no longer knows the packages.
#
# The packages' install under a real systemd is e2e/systemd's part.
# Skipped without dpkg-deb, dpkg-shlibdeps, scdoc or lintian (scripts/deps.sh
# installs them), or when not root (dpkg --root runs maintainer scripts).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

PACKAGES=(vrio-common vrio-ioserver vrio-localhv vrio-tools)
MAN_PAGES=(man8/vrio-ioserver.8 man8/vrio-localhv.8 man8/vrioctl.8 man1/vrio-bench.1
	man5/vrio-topology.5)

TMP=
declare -A DEB=()

step() { printf '== %s\n' "$*"; }

# contents PKG: the paths a package ships, without the leading ".".
contents() {
	dpkg-deb -c "${DEB[$1]}" | awk '{ print $6 }' | sed 's#^\./#/#; s#/$##' | sed '/^$/d'
}

build_debs() {
	local build=$1 line n=0 name
	scripts_out=$TMP/package.out
	"$VRIO_ROOT/scripts/package.sh" --skip-deps --build-dir "$build/pkg" >"$scripts_out" \
		2>"$TMP/package.err" || {
		tail -n 30 "$TMP/package.err" >&2
		die "scripts/package.sh failed"
	}
	while IFS= read -r line; do
		n=$((n + 1))
		[[ $line == /*.deb && -f $line ]] || die "package.sh printed '$line', not the path of a .deb"
		name=$(dpkg-deb -f "$line" Package)
		[[ -z ${DEB[$name]:-} ]] || die "package.sh printed two .debs of $name"
		DEB[$name]=$line
		printf '  %s  %s\n' "$(du -h "$line" | cut -f1)" "${line##*/}"
	done <"$scripts_out"
	((n == ${#PACKAGES[@]})) || die "package.sh printed $n paths, expected ${#PACKAGES[@]}"
	for name in "${PACKAGES[@]}"; do
		[[ -n ${DEB[$name]:-} ]] || die "package.sh built no $name package"
	done
}

run_lintian() {
	local out rc=0
	out=$(lintian --pedantic "${DEB[@]}" 2>&1) || rc=$?
	out=$(grep -v '^running with root privileges' <<<"$out" || true)
	if [[ -n $out ]]; then
		printf '%s\n' "$out" | sed 's/^/  lintian: /'
	else
		echo "  lintian (pedantic): nothing to say"
	fi
	grep -qE '^[EW]: ' <<<"$out" && die "lintian reports errors or warnings (above)"
	((rc == 0)) || die "lintian failed (status $rc)"
	return 0
}

# unit_file PKG UNIT: the unit's text from the package.
unit_file() {
	dpkg-deb --fsys-tarfile "${DEB[$1]}" | tar -xO "./lib/systemd/system/$2"
}

check_contents() {
	local d unit text p man version dep all
	all=$(for p in "${PACKAGES[@]}"; do contents "$p"; done)
	version=$(dpkg-deb -f "${DEB[vrio-common]}" Version)
	for p in /usr/bin/vrio-ioserver:vrio-ioserver /usr/bin/vrio-localhv:vrio-localhv \
		/usr/bin/vrioctl:vrio-tools /usr/bin/vrio-bench:vrio-tools; do
		contents "${p#*:}" | grep -qx "${p%%:*}" || die "${p#*:} does not ship ${p%%:*}"
	done
	for d in ioserver localhv; do
		unit=vrio-$d@.service
		contents "vrio-$d" | grep -qx "/lib/systemd/system/$unit" ||
			die "vrio-$d does not ship /lib/systemd/system/$unit"
		text=$(unit_file "vrio-$d" "$unit")
		grep -qx "ExecStart=/usr/bin/vrio-$d --config /etc/vrio/topology.yaml --node %i" <<<"$text" ||
			die "$unit: ExecStart does not run /usr/bin/vrio-$d: $(grep ExecStart <<<"$text")"
		grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' <<<"$text" ||
			die "$unit: no ExecReload sending SIGHUP"
		for man in $(sed -n 's/^Documentation=//p' <<<"$text"); do
			[[ $man =~ ^man:([a-z-]+)\(([0-9])\)$ ]] || die "$unit: Documentation=$man is not a man page"
			grep -qx "/usr/share/man/man${BASH_REMATCH[2]}/${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.gz" \
				<<<"$all" || die "$unit: Documentation=$man, a page no package ships"
		done
		dep=$(dpkg-deb -f "${DEB[vrio-$d]}" Depends)
		grep -q "vrio-common (= $version)" <<<"$dep" || die "vrio-$d does not depend on vrio-common (= $version): $dep"
		grep -qw procps <<<"$dep" || die "vrio-$d does not depend on procps (/bin/kill): $dep"
		# A plugin the EAL loads for every mbuf pool: no ELF file names it.
		grep -qw librte-mempool-ring23 <<<"$dep" ||
			die "vrio-$d does not depend on librte-mempool-ring23 (DPDK's mempool driver): $dep"
	done
	for p in vrio-ioserver vrio-localhv vrio-tools; do
		dep=$(dpkg-deb -f "${DEB[$p]}" Depends)
		grep -q 'libc6 (>= ' <<<"$dep" || die "$p: Depends lacks the shared libraries' packages: $dep"
	done
	grep -q 'librte-vhost23' <<<"$(dpkg-deb -f "${DEB[vrio-localhv]}" Depends)" ||
		die "vrio-localhv does not depend on librte-vhost23 (rte_vhost)"
	for man in "${MAN_PAGES[@]}"; do
		grep -qx "/usr/share/man/$man.gz" <<<"$all" || die "no package ships /usr/share/man/$man.gz"
	done
	for p in /etc/vrio/topology.yaml /usr/share/doc/vrio/examples/topology.example.yaml \
		/usr/share/doc/vrio/examples/net.yaml /usr/share/vrio/grafana/vrio-rack.json \
		/usr/share/vrio/prometheus/vrio-alerts.yml; do
		contents vrio-common | grep -qx "$p" || die "vrio-common does not ship $p"
	done
	dpkg-deb --ctrl-tarfile "${DEB[vrio-common]}" | tar -xO ./conffiles | grep -qx /etc/vrio/topology.yaml ||
		die "/etc/vrio/topology.yaml is not a conffile of vrio-common"
	echo "  binaries, units, man pages, conffile, examples, dashboard, rules, Depends: as expected"
}

# tree ROOT: every path under ROOT but dpkg's database, one a line.
tree() {
	(cd "$1" && find . -mindepth 1 ! -path './var/lib/dpkg' ! -path './var/lib/dpkg/*' | sort)
}

dpkg_root() {
	dpkg --root="$ROOT" --force-script-chrootless --log=/dev/null "$@" >>"$TMP/dpkg.log" 2>&1 || {
		tail -n 20 "$TMP/dpkg.log" >&2
		die "dpkg $* failed in the scratch root"
	}
}

install_remove() {
	local before after extra link
	ROOT=$TMP/root
	mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates"
	: >"$ROOT/var/lib/dpkg/status"
	before=$(tree "$ROOT")

	dpkg_root --force-depends -i "${DEB[@]}"
	for p in "${PACKAGES[@]}"; do
		[[ $(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Status}' "$p") == "install ok installed" ]] ||
			die "$p is not installed in the scratch root"
	done
	[[ -x $ROOT/usr/bin/vrio-ioserver && -f $ROOT/lib/systemd/system/vrio-localhv@.service ]] ||
		die "dpkg -i did not install the files"
	echo "# edited" >>"$ROOT/etc/vrio/topology.yaml"
	link=etc/systemd/system/multi-user.target.wants/vrio-ioserver@io0.service
	mkdir -p "$ROOT/$(dirname "$link")"
	ln -s /lib/systemd/system/vrio-ioserver@.service "$ROOT/$link"
	echo "  installed in a scratch root; conffile edited, vrio-ioserver@io0 enabled"

	dpkg_root -r "${PACKAGES[@]}"
	after=$(tree "$ROOT")
	extra=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") |
		grep -vxE '\./etc|\./etc/vrio|\./etc/vrio/topology\.yaml|\./etc/systemd(/system(/multi-user\.target\.wants(/vrio-ioserver@io0\.service)?)?)?' || true)
	[[ -z $extra ]] || die "dpkg -r left behind more than the conffile and the admin's link: $extra"
	grep -q '^# edited$' "$ROOT/etc/vrio/topology.yaml" || die "dpkg -r lost the edited conffile"
	[[ -L $ROOT/$link ]] || die "dpkg -r removed the enablement link the admin made"
	echo "  dpkg -r: only /etc/vrio/topology.yaml (as edited) and the admin's enablement link remain"

	dpkg_root -P vrio-common vrio-ioserver vrio-localhv
	after=$(tree "$ROOT")
	extra=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") |
		grep -vxE '\./etc|\./etc/systemd(/system(/multi-user\.target\.wants)?)?' || true)
	[[ -z $extra ]] || die "dpkg -P left behind: $extra"
	for p in "${PACKAGES[@]}"; do
		if dpkg-query --admindir="$ROOT/var/lib/dpkg" -W "$p" >/dev/null 2>&1; then
			die "dpkg still knows $p after the purge"
		fi
	done
	echo "  dpkg -P: nothing left"
}

main() {
	[[ $# -eq 1 ]] || die "usage: $0 BUILD_DIR"
	local build c
	build=$(mkdir -p "$1" && cd "$1" && pwd)
	for c in dpkg-deb dpkg-shlibdeps dpkg-buildflags scdoc lintian cmake; do
		have_cmd "$c" || skip "$c not found (scripts/deps.sh installs it)"
	done
	[[ $(id -u) == 0 ]] || skip "needs root (dpkg --root runs the maintainer scripts)"
	lib_traps
	make_tmpdir TMP

	step "1. scripts/package.sh"
	build_debs "$build"
	step "2. lintian"
	run_lintian
	step "3. contents"
	check_contents
	step "4. dpkg -i, -r, -P in a scratch root"
	install_remove
	echo "PASS: ops/packages"
}

main "$@"
