#!/usr/bin/env python
"""bottle-init: PID 1 of the sidecar bundle.

Starts the daemons named in BOTTLE_DAEMONS, each as its own uid, prefixes
their output lines with the daemon's name, and fails closed: when a daemon
dies unexpectedly the others are stopped and the container exits non-zero, so
nothing leaves the bottle without its firewall.

The default data path is one hop: egress (mitmproxy with the bottle_firewall
addon) faces the agent on 8888 and intercepts TLS with the per-bottle CA.
With the optional pipelock (BOTTLE_DAEMONS holds "pipelock", in an image that
has its binary) pipelock faces the agent on 8888 and egress runs behind it in
transparent mode on 127.0.0.1:9099, for routes only.

Before any daemon starts it
- creates the per-bottle CA (ECDSA P-256, with openssl) under /var/lib/bottle/ca
  when absent; the key never leaves the bundle;
- copies /etc/bottle (read-only mount, owned by whoever rendered it) into
  /run/bottle/<daemon>/, owned by that daemon's uid, mode 0400, never following a symlink there;
- gives egress the bottle CA as its mitmproxy CA (one hop), or, with pipelock,
  installs the chain's iptables rules: every TCP connection of pipelock's uid
  to a non-loopback address is redirected to egress on 127.0.0.1:9099, and
  anything else pipelock's uid sends off-box is rejected.

Signals: SIGTERM/SIGINT stop the daemons (SIGTERM, then SIGKILL after
BOTTLE_GRACE_SECONDS); SIGHUP re-copies /etc/bottle and reloads the daemons
in place (pipelock re-reads its config on SIGHUP, egress watches its files).

Hangs: a thread runs bottle-health every BOTTLE_HEALTH_INTERVAL seconds (3: slower than Docker's 2 s
HEALTHCHECK, so Docker's health shows a hang as unhealthy before the restart clears it). A daemon unhealthy on
BOTTLE_HANG_CHECKS checks in a row (3) while its process group used no CPU time is hung (stopped,
deadlocked, waiting on nothing); one that fails its checks while it works (a starved machine, egress
serving an npm ci of hundreds of tunnels: its answer takes over the 1 s deadline) is busy, and is
taken for hung only after BOTTLE_BUSY_CHECKS checks in a row (100: 5 minutes). A hung daemon:
bottle-init kills its process group (SIGKILL, which a
stopped process cannot ignore) and starts it again, writing an audit line to
/var/lib/bottle/audit/bundle.jsonl; no more than BOTTLE_RESTARTS_MAX restarts (3) within
BOTTLE_RESTART_WINDOW seconds (600), after which the bundle stops and exits 1 (fail closed). A daemon
that exits is not restarted: the bundle fails closed at once, as before. A daemon just started or
restarted is not counted until its first healthy check, for at most BOTTLE_START_GRACE seconds (60):
on a loaded host (every bottle starting at once after an engine restart or a reboot) egress took over
20 s to listen, and restarting it then only starts that again.

Every file root writes into a daemon's directory is written by ``write_owned`` and every directory
it hands over by ``ensure_dir_owned``: neither follows a symlink a daemon's uid planted; such a
path fails that daemon's staging, and start-up or the reload fails closed (the bundle stops).
"""

import importlib.machinery
import importlib.util
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

CONFIG_SRC = "/etc/bottle"
# Files for one daemon only (a route's credentials for egress, known secrets for pipelock):
# /etc/bottle-private/<daemon>/* is staged into that daemon's directory and no other.
PRIVATE_SRC = "/etc/bottle-private"
# git-gate's SSH identities, one read-only file mount per declared repo (never in the agent):
# staged into /run/bottle/git-gate/identities/, readable by git-gate's uid alone.
IDENTITY_SRC = "/etc/bottle-identities"
RUN_DIR = "/run/bottle"
# supervise's proposal store: a directory of the managed host mounted read-write into the bundle
# only. Owned by supervise's uid, setgid and group-writable for the host group that owns it (the
# operator's, who records decisions there); no access for the bundle's other daemons.
SUPERVISE_STORE = "/var/lib/bottle/supervise"
CA_DIR = "/var/lib/bottle/ca"
CA_CERT = "bottle-ca.pem"
CA_KEY = "bottle-ca.key"
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
PIPELOCK_BIN = "/usr/local/bin/pipelock"
# The agent-facing proxy port (egress alone, or pipelock in front of it).
AGENT_PORT = 8888
# egress behind pipelock: where pipelock's redirected connections arrive.
EGRESS_CHAIN_PORT = 9099
EGRESS_CONFDIR = RUN_DIR + "/egress/mitmproxy"
EGRESS_CA = EGRESS_CONFDIR + "/mitmproxy-ca-cert.pem"
# Firewall decisions (JSON lines) kept on the managed host when the role mounts this directory.
AUDIT_DIR = "/var/lib/bottle/audit"
# egress's scan service for git-gate (bottle_firewall/scan_service.py): its socket's directory.
SCAN_DIR = RUN_DIR + "/dlp"
# kingfisher's compiled rules, built into the image (a cold compile takes seconds).
RULES_CACHE = "/opt/egress/rules-cache"

