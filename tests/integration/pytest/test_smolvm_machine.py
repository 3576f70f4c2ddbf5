# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smolvm_machine against the real smolvm CLI (the smolmachines wheel's binary).

Run: .venv/bin/pytest -p no:cacheprovider tests/integration/pytest/test_smolvm_machine.py -ra

The module runs as Ansible runs it (a process given its JSON args); every
check reads smolvm's own state back. All smolvm state lives in a private
--state-dir, so nothing outside it is touched. Booting needs hardware KVM:
where boot_supported() says no, the boot test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm
from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm_transport import SmolvmTransport

pytestmark = pytest.mark.smolvm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
MODULE = "ansible_collections.botbottle.bottle.plugins.modules.smolvm_machine"
PREFIX = "bbsm6it-%s" % uuid.uuid4().hex[:6]
IMAGE_REF = "debian:trixie-slim"


@pytest.fixture(scope="module")
def world():
    binary = smolvm.find_smolvm()
    state_dir = tempfile.mkdtemp(prefix=PREFIX + "-state-")
    image = os.path.join(tempfile.gettempdir(), PREFIX + ".tar")
    saved = subprocess.run(["docker", "save", IMAGE_REF, "-o", image], capture_output=True, text=True, check=False)
    assert saved.returncode == 0, "docker save %s failed: %s" % (IMAGE_REF, saved.stderr)
    cli = smolvm.SmolvmCLI(smolvm.subprocess_runner, binary, state_dir=state_dir)
    try:
        yield dict(binary=binary, state_dir=state_dir, image=image, cli=cli)
    finally:
        for machine in cli.list_machines():
            if machine["name"].startswith(PREFIX):
                cli.run(smolvm.delete_argv(machine["name"]), check=False)
        shutil.rmtree(state_dir, ignore_errors=True)
        os.unlink(image)


