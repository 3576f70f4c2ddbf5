#!/bin/sh
# Start a fleet test host: a host key made per container (the test pins it with docker exec),
# the controller's public key, dockerd in the background, sshd in the foreground.
set -eu
[ -n "${FLEETHOST_AUTHORIZED_KEY:-}" ] || { echo "FLEETHOST_AUTHORIZED_KEY is empty: pass the controller's public key" >&2; exit 2; }
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
printf '%s\n' "$FLEETHOST_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
# Nested dockerd without --privileged (the test box's capability bounding set lacks
# CAP_SYS_RESOURCE, which --privileged insists on): the container runs with every other
# capability and unconfined system paths, so it can make /sys and its own cgroups writable.
mount -o remount,rw /sys
awk '$3 == "cgroup" {print $2}' /proc/mounts | while read -r m; do mount -o remount,bind,rw "$m"; done
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
  # cgroup v2 (private cgroup namespace): move ourselves out of the root so dockerd may
  # delegate controllers, as docker's own dind script does.
  mount -o remount,rw /sys/fs/cgroup
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control
fi
mount --make-rshared /
dockerd --storage-driver=overlay2 --userland-proxy=false >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