HEALTH_BIN = "/usr/local/bin/bottle-health"
# bottle-init's own audit (restarts of hung daemons), beside egress's in the audit directory.
BUNDLE_AUDIT = AUDIT_DIR + "/bundle.jsonl"


def load_health():
    """bottle-health, the owner of the health timing table (``TIMING``): beside this file in the source tree,
    else where the image installs it."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bottle_health.py")
    path = here if os.path.exists(here) else HEALTH_BIN
    loader = importlib.machinery.SourceFileLoader("bottle_health", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bottle_health", loader))
    loader.exec_module(module)
    return module


HEALTH = load_health()
# A started or restarted daemon gets this long before its checks count, or until its first healthy check,
# whichever comes first: mitmproxy loads in a few seconds, but on a loaded host (every bottle started at once
# after an engine restart or a reboot) egress took over 20 s to listen, and a restart only starts that again.
RESTART_GRACE = HEALTH.timing("start_grace")

KNOWN_DAEMONS = ("pipelock", "egress", "git-gate", "supervise")
# egress first: pipelock must trust egress's CA before it starts.
START_ORDER = ("egress", "pipelock", "git-gate", "supervise")

_out_lock = threading.Lock()


def say(name, line):
    with _out_lock:
        sys.stdout.write("[%s] %s\n" % (name, line.rstrip("\n")))
        sys.stdout.flush()


def log(line):
    say("bottle-init", line)


def selected_daemons(value):
    """The daemons named in BOTTLE_DAEMONS, validated, in start order."""
    names = [n.strip() for n in (value or "egress").split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN_DAEMONS]
    if unknown:
        raise ValueError("BOTTLE_DAEMONS names unknown daemon(s) %s; known: %s"
                         % (", ".join(unknown), ", ".join(KNOWN_DAEMONS)))
    if "egress" not in names:
        raise ValueError("BOTTLE_DAEMONS: egress is the bottle's firewall and must run (got %s)" % ", ".join(names))
    return [n for n in START_ORDER if n in names]


def daemon_user(name):
    return {"pipelock": "pipelock", "egress": "egress", "git-gate": "gitgate", "supervise": "supervise"}[name]


def egress_listener(chained):
    """mitmproxy's mode and address: the agent-facing proxy, or the hop behind pipelock."""
    if chained:
        return ["--mode", "transparent", "--listen-host", "127.0.0.1", "--listen-port", str(EGRESS_CHAIN_PORT)]
    return ["--mode", "regular", "--listen-host", "0.0.0.0", "--listen-port", str(AGENT_PORT)]


