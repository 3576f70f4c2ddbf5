# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle-init writes as root into directories a daemon's uid can write: a symlink planted at any path it
writes (a temporary ``.new`` file, a destination, a directory it hands over) is refused, naming the
path, and what the symlink points at is left as it was.

Run as the current user (the daemons are all this user here); the same with the real daemon uids, as root in
the bundle image, is tests/integration/bottle_init_symlinks.sh.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat

import pytest

ME = pwd.getpwuid(os.getuid())
DAEMONS = ["egress", "pipelock", "git-gate", "supervise"]


def make_tree(bottle_init, base, monkeypatch, daemons=tuple(DAEMONS)):
    """A bundle's directories under ``base``, staged once for ``daemons`` (as a running bundle has them)."""
    paths = {k: base / k for k in ("etc", "private", "identities", "run", "ca", "store", "audit")}
    for path in paths.values():
        path.mkdir(parents=True)
    monkeypatch.setattr(bottle_init, "CONFIG_SRC", str(paths["etc"]))
    monkeypatch.setattr(bottle_init, "PRIVATE_SRC", str(paths["private"]))
    monkeypatch.setattr(bottle_init, "IDENTITY_SRC", str(paths["identities"]))
    monkeypatch.setattr(bottle_init, "RUN_DIR", str(paths["run"]))
    monkeypatch.setattr(bottle_init, "CA_DIR", str(paths["ca"]))
    monkeypatch.setattr(bottle_init, "SUPERVISE_STORE", str(paths["store"]))
    monkeypatch.setattr(bottle_init, "AUDIT_DIR", str(paths["audit"]))
    monkeypatch.setattr(bottle_init, "EGRESS_CONFDIR", str(paths["run"] / "egress" / "mitmproxy"))
    monkeypatch.setattr(bottle_init, "EGRESS_CA", str(paths["run"] / "egress" / "mitmproxy" / "mitmproxy-ca-cert.pem"))
    monkeypatch.setattr(bottle_init, "SYSTEM_CAS", str(base / "system.pem"))
    monkeypatch.setattr(bottle_init, "daemon_user", lambda name: ME.pw_name)
    (base / "system.pem").write_text("SYSTEM\n")
    (paths["etc"] / "egress.json").write_text('{"routes": []}\n')
    (paths["private"] / "egress").mkdir()
    (paths["private"] / "egress" / "tokens.json").write_text('{"T": "secret"}\n')
    (paths["identities"] / "app").write_text("PRIVATE KEY\n")
    (paths["ca"] / "bottle-ca.pem").write_text("CERT\n")
    (paths["ca"] / "bottle-ca.key").write_text("KEY\n")
    bottle_init.stage_config(daemons)
    return paths


@pytest.fixture
def tree(bottle_init, tmp_path, monkeypatch):
    return make_tree(bottle_init, tmp_path, monkeypatch)


@pytest.fixture
def victim(tmp_path):
    """What a taken-over daemon wants root to write or chown: a file and a directory that are not its."""
    file = tmp_path / "victim"
    file.write_text("VICTIM\n")
    file.chmod(0o640)
    folder = tmp_path / "victim-dir"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "inside").write_text("INSIDE\n")

    def state():
        return (file.read_text(), stat.S_IMODE(file.stat().st_mode), file.stat().st_uid,
                sorted(os.listdir(folder)), stat.S_IMODE(folder.stat().st_mode), folder.stat().st_uid)
    before = state()
    return file, folder, lambda: state() == before


