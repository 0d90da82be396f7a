#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=sh
#
# /init of the e2e guest initramfs (busybox sh, PID 1). Mounts the pseudo
# file systems, loads the modules listed in /etc/vrio-modules, runs what the
# kernel command line asks for and powers the machine off.
#
# Kernel command line:
#   vrio.run=NAME[,NAME...]  blk-info     block device size and hardware queues
#                            blk-pattern  blk-info, then guest-io write-verify
#                            blk-verify   guest-io read-verify (data from a
#                                         previous blk-pattern run)
#                            blk-loop     blk-info, then guest-io loop-verify:
#                                         write-verify passes for vrio.secs
#                                         seconds, one "VRIO-PASS:" line each
#                            blk-writers  blk-info, then vrio.writers (4)
#                                         loop-verify at once for vrio.secs,
#                                         writer K over vrio.len bytes at
#                                         vrio.off + K * vrio.len with seed
#                                         vrio.seed + K * 1000; one result
#                                         line each
#                            host-script  vrio.script (a host path) under the
#                                         host's /bin/sh, chrooted into the
#                                         host's root (9p tag hostroot, read
#                                         only), with vrio.share (9p tag
#                                         vrio-run, read-write) at its host
#                                         path; it prints its own results
#                            net-serve    eth0 at vrio.ip; ping vrio.peer; take
#                                         vrio.bytes on TCP port 5000 and print
#                                         their md5; linger vrio.linger seconds
#                            net-send     eth0 at vrio.ip; ping vrio.peer; send
#                                         vrio.bytes of random data to it
#                            net-isolated eth0 at vrio.ip; vrio.peer must NOT
#                                         answer a ping
#                            net-mq-serve net-serve's shape over vrio.flows
#                                         TCP flows at once (ports 5000 up),
#                                         vrio.bytes in all, one md5 each,
#                                         after checking that eth0 has
#                                         vrio.pairs queue pairs
#                            net-mq-send  the other end: flow K from local
#                                         port 40000 + K, run on CPU K mod 2
#                            net-acl      eth0 at vrio.ip; vrio.peer must
#                                         answer a ping; vrio.deny, if given,
#                                         must answer ARP but NOT a ping;
#                                         linger vrio.linger seconds
#                            tcp-server   eth0 at vrio.ip; its virtio feature
#                                         bits; guest-tcp server on
#                                         vrio.port (5001) for one run;
#                                         ping vrio.peer; linger
#                            tcp-client   eth0 at vrio.ip; its virtio feature
#                                         bits; ping vrio.peer; guest-tcp
#                                         client to vrio.peer:vrio.port for
#                                         vrio.secs (8) over vrio.conns (1)
#                                         connections; linger
#   vrio.dev=/dev/vda  vrio.off=BYTES  vrio.len=BYTES  vrio.seed=N  vrio.secs=N
#   vrio.writers=N
#   vrio.ip=ADDR/LEN  vrio.peer=ADDR  vrio.bytes=N  vrio.linger=SECONDS
#   vrio.deny=ADDR  vrio.port=N  vrio.conns=N  vrio.flows=N  vrio.pairs=N
#
# Every outcome is one console line "VRIO-RESULT: NAME key=value ... STATUS",
# STATUS being "ok", "MISMATCH" or "ERROR ...": tests/e2e/run-guest.sh reads
# them from the serial log.

PATH=/bin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel opens /dev/console before devtmpfs exists when the initramfs
# has no device node for it: reopen it now so that output reaches ttyS0.
exec </dev/console >/dev/console 2>&1

result() {
	echo "VRIO-RESULT: $*"
}

# param NAME DEFAULT: the value of vrio.NAME= on the kernel command line.
param() {
	read -r cmdline </proc/cmdline
	for word in $cmdline; do
		case $word in
		"vrio.$1="*)
			echo "${word#*=}"
			return
			;;
		esac
	done
	echo "$2"
}

load_modules() {
	while read -r module; do
		[ -n "$module" ] || continue
		if ! insmod "$module"; then
			result "insmod module=$module ERROR insmod failed"
			return 1
		fi
	done </etc/vrio-modules
}