def daemon_command(name, chained=False):
    """argv and extra environment of daemon ``name``; None when not installed in this image.

    ``chained``: pipelock runs in front of egress.
    """
    home = os.path.join(RUN_DIR, name)
    if name == "pipelock":
        if not os.path.exists(PIPELOCK_BIN):
            return None
        return ([PIPELOCK_BIN, "run", "--config", home + "/pipelock.yaml"],
                {"SSL_CERT_FILE": home + "/trust.pem", "HOME": home, "PIPELOCK_HOME": home})
    if name == "egress":
        # No stream_large_bodies and no body_size_limit: request bodies are buffered so that the
        # firewall decides (routes, DLP) before any byte goes upstream; the addon caps their size
        # and streams responses itself.
        env = {"HOME": home, "PYTHONUNBUFFERED": "1", "BOTTLE_EGRESS_CONFIG": home + "/egress.json",
               "BOTTLE_EGRESS_TOKENS": home + "/tokens.json", "BOTTLE_EGRESS_SECRETS": home + "/secrets.json",
               "BOTTLE_EGRESS_RULES_CACHE": RULES_CACHE}
        if os.path.isdir(AUDIT_DIR):
            env["BOTTLE_EGRESS_AUDIT"] = AUDIT_DIR + "/egress.jsonl"
        return (["/opt/egress/bin/mitmdump"] + egress_listener(chained) + [
            "--set", "confdir=" + EGRESS_CONFDIR,
            "--set", "ssl_verify_upstream_trusted_ca=" + home + "/trust.pem",
            "--set", "connection_strategy=lazy",
            # No relay without a scanner (docs/firewall-channels.md; the bundle image's
            # run_channels.py compares these with mitmproxy's own options): no raw TCP, not after
            # a 101 either, no QUIC/HTTP/3 (and so no UDP), WebSocket only through the addon.
            "--set", "rawtcp=false",
            "--set", "http3=false",
            "--set", "websocket=true",
            "--set", "flow_detail=0",
            "--set", "termlog_verbosity=warn",
            "-s", "/opt/egress/egress_addon.py",
        ], env)
    path = "/usr/local/bin/%s" % name
    if os.path.exists(path):
        # Python daemons: line by line, so a log shows what happened before a failure, in order.
        return [path], {"HOME": home, "PYTHONUNBUFFERED": "1"}
    return None


# --- privileged writes into directories a daemon's uid can write -------------------------------
#
# bottle-init runs as root and writes into directories a daemon owns (its home, egress's mitmproxy
# confdir, git-gate's identities, supervise's store, the audit folder). A daemon that has been taken
# over can plant a symlink there (egress.json.new -> /etc/shadow, a proposals/ that points at /etc)
# and wait for the next SIGHUP. So every privileged write goes through the two functions below, and
# they never follow a symlink: the directory is opened one component at a time with O_NOFOLLOW, files
# are created under a fresh name with O_CREAT|O_EXCL|O_NOFOLLOW relative to that directory's
# descriptor, ownership and mode are set on the open descriptor (fchown, fchmod), and the file is
# renamed into place between the same directory descriptors. Anything unexpected on the way (a
# symlink, something that is not a directory or regular file, a directory owned by another uid) is
# refused with UnsafePath naming the path; that daemon's staging fails and bottle-init fails closed.

class UnsafePath(RuntimeError):
    """A path root was about to write through is a symlink, or not what staging makes there."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _what_is(dir_fd, name):
    """'a symlink', 'a directory', ... for entry ``name`` of ``dir_fd`` (never following it); None if absent."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def _refuse(path, what, expected):
    return UnsafePath("%s is %s, expected %s: not writing through it as root. A daemon's uid can write there, so "
                      "that daemon may have been taken over: find out why, remove it (under %s: recreate the bundle "
                      "container), then start the bundle again" % (path, what, expected, RUN_DIR))


def _open_child_dir(parent_fd, name, path):
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        what = _what_is(parent_fd, name)
        if what is None:
            raise
        if what != "a directory":
            raise _refuse(path, what, "a directory") from exc
        raise


def open_dir_nofollow(path):
    """A descriptor of directory ``path`` (absolute), opened without following a symlink in any component."""
    if not os.path.isabs(path):
        raise UnsafePath("%s is not an absolute path" % path)
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise UnsafePath("%s has a . or .. component" % path)
    fd = os.open("/", _DIR_FLAGS)
    walked = ""
    try:
        for part in parts:
            walked += "/" + part
            child = _open_child_dir(fd, part, walked)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dir_owned(path, uid, gid, mode, owners=None):
    """Create directory ``path`` if absent and give it ``uid:gid`` and ``mode`` through its own descriptor.

    The parent is opened with ``open_dir_nofollow``; ``path`` itself must be a directory, not a symlink.
    ``gid`` None keeps the directory's group. ``owners``: the uids an existing ``path`` may have (None: any,
    for a mount point of the host). Returns (uid, gid) as set.
    """
    parent, name = os.path.split(path.rstrip("/"))
    parent_fd = open_dir_nofollow(parent)
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        fd = _open_child_dir(parent_fd, name, path)
    finally:
        os.close(parent_fd)
    try:
        found = os.fstat(fd).st_uid
        if owners is not None and found not in owners:
            raise UnsafePath("%s is owned by uid %d, expected uid %s: not handing it over as root (find out why, "
                             "remove it, then start the bundle again)" % (path, found, " or ".join(str(u) for u in owners)))
        if gid is None:
            gid = os.fstat(fd).st_gid
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return uid, gid


