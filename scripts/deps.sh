#!/usr/bin/env bash
# Install what vrio needs to build, test and run its demo on Debian 12.
# Installs only what is missing; safe to run again.
set -euo pipefail

PKGS=(
	build-essential cmake pkg-config
	libdpdk-dev protobuf-c-compiler libprotobuf-c-dev libyaml-dev
	libmicrohttpd-dev liburing-dev libsystemd-dev libcmocka-dev
	libjansson-dev libssl-dev
	qemu-system-x86 qemu-utils busybox-static cpio kmod
	prometheus python3 iproute2 systemd systemd-container debootstrap
	rdma-core libibverbs-dev librdmacm-dev ibverbs-providers
	dpdk-dev
	python3-cryptography cryptsetup-bin
	tcpdump
	scdoc python3-yaml dpkg-dev lintian
)
# Wanted, not needed: without them scripts/test.sh skips fuzzing and says so.
OPTIONAL=(
	clang libclang-rt-dev	# libFuzzer (tests/fuzz)
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() optional=()
for p in "${PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done
for p in "${OPTIONAL[@]}"; do
	installed "$p" || optional+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	if [ ${#missing[@]} -eq 0 ]; then
		echo "deps: not root, so not installing optional ${optional[*]}" >&2
		exit 0
	fi
	echo "deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
missing+=("${optional[@]}")
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
