#!/usr/bin/env bash
# The operator's console end to end: a real bottle (docker) whose agent asks supervise (MCP) for a
# host egress refuses; the console, driven headless (tests/integration/console/drive.py), sees the
# ask and approves it with its key; the running bottle then lets the agent reach the host, with no
# restart. The test "internet" is the project's testnet container on a network of this run only;
# nothing talks to any address outside this machine. Everything it creates goes in the trap.
# Run it under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/console.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export PYTHONPATH="$root/console:$root/.build/collections${PYTHONPATH:+:$PYTHONPATH}"
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
agent=cn instance=$run_id slug="cn-$run_id"
NET="bb-testnet-cn-$run_id" SERVER="bb-testnet-cn-$run_id-server" BT_SUBNET=172.28.246.0/24
work=$(mktemp -d /tmp/bb-console.XXXXXX)
chmod 755 "$work"
state_root="$work/state"
start=$(date +%s)
step() { printf '\n--- console [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'CONSOLE TEST FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tests/integration/lib/testnet.sh
. "$root/tests/integration/lib/testnet.sh"

cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  ansible-playbook -i "$work/inventory.yml" playbooks/teardown.yml -e bottle="$slug" \
    -e bottle_state_root="$state_root" >"$work/teardown.log" 2>&1 || { echo "teardown failed:"; tail -20 "$work/teardown.log"; }
  bt_testnet_remove "$NET" "$SERVER"
  mapfile -t left < <(docker ps -aq --filter "label=io.botbottle.bottle=$slug")
  [ ${#left[@]} -eq 0 ] || { echo "containers left behind: ${left[*]}"; docker rm -f "${left[@]}" >/dev/null 2>&1 || true; }
  mapfile -t left < <(docker network ls -q --filter "label=io.botbottle.bottle=$slug")
  [ ${#left[@]} -eq 0 ] || { echo "networks left behind: ${left[*]}"; docker network rm "${left[@]}" >/dev/null 2>&1 || true; }
  # The teardown may archive the bottle's audit (~/.bot-bottle/archive/<slug>-<ts>/): this run's only.
  rm -rf "$HOME/.bot-bottle/archive/$slug-"* 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || sudo -n rm -rf "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "the test internet: testnet on $NET"
bt_testnet console "$NET" "$SERVER" "$work/ca.pem" allowed.bottle.test blocked.bottle.test

cat >"$work/inventory.yml" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $state_root
    bottle_bundle_image: "${BB_BUNDLE_IMAGE:-botbottle/bundle:latest}"
    bottle_bundle_extra_networks: [$NET]
    bottle_ssrf_ip_allowlist: [$SUBNET]
    bottle_upstream_ca_file: $work/ca.pem
    bottle_agents:
      $agent:
        description: console test agent; no LLM is ever called.
        policy: $agent
        prompt: You are the console test agent of the botbottle test suite.
    bottle_policies:
      $agent:
        allowed_domains: [allowed.bottle.test]
        supervise: {wait_seconds: 1, max_pending: 5}
YAML

step "launch bottle $slug"
ansible-playbook -i "$work/inventory.yml" playbooks/bottle.yml -e agent=$agent -e bottle_instance="$instance" \
  >"$work/launch.log" 2>&1 || { tail -40 "$work/launch.log"; fail "the bottle did not launch"; }
bundle_started=$(docker inspect --format '{{.State.StartedAt}}' "bb-$slug-bundle")
in_agent() { docker exec -u agent "bb-$slug-agent" bash -c "$1"; }
code() { in_agent "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://blocked.bottle.test/console-$run_id" 2>/dev/null || true; }

step "the agent is refused blocked.bottle.test"
[ "$(code)" = 403 ] || fail "blocked.bottle.test was not refused before the approval"

step "the agent asks for it through supervise (MCP)"
bundle_ip=$(docker inspect --format "{{(index .NetworkSettings.Networks \"bb-$slug-net-int\").IPAddress}}" "bb-$slug-bundle")
docker exec -i -u agent "bb-$slug-agent" bash -c 'cat > /tmp/mcp_call.js' <extensions/molecule/supervise/files/mcp_call.js
ask=$(in_agent "node /tmp/mcp_call.js http://$bundle_ip:9100/mcp request_domain '{\"host\": \"blocked.bottle.test\", \"justification\": \"the console test needs it\"}'")
id=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="pending", a; print(a["id"])' "$ask") \
  || fail "request_domain did not answer pending: $ask"
echo "ask $id"

step "the console sees the ask and approves it (key a), headless"
python tests/integration/console/drive.py "$state_root" "$slug" "$id" a | tee "$work/console.json" \
  || fail "the console did not approve the ask"
python3 - "$work/console.json" "$slug" <<'PY' || fail "the console's view or decision is not the expected one"
import json, sys
seen = json.load(open(sys.argv[1]))
assert any(sys.argv[2] in n and "blocked.bottle.test" in n for n in seen["notes"]), seen["notes"]
assert "now approved" in seen["log"] and "reloaded" in seen["log"], seen["log"]
assert seen["health"] and all(v == "healthy" for v in seen["health"].values()), seen["health"]
assert any(r["host"] == "blocked.bottle.test" and r["refused"] >= 1 for r in seen["firewall"]), seen["firewall"]
PY

step "the agent reaches blocked.bottle.test now, and the bundle was not restarted"
got=$(code)
[ "$got" = 200 ] || fail "after the approval the agent got HTTP $got, not 200"
[ "$(docker inspect --format '{{.State.StartedAt}}' "bb-$slug-bundle")" = "$bundle_started" ] || fail "the bundle restarted"
status=$(in_agent "node /tmp/mcp_call.js http://$bundle_ip:9100/mcp proposal_status '{\"id\": \"$id\"}'")
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="approved", a' "$status" \
  || fail "the agent does not see its ask approved: $status"
grep -q blocked.bottle.test "$state_root/$slug/supervise-approved.json" || fail "supervise-approved.json lacks the host"
step "passed"
