# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle-init: daemon selection, the chain's iptables rules, config staging, the CA, and
supervision with real child processes (as the current user instead of the daemon uids)."""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

ME = pwd.getpwuid(os.getuid())


# --- BOTTLE_DAEMONS -----------------------------------------------------------------------

def test_default_daemons_start_egress_first(bottle_init):
    assert bottle_init.selected_daemons(None) == ["egress"]
    assert bottle_init.selected_daemons(" pipelock , egress ,supervise") == ["egress", "pipelock", "supervise"]


def test_unknown_daemon_is_named_with_the_known_ones(bottle_init):
    with pytest.raises(ValueError) as err:
        bottle_init.selected_daemons("pipelock,egress,gitgate")
    assert "BOTTLE_DAEMONS" in str(err.value)
    assert "gitgate" in str(err.value)
    assert "git-gate" in str(err.value), "the message lists the valid names"


@pytest.mark.parametrize("daemons", ["pipelock", "git-gate,supervise"])
def test_a_bundle_without_egress_is_refused(bottle_init, daemons):
    """egress is the firewall (and pipelock's upstream): a bundle without it is a configuration error."""
    with pytest.raises(ValueError, match="egress is the bottle's firewall and must run"):
        bottle_init.selected_daemons(daemons)


# --- the proxy chain ----------------------------------------------------------------------

def test_chain_redirects_pipelocks_tcp_to_egress_and_rejects_the_rest(bottle_init):
    rules = [" ".join(argv) for argv in bottle_init.chain_rules(10001)]
    nat = [r for r in rules if "-t nat" in r]
    assert nat == ["iptables -w -t nat -A OUTPUT -m owner --uid-owner 10001 -p tcp ! -d 127.0.0.0/8 "
                   "-j REDIRECT --to-ports 9099"]
    filt = [r for r in rules if r.startswith("iptables") and "-t nat" not in r]
    assert all("--uid-owner 10001" in r for r in filt), "the filter rules must only bind pipelock's uid"
    # Loopback (egress, docker's DNS at 127.0.0.11) is accepted before the final REJECT.
    assert any("-d 127.0.0.0/8 -j ACCEPT" in r for r in filt[:-1])
    assert filt[-1].endswith("-j REJECT"), "anything else pipelock's uid sends off-box is rejected last"
    assert any(r.startswith("ip6tables") and r.endswith("! -o lo -j REJECT") for r in rules)


def test_chain_install_failure_names_net_admin(bottle_init, monkeypatch):
    def refuse(argv, **_kwargs):
        return type("P", (), {"returncode": 4, "stdout": "Permission denied (you must be root)"})()
    monkeypatch.setattr(bottle_init.subprocess, "run", refuse)
    with pytest.raises(RuntimeError) as err:
        bottle_init.install_chain(10001)
    assert "NET_ADMIN" in str(err.value) and "Permission denied" in str(err.value)


def test_egress_faces_the_agent_and_buffers_request_bodies(bottle_init):
    argv, env = bottle_init.daemon_command("egress")
    joined = " ".join(argv)
    assert "--mode regular --listen-host 0.0.0.0 --listen-port 8888" in joined
    assert "confdir=/run/bottle/egress/mitmproxy" in joined
    assert "connection_strategy=lazy" in joined, "no upstream connection before the firewall decided"
    # Streamed request bodies send their headers upstream before the request hook runs: the
    # firewall could then neither refuse nor inject in time. Nothing may switch streaming on.
    assert "stream_large_bodies" not in joined and "body_size_limit" not in joined
    assert env["BOTTLE_EGRESS_CONFIG"] == "/run/bottle/egress/egress.json"
    assert env["BOTTLE_EGRESS_TOKENS"] == "/run/bottle/egress/tokens.json"
    assert env["BOTTLE_EGRESS_SECRETS"] == "/run/bottle/egress/secrets.json"
    # Unbuffered, so the log is in order when the bundle fails closed (egress's lines otherwise
    # arrived only at exit, after bottle-init's own).
    assert env["PYTHONUNBUFFERED"] == "1"


def test_egress_behind_pipelock_listens_on_loopback_only(bottle_init):
    argv, _env = bottle_init.daemon_command("egress", chained=True)
    joined = " ".join(argv)
    assert "--mode transparent --listen-host 127.0.0.1 --listen-port 9099" in joined


def test_pipelock_only_where_its_binary_is(bottle_init, tmp_path, monkeypatch):
    monkeypatch.setattr(bottle_init, "PIPELOCK_BIN", str(tmp_path / "absent"))
    assert bottle_init.daemon_command("pipelock") is None
    binary = tmp_path / "pipelock"
    binary.write_text("")
    monkeypatch.setattr(bottle_init, "PIPELOCK_BIN", str(binary))
    argv, env = bottle_init.daemon_command("pipelock")
    assert argv[1:] == ["run", "--config", "/run/bottle/pipelock/pipelock.yaml"]
    assert env["SSL_CERT_FILE"] == "/run/bottle/pipelock/trust.pem"


def test_starting_pipelock_in_an_image_without_it_names_the_fix(bottle_init, tmp_path, monkeypatch):
    monkeypatch.setattr(bottle_init, "PIPELOCK_BIN", str(tmp_path / "absent"))
    sup = bottle_init.Supervisor(["egress", "pipelock"], 1.0)
    with pytest.raises(RuntimeError, match="pipelock is not installed in this image.*bottle_pipelock"):
        sup.start("pipelock")


# --- staging /etc/bottle and the CA -------------------------------------------------------

@pytest.fixture
def dirs(bottle_init, tmp_path, monkeypatch):
    paths = {k: tmp_path / k for k in ("etc", "run", "ca")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.setattr(bottle_init, "CONFIG_SRC", str(paths["etc"]))
    monkeypatch.setattr(bottle_init, "RUN_DIR", str(paths["run"]))
    monkeypatch.setattr(bottle_init, "CA_DIR", str(paths["ca"]))
    monkeypatch.setattr(bottle_init, "EGRESS_CONFDIR", str(paths["run"] / "egress" / "mitmproxy"))
    monkeypatch.setattr(bottle_init, "EGRESS_CA", str(paths["run"] / "egress" / "mitmproxy" / "ca.pem"))
    monkeypatch.setattr(bottle_init, "SYSTEM_CAS", str(tmp_path / "system.pem"))
    monkeypatch.setattr(bottle_init, "daemon_user", lambda name: ME.pw_name)
    (tmp_path / "system.pem").write_text("SYSTEM\n")
    return paths


def test_stage_config_copies_read_only_per_daemon(bottle_init, dirs):
    (dirs["etc"] / "pipelock.yaml").write_text("mode: strict\n")
    (dirs["etc"] / "upstream-ca.pem").write_text("UPSTREAM\n")
    (dirs["ca"] / "bottle-ca.pem").write_text("CERT")
    (dirs["ca"] / "bottle-ca.key").write_text("KEY")
    bottle_init.stage_config(["egress", "pipelock"])
    for daemon in ("egress", "pipelock"):
        home = dirs["run"] / daemon
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        copied = home / "pipelock.yaml"
        assert copied.read_text() == "mode: strict\n"
        assert stat.S_IMODE(copied.stat().st_mode) == 0o400
    assert (dirs["run"] / "pipelock" / "bottle-ca.key").read_text() == "KEY"
    assert not (dirs["run"] / "egress" / "bottle-ca.key").exists(), "only pipelock gets the CA key"
    assert (dirs["run"] / "egress" / "trust.pem").read_text() == "SYSTEM\nUPSTREAM\n"


def test_restaging_replaces_read_only_files(bottle_init, dirs):
    bottle_init.ensure_ca()  # as main() does before staging
    (dirs["etc"] / "egress.json").write_text('{"routes": []}')
    bottle_init.stage_config(["egress"])
    (dirs["etc"] / "egress.json").write_text('{"routes": [{"host": "a"}]}')
    bottle_init.stage_config(["egress"])
    assert (dirs["run"] / "egress" / "egress.json").read_text() == '{"routes": [{"host": "a"}]}'


def test_identities_are_staged_for_git_gate_alone(bottle_init, dirs, tmp_path, monkeypatch):
    bottle_init.ensure_ca()
    identities = tmp_path / "identities"
    identities.mkdir()
    (identities / "app").write_text("PRIVATE KEY")
    monkeypatch.setattr(bottle_init, "IDENTITY_SRC", str(identities))
    bottle_init.stage_config(["egress", "git-gate"])
    staged = dirs["run"] / "git-gate" / "identities" / "app"
    assert staged.read_text() == "PRIVATE KEY"
    assert stat.S_IMODE(staged.stat().st_mode) == 0o400
    assert stat.S_IMODE(staged.parent.stat().st_mode) == 0o700
    assert not (dirs["run"] / "egress" / "identities").exists()


def test_join_pems_skips_missing_and_empty_files(bottle_init, tmp_path):
    (tmp_path / "a").write_text("A")
    (tmp_path / "empty").write_text("\n")
    chunks = [bottle_init.read_existing(str(tmp_path / p)) for p in ("a", "missing", "empty", "a")]
    assert bottle_init.join_pems(chunks) == b"A\nA\n"


def test_ensure_ca_creates_once_with_a_private_ec_key(bottle_init, dirs):
    """The bottle CA is made with openssl (no pipelock): an ECDSA key in SEC1 form, which both
    mitmproxy and the optional pipelock read, and a CA certificate."""
    assert bottle_init.ensure_ca() is True
    key, cert = dirs["ca"] / "bottle-ca.key", dirs["ca"] / "bottle-ca.pem"
    assert key.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(cert)], check=True,
                          capture_output=True, text=True).stdout
    assert "CA:TRUE" in text and "Certificate Sign" in text and "prime256v1" in text
    before = key.read_bytes()
    assert bottle_init.ensure_ca() is False, "an existing CA is kept"
    assert key.read_bytes() == before
    assert not (dirs["ca"] / ".init").exists()


