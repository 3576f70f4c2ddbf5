#!/usr/bin/env bash
# Run make targets one after the other, stopping at the first that fails, and print how long each took
# (the figures a note about make test's duration needs): make test calls this with its stages, after
# setup. Each stage is told that setup and the images are done (make -o), so they are not redone per stage.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
total_start=$(date +%s) times=()
for stage in "$@"; do
  start=$(date +%s)
  if [ "$stage" = test-images ]; then make --no-print-directory -o setup "$stage"
  else make --no-print-directory -o setup -o test-images "$stage"; fi
  rc=$?
  times+=("$(printf '%-12s %5ss' "$stage" "$(( $(date +%s) - start ))")")
  if [ "$rc" -ne 0 ]; then
    printf '\n[make test] %s FAILED (exit %s)\n' "$stage" "$rc"
    break
  fi
done
printf '\n[make test] stage times:\n'
printf '  %s\n' "${times[@]}"
printf '  %-12s %5ss\n' total "$(( $(date +%s) - total_start ))"
exit "${rc:-0}"
