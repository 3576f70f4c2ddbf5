# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the console reads bottles and sends decisions: the collection's own code, nothing else.

- ``LocalBackend``: this machine. Bottles as ``bottle_listing.collect`` lists them for ``bottle_info`` too
  (state directories and labelled containers), health with ``fleet_view.add_health``, proposals with
  ``supervise_decide.list_all``, firewall decisions with ``audit_log.Follower``, decisions with
  ``supervise_decide.decide`` (the function ``bottle_supervise`` runs).
- ``AnsibleBackend``: an inventory's other hosts. The collection's modules run ad hoc through
  ``ansible`` (``bottle_info`` with ``health`` and ``audit``, ``bottle_supervise`` to list and decide).

Every backend offers ``archives() -> (archives, problems)`` too: the archives teardown left of torn-down
bottles under the archive root (``audit_archive``), as ``bottle_info`` with ``archived`` and
``archive_events`` lists them (read by ``audit_log``): slug, agent, archived, counts (asks, decisions,
allowed, refused, held), ``firewall`` by host and supervise's ``events``. They are read-only.

Every backend offers ``bottles() -> (bottles, problems)``, ``proposals() -> (proposals, problems)``
and ``decide(proposal, decision, note="", changes=None, scope="bottle", bind_new_host=False) -> result``
(``bind_new_host``: approve a route whose credential already serves other hosts for this one too); bottles and
proposals carry ``inventory_host`` (the machine, as the inventory names it; a proposal's ``host`` is what
it asks for) and ``slug``; a bottle carries ``firewall`` (rows of
``audit_log.HostTally``) and ``health``. ``decide`` raises ``DecisionError`` with a message for the
operator. ``revoke(inventory_host, agent, host) -> result`` takes back an agent-wide approval (the console's
``x``); a bottle carries ``agent_approvals`` (its agent's, as ``["domain x", "route y"]``).

Nothing an agent wrote is ever evaluated. ``AnsibleBackend`` never puts a value on ``ansible``'s command line
(ansible-core 2.19 templates command-line arguments and ``-e @file`` extra vars as trusted): the module's
arguments travel in a YAML vars file in a private temporary directory (0700, the file 0600, removed after the
run) whose one variable is tagged ``!unsafe``, which Ansible never templates; the command line holds only
fixed references to it (``{"note": "{{ bb_console_args.note }}", ...}``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive, audit_log, bottle_listing, fleet_view
from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_decide
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import SuperviseError

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


class DecisionError(Exception):
    pass


def token_ref(proposal):
    """The credential (token_ref) approving a route proposal needs, or None."""
    if proposal.get("kind") != "route":
        return None
    return (proposal.get("auth") or {}).get("token_ref") or proposal.get("auth_ref") or None


def lookup_tokens(proposal, environ=None):
    """({ref: value} from the environment, as the playbooks look credentials up; missing ref or None)."""
    environ = os.environ if environ is None else environ
    ref = token_ref(proposal)
    if not ref:
        return {}, None
    value = environ.get(ref)
    if value in (None, ""):
        return {}, ref
    return {ref: value}, None


def with_entered(proposal, decision, environ, entered=None):
    """The credentials an approval sends: the console's environment, then what the operator entered at the
    console's prompt (``entered``, held in memory only); {} for any other decision."""
    if decision != "approve":
        return {}
    tokens, _missing = lookup_tokens(proposal, environ)
    ref = token_ref(proposal)
    if ref and not tokens and entered and entered.get(ref):
        tokens = {ref: entered[ref]}
    return tokens


class _NoEngine:
    """Stands in for a Docker client where no engine answers: state directories only."""

    class _Empty:
        @staticmethod
        def list(**_kwargs):
            return []

    containers = networks = _Empty()


def docker_client():
    """A Docker client of the default engine, or None when none answers."""
    try:
        import docker  # pylint: disable=import-outside-toplevel
        from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (  # pylint: disable=import-outside-toplevel
            default_docker_host)
        client = docker.DockerClient(base_url=default_docker_host(), timeout=10)
        client.ping()
        return client
    except Exception:  # pylint: disable=broad-except  # no engine is a state the console shows
        return None


class LocalBackend:
    """This machine's bottles, read and decided with the collection's module_utils."""

    def __init__(self, state_root=naming.DEFAULT_STATE_ROOT, host="localhost", client_factory=docker_client,
                 environ=None, reload_client_factory=None, archive_root=audit_archive.DEFAULT_ROOT):
        self.state_root = os.path.abspath(os.path.expanduser(state_root))
        self.archive_root = os.path.abspath(os.path.expanduser(archive_root))
        self.host = host
        self.client_factory = client_factory
        self.environ = os.environ if environ is None else environ
        self.followers = {}
        self.engine = None
        # The engine a decision reloads the bundle through (None: supervise_decide connects to the default one).
        self.reload_client_factory = reload_client_factory

    def follower(self, state_dir):
        if state_dir not in self.followers:
            self.followers[state_dir] = audit_log.Follower(state_dir)
        return self.followers[state_dir]

    def bottles(self):
        problems = []
        client = self.client_factory() if self.client_factory else None
        self.engine = client is not None
        if client is None:
            problems.append("%s: %s: bottles from their state directories only" % (
                self.host, "no Docker engine answers" if self.client_factory else "Docker not looked at"))
        try:
            bottles = bottle_listing.collect(client or _NoEngine(), self.state_root, machines=[])
            if client is not None:
                fleet_view.add_health(client, bottles)
                fleet_view.add_agent_oom(client, bottles)
        except Exception as exc:  # pylint: disable=broad-except  # an engine error is shown, not fatal
            problems.append("%s: listing bottles failed: %s" % (self.host, exc))
            bottles = []
        for b in bottles:
            b["inventory_host"] = self.host
            b.setdefault("health", {})
            b["running"] = any(c.get("component") == "bundle" and c.get("status") == "running"
                               for c in b.get("containers", []))
            b["firewall"] = []
            b["agent_approvals"] = self.agent_approvals(b.get("agent"))
            if b.get("state_dir"):
                follower = self.follower(b["state_dir"])
                follower.poll()
                b["firewall"] = follower.hosts.rows()
        return bottles, problems

    def agent_approvals(self, agent):
        """What ``agent``'s agent-wide approvals hold (["domain x", "route y"]; [] when none or unreadable)."""
        if not agent:
            return []
        try:
            return supervise_decide.agent_approvals_text(self.state_root, agent)[1]
        except (OSError, ValueError, SuperviseError):
            return []

    def revoke(self, inventory_host, agent, host):
        """Take back ``agent``'s agent-wide approval of ``host`` (``supervise_decide.revoke_agent_approval``)."""
        del inventory_host  # this machine's
        try:
            return supervise_decide.revoke_agent_approval(self.state_root, agent, host)
        except SuperviseError as exc:
            raise DecisionError(str(exc))

    def archives(self):
        try:
            found = bottle_listing.archived(self.archive_root, events=True)
        except Exception as exc:  # pylint: disable=broad-except  # shown in the log
            return [], ["%s: reading the archives under %s failed: %s" % (self.host, self.archive_root, exc)]
        return with_host(found, self.host)

    def proposals(self):
        found, problems = supervise_decide.list_all(self.state_root)
        return [dict(p, inventory_host=self.host) for p in found], ["%s: %s" % (self.host, why) for why in problems]

    def decide(self, proposal, decision, note="", changes=None, scope="bottle", bind_new_host=False, tokens=None):
        tokens = with_entered(proposal, decision, self.environ, tokens)
        try:
            return supervise_decide.decide(self.state_root, proposal["slug"], proposal["id"], decision, note=note,
                                           changes=changes or None, tokens=tokens, scope=scope,
                                           client_factory=self.reload_client_factory, bind_new_host=bind_new_host)
        except SuperviseError as exc:
            raise DecisionError(str(exc))


# --- other hosts of an inventory, through ansible ad hoc -------------------------------------------

_RESULT_RE = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!)(?: \| rc=-?\d+)? => ", re.M)


def parse_minimal(output):
    """{host: (state, result)} from the ``minimal`` callback's output."""
    results = {}
    decoder = json.JSONDecoder()
    for match in _RESULT_RE.finditer(output):
        try:
            value, _end = decoder.raw_decode(output, match.end())
        except ValueError:
            value = {"msg": "unreadable result"}
        results[match.group(1)] = (match.group(2), value if isinstance(value, dict) else {"msg": str(value)})
    return results


ARGS_VAR = "bb_console_args"


class _Unsafe:
    """A mapping written with the ``!unsafe`` tag: Ansible reads it as data, never as a template."""

    def __init__(self, value):
        self.value = value


class _UnsafeDumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
    pass


_UnsafeDumper.add_representer(_Unsafe, lambda dumper, data: dumper.represent_mapping("!unsafe", data.value))


def write_unsafe_vars(directory, args):
    """A vars file (0600) in ``directory`` holding ``args`` as ``bb_console_args``, tagged ``!unsafe``; its path."""
    path = os.path.join(directory, "args.yml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.dump({ARGS_VAR: _Unsafe(args)}, out, Dumper=_UnsafeDumper, allow_unicode=True, default_flow_style=False)
    return path


def module_args_referring(args):
    """The ``-a`` of an ad hoc run: each argument a fixed reference into the vars file, no value of its own."""
    return json.dumps({key: "{{ %s.%s }}" % (ARGS_VAR, key) for key in args})


def with_host(archives, host):
    """(archives marked with ``inventory_host``, the problems their reading met)."""
    problems = ["%s: archive %s: %s" % (host, os.path.basename(a.get("path") or "?"), why)
                for a in archives for why in a.get("problems") or []]
    return [dict(a, inventory_host=host) for a in archives], problems


class AnsibleBackend:
    """Bottles on an inventory's hosts, read and decided by running the collection's modules ad hoc."""

    poll_interval = 5.0     # an ad hoc run takes seconds: asks of other hosts are looked for less often
    bottle_interval = 15.0

    def __init__(self, inventory, hosts, state_root=naming.DEFAULT_STATE_ROOT, ansible="ansible",
                 environ=None, timeout=120, archive_root=audit_archive.DEFAULT_ROOT):
        self.inventory = inventory
        self.hosts = list(hosts)
        self.state_root = state_root
        self.archive_root = archive_root  # a path on each host (~ is the remote user's home)
        self.ansible = ansible
        self.environ = dict(os.environ if environ is None else environ)
        self.timeout = timeout

    def run(self, pattern, module, args):
        """Run ``module`` ad hoc on ``pattern`` with ``args`` (data only: see the module's doc); (results, error)."""
        env = dict(self.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0")
        private = None
        try:
            # Arguments (a note, changes, credentials) travel in a private file, never on a command line.
            private = tempfile.mkdtemp(prefix="bb-console-")
            argv = [self.ansible, pattern, "-i", self.inventory, "-m", module, "-a", module_args_referring(args),
                    "-e", "@" + write_unsafe_vars(private, args)]
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {}, "%s %s: %s" % (self.ansible, module, exc)
        finally:
            if private:
                shutil.rmtree(private, ignore_errors=True)
        results = parse_minimal(proc.stdout)
        error = None if results else (proc.stderr.strip().splitlines() or ["no result (rc %d)" % proc.returncode])[-1]
        return results, error

    def _pattern(self):
        return ":".join(self.hosts)

    def _answers(self, results, problems):
        """Each host's module result that succeeded; a host whose run failed adds its message to ``problems``."""
        for host in self.hosts:
            state, result = results.get(host, (None, None))
            if result is None:
                continue
            if state not in ("SUCCESS", "CHANGED"):
                problems.append("%s: %s" % (host, result.get("msg", state)))
                continue
            yield host, result

    def bottles(self):
        if not self.hosts:
            return [], []
        results, error = self.run(self._pattern(), "botbottle.bottle.bottle_info",
                                  {"state_root": self.state_root, "health": True, "audit": True, "smolvm": False,
                                   "agent_approvals": True})
        out, problems = [], [error] if error else []
        for host, result in self._answers(results, problems):
            approvals = {a.get("agent"): a.get("entries") or [] for a in result.get("agent_approvals") or []}
            for b in result.get("bottles", []):
                b["inventory_host"] = host
                b["agent_approvals"] = approvals.get(b.get("agent"), [])
                b["running"] = any(c.get("component") == "bundle" and c.get("status") == "running"
                                   for c in b.get("containers", []))
                b.setdefault("firewall", [])
                out.append(b)
        return out, problems

    def archives(self):
        if not self.hosts:
            return [], []
        results, error = self.run(self._pattern(), "botbottle.bottle.bottle_info",
                                  {"state_root": self.state_root, "archived": True, "archive_events": True,
                                   "archive_root": self.archive_root, "smolvm": False})
        out, problems = [], [error] if error else []
        for host, result in self._answers(results, problems):
            found, bad = with_host(result.get("archives", []), host)
            out.extend(found)
            problems.extend(bad)
        return out, problems

    def proposals(self):
        if not self.hosts:
            return [], []
        results, error = self.run(self._pattern(), "botbottle.bottle.bottle_supervise", {"state_root": self.state_root})
        out, problems = [], [error] if error else []
        for host, result in self._answers(results, problems):
            out.extend(dict(p, inventory_host=host) for p in result.get("proposals", []))
            problems.extend("%s: %s" % (host, why) for why in result.get("problems", []))
        return out, problems

    def revoke(self, inventory_host, agent, host):
        """Take back ``agent``'s agent-wide approval of ``host`` on ``inventory_host`` (bottle_supervise revoke_agent;
        the host travels in the private vars file, as every argument)."""
        results, error = self.run(inventory_host, "botbottle.bottle.bottle_supervise",
                                  {"state_root": self.state_root, "revoke_agent": agent, "revoke_host": host})
        state, result = results.get(inventory_host, (None, None))
        if result is None:
            raise DecisionError("%s: %s" % (inventory_host, error or "no result"))
        if state not in ("SUCCESS", "CHANGED"):
            raise DecisionError(str(result.get("msg", state)))
        return result

    def decide(self, proposal, decision, note="", changes=None, scope="bottle", bind_new_host=False, tokens=None):
        tokens = with_entered(proposal, decision, self.environ, tokens)
        args = {"state_root": self.state_root, "slug": proposal["slug"], "id": proposal["id"],
                "decision": decision, "note": note, "changes": changes or {}, "scope": scope,
                "bind_new_host": bool(bind_new_host)}
        if tokens:
            args["tokens"] = tokens
        results, error = self.run(proposal["inventory_host"], "botbottle.bottle.bottle_supervise", args)
        state, result = results.get(proposal["inventory_host"], (None, None))
        if result is None:
            raise DecisionError("%s: %s" % (proposal["inventory_host"], error or "no result"))
        if state not in ("SUCCESS", "CHANGED"):
            raise DecisionError(str(result.get("msg", state)))
        return result


def inventory_hosts(inventory, pattern="all", ansible="ansible"):
    """The hosts ``pattern`` names in ``inventory`` (``ansible --list-hosts``)."""
    proc = subprocess.run([ansible, pattern, "-i", inventory, "--list-hosts"], capture_output=True, text=True,
                          check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    if proc.returncode != 0:
        raise ValueError("inventory %s: %s" % (inventory, (proc.stderr.strip().splitlines() or ["unreadable"])[-1]))
    return [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]


class Fleet:
    """Local bottles and those of remote hosts, as one backend."""

    def __init__(self, local=None, remote=None):
        self.local = local
        self.remote = remote
        self.parts = [b for b in (local, remote) if b is not None]

    def _owner(self, host):
        if self.local is not None and host == self.local.host:
            return self.local
        return self.remote

    def _gather(self, what):
        """``what`` (bottles, proposals or archives) of every part, and the problems met, as one list each."""
        out, problems = [], []
        for part in self.parts:
            found, bad = getattr(part, what)()
            out.extend(found)
            problems.extend(bad)
        return out, problems

    def bottles(self):
        return self._gather("bottles")

    def proposals(self):
        return self._gather("proposals")

    def archives(self):
        return self._gather("archives")

    def revoke(self, inventory_host, agent, host):
        owner = self._owner(inventory_host)
        if owner is None:
            raise DecisionError("no backend for host %s" % inventory_host)
        return owner.revoke(inventory_host, agent, host)

    def decide(self, proposal, decision, note="", changes=None, scope="bottle", bind_new_host=False, tokens=None):
        owner = self._owner(proposal["inventory_host"])
        if owner is None:
            raise DecisionError("no backend for host %s" % proposal["inventory_host"])
        return owner.decide(proposal, decision, note=note, changes=changes, scope=scope, bind_new_host=bind_new_host,
                            tokens=tokens)
