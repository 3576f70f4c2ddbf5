#!/usr/bin/env bash
# Make this checkout importable as the collection botbottle.bottle:
#   .build/collections/ansible_collections/botbottle/bottle -> the checkout (for ansible and pytest)
#   .build/sanity/ansible_collections/botbottle/bottle       a copy of the tracked + new files (ansible-test
#                                                            refuses a symlinked collection root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.build/collections/ansible_collections/botbottle"
ln -sfn "$root" "$root/.build/collections/ansible_collections/botbottle/bottle"
# The playbooks find the collection from any directory through playbooks/collections (git ignores
# the link: it points into .build, which only exists once this script has run).
ln -sfn ../.build/collections "$root/playbooks/collections"
if [ "${1:-}" = "--copy" ]; then
  dest="$root/.build/sanity/ansible_collections/botbottle/bottle"
  rm -rf "$dest" && mkdir -p "$dest"
  # A tracked file deleted in the work tree cannot be copied: skip it, copy the rest.
  # shellcheck disable=SC2016  # $1/$2 belong to the inner sh, not to this script
  (cd "$root" && git ls-files --cached --others --exclude-standard -z \
     | xargs -0 -I{} sh -c 'test -e "$1" && cp --parents -P "$1" "$2/"; true' sh {} "$dest")
  # ansible-test lists a collection's files with git when it sits in a work tree; the copy lives
  # inside this checkout's ignored .build/, so give it a repository of its own.
  (cd "$dest" && git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@localhost commit -qm copy)
  echo "$dest"
fi
