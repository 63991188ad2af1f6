#!/usr/bin/env bash
# Boot Fornax VMs on one virtual LAN (the project's main job).
#
#   scripts/run-two-qemu.sh [-n COUNT] [-k KERNEL] [--dir DIR] [--accel tcg|kvm]
#                           [--mem SIZE] [--key FILE] [--append "WORDS"] [--detach]
#   scripts/run-two-qemu.sh --stop [--dir DIR]
#   scripts/run-two-qemu.sh --restart fornax-NN [--dir DIR]
#   scripts/run-two-qemu.sh --attach fornax-NN [--dir DIR]
#   scripts/run-two-qemu.sh --print-qemu-args [-n COUNT] [-k KERNEL] [--dir DIR] ...
#
# Network namespace "fornax" holds bridge fxbr0 (10.0.0.1/24) and one tap
# per VM; VM NN (1 to 253, -n, default 2) is fornax-NN at 10.0.0.(NN+1)
# with MAC 52:54:00:f0:00:NN (hex). Each console is a unix socket
# DIR/fornax-NN.sock, logged to DIR/fornax-NN.log; QEMU's pid is in
# DIR/fornax-NN.pid. --mem is each VM's RAM (QEMU's -m, default 128M; the
# kernel says on its console if it needs more).
# --key gives every VM the cluster key in FILE (`openssl rand -hex 32 > FILE`)
# as fw_cfg file opt/fornax/key, never on the command line; --append adds
# kernel command-line words after the launcher's own. --restart boots a VM
# with the settings of its run (kept in DIR/config; the key by its path).
# --attach puts a running VM's console on this terminal (Ctrl-] detaches).
# QEMU runs with the line of scripts/qemu-args, console on the socket, plus
# a NIC, the key and -daemonize; --print-qemu-args prints those arguments
# for each VM, one a line, a blank line after each VM (no root needed).
set -euo pipefail

NS=fornax
BRIDGE=fxbr0
SUBNET=10.0.0
COUNT=2
KERNEL=build/fornax-cluster.elf
DIR=run
ACCEL=tcg
MEM=128M
MODE=run
TARGET=
DETACH=0
KEY=
APPEND=
SETTINGS= # the per-run options given, refused with --restart
QEMU=${QEMU:-qemu-system-x86_64}
HERE=$(dirname "$(realpath "$0")")

die() { echo "run-two-qemu: $*" >&2; exit 1; }

usage() {
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	-n) COUNT=${2:?}; SETTINGS+=" $1"; shift 2 ;;
	-k) KERNEL=${2:?}; SETTINGS+=" $1"; shift 2 ;;
	--dir) DIR=${2:?}; shift 2 ;;
	--accel) ACCEL=${2:?}; SETTINGS+=" $1"; shift 2 ;;
	--mem) MEM=${2:?--mem needs a size, as for QEMU -m: 64M}; SETTINGS+=" $1"; shift 2 ;;
	--key) KEY=${2:?--key needs a file (make one with: openssl rand -hex 32 > cluster.key)}; SETTINGS+=" $1"; shift 2 ;;
	--append) APPEND=${2?--append needs the words, quoted}; SETTINGS+=" $1"; shift 2 ;;
	--detach) DETACH=1; shift ;;
	--stop) MODE=stop; shift ;;
	--restart) MODE=restart; TARGET=${2:?--restart needs a VM name}; shift 2 ;;
	--attach) MODE=attach; TARGET=${2:?--attach needs a VM name}; shift 2 ;;
	--print-qemu-args) MODE=print; shift ;;
	-h|--help) usage 0 ;;
	*) echo "run-two-qemu: unknown argument: $1" >&2; usage 2 ;;
	esac
done

[[ $COUNT =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 1 ] && [ "$COUNT" -le 253 ] || die "-n takes a count from 1 to 253 (the /24's hosts after the bridge)"
case "$ACCEL" in tcg|kvm) ;; *) die "--accel takes tcg or kvm" ;; esac
[[ $MEM =~ ^[0-9]+[MG]?$ ]] || die "--mem takes a size as QEMU's -m does, like 64M or 1G"
name() { printf 'fornax-%02d' "$1"; }
tap() { printf 'fxtap%02d' "$1"; }

