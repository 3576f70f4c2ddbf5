#!/usr/bin/env bash
# One bottle, one change at a time, against real launches (docker backend, no test internet needed):
# three first launches of one new bottle at once - one creates it, the other two wait for its lock and
# find it running ("nothing changed"), all three exit 0; then a teardown removes it.
# State lives in a temporary folder; the trap removes the bottle.
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/concurrent_launch.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
D=$(mktemp -d /tmp/bb-concurrent-test.XXXXXX)
SLUG=lr-three INV=$D/inventory.yml
start=$(date +%s)
step() { printf '\n--- concurrent launch [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'CONCURRENT LAUNCH TEST FAILED: %s\n' "$*" >&2; exit 1; }
cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  ansible-playbook -i "$INV" playbooks/teardown.yml -e bottle=$SLUG -e bottle_archive=false >/dev/null 2>&1 || true
  docker ps -aq --filter label=io.botbottle.bottle=$SLUG | grep -q . && echo "WARNING: containers of $SLUG left"
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cat >"$INV" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $D/state
    bottle_archive_root: $D/archive
    bottle_agents:
      $SLUG:
        description: concurrent launch test agent; no LLM is ever called.
        policy: $SLUG
        prompt: You are the concurrent launch test agent.
    bottle_policies:
      $SLUG:
        allowed_domains: [allowed.bottle.test]
YAML
step "three first launches of bottle $SLUG at once"
pids=()
for n in 1 2 3; do
  ansible-playbook -i "$INV" playbooks/bottle.yml -e agent=$SLUG >"$D/launch$n.log" 2>&1 & pids+=($!)
done
rcs=()
for pid in "${pids[@]}"; do if wait "$pid"; then rcs+=(0); else rcs+=($?); fi; done
echo "exit codes: ${rcs[*]}"
for n in 1 2 3; do grep -ho 'bottle lr-three ([^"]*) is running ([^"]*)' "$D/launch$n.log" || true; done
for n in 1 2 3; do [ "${rcs[$((n-1))]}" = 0 ] || { tail -20 "$D/launch$n.log"; fail "launch $n exited ${rcs[$((n-1))]}"; }; done
[ "$(cat "$D"/launch*.log | grep -c 'is running (created: ')" = 1 ] || fail "not exactly one launch created the bottle"
[ "$(cat "$D"/launch*.log | grep -c 'is running (nothing changed)')" = 2 ] || fail "the other two did not find it running"
[ "$(cat "$D"/launch*.log | grep -c "the bottle's lock), then found the bottle as it left it")" -ge 1 ] \
  || fail "no launch said what it waited for"
[ "$(docker ps -q --filter label=io.botbottle.bottle=$SLUG | wc -l)" = 2 ] || fail "expected 2 running containers"
step "passed"
