# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch documents each phase's options as that phase's module does (the module's documentation is the
one owner): the doc fragment is what scripts/launch_doc_fragments.py writes from it now, and documents exactly the
nested options Ansible validates."""

from __future__ import annotations

import importlib.util
import os

import yaml

from ansible_collections.botbottle.bottle.plugins.doc_fragments.launch_phases import ModuleDocFragment
from ansible_collections.botbottle.bottle.plugins.module_utils import launch_phases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def _generator():
    spec = importlib.util.spec_from_file_location("launch_doc_fragments",
                                                  os.path.join(ROOT, "scripts", "launch_doc_fragments.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fragment_is_what_the_modules_document_now():
    generator = _generator()
    with open(generator.FRAGMENT, encoding="utf-8") as handle:
        assert handle.read() == generator.render(), "rerun scripts/launch_doc_fragments.py"


def _names(docs, spec):
    assert set(docs) == set(spec)
    for name, option in spec.items():
        if option.get("options"):
            _names(docs[name]["suboptions"], option["options"])


def test_the_fragment_documents_exactly_the_nested_options():
    for phase in launch_phases.PHASES:
        doc = yaml.safe_load(getattr(ModuleDocFragment, phase.name.upper()))["options"][phase.name]
        _names(doc["suboptions"], phase.nested_spec())