def write_owned(dest, data, uid, gid, mode=0o400):
    """Write ``data`` to ``dest`` as a new file of ``uid:gid`` with ``mode``, replacing it atomically.

    The one way bottle-init writes a file where a daemon's uid can write: the directory is opened with
    ``open_dir_nofollow``; ``dest.new`` is created with O_EXCL|O_NOFOLLOW (a leftover regular file of that
    name is removed first, anything else there is refused), chowned and chmodded on its descriptor, and
    renamed over ``dest`` between the same directory descriptor. ``dest`` may be absent or a regular file.
    """
    directory, name = os.path.split(dest)
    tmp = name + ".new"
    dir_fd = open_dir_nofollow(directory)
    try:
        what = _what_is(dir_fd, name)
        if what not in (None, "a regular file"):
            raise _refuse(dest, what, "a regular file")
        what = _what_is(dir_fd, tmp)
        if what == "a regular file":
            os.unlink(tmp, dir_fd=dir_fd)  # a leftover of an interrupted write; unlink never follows
        elif what is not None:
            raise _refuse(os.path.join(directory, tmp), what, "nothing (a temporary file bottle-init creates)")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
        except FileExistsError as exc:  # planted between the check and the create
            raise _refuse(os.path.join(directory, tmp), _what_is(dir_fd, tmp) or "something", "nothing") from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)


def read_nofollow(path):
    """The bytes of regular file ``path`` read as root without following a symlink (a daemon's file).

    A file with more than one link is refused too: it could be another name of a file only root may read."""
    directory, name = os.path.split(path)
    dir_fd = open_dir_nofollow(directory)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            what = _what_is(dir_fd, name)
            if what not in (None, "a regular file"):
                raise _refuse(path, what, "a regular file") from exc
            raise
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                return handle.read()
        raise _refuse(path, "a special file" if not stat.S_ISREG(info.st_mode) else
                      "a file with %d hard links" % info.st_nlink, "a regular file with one link")
    finally:
        os.close(dir_fd)


def join_pems(chunks):
    """PEM texts joined: the non-empty ones, each ending a line."""
    return b"".join(chunk.rstrip(b"\n") + b"\n" for chunk in chunks if chunk.strip())


def read_existing(path):
    """The bytes of ``path`` (root's or the operator's, read-only), or b"" when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def stage_config(names):
    """Copy /etc/bottle into /run/bottle/<daemon>/, owned by each daemon, read-only.

    egress gets the bottle CA as its mitmproxy CA when it faces the agent (no pipelock). Each daemon is
    staged on its own; when one cannot be (UnsafePath, a missing store), the others are still staged and a
    RuntimeError names every daemon that failed, so start-up and a reload fail closed.
    """
    # /run/bottle itself is root's alone (no daemon can write it); the daemons' homes are made inside it.
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    failed = []
    for name in names:
        try:
            stage_daemon(name, names)
        except (UnsafePath, RuntimeError, OSError) as exc:
            log("staging %s failed: %s" % (name, exc))
            failed.append("%s: %s" % (name, exc))
    if failed:
        raise RuntimeError("staging failed for %s" % "; ".join(failed))


def stage_daemon(name, names):
    """Stage daemon ``name``'s files (``names``: every daemon of the bundle)."""
    pw = pwd.getpwnam(daemon_user(name))
    owners = (0, pw.pw_uid)
    home = os.path.join(RUN_DIR, name)
    ensure_dir_owned(home, pw.pw_uid, pw.pw_gid, 0o700, owners)
    for source in (CONFIG_SRC, os.path.join(PRIVATE_SRC, name)):
        copy_files_readonly(source, home, pw)
    if name == "git-gate":
        stage_identities(home, pw)
    if name == "supervise":
        prepare_store(SUPERVISE_STORE, pw)
    if name == "pipelock":
        for entry in (CA_CERT, CA_KEY):
            with open(os.path.join(CA_DIR, entry), "rb") as handle:
                write_owned(os.path.join(home, entry), handle.read(), pw.pw_uid, pw.pw_gid)
    if name == "egress":
        ensure_dir_owned(EGRESS_CONFDIR, pw.pw_uid, pw.pw_gid, 0o700, owners)
        if "pipelock" not in names:
            stage_mitmproxy_ca(pw)
        if os.path.isdir(AUDIT_DIR):
            # egress writes; the host group that owns the folder keeps read and delete (teardown,
            # archives), as for supervise's store. A mount of the host: any owner at first.
            ensure_dir_owned(AUDIT_DIR, pw.pw_uid, None, 0o2770)
        trust = join_pems([read_existing(SYSTEM_CAS), read_existing(os.path.join(CONFIG_SRC, "upstream-ca.pem"))])
        write_owned(os.path.join(home, "trust.pem"), trust, pw.pw_uid, pw.pw_gid)


