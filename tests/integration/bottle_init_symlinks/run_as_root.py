# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inside the bundle image, as root: bottle_init's staging against a daemon uid that plants symlinks.

Drives /src/bottle_init.py (the working copy) against a tree under /tmp with the image's real daemon users.
Each case: stage every daemon, let the daemon that owns a directory replace one path root writes there with
a symlink (to /etc/shadow, or to /etc for a directory), stage again (as SIGHUP does) and check that staging
refused naming that path, and that /etc/shadow and /etc are as they were. Prints "N passed, N failed".
"""

import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import sys
import traceback

spec = importlib.util.spec_from_file_location("bottle_init", "/src/bottle_init.py")
bi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bi)

ROOT = "/tmp/bundle"
HOST_UID = 1000  # the host's operator, who owns the mounted store and audit folders


def fingerprint(path):
    st = os.lstat(path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest() if stat.S_ISREG(st.st_mode) else None
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), digest)


PROTECTED = ["/etc/shadow", "/etc", "/etc/passwd", "/root"]


def protected_state():
    return {path: fingerprint(path) for path in PROTECTED}


def fresh_tree():
    shutil.rmtree(ROOT, ignore_errors=True)
    # No run/: bottle-init makes /run/bottle itself, as in the image.
    for sub in ("etc", "private/egress", "identities", "ca", "store", "audit"):
        os.makedirs(os.path.join(ROOT, sub))
    for sub in ("store", "audit"):
        os.chown(os.path.join(ROOT, sub), HOST_UID, HOST_UID)
    bi.CONFIG_SRC = ROOT + "/etc"
    bi.PRIVATE_SRC = ROOT + "/private"
    bi.IDENTITY_SRC = ROOT + "/identities"
    bi.RUN_DIR = ROOT + "/run"
    bi.CA_DIR = ROOT + "/ca"
    bi.SUPERVISE_STORE = ROOT + "/store"
    bi.AUDIT_DIR = ROOT + "/audit"
    bi.EGRESS_CONFDIR = ROOT + "/run/egress/mitmproxy"
    bi.EGRESS_CA = bi.EGRESS_CONFDIR + "/mitmproxy-ca-cert.pem"
    with open(ROOT + "/etc/egress.json", "w") as handle:
        handle.write('{"routes": []}\n')
    with open(ROOT + "/private/egress/tokens.json", "w") as handle:
        handle.write('{"T": "secret"}\n')
    with open(ROOT + "/identities/app", "w") as handle:
        handle.write("PRIVATE KEY\n")
    bi.ensure_ca()


def as_uid(user, action):
    """Run ``action()`` in a child process with ``user``'s uid and gid (the taken-over daemon)."""
    pw = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            action()
            os._exit(0)
        except BaseException:  # noqa: B036 - the child reports and exits, whatever happened
            traceback.print_exc()
            os._exit(1)
    _pid, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError("%s could not plant its symlink (see above)" % user)


def plant(path, target):
    def action():
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            for entry in os.listdir(path):
                os.unlink(os.path.join(path, entry))
            os.rmdir(path)
        os.symlink(target, path)
    return action


# (daemons staged, the uid that plants, the path it plants, the symlink's target)
CASES = [
    (["egress", "git-gate", "supervise"], "egress", "run/egress/egress.json.new", "/etc/shadow"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/egress.json", "/etc/shadow"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/tokens.json.new", "/etc/shadow"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/trust.pem.new", "/etc/shadow"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/mitmproxy", "/etc"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/mitmproxy/mitmproxy-ca.pem.new", "/etc/shadow"),
    (["egress", "git-gate", "supervise"], "egress", "run/egress/mitmproxy/mitmproxy-ca-cert.pem", "/etc/shadow"),
    (["egress", "pipelock"], "pipelock", "run/pipelock/bottle-ca.key.new", "/etc/shadow"),
    (["egress", "pipelock"], "pipelock", "run/pipelock/bottle-ca.pem", "/etc/shadow"),
    (["egress", "git-gate"], "gitgate", "run/git-gate/identities", "/etc"),
    (["egress", "git-gate"], "gitgate", "run/git-gate/identities/app.new", "/etc/shadow"),
    (["egress", "supervise"], "supervise", "run/supervise/egress.json.new", "/etc/shadow"),
    (["egress", "supervise"], "supervise", "store/proposals", "/etc"),
    (["egress", "supervise"], "supervise", "store/proposals", "/root"),
]


def check_ownership():
    for name, user in (("egress", "egress"), ("git-gate", "gitgate"), ("supervise", "supervise")):
        uid = pwd.getpwnam(user).pw_uid
        home = os.path.join(bi.RUN_DIR, name)
        assert os.stat(home).st_uid == uid, (home, os.stat(home).st_uid)
        staged = os.path.join(home, "egress.json")
        assert fingerprint(staged)[:3] == (uid, pwd.getpwnam(user).pw_gid, 0o400), fingerprint(staged)
    store = os.stat(bi.SUPERVISE_STORE)
    assert (store.st_uid, store.st_gid, stat.S_IMODE(store.st_mode)) == (
        pwd.getpwnam("supervise").pw_uid, HOST_UID, 0o2770), store
    audit = os.stat(bi.AUDIT_DIR)
    assert (audit.st_uid, audit.st_gid) == (pwd.getpwnam("egress").pw_uid, HOST_UID), audit


def run_case(daemons, user, relative, target):
    fresh_tree()
    bi.stage_config(daemons)
    before = protected_state()
    path = os.path.join(ROOT, relative)
    as_uid(user, plant(path, target))
    assert os.path.islink(path), "the daemon's uid planted %s" % path
    with open(ROOT + "/etc/egress.json", "w") as handle:
        handle.write('{"routes": [{"host": "new"}]}\n')
    message = None
    try:
        bi.stage_config(daemons)
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("staging went through the symlink at %s" % path)
    assert path + " is a symlink" in message, message
    after = protected_state()
    assert after == before, "root changed %s: %r -> %r" % (target, before, after)
    # The operator removes the link; the next stage goes through.
    os.unlink(path)
    bi.stage_config(daemons)
    assert protected_state() == before


def main():
    passed = failed = 0
    try:
        fresh_tree()
        bi.stage_config(["egress", "pipelock", "git-gate", "supervise"])
        check_ownership()
        print("ok   staging gives each daemon its files (uid, mode) and the host group keeps the store")
        passed += 1
    except Exception:  # noqa: BLE001 - reported as a failed case
        traceback.print_exc()
        print("FAIL staging as root with the real daemon uids")
        failed += 1
    for daemons, user, relative, target in CASES:
        label = "%s plants %s -> %s" % (user, relative, target)
        try:
            run_case(daemons, user, relative, target)
            print("ok   " + label)
            passed += 1
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            print("FAIL " + label)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