def test_ca_failure_says_what_failed(bottle_init, dirs, monkeypatch):
    monkeypatch.setattr(bottle_init, "ca_commands", lambda key, cert: [["openssl", "genpkey", "-algorithm", "no-such-algorithm"]])
    with pytest.raises(RuntimeError) as err:
        bottle_init.ensure_ca()
    assert "creating the bottle CA failed (genpkey: 1)" in str(err.value)
    assert str(dirs["ca"]) in str(err.value)
    assert not (dirs["ca"] / "bottle-ca.key").exists()


def test_egress_gets_the_bottle_ca_as_its_mitmproxy_ca(bottle_init, dirs):
    bottle_init.ensure_ca()
    bottle_init.stage_config(["egress"])
    confdir = dirs["run"] / "egress" / "mitmproxy"
    key = (dirs["ca"] / "bottle-ca.key").read_text()
    cert = (dirs["ca"] / "bottle-ca.pem").read_text()
    assert (confdir / "mitmproxy-ca.pem").read_text() == key.rstrip("\n") + "\n" + cert
    assert (confdir / "mitmproxy-ca-cert.pem").read_text() == cert
    assert stat.S_IMODE((confdir / "mitmproxy-ca.pem").stat().st_mode) == 0o400


def test_behind_pipelock_egress_keeps_its_own_ca(bottle_init, dirs):
    bottle_init.ensure_ca()
    (dirs["ca"] / "bottle-ca.key").chmod(0o600)
    bottle_init.stage_config(["egress", "pipelock"])
    assert not (dirs["run"] / "egress" / "mitmproxy" / "mitmproxy-ca.pem").exists()
    assert (dirs["run"] / "pipelock" / "bottle-ca.key").exists()


