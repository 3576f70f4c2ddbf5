#!/usr/bin/env bash
# make demo: launch the shipped demo agent in a bottle and show it at work.
#
# With a model credential on this controller (ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN from
# `claude setup-token`), the real thing: the bottle is launched, egress adds the credential to the
# agent's model requests (the agent holds a placeholder), and the commands to attach and tear down
# are printed.
#
# Without one, no model is called: a scripted stand-in plays the model (images/testnet/model.py, as
# api.anthropic.com on a network of ours only the bundle joins), the real Claude Code of the bottle
# runs a short scripted task, and what the agent did and what the bottle allowed and refused print
# as it happens. `scripts/demo.sh --clean` removes the bottle and the stand-in.
#
# AGENT_KIND=codex (make demo AGENT_KIND=codex): the same with OpenAI's Codex CLI - agent demo-codex,
# credential OPENAI_API_KEY, the stand-in images/testnet/openai_model.py as api.openai.com.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ANSIBLE_CONFIG="$root/ansible.cfg"
PLAYBOOK=.venv/bin/ansible-playbook
PYTHON=.venv/bin/python
NET=bb-demo-model NET_SUBNET=172.28.250.0/24 SERVER=bb-demo-model
STATE=~/.bot-bottle/demo
# The agent kind's demo: its shipped agent (the bottle's slug), credential variables, the stand-in's
# script, and the non-interactive command (with the view of its output).
case "${AGENT_KIND:-claude-code}" in
  claude-code)
    AGENT=demo KEYS="ANTHROPIC_API_KEY CLAUDE_CODE_OAUTH_TOKEN" SCRIPT=demo-bottle.json
    RUN=(claude -p "show me around this bottle" --output-format stream-json --verbose --allowedTools Bash)
    VIEW=transcript ATTACH=claude ;;
  codex)
    AGENT=demo-codex KEYS="OPENAI_API_KEY" SCRIPT=demo-codex.json
    RUN=(codex exec --json --skip-git-repo-check "show me around this bottle")
    VIEW=codex ATTACH=codex ;;
  *) printf '[demo] AGENT_KIND=%s is not an agent kind: use claude-code or codex\n' "$AGENT_KIND" >&2; exit 2 ;;
esac
KEY=${KEYS%% *}
log() { printf '[demo] %s\n' "$*"; }
# The launch's output, kept short: its errors and recap as they come, and every 10 s the task it is
# at with the time so far ("[demo] 0:20 launching: Wait for the bundle to be healthy"), so the
# launch never sits silent; whole lines, the same in a terminal and a CI log.
launch_view() {
  local line task="" start=$SECONDS last=$SECONDS rc every=${DEMO_PROGRESS_EVERY:-10}
  while :; do
    if IFS= read -r -t 1 line; then
      case "$line" in
        "TASK ["*) task=${line#TASK \[}; task=${task%%\]*} ;;
        "PLAY RECAP"*|localhost*|fatal*|*FAILED*|*ERROR*) printf '%s\n' "$line" ;;
      esac
    else
      rc=$?
      [ "$rc" -gt 128 ] || break  # end of the output (a timeout is > 128)
    fi
    if [ -n "$task" ] && [ $((SECONDS - last)) -ge "$every" ]; then
      log "$(( (SECONDS - start) / 60 )):$(printf '%02d' $(( (SECONDS - start) % 60 ))) launching: $task"
      last=$SECONDS
    fi
  done
}

clean() {
  "$PLAYBOOK" playbooks/teardown.yml -e bottle="$AGENT" >/dev/null
  docker rm -f "$SERVER" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$STATE"
  log "removed bottle $AGENT and the scripted stand-in"
}
if [ "${1:-}" = "--clean" ]; then clean; exit 0; fi

