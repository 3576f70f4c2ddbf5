#!/usr/bin/env bash
# A docker launch is one module call on the managed host, also with an upstream CA file and a git-gate repo
# (bottle_launch reads the CA and checks the identity itself: no stat or slurp round trips). Counted as the
# run happens, by a callback plugin (tests/integration/lib/callback_plugins/module_calls.py), not by reading
# the task list:
#   a. the first launch: exactly one module call, bottle_launch, and the bottle runs with the CA in its state
#   b. the rerun: one module call, and it took the shortcut (nothing changed)
#   c. the identity made readable by others: one module call, the launch stops naming the key and the fix,
#      and the bottle is left as it was
#   d. the role's deprecated variable bottle_agent (now bottle_agent_name): the same bottle, nothing changed,
#      and Ansible's deprecation warning naming both
# No test internet is needed: the CA and the keys are made here, and no upstream is ever reached.
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/launch_module_calls.sh
set -euo pipefail
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$(dirname "$0")/lib/bottle_test.sh"
SLUG=lmc-one
bt_init "launch module calls"
export ANSIBLE_CALLBACK_PLUGINS="$root/tests/integration/lib/callback_plugins" ANSIBLE_CALLBACKS_ENABLED=module_calls

step "an upstream CA, a gate identity and a pinned host key, made here"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=bb-module-calls-ca -days 1 -keyout "$D/ca.key" -out "$D/ca.pem" \
  >/dev/null 2>&1 || fail "openssl could not make a CA"
ssh-keygen -q -t ed25519 -N '' -f "$D/gate" && chmod 600 "$D/gate"
ssh-keygen -q -t ed25519 -N '' -f "$D/hostkey"
bt_inventory "module calls test agent" \
  "git_gate: {repos: {project: {url: 'ssh://git@git.bottle.test/srv/git/project.git', identity: '$D/gate', host_key: '$(cut -d' ' -f1,2 "$D/hostkey.pub")'}}}"
sed -i "s#^  vars:#  vars:\n    bottle_upstream_ca_file: $D/ca.pem#" "$INV"

n=0
launch() {
  n=$((n + 1)) LOG=$D/launch$n.log
  export BB_MODULE_CALLS_FILE=$D/calls$n.json
  rc=0
  timeout 300 ansible-playbook -i "$INV" playbooks/bottle.yml "${@:--eagent=$SLUG}" >"$LOG" 2>&1 || rc=$?
}
calls() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["count"], json.dumps(d["calls"]))' "$BB_MODULE_CALLS_FILE"; }
one_launch_call() {
  local got
  got=$(calls)
  echo "module calls: $got"
  if [ "${got%% *}" != 1 ] || [[ "$got" != *'"botbottle.bottle.bottle_launch"'* ]]; then
    fail "$1: expected one module call (bottle_launch), got $got"
  fi
}

step "a. first launch"
launch
[ "$rc" = 0 ] || { tail -30 "$LOG"; fail "the launch failed (rc $rc)"; }
one_launch_call "the first launch"
grep -q "bottle $SLUG (agent $SLUG, policy $SLUG) is running (created" "$LOG" || fail "no 'is running (created' line"
cmp -s "$D/ca.pem" "$STATE/$SLUG/bundle/upstream-ca.pem" || fail "the state's upstream-ca.pem is not the CA file"

step "b. rerun"
launch
[ "$rc" = 0 ] || { tail -30 "$LOG"; fail "the rerun failed (rc $rc)"; }
one_launch_call "the rerun"
grep -q "bottle $SLUG (agent $SLUG, policy $SLUG) is running (nothing changed)" "$LOG" || fail "the rerun changed something"

step "c. the identity readable by others"
ids=$(docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | sort | tr '\n' ' ')
chmod 644 "$D/gate"
launch
[ "$rc" != 0 ] || fail "a launch with an identity others can read succeeded"
one_launch_call "the refused launch"
grep -q "git_gate.repos.project.identity $D/gate on this host: has mode 0644, readable by others: chmod 600 $D/gate" "$LOG" \
  || { tail -20 "$LOG"; fail "the refusal does not name the key and the fix"; }
[ "$(docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | sort | tr '\n' ' ')" = "$ids" ] \
  || fail "the refused launch changed the bottle's containers"

step "d. the deprecated role variable bottle_agent"
chmod 600 "$D/gate"
launch -e "bottle_agent=$SLUG"
[ "$rc" = 0 ] || { tail -30 "$LOG"; fail "a launch by bottle_agent failed (rc $rc)"; }
one_launch_call "the launch by bottle_agent"
grep -q "bottle $SLUG (agent $SLUG, policy $SLUG) is running (nothing changed)" "$LOG" || fail "bottle_agent named another bottle"
tr -s ' \n' ' ' <"$LOG" | grep -q "the variable bottle_agent is deprecated: set bottle_agent_name instead" \
  || fail "no deprecation warning for bottle_agent"
step "passed"
