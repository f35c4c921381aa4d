#!/usr/bin/env bash
# lab.sh: a three-host libvirt/QEMU (TCG) cluster on one Debian machine, for Drover's
# end-to-end tests and for trying Drover by hand. Run as root.
#
#   lab.sh deps                 apt-get the packages and fetch the guest kernel (once)
#   lab.sh up                   start hosts hostA/B/C and the guests (vm1..vm4 on hostA)
#   lab.sh disk-files VM        the hosts holding VM's local disk file (one per line)
#   lab.sh down                 tear everything down (safe twice, safe after a failure)
#   lab.sh status               hosts, daemons and guests
#   lab.sh reboot-host HOST     "reboot" HOST: kill its libvirtd and QEMUs, wipe its /run,
#                               start the daemon again (guests there come back shut off)
#   lab.sh boot-id HOST         the id of HOST's current "boot" (changes on reboot-host)
#   lab.sh heartbeat VM         "boot=<guest boot id> n=<counter>" of VM's last heartbeat
#   lab.sh pin VM | unpin VM    mark VM non-migratable for Drover (libvirt metadata)
#   lab.sh migrate VM HOST      live-migrate VM to HOST with virsh (peer-to-peer)
#   lab.sh uri HOST             the libvirt URI of HOST from the root namespace
#   lab.sh virsh HOST ARGS...   virsh against HOST
#
# Hosts are network namespaces (10.99.0.1-3/24 on a bridge in a namespace of its own; the
# root namespace gets no address), each with its own libvirtd in a private mount+UTS
# namespace. Only addresses inside these namespaces are ever used.
#
# Environment: LAB_DIR (runtime, default /tmp/drover-lab; wiped by down), LAB_CACHE
# (kernel, initramfs and the QEMU capability caches, kept between runs, default
# /var/cache/drover-lab), LAB_GUESTS (default "vm1:hostA vm2:hostA vm3:hostA vm4:hostA";
# "vm1:hostA:disk" gives vm1 a local qcow2 disk of LAB_DISK_MIB, default 64, in the
# host's own storage pool "images"; "vm5:hostA:dirty=12" makes vm5 dirty 12 MiB of its
# memory per second; both: "vm1:hostA:disk:dirty=12"), LAB_GUEST_MIB (default 112),
# LAB_NS_PREFIX (default "drover-"), LAB_SHAPE_MBIT (default none: each host's link
# shaped with tc to that many Mbit/s, out of the host and into it).
set -euo pipefail

LAB_DIR=${LAB_DIR:-/tmp/drover-lab}
LAB_CACHE=${LAB_CACHE:-/var/cache/drover-lab}
LAB_GUESTS=${LAB_GUESTS:-"vm1:hostA vm2:hostA vm3:hostA vm4:hostA"}
LAB_GUEST_MIB=${LAB_GUEST_MIB:-112}
LAB_DISK_MIB=${LAB_DISK_MIB:-64}
LAB_SHAPE_MBIT=${LAB_SHAPE_MBIT:-}
P=${LAB_NS_PREFIX:-drover-}
HOSTS=(hostA hostB hostC)
BRNS="${P}lab-br"
DROVER_NS="https://droverhq.github.io/xmlns/libvirt/1"

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

host_index() {
	case "$1" in
	hostA) echo 1 ;; hostB) echo 2 ;; hostC) echo 3 ;;
	*) die "unknown host '$1' (hosts: ${HOSTS[*]})" ;;
	esac
}
host_ip() { echo "10.99.0.$(host_index "$1")"; }
host_dir() { echo "$LAB_DIR/$1"; }
host_ns() { echo "${P}$1"; }
host_uri() { echo "qemu+unix:///system?socket=$(host_dir "$1")/sock/libvirt-sock"; }
vsh() { local h=$1; shift; virsh -q -c "$(host_uri "$h")" "$@"; }

need_root() { [[ $(id -u) == 0 ]] || die "run as root"; }

# --- deps ---------------------------------------------------------------------------

cmd_deps() {
	need_root
	log "installing packages"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients busybox-static \
		iproute2 qemu-utils
	fetch_kernel
}

