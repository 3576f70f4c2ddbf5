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
                env={"BOTTLE_TOKEN": "in-the-smolfile \"quoted\"", "HTTPS_PROXY": "http://127.0.0.61:8888"},
                secret_env={"BOTTLE_SECRET": "sekrit-by-reference-61"},
                cpus=1, memory=512, labels={"io.botbottle.bottle": PREFIX})

    first = module(world, spec)
    assert first["_rc"] == 0 and first["changed"] and first["actions"] == ["create"], first
    have = listed(world, name)
    assert have["allowed_cidrs"] == ["127.0.0.61/32"] and have["network"] is True
    assert have["cpus"] == 1 and have["memory_mib"] == 512
    assert have["image"] == smolvm.image_ref(world["image"])
    assert have["labels"]["io.botbottle.bottle"] == PREFIX
    assert env_of(world, name) == spec["env"]
    # env holds no secret (shown, as bottle_agent's is); a secret_env value is never in the result.
    assert "sekrit-by-reference-61" not in json.dumps(first), "a secret_env value leaked into the result"

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

    created_at = listed(world, name)["created_at"]
    rotated = module(world, spec, env={"BOTTLE_TOKEN": "rotated"})
    assert rotated["actions"] == ["update env"] and rotated["env_changed"] == ["BOTTLE_TOKEN", "HTTPS_PROXY"], rotated
    assert env_of(world, name) == {"BOTTLE_TOKEN": "rotated"}
    assert listed(world, name)["created_at"] == created_at, "an env change must keep the machine (and its work)"
    spec["env"] = {"BOTTLE_TOKEN": "rotated"}
    assert not module(world, spec)["changed"]

    stopped = module(world, spec, state="stopped")
    assert stopped["_rc"] == 0 and not stopped["changed"]

    gone = module(world, name=name, state="absent")
    assert gone["changed"] and gone["actions"] == ["delete"]
    assert listed(world, name) is None
    again = module(world, name=name, state="absent")
    assert again["_rc"] == 0 and not again["changed"]


def record(world, name):
    """smolvm's own record of ``name`` (its database, opened read-only): what it persisted."""
    import sqlite3
    path = os.path.join(world["state_dir"], ".local", "share", "smolvm", "server", "smolvm.db")
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        row = conn.execute("select data from vms where name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        row = conn.execute("select * from vms where name = ?", (name,)).fetchone()[-1:]
    finally:
        conn.close()
    return json.loads(row[0])


def files_holding(root, needle):
    """Files under ``root`` (the database and its -wal included) whose bytes contain ``needle``."""
    found = []
    for here, _dirs, files in os.walk(root):
        for entry in files:
            path = os.path.join(here, entry)
            try:
                with open(path, "rb") as handle:
                    if needle.encode() in handle.read():
                        found.append(path)
            except OSError:
                continue
    return found


def test_bottle_vm_secrets_by_reference_no_network_and_sockets(world, tmp_path):
    """A bottle's VM as the design creates it: no network, the bundle through mounted sockets, secrets
    by reference. smolvm's state holds the references and no secret value (database and -wal included)."""
    slug = PREFIX[2:] + "-sec"
    secret_value = "bbsec-" + uuid.uuid4().hex
    file_value = "bbfile-" + uuid.uuid4().hex
    secret_file = tmp_path / "token"
    secret_file.write_text(file_value)
    secret_file.chmod(0o600)
    sockets = [{"host": str(tmp_path / name), "guest": "/run/bottle/%s" % name}
               for name in ("proxy.sock", "git-gate.sock", "supervise.sock")]
    command = ["python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy", "git-gate", "supervise"]
    spec = dict(slug=slug, agent="probe", image=world["image"], env={"HTTPS_PROXY": "http://127.0.0.1:8888"},
                secret_env={"GH_TOKEN": secret_value}, secret_files={"API_KEY": str(secret_file)},
                mount_sockets=sockets, command=command, user="root")
    created = module(world, spec)
    assert created["_rc"] == 0 and created["actions"] == ["create"], created
    name = created["name"]
    have = listed(world, name)
    assert have["network"] is False and not have.get("allowed_cidrs")
    assert have["cmd"] == command, "the workload smolvm recorded: %s" % have.get("cmd")
    rec = record(world, name)
    assert rec["network"] is False and rec["allowed_cidrs"] is None
    assert rec["secret_refs"] == {"GH_TOKEN": {"from_env": "BOTBOTTLE_SECRET_GH_TOKEN"},
                                  "API_KEY": {"from_file": str(secret_file)}}
    assert sorted((s["host_path"], s["guest_path"], s["direction"]) for s in rec["published_sockets"]) == \
        sorted((s["host"], s["guest"], "mount") for s in sockets)
    assert dict(rec["env"]) == {"HTTPS_PROXY": "http://127.0.0.1:8888"}
    for value in (secret_value, file_value):
        assert files_holding(world["state_dir"], value) == [], "a secret value persisted in smolvm's state"
        assert value not in json.dumps(created)
    assert not module(world, spec)["changed"]
    assert not module(world, spec, secret_env={"GH_TOKEN": "rotated"})["changed"], \
        "a rotated value is read at the next start: nothing to recreate"
    moved = module(world, spec, secret_env={"OTHER": secret_value})
    assert moved["actions"] == ["delete", "create"], moved
    assert module(world, spec, secret_env={"OTHER": secret_value}, command=command[:-1])["actions"] == \
        ["delete", "create"], "a changed workload recreates the machine"
    assert files_holding(world["state_dir"], secret_value) == []
    assert module(world, slug=slug, state="absent")["changed"]


@pytest.mark.parametrize("cidrs", [["0.0.0.0/0"], ["127.0.0.1/32"], ["127.77.0.0/24"],
                                   ["127.77.0.70/32", "127.77.0.71/32"]])
def test_bottle_refuses_cidrs_other_than_one_loopback_32(world, cidrs):
    slug = PREFIX[2:] + "-cidr"
    result = module(world, slug=slug, agent="probe", allow_cidrs=cidrs)
    assert result["failed"] and "allow_cidrs" in result["msg"], result
    assert listed(world, "bb-%s-agent" % slug) is None


def test_smolvm_refuses_an_allow_list_on_tsi(world):
    """smolvm 1.32 enforces --allow-cidr on virtio-net only, and says so (docs/architecture.md)."""
    with pytest.raises(smolvm.SmolvmError) as caught:
        world["cli"].run(["machine", "create", "--name", PREFIX + "-tsi", "--net-backend", "tsi",
                          "--allow-cidr", "127.77.0.17/32"])
    assert caught.value.code == "CONFIG_ERROR"
    assert "requires the virtio-net backend; TSI does not enforce it" in caught.value.message
    assert listed(world, PREFIX + "-tsi") is None


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