# wait_block DEV: waits up to 10 s for a block device node.
wait_block() {
	n=0
	while [ ! -b "$1" ]; do
		if [ "$n" -ge 100 ]; then
			result "wait dev=$1 ERROR no such block device"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
}

run_blk_info() {
	dev=$(param dev /dev/vda)
	wait_block "$dev" || return 1
	name=${dev##*/}
	sectors=$(cat "/sys/block/$name/size")
	queues=0
	for q in "/sys/block/$name/mq"/*; do
		[ -d "$q" ] && queues=$((queues + 1))
	done
	result "blk-info dev=$dev size=$((sectors * 512)) hw_queues=$queues ok"
}

# run_guest_io MODE [ARG...]: guest-io MODE on vrio.dev over vrio.off,
# vrio.len and vrio.seed, with the mode's further arguments.
run_guest_io() {
	mode=$1
	shift
	dev=$(param dev /dev/vda)
	wait_block "$dev" || return 1
	guest-io "$mode" "$dev" "$(param off 4194304)" "$(param len 1048576)" "$(param seed 1)" "$@"
}

# run_writers: vrio.writers loop-verify processes at once over disjoint
# ranges, so that the device has several requests in flight; true when
# every one succeeds.
run_writers() {
	dev=$(param dev /dev/vda)
	wait_block "$dev" || return 1
	off=$(param off 4194304)
	len=$(param len 1048576)
	seed=$(param seed 1)
	secs=$(param secs 30)
	pids=""
	k=0
	while [ "$k" -lt "$(param writers 4)" ]; do
		guest-io loop-verify "$dev" $((off + k * len)) "$len" $((seed + k * 1000)) "$secs" &
		pids="$pids $!"
		k=$((k + 1))
	done
	ok=0
	for pid in $pids; do
		wait "$pid" || ok=1
	done
	return "$ok"
}

# net_up: eth0 with vrio.ip, once the NIC shows up (10 s at most).
net_up() {
	ip=$(param ip "")
	n=0
	while [ ! -e /sys/class/net/eth0 ]; do
		if [ "$n" -ge 100 ]; then
			result "net-up ERROR no eth0"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	ip link set lo up
	ip addr add "$ip" dev eth0 && ip link set eth0 up || {
		result "net-up ERROR cannot configure eth0 with $ip"
		return 1
	}
	result "net-up ip=$ip mac=$(cat /sys/class/net/eth0/address) ok"
}

# ping_until PEER SECONDS: true once PEER answers a ping.
ping_until() {
	n=0
	until ping -c 1 -W 1 "$1" >/dev/null 2>&1; do
		n=$((n + 1))
		[ "$n" -lt "$2" ] || return 1
	done
}

run_net_serve() {
	peer=$(param peer "")
	bytes=$(param bytes 10485760)
	net_up && net_features || return 1
	# busybox nc leaves only when its stdin closes: keep it open, and let
	# head end the transfer at the byte count.
	(sleep 600 | nc -l -p 5000 | head -c "$bytes" | md5sum >/tmp/sum) &
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	n=0
	while [ ! -s /tmp/sum ]; do
		if [ "$n" -ge 1800 ]; then
			result "net-recv ERROR nothing complete within 180 s"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	result "net-recv bytes=$bytes md5=$(cut -d' ' -f1 /tmp/sum) ok"
	sleep "$(param linger 0)"
}

run_net_send() {
	peer=$(param peer "")
	bytes=$(param bytes 10485760)
	net_up && net_features || return 1
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	head -c "$bytes" /dev/urandom >/tmp/data
	sum=$(md5sum /tmp/data | cut -d' ' -f1)
	n=0
	until nc -w 5 "$peer" 5000 </tmp/data; do
		n=$((n + 1))
		if [ "$n" -ge 30 ]; then
			result "net-send ERROR cannot connect to $peer:5000"
			return 1
		fi
		sleep 1
	done
	result "net-send bytes=$bytes md5=$sum ok"
	sleep "$(param linger 0)"
}

# net_queues: eth0 has vrio.pairs receive and transmit queues in use (the
# kernel shows one rx-N and tx-N per queue it uses).
net_queues() {
	want=$(param pairs 2)
	rx=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)
	tx=$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l)
	if [ "$rx" -ne "$want" ] || [ "$tx" -ne "$want" ]; then
		result "net-queues rx=$rx tx=$tx ERROR expected $want pairs"
		return 1
	fi
	result "net-queues rx=$rx tx=$tx cpus=$(grep -c ^processor /proc/cpuinfo) ok"
}

run_net_mq_serve() {
	peer=$(param peer "")
	flows=$(param flows 4)
	per=$(($(param bytes 10485760) / flows))
	net_up && net_queues || return 1
	k=0
	while [ "$k" -lt "$flows" ]; do
		(sleep 600 | nc -l -p $((5000 + k)) | head -c "$per" | md5sum >/tmp/sum$k) &
		k=$((k + 1))
	done
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	k=0
	n=0
	while [ "$k" -lt "$flows" ]; do
		if [ -s /tmp/sum$k ]; then
			result "net-recv flow=$k bytes=$per md5=$(cut -d' ' -f1 /tmp/sum$k) ok"
			k=$((k + 1))
			continue
		fi
		if [ "$n" -ge 2400 ]; then
			result "net-recv flow=$k ERROR nothing complete within 240 s"
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	sleep "$(param linger 0)"
}

# send_flow K PEER BYTES: one flow from local port 40000 + K to PEER's port
# 5000 + K, on CPU K mod 2 (its transmit queue, as the kernel maps CPUs).
send_flow() {
	head -c "$3" /dev/urandom >/tmp/data$1
	sum=$(md5sum /tmp/data$1 | cut -d' ' -f1)
	n=0
	until taskset -c $(($1 % $(grep -c ^processor /proc/cpuinfo))) \
		nc -w 5 -p $((40000 + $1)) "$2" $((5000 + $1)) </tmp/data$1; do
		n=$((n + 1))
		if [ "$n" -ge 30 ]; then
			result "net-send flow=$1 ERROR cannot connect to $2:$((5000 + $1))"
			return 1
		fi
		sleep 1
	done
	result "net-send flow=$1 bytes=$3 md5=$sum ok"
}

run_net_mq_send() {
	peer=$(param peer "")
	flows=$(param flows 4)
	per=$(($(param bytes 10485760) / flows))
	net_up && net_queues || return 1
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	pids=
	k=0
	while [ "$k" -lt "$flows" ]; do
		send_flow "$k" "$peer" "$per" &
		pids="$pids $!"
		k=$((k + 1))
	done
	ok=0
	for pid in $pids; do
		wait "$pid" || ok=1
	done
	sleep "$(param linger 0)"
	return "$ok"
}

run_net_isolated() {
	peer=$(param peer "")
	net_up || return 1
	if ping -c 3 -W 1 "$peer" >/dev/null 2>&1; then
		result "net-isolated peer=$peer ERROR it answered across networks"
		return 1
	fi
	result "net-isolated peer=$peer ok"
}

# run_net_acl: a filter between here and vrio.deny lets ARP through but
# not ICMP; vrio.peer is reachable both ways.
run_net_acl() {
	peer=$(param peer "")
	deny=$(param deny "")
	net_up || return 1
	if ! ping_until "$peer" 120; then
		result "net-ping peer=$peer ERROR no answer within 120 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	if [ -n "$deny" ]; then
		# Up and on the network: it answers ARP.
		n=0
		until arping -c 1 -w 2 -I eth0 "$deny" >/dev/null 2>&1; do
			n=$((n + 1))
			if [ "$n" -ge 60 ]; then
				result "net-arp peer=$deny ERROR no ARP answer within 120 s"
				return 1
			fi
		done
		result "net-arp peer=$deny ok"
		if ping -c 3 -W 1 "$deny" >/dev/null 2>&1; then
			result "net-denied peer=$deny ERROR it answered a ping"
			return 1
		fi
		result "net-denied peer=$deny ok"
	fi
	sleep "$(param linger 0)"
}

# net_features: the virtio feature bits eth0's device negotiated, bit 0
# first (the driver's view: /sys/bus/virtio/devices/*/features).
net_features() {
	f=$(cat /sys/class/net/eth0/device/features 2>/dev/null) || {
		result "net-features ERROR no /sys/class/net/eth0/device/features"
		return 1
	}
	result "net-features features=$f ok"
}

run_tcp_server() {
	peer=$(param peer "")
	net_up && net_features || return 1
	# Listening before the peer can reach us: its client retries for a
	# while, but need not.
	guest-tcp server "$(param port 5001)" 1 &
	srv=$!
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		kill "$srv"
		return 1
	fi
	result "net-ping peer=$peer ok"
	wait "$srv" || return 1
	sleep "$(param linger 0)"
}

run_tcp_client() {
	peer=$(param peer "")
	net_up && net_features || return 1
	if ! ping_until "$peer" 60; then
		result "net-ping peer=$peer ERROR no answer within 60 s"
		return 1
	fi
	result "net-ping peer=$peer ok"
	guest-tcp client "$peer" "$(param port 5001)" "$(param secs 8)s" "$(param conns 1)" ||
		return 1
	sleep "$(param linger 0)"
}

# run_host_script: the host's root at /host with fresh /proc, /sys, /dev
# and an empty /tmp and /run, the shared directory where the host has it.
run_host_script() {
	script=$(param script "")
	share=$(param share "")
	if [ -z "$script" ] || [ -z "$share" ]; then
		result "host-script ERROR vrio.script and vrio.share are required"
		return 1
	fi
	mkdir -p /host
	if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro \
		hostroot /host; then
		result "host-script ERROR cannot mount the host root (9p tag hostroot)"
		return 1
	fi
	mount -t proc proc /host/proc
	mount -t sysfs sysfs /host/sys
	mount -t devtmpfs devtmpfs /host/dev
	mkdir -p /host/dev/shm
	mount -t tmpfs tmpfs /host/dev/shm
	# What the host keeps under /tmp or /run that the script needs: each
	# such directory held by a bind mount while tmpfs covers /tmp and /run,
	# then bound back at its path.
	keep=$(param keep "")
	i=0
	for dir in $(echo "$keep" | tr ',' ' '); do
		mkdir -p "/keep/$i"
		mount -o bind "/host$dir" "/keep/$i" ||
			{ result "host-script ERROR cannot hold $dir"; return 1; }
		i=$((i + 1))
	done
	mount -t tmpfs tmpfs /host/tmp
	mount -t tmpfs tmpfs /host/run
	i=0
	for dir in $(echo "$keep" | tr ',' ' '); do
		mkdir -p "/host$dir"
		mount -o bind "/keep/$i" "/host$dir" ||
			{ result "host-script ERROR cannot bind $dir back"; return 1; }
		i=$((i + 1))
	done
	mkdir -p "/host$share"
	if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vrio-run "/host$share"; then
		result "host-script ERROR cannot mount $share (9p tag vrio-run)"
		return 1
	fi
	PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot /host /bin/sh "$script"
}

run_one() {
	case $1 in
	host-script) run_host_script ;;
	blk-info) run_blk_info ;;
	blk-pattern) run_blk_info && run_guest_io write-verify ;;
	blk-verify) run_guest_io read-verify ;;
	blk-loop) run_blk_info && run_guest_io loop-verify "$(param secs 30)" ;;
	blk-writers) run_blk_info && run_writers ;;
	net-serve) run_net_serve ;;
	net-send) run_net_send ;;
	net-isolated) run_net_isolated ;;
	net-mq-serve) run_net_mq_serve ;;
	net-mq-send) run_net_mq_send ;;
	net-acl) run_net_acl ;;
	tcp-server) run_tcp_server ;;
	tcp-client) run_tcp_client ;;
	*)
		result "$1 ERROR unknown vrio.run"
		return 1
		;;
	esac
}

main() {
	status=0
	if load_modules; then
		runs=$(param run blk-info)
		for name in $(echo "$runs" | tr ',' ' '); do
			run_one "$name" || status=1
		done
	else
		status=1
	fi
	echo "VRIO-DONE status=$status"
	sync
	poweroff -f
}

main
# poweroff -f does not return; should it fail, PID 1 exiting panics the
# kernel, and panic=-1 with QEMU's -no-reboot ends the VM all the same.
