#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-image.sh OUTDIR: builds the e2e test guest.
#
#   OUTDIR/vmlinuz         the Debian kernel (the package linux-image-amd64
#                          depends on), fetched with apt-get download
#   OUTDIR/initrd.cpio.gz  busybox-static, the virtio modules, /init
#                          (tests/e2e/guest-init.sh), guest-io and guest-tcp
#   OUTDIR/guest-io        the static guest-io program (also the host-side
#                          check-file tool)
#   OUTDIR/guest-tcp       the static guest-tcp program (a TCP stream the
#                          receiver checks)
#
# Cached: the kernel package is downloaded and unpacked once into
# $VRIO_CACHE/kernel (default ~/.cache/vrio), and the outputs are rebuilt
# only when one of their inputs is newer. Does not use /boot.
#
# Environment: VRIO_CACHE; VRIO_KERNEL_PKG (a kernel package name, instead of
# the one linux-image-amd64 depends on); VRIO_GUEST_MODULES (modules to load,
# dependencies added from modules.dep; default: virtio_pci virtio_blk
# virtio_net).
#
# Exit status: 0, 77 when the kernel package cannot be obtained or lacks a
# module asked for, 1 otherwise.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# depmod lives in sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

GUEST_MODULES=${VRIO_GUEST_MODULES:-virtio_pci virtio_blk virtio_net}
INIT_SRC=$VRIO_ROOT/tests/e2e/guest-init.sh
BUSYBOX=/bin/busybox
KCACHE=$VRIO_CACHE/kernel
_apt_updated=0

usage() {
	echo "usage: $0 OUTDIR" >&2
	exit 2
}

# apt_update_once: runs apt-get update the first time it is called.
apt_update_once() {
	((_apt_updated == 0)) || return 1
	_apt_updated=1
	log "apt-get update (package lists missing or stale)"
	apt-get update -qq >&2
}

# kernel_pkg: prints the kernel package linux-image-amd64 depends on.
kernel_pkg() {
	if [[ -n ${VRIO_KERNEL_PKG:-} ]]; then
		echo "$VRIO_KERNEL_PKG"
		return 0
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ { print $2; exit }'
}

download_deb() {
	local pkg=$1 dir=$2
	(cd "$dir" && apt-get download -q "$pkg" >&2 2>"$dir/download.log") || {
		log "apt-get download $pkg failed: $(tail -n 1 "$dir/download.log")"
		return 1
	}
}

