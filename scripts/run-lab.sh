#!/usr/bin/env bash
# Boot Fornax VMs on one L2 segment stretched over several "hosts": a lab
# of network namespaces, each a host with its own bridge and VMs, joined
# as hosts on one LAN are, or by a VXLAN overlay across a routed network;
# or on a subnet per host, routed, the cluster joined by seeds
# (docs/guide.md, "Across hosts").
#
#   scripts/run-lab.sh [--link l2|vxlan|routed] [--hosts 2|3] [-n VMS-PER-HOST]
#                      [-k KERNEL] [--dir DIR] [--prefix NAME] [--accel tcg|kvm]
#                      [--mem SIZE] [--key FILE] [--append "WORDS"]
#                      [--fornaxd BIN] [--fornaxd-hosts LIST] [--detach]
#   scripts/run-lab.sh --stop [--prefix NAME] [--dir DIR]
#   scripts/run-lab.sh --print-qemu-args [options as above]
#
# Host H (1 to 3, --hosts, default 2) is network namespace PREFIX-hH
# (--prefix, default fxlab): bridge fxbr0 at 10.0.0.(250+H)/24 and one tap
# per VM. VMs are numbered across the hosts, -n (default 2) on each: VM NN
# is fornax-NN at 10.0.0.(NN+1) (routed: below), MAC 52:54:00:f0:00:NN
# (hex), tap fxtapNN on host ceil(NN/n), its gateway its host's bridge;
# consoles, logs and pid files are DIR/fornax-NN.{sock,log,pid}, as with
# scripts/run-two-qemu.sh.
#
# --link l2 (the default) joins the hosts' bridges with veth pairs, host H
# to host H+1 (fxtoH+1 in host H, fxtoH in host H+1): one Ethernet
# segment, MTU 1500, as hosts on one LAN whose NICs are bridged are.
# --link vxlan puts a router between the hosts instead, namespace
# PREFIX-r: host H reaches it over veth fxul0 at 172.31.H.2/24 (the
# router's fxulH is 172.31.H.1), so broadcast does not cross. Each host
# runs VXLAN device fxvx0 (VNI 4242, UDP port 4789, from its fxul0
# address) in its bridge, with an all-zeros FDB entry for every other
# host: broadcast and unknown unicast go to each of them by unicast
# (head-end replication, no multicast in the routed network). VXLAN
# takes 50 bytes of each 1500-byte packet, so fxvx0, the bridge and the
# taps are MTU 1450 and QEMU offers the VMs that MTU (host_mtu=1450,
# VIRTIO_NET_F_MTU): their TCP announces MSS 1410.
#
# --link routed gives each host a subnet of its own, 10.H.0.0/24, routed
# through the router namespace over the same uplinks as vxlan (the
# router's route to 10.H.0.0/24 is via 172.31.H.2; each host forwards
# between its uplink and its bridge), MTU 1500: no broadcast crosses, and
# the cluster spans the hosts by seeds (docs/protocol.md §4.6). Host H's
# bridge is 10.H.0.1 and the VMs' gateway; VM NN is at 10.H.0.(NN+1), the
# last byte as in the other modes (fornax-03 on host 2, -n 2, is
# 10.2.0.4). Each VM gets seeds= the first VM of every other host (with
# -n 2 and 2 hosts: fornax-01 and 02 seeds=10.2.0.4, fornax-03 and 04
# seeds=10.1.0.2), after name= ip= gw= and before the append words.
#
# --fornaxd BIN runs fornaxd on each host's bridge as host-H (with the
# key and the append words' profile=), logging to DIR/host-H.log;
# --fornaxd-hosts 1 (or 1,3) runs it on those hosts only. With routed,
# fornaxd is a Linux host on host H's subnet instead, as the VMs are:
# namespace PREFIX-dH, veth fxd0 at 10.H.0.250/24 (its peer fxdbr0 in
# the bridge), gateway the bridge, and the -seeds its host's VMs have
# (fornaxd binds to its interface, so on the bridge, whose host reaches
# the other subnets by the uplink, it could not reach them).
# --key and --append are run-two-qemu.sh's. QEMU runs with the line of
# scripts/qemu-args plus the NIC; --print-qemu-args prints those
# arguments for each VM, a blank line after each (no root needed).
# Without --detach the script waits, then tears the lab down on Ctrl-C;
# --stop tears down a detached one (its VMs, fornaxd, every PREFIX-
# namespace).
set -euo pipefail

