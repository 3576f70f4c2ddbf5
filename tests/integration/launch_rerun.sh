#!/usr/bin/env bash
# A rerun of a launch that has nothing to do takes the shortcut (the launch stamp, <state dir>/launch.json);
# anything the stamp cannot vouch for takes the full path, which converges. Against a real bottle demo-rr1
# (docker backend; no model is called: a placeholder ANTHROPIC_API_KEY, longer than one character, as
# Ansible masks a no_log value wherever it occurs in the output and "x" would mask the x of example.org):
#   a. launch, then a rerun with the same inputs: changed=0, "is running (nothing changed)", the same
#      containers, bottle_launch found nothing to do and the stamp was not rewritten
#   b. the agent container stopped: the rerun starts it (full path), the next one has nothing to do
#   c. a byte appended to bundle/egress.json: the rerun rewrites it as rendered, the next one has nothing to do
#   d. another input (the demo policy's allowed_domains): the full path, egress.json allows example.org; back
#      to the original inputs: the full path again (another digest), then nothing to do
#   e. the stamp removed: the full path, which converges (changed=0 or only the stamp) and stamps again
#   f. the operator approved a route with a credential (supervise-approved.json, as bottle_supervise writes it):
#      without the credential on the controller the launch stops naming it, with nothing changed; with it, the
#      full path renders the route (its credential in the bundle's private files only), then nothing to do
# A shortcut is told from the full path two ways: bottle_launch's result ("current": true, printed with -v)
# and the stamp was not rewritten (launch_stamp.write replaces it atomically: a new inode).
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/launch_rerun.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg" ANTHROPIC_API_KEY=rr-placeholder-key
D=$(mktemp -d /tmp/bb-rerun-test.XXXXXX)
INSTANCE=rr1 SLUG=demo-rr1
STATE=$HOME/.bot-bottle/state/$SLUG
STAMP=$STATE/launch.json EGRESS=$STATE/bundle/egress.json
AGENT=bb-$SLUG-agent BUNDLE=bb-$SLUG-bundle
LAUNCH_TASK='TASK [botbottle.bottle.bottle : Launch '
# Both launch tasks (the second only with credentials for routes the operator approved) end with the slug.
start=$(date +%s) n=0
step() { printf '\n--- launch rerun [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'LAUNCH RERUN TEST FAILED: %s\n' "$*" >&2; exit 1; }
teardown() {
  timeout 300 ansible-playbook playbooks/teardown.yml -e bottle=$SLUG -e bottle_archive_root="$D/archive" >"$D/teardown.log" 2>&1
}
cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  teardown || { tail -20 "$D/teardown.log"; echo "WARNING: teardown of $SLUG failed"; rc=1; }
  if docker ps -aq --filter label=io.botbottle.bottle=$SLUG | grep -q .; then echo "WARNING: containers of $SLUG left"; rc=1; fi
  if docker network ls -q --filter name=bb-$SLUG- | grep -q .; then echo "WARNING: networks of $SLUG left"; rc=1; fi
  [ ! -e "$STATE" ] || { echo "WARNING: $STATE left"; rc=1; }
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One launch of bottle demo-rr1 (extra arguments: more -e); its output in $LOG.
launch() {
  local rc=0
  n=$((n + 1)) LOG=$D/launch$n.log
  timeout 300 ansible-playbook -v playbooks/bottle.yml -e agent=demo -e bottle_instance=$INSTANCE "$@" >"$LOG" 2>&1 || rc=$?
  [ $rc = 0 ] || { tail -30 "$LOG"; fail "launch $n ($*) failed (rc $rc, 124: timed out), log above"; }
}
recap() { grep -E '^localhost +: ok=' "$LOG" || fail "no recap in $LOG"; }
count() { recap | grep -oE "\b$1=[0-9]+" | cut -d= -f2; }
closing() { grep -oE "bottle $SLUG \(agent demo, policy demo\) is running \([^\"]*\)" "$LOG" || fail "no closing line in $LOG"; }
ids() { docker inspect -f '{{.Id}}' "$AGENT" "$BUNDLE" | tr '\n' ' '; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ]; }
inode() { stat -c %i "$STAMP" 2>/dev/null || echo none; }
# What bottle_launch decided (its result, printed with -v): the shortcut ("current": true) or the full path.
launch_ran() { grep -F -A1 "$LAUNCH_TASK" "$LOG" | grep -qE '^(ok|changed): .*"current": false'; }
shortcut() { grep -F -A1 "$LAUNCH_TASK" "$LOG" | grep -qE '^ok: .*"current": true'; }
show() { echo "  $(closing)"; echo "  $(recap | tr -s ' ')"; }