for name in $KEYS; do
  if [ -n "${!name:-}" ]; then
    log "$name is set on this controller: launching the real $AGENT bottle (egress adds it; the agent gets a placeholder)"
    exec "$PLAYBOOK" playbooks/bottle.yml -e agent="$AGENT"
  fi
done

log "no ${KEYS// / or } here: no model is called; a scripted stand-in plays the model"
log "(export one and run make demo again for the real agent)"
mkdir -p "$STATE"
docker network inspect "$NET" >/dev/null 2>&1 \
  || docker network create --subnet "$NET_SUBNET" --label io.botbottle.demo=1 "$NET" >/dev/null
if [ "$(docker inspect -f '{{.State.Running}}' "$SERVER" 2>/dev/null)" != true ]; then
  docker rm -f "$SERVER" >/dev/null 2>&1 || true
  docker run -d --name "$SERVER" --label io.botbottle.demo=1 --network "$NET" \
    --network-alias api.anthropic.com --network-alias api.openai.com botbottle/testnet:latest >/dev/null
fi
deadline=$((SECONDS + 30))
until docker exec "$SERVER" test -s /srv/testnet/ca.pem 2>/dev/null; do
  if [ $SECONDS -ge $deadline ]; then
    log "the stand-in did not come up within 30 s; its log:"; docker logs --tail 20 "$SERVER" >&2; exit 1
  fi
  sleep 0.2
done
docker exec "$SERVER" cat /srv/testnet/ca.pem >"$STATE/model-ca.pem"
docker exec "$SERVER" cp "/srv/testnet/scenarios/$SCRIPT" /srv/testnet/scenario.json
cat >"$STATE/vars.json" <<JSON
{"bottle_bundle_extra_networks": ["$NET"], "bottle_ssrf_ip_allowlist": ["$NET_SUBNET"],
 "bottle_upstream_ca_file": "$STATE/model-ca.pem", "$KEY": "scripted-stand-in-takes-any-key"}
JSON

log "launching bottle $AGENT"
# The stand-in takes any key: the route still carries one, as it would carry yours (an extra var, so
# that no key of the inventory, vaulted or not, is sent to the stand-in).
"$PLAYBOOK" playbooks/bottle.yml -e agent="$AGENT" -e "@$STATE/vars.json" | launch_view || true
docker inspect "bb-$AGENT-agent" >/dev/null 2>&1 || { log "the launch failed: run $PLAYBOOK playbooks/bottle.yml -e agent=$AGENT -e @$STATE/vars.json to see why"; exit 1; }

log "the agent at work (its lines: agent/tool; the bottle's decisions: firewall):"
# The follower is `docker logs -f` itself (its view reads it through a process substitution): killing it at
# exit ends the view too, and nothing of the demo outlives it.
docker logs -f --since 1s "bb-$AGENT-bundle" > >("$PYTHON" -u scripts/demo_view.py firewall) 2>&1 &
follower=$!
trap 'kill $follower 2>/dev/null || true' EXIT
# (codex exec says "Reading additional input from stdin..." even when stdin is empty: not shown)
docker exec -u agent -w /home/agent/work "bb-$AGENT-agent" timeout 180 "${RUN[@]}" </dev/null \
  2> >(grep -v '^Reading additional input from stdin' >&2) | "$PYTHON" -u scripts/demo_view.py "$VIEW"
sleep 1

cat <<TXT

[demo] bottle $AGENT is running (the scripted stand-in answers only this demo's script).
[demo] attach:    docker exec -it -u agent bb-$AGENT-agent $ATTACH
[demo] firewall:  docker logs bb-$AGENT-bundle | grep '^\[egress\] {'     (also ~/.bot-bottle/state/$AGENT/audit/egress.jsonl)
[demo] tear down: $root/.venv/bin/ansible-playbook playbooks/teardown.yml -e bottle=$AGENT
[demo]            (${AGENT_KIND:+AGENT_KIND=$AGENT_KIND }bash scripts/demo.sh --clean also removes the stand-in)
TXT