fetch_kernel() {
	mkdir -p "$LAB_CACHE"
	local pkg tmp
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
	[[ -n $pkg ]] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update)"
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt-get download drops to user _apt
	log "fetching guest kernel $pkg"
	(cd "$tmp" && apt-get download -qq "$pkg")
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	cp "$tmp"/x/boot/vmlinuz-* "$LAB_CACHE/vmlinuz.tmp"
	# virtio-blk is a module in the cloud kernel: guests with a disk load these.
	rm -rf "$LAB_CACHE/modules" && mkdir -p "$LAB_CACHE/modules"
	local m f
	for m in $VIRTIO_MODULES; do
		f=$(find "$tmp/x/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" | head -n 1)
		[[ -n $f ]] || die "kernel module $m not in $pkg"
		if [[ $f == *.xz ]]; then xz -dc "$f" >"$LAB_CACHE/modules/$m.ko"; else cp "$f" "$LAB_CACHE/modules/$m.ko"; fi
	done
	mv "$LAB_CACHE/vmlinuz.tmp" "$LAB_CACHE/vmlinuz"
	rm -rf "$tmp"
}

# VIRTIO_MODULES load in this order (dependencies first).
VIRTIO_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"

# build_initramfs packs busybox and an /init that prints a heartbeat (guest boot id and a
# counter) on the serial console every second. A guest with a disk (/dev/vda) fills its
# first 8 MiB with random data at boot and, every other second, checks them (page
# cache dropped: the read goes to the disk) and the counter it wrote to the disk the
# time before, then writes the new one: "DISK boot=<id> n=<counter> ok|BAD sum=<md5>".
build_initramfs() {
	local out=$LAB_CACHE/initrd.gz
	command -v busybox >/dev/null || die "busybox not found: run 'lab.sh deps'"
	[[ -s $LAB_CACHE/modules/virtio_blk.ko ]] || die "no guest kernel modules in $LAB_CACHE: run 'lab.sh deps'"
	local tmp
	tmp=$(mktemp -d)
	mkdir -p "$tmp"/{bin,proc,sys,dev,lib/modules}
	cp "$(command -v busybox)" "$tmp/bin/busybox"
	cp "$LAB_CACHE"/modules/*.ko "$tmp/lib/modules/"
	cat >"$tmp/init" <<EOF
#!/bin/busybox sh
mods="$VIRTIO_MODULES"
EOF
	cat >>"$tmp/init" <<'EOF'
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev 2>/dev/null
boot=$($bb cat /proc/sys/kernel/random/boot_id)
disk=
# Only a guest with a virtio-blk PCI device (1af4:1001 or 1af4:1042) loads the modules
# and waits for its /dev/vda; a diskless guest boots as it always did.
if $bb grep -qs -e 0x1001 -e 0x1042 /sys/bus/pci/devices/*/device; then
	for m in $mods; do $bb insmod /lib/modules/$m.ko 2>/dev/null; done
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do [ -b /dev/vda ] && disk=/dev/vda && break; $bb sleep 0.2; done
fi
if [ -n "$disk" ]; then
	$bb dd if=/dev/urandom of=$disk bs=1M count=8 conv=fsync 2>/dev/null
	sum0=$($bb dd if=$disk bs=1M count=8 2>/dev/null | $bb md5sum | $bb cut -c1-32)
	echo "DISK boot=$boot wrote sum=$sum0" >/dev/ttyS0
fi
# drover.dirty=N on the kernel command line: rewrite N MiB of a 24 MiB buffer every
# second with random data (not zeros: QEMU sends zero pages almost for free).
dirty=$($bb sed -n 's/.*drover\.dirty=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$dirty" ] && [ "$dirty" -gt 0 ]; then
	$bb dd if=/dev/urandom of=/rnd bs=1M count=1 2>/dev/null
	$bb dd if=/dev/urandom of=/buf bs=1M count=24 2>/dev/null
	(i=0; while :; do
		k=0
		while [ $k -lt "$dirty" ]; do
			$bb dd if=/rnd of=/buf bs=1M count=1 seek=$((i % 24)) conv=notrunc 2>/dev/null
			i=$((i+1)); k=$((k+1))
		done
		$bb sleep 1
	done) &
fi
n=0
last=
while :; do
	echo "HB boot=$boot n=$n" >/dev/ttyS0
	if [ -n "$disk" ] && [ $((n % 2)) = 0 ]; then
		echo 3 >/proc/sys/vm/drop_caches
		sum=$($bb dd if=$disk bs=1M count=8 2>/dev/null | $bb md5sum | $bb cut -c1-32)
		prev=$($bb dd if=$disk bs=512 skip=40960 count=1 2>/dev/null | $bb head -n 1)
		st=ok
		[ "$sum" = "$sum0" ] || st=BAD
		[ -z "$last" ] || [ "$prev" = "$last" ] || st=BAD
		echo "$n" | $bb dd of=$disk bs=512 seek=40960 conv=sync,fsync 2>/dev/null
		last=$n
		echo "DISK boot=$boot n=$n $st sum=$sum prev=$prev" >/dev/ttyS0
	fi
	n=$((n+1))
	$bb sleep 1
done
EOF
	chmod 755 "$tmp/init"
	(cd "$tmp" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$tmp"
}

# --- hosts --------------------------------------------------------------------------

write_host_conf() {
	local h=$1 d ip uuid
	d=$(host_dir "$h")
	ip=$(host_ip "$h")
	mkdir -p "$d"/{etc/libvirt/qemu,run,var/lib/libvirt/qemu,var/log/libvirt/qemu,var/cache/libvirt,sock}
	chmod 700 "$d"
	ln -sfn /run "$d/var/run"
	ln -sfn /run/lock "$d/var/lock"
	# A distinct, stable host UUID per host: libvirt refuses to migrate between equal UUIDs.
	uuid="4c6f6164-0000-4000-8000-00000000000$(host_index "$h")"
	cat >"$d/etc/libvirt/libvirtd.conf" <<EOF
listen_tcp = 1
listen_tls = 0
listen_addr = "$ip"
auth_tcp = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
unix_sock_dir = "$d/sock"
host_uuid = "$uuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
	cat >"$d/etc/libvirt/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
migration_address = "$ip"
migration_host = "$ip"
EOF
	# libvirtd aborts unless the user libvirt-qemu exists: give its namespace a copy of
	# passwd/group that has one, without touching the machine's.
	if ! grep -q '^libvirt-qemu:' /etc/passwd; then
		{ cat /etc/passwd; echo 'libvirt-qemu:x:64055:64055:libvirt qemu:/nonexistent:/usr/sbin/nologin'; } >"$d/passwd"
	else
		cp /etc/passwd "$d/passwd"
	fi
	if ! grep -q '^libvirt-qemu:' /etc/group; then
		{ cat /etc/group; echo 'libvirt-qemu:x:64055:'; } >"$d/group"
	else
		cp /etc/group "$d/group"
	fi
	mkdir -p "$LAB_CACHE/libvirt-cache/$h"
}

make_network() {
	ip netns add "$BRNS"
	ip -n "$BRNS" link add br0 type bridge
	ip -n "$BRNS" link set br0 up
	ip -n "$BRNS" link set lo up
	local h ns i
	for h in "${HOSTS[@]}"; do
		ns=$(host_ns "$h")
		i=$(host_index "$h")
		ip netns add "$ns"
		ip -n "$ns" link add eth0 type veth peer name "v$i" netns "$BRNS"
		ip -n "$BRNS" link set "v$i" master br0
		ip -n "$BRNS" link set "v$i" up
		ip -n "$ns" addr add "$(host_ip "$h")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		if [[ -n $LAB_SHAPE_MBIT ]]; then
			# Out of the host, and into it (the bridge's port towards it).
			ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "${LAB_SHAPE_MBIT}mbit" burst 256kb latency 200ms
			ip netns exec "$BRNS" tc qdisc add dev "v$i" root tbf rate "${LAB_SHAPE_MBIT}mbit" burst 256kb latency 200ms
		fi
	done
}

# start_daemon runs HOST's libvirtd in the host's network namespace and a private mount+UTS
# namespace whose /etc/libvirt, /run, /var and /var/cache/libvirt are the host's own.
start_daemon() {
	local h=$1 d
	d=$(host_dir "$h")
	rm -rf "$d/run" && mkdir -p "$d/run/lock"
	rm -f "$d"/sock/*
	cat /proc/sys/kernel/random/uuid >"$d/boot_id"
	# shellcheck disable=SC2016 # the inner sh expands its own arguments
	ip netns exec "$(host_ns "$h")" unshare --mount --uts --propagation private sh -euc '
		d=$1; h=$2; cache=$3
		mount --bind "$cache" "$d/var/cache/libvirt"
		mount --bind "$d/etc/libvirt" /etc/libvirt
		mount --bind "$d/passwd" /etc/passwd
		mount --bind "$d/group" /etc/group
		mount --bind "$d/run" /run
		mount --rbind "$d/var" /var
		# A /dev without kvm: the guests are TCG anyway, and with /dev/kvm visible
		# libvirt drops its capability cache on every start here (the CPUID it
		# compares differs per core), which costs ~8 s per daemon.
		mkdir -p "$d/dev"
		mount -t tmpfs -o mode=755,size=64k devtmp "$d/dev"
		for n in null zero full random urandom tty; do
			touch "$d/dev/$n"
			mount --bind "/dev/$n" "$d/dev/$n"
		done
		mkdir "$d/dev/pts" "$d/dev/shm"
		mount --bind /dev/pts "$d/dev/pts"
		mount -t tmpfs -o mode=1777,size=16m shm "$d/dev/shm"
		ln -s pts/ptmx "$d/dev/ptmx"
		ln -s /proc/self/fd "$d/dev/fd"
		mount --rbind "$d/dev" /dev
		hostname "$h"
		exec libvirtd -d -p "$d/libvirtd.pid" --listen -f /etc/libvirt/libvirtd.conf
	' sh "$d" "$h" "$LAB_CACHE/libvirt-cache/$h"
}

wait_daemon() {
	local h=$1 deadline=$((SECONDS + 90))
	until virsh -q -c "$(host_uri "$h")" version >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "libvirtd of $h did not answer within 90 s (see $(host_dir "$h")/var/log/libvirt/libvirtd.log)"
		sleep 0.2
	done
}

# host_pids lists every process of HOST: everything in its network namespace.
host_pids() {
	local ns
	ns=$(host_ns "$1")
	[[ -e /run/netns/$ns ]] || return 0
	ip netns pids "$ns" 2>/dev/null || true
}

# kill_host kills every process of HOST and waits until they are gone. PID 1 reaps
# orphans lazily here, so a zombie counts as gone.
kill_host() {
	local h=$1 pids p deadline=$((SECONDS + 30)) alive
	pids=$(host_pids "$h")
	if [[ -n $pids ]]; then
		# shellcheck disable=SC2086 # one argument per pid
		kill -9 $pids 2>/dev/null || true
	fi
	while :; do
		alive=
		for p in $(host_pids "$h"); do
			if [[ -r /proc/$p/status ]] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
				alive="$alive $p"
				kill -9 "$p" 2>/dev/null || true
			fi
		done
		[[ -z $alive ]] && return 0
		((SECONDS < deadline)) || die "processes of $h did not die:$alive"
		sleep 0.1
	done
}

# --- guests -------------------------------------------------------------------------

guest_xml() {
	local vm=$1 mib=$2 disk=${3:-} dirty=${4:-0} diskxml=
	if [[ -n $disk ]]; then
		diskxml="<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>"
	fi
	cat <<EOF
<domain type='qemu'>
  <name>$vm</name>
  <memory unit='MiB'>$mib</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$LAB_DIR/img/vmlinuz</kernel>
    <initrd>$LAB_DIR/img/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 rdinit=/init drover.dirty=$dirty</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    $diskxml
    <serial type='file'>
      <source path='$LAB_DIR/logs/$vm.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$LAB_DIR/logs/$vm.log' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

define_guests() {
	mkdir -p "$LAB_DIR/logs" "$LAB_DIR/img"
	# The daemons see their own /var: give QEMU the images from outside it.
	cp "$LAB_CACHE/vmlinuz" "$LAB_CACHE/initrd.gz" "$LAB_DIR/img/"
	local spec vm h opts opt disk dirty
	for spec in $LAB_GUESTS; do
		IFS=: read -r vm h opts <<<"$spec"
		disk= dirty=0
		for opt in ${opts//:/ }; do
			case $opt in
			disk) disk=disk ;;
			dirty=*) dirty=${opt#dirty=}; [[ $dirty =~ ^[0-9]+$ ]] || die "LAB_GUESTS: $spec: dirty=N takes whole MiB/s" ;;
			*) die "LAB_GUESTS: $spec: unknown option $opt (disk, dirty=N)" ;;
			esac
		done
		host_index "$h" >/dev/null
		if [[ $disk == disk ]]; then
			vsh "$h" vol-create-as images "$vm.qcow2" "${LAB_DISK_MIB}M" --format qcow2 >/dev/null
		fi
		guest_xml "$vm" "$LAB_GUEST_MIB" "${disk:+/var/lib/libvirt/images/$vm.qcow2}" "$dirty" >"$LAB_DIR/$vm.xml"
		vsh "$h" define "$LAB_DIR/$vm.xml" >/dev/null
		vsh "$h" start "$vm" >/dev/null
	done
}

# make_pool gives HOST a storage pool "images" on its own /var/lib/libvirt/images (each
# host has its own /var): guests' local disks live there, and libvirt pre-creates an
# incoming storage migration's disks there.
make_pool() {
	local h=$1
	mkdir -p "$(host_dir "$h")/var/lib/libvirt/images"
	vsh "$h" pool-define-as images dir --target /var/lib/libvirt/images >/dev/null
	vsh "$h" pool-autostart images >/dev/null
	vsh "$h" pool-start images >/dev/null
}

# cmd_disk_files prints the hosts whose images folder holds VM's disk file.
cmd_disk_files() {
	local vm=$1 h
	for h in "${HOSTS[@]}"; do
		if [[ -e $(host_dir "$h")/var/lib/libvirt/images/$vm.qcow2 ]]; then echo "$h"; fi
	done
}

# find_vm prints the host where VM is defined or running (running wins).
find_vm() {
	local vm=$1 h st found=
	for h in "${HOSTS[@]}"; do
		st=$(vsh "$h" domstate "$vm" 2>/dev/null) || continue
		if [[ $st == running ]]; then echo "$h"; return 0; fi
		found=${found:-$h}
	done
	[[ -n $found ]] && echo "$found" && return 0
	die "vm $vm not found on any host"
}

# --- commands -----------------------------------------------------------------------

cmd_up() {
	need_root
	for b in libvirtd virsh qemu-system-x86_64 busybox; do
		command -v "$b" >/dev/null || die "$b not found: run 'lab.sh deps' first"
	done
	[[ -s $LAB_CACHE/vmlinuz ]] || die "no guest kernel in $LAB_CACHE: run 'lab.sh deps' first"
	[[ -e /run/netns/$BRNS ]] && die "lab already up (run 'lab.sh down' first)"
	# A failed up leaves nothing behind.
	# shellcheck disable=SC2154 # rc is assigned inside the trap
	trap 'rc=$?; if [[ $rc != 0 ]]; then log "up failed: tearing down"; cmd_down; fi' EXIT
	local t0=$SECONDS
	build_initramfs
	mkdir -p "$LAB_DIR" "$LAB_CACHE"
	chmod 700 "$LAB_DIR"
	make_network
	local h
	for h in "${HOSTS[@]}"; do
		write_host_conf "$h"
		start_daemon "$h"
	done
	for h in "${HOSTS[@]}"; do wait_daemon "$h"; done
	for h in "${HOSTS[@]}"; do make_pool "$h"; done
	log "daemons up after $((SECONDS - t0)) s"
	define_guests
	log "lab up after $((SECONDS - t0)) s"
	trap - EXIT
}

cmd_down() {
	need_root
	local h ns
	for h in "${HOSTS[@]}"; do
		kill_host "$h" || true
		ns=$(host_ns "$h")
		if [[ -e /run/netns/$ns ]]; then ip netns del "$ns" 2>/dev/null || true; fi
	done
	if [[ -e /run/netns/$BRNS ]]; then ip netns del "$BRNS" 2>/dev/null || true; fi
	# The daemons' bind mounts lived in their private mount namespaces and died with them.
	rm -rf "$LAB_DIR"
	log "lab down"
}

cmd_status() {
	local h vm st
	for h in "${HOSTS[@]}"; do
		if virsh -q -c "$(host_uri "$h")" version >/dev/null 2>&1; then
			echo "$h $(host_ip "$h") up boot=$(cat "$(host_dir "$h")/boot_id" 2>/dev/null)"
			vsh "$h" list --all | sed "s/^/  /"
		else
			echo "$h $(host_ip "$h") down"
		fi
	done
}

cmd_reboot_host() {
	need_root
	local h=$1 t0=$SECONDS
	host_index "$h" >/dev/null
	[[ -e /run/netns/$(host_ns "$h") ]] || die "lab is not up"
	kill_host "$h"
	start_daemon "$h"
	wait_daemon "$h"
	log "$h rebooted in $((SECONDS - t0)) s"
}

cmd_heartbeat() {
	local vm=$1 f=$LAB_DIR/logs/$1.log line
	[[ -r $f ]] || die "no console log for $vm ($f)"
	line=$(grep -a -o 'HB boot=[0-9a-f-]* n=[0-9]*' "$f" | tail -n 1) || true
	[[ -n $line ]] || die "no heartbeat from $vm yet"
	echo "${line#HB }"
}

cmd_pin() {
	local vm=$1 on=$2 h
	h=$(find_vm "$vm")
	if [[ $on == 1 ]]; then
		vsh "$h" metadata "$vm" "$DROVER_NS" --key drover --config --live \
			--set "<drover migratable='no' reason='pinned by lab.sh pin'/>" >/dev/null
	else
		vsh "$h" metadata "$vm" "$DROVER_NS" --key drover --config --live --remove >/dev/null
	fi
}

# cmd_migrate moves VM to HOST the way an operator would: virsh, peer-to-peer, live,
# persistent on the target and undefined on the source.
cmd_migrate() {
	local vm=$1 to=$2 from ip
	host_index "$to" >/dev/null
	from=$(find_vm "$vm")
	[[ $from == "$to" ]] && return 0
	ip=$(host_ip "$to")
	vsh "$from" migrate --live --p2p --persistent --undefinesource "$vm" "qemu+tcp://$ip/system" "tcp://$ip"
}

main() {
	local cmd=${1:-}
	shift || true
	case "$cmd" in
	deps) cmd_deps ;;
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	reboot-host) [[ $# == 1 ]] || die "usage: lab.sh reboot-host HOST"; cmd_reboot_host "$1" ;;
	boot-id) [[ $# == 1 ]] || die "usage: lab.sh boot-id HOST"; cat "$(host_dir "$1")/boot_id" ;;
	heartbeat) [[ $# == 1 ]] || die "usage: lab.sh heartbeat VM"; cmd_heartbeat "$1" ;;
	pin) [[ $# == 1 ]] || die "usage: lab.sh pin VM"; cmd_pin "$1" 1 ;;
	unpin) [[ $# == 1 ]] || die "usage: lab.sh unpin VM"; cmd_pin "$1" 0 ;;
	migrate) [[ $# == 2 ]] || die "usage: lab.sh migrate VM HOST"; cmd_migrate "$1" "$2" ;;
	disk-files) [[ $# == 1 ]] || die "usage: lab.sh disk-files VM"; cmd_disk_files "$1" ;;
	uri) [[ $# == 1 ]] || die "usage: lab.sh uri HOST"; host_index "$1" >/dev/null; host_uri "$1" ;;
	virsh) [[ $# -ge 1 ]] || die "usage: lab.sh virsh HOST ARGS..."; vsh "$@" ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; [[ -z $cmd ]] || exit 2 ;;
	esac
}

main "$@"
