# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
import stat
import sys

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("stderr, expected", [
    (b'note: no packed assets found for \'smol-vmm\' (...)\n{"error":{"code":"NOT_FOUND","message":"vm not found: x"}}\n',
     ("NOT_FOUND", "vm not found: x")),
    ('{"error":{"code":"CONFIG_ERROR","message":"a"}}', ("CONFIG_ERROR", "a")),
    (b"WARN something\nError: plain text failure\n", (None, "WARN something\nError: plain text failure")),
    (b"note: no packed assets found for 'smol-vmm'\n", (None, "")),
    (b'{"not":"an error"}\n', (None, '{"not":"an error"}')),
])
def test_parse_error(stderr, expected):
    assert smolvm.parse_error(stderr) == expected


def test_cli_raises_with_smolvm_code_and_prefixes_global_flags():
    calls = []

    def runner(argv, data=None):
        calls.append(argv)
        return 1, b"", b'{"error":{"code":"NOT_FOUND","message":"vm not found: nope"}}'

    cli = smolvm.SmolvmCLI(runner, "/bin/smolvm", state_dir="/tmp/s", system="Linux")
    with pytest.raises(smolvm.SmolvmError) as caught:
        cli.run(smolvm.delete_argv("nope"))
    assert calls == [["/bin/smolvm", "--error-format", "json", "--state-dir", "/tmp/s",
                      "machine", "delete", "--name", "nope", "--force"]]
    assert caught.value.code == "NOT_FOUND"
    assert str(caught.value) == "NOT_FOUND: vm not found: nope (smolvm machine delete)"
    rc, _out, _err = cli.run(["machine", "delete"], check=False)
    assert rc == 1


def test_list_and_get_machine():
    out = b'[{"name":"a","labels":{"io.botbottle.bottle":"x"}},{"name":"b","labels":{}}]'
    cli = smolvm.SmolvmCLI(lambda argv, data=None: (0, out, b""), "smolvm")
    assert [m["name"] for m in cli.list_machines()] == ["a", "b"]
    assert cli.get_machine("b")["name"] == "b"
    assert cli.get_machine("c") is None
    assert [m["name"] for m in smolvm.select_by_labels(cli.list_machines(), {"io.botbottle.bottle": "x"})] == ["a"]
    bad = smolvm.SmolvmCLI(lambda argv, data=None: (0, b"NAME STATE", b""), "smolvm")
    with pytest.raises(smolvm.SmolvmError, match="printed no JSON"):
        bad.list_machines()


# ---------------------------------------------------------------- argv

def test_create_argv_one_function_per_option():
    spec = dict(name="m", image="/a.tar", cpus=2, memory=512, allow_cidrs=["127.0.0.2/32", "10.0.0.0/8"],
                labels={"b": "2", "a": "1"})
    assert smolvm.create_argv(spec, smolfile="/tmp/f.toml") == [
        "machine", "create", "--name", "m", "--image", "/a.tar", "--cpus", "2", "--mem", "512",
        "--allow-cidr", "127.0.0.2/32", "--allow-cidr", "10.0.0.0/8", "--label", "a=1", "--label", "b=2",
        "--smolfile", "/tmp/f.toml"]
    assert smolvm.create_argv(dict(name="m")) == ["machine", "create", "--name", "m"]


def test_other_argv():
    assert smolvm.update_allowlist_argv("m", ["1.2.3.4/32"]) == [
        "machine", "update", "--name", "m", "--reset-allow-list", "--allow-cidr", "1.2.3.4/32"]
    assert smolvm.update_resources_argv("m", memory=64) == ["machine", "update", "--name", "m", "--mem", "64"]
    assert smolvm.stop_argv("m", 0) == ["machine", "stop", "--name", "m", "--timeout", "0"]
    assert smolvm.start_argv("m") == ["machine", "start", "--name", "m"]


# ---------------------------------------------------------------- env

def test_toml_string_escapes_what_toml_needs():
    assert smolvm.toml_string('a"b\\c\n\x7f\x01é🙂') == '"a\\"b\\\\c\\u000A\\u007F\\u0001é🙂"'


