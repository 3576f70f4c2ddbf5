#!/usr/bin/env bash
# One bottle, one change at a time, against real launches (docker backend, no test internet needed):
# three first launches of one new bottle at once - one creates it, the other two wait for its lock and
# find it running ("nothing changed"), all three exit 0; then a teardown removes it.
# State lives in a temporary folder; the trap removes the bottle.
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/concurrent_launch.sh
set -euo pipefail
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$(dirname "$0")/lib/bottle_test.sh"
SLUG=lr-three
bt_init "concurrent launch"
bt_inventory "concurrent launch test agent"
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
