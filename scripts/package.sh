#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# package.sh: Debian packages of vrio, built from this tree.
#
#   scripts/package.sh [--skip-deps] [--build-dir DIR] [--out-dir DIR]
#
# Installs the build dependencies (scripts/deps.sh; --skip-deps does not),
# builds vrio into DIR (default build-pkg/) with prefix /usr, Debian's
# hardening flags (dpkg-buildflags) and the units in /lib/systemd/system,
# installs it into a staging tree with `cmake --install`, splits that into
# four packages and builds them with dpkg-deb into the out dir (default
# DIR/debs), printing each .deb's path on its own line (and nothing else
# on stdout):
#
#   vrio-ioserver  /usr/bin/vrio-ioserver, vrio-ioserver@.service,
#                  vrio-ioserver(8)
#   vrio-localhv   /usr/bin/vrio-localhv, vrio-localhv@.service,
#                  vrio-localhv(8)
#   vrio-tools     /usr/bin/vrioctl and vrio-bench, vrioctl(8), vrio-bench(1)
#   vrio-common    (all architectures) /etc/vrio/topology.yaml (a conffile,
#                  the example topology), vrio-topology(5), the README and
#                  the example topologies in /usr/share/doc/vrio/, the
#                  Grafana dashboard and the Prometheus rules in
#                  /usr/share/vrio/
#
# Each binary package's Depends come from its ELF files' shared libraries
# (dpkg-shlibdeps); the daemons add vrio-common, procps (/bin/kill, the
# units' ExecReload) and DPDK's ring mempool driver (every mbuf pool: the
# dpdk transport's, local-hv's net devices'), and recommend the drivers
# the dpdk transport's ports need (bus_vdev, af_packet, af_xdp, memif):
# the EAL loads them at run time, so no ELF file names them. Every file `cmake --install` stages must land in
# exactly one package, or this fails. The version is the git tree's
# (0.4.0+gitN.gHASH before the first tag, .dirty for an edited tree), or
# the project's outside git.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAINTAINER=${VRIO_MAINTAINER:-"vrio maintainers <maintainers@vrio.example.org>"}
PACKAGES=(vrio-common vrio-ioserver vrio-localhv vrio-tools)
DPDK_MEMPOOL="librte-mempool-ring23"
DPDK_DRIVERS="librte-bus-vdev23, librte-net-af-packet23, librte-net-af-xdp23, librte-net-memif23"

skip_deps=0
build_dir=$VRIO_ROOT/build-pkg
out_dir=

usage() {
	sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit "${1:-2}"
}

