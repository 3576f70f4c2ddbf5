#!/usr/bin/env bash
# The collection as Ansible users install it, against a real bottle (docker backend):
#   1. ansible-galaxy collection build: the tarball holds the collection and none of a used checkout's
#      venvs, caches or build outputs (galaxy.yml build_ignore); its size and file count are printed
#   2. the execution environment definition: ansible-builder create writes its build context with this
#      tarball (no image is built: no container registry here), and ansible-builder introspect finds the
#      collection's documented requirements (meta/requirements.txt) in the installed collection
#   3. ansible-galaxy collection install (offline) into a temporary collections path
#   4. from another folder, with .venv-user (only meta/requirements.txt, made by scripts/setup.sh) and no
#      trace of the checkout (no ANSIBLE_CONFIG, its ansible.cfg and venv not on any path): launch bottle
#      ic-<pid> by the fully qualified playbook name, rerun (nothing changed), and every printed next step
#      is fully qualified, with no .venv/bin/ path and no playbooks/ path
#   5. the printed teardown command, run as printed, removes the bottle (containers, networks, state)
# Run under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/installed_collection.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib/bottle_test.sh
source "$root/tests/integration/lib/bottle_test.sh"
SLUG=ic-$$
SLUG=${SLUG:0:31}
BT_LABEL="installed collection" BT_START=$(date +%s)
USER_VENV=$root/.venv-user
BUILDER=${ANSIBLE_BUILDER:-$root/.venv/bin/ansible-builder}
D=$(mktemp -d "/tmp/bb-$SLUG-test.XXXXXX")
WORK=$D/work COLLECTIONS=$D/collections INV=$D/work/inventory.yml STATE=$D/state ARCHIVE=$D/archive
mkdir -p "$WORK" "$COLLECTIONS"

