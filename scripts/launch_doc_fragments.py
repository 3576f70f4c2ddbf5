#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write plugins/doc_fragments/launch_phases.py: bottle_launch's documentation of each phase's options.

bottle_launch takes each phase's options as the nested options of one dict option (module_utils/
launch_phases.py). Their documentation is the phase's module's (bottle_state, bottle_network, ...),
less what bottle_launch wires, with each O() and RV() reference made to point where it now lives: an
option of the phase becomes O(<phase>.<option>), any other (a wired one) its module's O(fqcn#module:x).
The module's own documentation stays the one owner: rerun this after changing it
(tests/unit/plugins/doc_fragments/test_launch_phases_doc.py fails until then).

    .venv/bin/python scripts/launch_doc_fragments.py          # rewrite the fragment
    .venv/bin/python scripts/launch_doc_fragments.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import importlib
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAGMENT = os.path.join(ROOT, "plugins", "doc_fragments", "launch_phases.py")
COLLECTION = "botbottle.bottle"

# What each phase option of bottle_launch is, above its suboptions.
ABOUT = {
    "state": "The state directory: the options of M(botbottle.bottle.bottle_state) but those bottle_launch sets "
             "(C(slug), C(state)) and its archive options (which are for removal).",
    "network": "The networks: the options of M(botbottle.bottle.bottle_network) but those bottle_launch sets.",
    "bundle": "The bundle: the options of M(botbottle.bottle.sidecar_bundle) but those bottle_launch sets (its "
              "networks and address from the networks, its configuration hash from the state directory, and "
              "C(wait): the provisioning waits).",
    "container": "The agent container (docker, required there): the options of M(botbottle.bottle.bottle_agent) but "
                 "those bottle_launch sets (its network, address and proxy from the networks and the bundle).",
    "provision": "The agent's files: the options of M(botbottle.bottle.bottle_provision) but those bottle_launch "
                 "sets (the target and bundle, and the git-gate host from the bundle). When the bundle runs "
                 "supervise, supervise's MCP server joins O(provision.mcp_servers). On smolmachines it runs only "
                 "when O(boot), over C(smolvm machine exec).",
    "relay": "smolmachines: the host ends of the VM's sockets - the options of "
             "M(botbottle.bottle.bottle_socket_relay) but those bottle_launch sets (the bottle, the address and the "
             "daemons).",
    "archive": "smolmachines (required there): the agent image as a file smolvm boots - the options of "
               "M(botbottle.bottle.bottle_image_archive).",
    "machine": "smolmachines: the agent VM - the options of M(botbottle.bottle.smolvm_machine) but those "
               "bottle_launch sets (no network; the relay's sockets mounted and its guest end the workload, as root; "
               "the image from O(archive); started when O(boot)). The relay's guest env joins O(machine.env).",
}
HEADER = '''# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Written by scripts/launch_doc_fragments.py from the phases' modules' documentation: do not edit, rerun it.

from __future__ import annotations


class ModuleDocFragment:
    """bottle_launch's phase options (module_utils/launch_phases.py), each documented as its module documents it."""
'''
REF = re.compile(r"\b(O|RV)\(([^()#]+?)\)")


def _import(dotted):
    sys.path.insert(0, os.path.join(ROOT, ".build", "collections"))
    try:
        return importlib.import_module("ansible_collections.botbottle.bottle.plugins." + dotted)
    finally:
        sys.path.pop(0)


def _retarget(text, phase, options):
    def one(match):
        kind, ref = match.groups()
        head = re.split(r"[.=\[]", ref, maxsplit=1)[0]
        if kind == "O" and head in options:
            return "O(%s.%s)" % (phase.name, ref)
        return "%s(%s.%s#module:%s)" % (kind, COLLECTION, phase.module, ref)
    return REF.sub(one, text)


def _option_docs(doc, spec, phase, options):
    out = {}
    for name, option in spec.items():
        entry = {}
        for key, value in doc[name].items():
            if key == "version_added":
                continue  # each came with bottle_launch
            if key == "description":
                value = [_retarget(line, phase, options) for line in ([value] if isinstance(value, str) else value)]
            elif key == "suboptions":
                value = _option_docs(value, option["options"], phase, options)
            entry[key] = value
        if option.get("required"):
            entry["required"] = True
        out[name] = entry
    return out


def render():
    phases = _import("module_utils.launch_phases")
    parts = [HEADER]
    for name in phases.OPTIONS:
        phase = next(each for plan in phases.PLANS.values() for each in plan if each.name == name)
        doc = yaml.safe_load(_import("modules." + phase.module).DOCUMENTATION)["options"]
        spec = phase.nested_spec()
        top = {"description": ABOUT[phase.name], "type": "dict",
               "suboptions": _option_docs(doc, spec, phase, set(spec))}
        if phase.name in ("state", "bundle"):
            top["required"] = True
        elif phase.name not in ("container", "archive"):
            top["default"] = {}
        text = yaml.safe_dump({"options": {phase.name: top}}, sort_keys=False, width=110, default_flow_style=False,
                              allow_unicode=True)
        parts.append('\n    %s = r"""\n%s"""\n' % (phase.name.upper(), text))
    return "".join(parts)


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        with open(FRAGMENT, encoding="utf-8") as handle:
            current = handle.read()
        if current != text:
            sys.exit("%s is out of date: run scripts/launch_doc_fragments.py" % FRAGMENT)
        return
    with open(FRAGMENT, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
