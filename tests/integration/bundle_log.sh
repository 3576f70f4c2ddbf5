#!/usr/bin/env bash
# The bundle's Docker log is bounded (issue 23), against a real bottle (docker backend):
#   1. a launch with bottle_bundle_log_max_size=16k, 2 files: the bundle asks Docker for exactly that
#      (only when the engine's default driver is json-file, as here; the test says so otherwise)
#   2. 600 refused requests from the agent: the audit file keeps every one (rule allowlist), while the
#      bundle's log, as `docker logs` reads it (every file kept), stays under 2 x 16 KiB plus a line
#   3. a rerun changes nothing; a new bound recreates the bundle only (the agent container stays)
# Nothing talks to any address outside this machine.
set -euo pipefail
SLUG=bundle-log
# shellcheck source=tests/integration/lib/bottle_test.sh
. "$(dirname "$0")/lib/bottle_test.sh"
bt_init "bundle log"
BUNDLE=bb-$SLUG-bundle AGENT=bb-$SLUG-agent
bt_on_fail() { docker logs --tail 20 "$BUNDLE" 2>&1 | tail -20; }

driver=$(docker info -f '{{.LoggingDriver}}')
[ "$driver" = json-file ] || fail "this engine logs to $driver: the bound applies to json-file engines only (run where dockerd uses its default)"

bt_inventory "bundle log test agent"
step "launch with a 16k bound, 2 files"
playbook playbooks/bottle.yml -e agent=$SLUG -e bottle_bundle_log_max_size=16k -e bottle_bundle_log_max_files=2 \
  >"$D/launch.log" 2>&1 || { tail -30 "$D/launch.log"; fail "the launch failed"; }
got=$(docker inspect -f '{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config "max-size"}} {{index .HostConfig.LogConfig.Config "max-file"}}' "$BUNDLE")
[ "$got" = "json-file 16k 2" ] || fail "the bundle's log settings are '$got', not 'json-file 16k 2'"
agent_id=$(docker inspect -f '{{.Id}}' "$AGENT")

step "600 refused requests from the agent"
# URL globbing: one curl, one proxy connection, 600 requests egress refuses (the host is not allowed).
docker exec "$AGENT" sh -c 'curl -s "http://refused.bottle.test/log/[1-600]" >/dev/null' || true
audit=$STATE/$SLUG/audit/egress.jsonl
refused=$(grep -c '"host":"refused.bottle.test".*"rule":"allowlist"' "$audit" || true)
[ "$refused" -eq 600 ] || fail "the audit holds $refused refusals of refused.bottle.test (rule allowlist), not 600"
size=$(docker logs "$BUNDLE" 2>&1 | wc -c)
echo "audit: $refused refusals ($(wc -c <"$audit") bytes); docker logs: $size bytes"
[ "$size" -le $((2 * 16384 + 1024)) ] || fail "the bundle's log is $size bytes, over 2 files of 16k"
# Read whole first: grep -q stops at its first match and, under pipefail, docker logs' SIGPIPE would fail the test.
logs=$(docker logs "$BUNDLE" 2>&1)
grep -q 'refused.bottle.test' <<<"$logs" || fail "the bundle's log holds none of the recent decisions"

step "a rerun changes nothing; a new bound recreates the bundle only"
bundle_id=$(docker inspect -f '{{.Id}}' "$BUNDLE")
playbook playbooks/bottle.yml -e agent=$SLUG -e bottle_bundle_log_max_size=16k -e bottle_bundle_log_max_files=2 \
  >"$D/rerun.log" 2>&1 || { tail -30 "$D/rerun.log"; fail "the rerun failed"; }
grep -q 'nothing changed' "$D/rerun.log" || { tail -20 "$D/rerun.log"; fail "the rerun changed something"; }
[ "$(docker inspect -f '{{.Id}}' "$BUNDLE")" = "$bundle_id" ] || fail "the rerun recreated the bundle"
playbook playbooks/bottle.yml -e agent=$SLUG -e bottle_bundle_log_max_size=32k -e bottle_bundle_log_max_files=2 \
  >"$D/bound.log" 2>&1 || { tail -30 "$D/bound.log"; fail "the relaunch with a new bound failed"; }
[ "$(docker inspect -f '{{index .HostConfig.LogConfig.Config "max-size"}}' "$BUNDLE")" = 32k ] \
  || fail "the new bound was not applied"
[ "$(docker inspect -f '{{.Id}}' "$AGENT")" = "$agent_id" ] || fail "a new log bound recreated the agent"
step "passed"
