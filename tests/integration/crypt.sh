#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# crypt.sh BUILD_DIR: the crypt stage end to end, and its data at rest
# cross-checked by implementations that share no code with it. One
# io-server serves four 16 MiB file disks:
#   disk-p  crypt with 512-byte sectors from the start
#   disk-s  crypt with sector_size 4096 (IVs count 512-byte sectors)
#   disk-l  crypt with sector_size 4096, iv_large_sectors
#   disk-r  no stage at first; a reload adds crypt while it is attached and
#           before it holds any data (the issue's case)
#  1. Reloads that would give disk-r a key file with mode 0644, or one of
#     32 bytes, are refused with a message that names the file (and holds
#     no key byte), and change nothing; then the reload with a good key
#     file adds the stage.
#  2. vrio-bench: verified random writes at QD 32 on every disk (and 512-
#     byte ones on part of disk-p), then a verified read of every disk:
#     the guest sees its plaintext.
#  3. On the 4096-byte disks, 512-byte writes are answered IOERR and
#     counted as the stage's drops.
#  4. No key appears in the metrics, vrioctl's answers or the logs.
#  5. With the daemons stopped, each backing file is decrypted sector by
#     sector with Python's cryptography package and must hold what
#     vrio-bench wrote (vrio-bench --check-file), while the backing file
#     itself must not (the data is encrypted at rest). Where cryptsetup
#     and the kernel's dm-crypt are available (root), each file is also
#     opened with `cryptsetup open --type plain` on a loop device and
#     checked the same way, and must agree with Python's decryption on
#     every byte, unwritten sectors too. When this kernel has no dm-crypt,
#     that runs in a QEMU TCG guest (tests/e2e's machinery: the Debian
#     kernel, this machine's root shared read-only, the run directory
#     read-write); when neither can, the test says why it skips that
#     check. VRIO_CRYPT_GUEST=0 leaves the guest out.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

DISKS=(p s l r)
declare -A SS=([p]=512 [s]=4096 [l]=4096 [r]=512)
declare -A LARGE=([p]=false [s]=false [l]=true [r]=false)
# What vrio-bench writes and reads on each (disk-p's last MiB: 512 bytes).
declare -A BS=([p]=4096 [s]=65536 [l]=4096 [r]=65536)
declare -A SIZE=([p]=15M [s]=16M [l]=16M [r]=16M)

# crypt_of D: disk-D's interpose entry.
crypt_of() {
	local d=$1 extra=""
	[[ ${SS[$d]} == 4096 ]] && extra=", sector_size: 4096"
	[[ ${LARGE[$d]} == true ]] && extra+=", iv_large_sectors: true"
	printf '      - crypt: {cipher: aes-xts-plain64, key_file: %s%s}\n' "$RUN/key-$d" "$extra"
}

# write_topo FILE R_KEY: the rack; R_KEY is the key file disk-r's crypt
# stage reads, or "" for no stage. Written beside and renamed, so that a
# daemon never reads half a file.
write_topo() {
	local d
	{
		cat <<EOF
version: 1
io_servers:
  - name: io0
    listen: $VRIO_IO_LISTEN
    metrics: $VRIO_IO_METRICS
    control: $VRIO_IO_CTL
    cores: {min: 1, max: 1}
hosts:
  - name: host0
    metrics: $VRIO_HV_METRICS
    control: $VRIO_HV_CTL
devices:
EOF
		for d in "${DISKS[@]}"; do
			cat <<EOF
  - name: disk-$d
    type: blk
    host: host0
    io_server: io0
    socket: $RUN/$d.sock
    backend: {file: $RUN/disk-$d.img, size: 16M}
EOF
			if [[ $d != r ]]; then
				printf '    interpose:\n'
				crypt_of "$d"
			elif [[ -n $2 ]]; then
				printf '    interpose:\n'
				crypt_of r | sed "s|$RUN/key-r|$2|"
			fi
		done
	} >"$1.new"
	mv -f "$1.new" "$1"
}

