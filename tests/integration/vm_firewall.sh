#!/usr/bin/env bash
# The loopback firewall of a smolmachines bottle (bottle_loopback_firewall, iptables), tested without a
# VM in a private network namespace: this host's own firewall is never touched. A process dialling the
# bottle's pool address on a port the bundle does not serve is refused, TCP and UDP, while the bundle's
# port works and the refused service still answers on 127.0.0.1 (see vm_firewall/probe.py).
# Needs root (unshare -n) and iptables; says why and fails otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v iptables >/dev/null || { echo "vm_firewall: iptables is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "vm_firewall: needs root for unshare -n" >&2; exit 1; }
export PYTHONPATH="$root/.build/collections"
exec unshare -n "$root/.venv/bin/python" tests/integration/vm_firewall/probe.py