# --- supervision --------------------------------------------------------------------------

DAEMON = """
import signal, sys, time
mode = sys.argv[1]
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "reloads":
    signal.signal(signal.SIGHUP, lambda *a: print("reloaded", flush=True))
print("%s up" % mode, flush=True)
if mode == "dies":
    time.sleep(0.3)
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def supervisor(bottle_init, dirs, tmp_path, monkeypatch):
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    modes = {}

    def command(name, chained=False):
        return [sys.executable, str(script), modes[name]], {}
    monkeypatch.setattr(bottle_init, "daemon_command", command)

    def make(grace=2.0, **daemon_modes):
        modes.update(daemon_modes)
        for name in daemon_modes:
            (dirs["run"] / name).mkdir(exist_ok=True)
        sup = bottle_init.Supervisor(list(daemon_modes), grace)
        for name in daemon_modes:
            sup.start(name)
        return sup
    yield make


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_daemon_output_lines_are_prefixed_with_its_name(supervisor, capsys):
    sup = supervisor(egress="idle")
    captured = []
    assert wait_for(lambda: captured.append(capsys.readouterr().out) or "idle up" in "".join(captured))
    text = "".join(captured)
    assert "[egress] idle up\n" in text
    assert "[bottle-init] started egress (pid" in text
    sup.stop_all("test")


def test_a_dead_daemon_fails_closed_and_is_named(supervisor, capsys):
    sup = supervisor(egress="idle", pipelock="dies")
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 5
    out = capsys.readouterr().out
    assert "[bottle-init] pipelock exited with 3: failing closed, stopping the bundle" in out
    assert sup.procs["egress"].poll() is not None, "the surviving daemon was stopped too"


def test_stop_sends_sigterm_then_sigkill_after_grace(supervisor, capsys):
    sup = supervisor(grace=0.5, egress="idle", pipelock="stubborn")
    assert wait_for(lambda: "stubborn up" in capsys.readouterr().out)
    sup.stopping = True
    started = time.monotonic()
    assert sup.run() == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert "[bottle-init] pipelock did not stop within 0.5s: SIGKILL" in out
    assert "egress did not stop" not in out, "a daemon that honours SIGTERM is not killed"
    assert 0.4 < elapsed < 3
    assert sup.procs["pipelock"].returncode == -9
    assert sup.procs["egress"].returncode == -15


def test_sighup_restages_and_forwards_to_pipelock(bottle_init, supervisor, capsys, monkeypatch):
    staged = []
    monkeypatch.setattr(bottle_init, "stage_config", staged.append)
    sup = supervisor(egress="idle", pipelock="reloads")
    assert wait_for(lambda: "reloads up" in capsys.readouterr().out)
    sup.reload_requested = True
    sup.stopping = False

    captured = []

    def reloaded():
        captured.append(capsys.readouterr().out)
        return "[pipelock] reloaded" in "".join(captured)

    # run() handles the reload on its first pass; stop it from another thread afterwards.
    import threading
    threading.Thread(target=lambda: (wait_for(reloaded), setattr(sup, "stopping", True)), daemon=True).start()
    assert sup.run() == 0
    assert staged == [["egress", "pipelock"]]
    assert "[pipelock] reloaded" in "".join(captured)
    assert "[bottle-init] SIGHUP: reloading configuration" in "".join(captured)


def test_a_reload_that_cannot_stage_fails_closed(bottle_init, supervisor, capsys, monkeypatch):
    def refuse(names):
        raise RuntimeError("staging failed for egress: /run/bottle/egress/egress.json.new is a symlink")
    monkeypatch.setattr(bottle_init, "stage_config", refuse)
    sup = supervisor(egress="idle")
    assert wait_for(lambda: "idle up" in capsys.readouterr().out)
    sup.reload_requested = True
    assert sup.run() == 1
    out = capsys.readouterr().out
    assert ("[bottle-init] reload failed: staging failed for egress: /run/bottle/egress/egress.json.new is a "
            "symlink: failing closed, stopping the bundle") in out
    assert sup.procs["egress"].poll() is not None, "the daemons are stopped"


def test_configuration_error_exits_2(bottle_init, monkeypatch, capsys):
    monkeypatch.setenv("BOTTLE_DAEMONS", "pipelock,egress,nope")
    assert bottle_init.main() == 2
    assert "configuration error: BOTTLE_DAEMONS names unknown daemon(s) nope" in capsys.readouterr().out


def test_supervise_gets_its_store_setgid_for_the_host_group(bottle_init, dirs, tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    monkeypatch.setattr(bottle_init, "SUPERVISE_STORE", str(store))
    bottle_init.stage_config(["supervise"])
    for path in (store, store / "proposals"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o2770, path
        assert (path.stat().st_uid, path.stat().st_gid) == (ME.pw_uid, store.stat().st_gid)


def test_supervise_without_its_store_fails_naming_it(bottle_init, dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(bottle_init, "SUPERVISE_STORE", str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="absent is not mounted"):
        bottle_init.stage_config(["supervise"])


def test_egress_gets_the_audit_folder_and_the_host_group_keeps_it(bottle_init, dirs, tmp_path, monkeypatch):
    audit = tmp_path / "audit"
    audit.mkdir(mode=0o700)
    monkeypatch.setattr(bottle_init, "AUDIT_DIR", str(audit))
    bottle_init.ensure_ca()
    bottle_init.stage_config(["egress"])
    assert stat.S_IMODE(audit.stat().st_mode) == 0o2770
    _argv, env = bottle_init.daemon_command("egress")
    assert env["BOTTLE_EGRESS_AUDIT"] == str(audit) + "/egress.jsonl"
    monkeypatch.setattr(bottle_init, "AUDIT_DIR", str(tmp_path / "not-mounted"))
    assert "BOTTLE_EGRESS_AUDIT" not in bottle_init.daemon_command("egress")[1]


# -- the hang watch: a daemon failing its health checks 3 times in a row is restarted, within a bound

def test_hang_watch_counts_failures_in_a_row_and_bounds_restarts(bottle_init):
    now = [0.0]
    watch = bottle_init.HangWatch(checks=3, restarts_max=2, window=60, clock=lambda: now[0])
    bad, good = {"egress": "unhealthy: hung", "supervise": "healthy"}, {"egress": "healthy", "supervise": "healthy"}
    assert watch.observe(bad) == [] and watch.observe(bad) == []
    assert watch.observe(good) == [] and watch.observe(bad) == [] and watch.observe(bad) == []
    assert watch.observe(bad) == ["egress"]
    assert watch.may_restart() and watch.may_restart() and not watch.may_restart()
    now[0] = 61.0
    assert watch.may_restart(), "restarts older than the window no longer count"
    watch.restarted("egress", grace=10)
    assert [watch.observe(bad) for _check in range(5)] == [[]] * 5, "checks in the grace after a restart do not count"
    now[0] = 72.0
    assert watch.observe(bad) == [] and watch.observe(bad) == [] and watch.observe(bad) == ["egress"]


def test_a_daemon_failing_its_checks_while_it_works_is_busy_not_hung(bottle_init):
    """bench/tools.py's npm ci on a loaded machine: egress answered the probe late for many checks while
    serving hundreds of tunnels, and was killed three times mid-install. CPU time used marks it busy."""
    watch = bottle_init.HangWatch(checks=3, busy_checks=6, clock=lambda: 0.0)
    bad = {"egress": "unhealthy: 127.0.0.1:8888 accepted but did not answer within 1s (hung?)"}
    assert [watch.observe(bad, {"egress": 1.0 + n}) for n in range(5)] == [[]] * 5, "working: busy, not hung"
    assert watch.observe(bad, {"egress": 6.0}) == ["egress"], "busy past busy_checks in a row: hung"
    watch.restarted("egress", grace=0)
    assert watch.observe(bad, {"egress": 7.0}) == [] and watch.observe(bad, {"egress": 7.0}) == []
    assert watch.observe(bad, {"egress": 7.0}) == ["egress"], "no CPU time used for 3 checks: hung"
    watch.restarted("egress", grace=0)
    assert watch.observe(bad, {"egress": 8.0}) == [] and watch.observe(bad, {"egress": 8.0}) == []
    assert watch.observe(bad, {"egress": 9.0}) == [], "one check with work done: not stalled in a row"
    assert watch.observe({"egress": "healthy"}, {"egress": 9.0}) == []
    assert [watch.observe(bad, None) for _check in range(3)] == [[], [], ["egress"]], "CPU unknown: every failure a stall"


def test_cpu_seconds_sums_a_process_group(bottle_init, tmp_path):
    def proc(pid, pgrp, utime, stime, comm="mitm dump) (x"):
        (tmp_path / str(pid)).mkdir()
        rest = "S 1 %d %d 0 -1 4194560 0 0 0 0 %d %d 0 0 20 0 1 0" % (pgrp, pgrp, utime, stime)
        (tmp_path / str(pid) / "stat").write_text("%d (%s) %s" % (pid, comm, rest))
    proc(10, 10, 300, 100)
    proc(11, 10, 50, 50)
    proc(12, 12, 999, 999)
    (tmp_path / "self").mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    assert bottle_init.cpu_seconds(10, str(tmp_path)) == 500 / float(ticks)
    assert bottle_init.cpu_seconds(99, str(tmp_path)) == 0.0


def test_a_stopped_daemon_uses_no_cpu_time(supervisor, bottle_init):
    sup = supervisor(egress="idle", supervise="idle")
    proc = sup.procs["egress"]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        before = sup.cpu_used()["egress"]
        time.sleep(0.3)
        assert before is not None and sup.cpu_used()["egress"] == before
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        sup.stop_all("test")


def test_a_bundles_start_gets_the_grace_of_a_restart(bottle_init):
    """Every bottle starting at once (after an engine restart or a reboot) loads the host: a daemon's first answer
    can take seconds. That is not a hang (the fleet test's bundles failed closed at start without the grace)."""
    now = [0.0]
    watch = bottle_init.HangWatch(checks=3, restarts_max=3, window=600, clock=lambda: now[0])
    watch.started(["egress", "supervise"])
    slow = {"egress": "unhealthy: did not answer within 1s", "supervise": "unhealthy: did not answer within 1s"}
    assert [watch.observe(slow) for _check in range(5)] == [[]] * 5
    now[0] = bottle_init.RESTART_GRACE + 1
    assert watch.observe(slow) == [] and watch.observe(slow) == []
    assert watch.observe(slow) == ["egress", "supervise"], "still not answering after the grace: hung"
    watch.started(["egress"])
    assert watch.observe({"egress": "healthy"}) == []
    again = {"egress": "unhealthy: did not answer within 1s"}
    assert [watch.observe(again) for _check in range(3)] == [[], [], ["egress"]], "once it answered, the grace is over"


def test_a_hung_daemon_is_killed_restarted_and_audited(supervisor, bottle_init, tmp_path, monkeypatch, capsys):
    audit = tmp_path / "bundle.jsonl"
    monkeypatch.setattr(bottle_init, "BUNDLE_AUDIT", str(audit))
    sup = supervisor(egress="idle", supervise="idle")
    old = sup.procs["egress"]
    os.kill(old.pid, signal.SIGSTOP)  # hung: SIGTERM would stay pending, SIGKILL is not
    assert sup.restart_hung(["egress"])
    assert old.returncode == -9 and sup.procs["egress"].pid != old.pid and sup.procs["egress"].poll() is None
    (line,) = [json.loads(x) for x in audit.read_text().splitlines()]
    assert line["event"] == "restart" and line["daemon"] == "egress" and line["pid"] == old.pid
    assert line["reason"] == "3 failed health checks in a row" and line["restarts_in_window"] == 1
    assert "egress failed 3 health checks in a row (hung): restarting it" in capsys.readouterr().out
    sup.stop_all("test")


def test_past_the_restart_bound_the_bundle_fails_closed(supervisor, bottle_init, tmp_path, monkeypatch, capsys):
    audit = tmp_path / "bundle.jsonl"
    monkeypatch.setattr(bottle_init, "BUNDLE_AUDIT", str(audit))
    monkeypatch.setattr(bottle_init, "RESTART_GRACE", 0.0)
    sup = supervisor(egress="idle", supervise="idle")
    sup.hang_watch = bottle_init.HangWatch(checks=3, restarts_max=1, window=600)
    reports = []

    def report(names):
        reports.append(names)
        return {"egress": "unhealthy: 127.0.0.1:8888 accepted but did not answer within 1s (hung?)",
                "supervise": "healthy"}
    threading.Thread(target=sup.watch, args=(0.02, report), daemon=True).start()
    assert sup.run() == 1
    events = [json.loads(x)["event"] for x in audit.read_text().splitlines()]
    assert events == ["restart", "fail-closed"]
    assert len(reports) >= 6
    out = capsys.readouterr().out
    assert "egress is hung and 1 restarts were made within 600s: failing closed, stopping the bundle" in out
    assert all(p.poll() is not None for p in sup.procs.values()), "every daemon is stopped"


def test_the_audit_line_is_not_written_through_a_link(bottle_init, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "bundle.jsonl"
    link.symlink_to(target)
    bottle_init.audit_line({"event": "restart"}, str(link))
    assert target.read_text() == "" and "cannot write" in capsys.readouterr().out
    hard = tmp_path / "hard.jsonl"
    os.link(target, hard)
    bottle_init.audit_line({"event": "restart"}, str(hard))
    assert target.read_text() == "" and "not a regular file with one name" in capsys.readouterr().out


def test_the_scan_socket_directory_is_egress_s_with_git_gate_s_group_only(bottle_init, tmp_path, monkeypatch):
    users = {"egress": (10002, 10002), "gitgate": (10003, 10003)}
    monkeypatch.setattr(bottle_init.pwd, "getpwnam", lambda name: type("pw", (), {
        "pw_uid": users[name][0], "pw_gid": users[name][1]})())
    owners = []
    monkeypatch.setattr(bottle_init.os, "chown", lambda path, uid, gid: owners.append((path, uid, gid)))
    path = str(tmp_path / "dlp")
    (tmp_path / "dlp").mkdir()
    (tmp_path / "dlp" / "stale.sock").write_text("")
    assert bottle_init.prepare_scan_dir(["egress", "git-gate"], path) == path
    assert owners == [(path, 10002, 10003)]
    assert oct(os.stat(path).st_mode & 0o7777) == "0o2710" and os.listdir(path) == []
    assert bottle_init.prepare_scan_dir(["egress"], str(tmp_path / "other")) is None
    assert not (tmp_path / "other").exists()
