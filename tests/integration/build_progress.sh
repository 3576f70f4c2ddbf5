#!/usr/bin/env bash
# Image builds show progress (issue 15): playbooks/tasks/build_image.yml (what images.yml runs per image)
# builds a tiny throwaway image in the background and bottle_follow prints each step as it starts,
# with the real elapsed time, then the total; a second run says the image is up to date. The
# throwaway image is removed at the end, even on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
dir=$(mktemp -d /tmp/bb-build-progress.XXXXXX)
name="bbit-progress-$RANDOM:test"
fail() { printf 'BUILD PROGRESS TEST FAILED: %s\n' "$*" >&2; exit 1; }
cleanup() { docker image rm "$name" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

mkdir -p "$dir/ctx/tiny"
cat >"$dir/ctx/tiny/Dockerfile" <<'DOCKERFILE'
FROM debian:trixie-slim
RUN sleep 3
RUN true
DOCKERFILE
cat >"$dir/play.yml" <<YAML
- name: Build one throwaway image as images.yml does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Scratch directory
      ansible.builtin.tempfile:
        state: directory
      register: bottle_images_scratch
    - name: Build it
      ansible.builtin.include_tasks: $root/playbooks/tasks/build_image.yml
      vars:
        bottle_images_context_root: $dir/ctx
        bottle_images_item: {name: "$name", context: tiny, build_args: {}}
    - name: No progress file is left
      ansible.builtin.command: find {{ bottle_images_scratch.path }} -type f
      register: left
      changed_when: false
      failed_when: left.stdout | length > 0
YAML

ansible-playbook "$dir/play.yml" | tee "$dir/first.log" | grep '^\[build\]' || true
line() { grep -E "^\[build\] localhost $name [0-9]+:[0-9]{2} $1\$" "$dir/first.log" >/dev/null || fail "no line '$1'"; }
line 'building: no image .* yet'
line 'step 1/4 FROM debian:trixie-slim'
line 'step 2/4 RUN sleep 3'
line 'step 3/4 RUN true'
line 'step 4/4 LABEL io\.botbottle\.inputs=[0-9a-f]+'
line 'built in [0-9]+:[0-9]{2} \(4 steps, 0 from cache\)'
# Step 3 starts after step 2's three seconds: the times are the build's own, not the poll's.
elapsed=$(sed -nE "s/^\[build\] localhost [^ ]+ 0:([0-9]{2}) step 3\/4 .*/\1/p" "$dir/first.log")
[ "${elapsed:-0}" -ge 3 ] || fail "step 3 started at 0:${elapsed:-??}, before step 2's sleep 3 ended"
grep -qE '^localhost +: .*changed=2 .*failed=0' "$dir/first.log" || fail "the recap is not 'changed=2 failed=0' (scratch + build)"
docker image inspect "$name" >/dev/null || fail "$name was not built"

ansible-playbook "$dir/play.yml" >"$dir/second.log"
grep -qE "^\[build\] localhost $name [0-9]+:[0-9]{2} up to date, nothing to do$" "$dir/second.log" \
  || fail "the rerun does not say the image is up to date"
grep -qE '^localhost +: .*changed=1 .*failed=0' "$dir/second.log" || fail "the rerun changed more than the scratch directory"
echo "ok: each step printed as it started with its elapsed time, the total, then 'up to date'"