def stage_mitmproxy_ca(pw):
    """mitmproxy's confdir CA files from the bottle CA: key and certificate in one file, as it reads them."""
    with open(os.path.join(CA_DIR, CA_KEY), "rb") as handle:
        key = handle.read()
    with open(os.path.join(CA_DIR, CA_CERT), "rb") as handle:
        cert = handle.read()
    for entry, data in (("mitmproxy-ca.pem", key.rstrip(b"\n") + b"\n" + cert), ("mitmproxy-ca-cert.pem", cert)):
        write_owned(os.path.join(EGRESS_CONFDIR, entry), data, pw.pw_uid, pw.pw_gid)


def stage_identities(home, pw):
    """Copy each mounted identity to <home>/identities/<repo>, mode 0400, owned by git-gate."""
    dest_dir = os.path.join(home, "identities")
    ensure_dir_owned(dest_dir, pw.pw_uid, pw.pw_gid, 0o700, (0, pw.pw_uid))
    copy_files_readonly(IDENTITY_SRC, dest_dir, pw)


def copy_files_readonly(source, dest_dir, pw):
    """Copy the regular files of ``source`` (if it exists) into ``dest_dir``, owned by ``pw``, mode 0400.

    ``source`` is root's or the operator's (a read-only mount); ``dest_dir`` is the daemon's: written with
    ``write_owned``.
    """
    if not os.path.isdir(source):
        return
    for entry in sorted(os.listdir(source)):
        src = os.path.join(source, entry)
        if not os.path.isfile(src):
            continue
        with open(src, "rb") as handle:
            data = handle.read()
        write_owned(os.path.join(dest_dir, entry), data, pw.pw_uid, pw.pw_gid)


def prepare_store(root, pw):
    """Give supervise's uid the proposal store (and its proposals/), keeping the host group's access."""
    if not os.path.isdir(root):
        raise RuntimeError("%s is not mounted: the supervise daemon needs its proposal store" % root)
    # The store is a mount of the host (any owner at first); proposals/ is supervise's own.
    _uid, gid = ensure_dir_owned(root, pw.pw_uid, None, 0o2770)
    ensure_dir_owned(os.path.join(root, "proposals"), pw.pw_uid, gid, 0o2770)


def prepare_scan_dir(names, path=None):
    """The directory of egress's scan socket (git-gate's pushes are scanned by egress's DLP engine,
    bottle_firewall/scan_service.py): owned by egress, group gitgate, mode 2710 (git-gate's uid may
    reach the socket, list nothing; the setgid bit gives the socket the gitgate group). Only when
    both daemons run; a stale directory is emptied first. Returns the path, or None."""
    if not ("egress" in names and "git-gate" in names):
        return None
    path = path or SCAN_DIR
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700)
    os.chown(path, pwd.getpwnam(daemon_user("egress")).pw_uid, pwd.getpwnam(daemon_user("git-gate")).pw_gid)
    os.chmod(path, 0o2710)
    return path