# The shortcut: nothing ran that would only confirm the bottle, nothing changed, the stamp left as it was.
expect_shortcut() {
  local what=$1 ids_before=$2 inode_before=$3
  show
  [ "$(count changed)" = 0 ] || fail "$what: changed=$(count changed), expected 0"
  closing | grep -qF "is running (nothing changed)" || fail "$what: the closing line is not 'nothing changed'"
  shortcut || fail "$what: bottle_launch did not report \"current\": true (it took its full path)"
  grep -q '"bottle_launch_why": "nothing to do' "$LOG" || fail "$what: bottle_launch_why does not say there was nothing to do"
  [ "$(ids)" = "$ids_before" ] || fail "$what: the containers changed: $ids_before -> $(ids)"
  [ "$(inode)" = "$inode_before" ] || fail "$what: the stamp was rewritten"
  echo "ok: $what took the shortcut"
}

# The full path: the launch module ran and stamped again.
expect_full() {
  local what=$1 inode_before=$2
  show
  launch_ran || fail "$what: the launch module did not run (the shortcut was taken)"
  { [ -f "$STAMP" ] && [ "$(inode)" != "$inode_before" ]; } || fail "$what: the stamp was not written again"
  echo "ok: $what took the full path"
}

if docker ps -aq --filter label=io.botbottle.bottle=$SLUG | grep -q . || [ -e "$STATE" ]; then
  step "a bottle $SLUG is left from an earlier run: tear it down first"
  teardown || { tail -20 "$D/teardown.log"; fail "teardown of the bottle left from an earlier run"; }
fi

step "a. launch bottle $SLUG, then rerun it with the same inputs"
launch
show
{ [ "$(count changed)" = 1 ] && launch_ran && closing | grep -qF "is running (created: "; } || fail "the first launch did not create the bottle"
[ "$(stat -c %a "$STAMP")" = 600 ] || fail "the stamp's mode is $(stat -c %a "$STAMP"), not 600"
IDS=$(ids) STAMPED=$(cat "$STAMP")
launch
expect_shortcut "a rerun with the same inputs" "$IDS" "$(inode)"
[ "$(cat "$STAMP")" = "$STAMPED" ] || fail "the stamp changed"

step "b. the agent container stopped: the rerun starts it again"
timeout 60 docker stop "$AGENT" >/dev/null
! running "$AGENT" || fail "docker stop left $AGENT running"
before=$(inode)
launch
expect_full "a rerun with the agent stopped" "$before"
running "$AGENT" || fail "$AGENT does not run after the rerun"
[ "$(ids)" = "$IDS" ] || fail "the containers were recreated instead of started: $IDS -> $(ids)"
[ "$(count changed)" = 1 ] || fail "changed=$(count changed), expected 1"
closing | grep -qE "is running \(changed: (.*, )?agent container( started)?\)$" \
  || fail "the closing line does not name the agent container as changed"
closing | grep -qF "agent container started" || fail "the closing line does not say 'agent container started'"
launch
expect_shortcut "the rerun after that" "$IDS" "$(inode)"

step "c. a byte appended to bundle/egress.json: the rerun writes it back as rendered"
rendered=$(sha256sum "$EGRESS" | cut -d' ' -f1)
printf ' ' >>"$EGRESS"
[ "$(sha256sum "$EGRESS" | cut -d' ' -f1)" != "$rendered" ] || fail "the edit did not change egress.json"
before=$(inode)
launch
expect_full "a rerun with egress.json edited" "$before"
[ "$(sha256sum "$EGRESS" | cut -d' ' -f1)" = "$rendered" ] || fail "egress.json was not written back as rendered"
{ [ "$(count changed)" = 1 ] && closing | grep -qF "state directory"; } || fail "the rerun did not say it rewrote the state directory"
[ "$(ids)" = "$IDS" ] || fail "the containers were recreated: $IDS -> $(ids)"
launch
expect_shortcut "the rerun after that" "$IDS" "$(inode)"