def plant(path, target):
    """Replace ``path`` (a file or a directory, or nothing) by a symlink to ``target``."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(target)


# Every path bottle-init writes or hands over in a daemon's directory, and whether it is a directory.
PLANTED = [
    ("run/egress/egress.json", False),
    ("run/egress/egress.json.new", False),
    ("run/egress/tokens.json", False),
    ("run/egress/tokens.json.new", False),
    ("run/egress/trust.pem", False),
    ("run/egress/trust.pem.new", False),
    ("run/egress/mitmproxy", True),
    ("run/egress/mitmproxy/mitmproxy-ca.pem", False),
    ("run/egress/mitmproxy/mitmproxy-ca.pem.new", False),
    ("run/egress/mitmproxy/mitmproxy-ca-cert.pem", False),
    ("run/egress/mitmproxy/mitmproxy-ca-cert.pem.new", False),
    ("run/pipelock/egress.json.new", False),
    ("run/pipelock/bottle-ca.key", False),
    ("run/pipelock/bottle-ca.key.new", False),
    ("run/pipelock/bottle-ca.pem", False),
    ("run/git-gate/identities", True),
    ("run/git-gate/identities/app", False),
    ("run/git-gate/identities/app.new", False),
    ("run/supervise/egress.json", False),
    ("run/supervise", True),
    ("store/proposals", True),
]


@pytest.mark.parametrize("relative,is_dir", PLANTED, ids=[entry[0] for entry in PLANTED])
def test_a_planted_symlink_is_refused_by_name_and_its_target_untouched(
        bottle_init, tree, tmp_path, victim, relative, is_dir):
    file, folder, untouched = victim
    planted = tmp_path / relative
    plant(planted, folder if is_dir else file)
    # egress gets the bottle CA as its mitmproxy CA only without pipelock in front of it.
    daemons = [d for d in DAEMONS if d != "pipelock" or "/mitmproxy/" not in relative]
    (tree["etc"] / "egress.json").write_text('{"routes": [{"host": "new"}]}\n')  # what a reload brings
    with pytest.raises(RuntimeError) as err:
        bottle_init.stage_config(daemons)
    message = str(err.value)
    assert str(planted) + " is a symlink" in message
    assert "not writing through it as root" in message
    assert untouched(), "the symlink's target was written, chowned or chmodded"
    assert planted.is_symlink(), "the planted link is left for the operator to see"
    daemon = relative.split("/")[1] if relative.startswith("run/") else "supervise"
    assert message.startswith("staging failed for %s: " % daemon)
    # The other daemons are still staged with the new configuration.
    for other in daemons:
        if other != daemon:
            assert "new" in (tree["run"] / other / "egress.json").read_text(), other


def test_a_symlinked_audit_folder_is_not_handed_to_egress(bottle_init, tree, tmp_path, victim, monkeypatch):
    _file, folder, untouched = victim
    link = tmp_path / "audit-link"
    link.symlink_to(folder)
    monkeypatch.setattr(bottle_init, "AUDIT_DIR", str(link))
    with pytest.raises(RuntimeError, match="staging failed for egress: %s is a symlink" % link):
        bottle_init.stage_config(["egress"])
    assert untouched()


def test_a_symlinked_parent_directory_is_refused(bottle_init, tmp_path, victim):
    _file, folder, untouched = victim
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(bottle_init.UnsafePath, match="%s is a symlink, expected a directory" % (tmp_path / "link")):
        bottle_init.write_owned(str(tmp_path / "link" / "inside"), b"X", ME.pw_uid, ME.pw_gid)
    with pytest.raises(bottle_init.UnsafePath, match="%s is a symlink" % (tmp_path / "link")):
        bottle_init.write_owned(str(tmp_path / "link" / "sub" / "file"), b"X", ME.pw_uid, ME.pw_gid)
    with pytest.raises(bottle_init.UnsafePath, match="%s is a symlink" % (tmp_path / "link")):
        bottle_init.ensure_dir_owned(str(tmp_path / "link" / "sub"), ME.pw_uid, ME.pw_gid, 0o700)
    assert untouched()


def test_write_owned_replaces_a_leftover_temporary_file_and_sets_mode(bottle_init, tmp_path):
    (tmp_path / "f.new").write_text("half written")
    (tmp_path / "f").write_text("old")
    bottle_init.write_owned(str(tmp_path / "f"), b"new\n", ME.pw_uid, ME.pw_gid, 0o400)
    assert (tmp_path / "f").read_text() == "new\n"
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o400
    assert not (tmp_path / "f.new").exists()


def test_write_owned_refuses_a_directory_or_fifo_where_its_file_goes(bottle_init, tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(bottle_init.UnsafePath, match="%s is a directory, expected a regular file" % (tmp_path / "d")):
        bottle_init.write_owned(str(tmp_path / "d"), b"X", ME.pw_uid, ME.pw_gid)
    os.mkfifo(tmp_path / "f.new")
    with pytest.raises(bottle_init.UnsafePath, match="%s is a special file" % (tmp_path / "f.new")):
        bottle_init.write_owned(str(tmp_path / "f"), b"X", ME.pw_uid, ME.pw_gid)
    assert not (tmp_path / "f").exists()


def test_read_nofollow_refuses_a_symlink(bottle_init, tmp_path, victim):
    file, _folder, _untouched = victim
    (tmp_path / "ca.pem").symlink_to(file)
    with pytest.raises(bottle_init.UnsafePath, match="%s is a symlink, expected a regular file" % (tmp_path / "ca.pem")):
        bottle_init.read_nofollow(str(tmp_path / "ca.pem"))
    (tmp_path / "real.pem").write_text("PEM\n")
    assert bottle_init.read_nofollow(str(tmp_path / "real.pem")) == b"PEM\n"
    os.link(file, tmp_path / "linked.pem")
    with pytest.raises(bottle_init.UnsafePath, match="linked.pem is a file with 2 hard links, expected a regular "
                                                     "file with one link"):
        bottle_init.read_nofollow(str(tmp_path / "linked.pem"))


def test_pipelocks_trust_does_not_follow_egress_symlink(bottle_init, tree, tmp_path, victim, monkeypatch):
    """pipelock's trust.pem takes egress's CA certificate: egress could make that a link to a file only root
    reads, and pipelock would get its content."""
    file, _folder, untouched = victim
    plant(tmp_path / "run/egress/mitmproxy/mitmproxy-ca-cert.pem", file)
    sup = bottle_init.Supervisor(["egress", "pipelock"], 1.0)
    sup.procs["egress"] = type("Running", (), {"poll": lambda self: None})()
    monkeypatch.setattr(sup, "start", lambda name: None)
    with pytest.raises(bottle_init.UnsafePath, match="mitmproxy-ca-cert.pem is a symlink"):
        sup.start_all()
    assert untouched()
    trust = tmp_path / "run/pipelock/trust.pem"
    assert not trust.exists() or "VICTIM" not in trust.read_text()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another uid needs root")
def test_a_directory_owned_by_another_uid_is_not_handed_over(bottle_init, tmp_path):
    (tmp_path / "home").mkdir()
    os.chown(tmp_path / "home", 4242, 4242)
    with pytest.raises(bottle_init.UnsafePath, match="%s is owned by uid 4242, expected uid 0 or 10002"
                       % (tmp_path / "home")):
        bottle_init.ensure_dir_owned(str(tmp_path / "home"), 10002, 10002, 0o700, (0, 10002))
    assert (tmp_path / "home").stat().st_uid == 4242


def written_paths(base):
    """Every path staging wrote under run/ and store/ (directories and files), and each file's ``.new``."""
    found = []
    for top in ("run", "store"):
        for folder, dirs, files in os.walk(base / top):
            rel = os.path.relpath(folder, base)
            found += [(os.path.join(rel, d), True) for d in dirs]
            found += [(os.path.join(rel, f), False) for f in files]
            found += [(os.path.join(rel, f + ".new"), False) for f in files]
    return sorted(found)


