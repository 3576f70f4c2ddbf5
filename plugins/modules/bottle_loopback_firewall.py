#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_loopback_firewall
short_description: Limit a smolmachines bottle's loopback address to its bundle's ports
version_added: 0.1.0
description:
  - Whatever may dial the bottle's loopback address C(127.77.0.X) - its VM when the VM has an allow
    list, or any host process - then reaches only the bundle's O(ports) there, TCP and UDP; every other
    port of that address is refused (TCP reset, ICMP port unreachable), so a host service listening on
    a wildcard address is not reachable at it.
  - Linux - C(iptables) - a chain C(BOTBOTTLE-LO) jumped to by the first rule of C(OUTPUT) for
    C(-o lo) (before any blanket loopback accept; the jump is moved back to the top when something
    was inserted above it), holding per bottle rules commented C(botbottle:<slug>) - RETURN for the
    ports, REJECT for the rest of the address. Compared with C(iptables -S); only differences are applied.
  - macOS - C(pf) - the anchor C(com.botbottle/<slug>) loaded with C(pfctl -a ... -f -). It takes effect
    only where C(/etc/pf.conf) holds C(anchor "com.botbottle/*") and pf is enabled (C(pfctl -E)), and not
    under C(set skip on lo0); the module says so in RV(notes) and does not edit C(pf.conf).
  - Needs root (C(become)). Changes the host's firewall; run it only where that is wanted.
author: botbottle developers (@botbottle)
attributes:
  check_mode:
    description: Reports the commands it would run (RV(commands)), running none that changes anything.
    support: full
  diff_mode:
    description: Not supported.
    support: none
  idempotent:
    description: A second run finds the rules in place and changes nothing (iptables).
    support: full
options:
  slug:
    description: The bottle's slug (names its rules).
    type: str
    required: true
  address:
    description: The bottle's loopback address (C(127.0.0.0/8), not C(127.0.0.1)). Required with O(state=present).
    type: str
  ports:
    description: The bundle's ports on O(address). Required with O(state=present).
    type: list
    elements: int
    default: []
  state:
    description: V(present) - the rules are in place; V(absent) - the bottle's rules are gone.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: V(auto) - C(iptables) on Linux, C(pf) on macOS.
    type: str
    choices: [auto, iptables, pf]
    default: auto
"""

EXAMPLES = r"""
- name: Only the bundle's ports answer at 127.77.0.17
  botbottle.bottle.bottle_loopback_firewall:
    slug: demo
    address: 127.77.0.17
    ports: [8888, 9418, 9100]
  become: true
"""

RETURN = r"""
backend:
  description: The firewall used.
  returned: always
  type: str
  sample: iptables
commands:
  description: The commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
notes:
  description: What the operator must know (pf's anchor reference).
  returned: always
  type: list
  elements: str
"""

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import vm_firewall


def iptables(module):
    binary = module.get_bin_path("iptables", required=True)

    def run(words, check=True):
        rc, out, err = module.run_command([binary, "-w"] + words)
        if check and rc != 0:
            module.fail_json(msg="iptables %s failed (rc %d): %s" % (" ".join(words), rc, err.strip()))
        return rc, out
    return run


def apply_iptables(module, result):
    p = module.params
    run = iptables(module)
    _rc, output = run(["-S", "OUTPUT"])
    rc, chain = run(["-S", vm_firewall.CHAIN], check=False)
    chain = chain if rc == 0 else None
    try:
        if p["state"] == "present":
            plan = vm_firewall.plan_iptables(output, chain, p["slug"], p["address"], p["ports"])
        else:
            plan = vm_firewall.plan_iptables_absent(chain, p["slug"]) if chain is not None else []
    except vm_firewall.FirewallError as exc:
        module.fail_json(msg=str(exc))
    result["commands"] = [["iptables", "-w"] + words for words in plan]
    result["changed"] = bool(plan)
    if module.check_mode:
        return
    for words in plan:
        run(words)


def apply_pf(module, result):
    p = module.params
    binary = module.get_bin_path("pfctl", required=True)
    anchor = vm_firewall.pf_anchor(p["slug"])
    result["notes"].append('pf evaluates %s only where /etc/pf.conf has anchor "%s/*" and pf is enabled '
                           '(pfctl -E), and not under "set skip on lo0"' % (anchor, vm_firewall.PF_ANCHOR_ROOT))
    rc, out, _err = module.run_command([binary, "-a", anchor, "-s", "rules"])
    loaded = out if rc == 0 else ""
    if p["state"] == "present":
        try:
            text = vm_firewall.pf_rules(p["slug"], p["address"], p["ports"])
        except vm_firewall.FirewallError as exc:
            module.fail_json(msg=str(exc))
        if p["address"] in loaded and "block return" in loaded:
            return
        command, data = [binary, "-a", anchor, "-f", "-"], text
    else:
        if not loaded.strip():
            return
        command, data = [binary, "-a", anchor, "-F", "rules"], None
    result["commands"] = [command]
    result["changed"] = True
    if module.check_mode:
        return
    rc, _out, err = module.run_command(command, data=data)
    if rc != 0:
        module.fail_json(msg="%s failed (rc %d): %s" % (" ".join(command), rc, err.strip()))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            slug=dict(type="str", required=True),
            address=dict(type="str"),
            ports=dict(type="list", elements="int", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            backend=dict(type="str", choices=["auto", "iptables", "pf"], default="auto"),
        ),
        required_if=[("state", "present", ("address", "ports"))],
        supports_check_mode=True,
    )
    backend = module.params["backend"]
    if backend == "auto":
        backend = {"Linux": "iptables", "Darwin": "pf"}.get(platform.system())
        if backend is None:
            module.fail_json(msg="backend: no firewall known for %s: pass backend=iptables or backend=pf"
                                 % platform.system())
    result = dict(changed=False, backend=backend, commands=[], notes=[])
    if backend == "iptables":
        apply_iptables(module, result)
    else:
        apply_pf(module, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
