#!/usr/bin/env bash
# Health tells the truth, against a real bottle (docker backend, no test internet needed):
#   1. launch bottle lr-hang; bottle-health reports every daemon healthy, through its real path
#   2. egress is stopped with SIGSTOP (it still listens: the kernel accepts for it); bottle-health says
#      egress is unhealthy (hung), and Docker's health status turns unhealthy, each within 10 s
#   3. bottle-init restarts egress (an audit line in audit/bundle.jsonl), health is back, and the agent's
#      refused request is answered by egress's readable 403 again; the probes wrote nothing to egress's audit
#   4. teardown archives bundle.jsonl with the rest of the audit
# BOTTLE_BUNDLE_IMAGE picks the bundle image (default: the role's). State and archives live in a temporary
# folder; the trap removes the bottle. Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/health_hang.sh
set -euo pipefail
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$(dirname "$0")/lib/bottle_test.sh"
SLUG=lr-hang
bt_init "health hang"
B=bb-$SLUG-bundle
bt_on_fail() { docker logs --tail 20 $B 2>&1 | grep -v '^\[egress\] {'; }
bt_inventory "health hang test agent"
image=()
[ -n "${BOTTLE_BUNDLE_IMAGE:-}" ] && image=(-e "bottle_bundle_image=$BOTTLE_BUNDLE_IMAGE")
health() { docker exec $B bottle-health --json 2>/dev/null || true; }
refused() { docker exec -u agent bb-$SLUG-agent curl -s --max-time 5 http://blocked.bottle.test/x || true; }

step "launch bottle $SLUG"
ansible-playbook -i "$INV" playbooks/bottle.yml -e agent=$SLUG "${image[@]}" >"$D/launch.log" \
  || { tail -30 "$D/launch.log"; fail "launch"; }
[ "$(health)" = '{"egress": "healthy", "supervise": "healthy"}' ] || fail "not healthy after launch: $(health)"
refused | grep -q "blocked by egress" || fail "egress does not refuse the agent's request readably"
audit_before=$(wc -l <"$STATE/$SLUG/audit/egress.jsonl")

step "wait until Docker's health and bottle-init's watch have seen the bundle healthy"
# Docker does not count failed checks during the start period (until a first healthy check), and
# bottle-init's watch gives a starting daemon grace until it first sees it healthy: a hang is a hang of a
# running bundle, so the test stops egress only once both have seen it up.
for _ in $(seq 1 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' $B)" = healthy ] && break
  sleep 0.5
done
[ "$(docker inspect -f '{{.State.Health.Status}}' $B)" = healthy ] || fail "Docker's health never said healthy"
sleep 4  # one round of bottle-init's watch (every 3 s, BOTTLE_HEALTH_INTERVAL)

step "SIGSTOP egress"
pid=$(docker exec $B python3 -c 'import os; print(next(p for p in os.listdir("/proc") if p.isdigit() and b"mitmdump" in open("/proc/%s/cmdline" % p, "rb").read()))')
docker exec $B python3 -c "import os, signal; os.kill($pid, signal.SIGSTOP)"
stopped=$(date +%s.%N)
seen_unhealthy='' docker_unhealthy=''
for _ in $(seq 1 40); do
  now=$(python3 -c "import time; print(round(time.time() - $stopped, 1))")
  if [ -z "$seen_unhealthy" ] && health | grep -q '"egress": "unhealthy: .*did not answer'; then seen_unhealthy=$now; fi
  if [ -z "$docker_unhealthy" ] && [ "$(docker inspect -f '{{.State.Health.Status}}' $B)" = unhealthy ]; then docker_unhealthy=$now; fi
  [ -n "$seen_unhealthy" ] && [ -n "$docker_unhealthy" ] && break
  sleep 0.5
done
echo "bottle-health unhealthy after ${seen_unhealthy:-never}s, Docker's health after ${docker_unhealthy:-never}s"
python3 -c "import sys; sys.exit(0 if '${seen_unhealthy}' and float('${seen_unhealthy}') <= 10 else 1)" || fail "bottle-health missed the hang"
python3 -c "import sys; sys.exit(0 if '${docker_unhealthy}' and float('${docker_unhealthy}') <= 10 else 1)" || fail "Docker's health missed the hang"

step "bottle-init restarts egress"
for _ in $(seq 1 60); do
  grep -q '"event":"restart","daemon":"egress"' "$STATE/$SLUG/audit/bundle.jsonl" 2>/dev/null \
    && [ "$(health)" = '{"egress": "healthy", "supervise": "healthy"}' ] && break
  sleep 0.5
done
grep '"event":"restart"' "$STATE/$SLUG/audit/bundle.jsonl" || fail "no restart audit line"
[ "$(health)" = '{"egress": "healthy", "supervise": "healthy"}' ] || fail "egress did not come back: $(health)"
[ "$(docker inspect -f '{{.State.Status}}' $B)" = running ] || fail "the bundle stopped"
refused | grep -q "blocked by egress" || fail "egress does not answer the agent after its restart"
[ "$(wc -l <"$STATE/$SLUG/audit/egress.jsonl")" -eq $((audit_before + 1)) ] \
  || fail "the health probes were written to egress's audit (only the agent's one request should be)"

step "teardown archives bundle.jsonl"
ansible-playbook -i "$INV" playbooks/teardown.yml -e bottle=$SLUG >"$D/teardown.log" || { tail -20 "$D/teardown.log"; fail "teardown"; }
compgen -G "$ARCHIVE/$SLUG-*/audit/bundle.jsonl" >/dev/null || fail "bundle.jsonl was not archived"
step "passed"