fail() {
	show_log vrio-localhv "$VRIO_HV_LOG"
	show_log vrio-ioserver "$VRIO_IO_LOG"
	die "$*"
}

chain_is() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json" || return 1
	[[ $(json "$RUN/devices.json" \
		"','.join([d['interpose'] for d in j['devices'] if d['name'] == '$1'][0])") == "$2" ]]
}

generation() {
	"$VRIOCTL" --socket "$VRIO_IO_CTL" status --json >"$RUN/status.json" || fail "vrioctl status"
	json "$RUN/status.json" "j['config']['generation']"
}

# new_key FILE [BYTES]: random key bytes (64 by default), mode 0600.
new_key() {
	(umask 077 && head -c "${2:-64}" /dev/urandom >"$1")
}

# refused KEY_FILE WHAT: a reload giving disk-r that key file is refused,
# names the file and says WHAT, and changes nothing.
refused() {
	local gen rc=0
	gen=$(generation)
	write_topo "$TOPO" "$1"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload --json >"$RUN/bad.json" 2>&1 || rc=$?
	((rc == 1)) || fail "reload with key file $1 exited $rc: $(cat "$RUN/bad.json")"
	if ! grep -qF "$1" "$RUN/bad.json" || ! grep -qF "$2" "$RUN/bad.json"; then
		fail "the refusal does not name $1 and say '$2': $(cat "$RUN/bad.json")"
	fi
	no_key_in "$RUN/bad.json" "$1"
	[[ $(generation) == "$gen" ]] || fail "a refused reload changed the generation"
	chain_is disk-r "" || fail "a refused reload changed disk-r's chain"
	log "refused as it should: $(json "$RUN/bad.json" "j.get('error') or j")"
}

# no_key_in FILE KEY_FILE...: FILE holds none of the keys, raw, in hex or
# in base64 (their first 12 bytes).
no_key_in() {
	local f=$1 k hex b64
	shift
	for k in "$@"; do
		hex=$(head -c 12 "$k" | od -An -tx1 | tr -d ' \n')
		b64=$(head -c 12 "$k" | base64)
		if grep -qiF -e "$hex" -e "$b64" "$f" || python3 - "$f" "$k" <<'EOF'; then
import sys
sys.exit(0 if open(sys.argv[2], 'rb').read()[:12] in open(sys.argv[1], 'rb').read() else 1)
EOF
			fail "$f holds the key of $k"
		fi
	done
}

# bench D ARGS...: vrio-bench on disk-D, its JSON report in $RUN/D.json.
bench() {
	local d=$1
	shift
	"$BENCH" --socket "$RUN/$d.sock" --json --quiet "$@" >"$RUN/$d.json"
}

clean() {
	[[ $(json "$RUN/$1.json" "j['errors'] + j['verify_failures']") == 0 ]] ||
		fail "disk-$1: $(cat "$RUN/$1.json")"
}