LINK=l2
HOSTS=2
PER=2
KERNEL=build/fornax-cluster.elf
DIR=run-lab
PREFIX=fxlab
ACCEL=tcg
MEM=128M
KEY=
APPEND=
FORNAXD=
FORNAXD_HOSTS=
DETACH=0
MODE=run
QEMU=${QEMU:-qemu-system-x86_64}
HERE=$(dirname "$(realpath "$0")")

VNI=4242
VXPORT=4789
# VXLAN's overhead: outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14.
OVERLAY_MTU=1450

die() { echo "run-lab: $*" >&2; exit 1; }

usage() {
	awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--link) LINK=${2:?}; shift 2 ;;
	--hosts) HOSTS=${2:?}; shift 2 ;;
	-n) PER=${2:?}; shift 2 ;;
	-k) KERNEL=${2:?}; shift 2 ;;
	--dir) DIR=${2:?}; shift 2 ;;
	--prefix) PREFIX=${2:?}; shift 2 ;;
	--accel) ACCEL=${2:?}; shift 2 ;;
	--mem) MEM=${2:?}; shift 2 ;;
	--key) KEY=${2:?--key needs a file (make one with: openssl rand -hex 32 > cluster.key)}; shift 2 ;;
	--append) APPEND=${2?--append needs the words, quoted}; shift 2 ;;
	--fornaxd) FORNAXD=${2:?--fornaxd needs the binary (make fornaxd builds build/fornaxd)}; shift 2 ;;
	--fornaxd-hosts) FORNAXD_HOSTS=${2:?--fornaxd-hosts needs host numbers, like 1 or 1,3}; shift 2 ;;
	--detach) DETACH=1; shift ;;
	--stop) MODE=stop; shift ;;
	--print-qemu-args) MODE=print; shift ;;
	-h|--help) usage 0 ;;
	*) echo "run-lab: unknown argument: $1" >&2; usage 2 ;;
	esac
done