# unpack_kernel PKG DIR: downloads PKG, unpacks it into DIR/root and builds
# its modules.dep (Debian ships none: depmod runs at install time).
unpack_kernel() {
	local pkg=$1 dir=$2 deb release
	rm -rf "$dir"
	mkdir -p "$dir"
	download_deb "$pkg" "$dir" || {
		rm -rf "$dir"
		return 1
	}
	deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
	[[ -n $deb ]] || die "apt-get download $pkg left no ${pkg}_*.deb"
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$dir/root"
	rm -f "$deb"
	release=$(find "$dir/root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
	[[ -n $release && -f $dir/root/boot/vmlinuz-$release ]] ||
		die "$pkg holds no boot/vmlinuz-* matching lib/modules/*"
	if [[ ! -f $dir/root/lib/modules/$release/modules.dep ]]; then
		depmod -b "$dir/root" "$release"
	fi
	echo "$release" >"$dir/release"
	touch "$dir/.complete"
}

# kernel_dir VAR: stores the unpacked kernel package's directory in VAR,
# fetching it when the cache does not have it. Returns 1 when it cannot.
kernel_dir() {
	local -n _kernel_dir_out=$1
	local pkg cached
	pkg=$(kernel_pkg)
	if [[ -z $pkg ]]; then
		# No package lists (apt-get update never ran): a kernel unpacked
		# earlier does as well as the newest one.
		cached=$(find "$KCACHE" -mindepth 2 -maxdepth 2 -name .complete -printf '%T@ %h\n' |
			sort -rn | awk 'NR == 1 { print $2 }')
		if [[ -n $cached ]]; then
			log "apt-cache knows no kernel package: using the cached $(basename "$cached")"
			_kernel_dir_out=$cached
			return 0
		fi
		apt_update_once && pkg=$(kernel_pkg)
	fi
	if [[ -z $pkg ]]; then
		log "no kernel package: apt-cache depends linux-image-amd64 found none"
		return 1
	fi
	_kernel_dir_out=$KCACHE/$pkg
	[[ -f $_kernel_dir_out/.complete ]] && return 0
	log "fetching kernel package $pkg"
	if ! unpack_kernel "$pkg" "$_kernel_dir_out"; then
		apt_update_once || return 1
		pkg=$(kernel_pkg)
		[[ -n $pkg ]] || return 1
		_kernel_dir_out=$KCACHE/$pkg
		unpack_kernel "$pkg" "$_kernel_dir_out" || return 1
	fi
}

# Module resolution state: modules.dep lines and built-in modules by name
# (dashes folded to underscores, as the kernel does), and the load order.
declare -A _dep_line=() _builtin=() _added=()
_load_order=()

mod_name() {
	local n=${1##*/}
	n=${n%%.ko*}
	echo "${n//-/_}"
}

read_module_db() {
	local moddir=$1 line path
	while IFS= read -r line; do
		_dep_line[$(mod_name "${line%%:*}")]=$line
	done <"$moddir/modules.dep"
	if [[ -f $moddir/modules.builtin ]]; then
		while IFS= read -r path; do
			_builtin[$(mod_name "$path")]=1
		done <"$moddir/modules.builtin"
	fi
}

# add_module NAME: appends NAME's dependencies, then NAME, to _load_order.
add_module() {
	local m line i
	local -a deps
	m=$(mod_name "$1")
	[[ -n ${_added[$m]:-} || -n ${_builtin[$m]:-} ]] && return 0
	line=${_dep_line[$m]:-}
	if [[ -z $line ]]; then
		log "module $m is not in modules.dep: this kernel does not build it"
		exit "$VRIO_SKIP"
	fi
	read -r -a deps <<<"${line#*:}"
	# modules.dep lists a module's dependencies most-dependent first.
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
		add_module "${deps[i]}"
	done
	_added[$m]=1
	_load_order+=("${line%%:*}")
}

# copy_module SRC DST: copies a module, uncompressed (busybox insmod wants
# plain .ko; Debian 12 ships them plain, later releases compress them).
copy_module() {
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*) die "unknown module format: $1" ;;
	esac
}

# stage_initramfs DIR KDIR GUEST_IO GUEST_TCP: lays out the initramfs tree
# in DIR.
stage_initramfs() {
	local dir=$1 kdir=$2 guest_io=$3 guest_tcp=$4 release moddir rel name applet
	release=$(cat "$kdir/release")
	moddir=$kdir/root/lib/modules/$release
	mkdir -p "$dir"/{bin,dev,etc,lib/modules,proc,sys,tmp}
	cp "$BUSYBOX" "$dir/bin/busybox"
	for applet in $("$BUSYBOX" --list); do
		[[ $applet == busybox ]] || ln -sf busybox "$dir/bin/$applet"
	done
	cp "$guest_io" "$dir/bin/guest-io"
	cp "$guest_tcp" "$dir/bin/guest-tcp"
	cp "$INIT_SRC" "$dir/init"
	chmod 0755 "$dir/init"
	read_module_db "$moddir"
	for name in $GUEST_MODULES; do
		add_module "$name"
	done
	: >"$dir/etc/vrio-modules"
	for rel in "${_load_order[@]}"; do
		name=$(basename "$rel")
		name=${name%%.ko*}.ko
		copy_module "$moddir/$rel" "$dir/lib/modules/$name"
		echo "/lib/modules/$name" >>"$dir/etc/vrio-modules"
	done
}

# pack_initramfs DIR OUT: a gzip'd newc cpio of DIR.
pack_initramfs() {
	(cd "$1" && find . -print | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$2.tmp"
	mv -f "$2.tmp" "$2"
}

# up_to_date OUT INPUTS...: true when OUT exists and is newer than each input.
up_to_date() {
	local out=$1 input
	shift
	[[ -f $out ]] || return 1
	for input in "$@"; do
		[[ $out -nt $input ]] || return 1
	done
}

check_busybox() {
	[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: install busybox-static"
	if ldd "$BUSYBOX" >/dev/null 2>&1; then
		die "$BUSYBOX is dynamically linked: install busybox-static"
	fi
}

main() {
	[[ $# -eq 1 ]] || usage
	local out=$1 kdir release stage c
	for c in apt-get apt-cache dpkg-deb; do
		have_cmd "$c" || { log "$c not found: cannot fetch a kernel package"; exit "$VRIO_SKIP"; }
	done
	need_cmd depmod cpio gzip find flock
	check_busybox
	mkdir -p "$out" "$KCACHE"
	out=$(cd "$out" && pwd)

	# One builder at a time per output dir and for the shared cache.
	exec 8>"$KCACHE/.lock" 9>"$out/.lock"
	flock -w 600 8 || die "timed out waiting for $KCACHE/.lock"
	flock -w 600 9 || die "timed out waiting for $out/.lock"

	kernel_dir kdir || exit "$VRIO_SKIP"
	release=$(cat "$kdir/release")
	build_guest_io "$out/guest-io"
	build_guest_tcp "$out/guest-tcp"

	if ! up_to_date "$out/vmlinuz" "$kdir/.complete"; then
		cp "$kdir/root/boot/vmlinuz-$release" "$out/vmlinuz.tmp"
		mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"
	fi
	if ! up_to_date "$out/initrd.cpio.gz" "$kdir/.complete" "$out/guest-io" "$out/guest-tcp" \
		"$INIT_SRC" "$BUSYBOX" "${BASH_SOURCE[0]}" "$VRIO_ROOT/scripts/lib.sh" ||
		[[ $(cat "$out/modules" 2>/dev/null) != "$GUEST_MODULES" ]]; then
		log "building initramfs ($release; modules: $GUEST_MODULES)"
		make_tmpdir stage
		stage_initramfs "$stage" "$kdir" "$out/guest-io" "$out/guest-tcp"
		pack_initramfs "$stage" "$out/initrd.cpio.gz"
		echo "$release" >"$out/kernel-release"
		echo "$GUEST_MODULES" >"$out/modules"
	fi
	log "guest image ready in $out (kernel $release)"
}

lib_traps
main "$@"
