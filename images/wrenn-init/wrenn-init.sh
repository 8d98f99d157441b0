#!/opt/wrenn/bin/busybox sh
# wrenn-init: PID 1 of a Wrenn VM. Mounts the kernel file systems, sets the host name, configures
# eth0 from the kernel command line (ip=<guest>::<gateway>:<netmask>:<hostname>:eth0:off), reads
# the metadata service (falling back to wrenn.id= / wrenn.template= on the command line) and runs
# envd, restarting it if it dies. Waiting in this shell reaps every orphan (waitpid(-1)).
bb=/opt/wrenn/bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/wrenn/bin
log() { echo "wrenn-init: $*" >/dev/console; }

$bb mkdir -p /proc /sys /dev /run /tmp
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb grep -q " /dev devtmpfs " /proc/mounts || $bb mount -t devtmpfs devtmpfs /dev
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$bb mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$bb mount -t tmpfs -o mode=755 tmpfs /run
$bb chmod 1777 /tmp
[ -e /dev/ptmx ] || $bb ln -s pts/ptmx /dev/ptmx
$bb mkdir -p /run/wrenn

ipconf='' id='' template='' envd_port=49983 node_flags='' volumes='' shares=''
for w in $($bb cat /proc/cmdline); do
  case "$w" in
    ip=*) ipconf="${w#ip=}" ;;
    wrenn.id=*) id="${w#wrenn.id=}" ;;
    wrenn.template=*) template="${w#wrenn.template=}" ;;
    wrenn.envd_port=*) envd_port="${w#wrenn.envd_port=}" ;;
    wrenn.node_flags=*) node_flags=$(echo "${w#wrenn.node_flags=}" | $bb tr ',' ' ') ;;
    wrenn.volume=*) volumes="$volumes ${w#wrenn.volume=}" ;;
    wrenn.share=*) shares="$shares ${w#wrenn.share=}" ;;
  esac
done

# Volumes: wrenn.volume=<disk serial or vdX>:<path>. Each is an ext4 disk of its own (the host
# attached the volume's image; Firecracker's disks have no serial, so they are named by their
# place after the root disk); its files are under data/ on it, bound at <path>. Mounted sync: a
# destroy kills the VM, and what the guest had not written back yet would be lost.
for v in $volumes; do
  serial="${v%%:*}" path="${v#*:}" dev=''
  for s in /sys/block/vd*/serial; do
    [ "$($bb cat "$s" 2>/dev/null)" = "$serial" ] && dev="/dev/$($bb basename "$($bb dirname "$s")")"
  done
  case "$serial" in vd[b-z]) [ -b "/dev/$serial" ] && dev="/dev/$serial" ;; esac
  mnt="/run/wrenn/volumes/$serial"
  $bb mkdir -p "$mnt" "$path"
  if [ -n "$dev" ] && $bb mount -t ext4 -o nosuid,nodev,noatime,sync "$dev" "$mnt" && $bb mount -o bind "$mnt/data" "$path"; then
    log "volume $serial ($dev) mounted at $path"
  else
    log "cannot mount volume $serial (device '${dev}') at $path"
  fi
done

# Shared volumes: wrenn.share=<9p mount tag>:<path>, the volume's host directory exported by QEMU
# (shared with other capsules at once). cache=none: every read and write goes to the host, so all
# users see the same bytes and a destroy loses nothing written; nosuid,nodev as on the host.
for v in $shares; do
  tag="${v%%:*}" path="${v#*:}"
  $bb mkdir -p "$path"
  if $bb mount -t 9p -o trans=virtio,version=9p2000.L,access=client,cache=none,msize=524288,nosuid,nodev "$tag" "$path"; then
    log "volume $tag (9p) mounted at $path"
  else
    log "cannot mount volume $tag (9p) at $path"
  fi
done

# ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>
IFS=: read -r addr _srv gw mask host dev _auto <<IPCONF
$ipconf
IPCONF
dev="${dev:-eth0}"
[ -n "$host" ] && $bb hostname "$host" && echo "$host" >/etc/hostname 2>/dev/null
$bb ip link set lo up
if [ -n "$addr" ]; then
  prefix=30
  case "$mask" in 255.255.255.252) prefix=30 ;; 255.255.255.0) prefix=24 ;; 255.255.0.0) prefix=16 ;; 255.255.255.255) prefix=32 ;; esac
  $bb ip addr add "$addr/$prefix" dev "$dev" && $bb ip link set "$dev" up || log "cannot configure $dev"
  [ -n "$gw" ] && $bb ip route add default via "$gw" dev "$dev"
fi

# Metadata: the agent's service at 169.254.169.254, else the command line's values. MMDS V2
# (Firecracker) wants a session token from PUT /latest/api/token first; wget cannot PUT, so nc
# sends that request. The agent's own service answers both ways.
meta=/run/wrenn/metadata.json
token=$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-metadata-token-ttl-seconds: 300\r\n\r\n' |
  $bb timeout 3 $bb nc 169.254.169.254 80 2>/dev/null | $bb tr -d '\r' | $bb sed '1,/^$/d' | $bb head -n 1)
if $bb timeout 5 $bb wget -q -O "$meta" --header 'Accept: application/json' --header "X-metadata-token: $token" \
  http://169.254.169.254/ 2>/dev/null; then
  v=$($bb sed -n 's/.*"WRENN_SANDBOX_ID":"\([^"]*\)".*/\1/p' "$meta"); [ -n "$v" ] && id="$v"
  v=$($bb sed -n 's/.*"WRENN_TEMPLATE_ID":"\([^"]*\)".*/\1/p' "$meta"); [ -n "$v" ] && template="$v"
  echo >>"$meta"
  echo service >/run/wrenn/metadata.source
else
  echo cmdline >/run/wrenn/metadata.source
  log "metadata service not reachable; using the kernel command line"
  printf '{"WRENN_SANDBOX_ID":"%s","WRENN_TEMPLATE_ID":"%s"}\n' "$id" "$template" >"$meta"
fi
export WRENN_SANDBOX_ID="$id" WRENN_TEMPLATE_ID="$template" WRENN_CAPSULE=1 HOME=/root

rt=/opt/wrenn/runtime
while :; do
  log "starting envd on port $envd_port (uptime $($bb cut -d' ' -f1 /proc/uptime) s)"
  # shellcheck disable=SC2086 # node_flags is a word list
  "$rt"/lib/ld-linux-x86-64.so.2 --library-path "$rt/lib" "$rt/bin/node" $node_flags /opt/wrenn/envd/envd.mjs \
    --port "$envd_port" </dev/null >>/run/wrenn/envd.log 2>&1 &
  wait
  log "envd exited; restarting it in 1 s"
  $bb sleep 1
done
