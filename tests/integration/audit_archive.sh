#!/usr/bin/env bash
# Audit that outlives the bottle, against a real bottle (docker backend, no test internet needed):
#   0. the rollback of a failed launch keeps a state directory whose audit it cannot archive
#   1. launch bottle `arch`; the agent is refused twice by the firewall (hosts off its allowlist) and
#      asks supervise for a domain; the operator rejects the ask (playbooks/supervise.yml)
#   2. teardown --check names the archive it would make and removes nothing
#   3. an archive root that cannot be written stops the teardown with nothing removed
#   4. teardown archives the audit (firewall decisions, the ask, the decision, the proposal, meta.json)
#      into the archive root, prunes an archive past its retention, then removes the bottle
#   5. status.yml -e archived=true lists the archive with its counts
# State and archives live in a temporary folder (never ~/.bot-bottle); the trap removes the bottle.
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/audit_archive.sh
set -euo pipefail
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$(dirname "$0")/lib/bottle_test.sh"
SLUG=arch
bt_init "audit archive"
bt_inventory "archive test agent" 'supervise: {wait_seconds: 1, max_pending: 5}'

step "rollback of a failed launch (remove.yml, bottle_remove_rollback): archives, or keeps the state it cannot archive"
cat >"$D/rollback.yml" <<YAML
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: botbottle.bottle.bottle, tasks_from: remove.yml}
      vars: {bottle_remove_slug: rb, bottle_remove_rollback: true}
YAML
mkdir -p "$STATE/rb/supervise" && echo '{"event": "proposed", "id": "0123456789abcdef"}' >"$STATE/rb/supervise/audit.jsonl"
touch "$D/not-a-folder"
playbook "$D/rollback.yml" -e bottle_archive_root="$D/not-a-folder" >"$D/rb1.log" || { tail -20 "$D/rb1.log"; fail "rollback stopped"; }
grep -q "the state directory of bottle rb was kept, its audit could not be archived" "$D/rb1.log" || fail "rollback did not say the state was kept"
[ -f "$STATE/rb/supervise/audit.jsonl" ] || fail "rollback removed an audit it could not archive"
playbook "$D/rollback.yml" -e bottle_archive_root="$D/rb-archive" >"$D/rb2.log" || { tail -20 "$D/rb2.log"; fail "rollback"; }
{ [ ! -e "$STATE/rb" ] && compgen -G "$D/rb-archive/rb-*/supervise/audit.jsonl" >/dev/null; } || fail "rollback did not archive then remove"
echo "ok: kept the state it could not archive, then archived and removed it"

step "launch bottle $SLUG"
playbook playbooks/bottle.yml -e agent=$SLUG >"$D/launch.log" || { tail -30 "$D/launch.log"; fail "launch"; }
[ "$(containers)" = 2 ] || fail "expected 2 containers, found $(containers)"

step "the firewall refuses two hosts; the agent asks for a domain, the operator rejects it"
for host in blocked.bottle.test other.bottle.test; do
  code=$(docker exec -u agent bb-$SLUG-agent curl -s -o /dev/null -w '%{http_code}' --max-time 10 "https://$host/x" || true)
  echo "$host -> $code"
done
bundle_ip=$(docker inspect --format "{{ (index .NetworkSettings.Networks \"bb-$SLUG-net-int\").IPAddress }}" bb-$SLUG-bundle)
answer=$(docker exec -i -u agent bb-$SLUG-agent node - "http://$bundle_ip:9100/mcp" request_domain \
  '{"host": "pypi.org", "justification": "the archive test asks"}' <extensions/molecule/supervise/files/mcp_call.js)
id=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="pending", a; print(a["id"])' "$answer")
echo "proposal $id pending"
playbook playbooks/supervise.yml -e decide=reject -e id="$id" -e note=no >"$D/reject.log" \
  || { tail -20 "$D/reject.log"; fail "reject"; }
echo "what the operator (uid $(id -u)) finds in the state directory:"
(cd "$STATE/$SLUG" && find audit supervise -printf '  %M %U:%G %p\n' | sort -k3)

step "teardown --check: names the archive, removes nothing"
playbook playbooks/teardown.yml -e bottle=$SLUG --check >"$D/check.log" || { tail -20 "$D/check.log"; fail "teardown --check"; }
grep -q "audit of bottle $SLUG would be archived to $ARCHIVE/$SLUG-" "$D/check.log" || { grep -n archiv "$D/check.log"; fail "--check did not name the archive"; }
[ ! -e "$ARCHIVE" ] || fail "--check wrote $ARCHIVE"
{ [ "$(containers)" = 2 ] && [ -d "$STATE/$SLUG" ]; } || fail "--check removed something"