step "d. another input (the demo policy allows example.org), then the original inputs again"
! grep -q example.org "$EGRESS" || fail "egress.json allows example.org before it was asked to"
before=$(inode)
launch -e '{"bottle_policies": {"demo": {"allowed_domains": ["example.org"]}}}'
expect_full "a rerun with another policy" "$before"
grep -q '"example.org"' "$EGRESS" || fail "egress.json does not allow example.org: $(cat "$EGRESS")"
closing | grep -qF "hosts +example.org" || fail "the closing line does not name the host added"
closing | grep -qF "sidecar bundle reloads its configuration" || fail "the closing line does not say the bundle reloads"
before=$(inode)
launch
expect_full "a rerun with the original inputs (another digest)" "$before"
! grep -q example.org "$EGRESS" || fail "egress.json still allows example.org"
[ "$(sha256sum "$EGRESS" | cut -d' ' -f1)" = "$rendered" ] || fail "egress.json is not the original rendering"
launch
expect_shortcut "the rerun after that" "$(ids)" "$(inode)"

step "e. the stamp removed: the rerun converges and stamps again"
STAMPED=$(cat "$STAMP") IDS=$(ids)
rm "$STAMP"
launch
expect_full "a rerun without a stamp" none
[ "$(count changed)" = 0 ] || closing | grep -qF "is running (nothing changed)" \
  || fail "the rerun without a stamp changed more than the stamp: $(closing)"
[ "$(ids)" = "$IDS" ] || fail "the containers were recreated: $IDS -> $(ids)"
[ "$(cat "$STAMP")" = "$STAMPED" ] || fail "the new stamp differs from the one removed: $STAMPED -> $(cat "$STAMP")"
[ "$(stat -c %a "$STAMP")" = 600 ] || fail "the stamp's mode is $(stat -c %a "$STAMP"), not 600"
launch
expect_shortcut "the rerun after that" "$IDS" "$(inode)"

step "f. a route the operator approved, with a credential the controller holds"
cat >"$STATE/supervise-approved.json" <<'JSON'
{"domains": [], "routes": [{"host": "api.rr-approved.example", "auth": {"scheme": "Bearer", "token_ref": "RR_APPROVED_TOKEN"}}]}
JSON
before=$(inode) IDS=$(ids)
unset RR_APPROVED_TOKEN
n=$((n + 1)) LOG=$D/launch$n.log rc=0
timeout 300 ansible-playbook -v playbooks/bottle.yml -e agent=demo -e bottle_instance=$INSTANCE >"$LOG" 2>&1 || rc=$?
[ $rc != 0 ] || fail "the launch went on without the credential of the approved route"
[ "$(grep -c "route api.rr-approved.example needs credential RR_APPROVED_TOKEN" "$LOG")" = 1 ] \
  || { tail -30 "$LOG"; fail "the stop does not name the approved route's credential once"; }
grep -q "stopped before anything was created" "$LOG" || fail "the stop does not say nothing was created"
! grep -q "api.rr-approved.example" "$EGRESS" || fail "egress.json routes the approved host without its credential"
if [ "$(inode)" != "$before" ] || [ "$(ids)" != "$IDS" ]; then fail "the stopped launch changed the bottle"; fi
echo "ok: without the credential the launch stopped, naming it"
RR_APPROVED_TOKEN=rr-approved-secret-value launch
expect_full "a rerun with the approved route's credential" "$before"
grep -q '"api.rr-approved.example"' "$EGRESS" || fail "egress.json does not route the approved host: $(cat "$EGRESS")"
grep -rq rr-approved-secret-value "$STATE/private" || fail "the approved route's credential is not in the private files"
! grep -rq rr-approved-secret-value "$STATE/bundle" "$LOG" || fail "the credential leaked into bundle/ or the output"
RR_APPROVED_TOKEN=rr-approved-secret-value launch
expect_shortcut "the rerun after that" "$(ids)" "$(inode)"
[ "$(count changed)" = 0 ] || fail "changed=$(count changed)"

step "all rerun checks passed"
