#!/usr/bin/env bash
# Fleet test hosts, shared by tests/integration/fleet.sh and bench/fleet.py:
#   hosts.sh up DIR [N]    build the images if their inputs changed, start N (default 3) hosts
#                          bb-fleet-host1..N on bb-fleet-net (172.28.240.0/24, internal), write DIR/key,
#                          DIR/known_hosts (host keys pinned from the containers, never learnt on first use)
#   hosts.sh down          remove every container, volume and network labelled io.botbottle.test=fleet
# Each host: its own dockerd (on a docker volume, so overlay2 works) and sshd, python3 with the Docker SDK.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export BB_FLEETHOST_IMAGE=${BB_FLEETHOST_IMAGE:-botbottle/fleethost:test}
export EXTRA_CA=${EXTRA_CA:-$(ls /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true)}
NET=bb-fleet-net SUBNET=172.28.240.0/24 LABEL=io.botbottle.test=fleet

down() {
  docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f -v >/dev/null
  docker volume ls -q --filter "label=$LABEL" | xargs -r docker volume rm >/dev/null
  docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null
}

up() {
  local dir=$1 count=${2:-3} host i
  ansible-playbook tests/integration/fleet/images.yml >/dev/null
  down
  [ -f "$dir/key" ] || ssh-keygen -q -t ed25519 -N '' -C bb-fleet-test -f "$dir/key"
  docker network create --internal --subnet "$SUBNET" --label "$LABEL" "$NET" >/dev/null
  for i in $(seq "$count"); do
    host=bb-fleet-host$i
    docker volume create --label "$LABEL" "$host-docker" >/dev/null
    # Every capability but CAP_SYS_RESOURCE (not in this box's bounding set, so --privileged
    # fails here); unconfined system paths let the entrypoint make its cgroups writable.
    docker run -d --name "$host" --hostname "$host" --label "$LABEL" --network "$NET" --ip "172.28.240.1$i" \
      --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
      --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
      -v "$host-docker:/var/lib/docker" -e FLEETHOST_AUTHORIZED_KEY="$(cat "$dir/key.pub")" \
      "$BB_FLEETHOST_IMAGE" >/dev/null
  done
  : >"$dir/known_hosts"
  for i in $(seq "$count"); do
    host=bb-fleet-host$i
    for _ in $(seq 60); do
      docker exec "$host" docker info >/dev/null 2>&1 && docker exec "$host" test -s /etc/ssh/ssh_host_ed25519_key.pub && break
      sleep 1
    done
    if ! docker exec "$host" docker info >/dev/null 2>&1; then
      echo "$host: its dockerd did not start:" >&2
      docker exec "$host" tail -5 /var/log/dockerd.log >&2
      return 1
    fi
    printf '172.28.240.1%s %s\n' "$i" "$(docker exec "$host" cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" >>"$dir/known_hosts"
  done
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up DIR [N] | down" >&2; exit 2 ;;
esac