step "an archive root that cannot be written: teardown stops, nothing removed"
if playbook playbooks/teardown.yml -e bottle=$SLUG -e bottle_archive_root="$D/not-a-folder" >"$D/blocked.log" 2>&1; then
  fail "teardown succeeded with an unusable archive root"
fi
grep -q "not-a-folder exists and is not a folder (nothing was removed)" "$D/blocked.log" || { tail -20 "$D/blocked.log"; fail "no clear error"; }
{ [ "$(containers)" = 2 ] && [ -d "$STATE/$SLUG" ]; } || fail "the failed teardown removed something"
echo "ok: failed with the archive error; both containers and the state directory are still there"

step "teardown: the audit goes to the archive, an archive past its retention goes, then the bottle"
mkdir -p "$ARCHIVE/old-20200101T000000Z" && echo '{"slug": "old", "archived": "2020-01-01T00:00:00Z"}' >"$ARCHIVE/old-20200101T000000Z/meta.json"
playbook playbooks/teardown.yml -e bottle=$SLUG >"$D/teardown.log" || { tail -30 "$D/teardown.log"; fail "teardown"; }
grep -o "audit of bottle $SLUG archived to [^ ]*.*" "$D/teardown.log" | head -1
{ [ "$(containers)" = 0 ] && [ ! -d "$STATE/$SLUG" ]; } || fail "the bottle was not removed"
[ ! -e "$ARCHIVE/old-20200101T000000Z" ] || fail "the 2020 archive was not pruned (bottle_archive_keep_days 30)"
python3 - "$ARCHIVE" "$SLUG" "$id" <<'PY'
import glob, json, os, sys
root, slug, pid = sys.argv[1:]
found = glob.glob(os.path.join(root, slug + "-*"))
assert len(found) == 1, os.listdir(root)
a = found[0]
meta = json.load(open(os.path.join(a, "meta.json")))
for key, want in (("slug", slug), ("agent", slug), ("policy", slug), ("backend", "docker")):
    assert meta.get(key) == want, (key, meta)
assert meta["created"] and meta["archived"] and meta["host"], meta
egress = [json.loads(l) for l in open(os.path.join(a, "audit", "egress.jsonl"))]
refused = sorted({r["host"] for r in egress if r["action"] == "block"})
assert refused == ["blocked.bottle.test", "other.bottle.test"], egress
events = [json.loads(l) for l in open(os.path.join(a, "supervise", "audit.jsonl"))]
assert [(e.get("event"), e.get("id")) for e in events] == [("proposed", pid), ("rejected", pid)], events
proposal = json.load(open(os.path.join(a, "supervise", "proposals", pid + ".json")))
assert proposal["status"] == "rejected" and proposal["host"] == "pypi.org", proposal
modes = {os.path.relpath(os.path.join(d, f), a): oct(os.stat(os.path.join(d, f)).st_mode & 0o777)
         for d, _dirs, fs in os.walk(a) for f in fs}
assert set(modes.values()) == {"0o600"}, modes
print("ok: %s holds %d firewall decisions (refused: %s), the ask and its rejection, the proposal, meta.json"
      % (os.path.basename(a), len(egress), ", ".join(refused)))
PY

step "status.yml -e archived=true lists the archive with its counts"
playbook playbooks/status.yml -e archived=true -e bottle=$SLUG -e bottle_status_file="$D/status.json" >"$D/status.log" \
  || { tail -20 "$D/status.log"; fail "status.yml"; }
sed -n '/TASK \[Archived bottles\]/,/^}/p' "$D/status.log" | grep -E '^ *"(HOST|localhost) ' | sed 's/^ *"//; s/",\?$//'
python3 - "$D/status.json" "$SLUG" <<'PY'
import json, sys
hosts = json.load(open(sys.argv[1]))["hosts"]
archives = [a for h in hosts for a in h["archives"]]
assert [a["slug"] for a in archives] == [sys.argv[2]], archives
a = archives[0]
assert (a["asks"], a["decisions"], a["allowed"]) == (1, 1, 0) and a["refused"] >= 2, a
assert sorted(r["host"] for r in a["firewall"]) == ["blocked.bottle.test", "other.bottle.test"], a["firewall"]
print("ok: status lists %s: %d ask, %d decision, %d refused firewall decisions" % (a["slug"], a["asks"], a["decisions"], a["refused"]))
PY
