#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The egress firewall addon (images/bundle/bottle_firewall) under mitmproxy 12 itself: runs
# every tests/integration/egress_mitmproxy/run_*.py inside the bundle image ($BUNDLE_IMAGE,
# default botbottle/bundle:latest) with its /opt/egress Python (3.13, mitmproxy, kingfisher),
# the working copy mounted read-only (images/testnet at /testnet: its DNS server), no network. Short --rm containers only; nothing is built.
# Last line: "N passed, N failed"; exit status non-zero when anything failed.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${BUNDLE_IMAGE:-botbottle/bundle:latest}"
passed=0
failed=0

if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image not found (set BUNDLE_IMAGE)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# run_fuzz.py needs Hypothesis, which the image lacks: its pure-Python packages are mounted
# read-only from the repo's .venv (requirements.txt pins it), or from $HYPOTHESIS_SITE.
site="${HYPOTHESIS_SITE:-}"
if [[ -z "$site" && -x "$repo/.venv/bin/python" ]]; then
    site="$("$repo/.venv/bin/python" -c 'import hypothesis, os; print(os.path.dirname(os.path.dirname(hypothesis.__file__)))' 2>/dev/null || true)"
fi
hyp_mounts=()
if [[ -n "$site" ]]; then
    for entry in hypothesis sortedcontainers _hypothesis_globals.py _hypothesis_ftz_detector.py; do
        [[ -e "$site/$entry" ]] && hyp_mounts+=(-v "$site/$entry:/hyp/$entry:ro")
    done
fi

# The collection's module_utils that the bundle shares (images/bundle has symlinks to them, which point
# outside the mounted folder): mounted on PYTHONPATH as the image copies them.
srclib=()
for shared in agent_text proposal_format route_schema bundle_format; do
    srclib+=(-v "$repo/plugins/module_utils/$shared.py:/srclib/$shared.py:ro")
done

for script in "$here"/egress_mitmproxy/run_*.py; do
    name="$(basename "$script")"
    echo "== $name"
    output="$(timeout 600 docker run --rm --network none --user egress \
        -e PYTHONDONTWRITEBYTECODE=1 -e BOTTLE_SRC=/src -e HYPOTHESIS_PATH=/hyp -e CI="${CI:-}" \
        "${hyp_mounts[@]}" \
        -v "$repo/images/bundle:/src:ro" -v "$repo/images/testnet:/testnet:ro" \
        "${srclib[@]}" -e PYTHONPATH=/srclib \
        -v "$here/egress_mitmproxy:/t:ro" \
        --entrypoint /opt/egress/bin/python "$image" "/t/$name" 2>&1)"
    status=$?
    echo "$output"
    summary="$(printf '%s\n' "$output" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)"
    if [[ -n "$summary" ]]; then
        read -r p _ f _ <<<"$summary"
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    if [[ $status -ne 0 && ( -z "$summary" || "${f:-0}" -eq 0 ) ]]; then
        echo "$name exited with status $status"
        failed=$((failed + 1))
    fi
    unset f
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