case "$LINK" in l2|vxlan|routed) ;; *) die "--link takes l2, vxlan or routed" ;; esac
[[ $HOSTS =~ ^[1-3]$ ]] || die "--hosts takes 1 to 3"
[[ $PER =~ ^[0-9]+$ ]] && [ "$PER" -ge 1 ] && [ $((PER * HOSTS)) -le 99 ] || die "-n takes 1 to 99 VMs in all"
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,11}$ ]] || die "--prefix takes 1 to 12 of a-z 0-9, a letter first"
[ "$PREFIX" != fornax ] || die "--prefix fornax is scripts/run-two-qemu.sh's namespace"
case "$ACCEL" in tcg|kvm) ;; *) die "--accel takes tcg or kvm" ;; esac
[[ $MEM =~ ^[0-9]+[MG]?$ ]] || die "--mem takes a size as QEMU's -m does, like 64M or 1G"
[ -z "$FORNAXD_HOSTS" ] || [[ $FORNAXD_HOSTS =~ ^[1-3](,[1-3])*$ ]] || die "--fornaxd-hosts takes host numbers separated by commas, like 1 or 1,3"
for h in ${FORNAXD_HOSTS//,/ }; do
	[ "$h" -le "$HOSTS" ] || die "--fornaxd-hosts $FORNAXD_HOSTS: there is no host $h of $HOSTS"
done

MTU=1500
[ "$LINK" != vxlan ] || MTU=$OVERLAY_MTU
COUNT=$((PER * HOSTS))

name() { printf 'fornax-%02d' "$1"; }
tap() { printf 'fxtap%02d' "$1"; }
hostof() { echo $(((($1) - 1) / PER + 1)); }
hostns() { echo "$PREFIX-h$1"; }
routerns() { echo "$PREFIX-r"; }
fornaxdns() { echo "$PREFIX-d$1"; }
fornaxdip() { echo "10.$1.0.250"; }
bridgeip() { # host
	if [ "$LINK" = routed ]; then echo "10.$1.0.1"; else echo "10.0.0.$((250 + $1))"; fi
}
vmip() { # index
	if [ "$LINK" = routed ]; then echo "10.$(hostof "$1").0.$(($1 + 1))"; else echo "10.0.0.$(($1 + 1))"; fi
}
# seedsof prints, with routed, the seeds of a node on host h: the first
# VM of every other host, separated by commas; nothing otherwise.
seedsof() { # host
	local o l=
	[ "$LINK" = routed ] || return 0
	for o in $(seq 1 "$HOSTS"); do
		[ "$o" = "$1" ] || l+=${l:+,}$(vmip $(((o - 1) * PER + 1)))
	done
	echo "$l"
}
underlayip() { echo "172.31.$1.2"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# qemu_args prints QEMU's arguments for VM i: scripts/qemu-args's line,
# console on a socket, then the NIC on its tap (offering the overlay's
# MTU), the key and -daemonize.
qemu_args() { # index
	local i=$1 n dev seeds
	n=$(name "$i")
	seeds=$(seedsof "$(hostof "$i")")
	dev="virtio-net-device,netdev=net0,mac=$(printf '52:54:00:f0:00:%02x' "$i")"
	[ "$MTU" = 1500 ] || dev+=",host_mtu=$MTU"
	local extra=(-netdev "tap,id=net0,ifname=$(tap "$i"),script=no,downscript=no" -device "$dev")
	# QEMU's option syntax doubles a comma inside a value.
	[ -z "$KEY" ] || extra+=(-fw_cfg "name=opt/fornax/key,file=${KEY//,/,,}")
	extra+=(-daemonize -pidfile "$DIR/$n.pid")
	"$HERE/qemu-args" --accel "$ACCEL" --mem "$MEM" --console "$DIR/$n.sock" "$DIR/$n.log" -- \
		"$KERNEL" "name=$n ip=$(vmip "$i")/24 gw=$(bridgeip "$(hostof "$i")")${seeds:+ seeds=$seeds}${APPEND:+ $APPEND}" "${extra[@]}"
}

check_key() {
	[ -n "$KEY" ] || return 0
	[ -f "$KEY" ] && [ -r "$KEY" ] || die "--key $KEY: no such readable file (make one with: openssl rand -hex 32 > $KEY)"
	KEY=$(realpath "$KEY")
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

[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces $PREFIX-*, bridges, taps and tunnels)"

alive() { # pid
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

kill_pidfile() { # file command-name
	local pid
	[ -f "$1" ] || return 0
	pid=$(cat "$1")
	if [ -n "$pid" ] && alive "$pid" && grep -q "$2" "/proc/$pid/comm" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			alive "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$1"
}

# lab_namespaces lists this prefix's namespaces.
lab_namespaces() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-(h[0-9]+|d[0-9]+|r)\$" || true
}

teardown() {
	local f ns pid
	if [ -d "$DIR" ]; then
		for f in "$DIR"/fornax-*.pid; do
			[ -e "$f" ] || continue
			kill_pidfile "$f" qemu
			f=${f%.pid}; rm -f "$f.sock"
		done
		for f in "$DIR"/host-*.pid; do
			[ -e "$f" ] || continue
			kill_pidfile "$f" fornaxd
		done
	fi
	# QEMUs and fornaxds of a run from another --dir, or whose pid files are gone.
	for ns in $(lab_namespaces); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			grep -Eq 'qemu|fornaxd' "/proc/$pid/comm" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
}

if [ "$MODE" = stop ]; then
	DIR=$(realpath -m "$DIR")
	teardown
	exit 0
fi

command -v "$QEMU" >/dev/null || die "$QEMU is missing (Debian: apt-get install qemu-system-x86, or 'make deps')"
command -v ip >/dev/null || die "ip is missing (Debian: apt-get install iproute2)"
[ "$LINK" != vxlan ] || command -v bridge >/dev/null || die "bridge is missing (Debian: apt-get install iproute2)"
[ -f "$KERNEL" ] || die "kernel image $KERNEL is missing: run 'make kernel-cluster'"
KERNEL=$(realpath "$KERNEL")
[ -z "$FORNAXD" ] || [ -x "$FORNAXD" ] || die "--fornaxd $FORNAXD is not an executable (make fornaxd builds build/fornaxd)"
[ -z "$FORNAXD" ] || FORNAXD=$(realpath "$FORNAXD")
check_key
mkdir -p "$DIR"
DIR=$(realpath "$DIR")

teardown
trap 'teardown' EXIT
trap 'exit 130' INT TERM HUP

# new_ns makes a namespace with loopback up and no IPv6 (no router
# solicitations or DAD on the lab's links: the captures stay quiet).
new_ns() {
	ip netns add "$1"
	in_ns "$1" ip link set lo up
	in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# The hosts: a bridge each, at the segment's MTU.
for h in $(seq 1 "$HOSTS"); do
	ns=$(hostns "$h")
	new_ns "$ns"
	in_ns "$ns" ip link add fxbr0 mtu "$MTU" type bridge
	in_ns "$ns" ip addr add "$(bridgeip "$h")/24" dev fxbr0
	in_ns "$ns" ip link set fxbr0 up
done

case "$LINK" in
l2)
	# One segment: each host's bridge to the next one's, as a cable
	# between two hosts' bridged NICs.
	for h in $(seq 1 $((HOSTS - 1))); do
		a=$(hostns "$h") b=$(hostns $((h + 1)))
		ip link add "fxto$((h + 1))" netns "$a" type veth peer name "fxto$h" netns "$b"
		in_ns "$a" ip link set "fxto$((h + 1))" master fxbr0 up
		in_ns "$b" ip link set "fxto$h" master fxbr0 up
	done ;;
vxlan|routed)
	# A routed network between the hosts: one router, a subnet to each.
	r=$(routerns)
	new_ns "$r"
	in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
	for h in $(seq 1 "$HOSTS"); do
		ns=$(hostns "$h")
		ip link add fxul0 netns "$ns" type veth peer name "fxul$h" netns "$r"
		in_ns "$r" ip addr add "172.31.$h.1/24" dev "fxul$h"
		in_ns "$r" ip link set "fxul$h" up
		in_ns "$ns" ip addr add "$(underlayip "$h")/24" dev fxul0
		in_ns "$ns" ip link set fxul0 up
		in_ns "$ns" ip route add default via "172.31.$h.1"
	done
	if [ "$LINK" = routed ]; then
		# Each host's subnet is routed: the router reaches it through
		# the host's uplink, the host forwards to its bridge.
		for h in $(seq 1 "$HOSTS"); do
			in_ns "$r" ip route add "10.$h.0.0/24" via "$(underlayip "$h")"
			in_ns "$(hostns "$h")" sysctl -qw net.ipv4.ip_forward=1
		done
	else
		# The overlay: a VXLAN device in each host's bridge, flooding
		# to every other host by unicast.
		for h in $(seq 1 "$HOSTS"); do
			ns=$(hostns "$h")
			in_ns "$ns" ip link add fxvx0 mtu "$MTU" type vxlan id "$VNI" dstport "$VXPORT" \
				local "$(underlayip "$h")" dev fxul0 ||
				die "no VXLAN device in $ns: does this kernel have VXLAN (CONFIG_VXLAN, modprobe vxlan)?"
			for o in $(seq 1 "$HOSTS"); do
				[ "$o" = "$h" ] || in_ns "$ns" bridge fdb append 00:00:00:00:00:00 dev fxvx0 dst "$(underlayip "$o")"
			done
			in_ns "$ns" ip link set fxvx0 master fxbr0 up
		done
	fi ;;
esac

printf 'LINK=%q\nHOSTS=%q\nPER=%q\nPREFIX=%q\nKERNEL=%q\nMTU=%q\n' "$LINK" "$HOSTS" "$PER" "$PREFIX" "$KERNEL" "$MTU" > "$DIR/config"

# The VMs, each on a tap of its host's bridge at the segment's MTU.
for i in $(seq 1 "$COUNT"); do
	ns=$(hostns "$(hostof "$i")") n=$(name "$i")
	in_ns "$ns" ip tuntap add dev "$(tap "$i")" mode tap
	in_ns "$ns" ip link set "$(tap "$i")" mtu "$MTU" master fxbr0 up
	out=$(qemu_args "$i")
	mapfile -t args <<< "$out"
	rm -f "$DIR/$n.sock" "$DIR/$n.pid"
	: > "$DIR/$n.log"
	in_ns "$ns" "$QEMU" "${args[@]}" || die "QEMU failed to start $n"
done

if [ -n "$FORNAXD" ]; then
	profile=
	for w in $APPEND; do
		case "$w" in profile=*) profile=${w#profile=} ;; esac
	done
	fdhosts=${FORNAXD_HOSTS//,/ }
	[ -n "$fdhosts" ] || fdhosts=$(seq 1 "$HOSTS")
	for h in $fdhosts; do
		ns=$(hostns "$h") ifc=fxbr0
		if [ "$LINK" = routed ]; then
			# A Linux host on the subnet: fornaxd binds its socket
			# to its interface (SO_BINDTODEVICE), so on the bridge
			# of a host that routes the subnet it would neither
			# reach nor hear the other subnets (their datagrams go
			# and come by the uplink).
			ns=$(fornaxdns "$h") ifc=fxd0
			new_ns "$ns"
			ip link add fxd0 netns "$ns" type veth peer name fxdbr0 netns "$(hostns "$h")"
			in_ns "$(hostns "$h")" ip link set fxdbr0 master fxbr0 up
			in_ns "$ns" ip addr add "$(fornaxdip "$h")/24" dev fxd0
			in_ns "$ns" ip link set fxd0 up
			in_ns "$ns" ip route add default via "$(bridgeip "$h")"
		fi
		fd=(-iface "$ifc" -name "host-$h")
		[ -z "$KEY" ] || fd+=(-key-file "$KEY")
		[ -z "$profile" ] || fd+=(-profile "$profile")
		seeds=$(seedsof "$h")
		[ -z "$seeds" ] || fd+=(-seeds "$seeds")
		in_ns "$ns" setsid "$FORNAXD" "${fd[@]}" > "$DIR/host-$h.log" 2>&1 < /dev/null &
		echo $! > "$DIR/host-$h.pid"
	done
fi

for i in $(seq 1 "$COUNT"); do
	n=$(name "$i")
	for _ in $(seq 600); do
		grep -q "ready in" "$DIR/$n.log" 2>/dev/null && break
		sleep 0.05
	done
	grep -q "ready in" "$DIR/$n.log" || die "$n did not reach its prompt (see $DIR/$n.log)"
	echo "$n on $(hostns "$(hostof "$i")"): $(grep -m1 'ready in' "$DIR/$n.log" | tr -d '\r')"
done

if [ "$DETACH" = 1 ]; then
	trap - EXIT
	echo "the lab runs in namespaces $PREFIX-h1..$HOSTS$([ "$LINK" = l2 ] || echo " and $PREFIX-r") ($LINK, MTU $MTU); consoles: $DIR/fornax-NN.sock; stop with: $0 --stop --prefix $PREFIX --dir $DIR"
	exit 0
fi

echo "the lab runs ($LINK, MTU $MTU); consoles: $DIR/fornax-NN.sock (socat -,raw,echo=0 UNIX-CONNECT:...); Ctrl-C stops it"
# wait, not sleep in the foreground: a signal runs the trap at once
while :; do sleep 3600 & wait $!; done
