# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host firewall rule limiting a bottle's loopback address to its bundle's ports.

Whatever may dial ``127.77.0.X`` (a VM allowed to reach it, or anything on the
host) then reaches only the bundle's ports there, TCP and UDP: every other port
is refused (TCP reset, ICMP port unreachable), whatever listens on a wildcard
address.

Linux (iptables): one chain ``BOTBOTTLE-LO`` jumped to from the first rule of
``OUTPUT`` for ``-o lo`` (so it comes before any blanket ``-o lo -j ACCEPT``;
loopback traffic crosses OUTPUT before INPUT, so it also comes before an
``-i lo -j ACCEPT`` there). Per bottle, rules commented ``botbottle:<slug>``:
RETURN for the bundle's ports (TCP and UDP), then REJECT for the rest of the
address.

macOS (pf): an anchor ``com.botbottle/<slug>`` with a ``pass ... quick`` for
the ports and a ``block return ... quick`` for the address; loaded with
``pfctl -a com.botbottle/<slug> -f -``. pf evaluates it only where the main
ruleset has ``anchor "com.botbottle/*"`` and pf is enabled, and not at all
under ``set skip on lo0``.

API:
- ``CHAIN``, ``COMMENT_PREFIX``, ``PF_ANCHOR_ROOT``.
- ``check(address, ports)``: normalised ``(address, sorted ports)`` or ``FirewallError``.
- ``bottle_rules(slug, address, ports)``: the chain's rule specs for one bottle.
- ``plan_iptables(rules_text, chain_text, slug, address, ports)``: iptables argvs
  (without the binary) that bring ``iptables -S OUTPUT`` / ``-S BOTBOTTLE-LO``
  output to the wanted state; ``[]`` when it is already so.
- ``plan_iptables_absent(chain_text, slug)``: argvs removing one bottle's rules.
- ``pf_anchor(slug)`` / ``pf_rules(slug, address, ports)``: the anchor name and text.
"""

from __future__ import annotations

import ipaddress
import shlex

from ansible_collections.botbottle.bottle.plugins.module_utils import loopback

CHAIN = "BOTBOTTLE-LO"
COMMENT_PREFIX = "botbottle:"
PF_ANCHOR_ROOT = "com.botbottle"
JUMP = ["-o", "lo", "-j", CHAIN]


class FirewallError(ValueError):
    """Bad input; the message names the key and the fix."""


def check(address, ports):
    try:
        address = loopback.check_address(address)
    except loopback.LoopbackError as exc:
        raise FirewallError("address: %s" % exc)
    clean = set()
    for port in ports or ():
        try:
            value = int(port)
        except (TypeError, ValueError):
            raise FirewallError("ports: %r is not a port number: give the bundle's ports, such as 8888" % (port,))
        if not 0 < value < 65536:
            raise FirewallError("ports: %d is not a port (1-65535)" % value)
        clean.add(value)
    if not clean:
        raise FirewallError("ports: none given: list the bundle's ports (8888, 9418, 9100)")
    return address, sorted(clean)


def comment(slug):
    return COMMENT_PREFIX + slug


def bottle_rules(slug, address, ports):
    """Rule specs (``-A CHAIN ...`` words) for one bottle, in order."""
    address, ports = check(address, ports)
    dest = ["-d", "%s/32" % ipaddress.ip_address(address)]
    tag = ["-m", "comment", "--comment", comment(slug)]
    listed = ",".join(str(p) for p in ports)
    rules = []
    for proto in ("tcp", "udp"):
        rules.append(["-A", CHAIN] + dest + ["-p", proto, "-m", "multiport", "--dports", listed] + tag
                     + ["-j", "RETURN"])
    rules.append(["-A", CHAIN] + dest + ["-p", "tcp"] + tag + ["-j", "REJECT", "--reject-with", "tcp-reset"])
    rules.append(["-A", CHAIN] + dest + tag + ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
    return rules


def _specs(text, prefix):
    """Lines of ``iptables -S`` output starting with ``prefix``, each split as the shell would."""
    out = []
    for line in (text or "").splitlines():
        words = shlex.split(line)
        if words[:len(prefix)] == prefix:
            out.append(words)
    return out


def plan_iptables(rules_text, chain_text, slug, address, ports):
    """argvs (no binary) to make the jump first in OUTPUT and the bottle's rules exactly ``bottle_rules``.

    ``rules_text``: ``iptables -S OUTPUT``; ``chain_text``: ``iptables -S BOTBOTTLE-LO`` (None when the
    chain does not exist).
    """
    wanted = bottle_rules(slug, address, ports)
    plan = []
    if chain_text is None:
        plan.append(["-N", CHAIN])
    output = _specs(rules_text, ["-A", "OUTPUT"])
    jumps = [i for i, words in enumerate(output) if words[2:] == JUMP]
    if jumps != [0]:
        for _index in jumps:
            plan.append(["-D", "OUTPUT"] + JUMP)
        plan.append(["-I", "OUTPUT", "1"] + JUMP)
    have = [words for words in _specs(chain_text, ["-A", CHAIN]) if comment(slug) in words]
    if not (len(have) == len(wanted) and have == wanted):
        plan += [["-D"] + words[1:] for words in have]
        plan += wanted
    return plan


def plan_iptables_absent(chain_text, slug):
    return [["-D"] + words[1:] for words in _specs(chain_text, ["-A", CHAIN]) if comment(slug) in words]


def pf_anchor(slug):
    return "%s/%s" % (PF_ANCHOR_ROOT, slug)


def pf_rules(slug, address, ports):
    """The pf anchor's text for one bottle."""
    address, ports = check(address, ports)
    listed = ", ".join(str(p) for p in ports)
    return ("# botbottle %s: %s reaches only its bundle's ports (anchor %s)\n"
            "pass out quick on lo0 inet proto { tcp, udp } from any to %s port { %s }\n"
            "block return out quick on lo0 inet from any to %s\n"
            % (slug, address, pf_anchor(slug), address, listed, address))
