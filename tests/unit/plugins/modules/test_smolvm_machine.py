# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""smolvm_machine driven from a table of expected smolvm calls (argv, rc, stdout, stderr).

``AnsibleModule.run_command`` is replaced by a script that checks every argv in
order and answers with the table's rc/stdout/stderr; no smolvm binary runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm
from ansible_collections.botbottle.bottle.plugins.modules import smolvm_machine

SMOLFILE = object()  # stands for the temporary Smolfile path in an expected argv
PVM = (False, "this host's KVM is PVM (test)")
KVM = (True, "KVM available (test)")


class Exit(Exception):
    pass


class Fail(Exception):
    pass


class Script:
    """Expected smolvm calls; each step is (words, rc, stdout, stderr)."""

    def __init__(self, binary, steps):
        self.binary = binary
        self.steps = list(steps)
        self.seen = []
        self.environs = []
        self.smolfiles = []

    @property
    def bound(self):
        """A function to put on AnsibleModule as run_command (an instance would not bind)."""
        def run_command(module, argv, **kwargs):
            return self(module, argv, **kwargs)
        return run_command

    def __call__(self, module, argv, data=None, binary_data=False, encoding="utf-8", **kwargs):
        assert binary_data and encoding is None, "smolvm output must be read as bytes"
        prefix = [self.binary, "--error-format", "json"]
        assert argv[:3] == prefix, argv
        words = argv[3:]
        self.seen.append(words)
        self.environs.append(dict(kwargs.get("environ_update") or {}))
        assert self.steps, "unexpected smolvm call: %r" % (words,)
        expected, rc, out, err = self.steps.pop(0)
        assert len(words) == len(expected), "smolvm %r, expected %r" % (words, expected)
        for got, want in zip(words, expected):
            if want is SMOLFILE:
                mode = stat.S_IMODE(os.stat(got).st_mode)
                assert mode == 0o600, "Smolfile mode %o" % mode
                with open(got, encoding="utf-8") as handle:
                    self.smolfiles.append((got, handle.read()))
            else:
                assert got == want, "smolvm %r, expected %r" % (words, expected)
        return rc, out.encode() if isinstance(out, str) else out, err.encode() if isinstance(err, str) else err


