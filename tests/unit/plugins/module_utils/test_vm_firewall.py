# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rule rendering and planning; tests/integration/vm_firewall.sh applies them in a private netns."""
from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import vm_firewall as fw

PORTS = [9418, 8888, 9100, 8888]


def spec(words):
    return " ".join(words)


def test_bottle_rules_return_for_ports_then_reject_tcp_and_udp():
    rules = [spec(r) for r in fw.bottle_rules("demo", "127.77.0.17", PORTS)]
    tag = "-m comment --comment botbottle:demo"
    assert rules == [
        "-A BOTBOTTLE-LO -d 127.77.0.17/32 -p tcp -m multiport --dports 8888,9100,9418 %s -j RETURN" % tag,
        "-A BOTBOTTLE-LO -d 127.77.0.17/32 -p udp -m multiport --dports 8888,9100,9418 %s -j RETURN" % tag,
        "-A BOTBOTTLE-LO -d 127.77.0.17/32 -p tcp %s -j REJECT --reject-with tcp-reset" % tag,
        "-A BOTBOTTLE-LO -d 127.77.0.17/32 %s -j REJECT --reject-with icmp-port-unreachable" % tag]


def test_plan_from_nothing_inserts_the_jump_first():
    plan = fw.plan_iptables("-P OUTPUT ACCEPT\n-A OUTPUT -o lo -j ACCEPT\n", None, "demo", "127.77.0.17", PORTS)
    assert plan[:2] == [["-N", "BOTBOTTLE-LO"], ["-I", "OUTPUT", "1", "-o", "lo", "-j", "BOTBOTTLE-LO"]]
    assert plan[2:] == fw.bottle_rules("demo", "127.77.0.17", PORTS)


def test_plan_is_empty_when_in_place_and_keeps_other_bottles():
    other = fw.bottle_rules("other", "127.77.0.18", [8888])
    mine = fw.bottle_rules("demo", "127.77.0.17", PORTS)
    chain = "-N BOTBOTTLE-LO\n" + "\n".join(spec(r) for r in other + mine) + "\n"
    output = "-P OUTPUT ACCEPT\n-A OUTPUT -o lo -j BOTBOTTLE-LO\n-A OUTPUT -o lo -j ACCEPT\n"
    assert fw.plan_iptables(output, chain, "demo", "127.77.0.17", PORTS) == []
    moved = fw.plan_iptables(output, chain, "demo", "127.77.0.19", PORTS)
    assert [w[0] for w in moved] == ["-D"] * 4 + ["-A"] * 4
    assert all("botbottle:demo" in w for w in moved)
    assert fw.plan_iptables_absent(chain, "demo") == [["-D"] + r[1:] for r in mine]


def test_plan_moves_a_jump_that_is_not_first():
    output = "-P OUTPUT ACCEPT\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -o lo -j BOTBOTTLE-LO\n"
    chain = "-N BOTBOTTLE-LO\n" + "\n".join(spec(r) for r in fw.bottle_rules("demo", "127.77.0.17", PORTS))
    assert fw.plan_iptables(output, chain, "demo", "127.77.0.17", PORTS) == [
        ["-D", "OUTPUT", "-o", "lo", "-j", "BOTBOTTLE-LO"], ["-I", "OUTPUT", "1", "-o", "lo", "-j", "BOTBOTTLE-LO"]]


def test_pf_anchor_text():
    assert fw.pf_anchor("demo") == "com.botbottle/demo"
    assert fw.pf_rules("demo", "127.77.0.17", PORTS) == (
        "# botbottle demo: 127.77.0.17 reaches only its bundle's ports (anchor com.botbottle/demo)\n"
        "pass out quick on lo0 inet proto { tcp, udp } from any to 127.77.0.17 port { 8888, 9100, 9418 }\n"
        "block return out quick on lo0 inet from any to 127.77.0.17\n")


@pytest.mark.parametrize("address, ports, needle", [
    ("127.0.0.1", [8888], "127.0.0.1 is shared"),
    ("10.0.0.5", [8888], "not a loopback address"),
    ("127.77.0.17", [], "ports: none given"),
    ("127.77.0.17", [0], "ports: 0 is not a port"),
    ("127.77.0.17", ["x"], "ports: 'x' is not a port number"),
])
def test_bad_input_names_the_key(address, ports, needle):
    with pytest.raises(fw.FirewallError, match=needle):
        fw.bottle_rules("demo", address, ports)
    with pytest.raises(fw.FirewallError, match=needle):
        fw.pf_rules("demo", address, ports)