# A user's shell: the user venv first on PATH, nothing of the checkout's Ansible set-up in the environment.
as_user() {
  (cd "$WORK" && env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_ROLES_PATH -u PYTHONPATH -u VIRTUAL_ENV \
     PATH="$USER_VENV/bin:/usr/local/bin:/usr/bin:/bin" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false "$@")
}
cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  as_user ansible-playbook botbottle.bottle.teardown -e "bottle=$SLUG" -e bottle_archive=false >/dev/null 2>&1 || true
  if docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | grep -q .; then echo "WARNING: containers of $SLUG left"; rc=1; fi
  if docker network ls -q --filter "name=bb-$SLUG-" | grep -q .; then echo "WARNING: networks of $SLUG left"; rc=1; fi
  rm -rf "$D"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$USER_VENV/bin/ansible-playbook" ] || fail "no $USER_VENV (an Ansible user's venv of meta/requirements.txt): run make setup"
[ -x "$BUILDER" ] || fail "no ansible-builder at $BUILDER (requirements.txt): run make setup"
extra=$("$USER_VENV/bin/pip" list --format=freeze 2>/dev/null | cut -d= -f1 | tr '[:upper:]_' '[:lower:]-' \
        | grep -vxE 'ansible-core|docker|pip|setuptools|certifi|cffi|charset-normalizer|cryptography|idna|jinja2|markupsafe|packaging|pycparser|pyyaml|requests|resolvelib|urllib3' || true)
[ -z "$extra" ] || fail ".venv-user holds more than meta/requirements.txt and its dependencies: $extra (run make setup)"

step "build the tarball"
"$USER_VENV/bin/ansible-galaxy" collection build "$root" --output-path "$D/dist" >"$D/build.log" 2>&1 \
  || { cat "$D/build.log"; fail "ansible-galaxy collection build"; }
version=$(sed -n 's/^version: *//p' "$root/galaxy.yml")
TARBALL=$D/dist/botbottle-bottle-$version.tar.gz
[ -s "$TARBALL" ] || fail "no $TARBALL: $(cat "$D/build.log")"
tar tzf "$TARBALL" | sed 's|/$||' >"$D/files.txt"
echo "  tarball: $(du -k "$TARBALL" | cut -f1) KiB, $(grep -c . "$D/files.txt") entries"
for want in MANIFEST.json FILES.json README.md meta/runtime.yml meta/requirements.txt meta/execution-environment.yml \
            playbooks/bottle.yml playbooks/teardown.yml roles/bottle/tasks/main.yml plugins/modules/bottle_launch.py \
            plugins/module_utils/playbook_command.py images/bundle/Dockerfile images/agent/Dockerfile; do
  grep -qxF "$want" "$D/files.txt" || fail "the tarball lacks $want"
done
junk=$(grep -E '(^|/)(\.venv[^/]*|\.build|\.ansible|\.hypothesis|\.pytest_cache|__pycache__|\.git|\.worktrees|\.claude|dist|bench|\.ci)(/|$)|\.pyc$|\.tar\.gz$|^tests/output(/|$)|^playbooks/collections$|extra-ca\.pem$|^bottle-status\.json$|^galaxy\.yml$' \
       "$D/files.txt" || true)
[ -z "$junk" ] || fail "the tarball holds what build_ignore should leave out: $(echo "$junk" | head -5 | tr '\n' ' ')"

step "the execution environment's build context (ansible-builder create, no image build)"
mkdir -p "$D/ee/dist"
cp -r "$root/execution-environment.yml" "$root/execution-environment" "$D/ee/"
cp "$TARBALL" "$D/ee/dist/"
(cd "$D/ee" && "$BUILDER" create -f execution-environment.yml --context "$D/ee/context" --output-filename Containerfile >"$D/ee.log" 2>&1) \
  || { cat "$D/ee.log"; fail "ansible-builder create (the definition names dist/botbottle-bottle-$version.tar.gz? galaxy.yml's version)"; }
[ -s "$D/ee/context/_build/collections/botbottle-bottle-$version.tar.gz" ] \
  || fail "the build context lacks the collection's tarball (execution-environment.yml additional_build_files)"
grep -qF "collections/botbottle-bottle-$version.tar.gz" "$D/ee/context/_build/requirements.yml" \
  || fail "execution-environment/requirements.yml does not install botbottle-bottle-$version.tar.gz"
grep -q 'ansible-galaxy collection install .*-r requirements.yml' "$D/ee/context/Containerfile" \
  || fail "the Containerfile installs no collections"

step "install the tarball into a temporary collections path"
cat >"$WORK/ansible.cfg" <<CFG
[defaults]
collections_path = $COLLECTIONS
inventory = $INV
CFG
as_user ansible-galaxy collection install --offline "$TARBALL" -p "$COLLECTIONS" >"$D/install.log" 2>&1 \
  || { cat "$D/install.log"; fail "ansible-galaxy collection install"; }
INSTALLED=$COLLECTIONS/ansible_collections/botbottle/bottle
[ -f "$INSTALLED/MANIFEST.json" ] || fail "nothing installed at $INSTALLED"
as_user ansible-galaxy collection list botbottle.bottle 2>/dev/null | grep -qE "^botbottle\.bottle +$version" \
  || fail "ansible-galaxy collection list does not show botbottle.bottle $version from $COLLECTIONS"
"$BUILDER" introspect --sanitize "$COLLECTIONS" >"$D/introspect.log" 2>&1 || { cat "$D/introspect.log"; fail "ansible-builder introspect"; }
grep -qE "^- '?docker.*# from collection botbottle\.bottle" "$D/introspect.log" \
  || { cat "$D/introspect.log"; fail "ansible-builder introspect does not find meta/requirements.txt (docker) in the installed collection"; }

# The inventory a user writes: this machine, state and archives under $D, agent $SLUG (bt_inventory's).
bt_inventory "installed collection test agent"
bt_on_fail() { tail -30 "$D/last.log"; }
run() { local log=$1; shift; as_user "$@" >"$D/$log" 2>&1 || { cp "$D/$log" "$D/last.log"; fail "$* (log $log)"; }; cp "$D/$log" "$D/last.log"; }
recap() { grep -E '^localhost +: ok=' "$D/$1" || fail "no recap in $1"; }
count() { recap "$1" | grep -oE "\b$2=[0-9]+" | cut -d= -f2; }
# Every printed next step fits an installed collection: no checkout path, no venv path.
no_checkout_paths() {
  local bad
  bad=$(grep -nE '\.venv/bin|playbooks/[a-z]+\.yml' "$D/$1" || true)
  [ -z "$bad" ] || fail "$1 prints a command for the checkout: $(echo "$bad" | head -3)"
}

step "launch bottle $SLUG by its fully qualified playbook name, from $WORK"
run launch.log ansible-playbook botbottle.bottle.bottle -e "agent=$SLUG"
grep -qF "bottle $SLUG (agent $SLUG, policy $SLUG) is running (created: " "$D/launch.log" || fail "no 'is running (created' line"
[ "$(docker ps -q --filter "label=io.botbottle.bottle=$SLUG" | wc -l)" = 2 ] || fail "the bottle does not run two containers"
TEARDOWN=$(grep -oE '"tear down: [^"]*"' "$D/launch.log" | sed 's/^"tear down: //; s/"$//')
[ "$TEARDOWN" = "ansible-playbook botbottle.bottle.teardown -e bottle=$SLUG" ] \
  || fail "the printed teardown command is '$TEARDOWN', not the fully qualified one"
no_checkout_paths launch.log
echo "  printed: tear down: $TEARDOWN"

step "rerun: nothing changed"
run rerun.log ansible-playbook botbottle.bottle.bottle -e "agent=$SLUG"
[ "$(count rerun.log changed)" = 0 ] || fail "the rerun changed $(count rerun.log changed) things"
grep -qF "bottle $SLUG (agent $SLUG, policy $SLUG) is running (nothing changed)" "$D/rerun.log" || fail "no 'nothing changed' line"
no_checkout_paths rerun.log

step "a teardown that matches nothing names the status playbook by its fully qualified name"
run none.log ansible-playbook botbottle.bottle.teardown -e "bottle=$SLUG-none"
grep -qF "The bottles there: ansible-playbook botbottle.bottle.status" "$D/none.log" || fail "the hint is not fully qualified"
no_checkout_paths none.log

step "the printed teardown command, run as printed: $TEARDOWN"
read -r -a teardown_argv <<<"$TEARDOWN"
run teardown.log "${teardown_argv[@]}"
[ "$(count teardown.log failed)" = 0 ] || fail "teardown failed"
[ "$(docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | wc -l)" = 0 ] || fail "containers of $SLUG left after teardown"
docker network ls -q --filter "name=bb-$SLUG-" | grep -q . && fail "networks of $SLUG left after teardown"
[ ! -e "$STATE/$SLUG" ] || fail "$STATE/$SLUG left after teardown"
no_checkout_paths teardown.log
step "ok: built, installed, launched, reran and torn down by fully qualified names"