@pytest.fixture
def env(tmp_path, monkeypatch):
    binary = tmp_path / "smolvm"
    binary.write_text("#!/bin/sh\nexit 99\n")
    binary.chmod(0o755)
    image = tmp_path / "agent.tar"
    image.write_bytes(b"not really a docker save archive")
    other = tmp_path / "other.tar"
    other.write_bytes(b"another archive")

    def exit_json(self, **kwargs):
        raise Exit(dict(kwargs, _no_log_values=set(self.no_log_values)))

    def fail_json(self, **kwargs):
        raise Fail(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    boot = {"value": KVM}
    monkeypatch.setattr(smolvm, "boot_supported", lambda *a, **k: boot["value"])
    return dict(binary=str(binary), image=str(image), other=str(other), boot=boot, monkeypatch=monkeypatch,
                ref="local:" + hashlib.sha256(image.read_bytes()).hexdigest(),
                other_ref="local:" + hashlib.sha256(other.read_bytes()).hexdigest())


def run_module(env, args, steps, check_mode=False, diff=True):
    script = Script(env["binary"], steps)
    env["monkeypatch"].setattr(basic.AnsibleModule, "run_command",
                               script.bound)
    args = dict(args, smolvm_path=env["binary"], _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises((Exit, Fail)) as caught:
            smolvm_machine.main()
    assert not script.steps, "smolvm calls expected but not made: %r" % (script.steps,)
    return caught.type is Exit, caught.value.args[0], script


def machine(name="m1", state="created", image=None, cpus=2, memory=1024, cidrs=("127.0.0.9/32",), labels=None):
    return {"name": name, "state": state, "image": image, "cpus": cpus, "memory_mib": memory,
            "allowed_cidrs": list(cidrs), "network": bool(cidrs), "labels": dict(labels or {}), "pid": None}


def ls(*machines):
    return (["machine", "ls", "--json"], 0, json.dumps(list(machines)), "")


def ok(words):
    return (words, 0, "done\n", "")


def verbose(env_map, name="m1"):
    """``machine ls --verbose`` text as smolvm 1.32 prints it: one ``Env:`` line per variable."""
    lines = ["NAME STATE   CPUS", "-" * 20, "%s created 2" % name]
    lines += ["  Env: %s=%s" % (k, v) for k, v in env_map.items()]
    lines += ["  Created: 2026-12-07T07:58:48Z", "other created 4", "  Env: PLAIN=from-another-machine", ""]
    return (["machine", "ls", "--verbose"], 0, "\n".join(lines), "")


SECRET = 'se"cret value'
ENV = {"PLAIN": "1", "HTTPS_PROXY": "http://127.0.0.9:8888"}
SECRETS = {"TOKEN": SECRET}
SPEC = smolvm.create_spec_hash("m1", {"secret_env": SECRETS})
BASE = dict(name="m1", allow_cidrs=["127.0.0.9/32"], env=ENV, secret_env=SECRETS, cpus=2, memory=1024,
            labels={"owner": "t"})


def current(env, **over):
    labels = {"owner": "t", smolvm.CREATE_SPEC_LABEL: SPEC}
    spec = dict(image=env["ref"], labels=labels)
    spec.update(over)
    return machine(**spec)


def create_words(env, cidrs=("127.0.0.9/32",), extra_labels=None):
    words = ["machine", "create", "--name", "m1", "--image", env["image"], "--cpus", "2", "--mem", "1024"]
    for cidr in cidrs:
        words += ["--allow-cidr", cidr]
    words += ["--secret-env", "TOKEN=BOTBOTTLE_SECRET_TOKEN"]
    labels = {"owner": "t", smolvm.CREATE_SPEC_LABEL: SPEC}
    labels.update(extra_labels or {})
    for key in sorted(labels):
        words += ["--label", "%s=%s" % (key, labels[key])]
    return words + ["--smolfile", SMOLFILE]


# (id, args over BASE, steps(env), expected changed, expected actions)
CASES = [
    ("create", {}, lambda e: [ls(), ok(create_words(e)), ls(current(e))], True, ["create"]),
    ("unchanged", {}, lambda e: [ls(current(e)), verbose(ENV)], False, []),
    ("unchanged-without-image-or-resources", {"image": None, "cpus": None, "memory": None},
     lambda e: [ls(current(e, image="local:whatever", cpus=4, memory=8192)), verbose(ENV)], False, []),
    ("allowlist-updated-in-place", {"name": "m1", "allow_cidrs": ["127.0.0.10/32", "127.0.0.9"]},
     lambda e: [ls(current(e)), verbose(ENV),
                ok(["machine", "update", "--name", "m1", "--reset-allow-list",
                    "--allow-cidr", "127.0.0.9/32", "--allow-cidr", "127.0.0.10/32"]),
                ls(current(e, cidrs=["127.0.0.10/32", "127.0.0.9/32"]))], True, ["update allow list"]),
    ("allowlist-emptied-recreates", {"allow_cidrs": []},
     lambda e: [ls(current(e)), ok(["machine", "delete", "--name", "m1", "--force"]),
                ok(create_words(e, cidrs=())), ls(current(e, cidrs=()))], True, ["delete", "create"]),
    ("env-changed-updates-in-place", {"env": {"PLAIN": "2", "NEW": "x"}},
     lambda e: [ls(current(e)), verbose(ENV),
                ok(["machine", "update", "--name", "m1", "-e", "NEW=x", "-e", "PLAIN=2",
                    "--remove-env", "HTTPS_PROXY"]),
                ls(current(e))], True, ["update env"]),
    ("env-changed-on-running-machine-stop-update-start", {"env": {"PLAIN": "2", "HTTPS_PROXY": ENV["HTTPS_PROXY"]}},
     lambda e: [ls(current(e, state="running")), verbose(ENV),
                ok(["machine", "stop", "--name", "m1"]),
                ok(["machine", "update", "--name", "m1", "-e", "PLAIN=2"]),
                ok(["machine", "start", "--name", "m1"]),
                ls(current(e, state="running"))], True, ["stop", "update env", "start"]),
    ("secret-refs-changed-recreates", {"secret_env": {"OTHER": "v"}},
     lambda e: [ls(current(e)), ok(["machine", "delete", "--name", "m1", "--force"]),
                (create_words(e)[:-8] + ["--secret-env", "OTHER=BOTBOTTLE_SECRET_OTHER",
                                         "--label", "%s=%s" % (smolvm.CREATE_SPEC_LABEL, smolvm.create_spec_hash(
                                             "m1", {"secret_env": {"OTHER": "v"}})),
                                         "--label", "owner=t", "--smolfile", SMOLFILE], 0, "", ""),
                ls(current(e))], True, ["delete", "create"]),
    ("old-env-hash-label-is-ignored", {},
     lambda e: [ls(current(e, labels={"owner": "t", smolvm.CREATE_SPEC_LABEL: SPEC,
                                      smolvm.ENV_HASH_LABEL: "sha256:old"})), verbose(ENV)], False, []),
    ("image-changed-recreates", {},
     lambda e: [ls(current(e, image=e["other_ref"])), ok(["machine", "delete", "--name", "m1", "--force"]),
                ok(create_words(e)), ls(current(e))], True, ["delete", "create"]),
    ("labels-changed-recreates", {"labels": {"owner": "t", "team": "x"}},
     lambda e: [ls(current(e)), ok(["machine", "delete", "--name", "m1", "--force"]),
                ok(create_words(e, extra_labels={"team": "x"})), ls(current(e))], True, ["delete", "create"]),
    ("resources-updated-when-stopped", {"cpus": 1, "memory": 512},
     lambda e: [ls(current(e, state="stopped")), verbose(ENV),
                ok(["machine", "update", "--name", "m1", "--cpus", "1", "--mem", "512"]),
                ls(current(e, state="stopped", cpus=1, memory=512))], True, ["update resources"]),
    ("resources-on-running-machine-restart-it", {"cpus": 1, "stop_timeout": 5},
     lambda e: [ls(current(e, state="running")), verbose(ENV),
                ok(["machine", "stop", "--name", "m1", "--timeout", "5"]),
                ok(["machine", "update", "--name", "m1", "--cpus", "1"]),
                ok(["machine", "start", "--name", "m1"]),
                ls(current(e, state="running", cpus=1))], True, ["stop", "update resources", "start"]),
    ("started-starts", {"state": "started"},
     lambda e: [ls(current(e)), verbose(ENV), ok(["machine", "start", "--name", "m1"]),
                ls(current(e, state="running"))], True, ["start"]),
    ("started-already-running", {"state": "started"},
     lambda e: [ls(current(e, state="running")), verbose(ENV)], False, []),
    ("stopped-stops", {"state": "stopped"},
     lambda e: [ls(current(e, state="running")), verbose(ENV), ok(["machine", "stop", "--name", "m1"]),
                ls(current(e, state="stopped"))], True, ["stop"]),
    ("stopped-never-started", {"state": "stopped"}, lambda e: [ls(current(e)), verbose(ENV)], False, []),
    ("absent-deletes", {"state": "absent"},
     lambda e: [ls(current(e, state="running")), ok(["machine", "delete", "--name", "m1", "--force"])],
     True, ["delete"]),
    ("absent-already", {"state": "absent"}, lambda e: [ls(machine(name="someone-else"))], False, []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_table(env, case):
    _id, over, steps, changed, actions = case
    args = dict(BASE, image=env["image"])
    args.update(over)
    args = {k: v for k, v in args.items() if v is not None}
    ok_, result, script = run_module(env, args, steps(env))
    assert ok_, result
    assert result["changed"] is changed
    assert result["actions"] == actions
    assert result["name"] == "m1"
    for words, environ in zip(script.seen, script.environs):
        assert not any(SECRET in word for word in words), "secret value on argv: %r" % (words,)
        if words[:2] == ["machine", "start"]:
            assert environ == {"BOTBOTTLE_SECRET_TOKEN": SECRET}
        else:
            assert SECRET not in environ.values(), "secret handed to %r" % (words,)


def test_create_writes_env_to_a_private_smolfile_that_is_removed(env):
    ok_, result, script = run_module(env, dict(BASE, image=env["image"]),
                                     [ls(), ok(create_words(env)), ls(current(env))])
    assert ok_ and result["changed"]
    (path, text), = script.smolfiles
    assert text == 'env = ["HTTPS_PROXY=http://127.0.0.9:8888", "PLAIN=1"]\n'
    assert SECRET not in text
    assert not os.path.exists(path)
    assert result["machine"]["labels"][smolvm.CREATE_SPEC_LABEL] == SPEC
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["allowed_cidrs"] == ["127.0.0.9/32"]


def test_check_mode_creates_nothing_and_predicts(env):
    ok_, result, script = run_module(env, dict(BASE, image=env["image"], state="started"), [ls()], check_mode=True)
    assert ok_ and result["changed"] and result["actions"] == ["create", "start"]
    assert script.seen == [["machine", "ls", "--json"]]
    assert result["machine"]["state"] == "running"
    assert result["machine"]["image"] == env["ref"]
    assert result["diff"]["after"]["labels"] == {"owner": "t", smolvm.CREATE_SPEC_LABEL: SPEC}


def test_check_mode_update_reports_diff(env):
    ok_, result, script = run_module(env, dict(BASE, image=env["image"], allow_cidrs=["127.0.0.11/32"]),
                                     [ls(current(env)), verbose(ENV)], check_mode=True)
    assert ok_ and result["changed"] and result["actions"] == ["update allow list"]
    assert result["diff"]["before"]["allowed_cidrs"] == ["127.0.0.9/32"]
    assert result["diff"]["after"]["allowed_cidrs"] == ["127.0.0.11/32"]


def test_started_on_unbootable_host_fails_before_any_change(env):
    env["boot"]["value"] = PVM
    ok_, result, script = run_module(env, dict(BASE, image=env["image"], state="started"), [ls()])
    assert not ok_
    assert "PVM" in result["msg"] and "m1" in result["msg"]
    assert result["boot"] == {"supported": False, "reason": PVM[1]}
    assert script.seen == [["machine", "ls", "--json"]]


def test_present_on_unbootable_host_still_creates(env):
    env["boot"]["value"] = PVM
    ok_, result, _script = run_module(env, dict(BASE, image=env["image"]),
                                      [ls(), ok(create_words(env)), ls(current(env))])
    assert ok_ and result["actions"] == ["create"]
    assert result["boot"]["supported"] is False


def test_smolvm_error_carries_code_and_message(env):
    err = ("note: no packed assets found for 'smol-vmm'\n"
           '{"error":{"code":"CONFIG_ERROR","message":"config operation failed: --image: cannot read archive"}}\n')
    ok_, result, _script = run_module(env, dict(BASE, image=env["image"]),
                                      [ls(), (create_words(env), 1, "", err)])
    assert not ok_
    assert "CONFIG_ERROR: config operation failed: --image: cannot read archive" in result["msg"]
    assert result["error_code"] == "CONFIG_ERROR"
    assert result["actions"] == ["create"]


def test_slug_names_and_labels_the_machine(env):
    name = "bb-demo-agent"
    labels = {"io.botbottle.bottle": "demo", "io.botbottle.agent": "demo",
              "io.botbottle.component": "agent", "io.botbottle.backend": "smolmachines"}
    words = ["machine", "create", "--name", name, "--allow-cidr", "127.0.0.9/32"]
    for key in sorted(labels):
        words += ["--label", "%s=%s" % (key, labels[key])]
    ok_, result, _script = run_module(
        env, dict(slug="demo", agent="demo", allow_cidrs=["127.0.0.9/32"]),
        [ls(), ok(words), ls(machine(name=name, labels=labels))])
    assert ok_ and result["name"] == name and result["actions"] == ["create"]


@pytest.mark.parametrize("over, needle", [
    ({"allow_cidrs": ["127.0.0.300/32"]}, "allow_cidrs: '127.0.0.300/32' is not a CIDR"),
    ({"env": {"1BAD": "x"}}, "env: key '1BAD'"),
    ({"labels": {smolvm.ENV_HASH_LABEL: "x"}}, "reserved"),
    ({"labels": {smolvm.CREATE_SPEC_LABEL: "x"}}, "reserved"),
    ({"allow_cidrs": ["0.0.0.0/0"]}, "allow_cidrs: 0.0.0.0/0 is every address"),
    ({"env": {"A": "two\nlines"}}, "env: the value of A contains a line break"),
    ({"secret_env": {"1X": "v"}}, "secret_env: key '1X'"),
    ({"secret_files": {"F": "relative/path"}}, "secret_files: the path of F"),
    ({"env": {"TOKEN": "x"}}, "TOKEN is in env and in secret_env"),
    ({"mount_sockets": [{"host": "/a.sock", "guest": "rel"}]}, "mount_sockets: guest path 'rel'"),
    ({"labels": {"a=b": "x"}}, "labels: key 'a=b'"),
    ({"image": "/nonexistent/agent.tar"}, "docker save IMAGE -o /nonexistent/agent.tar"),
    ({"cpus": 0}, "cpus must be at least 1"),
])
def test_bad_input_names_the_key_and_creates_nothing(env, over, needle):
    args = dict(BASE, image=env["image"])
    args.update(over)
    steps = [] if "cpus" in over else [ls()]
    ok_, result, script = run_module(env, args, steps)
    assert not ok_
    assert needle in result["msg"]
    assert all(words[:2] != ["machine", "create"] for words in script.seen)


def test_bad_slug_and_missing_agent(env):
    ok_, result, _script = run_module(env, dict(slug="Bad_Slug"), [])
    assert not ok_ and result["msg"].startswith("slug: bottle slug 'Bad_Slug' is invalid")
    ok_, result, _script = run_module(env, dict(slug="demo"), [ls()])
    assert not ok_ and "agent is required with slug" in result["msg"]


def test_bad_smolvm_path(env, tmp_path):
    script_args = dict(BASE)
    script = Script(env["binary"], [])
    env["monkeypatch"].setattr(basic.AnsibleModule, "run_command",
                               script.bound)
    with patch_module_args(dict(script_args, smolvm_path=str(tmp_path / "missing"))):
        with pytest.raises(Fail) as caught:
            smolvm_machine.main()
    assert "smolvm_path" in caught.value.args[0]["msg"]


def test_secret_env_values_are_no_log_and_env_values_are_not(env):
    # env holds no secret (its docs; bottle_agent's env is the same): masking it would star out a short value
    # such as an agent name wherever it appears in a launch's messages.
    ok_, result, _script = run_module(env, dict(BASE, image=env["image"]), [ls(current(env)), verbose(ENV)])
    assert ok_ and not result["changed"]
    assert SECRET in result["_no_log_values"]
    assert not {"1", "http://127.0.0.9:8888"} & result["_no_log_values"]


@pytest.mark.parametrize("cidrs, needle", [
    (["127.77.0.17/32", "127.77.0.18/32"], "a bottle's VM reaches one address"),
    (["127.77.0.0/24"], "127.77.0.0/24 is not a single address"),
    (["10.0.0.1/32"], "is not a loopback address"),
    (["127.0.0.1/32"], "127.0.0.1 is shared"),
    (["::1/128"], "is not a single address"),
    (["0.0.0.0/0"], "is every address"),
])
def test_a_bottle_is_refused_any_cidr_but_one_loopback_32(env, cidrs, needle):
    ok_, result, script = run_module(env, dict(slug="demo", agent="demo", allow_cidrs=cidrs), [ls()])
    assert not ok_ and needle in result["msg"], result
    assert all(words[:2] != ["machine", "create"] for words in script.seen)


def test_bottle_argv_network_secrets_and_sockets(env, tmp_path):
    """The exact create argv of a bottle: no --net/--dns/--allow-host, secrets by reference, sockets, the
    guest relay as workload (after ``--``, the Smolfile before it)."""
    name = "bb-demo-agent"
    sockets = [{"host": "/s/proxy.sock", "guest": "/run/bottle/proxy.sock"}]
    secret_file = str(tmp_path / "gh")
    args = dict(slug="demo", agent="demo", allow_cidrs=[], mount_sockets=sockets,
                env={"HTTPS_PROXY": "http://127.0.0.1:8888"}, secret_env={"GH_TOKEN": SECRET},
                secret_files={"KEY": secret_file}, state="started", user="root",
                command=["python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy"])
    labels = {"io.botbottle.agent": "demo", "io.botbottle.backend": "smolmachines", "io.botbottle.bottle": "demo",
              "io.botbottle.component": "agent",
              smolvm.CREATE_SPEC_LABEL: smolvm.create_spec_hash(name, dict(
                  secret_env={"GH_TOKEN": 1}, secret_files={"KEY": secret_file}, mount_sockets=sockets,
                  command=args["command"], user="root"))}
    words = ["machine", "create", "--name", name, "--mount-socket", "/s/proxy.sock:/run/bottle/proxy.sock",
             "--secret-env", "GH_TOKEN=BOTBOTTLE_SECRET_GH_TOKEN", "--secret-file", "KEY=" + secret_file,
             "--user", "root"]
    for key in sorted(labels):
        words += ["--label", "%s=%s" % (key, labels[key])]
    words += ["--smolfile", SMOLFILE, "--", "python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy"]
    ok_, result, script = run_module(env, args, [
        ls(), ok(words), ok(["machine", "start", "--name", name]),
        ls(machine(name=name, state="running", cidrs=(), labels=labels))])
    assert ok_, result
    assert result["actions"] == ["create", "start"]
    assert script.environs[2] == {"BOTBOTTLE_SECRET_GH_TOKEN": SECRET}
    assert script.smolfiles[0][1] == 'env = ["HTTPS_PROXY=http://127.0.0.1:8888"]\n'
    for words in script.seen:
        assert not {"--net", "--dns", "--allow-host", "--allow-host-loopback"} & set(words)