def ca_commands(key, cert):
    """openssl argv lists that make the bottle CA: an ECDSA P-256 key in SEC1 form (what both mitmproxy
    and the optional pipelock read) and a self-signed CA certificate valid for ten years."""
    return [
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
        ["openssl", "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "3650", "-sha256",
         "-subj", "/O=botbottle bottle/CN=botbottle bottle CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]


def ensure_ca():
    """Create the per-bottle CA once; its key stays in the bundle."""
    cert, key = os.path.join(CA_DIR, CA_CERT), os.path.join(CA_DIR, CA_KEY)
    if os.path.exists(cert) and os.path.exists(key):
        return False
    os.makedirs(CA_DIR, exist_ok=True)
    scratch = os.path.join(CA_DIR, ".init")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch, mode=0o700)
    new_key, new_cert = os.path.join(scratch, CA_KEY), os.path.join(scratch, CA_CERT)
    old_umask = os.umask(0o077)
    try:
        for argv in ca_commands(new_key, new_cert):
            proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError("creating the bottle CA failed (%s: %s): %s; check that %s is writable"
                                   % (argv[1], proc.returncode, proc.stderr.strip(), CA_DIR))
    finally:
        os.umask(old_umask)
    os.chmod(new_key, 0o600)
    os.replace(new_key, key)
    os.chmod(new_cert, 0o644)
    os.replace(new_cert, cert)
    shutil.rmtree(scratch, ignore_errors=True)
    return True


def chain_rules(pipelock_uid):
    """The iptables rules that put egress behind pipelock, as argv lists."""
    uid = str(pipelock_uid)
    return [
        ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid,
         "-p", "tcp", "!", "-d", "127.0.0.0/8", "-j", "REDIRECT", "--to-ports", str(EGRESS_CHAIN_PORT)],
        # Replies on connections the agent opened to pipelock.
        ["iptables", "-w", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid,
         "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        # The redirected connections (now to 127.0.0.1:9099) and docker's DNS at 127.0.0.11.
        ["iptables", "-w", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid, "-d", "127.0.0.0/8", "-j", "ACCEPT"],
        ["iptables", "-w", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid, "-o", "lo", "-j", "ACCEPT"],
        ["iptables", "-w", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid, "-j", "REJECT"],
        ["ip6tables", "-w", "-A", "OUTPUT", "-m", "owner", "--uid-owner", uid, "!", "-o", "lo", "-j", "REJECT"],
    ]


def install_chain(pipelock_uid):
    for argv in chain_rules(pipelock_uid):
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0:
            if argv[0] == "ip6tables":
                log("ip6tables unavailable (%s); no IPv6 in this network namespace" % proc.stdout.strip())
                continue
            raise RuntimeError("cannot install the proxy chain (%s): %s; the bundle needs the NET_ADMIN capability"
                               % (" ".join(argv), proc.stdout.strip()))


def pump(name, stream):
    for raw in iter(stream.readline, b""):
        say(name, raw.decode("utf-8", "replace"))
    stream.close()


def audit_line(entry, path=None):
    """Append one JSON line to bottle-init's audit (never through a link, never to a file with another
    name); a failure is logged, never raised: the restart it records goes on."""
    path = path or BUNDLE_AUDIT
    entry = dict({"ts": round(time.time(), 3)}, **entry)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o640)
    except OSError as exc:
        log("cannot write %s: %s (%s)" % (path, exc.strerror or exc, json.dumps(entry)))
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            log("refusing to write %s: not a regular file with one name (%s)" % (path, json.dumps(entry)))
            return
        os.write(fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def cpu_seconds(pgid, proc_root="/proc"):
    """CPU time (user + system, seconds) used so far by the processes of process group ``pgid``."""
    total = 0
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, "stat"), "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # After "pid (comm)": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
        if len(fields) > 12 and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / float(os.sysconf("SC_CLK_TCK"))


class HangWatch:
    """Counts each daemon's failed health checks in a row and the restarts in the window.

    A failed check counts towards a hang (``checks`` in a row) only when the daemon used no CPU time
    since the previous check: a daemon that fails its checks while working is busy, and is taken
    for hung only after ``busy_checks`` failed checks in a row."""

    def __init__(self, checks=3, restarts_max=3, window=600.0, clock=time.monotonic, busy_checks=100):
        self.checks, self.restarts_max, self.window, self.clock = checks, restarts_max, window, clock
        self.busy_checks = busy_checks
        self.failures = {}
        self.stalls = {}
        self.cpu = {}
        self.restarts = []
        self.quiet_until = {}

    def observe(self, report, cpu=None):
        """Record one bottle-health report ({daemon: state}) and the daemons' CPU seconds so far
        ({daemon: seconds}, None: unknown, every failure a stall); the daemons now hung."""
        now = self.clock()
        hung = []
        for name, state in report.items():
            used = (cpu or {}).get(name)
            worked = used is not None and self.cpu.get(name) is not None and used > self.cpu[name]
            self.cpu[name] = used
            if state == "healthy":
                self.failures[name] = self.stalls[name] = 0
                self.quiet_until.pop(name, None)  # up: from now on a failed check counts
                continue
            if now < self.quiet_until.get(name, 0):
                continue
            self.failures[name] = self.failures.get(name, 0) + 1
            self.stalls[name] = 0 if worked else self.stalls.get(name, 0) + 1
            if self.stalls[name] >= self.checks or self.failures[name] >= self.busy_checks:
                hung.append(name)
        return hung

    def may_restart(self):
        """Whether one more restart fits in the window (and, when it does, count it)."""
        now = self.clock()
        self.restarts = [t for t in self.restarts if now - t < self.window]
        if len(self.restarts) >= self.restarts_max:
            return False
        self.restarts.append(now)
        return True

    def restarted(self, name, grace=None):
        self.failures[name] = self.stalls[name] = 0
        self.cpu[name] = None
        self.quiet_until[name] = self.clock() + (RESTART_GRACE if grace is None else grace)

    def started(self, names, grace=None):
        """The daemons of a bundle's start get the grace of a restart: on a loaded host (every bottle starting at
        once after an engine restart or a reboot) a daemon's first answer can take seconds, which is no hang."""
        for name in names:
            self.restarted(name, grace)


