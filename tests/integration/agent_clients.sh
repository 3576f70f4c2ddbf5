#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The agent image's TLS clients (curl, Python, pip in a venv, npm, git over HTTPS) trust the bottle
# CA where bottle_provision installs it, under the CA variables every backend sets
# (agent_container.CA_ENV), and refuse a certificate of any other CA. One --rm container of
# $AGENT_IMAGE (default botbottle/agent:latest), no network; nothing is built.
# Last line: "N passed, N failed".
set -u -o pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${AGENT_IMAGE:-botbottle/agent:latest}"
python="${PYTHON:-$repo/.venv/bin/python}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image not found (set AGENT_IMAGE)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
# The backends' values, from the code that sets them (not a copy).
bash "$repo/scripts/collection-link.sh" >/dev/null
mapfile -t env_args < <(cd "$repo" && PYTHONPATH="$repo/.build/collections" "$python" -c '
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import CA_ENV
for key, value in sorted(CA_ENV.items()):
    print("-e"); print("%s=%s" % (key, value))')
if [[ ${#env_args[@]} -eq 0 ]]; then
    echo "could not read agent_container.CA_ENV with $python" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
timeout 300 docker run --rm --network none --user root "${env_args[@]}" \
    -v "$here/agent_clients/check.sh:/check.sh:ro" --entrypoint bash "$image" /check.sh
