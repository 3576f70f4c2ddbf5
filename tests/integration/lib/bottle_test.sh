# shellcheck shell=bash
# The preamble every integration script that drives one real bottle (docker backend) shares.
# Source it, then:
#   SLUG=name; bt_init LABEL
#                          cd to the checkout, put .venv first on PATH, make a temporary folder $D with
#                          $INV, $STATE and $ARCHIVE in it, define step/fail, and set the trap that tears
#                          the bottle $SLUG down (no archive) and removes $D whatever happens
#   bt_inventory DESC [POLICY_LINE ...]
#                          write $INV: localhost, state and archives under $D, agent $SLUG whose policy
#                          allows allowed.bottle.test plus the given policy lines (YAML, one key each)
#   playbook ARGS...       ansible-playbook -i $INV ARGS...
#   containers             how many containers carry the bottle's label
# A script may define bt_on_fail (called by fail before it exits) to print what helps a reader.

bt_init() {
  BT_LABEL=$1
  : "${SLUG:?set SLUG to the bottle name before bt_init}"
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
  cd "$root" || exit 1
  export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
  D=$(mktemp -d "/tmp/bb-$SLUG-test.XXXXXX")
  INV=$D/inventory.yml ARCHIVE=$D/archive STATE=$D/state
  BT_START=$(date +%s)
  trap bt_cleanup EXIT
  trap 'exit 130' INT TERM
}

step() { printf '\n--- %s [%3ss] %s\n' "$BT_LABEL" "$(( $(date +%s) - BT_START ))" "$*"; }

fail() {
  printf '%s TEST FAILED: %s\n' "${BT_LABEL^^}" "$*" >&2
  if declare -F bt_on_fail >/dev/null; then bt_on_fail >&2 || true; fi
  exit 1
}

bt_cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  ansible-playbook -i "$INV" playbooks/teardown.yml -e "bottle=$SLUG" -e bottle_archive=false >/dev/null 2>&1 || true
  docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | grep -q . && echo "WARNING: containers of $SLUG left"
  rm -rf "$D"
  exit "$rc"
}

bt_inventory() {
  local desc=$1 line
  shift
  {
    cat <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $STATE
    bottle_archive_root: $ARCHIVE
    bottle_agents:
      $SLUG:
        description: $desc; no LLM is ever called.
        policy: $SLUG
        prompt: You are the $desc.
    bottle_policies:
      $SLUG:
        allowed_domains: [allowed.bottle.test]
YAML
    for line in "$@"; do printf '        %s\n' "$line"; done
  } >"$INV"
}

playbook() { ansible-playbook -i "$INV" "$@"; }
containers() { docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | wc -l; }