def read_report(names, timeout=5.0):
    """One bottle-health --json run: {daemon: state}; a run that fails to report counts every daemon unhealthy."""
    env = dict(os.environ, BOTTLE_DAEMONS=",".join(names))
    try:
        proc = subprocess.run([HEALTH_BIN, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=env, timeout=timeout, check=False)
        report = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return {name: "unhealthy: bottle-health: %s" % exc for name in names}
    return {name: report.get(name, "unhealthy: not reported") for name in names}


class Supervisor:
    def __init__(self, names, grace):
        self.names = names
        self.grace = grace
        self.procs = {}
        self.stopping = False
        self.reload_requested = False
        self.hung = []
        self.restarts_made = 0
        self.hang_watch = HangWatch(HEALTH.timing("hang_checks"), HEALTH.timing("restarts_max"),
                                    HEALTH.timing("restart_window"), busy_checks=HEALTH.timing("busy_checks"))

    def start(self, name):
        command = daemon_command(name, chained="pipelock" in self.names)
        if command is None:
            if name == "pipelock":
                raise RuntimeError("pipelock is not installed in this image: launch with the bundle image that "
                                   "has it (bottle_pipelock: true builds botbottle/bundle-pipelock), or without "
                                   "pipelock")
            raise RuntimeError("daemon %s is not installed in this image" % name)
        argv, extra_env = command
        pw = pwd.getpwnam(daemon_user(name))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "USER": pw.pw_name}
        env.update(extra_env)
        # Pass through only what this daemon is meant to have: BOTTLE_<DAEMON>_* variables.
        prefix = "BOTTLE_%s_" % name.upper().replace("-", "_")
        env.update({k: v for k, v in os.environ.items() if k.startswith(prefix)})

        def demote():
            # Own session (so stop_all can signal the daemon's whole process group), then
            # drop to the daemon's uid; a no-op only when already running as that uid.
            os.setsid()
            if (os.getuid(), os.getgid()) != (pw.pw_uid, pw.pw_gid):
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)

        proc = subprocess.Popen(argv, env=env, cwd=os.path.join(RUN_DIR, name), preexec_fn=demote,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=pump, args=(name, proc.stdout), daemon=True).start()
        self.procs[name] = proc
        log("started %s (pid %d, uid %d)" % (name, proc.pid, pw.pw_uid))

    def wait_for_file(self, path, timeout, name):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path) and os.path.getsize(path) > 0:
                return
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("%s exited with %s before it was ready" % (name, proc.returncode))
            time.sleep(0.05)
        raise RuntimeError("%s did not create %s within %ss" % (name, path, timeout))

    def start_all(self):
        for name in self.names:
            if name == "pipelock":
                home = os.path.join(RUN_DIR, "pipelock")
                pems = [read_existing(SYSTEM_CAS), read_existing(os.path.join(CONFIG_SRC, "upstream-ca.pem"))]
                if "egress" in self.procs:
                    self.wait_for_file(EGRESS_CA, 30, "egress")
                    # egress's own directory: read without following a symlink egress could plant.
                    pems.append(read_nofollow(EGRESS_CA))
                pw = pwd.getpwnam("pipelock")
                write_owned(os.path.join(home, "trust.pem"), join_pems(pems), pw.pw_uid, pw.pw_gid)
            self.start(name)

    def stop_all(self, reason):
        self.stopping = True
        log("stopping (%s)" % reason)
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.05)
        for name, proc in self.procs.items():
            if proc.poll() is None:
                log("%s did not stop within %ss: SIGKILL" % (name, self.grace))
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def reload(self):
        log("SIGHUP: reloading configuration")
        stage_config(self.names)
        # pipelock re-reads its config, git-gate re-creates its repos; egress watches its files.
        for name in ("pipelock", "git-gate"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGHUP)

    def watch(self, interval, report=read_report):
        """The hang watch (a thread): bottle-health every ``interval`` seconds; hung daemons go to ``self.hung``
        for ``run`` to restart."""
        while not self.stopping:
            time.sleep(interval)
            if self.stopping or self.hung:
                continue
            epoch = self.restarts_made
            taken = report(self.names)
            if self.hung or epoch != self.restarts_made:
                continue  # a report begun before a restart says nothing of the restarted daemon
            found = self.hang_watch.observe(taken, self.cpu_used())
            if found:
                self.hung = found

    def cpu_used(self):
        """{daemon: CPU seconds its process group used so far}; None where it cannot be read."""
        used = {}
        for name, proc in list(self.procs.items()):
            try:
                used[name] = cpu_seconds(proc.pid)
            except (OSError, ValueError):
                used[name] = None
        return used

    def restart_hung(self, names):
        """Kill and start again each hung daemon; False when the restart bound is passed (fail closed)."""
        for name in names:
            proc = self.procs.get(name)
            if not self.hang_watch.may_restart():
                log("%s is hung and %d restarts were made within %gs: failing closed, stopping the bundle"
                    % (name, self.hang_watch.restarts_max, self.hang_watch.window))
                audit_line({"event": "fail-closed", "daemon": name, "reason": "hung past the restart bound",
                            "restarts": self.hang_watch.restarts_max, "window_seconds": self.hang_watch.window})
                return False
            log("%s failed %d health checks in a row (hung): restarting it" % (name, self.hang_watch.checks))
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            audit_line({"event": "restart", "daemon": name, "reason": "%d failed health checks in a row"
                        % self.hang_watch.checks, "pid": proc.pid if proc else None,
                        "restarts_in_window": len(self.hang_watch.restarts)})
            self.start(name)
            self.hang_watch.restarted(name)
            self.restarts_made += 1
        return True

    def run(self):
        """Supervise until a stop signal (exit 0) or an unexpected daemon death (exit 1)."""
        while True:
            if self.hung:
                hung = list(self.hung)
                try:
                    ok = self.restart_hung(hung)
                except (RuntimeError, OSError) as exc:
                    log("restarting %s failed: %s" % (", ".join(hung), exc))
                    ok = False
                self.hung = []  # only now: the watch takes no report while a restart is under way
                if not ok:
                    self.stop_all("a daemon hung past the restart bound")
                    return 1
            if self.reload_requested:
                self.reload_requested = False
                try:
                    self.reload()
                except (RuntimeError, OSError) as exc:
                    # A daemon's files could not be staged safely (a symlink planted where root writes):
                    # the daemons would run on a configuration the operator did not mean. Fail closed.
                    log("reload failed: %s: failing closed, stopping the bundle" % exc)
                    self.stop_all("reload failed")
                    return 1
            if self.stopping:
                self.stop_all("signal")
                return 0
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    log("%s exited with %s: failing closed, stopping the bundle" % (name, code))
                    self.stop_all("%s died" % name)
                    return 1
            time.sleep(0.1)


def main():
    try:
        names = selected_daemons(os.environ.get("BOTTLE_DAEMONS"))
        grace = HEALTH.timing("stop_grace")
    except ValueError as exc:
        log("configuration error: %s" % exc)
        return 2
    supervisor = Supervisor(names, grace)

    def on_stop(signum, _frame):
        supervisor.stopping = True

    def on_hup(_signum, _frame):
        supervisor.reload_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        if ensure_ca():
            log("created the bottle CA in %s" % CA_DIR)
        if "pipelock" in names:
            install_chain(pwd.getpwnam("pipelock").pw_uid)
        stage_config(names)
        prepare_scan_dir(names)
        supervisor.start_all()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        log("start-up failed: %s" % exc)
        supervisor.stop_all("start-up failed")
        return 1
    log("running: %s" % ", ".join(names))
    supervisor.hang_watch.started(names)
    interval = HEALTH.timing("watch_interval")
    if interval > 0 and os.path.exists(HEALTH_BIN):
        threading.Thread(target=supervisor.watch, args=(interval,), daemon=True).start()
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
