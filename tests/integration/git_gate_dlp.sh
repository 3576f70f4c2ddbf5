#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# git-gate's DLP in the bundle image ($BUNDLE_IMAGE, default botbottle/bundle:latest): egress's scan
# service as the egress uid, git-gate's git daemon and hooks as gitgate, the agent's git as nobody,
# real gitleaks, a local bare upstream; one --rm --network none container, the working copy mounted
# read-only, nothing built (tests/integration/git_gate_dlp/run_git_gate_dlp.py).
# Last line: "N passed, N failed"; exit status non-zero when anything failed.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${BUNDLE_IMAGE:-botbottle/bundle:latest}"

if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image not found (set BUNDLE_IMAGE)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# The collection's module_utils that egress shares (images/bundle has symlinks to them, which point outside
# the mounted folder): mounted on PYTHONPATH as the image copies them beside the addon.
srclib=()
for shared in route_schema bundle_format; do
    srclib+=(-v "$repo/plugins/module_utils/$shared.py:/srclib/$shared.py:ro")
done

output="$(timeout 900 docker run --rm --network none --user root \
    -e PYTHONDONTWRITEBYTECODE=1 -e BOTTLE_SRC=/src \
    -v "$repo/images/bundle:/src:ro" -v "$here/git_gate_dlp:/t:ro" "${srclib[@]}" -e PYTHONPATH=/srclib \
    --entrypoint /opt/egress/bin/python "$image" /t/run_git_gate_dlp.py 2>&1)"
status=$?
echo "$output"
summary="$(printf '%s\n' "$output" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)"
if [[ -z "$summary" ]]; then
    echo "run_git_gate_dlp.py exited with status $status and no summary"
    echo "0 passed, 1 failed"
    exit 1
fi
read -r p _ f _ <<<"$summary"
if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
echo "$p passed, $f failed"
[[ $f -eq 0 && $status -eq 0 ]]
