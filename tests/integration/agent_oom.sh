#!/usr/bin/env bash
# A bottle cannot starve its host or its neighbours, against real bottles (docker backend):
#   1. two bottles on one test internet (the project's testnet container on a network of this run only):
#      om-a with resources {memory: 64m, pids: 256} in its agent definition, om-b with the defaults
#      (4g, 2 CPUs, 512); the bundles with their measured limit (1g)
#   2. om-a's agent allocates past 64m: the kernel kills that process inside the agent's own cgroup; the
#      agent container keeps running (the same container)
#   3. status (playbooks/status.yml) says the agent had an OOM kill and when (JSON and table)
#   4. om-a's bundle and om-b still serve: each agent reaches https://allowed.bottle.test through its egress
#   5. a new limit on the running agent (bottle_agent_memory 96m) is applied in place: same container id
# Nothing talks to any address outside this machine. Everything it creates goes in the trap.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
A="om-a-$run_id" B="om-b-$run_id"
NET="bb-testnet-om-$run_id" SERVER="bb-testnet-om-$run_id-server"
work=$(mktemp -d /tmp/bb-agent-oom.XXXXXX)
chmod 755 "$work"
state_root="$work/state" INV="$work/inventory.yml"
start=$(date +%s)
step() { printf '\n--- agent oom [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'AGENT OOM TEST FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tests/integration/lib/testnet.sh
. "$root/tests/integration/lib/testnet.sh"

cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  for slug in "$A" "$B"; do
    ansible-playbook -i "$INV" playbooks/teardown.yml -e bottle="$slug" -e bottle_archive=false \
      >"$work/teardown-$slug.log" 2>&1 || { echo "teardown of $slug failed:"; tail -20 "$work/teardown-$slug.log"; }
    mapfile -t left < <(docker ps -aq --filter "label=io.botbottle.bottle=$slug")
    [ ${#left[@]} -eq 0 ] || { echo "containers left behind: ${left[*]}"; docker rm -f "${left[@]}" >/dev/null 2>&1 || true; }
    mapfile -t left < <(docker network ls -q --filter "label=io.botbottle.bottle=$slug")
    [ ${#left[@]} -eq 0 ] || { echo "networks left behind: ${left[*]}"; docker network rm "${left[@]}" >/dev/null 2>&1 || true; }
  done
  bt_testnet_remove "$NET" "$SERVER"
  rm -rf "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "the test internet: testnet on $NET"
bt_testnet agent-oom "$NET" "$SERVER" "$work/ca.pem" allowed.bottle.test

cat >"$INV" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $state_root
    bottle_supervise_enabled: false
    bottle_bundle_extra_networks: [$NET]
    bottle_ssrf_ip_allowlist: [$SUBNET]
    bottle_upstream_ca_file: $work/ca.pem
    bottle_agents:
      om-a:
        description: agent OOM test agent (a small memory limit); no LLM is ever called.
        policy: om
        prompt: You are the agent OOM test agent.
        resources: {memory: 64m, pids: 256}
      om-b:
        description: agent OOM test neighbour (the default limits); no LLM is ever called.
        policy: om
        prompt: You are the agent OOM test neighbour.
    bottle_policies:
      om:
        allowed_domains: [allowed.bottle.test]
YAML

launch() {  # agent, instance, extra args...
  local agent=$1 instance=$2; shift 2
  ansible-playbook -i "$INV" playbooks/bottle.yml -e agent="$agent" -e bottle_instance="$instance" "$@"
}
step "launch $A and $B side by side"
launch om-a "$run_id" >"$work/launch-a.log" 2>&1 & pa=$!
launch om-b "$run_id" >"$work/launch-b.log" 2>&1 & pb=$!
wait $pa || { tail -30 "$work/launch-a.log"; fail "$A did not launch"; }
wait $pb || { tail -30 "$work/launch-b.log"; fail "$B did not launch"; }
limits() { docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.OomScoreAdj}}' "$1"; }
[ "$(limits "bb-$A-agent")" = "$((64 * 1024 * 1024)) 2000000000 256 500" ] || fail "$A's agent limits: $(limits "bb-$A-agent")"
[ "$(limits "bb-$B-agent")" = "$((4 * 1024 * 1024 * 1024)) 2000000000 512 500" ] || fail "$B's agent limits: $(limits "bb-$B-agent")"
[ "$(docker inspect -f '{{.HostConfig.Memory}}' "bb-$A-bundle")" = $((1024 * 1024 * 1024)) ] || fail "the bundle has no 1g limit"
agent_id=$(docker inspect -f '{{.Id}}' "bb-$A-agent")

reach() {  # slug: the agent's request through its egress to the test internet
  docker exec -u agent "bb-$1-agent" curl -sS --max-time 20 -o /dev/null -w '%{http_code}' \
    "https://allowed.bottle.test/oom-$run_id" 2>&1 || true
}
[ "$(reach "$A")" = 200 ] || fail "$A's agent does not reach allowed.bottle.test before: $(reach "$A")"

status_json() {
  ansible-playbook -i "$INV" playbooks/status.yml -e bottle_status_file="$work/status.json" >"$work/status.log" 2>&1 \
    || { tail -20 "$work/status.log"; fail "status failed"; }
}
step "status before: no OOM kill"
status_json
python3 - "$work/status.json" "$A" <<'PY' || fail "status reports an OOM kill before any"
import json, sys
b = next(b for b in json.load(open(sys.argv[1]))["hosts"][0]["bottles"] if b["slug"] == sys.argv[2])
assert b["agent_oom"]["kills"] == 0 and b["agent_oom"]["last"] is None and b["agent_oom"]["count"] == 0, b["agent_oom"]
print("agent_oom before:", b["agent_oom"])
PY

step "$A's agent allocates past its 64m limit"
before=$(date -u +%Y-%m-%dT%H:%M:%SZ)
set +e
docker exec -u agent "bb-$A-agent" python3 -c '
chunks = []
while True:
    chunks.append(bytearray(8 * 1024 * 1024))  # touched: bytearray is zeroed memory
' >"$work/hog.log" 2>&1
rc=$?
set -e
echo "the allocating process ended with $rc (137: SIGKILL)"
[ $rc -eq 137 ] || { cat "$work/hog.log"; fail "the allocating process was not killed (exit $rc)"; }
[ "$(docker inspect -f '{{.State.Status}} {{.Id}}' "bb-$A-agent")" = "running $agent_id" ] \
  || fail "the agent container did not keep running as the same container"

step "status says the agent had an OOM kill, and when"
status_json
python3 - "$work/status.json" "$A" "$B" "$before" <<'PY' || fail "status does not report the OOM kill as expected"
import json, sys
bottles = {b["slug"]: b for b in json.load(open(sys.argv[1]))["hosts"][0]["bottles"]}
oom = bottles[sys.argv[2]]["agent_oom"]
print("agent_oom after:", oom)
assert oom["kills"] >= 1 and oom["count"] >= 1 and oom["source"].startswith(("cgroup", "exec")), oom
assert oom["last"] and oom["last"] >= sys.argv[4], (oom["last"], sys.argv[4])
assert bottles[sys.argv[3]]["agent_oom"]["kills"] == 0, bottles[sys.argv[3]]["agent_oom"]
assert all(v == "healthy" for v in bottles[sys.argv[2]]["health"].values()), bottles[sys.argv[2]]["health"]
PY
grep -q "$A .*agent OOM-killed [0-9]*x, last seen 20" "$work/status.log" \
  || { grep -n "OOM\|$A" "$work/status.log" | head; fail "the status table does not show the OOM kill"; }
first_last=$(python3 -c 'import json,sys; print([b for b in json.load(open(sys.argv[1]))["hosts"][0]["bottles"] if b["slug"] == sys.argv[2]][0]["agent_oom"]["last"])' "$work/status.json" "$A")
sleep 1
status_json
[ "$(python3 -c 'import json,sys; print([b for b in json.load(open(sys.argv[1]))["hosts"][0]["bottles"] if b["slug"] == sys.argv[2]][0]["agent_oom"]["last"])' "$work/status.json" "$A")" = "$first_last" ] \
  || fail "a later status moved the time of the kill (it is the first look that saw it)"

step "the bundle and the neighbour still serve"
[ "$(reach "$A")" = 200 ] || fail "$A's bundle does not serve after the OOM kill: $(reach "$A")"
[ "$(reach "$B")" = 200 ] || fail "$B does not serve after $A's OOM kill: $(reach "$B")"
[ "$(docker inspect -f '{{.State.Health.Status}}' "bb-$A-bundle")" = healthy ] || fail "$A's bundle is not healthy"

step "a new memory limit on the running agent is applied in place"
launch om-a "$run_id" -e bottle_agent_memory=96m >"$work/relaunch.log" 2>&1 || { tail -30 "$work/relaunch.log"; fail "relaunch"; }
grep -q "agent container updated in place (memory)" "$work/relaunch.log" \
  || { grep -n "agent\|changed" "$work/relaunch.log" | tail -20; fail "the relaunch did not say the agent was updated in place"; }
[ "$(docker inspect -f '{{.Id}} {{.HostConfig.Memory}}' "bb-$A-agent")" = "$agent_id $((96 * 1024 * 1024))" ] \
  || fail "the agent was not updated in place: $(docker inspect -f '{{.Id}} {{.HostConfig.Memory}}' "bb-$A-agent")"
step "passed"
