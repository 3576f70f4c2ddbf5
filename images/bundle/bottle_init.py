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
  /run/bottle/<daemon>/, owned by that daemon's uid, mode 0400;
- gives egress the bottle CA as its mitmproxy CA (one hop), or, with pipelock,
  installs the chain's iptables rules: every TCP connection of pipelock's uid
  to a non-loopback address is redirected to egress on 127.0.0.1:9099, and
  anything else pipelock's uid sends off-box is rejected.

Signals: SIGTERM/SIGINT stop the daemons (SIGTERM, then SIGKILL after
BOTTLE_GRACE_SECONDS); SIGHUP re-copies /etc/bottle and reloads the daemons
in place (pipelock re-reads its config on SIGHUP, egress watches its files).
"""

import os
import pwd
import shutil
import signal
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
            "--set", "flow_detail=0",
            "--set", "termlog_verbosity=warn",
            "-s", "/opt/egress/egress_addon.py",
        ], env)
    path = "/usr/local/bin/%s" % name
    if os.path.exists(path):
        # Python daemons: line by line, so a log shows what happened before a failure, in order.
        return [path], {"HOME": home, "PYTHONUNBUFFERED": "1"}
    return None


def concat(paths, dest):
    """Write the concatenation of the existing, non-empty ``paths`` to ``dest``."""
    with open(dest, "wb") as out:
        for path in paths:
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    data = handle.read()
                if data.strip():
                    out.write(data.rstrip(b"\n") + b"\n")


def stage_config(names):
    """Copy /etc/bottle into /run/bottle/<daemon>/, owned by each daemon, read-only.

    egress gets the bottle CA as its mitmproxy CA when it faces the agent (no pipelock).
    """
    for name in names:
        pw = pwd.getpwnam(daemon_user(name))
        home = os.path.join(RUN_DIR, name)
        os.makedirs(home, exist_ok=True)
        os.chmod(home, 0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        for source in (CONFIG_SRC, os.path.join(PRIVATE_SRC, name)):
            copy_files_readonly(source, home, pw)
        if name == "git-gate":
            stage_identities(home, pw)
        if name == "supervise":
            prepare_store(SUPERVISE_STORE, pw)
        if name == "pipelock":
            for entry in (CA_CERT, CA_KEY):
                dest = os.path.join(home, entry)
                shutil.copyfile(os.path.join(CA_DIR, entry), dest)
                os.chown(dest, pw.pw_uid, pw.pw_gid)
                os.chmod(dest, 0o400)
        if name == "egress":
            os.makedirs(EGRESS_CONFDIR, exist_ok=True)
            os.chown(EGRESS_CONFDIR, pw.pw_uid, pw.pw_gid)
            os.chmod(EGRESS_CONFDIR, 0o700)
            if "pipelock" not in names:
                stage_mitmproxy_ca(pw)
            if os.path.isdir(AUDIT_DIR):
                # egress writes; the host group that owns the folder keeps read and delete (teardown,
                # archives), as for supervise's store.
                os.chown(AUDIT_DIR, pw.pw_uid, os.stat(AUDIT_DIR).st_gid)
                os.chmod(AUDIT_DIR, 0o2770)
            trust = os.path.join(home, "trust.pem")
            concat([SYSTEM_CAS, os.path.join(CONFIG_SRC, "upstream-ca.pem")], trust)
            os.chown(trust, pw.pw_uid, pw.pw_gid)
            os.chmod(trust, 0o400)


def stage_mitmproxy_ca(pw):
    """mitmproxy's confdir CA files from the bottle CA: key and certificate in one file, as it reads them."""
    with open(os.path.join(CA_DIR, CA_KEY), "rb") as handle:
        key = handle.read()
    with open(os.path.join(CA_DIR, CA_CERT), "rb") as handle:
        cert = handle.read()
    for entry, data in (("mitmproxy-ca.pem", key.rstrip(b"\n") + b"\n" + cert), ("mitmproxy-ca-cert.pem", cert)):
        dest = os.path.join(EGRESS_CONFDIR, entry)
        tmp = dest + ".new"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o400)
        os.replace(tmp, dest)


def stage_identities(home, pw):
    """Copy each mounted identity to <home>/identities/<repo>, mode 0400, owned by git-gate."""
    dest_dir = os.path.join(home, "identities")
    os.makedirs(dest_dir, exist_ok=True)
    os.chown(dest_dir, pw.pw_uid, pw.pw_gid)
    os.chmod(dest_dir, 0o700)
    copy_files_readonly(IDENTITY_SRC, dest_dir, pw)


def copy_files_readonly(source, dest_dir, pw):
    """Copy the regular files of ``source`` (if it exists) into ``dest_dir``, owned by ``pw``, mode 0400."""
    if not os.path.isdir(source):
        return
    for entry in sorted(os.listdir(source)):
        src = os.path.join(source, entry)
        if not os.path.isfile(src):
            continue
        dest = os.path.join(dest_dir, entry)
        tmp = dest + ".new"
        shutil.copyfile(src, tmp)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o400)
        os.replace(tmp, dest)


def prepare_store(root, pw):
    """Give supervise's uid the proposal store (and its proposals/), keeping the host group's access."""
    if not os.path.isdir(root):
        raise RuntimeError("%s is not mounted: the supervise daemon needs its proposal store" % root)
    for path in (root, os.path.join(root, "proposals")):
        os.makedirs(path, exist_ok=True)
        os.chown(path, pw.pw_uid, os.stat(root).st_gid)
        os.chmod(path, 0o2770)


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


class Supervisor:
    def __init__(self, names, grace):
        self.names = names
        self.grace = grace
        self.procs = {}
        self.stopping = False
        self.reload_requested = False

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
                sources = [SYSTEM_CAS, os.path.join(CONFIG_SRC, "upstream-ca.pem")]
                if "egress" in self.procs:
                    self.wait_for_file(EGRESS_CA, 30, "egress")
                    sources.append(EGRESS_CA)
                trust = os.path.join(home, "trust.pem")
                concat(sources, trust)
                pw = pwd.getpwnam("pipelock")
                os.chown(trust, pw.pw_uid, pw.pw_gid)
                os.chmod(trust, 0o400)
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

    def run(self):
        """Supervise until a stop signal (exit 0) or an unexpected daemon death (exit 1)."""
        while True:
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
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
        grace = float(os.environ.get("BOTTLE_GRACE_SECONDS", "10"))
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
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
