#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-or-later
# /init of the test VM (scripts/vm/vm-run.sh builds it into the initramfs): loads the modules, mounts the
# host's root filesystem (9p, read only, under a tmpfs overlay) and the run's result folder (9p, writable)
# at their host paths,
# runs the command there under chroot, records its exit code and powers off. Markers go to the serial console.
/bin/busybox mkdir -p /proc /sys /dev /host
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
say() { echo "ctsync-vm: $*" >/dev/ttyS0; }
fail() { say "FAILED: $*"; poweroff -f; }
while read -r module; do
    insmod "${module}" || fail "insmod ${module}"
done </modules/order
result="$(cat /result-path)"
# The host's root, read only, under a tmpfs overlay: the command can write anywhere (a build tree under
# /tmp included, which must stay visible) and nothing reaches the host.
mkdir -p /lower /rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower || fail "9p hostroot"
mount -t tmpfs -o mode=755 rw /rw && mkdir -p /rw/upper /rw/work || fail "tmpfs for the overlay"
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work,xino=off overlay /host || fail "overlay"
mount -t tmpfs -o mode=755 run /host/run || fail "tmpfs /run"
mount -t proc proc /host/proc && mount -t sysfs sys /host/sys && mount -t devtmpfs dev /host/dev ||
    fail "proc, sys, dev"
mkdir -p /host/dev/pts /host/dev/shm && mount -t devpts devpts /host/dev/pts && mount -t tmpfs shm /host/dev/shm
mkdir -p "/host${result}" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "/host${result}" ||
    fail "9p results"
say "booted, running the command"
chroot /host /bin/bash "${result}/command.sh" >"/host${result}/output" 2>&1 </dev/null
echo "$?" >"/host${result}/rc"
sync
say "command ended with $(cat "/host${result}/rc")"
umount "/host${result}"
poweroff -f