# decrypt KEY SECTOR_SIZE IV_LARGE IN OUT: IN decrypted crypto-sector by
# crypto-sector into OUT by Python's cryptography package (OpenSSL through
# its own bindings), with dm-crypt's plain64 IVs.
decrypt() {
	python3 - "$@" <<'EOF'
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key, ss, large, src, dst = sys.argv[1:]
aes = algorithms.AES(open(key, 'rb').read())
ss = int(ss)
unit = ss if large == 'true' else 512      # what the IV counts
with open(src, 'rb') as f, open(dst, 'wb') as out:
    off = 0
    while True:
        s = f.read(ss)
        if not s:
            break
        assert len(s) == ss, 'the file ends inside a crypto-sector'
        d = Cipher(aes, modes.XTS((off // unit).to_bytes(16, 'little'))).decryptor()
        out.write(d.update(s) + d.finalize())
        off += ss
EOF
}

# check_plain D FILE WHAT: FILE holds what vrio-bench wrote to disk-D.
check_plain() {
	"$BENCH" --check-file "$2" --state "$RUN/$1.state" --quiet >"$RUN/check.log" 2>&1 ||
		die "disk-$1, $3: not what vrio-bench wrote: $(tail -3 "$RUN/check.log")"
	if [[ $1 == p ]]; then
		"$BENCH" --check-file "$2" --state "$RUN/p512.state" --quiet >"$RUN/check.log" 2>&1 ||
			die "disk-p, $3: the 512-byte writes are not there: $(tail -3 "$RUN/check.log")"
	fi
}

# cryptsetup_why: why the dm-crypt check cannot run on this machine, or
# nothing.
cryptsetup_why() {
	if ! have_cmd cryptsetup; then
		echo "cryptsetup is not installed (cryptsetup-bin)"
	elif (($(id -u) != 0)); then
		echo "it needs root"
	elif ! have_cmd losetup || ! losetup -f >/dev/null 2>&1; then
		echo "no free loop device"
	elif [[ ! -e /dev/mapper/control ]] || ! dmsetup targets 2>/dev/null | grep -q '^crypt'; then
		echo "this kernel has no device-mapper crypt target (dm-crypt)"
	fi
}

# dmcrypt_plain D OUT: disk-D's backing file opened by cryptsetup in plain
# mode on a loop device, its plaintext copied to OUT.
dmcrypt_plain() {
	local d=$1 out=$2 loop name=vrio-crypt-$$-$1 rc=0
	local -a opts=(--type plain --cipher aes-xts-plain64 --key-size 512 --key-file "$RUN/key-$d")
	[[ ${SS[$d]} == 4096 ]] && opts+=(--sector-size 4096)
	[[ ${LARGE[$d]} == true ]] && opts+=(--iv-large-sectors)
	loop=$(losetup -r -f --show "$RUN/disk-$d.img")
	if cryptsetup open --readonly "${opts[@]}" "$loop" "$name"; then
		dd if="/dev/mapper/$name" of="$out" bs=1M status=none || rc=1
		cryptsetup close "$name" || rc=1
	else
		rc=1
	fi
	losetup -d "$loop" || rc=1
	return "$rc"
}

# Modules the guest loads for dm-crypt over a loop device on a 9p file
# (their dependencies come from modules.dep); aes is built in.
GUEST_MODULES=(virtio_pci virtio_blk 9p 9pnet_virtio loop dm_crypt xts ecb)

# dm_guest BUILD: dmcrypt_plain for every disk in a QEMU TCG guest, which
# writes the plaintexts to RUN/dm-D.img. Returns 77 (and says why) when no
# guest can run here.
dm_guest() {
	local build=$1 guest=$1/tests/integration/guest-crypt rc=0 d
	have_cmd qemu-system-x86_64 || { log "qemu-system-x86_64 is not installed"; return 77; }
	VRIO_GUEST_MODULES="${GUEST_MODULES[*]}" bash "$VRIO_ROOT/scripts/guest-image.sh" "$guest" ||
		rc=$?
	((rc == 0)) || { log "no guest image (guest-image.sh: $rc)"; return 77; }
	chmod 0755 "$RUN"
	printf 'exec bash %q --dm-guest %q\n' "$VRIO_ROOT/tests/integration/crypt.sh" "$RUN" >"$RUN/dm.sh"
	run_guest "$RUN/dm.results" --kernel-dir "$guest" --run host-script --share "$RUN" \
		--script "$RUN/dm.sh" --keep "$VRIO_ROOT" --mem 512 --timeout 240 \
		--log "$RUN/dm.console" || { cat "$RUN/dm.results" >&2; die "the dm-crypt guest failed"; }
	for d in "${DISKS[@]}"; do
		grep -q "^VRIO-RESULT: dm-crypt disk=disk-$d .* ok\$" "$RUN/dm.results" ||
			die "the guest did not open disk-$d: $(cat "$RUN/dm.results")"
	done
}

# The guest's side of dm_guest (chrooted into this machine's root, with
# the guest's kernel): one VRIO-RESULT line per disk.
dm_guest_main() {
	local d opts
	RUN=$1
	for d in "${DISKS[@]}"; do
		opts="sectors=${SS[$d]} iv_large=${LARGE[$d]}"
		if dmcrypt_plain "$d" "$RUN/dm-$d.img" >"$RUN/dm-$d.log" 2>&1; then
			echo "VRIO-RESULT: dm-crypt disk=disk-$d $opts ok"
		else
			echo "VRIO-RESULT: dm-crypt disk=disk-$d $opts ERROR $(tr '\n' ' ' <"$RUN/dm-$d.log")"
		fi
	done
}

main() {
	local build d why gen rc where
	build=$(cd "$1" && pwd)
	vrio_binaries "$build" || skip "daemons not built in $build"
	BENCH=$build/tools/vrio-bench
	VRIOCTL=$build/tools/vrioctl
	[[ -x $BENCH && -x $VRIOCTL ]] || skip "vrio-bench or vrioctl not built in $build"
	have_cmd python3 || skip "python3 is needed"
	python3 -c 'import cryptography.hazmat.primitives.ciphers' 2>/dev/null ||
		skip "Python's cryptography package is needed for the cross-check (python3-cryptography)"
	make_tmpdir RUN
	vrio_addrs "$RUN"
	TOPO=$RUN/topology.yaml
	for d in "${DISKS[@]}"; do
		new_key "$RUN/key-$d"
	done
	write_topo "$TOPO" ""
	vrio_start "$RUN" "$TOPO" "$RUN/p.sock" "$RUN/s.sock" "$RUN/l.sock" "$RUN/r.sock"
	for d in p s l; do
		chain_is "disk-$d" crypt || fail "vrioctl devices does not show disk-$d's crypt stage"
	done
	chain_is disk-r "" || fail "disk-r has a chain before the reload"

	# 1. Bad key files are refused; a good one adds the stage to disk-r,
	# attached and empty.
	new_key "$RUN/key-open"
	chmod 0644 "$RUN/key-open"
	refused "$RUN/key-open" "mode 0644"
	new_key "$RUN/key-short" 32
	refused "$RUN/key-short" "holds 32 bytes"
	gen=$(generation)
	write_topo "$TOPO" "$RUN/key-r"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" reload >"$RUN/reload.txt" ||
		fail "the reload that adds crypt to disk-r failed: $(cat "$RUN/reload.txt")"
	chain_is disk-r crypt || fail "disk-r has no crypt stage after the reload"
	[[ $(generation) == $((gen + 1)) ]] || fail "the reload did not make a new generation"
	log "disk-r got its crypt stage by a reload"

	# 2. Verified writes at QD 32, then every disk read back verified.
	for d in "${DISKS[@]}"; do
		bench "$d" --rw randwrite --bs "${BS[$d]}" --size "${SIZE[$d]}" --iodepth 32 \
			--count $((2 * (16 << 20) / BS[$d] / 3)) --seed "$RANDOM" --verify \
			--state "$RUN/$d.state" || fail "disk-$d: writes failed: $(cat "$RUN/$d.json")"
		clean "$d"
	done
	# Single 512-byte sectors, in disk-p's last MiB (its own map).
	"$BENCH" --socket "$RUN/p.sock" --rw randwrite --bs 512 --iodepth 32 --count 1500 \
		--offset 15M --size 1M --verify --state "$RUN/p512.state" --json --quiet \
		>"$RUN/p512.json" || fail "disk-p: 512-byte writes failed: $(cat "$RUN/p512.json")"
	for d in "${DISKS[@]}"; do
		bench "$d" --rw read --bs "${BS[$d]}" --size "${SIZE[$d]}" --iodepth 16 --verify \
			--state "$RUN/$d.state" ||
			fail "disk-$d does not read back: $(cat "$RUN/$d.json")"
		clean "$d"
		log "disk-$d (${SS[$d]}-byte sectors$([[ ${LARGE[$d]} == true ]] && echo ", large IVs")):" \
			"wrote and read back $(json "$RUN/$d.json" "j['verified']") blocks of ${BS[$d]} bytes"
	done

	# 3. 512-byte writes on 4096-byte sectors: IOERR, counted.
	for d in s l; do
		"$BENCH" --socket "$RUN/$d.sock" --rw randwrite --bs 512 --iodepth 4 --count 40 \
			--json --quiet >"$RUN/$d-small.json" 2>"$RUN/$d-small.err" || true
		[[ $(json "$RUN/$d-small.json" "j['errors']") == 40 ]] ||
			fail "disk-$d took 512-byte writes: $(cat "$RUN/$d-small.json")"
	done
	vrio_metrics vrio-ioserver "$VRIO_IO_METRICS" "$RUN/io.metrics" || fail "io metrics"
	for d in s l; do
		(($(metric_sum "vrio_ioserver_stage_drops_total{device=\"disk-$d\",stage=\"crypt\",reason=\"unsupported\"}" \
			<"$RUN/io.metrics") == 40)) || fail "disk-$d's crypt stage did not count 40 refusals"
	done
	for d in "${DISKS[@]}"; do
		(($(metric_sum "vrio_ioserver_stage_bytes_total{device=\"disk-$d\",stage=\"crypt\"}" \
			<"$RUN/io.metrics") > 16 << 20)) || fail "disk-$d's crypt stage counted too few bytes"
	done

	# 4. The keys are nowhere to be read.
	"$VRIOCTL" --socket "$VRIO_IO_CTL" devices --json >"$RUN/devices.json"
	"$VRIOCTL" --socket "$VRIO_IO_CTL" status --json >"$RUN/status.json"
	for f in "$RUN/io.metrics" "$RUN/devices.json" "$RUN/status.json" "$VRIO_IO_LOG" "$VRIO_HV_LOG"; do
		no_key_in "$f" "$RUN"/key-?
	done

	pid_alive "$VRIO_IO_PID" || fail "vrio-ioserver died"
	vrio_down || fail "the daemons did not stop cleanly"

	# 5. The data at rest, by other implementations.
	for d in "${DISKS[@]}"; do
		"$BENCH" --check-file "$RUN/disk-$d.img" --state "$RUN/$d.state" --quiet \
			>"$RUN/check.log" 2>&1 && die "disk-$d's backing file holds the plaintext"
		decrypt "$RUN/key-$d" "${SS[$d]}" "${LARGE[$d]}" "$RUN/disk-$d.img" "$RUN/plain-$d.img"
		check_plain "$d" "$RUN/plain-$d.img" "decrypted by Python's cryptography"
		log "disk-$d: the backing file decrypted by Python's cryptography holds what was written"
	done
	why=$(cryptsetup_why)
	where="this machine's kernel"
	if [[ -z $why ]]; then
		for d in "${DISKS[@]}"; do
			dmcrypt_plain "$d" "$RUN/dm-$d.img" || die "disk-$d: cryptsetup open failed"
		done
	elif [[ ${VRIO_CRYPT_GUEST:-1} == 0 ]]; then
		why+="; VRIO_CRYPT_GUEST=0"
	elif have_cmd cryptsetup; then
		log "dm-crypt check: $why; running it in a TCG guest"
		where="a TCG guest's kernel (Debian's)"
		rc=0
		dm_guest "$build" || rc=$?
		((rc == 77)) && why+="; no guest either" || why=""
	fi
	if [[ -n $why ]]; then
		log "SKIP the cryptsetup cross-check: $why"
	else
		for d in "${DISKS[@]}"; do
			check_plain "$d" "$RUN/dm-$d.img" "opened with cryptsetup --type plain"
			cmp -s "$RUN/dm-$d.img" "$RUN/plain-$d.img" ||
				die "disk-$d: dm-crypt and Python's cryptography decrypt it differently"
			log "disk-$d: cryptsetup plain mode on $where reads what was written," \
				"and the whole file as Python's cryptography does"
		done
	fi
	log "PASS"
}

lib_traps
if [[ ${1:-} == --dm-guest ]]; then
	# shellcheck disable=SC2034 # lib.sh's log reads it
	VRIO_LOG_PREFIX="crypt.sh (guest)"
	dm_guest_main "$2"
else
	main "$@"
fi