alive() { # pid
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

stop_vm() { # index
	local pidf
	pidf="$DIR/$(name "$1").pid"
	if [ -f "$pidf" ]; then
		local pid
		pid=$(cat "$pidf")
		if [ -n "$pid" ] && alive "$pid" && grep -q qemu "/proc/$pid/comm" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
			# Gone, or a zombie waiting for a reaper: either way it is dead.
			for _ in $(seq 50); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
		rm -f "$pidf"
	fi
	rm -f "$DIR/$(name "$1").sock"
}

teardown() {
	local f pid
	for f in "$DIR"/fornax-*.pid; do
		[ -e "$f" ] || continue
		f=${f##*/fornax-}; f=${f%.pid}
		stop_vm "$((10#$f))"
	done
	# VMs of a run from another --dir, or whose pid files are gone.
	for pid in $(ip netns pids "$NS" 2>/dev/null); do
		grep -q qemu "/proc/$pid/comm" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
	done
	ip netns del "$NS" 2>/dev/null || true
}

# qemu_args prints QEMU's arguments for a VM, one a line: the common line
# (scripts/qemu-args) with the console on a socket, then this launcher's
# own: the VM's NIC on its tap, its key, and QEMU as a daemon.
qemu_args() { # index
	local i=$1 n
	n=$(name "$i")
	local extra=(-netdev "tap,id=net0,ifname=$(tap "$i"),script=no,downscript=no"
		-device "virtio-net-device,netdev=net0,mac=$(printf '52:54:00:f0:00:%02x' "$i")")
	# QEMU's option syntax doubles a comma inside a value.
	[ -z "$KEY" ] || extra+=(-fw_cfg "name=opt/fornax/key,file=${KEY//,/,,}")
	extra+=(-daemonize -pidfile "$DIR/$n.pid")
	"$HERE/qemu-args" --accel "$ACCEL" --mem "$MEM" --console "$DIR/$n.sock" "$DIR/$n.log" -- \
		"$KERNEL" "name=$n ip=$SUBNET.$((i + 1))/24 gw=$SUBNET.1${APPEND:+ $APPEND}" "${extra[@]}"
}

boot_vm() { # index
	local i=$1 n out args
	n=$(name "$i")
	out=$(qemu_args "$i")
	mapfile -t args <<< "$out"
	ip netns exec "$NS" ip link show "$(tap "$i")" >/dev/null 2>&1 || {
		ip netns exec "$NS" ip tuntap add dev "$(tap "$i")" mode tap
		ip netns exec "$NS" ip link set "$(tap "$i")" master "$BRIDGE" up
	}
	rm -f "$DIR/$n.sock" "$DIR/$n.pid"
	: > "$DIR/$n.log"
	ip netns exec "$NS" "$QEMU" "${args[@]}" || die "QEMU failed to start $n"
}

# check_key refuses a key file QEMU could not read, before any VM boots;
# what it holds is for the kernel to judge (and never to print).
check_key() {
	[ -n "$KEY" ] || return 0
	[ -f "$KEY" ] && [ -r "$KEY" ] || die "--key $KEY: no such readable file (make one with: openssl rand -hex 32 > $KEY)"
	KEY=$(realpath "$KEY")
}

wait_ready() { # index...
	local i n
	for i in "$@"; do
		n=$(name "$i")
		for _ in $(seq 600); do
			grep -q "ready in" "$DIR/$n.log" 2>/dev/null && break
			sleep 0.05
		done
		grep -q "ready in" "$DIR/$n.log" || die "$n did not reach its prompt (see $DIR/$n.log)"
		echo "$n: $(grep -m1 'ready in' "$DIR/$n.log" | tr -d '\r')"
	done
}

if [ "$MODE" = print ]; then
	KERNEL=$(realpath -m "$KERNEL")
	DIR=$(realpath -m "$DIR")
	check_key
	for i in $(seq 1 "$COUNT"); do
		qemu_args "$i"
		echo
	done
	exit 0
fi

# attach connects this terminal to the console socket of VM $1.
attach() {
	command -v socat >/dev/null || die "socat is missing (Debian: apt-get install socat)"
	socat -,raw,echo=0,escape=0x1d "UNIX-CONNECT:$DIR/$1.sock" || true
}

[ "$(id -u)" = 0 ] || die "needs root (it creates network namespace '$NS', a bridge and taps)"

case "$MODE" in
attach)
	[[ $TARGET =~ ^fornax-[0-9]{2}$ ]] || die "--attach takes a name like fornax-02"
	[ -S "$DIR/$TARGET.sock" ] || die "no console $DIR/$TARGET.sock: is $TARGET running from --dir $DIR?"
	echo "attached to $TARGET: press Enter for a prompt; Ctrl-] detaches (the VM keeps running)"
	attach "$TARGET"
	exit 0 ;;
stop)
	teardown
	exit 0 ;;
restart)
	[[ $TARGET =~ ^fornax-([0-9]{2})$ ]] || die "--restart takes a name like fornax-02"
	idx=$((10#${BASH_REMATCH[1]}))
	[ -z "$SETTINGS" ] || die "--restart boots $TARGET with the settings of its run (in $DIR/config): drop${SETTINGS}"
	[ -f "$DIR/config" ] || die "nothing runs from $DIR (no $DIR/config)"
	# shellcheck disable=SC1091
	. "$DIR/config"
	check_key
	[ -e "/var/run/netns/$NS" ] || die "network namespace $NS is gone: start the VMs first"
	stop_vm "$idx"
	boot_vm "$idx"
	wait_ready "$idx"
	exit 0 ;;
esac

command -v "$QEMU" >/dev/null || die "$QEMU is missing (Debian: apt-get install qemu-system-x86, or 'make deps')"
command -v ip >/dev/null || die "ip is missing (Debian: apt-get install iproute2)"
[ -f "$KERNEL" ] || die "kernel image $KERNEL is missing: run 'make kernel-cluster'"
KERNEL=$(realpath "$KERNEL")
check_key
mkdir -p "$DIR"
DIR=$(realpath "$DIR")

# A crash may have left VMs, taps or the namespace behind.
teardown
# From here on, any failure (or Ctrl-C) takes everything down again;
# --detach disarms this once the VMs are up.
trap 'teardown' EXIT
trap 'exit 130' INT TERM HUP

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip link add "$BRIDGE" type bridge
ip netns exec "$NS" ip addr add "$SUBNET.1/24" dev "$BRIDGE"
ip netns exec "$NS" ip link set "$BRIDGE" up
printf 'KERNEL=%q\nACCEL=%q\nMEM=%q\nCOUNT=%q\nKEY=%q\nAPPEND=%q\n' "$KERNEL" "$ACCEL" "$MEM" "$COUNT" "$KEY" "$APPEND" > "$DIR/config"

for i in $(seq 1 "$COUNT"); do boot_vm "$i"; done
wait_ready $(seq 1 "$COUNT")

if [ "$DETACH" = 1 ]; then
	trap - EXIT
	echo "VMs run in namespace $NS; consoles: $DIR/fornax-NN.sock; stop with: $0 --stop --dir $DIR"
	exit 0
fi

echo "attached to $(name 1): press Enter for a prompt; Ctrl-] detaches and stops all VMs"
attach "$(name 1)"
