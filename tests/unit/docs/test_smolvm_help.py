# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/architecture.md cites smolvm 1.32's own help text by file and line (docs/smolvm-1.32/).

- the captured text is what the installed smolvm prints (a new pin shows up here);
- every ``<file>.txt:N[-M]`` citation in architecture.md points at lines that exist;
- the statements the network design rests on are on the lines cited for them.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HELP_DIR = os.path.join(ROOT, "docs", "smolvm-1.32")
ARCH = os.path.join(ROOT, "docs", "architecture.md")
CAPTURES = {
    "help.txt": ["--help"],
    "machine-create.txt": ["machine", "create", "--help"],
    "machine-run.txt": ["machine", "run", "--help"],
    "machine-update.txt": ["machine", "update", "--help"],
    "machine-start.txt": ["machine", "start", "--help"],
    "machine-egress-events.txt": ["machine", "egress-events", "--help"],
}
# (file, first line, last line, text that must be in those lines): what the design rests on.
CITED = [
    ("help.txt", 9, 9, "macOS Apple Silicon | arm64 Linux"),
    ("help.txt", 222, 222, "`--net` opens full outbound TCP, UDP and DNS"),
    ("help.txt", 236, 237, "including the host's loopback reached through the gateway"),
    ("help.txt", 245, 245, "and DNS keeps its own path"),
    ("help.txt", 282, 282, "The guest uses the host's own resolver"),
    ("help.txt", 350, 352, "the resolved value never lands in the VM record, the database"),
    ("help.txt", 383, 386, "read any `/proc/*/environ`"),
    ("help.txt", 549, 549, "Add/remove mounts, ports, env vars"),
    ("help.txt", 195, 195, "every command (Linux)"),
    ("machine-create.txt", 28, 29, "Linux only"),
    ("machine-create.txt", 98, 99, "Defaults to the host's own resolver"),
    ("machine-create.txt", 107, 108, "The gateway and resolver take the first address"),
    ("machine-create.txt", 119, 120, "DNS keeps its own path"),
    ("machine-create.txt", 155, 156, "so a guest process reaches the host service at GUEST_PATH"),
    ("machine-create.txt", 6, 7, "Launched as a detached container on every `start`"),
    ("machine-create.txt", 6, 7, "Without this, the image's own ENTRYPOINT/CMD is launched instead"),
    ("machine-create.txt", 167, 168, "Run the workload as this user"),
    ("machine-create.txt", 191, 195, "Only the reference is persisted, never the value"),
    ("machine-run.txt", 135, 136, "Let the guest reach services on the HOST's own loopback"),
    ("machine-run.txt", 135, 136, "off by default"),
    ("machine-start.txt", 13, 13, "Other outbound datagrams except DNS are denied"),
    ("machine-update.txt", 77, 81, "Remove environment variable by key"),
    ("machine-egress-events.txt", 1, 1, "outbound connections the machine's egress policy refused"),
]


def lines(name):
    with open(os.path.join(HELP_DIR, name), encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_is_what_the_installed_smolvm_prints(name):
    try:
        binary = smolvm.find_smolvm()
    except smolvm.SmolvmError as exc:
        pytest.skip("no smolvm here to compare with: %s" % exc)
    proc = subprocess.run([binary] + CAPTURES[name], capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == lines(name), (
        "smolvm's %s changed: re-capture docs/smolvm-1.32/%s and re-check the lines docs/architecture.md "
        "cites" % (" ".join(CAPTURES[name]), name))


@pytest.mark.parametrize("name, first, last, text", CITED)
def test_cited_statement_is_on_the_cited_lines(name, first, last, text):
    assert text in " ".join(lines(name)[first - 1:last]), "%s:%d-%d" % (name, first, last)


def test_every_citation_in_architecture_md_exists():
    with open(ARCH, encoding="utf-8") as handle:
        doc = handle.read()
    cites = re.findall(r"`((?:help|machine-[a-z-]+)\.txt):(\d+)(?:-(\d+))?", doc)
    assert len(cites) >= 15
    for name, first, last in cites:
        assert os.path.isfile(os.path.join(HELP_DIR, name)), name
        count = len(lines(name))
        assert 1 <= int(first) <= int(last or first) <= count, "%s:%s-%s (file has %d lines)" % (
            name, first, last, count)