@pytest.mark.parametrize("daemons", [DAEMONS, ["egress", "git-gate", "supervise"]], ids=["pipelock", "one-hop"])
def test_every_path_staging_writes_refuses_a_symlink(bottle_init, tmp_path, monkeypatch, daemons):
    """Found by staging, not listed by hand: a path a later change adds is covered too."""
    paths = written_paths(make_tree(bottle_init, tmp_path / "discover", monkeypatch, daemons)["run"].parent)
    assert len(paths) >= 20, paths
    for number, (relative, is_dir) in enumerate(paths):
        base = tmp_path / ("case%d" % number)
        make_tree(bottle_init, base, monkeypatch, daemons)
        target = base / "victim"
        if is_dir:
            target.mkdir(mode=0o755)
        else:
            target.write_text("VICTIM\n")
            target.chmod(0o640)
        before = (stat.S_IMODE(target.stat().st_mode), sorted(os.listdir(target)) if is_dir else target.read_text())
        plant(base / relative, target)
        with pytest.raises(RuntimeError, match=re.escape(str(base / relative) + " is a symlink")):
            bottle_init.stage_config(daemons)
        after = (stat.S_IMODE(target.stat().st_mode), sorted(os.listdir(target)) if is_dir else target.read_text())
        assert after == before, relative