def module(world, spec=None, check_mode=False, **over):
    """Run smolvm_machine with ``spec`` updated by ``over``, as Ansible does; return its result dict."""
    args = dict(spec or {})
    args.update(over)
    args.setdefault("state_dir", world["state_dir"])
    args.update(_ansible_check_mode=check_mode, _ansible_diff=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        proc = subprocess.run([sys.executable, "-m", MODULE, handle.name], capture_output=True, text=True,
                              env=env, check=False, timeout=120)
    finally:
        os.unlink(handle.name)
    result = json.loads(proc.stdout)
    result["_rc"] = proc.returncode
    return result


def listed(world, name):
    return world["cli"].get_machine(name)


def env_of(world, name):
    """The env smolvm recorded for ``name`` (only ``ls -v`` shows it)."""
    _rc, out, _err = world["cli"].run(["machine", "ls", "-v"])
    env, current = {}, None
    for line in out.decode().splitlines():
        if line and not line.startswith(" ") and not line.startswith("-"):
            current = line.split()[0]
        elif current == name and line.strip().startswith("Env: "):
            key, _sep, value = line.strip()[len("Env: "):].partition("=")
            env[key] = value
    return env


def test_lifecycle(world):
    name = PREFIX + "-m1"
    spec = dict(name=name, image=world["image"], allow_cidrs=["127.0.0.61/32"],
                env={"BOTTLE_TOKEN": "not-on-argv \"quoted\"", "HTTPS_PROXY": "http://127.0.0.61:8888"},
                cpus=1, memory=512, labels={"io.botbottle.bottle": PREFIX})

    first = module(world, spec)
    assert first["_rc"] == 0 and first["changed"] and first["actions"] == ["create"], first
    have = listed(world, name)
    assert have["allowed_cidrs"] == ["127.0.0.61/32"] and have["network"] is True
    assert have["cpus"] == 1 and have["memory_mib"] == 512
    assert have["image"] == smolvm.image_ref(world["image"])
    assert have["labels"]["io.botbottle.bottle"] == PREFIX
    assert env_of(world, name) == spec["env"]
    assert "not-on-argv" not in json.dumps(first), "env value leaked into the result"

    again = module(world, spec)
    assert again["_rc"] == 0 and not again["changed"] and again["actions"] == [], again

    checked = module(world, spec, check_mode=True, allow_cidrs=["127.0.0.62/32"])
    assert checked["changed"] and checked["actions"] == ["update allow list"]
    assert checked["diff"]["after"]["allowed_cidrs"] == ["127.0.0.62/32"]
    assert listed(world, name)["allowed_cidrs"] == ["127.0.0.61/32"], "check mode changed the machine"

    moved = module(world, spec, allow_cidrs=["127.0.0.62/32", "127.0.0.63/32"])
    assert moved["changed"] and moved["actions"] == ["update allow list"], moved
    assert sorted(listed(world, name)["allowed_cidrs"]) == ["127.0.0.62/32", "127.0.0.63/32"]
    spec["allow_cidrs"] = ["127.0.0.63/32", "127.0.0.62/32"]
    assert not module(world, spec)["changed"]

    resized = module(world, spec, cpus=2)
    assert resized["actions"] == ["update resources"] and listed(world, name)["cpus"] == 2
    spec["cpus"] = 2

    rotated = module(world, spec, env={"BOTTLE_TOKEN": "rotated"})
    assert rotated["actions"] == ["delete", "create"] and rotated["recreate_reasons"] == ["env"], rotated
    assert env_of(world, name) == {"BOTTLE_TOKEN": "rotated"}
    spec["env"] = {"BOTTLE_TOKEN": "rotated"}

    stopped = module(world, spec, state="stopped")
    assert stopped["_rc"] == 0 and not stopped["changed"]

    gone = module(world, name=name, state="absent")
    assert gone["changed"] and gone["actions"] == ["delete"]
    assert listed(world, name) is None
    again = module(world, name=name, state="absent")
    assert again["_rc"] == 0 and not again["changed"]


def test_slug_machine_is_found_by_bottle_labels(world):
    slug = PREFIX[2:]  # bb-<slug>-agent starts with PREFIX, so the fixture cleans it up
    created = module(world, slug=slug, agent="probe", allow_cidrs=["127.0.0.64/32"])
    assert created["changed"] and created["name"] == "bb-%s-agent" % slug
    found = smolvm.select_by_labels(world["cli"].list_machines(), {"io.botbottle.bottle": slug})
    assert [m["name"] for m in found] == ["bb-%s-agent" % slug]
    assert found[0]["labels"]["io.botbottle.backend"] == "smolmachines"
    assert module(world, slug=slug, state="absent")["changed"]


def test_smolvm_error_is_reported_with_its_code(world):
    # smolvm itself refuses less than 64 MiB; the module passes its message on
    result = module(world, name=PREFIX + "-bad", image=world["image"], memory=1)
    assert result["_rc"] != 0 and result["failed"]
    assert result["error_code"] == "CONFIG_ERROR", result
    assert "memory must be at least 64 MiB" in result["msg"] and PREFIX + "-bad" in result["msg"]
    assert listed(world, PREFIX + "-bad") is None


def test_started_fails_fast_where_guests_cannot_boot(world):
    ok, reason = smolvm.boot_supported()
    if ok:
        pytest.skip("this host can boot guests (%s): test_boot_exec_and_transport covers start" % reason)
    name = PREFIX + "-nb"
    began = time.monotonic()
    result = module(world, name=name, image=world["image"], allow_cidrs=["127.0.0.65/32"], state="started")
    assert time.monotonic() - began < 10
    assert result["failed"] and reason in result["msg"] and result["boot"]["supported"] is False
    assert listed(world, name) is None, "a launch that cannot finish must leave nothing behind"


def test_boot_exec_and_transport(world):
    ok, reason = smolvm.boot_supported()
    if not ok:
        print("skipping the boot test: " + reason)
        pytest.skip("guests cannot boot on this host: " + reason)
    name = PREFIX + "-boot"
    started = module(world, name=name, image=world["image"], env={"BOTTLE_PROBE": "42"}, state="started")
    assert started["_rc"] == 0 and started["machine"]["state"] == "running", started
    transport = SmolvmTransport(world["cli"], name)
    rc, out, _err = transport.run(["sh", "-c", "echo $BOTTLE_PROBE"])
    assert rc == 0 and out.strip() == b"42"
    transport.write_file("/tmp/bottle/probe.txt", b"round trip\n", mode=0o640)
    assert transport.read_file("/tmp/bottle/probe.txt") == b"round trip\n"
    assert transport.read_file("/tmp/bottle/absent") is None
    rc, out, _err = transport.run(["cat"], data=b"via stdin")
    assert rc == 0 and out == b"via stdin"
    assert not module(world, name=name, image=world["image"], env={"BOTTLE_PROBE": "42"}, state="started")["changed"]
    assert module(world, name=name, state="stopped")["actions"] == ["stop"]
    assert module(world, name=name, state="absent")["changed"]
