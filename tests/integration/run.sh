#!/usr/bin/env bash
# Integration tests against the real Docker engine (and the real smolvm CLI).
# Each suite runs on its own; a failing suite does not hide the others.
# Closes with one line "N passed, N failed" counting suites.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
passed=0 failed=0 failures=()

times=()
suite() {
  local name=$1 start result; shift
  printf '\n=== integration: %s ===\n' "$name"
  start=$(date +%s)
  if "$@"; then passed=$((passed + 1)) result=ok; else failed=$((failed + 1)) result=FAILED; failures+=("$name"); fi
  times+=("$(printf '%-24s %4ss %s' "$name" "$(( $(date +%s) - start ))" "$result")")
}

# ansible-test integration targets (tests/integration/targets/*), run from the sanity copy
# ansible-test insists on, against the local engine with this venv's Python.
copy=$(scripts/collection-link.sh --copy)
for target in tests/integration/targets/*/; do
  target=$(basename "$target")
  suite "$target" bash -c "cd '$copy' && ansible-test integration --local --python 3.11 --color no '$target'"
done

# Plain scripts and pytest suites.
for script in tests/integration/*.sh; do
  [ "$(basename "$script")" = run.sh ] && continue
  suite "$(basename "$script" .sh)" bash "$script"
done
if compgen -G "tests/integration/pytest/test_*.py" >/dev/null; then
  suite pytest pytest -p no:cacheprovider tests/integration/pytest -ra
fi

printf '\nintegration suite times:\n'
printf '  %s\n' "${times[@]}"
printf '\nintegration: %s passed, %s failed\n' "$passed" "$failed"
[ ${#failures[@]} -eq 0 ] || printf 'failed suites: %s\n' "${failures[*]}"
[ "$failed" -eq 0 ]