def test_env_smolfile_is_private_and_removed():
    with smolvm.env_smolfile({"B": "2", "A": 'x"y'}) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding="utf-8") as handle:
            assert handle.read() == 'env = ["A=x\\"y", "B=2"]\n'
    assert not os.path.exists(path)
    with smolvm.env_smolfile({}) as path:
        assert path is None


def test_smolfile_text_is_valid_toml():
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    env = {"K": 'quote" back\\ nl\n del\x7f uni🙂'}
    assert tomllib.loads(smolvm.smolfile_text(env)) == {"env": ["K=" + env["K"]]}


def test_image_ref_is_sha256_of_archive(tmp_path):
    path = tmp_path / "i.tar"
    path.write_bytes(b"abc")
    assert smolvm.image_ref(str(path)) == "local:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---------------------------------------------------------------- the binary

def _exe(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_find_smolvm_order(tmp_path, monkeypatch):
    explicit = _exe(tmp_path / "mine")
    on_path = _exe(tmp_path / "smolvm")
    assert smolvm.find_smolvm(explicit, which=lambda n: on_path) == explicit
    assert smolvm.find_smolvm(None, which=lambda n: on_path if n == "smolvm" else None) == on_path
    monkeypatch.setattr(smolvm, "wheel_binary", lambda: "/wheel/smol/smol-vmm")
    assert smolvm.find_smolvm(None, which=lambda n: None) == "/wheel/smol/smol-vmm"
    monkeypatch.setattr(smolvm, "wheel_binary", lambda: None)
    with pytest.raises(smolvm.SmolvmError, match="smolvm_path"):
        smolvm.find_smolvm(None, which=lambda n: None)
    with pytest.raises(smolvm.SmolvmError, match="not an executable file"):
        smolvm.find_smolvm(str(tmp_path / "absent"))


def test_wheel_binary_points_into_the_smol_package():
    found = smolvm.wheel_binary()
    if found is None:
        pytest.skip("smolmachines wheel not installed for this Python")
    assert found.endswith(os.path.join("smol", "smol-vmm")) and os.access(found, os.X_OK)


# ---------------------------------------------------------------- boot_supported

def _tree(tmp_path, kvm=True, pvm=False, flags="fpu sse2"):
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys/module/kvm").mkdir(parents=True)
    if kvm:
        (tmp_path / "dev/kvm").write_text("")
    if pvm:
        (tmp_path / "sys/module/kvm_pvm").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nflags\t\t: %s\n" % flags)
    return str(tmp_path)


def test_boot_pvm_without_hardware_flags(tmp_path):
    ok, reason = smolvm.boot_supported(_tree(tmp_path, pvm=True), system="Linux")
    assert not ok and "PVM" in reason


def test_boot_no_kvm(tmp_path):
    ok, reason = smolvm.boot_supported(_tree(tmp_path, kvm=False), system="Linux")
    assert not ok and "no /dev/kvm" in reason


def test_boot_hardware_kvm(tmp_path):
    # a regular file stands in for /dev/kvm: openable read-write
    ok, reason = smolvm.boot_supported(_tree(tmp_path, pvm=True, flags="fpu vmx sse2"), system="Linux")
    assert ok, reason


def test_boot_kvm_not_openable(tmp_path):
    root = _tree(tmp_path, flags="svm")
    os.unlink(os.path.join(root, "dev/kvm"))
    os.mkdir(os.path.join(root, "dev/kvm"))  # a directory cannot be opened O_RDWR
    ok, reason = smolvm.boot_supported(root, system="Linux")
    assert not ok and "cannot open /dev/kvm" in reason


def test_boot_other_systems():
    assert smolvm.boot_supported(system="Darwin", machine="arm64")[0] is True
    ok, reason = smolvm.boot_supported(system="Darwin", machine="x86_64")
    assert not ok and "Apple Silicon" in reason and "x86_64" in reason
    assert smolvm.boot_supported(system="Windows")[0] is False


def test_state_dir_is_passed_on_linux_only():
    calls = []

    def runner(argv, data=None):
        calls.append(argv)
        return 0, b"[]", b""

    for system, expected in (("Linux", ["--state-dir", "/tmp/s"]), ("Darwin", [])):
        cli = smolvm.SmolvmCLI(runner, "/bin/smolvm", state_dir="/tmp/s", system=system)
        cli.list_machines()
        assert calls.pop() == ["/bin/smolvm", "--error-format", "json"] + expected + ["machine", "ls", "--json"]
        assert cli.state_dir_ignored is (system == "Darwin")


def test_secret_values_go_to_the_start_environment_only():
    seen = []

    def runner(argv, data=None, environ=None):
        seen.append((argv, environ))
        return 0, b"", b""

    cli = smolvm.SmolvmCLI(runner, "/bin/smolvm", system="Linux")
    spec = {"name": "m", "secret_env": {"B": "v2", "A": "v1"}, "secret_files": {"F": "/abs/f"}}
    words = smolvm.create_argv(spec)
    assert words == ["machine", "create", "--name", "m", "--secret-env", "A=BOTBOTTLE_SECRET_A",
                     "--secret-env", "B=BOTBOTTLE_SECRET_B", "--secret-file", "F=/abs/f"]
    cli.run(smolvm.start_argv("m"), environ=smolvm.secret_environ(spec["secret_env"]))
    assert seen == [(["/bin/smolvm", "--error-format", "json", "machine", "start", "--name", "m"],
                     {"BOTBOTTLE_SECRET_A": "v1", "BOTBOTTLE_SECRET_B": "v2"})]


def test_create_spec_hash_covers_refs_not_values():
    one = smolvm.create_spec_hash("m", {"secret_env": {"A": "v1"}})
    assert one == smolvm.create_spec_hash("m", {"secret_env": {"A": "rotated"}})
    assert one != smolvm.create_spec_hash("m", {"secret_env": {"B": "v1"}})
    assert one != smolvm.create_spec_hash("n", {"secret_env": {"A": "v1"}})
    assert smolvm.create_spec_hash("m", {}) is None
    sock = {"mount_sockets": [{"host": "/h.sock", "guest": "/g.sock"}]}
    assert smolvm.create_spec_hash("m", sock) not in (None, one)
    # command and user count when set, and leave the digest of a machine made without them as it was.
    assert smolvm.create_spec_hash("m", dict(sock, command=[], user=None)) == smolvm.create_spec_hash("m", sock)
    with_cmd = smolvm.create_spec_hash("m", dict(sock, command=["python3", "relay"]))
    assert with_cmd not in (None, smolvm.create_spec_hash("m", sock))
    assert smolvm.create_spec_hash("m", dict(sock, command=["python3", "relay"], user="root")) != with_cmd


def test_the_smolfile_goes_before_the_workload_command():
    spec = {"name": "m", "command": ["python3", "relay", "--smolfile", "x"]}
    assert smolvm.create_argv(spec, smolfile="/t/s.toml") == [
        "machine", "create", "--name", "m", "--smolfile", "/t/s.toml", "--", "python3", "relay", "--smolfile", "x"]
    assert smolvm.with_smolfile(["machine", "create"], "/t/s.toml") == ["machine", "create", "--smolfile", "/t/s.toml"]
    assert smolvm.with_smolfile(["a", "--", "b"], None) == ["a", "--", "b"]


def test_update_env_argv_and_verbose_env():
    assert smolvm.update_env_argv("m", {"B": "2", "A": "x y"}, ["C"]) == [
        "machine", "update", "--name", "m", "-e", "A=x y", "-e", "B=2", "--remove-env", "C"]
    text = ("NAME STATE\n-----\nm created 4\n  Env: A=x y, z\n  Env: B=k=v\n  Created: now\n"
            "mm created 4\n  Env: A=other\n")
    assert smolvm.parse_verbose_env(text, "m") == {"A": "x y, z", "B": "k=v"}
    assert smolvm.parse_verbose_env(text, "mm") == {"A": "other"}
    assert smolvm.parse_verbose_env(text, "absent") == {}


def test_boot_this_host_matches_its_facts():
    ok, reason = smolvm.boot_supported()
    pvm = os.path.isdir("/sys/module/kvm_pvm")
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        hardware = any(flag in handle.read().split() for flag in ("vmx", "svm"))
    if not os.path.exists("/dev/kvm") or (pvm and not hardware):
        assert not ok, reason