parse_args() {
	while (($#)); do
		case $1 in
		-h | --help) usage 0 ;;
		--skip-deps) skip_deps=1 ;;
		--build-dir)
			(($# >= 2)) || usage
			build_dir=$2
			shift
			;;
		--out-dir)
			(($# >= 2)) || usage
			out_dir=$2
			shift
			;;
		*) usage ;;
		esac
		shift
	done
}

# project_version: the version in CMakeLists.txt's project().
project_version() {
	sed -n 's/^project(vrio VERSION \([0-9][0-9.]*\) .*/\1/p' "$VRIO_ROOT/CMakeLists.txt"
}

# deb_version: the packages' version, from git as the binaries' --version
# is (cmake/version.cmake), in a form dpkg orders: at a tag vX.Y.Z, X.Y.Z;
# N commits past it, X.Y.Z+gitN.gHASH; with no tag yet the project's
# version and the commit count stand in; .dirty (+dirty at a tag) for a
# tree with uncommitted changes.
deb_version() {
	local base d
	base=$(project_version)
	if ! git -C "$VRIO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		printf '%s\n' "$base"
		return 0
	fi
	if git -C "$VRIO_ROOT" describe --tags --abbrev=0 >/dev/null 2>&1; then
		d=$(git -C "$VRIO_ROOT" describe --tags --long --dirty)
		[[ $d =~ ^v?([0-9][0-9A-Za-z.~+]*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$ ]] ||
			die "the tag in '$d' is not a version (vX.Y.Z)"
		if [[ ${BASH_REMATCH[2]} == 0 ]]; then
			printf '%s%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[4]:++dirty}"
		else
			printf '%s+git%s.g%s%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" \
				"${BASH_REMATCH[3]}" "${BASH_REMATCH[4]:+.dirty}"
		fi
		return 0
	fi
	d=$(git -C "$VRIO_ROOT" describe --always --dirty)
	[[ $d =~ ^([0-9a-f]+)(-dirty)?$ ]] || die "unexpected git describe output '$d'"
	printf '%s+git%s.g%s%s\n' "$base" "$(git -C "$VRIO_ROOT" rev-list --count HEAD)" \
		"${BASH_REMATCH[1]}" "${BASH_REMATCH[2]:+.dirty}"
}

# build: configure and build the installed targets with Debian's flags.
build() {
	local cflags cppflags ldflags
	cflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
	cppflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)
	ldflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
	mkdir -p "$build_dir"
	cmake -S "$VRIO_ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_INSTALL_PREFIX=/usr -DVRIO_SYSTEMD_UNITDIR=/lib/systemd/system \
		-DCMAKE_C_FLAGS="$cflags $cppflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
		>"$build_dir/package-configure.log" 2>&1 || {
		tail -n 20 "$build_dir/package-configure.log" >&2
		die "cmake configure failed"
	}
	grep -q '^SCDOC:FILEPATH=.*scdoc$' "$build_dir/CMakeCache.txt" ||
		die "scdoc not found: the man pages cannot be built (scripts/deps.sh installs it)"
	cmake --build "$build_dir" -j "$(nproc)" --target vrio-ioserver vrio-localhv vrioctl \
		vrio-bench man >"$build_dir/package-build.log" 2>&1 || {
		tail -n 30 "$build_dir/package-build.log" >&2
		die "build failed (full log: $build_dir/package-build.log)"
	}
}

# take PKG PATH...: moves staged paths (relative to the staging root) into
# PKG's tree.
take() {
	local pkg=$1 p
	shift
	for p in "$@"; do
		[[ -e $STAGE/$p ]] || die "cmake --install did not stage $p"
		mkdir -p "$WORK/$pkg/$(dirname "$p")"
		mv "$STAGE/$p" "$WORK/$pkg/$p"
	done
}

# split: the staged install into the four package trees.
split() {
	local left
	take vrio-ioserver usr/bin/vrio-ioserver lib/systemd/system/vrio-ioserver@.service \
		usr/share/man/man8/vrio-ioserver.8
	take vrio-localhv usr/bin/vrio-localhv lib/systemd/system/vrio-localhv@.service \
		usr/share/man/man8/vrio-localhv.8
	take vrio-tools usr/bin/vrioctl usr/bin/vrio-bench usr/share/man/man8/vrioctl.8 \
		usr/share/man/man1/vrio-bench.1
	take vrio-common usr/share/man/man5/vrio-topology.5 usr/share/doc/vrio usr/share/vrio
	# The conffile: the example, to edit.
	install -D -m 0644 "$WORK/vrio-common/usr/share/doc/vrio/examples/topology.example.yaml" \
		"$WORK/vrio-common/etc/vrio/topology.yaml"
	left=$(find "$STAGE" -type f -o -type l)
	[[ -z $left ]] || die "staged by cmake --install but in no package: ${left//$STAGE/}"
}

# doc_files PKG: copyright and changelog.gz (a native package's) in
# /usr/share/doc/PKG;
# man pages, the changelog and the README compressed as dh_compress does.
doc_files() {
	local pkg=$1 root=$WORK/$1 f
	install -D -m 0644 "$WORK/copyright" "$root/usr/share/doc/$pkg/copyright"
	gzip -9n <"$WORK/changelog" >"$root/usr/share/doc/$pkg/changelog.gz"
	while IFS= read -r -d '' f; do
		gzip -9nf "$f"
	done < <(find "$root/usr/share/man" -type f -print0 2>/dev/null)
	[[ -f $root/usr/share/doc/vrio/README.md ]] && gzip -9nf "$root/usr/share/doc/vrio/README.md"
	return 0
}

write_copyright() {
	cat >"$WORK/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vrio

Files: *
Copyright: 2026 The vrio authors
License: BSD-3-Clause

License: BSD-3-Clause
 Redistribution and use in source and binary forms, with or without
 modification, are permitted provided that the following conditions are
 met:
 .
 1. Redistributions of source code must retain the above copyright
    notice, this list of conditions and the following disclaimer.
 .
 2. Redistributions in binary form must reproduce the above copyright
    notice, this list of conditions and the following disclaimer in the
    documentation and/or other materials provided with the distribution.
 .
 3. Neither the name of the copyright holder nor the names of its
    contributors may be used to endorse or promote products derived from
    this software without specific prior written permission.
 .
 THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS
 IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED
 TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
 PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
 HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
 SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED
 TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
 PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF
 LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
 NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
 SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
EOF
}

write_changelog() {
	local when commit=""
	when=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
	if git -C "$VRIO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		commit=" from git $(git -C "$VRIO_ROOT" describe --tags --always --dirty)"
	fi
	cat >"$WORK/changelog" <<EOF
vrio ($VERSION) unstable; urgency=medium

  * Built$commit
    by scripts/package.sh; see the README for what changed.

 -- $MAINTAINER  $when
EOF
}

# Maintainer scripts of a daemon package. systemd learns of the unit (and
# forgets it on removal); running instances are stopped on removal only (an
# upgrade leaves them running the old binary until the operator restarts
# them, so no guest loses its disk by surprise); a purge removes the
# instances' enablement links that `systemctl enable` made. DPKG_ROOT is
# empty but for chrootless installs (tests/ops/packages.sh).
write_maintscripts() {
	local pkg=$1 unit=$2 d=$WORK/$1/DEBIAN
	cat >"$d/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
	cat >"$d/prerm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = remove ] && [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop '$unit@*.service' >/dev/null || true
fi
EOF
	cat >"$d/postrm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = purge ]; then
	rm -f "\${DPKG_ROOT:-}"/etc/systemd/system/*.wants/$unit@*.service
fi
if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
	chmod 0755 "$d/postinst" "$d/prerm" "$d/postrm"
}

# control PKG ARCH SECTION DEPENDS RECOMMENDS SUMMARY DESCRIPTION
control() {
	local pkg=$1 arch=$2 section=$3 depends=$4 recommends=$5 summary=$6 desc=$7 size
	size=$(du -k -s --apparent-size --exclude=DEBIAN "$WORK/$pkg" | cut -f1)
	{
		printf 'Package: %s\nSource: vrio\nVersion: %s\nArchitecture: %s\n' "$pkg" "$VERSION" "$arch"
		printf 'Maintainer: %s\nInstalled-Size: %s\n' "$MAINTAINER" "$size"
		[[ -n $depends ]] && printf 'Depends: %s\n' "$depends"
		[[ -n $recommends ]] && printf 'Recommends: %s\n' "$recommends"
		printf 'Section: %s\nPriority: optional\n' "$section"
		printf 'Description: %s\n' "$summary"
		fold -s -w 72 <<<"$desc" | sed 's/ *$//; s/^/ /'
	} >"$WORK/$pkg/DEBIAN/control"
}

# shlibs PKG: dpkg-shlibdeps' Depends for PKG's ELF files.
shlibs() {
	local pkg=$1 out
	local -a elves
	mapfile -t elves < <(find "$WORK/$pkg/usr/bin" -type f)
	out=$(cd "$WORK/src" && dpkg-shlibdeps -O -T/dev/null "${elves[@]}" 2>"$WORK/shlibdeps-$pkg.log") || {
		cat "$WORK/shlibdeps-$pkg.log" >&2
		die "dpkg-shlibdeps failed for $pkg"
	}
	sed -n 's/^shlibs:Depends=//p' <<<"$out"
}

# finish PKG: permissions, md5sums, and the .deb.
finish() {
	local pkg=$1 arch deb
	arch=$(sed -n 's/^Architecture: //p' "$WORK/$pkg/DEBIAN/control")
	find "$WORK/$pkg" -type d -exec chmod 0755 {} +
	find "$WORK/$pkg" -type f ! -path '*/DEBIAN/*' ! -path '*/usr/bin/*' -exec chmod 0644 {} +
	(cd "$WORK/$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
		xargs -0 -r md5sum >DEBIAN/md5sums)
	chmod 0644 "$WORK/$pkg/DEBIAN/md5sums" "$WORK/$pkg/DEBIAN/control"
	deb=$out_dir/${pkg}_${VERSION}_${arch}.deb
	dpkg-deb --root-owner-group -Zxz --build "$WORK/$pkg" "$deb" >/dev/null ||
		die "dpkg-deb failed for $pkg"
	printf '%s\n' "$deb"
}

main() {
	local arch d
	parse_args "$@"
	if ((!skip_deps)); then
		((EUID == 0)) || die "installing dependencies needs root: sudo $0 (or --skip-deps)"
		bash "$VRIO_ROOT/scripts/deps.sh" >&2
	fi
	need_cmd cmake dpkg-deb dpkg-shlibdeps dpkg-buildflags gzip strip md5sum
	build_dir=$(mkdir -p "$build_dir" && cd "$build_dir" && pwd)
	out_dir=${out_dir:-$build_dir/debs}
	mkdir -p "$out_dir"
	out_dir=$(cd "$out_dir" && pwd)
	VERSION=$(deb_version)
	SOURCE_DATE_EPOCH=$(git -C "$VRIO_ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
	export SOURCE_DATE_EPOCH
	arch=$(dpkg --print-architecture)
	log "building vrio $VERSION ($arch) in $build_dir" >&2

	build
	lib_traps
	make_tmpdir WORK
	STAGE=$WORK/stage
	rm -f "$out_dir"/vrio-*.deb
	DESTDIR=$STAGE cmake --install "$build_dir" >"$WORK/install.log" 2>&1 || {
		cat "$WORK/install.log" >&2
		die "cmake --install failed"
	}
	split
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
		"$WORK"/vrio-*/usr/bin/*
	write_copyright
	write_changelog
	# dpkg-shlibdeps reads the source's debian/control.
	mkdir -p "$WORK/src/debian"
	printf 'Source: vrio\n\nPackage: vrio-ioserver\nArchitecture: any\n' >"$WORK/src/debian/control"
	for d in "${PACKAGES[@]}"; do
		mkdir -p "$WORK/$d/DEBIAN"
		doc_files "$d"
	done
	printf '/etc/vrio/topology.yaml\n' >"$WORK/vrio-common/DEBIAN/conffiles"
	write_maintscripts vrio-ioserver vrio-ioserver
	write_maintscripts vrio-localhv vrio-localhv

	control vrio-common all admin "" "" \
		"vrio rack topology, examples, dashboard and alert rules" \
		"vrio moves the paravirtual I/O of a rack's virtual machines to consolidated I/O servers. This package holds what its daemons and tools share: the rack topology /etc/vrio/topology.yaml (an example to edit) and its manual page vrio-topology(5), example topologies, the README, a Grafana dashboard and Prometheus alert rules for a rack."
	control vrio-ioserver "$arch" net \
		"$(shlibs vrio-ioserver), $DPDK_MEMPOOL, vrio-common (= $VERSION), procps" "$DPDK_DRIVERS" \
		"vrio I/O server: device models and backends for remote VMs" \
		"vrio moves the paravirtual I/O of a rack's virtual machines to consolidated I/O servers. vrio-ioserver runs on the I/O nodes: the virtio-blk and virtio-net device models, file, block device and RAM backends through io_uring, and one L2 switch per network, on polling cores, for the hosts that connect to it over TCP, shared memory, DPDK or RDMA. It runs as the systemd unit vrio-ioserver@NAME."
	control vrio-localhv "$arch" net \
		"$(shlibs vrio-localhv), $DPDK_MEMPOOL, vrio-common (= $VERSION), procps" "$DPDK_DRIVERS" \
		"vrio compute-node daemon: vhost-user devices served remotely" \
		"vrio moves the paravirtual I/O of a rack's virtual machines to consolidated I/O servers. vrio-localhv runs on each compute node: a vhost-user backend (DPDK rte_vhost) that QEMU's vhost-user-blk and vhost-user net devices attach to, validating every descriptor chain and forwarding the requests to the device's I/O server. It runs as the systemd unit vrio-localhv@NAME."
	control vrio-tools "$arch" admin "$(shlibs vrio-tools)" "vrio-common" \
		"vrio tools: vrioctl and vrio-bench" \
		"vrio moves the paravirtual I/O of a rack's virtual machines to consolidated I/O servers. vrioctl checks topology files, reads metrics and drives the daemons through their control sockets (status, devices, reload, move); vrio-bench is a vhost-user frontend that plays a guest for load, verification and malformed requests."
	for d in "${PACKAGES[@]}"; do
		finish "$d"
	done
}

main "$@"
