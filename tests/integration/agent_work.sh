#!/usr/bin/env bash
# The agent's work outlives its bottle, against a real bottle (docker backend, no test internet needed):
#   1. launch bottle lr-work; in the agent, two repositories cloned from upstreams (bare repositories in
#      the agent's home) hold unpushed commits, a stash, uncommitted changes and untracked files (one of
#      them binary) and an ignored file; ~/work holds a loose file
#   2. teardown --check names what would be kept and removes nothing
#   3. teardown keeps it (one line per repository) and removes the bottle; RESTORE.txt, run in an empty
#      folder as the README says, brings every piece back (the binary byte for byte), the ignored file not
#   4. the same for a crashed agent: its container killed (stopped) before the teardown
# State and archives live in a temporary folder (never ~/.bot-bottle); the trap removes the bottle.
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/agent_work.sh
set -euo pipefail
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$(dirname "$0")/lib/bottle_test.sh"
SLUG=lr-work
bt_init "agent work"
bt_inventory "agent work test agent"
in_agent() { docker exec -u agent -w /home/agent/work bb-$SLUG-agent bash -ec "$1"; }

# The agent's work; prints the sha256 of the binary it leaves untracked.
make_work() {
  # shellcheck disable=SC2016  # expanded by the agent's bash, not here
  in_agent '
    g() { git -c user.name=agent -c user.email=agent@bottle.test "$@"; }
    for name in proj lib; do
      git init -q --bare -b main ~/upstream/$name.git
      git clone -q ~/upstream/$name.git $name 2>/dev/null
      cd $name
      echo "base of $name" > README && printf "build/\n" > .gitignore && git add -A && g commit -qm base
      git push -q origin main
      echo "unpushed of $name" > feature.txt && git add feature.txt && g commit -qm "unpushed work"
      mkdir -p build && echo ignored > build/out.o
      cd ..
    done
    cd proj
    echo "stash me" > stashed.txt && git add stashed.txt && g stash -q
    echo "changed, not committed" >> README
    head -c 3000 /dev/urandom > new.bin
    cd ../lib
    git checkout -q -b topic && echo topic > topic.txt && git add topic.txt && g commit -qm topic
    echo untracked > untracked.txt
    cd .. && echo "loose notes" > notes.md
    sha256sum proj/new.bin | cut -d" " -f1'
}

check_restored() {  # $1: the teardown log, $2: the binary's sha256
  local log=$1 sum=$2 restore where
  for repo in proj lib; do grep -q "kept ~/work/$repo: " "$log" || fail "teardown did not say it kept ~/work/$repo"; done
  restore=$(grep -o "restore: paste the commands of [^ \"]*RESTORE.txt" "$log" | head -1 | sed 's/.* //')
  [ -f "$restore" ] || fail "no RESTORE.txt named by the teardown ($restore)"
  where=$(mktemp -d "$D/restored.XXXX")
  (cd "$where" && bash -e "$restore") || fail "the restore commands failed"
  [ "$(sha256sum "$where/proj/new.bin" | cut -d' ' -f1)" = "$sum" ] || fail "the binary came back different"
  grep -q "changed, not committed" "$where/proj/README" || fail "the uncommitted change is lost"
  [ "$(git -C "$where/proj" log -1 --format=%s main)" = "unpushed work" ] || fail "the unpushed commit of proj is lost"
  git -C "$where/proj" stash list | grep -q . || fail "the stash is lost"
  git -C "$where/proj" stash show --name-only 'stash@{0}' | grep -q stashed.txt || fail "the stash lost its file"
  [ "$(git -C "$where/lib" rev-parse --abbrev-ref HEAD)" = topic ] || fail "lib is not back on its branch"
  if ! { [ -f "$where/lib/topic.txt" ] && grep -q untracked "$where/lib/untracked.txt"; }; then fail "lib's work is lost"; fi
  [ ! -e "$where/proj/build/out.o" ] || fail "an ignored file was kept"
  grep -q "loose notes" "$where/loose/work/notes.md" || fail "the loose file is lost"
  echo "ok: every piece came back with RESTORE.txt ($restore)"
}

step "launch bottle $SLUG and leave work in it"
playbook playbooks/bottle.yml -e agent=$SLUG >"$D/launch.log" || { tail -30 "$D/launch.log"; fail "launch"; }
sum=$(make_work)

step "teardown --check names what would be kept, removes nothing"
playbook playbooks/teardown.yml -e bottle=$SLUG --check >"$D/check.log" || { tail -30 "$D/check.log"; fail "teardown --check"; }
grep -q "would keep ~/work/proj: .*unpushed commit" "$D/check.log" || { grep -n "work" "$D/check.log"; fail "--check did not name the work"; }
if ! { [ "$(containers)" = 2 ] && [ ! -e "$ARCHIVE" ]; }; then fail "--check changed something"; fi

step "teardown keeps the work; the restore commands bring it back"
playbook playbooks/teardown.yml -e bottle=$SLUG >"$D/teardown.log" || { tail -30 "$D/teardown.log"; fail "teardown"; }
grep -E "kept ~/work|restore:" "$D/teardown.log" | sed 's/^ *"msg": //'
[ "$(containers)" = 0 ] || fail "the bottle is still there"
check_restored "$D/teardown.log" "$sum"

step "a crashed agent: launch, leave work, kill the agent container, teardown"
playbook playbooks/bottle.yml -e agent=$SLUG >"$D/launch2.log" || { tail -30 "$D/launch2.log"; fail "launch"; }
sum=$(make_work)
docker kill bb-$SLUG-agent >/dev/null
[ "$(docker inspect -f '{{.State.Status}}' bb-$SLUG-agent)" = exited ] || fail "the agent did not stop"
playbook playbooks/teardown.yml -e bottle=$SLUG >"$D/teardown2.log" || { tail -30 "$D/teardown2.log"; fail "teardown"; }
check_restored "$D/teardown2.log" "$sum"
step "passed"
