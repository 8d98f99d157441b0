#!/bin/busybox sh
# /init of the Wrenn VM initramfs: loads the virtio and ext4 modules (built as modules in
# Debian's kernel), mounts the root disk and hands over to /opt/wrenn/bin/wrenn-init on it.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /newroot
$bb mount -t proc proc /proc
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /modules/order); do
  $bb insmod "/modules/$m.ko" 2>/dev/null || echo "wrenn initramfs: insmod $m failed" >/dev/kmsg
done
root=/dev/vda
for w in $($bb cat /proc/cmdline); do
  case "$w" in root=/dev/*) root="${w#root=}" ;; esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do $bb usleep 50000; i=$((i + 1)); done
if ! $bb mount -t ext4 -o rw,noatime "$root" /newroot; then
  echo "wrenn initramfs: cannot mount $root (ext4); dropping to a shell" >/dev/console
  exec $bb sh
fi
$bb mkdir -p /newroot/dev /newroot/proc
$bb mount --move /dev /newroot/dev
$bb umount /proc
exec $bb switch_root /newroot /opt/wrenn/bin/wrenn-init
