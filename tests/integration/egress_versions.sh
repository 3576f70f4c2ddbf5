#!/usr/bin/env bash
# egress.json's versions against a real bottle (docker backend):
#   1. a launch writes version 3 with every key, and egress loads it
#   2. the state directory holds a version 2 file as an earlier release wrote it (no audit section, no
#      rate_limit) with ports [443]: the bundle, restarted by Docker, stages it and egress loads it
#   3. a version 3 file without audit.keep (ports 80, 443), then a reload (SIGHUP): egress refuses it naming
#      the key and the writer, and the configuration in force stays (ports 443)
#   4. a relaunch (the policy now sets audit_keep) writes version 3 again and reloads the bundle (SIGHUP):
#      egress loads it (ports 80, 443)
# Which configuration egress holds is told by a refusal that names its ports (ports_in_force).
# Nothing talks to any address outside this machine. Run under the Docker lock:
#   flock /tmp/bb-docker.lock bash tests/integration/egress_versions.sh
set -euo pipefail
SLUG=egress-versions
# shellcheck source=tests/integration/lib/bottle_test.sh
. "$(dirname "$0")/lib/bottle_test.sh"
bt_init "egress versions"
BUNDLE=bb-$SLUG-bundle AGENT=bb-$SLUG-agent
EGRESS=$STATE/$SLUG/bundle/egress.json
AUDIT=$STATE/$SLUG/audit/egress.jsonl
bt_on_fail() { docker logs --tail 20 "$BUNDLE" 2>&1 | tail -20; }

# The bundle's log lines after the first $1 (a count taken by `mark`) that match $2.
mark() { docker logs "$BUNDLE" 2>&1 | wc -l; }
logged() { docker logs "$BUNDLE" 2>&1 | tail -n "+$(($1 + 1))" | grep -F -- "$2"; }
# Which configuration egress holds, told by its ports: a request from the agent to an allowed host on port
# 8080, which no configuration here allows, is refused (before any connection) naming the ports in force, $1.
# egress reads a changed file before it decides; without a configuration it would answer 503.
ports_in_force() {
  local want=$1 path=$2 body
  body=$(docker exec "$AGENT" curl -s -w ' HTTP %{http_code}' "http://allowed.bottle.test:8080/$path" || true)
  case $body in
    *"port 8080 of host allowed.bottle.test is not allowed (ports: $want)"*" HTTP 403") ;;
    *) fail "the request /$path was not refused for its port with ports $want in force: $body" ;;
  esac
  grep -F '"host":"allowed.bottle.test"' "$AUDIT" | grep -F "\"path\":\"/$path\"" | grep -qF '"rule":"allowlist"' \
    || fail "the audit holds no allowlist refusal of /$path"
}
# A python one-liner over $EGRESS (argument: the statements, with `data` the decoded file); rewrites the file.
rewrite() { python3 -c "import json, sys; data = json.load(open(sys.argv[1])); $1; json.dump(data, open(sys.argv[1], 'w'))" "$EGRESS"; }
healthy() {
  local i
  for i in $(seq 1 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$BUNDLE")" = healthy ] && return 0
    sleep 1
  done
  fail "the bundle is not healthy 60 s after its restart"
}

bt_inventory "egress versions test agent"
step "1. a launch writes version 3 with every key"
playbook playbooks/bottle.yml -e agent=$SLUG >"$D/launch.log" 2>&1 || { tail -30 "$D/launch.log"; fail "the launch failed"; }
python3 - "$EGRESS" plugins/module_utils <<'PY' || fail "the launch did not write a version 3 file with every key"
import json, sys
sys.path.insert(0, sys.argv[2])
import bundle_format
data = json.load(open(sys.argv[1]))
assert data["version"] == 3, data["version"]
assert set(data) == set(bundle_format.EGRESS_KEYS), sorted(data)
for section, keys in bundle_format.SECTIONS.items():
    assert set(data[section]) == set(keys), (section, sorted(data[section]))
assert data["audit"] == bundle_format.DEFAULT_AUDIT, data["audit"]
PY
ports_in_force "80, 443" v3-first

step "2. a version 2 file (no audit, no rate_limit; ports 443), the bundle restarted by Docker"
rewrite 'data["version"] = 2; del data["audit"]; del data["rate_limit"]; data["ports"] = [443]'
since=$(mark)
docker restart "$BUNDLE" >/dev/null
healthy
ports_in_force 443 v2-restarted
! logged "$since" "ignoring invalid" || fail "egress refused the version 2 file"

step "3. a version 3 file without audit.keep, then SIGHUP: refused, naming the key; the configuration in force stays"
rewrite 'data["version"] = 3; data["rate_limit"] = {"requests_per_minute": 6000, "burst": 3000}; data["ports"] = [80, 443]; data["audit"] = {"rotate_bytes": 67108864}'
since=$(mark)
docker kill -s HUP "$BUNDLE" >/dev/null
# bottle-init stages the file again on SIGHUP; egress reads it at the next request.
for i in $(seq 1 30); do
  docker exec -u root "$BUNDLE" grep -q '"rotate_bytes": 67108864}' /run/bottle/egress/egress.json && break
  [ "$i" -lt 30 ] || fail "the bundle did not stage the changed egress.json within 30 s"
  sleep 1
done
ports_in_force 443 v3-without-keep
message=$(logged "$since" "ignoring invalid") || fail "egress did not refuse the version 3 file without audit.keep"
echo "  $message"
case $message in
  *"audit.keep is missing"*"writer must write it"*"previous configuration stays in force"*) ;;
  *) fail "egress's refusal does not name audit.keep, the writer and the configuration kept: $message" ;;
esac

step "4. a relaunch with the policy's audit_keep 4 writes version 3 again and reloads the bundle; egress loads it"
# (A rerun with the same policy would rewrite the file but not reload: the bundle's recorded hash is the
# rendered configuration's, and only this test put another file in force.)
bt_inventory "egress versions test agent" "firewall: {audit_keep: 4}"
since=$(mark)
playbook playbooks/bottle.yml -e agent=$SLUG >"$D/rerun.log" 2>&1 || { tail -30 "$D/rerun.log"; fail "the relaunch failed"; }
grep -q "sidecar bundle reloads its configuration" "$D/rerun.log" || { tail -20 "$D/rerun.log"; fail "the relaunch did not reload the bundle"; }
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["version"] == 3 and d["audit"] == {"rotate_bytes": 67108864, "keep": 4}' "$EGRESS" \
  || fail "the relaunch did not write the version 3 file with audit.keep 4"
for i in $(seq 1 30); do
  docker exec -u root "$BUNDLE" grep -q '"keep": 4' /run/bottle/egress/egress.json && break
  [ "$i" -lt 30 ] || fail "the bundle did not stage the relaunch's egress.json within 30 s"
  sleep 1
done
ports_in_force "80, 443" v3-rerun
! logged "$since" "ignoring invalid" || fail "egress refused the relaunch's version 3 file"
step "passed"
