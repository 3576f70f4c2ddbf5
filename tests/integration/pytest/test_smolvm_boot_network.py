# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a booted smolvm 1.32 guest reaches: the [boot] statements of docs/architecture.md.

Run: .venv/bin/pytest -p no:cacheprovider tests/integration/pytest/test_smolvm_boot_network.py -ra -s

Every test needs a guest that boots (hardware KVM, or an Apple Silicon Mac); elsewhere each is skipped
with boot_supported()'s reason, printed. Order and meaning: docs/smolvm-boot-checklist.md.

The host side is this process: stand-ins for the bundle's three ports on a pool address, another port on
that address, a wildcard TCP and UDP listener, a 127.0.0.1 listener; each records what reached it. The
design's VM (no network, three ``--mount-socket``) is made as launches make it: the bottle's real host
relay (``relay_process``/``socket_relay``, the code ``bottle_socket_relay`` runs) and the agent image's
guest relay as the machine's workload. From inside the guest a Python probe dials each target (TCP
connect, UDP datagram) and sends a raw DNS query for a random name. Every target the guest did not reach
is classified by why: smolvm's own egress events (``machine egress-events --json``) name it - a policy
denial - or they do not - a guest-local refusal, which never counts as a block. ``claude -p`` through
egress runs in the Molecule scenario (``extensions/molecule/smolmachines/tasks/vm_probes.yml``), which launches
whole bottles.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import relay_process
from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm
from ansible_collections.botbottle.bottle.plugins.module_utils import socket_relay

pytestmark = pytest.mark.smolvm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PREFIX = "bbnet-%s" % uuid.uuid4().hex[:6]
AGENT_IMAGE = os.environ.get("BB_AGENT_IMAGE", "botbottle/agent:latest")
ADDR = "127.77.0.91"
BUNDLE_PORTS = (8888, 9418, 9100)
OTHER_PORT, WILD_TCP, WILD_UDP, LOCAL_PORT = 7101, 7102, 7103, 7104

GUEST_PROBE = r'''
import json, os, random, socket, string, sys
targets = json.loads(sys.argv[1])
out = {"interfaces": sorted(os.listdir("/sys/class/net")), "tcp": {}, "udp": {}, "dns": {}}
gw = None
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    if f[1] == "00000000":
        gw = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
out["gateway"] = gw
def name(t):
    return t.replace("GATEWAY", gw or "0.0.0.0")
for key, (host, port) in targets["tcp"].items():
    try:
        s = socket.create_connection((name(host), port), timeout=3)
        s.sendall(b"probe " + key.encode() + b"\n")
        out["tcp"][key] = "connected"
        s.close()
    except Exception as exc:
        out["tcp"][key] = type(exc).__name__ + ": " + str(exc)
for key, (host, port, token) in targets["udp"].items():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(token.encode(), (name(host), port))
        out["udp"][key] = "sent"
    except Exception as exc:
        out["udp"][key] = type(exc).__name__ + ": " + str(exc)
label = "".join(random.choice(string.ascii_lowercase) for _ in range(20))
query = (os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(label)]) + label.encode()
         + b"\x07invalid\x00\x00\x01\x00\x01")
servers = []
try:
    servers = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")]
except OSError:
    pass
for server in servers + ([gw] if gw else []) + ["1.1.1.1"]:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(query, (server, 53))
        data = s.recv(512)
        out["dns"][server] = "answered rcode %d" % (data[3] & 0x0F)
    except Exception as exc:
        out["dns"][server] = type(exc).__name__
out["dns_name"] = label + ".invalid"
print(json.dumps(out))
'''


def require_boot():
    ok, reason = smolvm.boot_supported()
    if not ok:
        print("skipping: guests cannot boot on this host: " + reason)
        pytest.skip("guests cannot boot on this host: " + reason)


class HostSide:
    """Listeners on the host that record who reached them."""

    def __init__(self):
        self.reached = set()
        self.sockets = []
        self.udp_tokens = set()

    def tcp(self, key, host, port):
        srv = socket.socket(socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(16)
        self.sockets.append(srv)

        def loop():
            while True:
                try:
                    conn, _peer = srv.accept()
                except OSError:
                    return
                self.reached.add(key)
                conn.close()
        threading.Thread(target=loop, daemon=True).start()

    def udp(self, host, port):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind((host, port))
        self.sockets.append(srv)

        def loop():
            while True:
                try:
                    data, _peer = srv.recvfrom(2048)
                except OSError:
                    return
                self.udp_tokens.add(data.decode("ascii", "replace"))
        threading.Thread(target=loop, daemon=True).start()

    def close(self):
        for sock in self.sockets:
            sock.close()


@pytest.fixture(scope="module")
def world():
    require_boot()
    binary = smolvm.find_smolvm()
    state_dir = tempfile.mkdtemp(prefix=PREFIX + "-state-") if smolvm.state_dir_supported() else None
    work = tempfile.mkdtemp(prefix=PREFIX + "-")
    image = os.path.join(work, "agent.tar")
    saved = subprocess.run(["docker", "save", AGENT_IMAGE, "-o", image], capture_output=True, text=True, check=False)
    assert saved.returncode == 0, "docker save %s failed: %s" % (AGENT_IMAGE, saved.stderr)
    cli = smolvm.SmolvmCLI(smolvm.subprocess_runner, binary, state_dir=state_dir)
    host = HostSide()
    tokens = {}
    relays = []
    try:
        socket.socket().bind((ADDR, 0))
    except OSError as exc:
        pytest.fail("cannot listen on %s (%s): on macOS give lo0 the address first: "
                    "sudo ifconfig lo0 alias %s up" % (ADDR, exc, ADDR))
    for port in BUNDLE_PORTS:
        host.tcp("bundle:%d" % port, ADDR, port)
    host.tcp("other-port", ADDR, OTHER_PORT)
    host.tcp("wildcard", "0.0.0.0", WILD_TCP)
    host.tcp("host-127.0.0.1", "127.0.0.1", LOCAL_PORT)
    host.udp(ADDR, 8888)
    host.udp("0.0.0.0", WILD_UDP)
    try:
        yield dict(cli=cli, image=image, work=work, host=host, tokens=tokens, state_dir=state_dir, environ={},
                   relays=relays)
    finally:
        for machine in cli.list_machines():
            if machine["name"].startswith(PREFIX):
                cli.run(smolvm.delete_argv(machine["name"]), check=False)
        host.close()
        for relay in relays:
            relay.stop()
        shutil.rmtree(work, ignore_errors=True)
        if state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


def targets():
    tcp = {"bundle:%d" % p: (ADDR, p) for p in BUNDLE_PORTS}
    tcp.update({"other-port": (ADDR, OTHER_PORT), "host-127.0.0.1": ("127.0.0.1", LOCAL_PORT),
                "wildcard": ("GATEWAY", WILD_TCP), "wildcard-at-addr": (ADDR, WILD_TCP),
                "gateway:8888": ("GATEWAY", 8888), "gateway:22": ("GATEWAY", 22)})
    udp = {"bundle-udp": (ADDR, 8888, uuid.uuid4().hex), "wildcard-udp": ("GATEWAY", WILD_UDP, uuid.uuid4().hex),
           "wildcard-udp-at-addr": (ADDR, WILD_UDP, uuid.uuid4().hex)}
    return {"tcp": tcp, "udp": udp}


@pytest.fixture
def started_vm(world):
    """Create and start a VM of the agent image: ``started_vm(suffix, *create_words, secret=None)`` -> name.

    ``secret``: the value of ``PROBE_SECRET``, by reference (``--secret-env``), handed to each start.
    ``world``'s teardown deletes every machine of this run.
    """
    def make(suffix, *extra, secret=None):
        name = "%s-%s" % (PREFIX, suffix)
        words = ["machine", "create", "--name", name, "--image", world["image"]]
        if secret is not None:
            words += ["--secret-env", "PROBE_SECRET=" + smolvm.secret_host_var("PROBE_SECRET")]
        world["cli"].run(words + list(extra))
        world["environ"][name] = smolvm.secret_environ({"PROBE_SECRET": secret}) if secret is not None else None
        start(world, name)
        return name
    return make


def start(world, name):
    world["cli"].run(smolvm.start_argv(name), environ=world["environ"].get(name))


def host_relay(world):
    """The bottle's host relay, as bottle_socket_relay runs it: sockets under the run's state dir to ADDR."""
    state = os.path.join(world["work"], "bottle")
    relay = relay_process.Relay(state)
    config = socket_relay.host_config(state, ADDR, list(socket_relay.SERVICE_ORDER))
    source = open(socket_relay.__file__, encoding="utf-8").read()
    if not relay.status(config, source)["current"]:
        relay.stop()
        relay.start(config, source, python=sys.executable)
    world["relays"].append(relay)
    return state


def socket_vm_words(state):
    """``machine create`` words of the design's VM (smolvm_machine with bottle_socket_relay's values)."""
    services = list(socket_relay.SERVICE_ORDER)
    spec = dict(mount_sockets=socket_relay.mounts(state, services), user="root",
                command=socket_relay.guest_command(services))
    return smolvm.opt_mount_sockets(spec) + smolvm.opt_user(spec) + smolvm.opt_command(spec)


def wait_guest_relay(world, name):
    """Until the workload (the guest relay) listens on the guest's 127.0.0.1:8888, at most 30 s."""
    for _attempt in range(60):
        rc, _out, _err = world["cli"].run(["machine", "exec", "--name", name, "--", "python3", "-c",
                                           "import socket; socket.create_connection(('127.0.0.1', 8888), 1)"],
                                          check=False)
        if rc == 0:
            return
        time.sleep(0.5)
    _rc, out, _err = world["cli"].run(["machine", "logs", "--name", name, "--tail", "30"], check=False)
    pytest.fail("the guest relay of %s never listened: %s" % (name, out.decode("utf-8", "replace")))


def guest(world, name, argv, timeout=120):
    rc, out, err = world["cli"].run(["machine", "exec", "--name", name, "--"] + argv, check=False)
    assert rc == 0, "guest %r failed: %s" % (argv[:2], err.decode("utf-8", "replace")[-2000:])
    return out.decode("utf-8", "replace")


def egress_events(world, name):
    _rc, out, _err = world["cli"].run(["machine", "egress-events", "--name", name, "--json"], check=False)
    try:
        doc = json.loads(out.decode() or "[]")
    except ValueError:
        return []
    return doc.get("events", doc) if isinstance(doc, dict) else doc


def classify(world, name, probe, wanted):
    """``{key: reached | denied by smolvm | not reached, guest-local}`` for every target."""
    events = json.dumps(egress_events(world, name))
    gateway = probe.get("gateway") or "-"
    out = {}
    for key, (host, _port) in wanted["tcp"].items():
        if key in world["host"].reached:
            out[key] = "reached"
        elif host.replace("GATEWAY", gateway) in events:
            out[key] = "denied by smolvm"
        else:
            out[key] = "not reached, guest-local"
    for key, (host, _port, token) in wanted["udp"].items():
        if token in world["host"].udp_tokens:
            out[key] = "reached"
        elif host.replace("GATEWAY", gateway) in events:
            out[key] = "denied by smolvm"
        else:
            out[key] = "not reached, guest-local"
    print("\n%s: %s\nguest probe: %s" % (name, json.dumps(out, indent=1), json.dumps(probe)))
    return out


def test_design_no_network_vm_reaches_exactly_the_three_ports(world, started_vm):
    """Checklist step 1, the decided mechanism: no network, the bundle's ports through three mounted sockets.

    The VM as a launch makes it (the image's guest relay as root workload, the bottle's host relay): the
    three ports at the guest's 127.0.0.1 reach the stand-ins at ADDR; nothing else does - another port,
    127.0.0.1 of the host, a wildcard listener, any gateway, TCP or UDP; the guest has only lo; a DNS
    query for a random name gets no answer from any server.
    """
    state = host_relay(world)
    name = started_vm("sock", *socket_vm_words(state))
    wait_guest_relay(world, name)
    wanted = targets()
    for port in BUNDLE_PORTS:  # through the guest relay, at the guest's own loopback
        wanted["tcp"]["bundle:%d" % port] = ("127.0.0.1", port)
    wanted["tcp"]["guest-127.0.0.1:9101"] = ("127.0.0.1", 9101)
    world["host"].reached.clear()
    probe = json.loads(guest(world, name, ["python3", "-c", GUEST_PROBE, json.dumps(wanted)]))
    wait_reached(world, ["bundle:%d" % p for p in BUNDLE_PORTS])
    got = classify(world, name, probe, wanted)
    assert probe["interfaces"] == ["lo"], "a VM without --net has only lo: %s" % probe["interfaces"]
    assert probe["gateway"] is None, "a VM without --net has no default route: %s" % probe["gateway"]
    for port in BUNDLE_PORTS:
        assert got["bundle:%d" % port] == "reached", got
    others = {k: v for k, v in got.items() if not k.startswith("bundle:")}
    assert all(v == "not reached, guest-local" for v in others.values()), others
    assert not any(v.startswith("answered") for v in probe["dns"].values()), \
        "a DNS answer reached a VM without a network: %s" % probe["dns"]


def test_today_allow_cidr_vm_reaches_no_bundle_and_has_dns(world, started_vm):
    """Checklist step 2: why the interim VM (--allow-cidr 127.77.0.X/32, what launches made before the
    sockets) was replaced.

    docs/architecture.md (2), (3): its 127/8 is its own, so the bundle's ports at ADDR are not reached and
    smolvm records no denial for them; the gateway is denied by smolvm's policy; DNS is answered.
    """
    name = started_vm("cidr", "--allow-cidr", ADDR + "/32")
    wanted = targets()
    probe = json.loads(guest(world, name, ["python3", "-c", GUEST_PROBE, json.dumps(wanted)]))
    got = classify(world, name, probe, wanted)
    for port in BUNDLE_PORTS:
        assert got["bundle:%d" % port] == "not reached, guest-local", got
    assert got["host-127.0.0.1"] == "not reached, guest-local"
    for key in ("gateway:8888", "gateway:22", "wildcard", "wildcard-udp"):
        assert got[key] == "denied by smolvm", (key, got)
    assert any(v.startswith("answered") for v in probe["dns"].values()), \
        "docs (3) says DNS keeps its own path: no answer came back (%s)" % probe["dns"]


def bundle_reached(world, name):
    """Whether each of the three ports reaches its stand-in from inside ``name`` (through both relays)."""
    world["host"].reached.clear()
    wanted = {"tcp": {"bundle:%d" % p: ("127.0.0.1", p) for p in BUNDLE_PORTS}, "udp": {}}
    guest(world, name, ["python3", "-c", GUEST_PROBE, json.dumps(wanted)])
    wait_reached(world, wanted["tcp"])
    return sorted(k for k in world["host"].reached if k.startswith("bundle:"))


def wait_reached(world, keys, seconds=5):
    """The relays dial on their own threads: give a connection the guest made time to arrive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not set(keys) <= world["host"].reached:
        time.sleep(0.1)


def test_secret_and_sockets_survive_stop_start_and_a_reboot(world, started_vm):
    """The secret reaches the workload at each start and never smolvm's state; the sockets work after a stop
    and start, and after what a host reboot leaves (the VMM and the host relay killed): the relay started
    again (as a relaunch's bottle_socket_relay does), then the machine (smolvm_machine state=started)."""
    value = "bbsecret-" + uuid.uuid4().hex
    state = host_relay(world)
    name = started_vm("sec", *socket_vm_words(state), secret=value)
    all_ports = ["bundle:%d" % p for p in BUNDLE_PORTS]
    read_secret = ["sh", "-c", "printf %s \"$PROBE_SECRET\""]
    wait_guest_relay(world, name)
    assert guest(world, name, read_secret) == value
    assert bundle_reached(world, name) == sorted(all_ports)

    world["cli"].run(smolvm.stop_argv(name))
    start(world, name)
    wait_guest_relay(world, name)
    assert guest(world, name, read_secret) == value
    assert bundle_reached(world, name) == sorted(all_ports), "after a stop and start"

    pid = world["cli"].get_machine(name).get("pid")
    assert pid, "machine ls --json gives no pid for a running machine"
    os.kill(pid, signal.SIGKILL)
    relay = relay_process.Relay(state)
    relay_pid = relay.pid()
    os.kill(relay_pid, signal.SIGKILL)
    time.sleep(2)
    assert world["cli"].get_machine(name)["state"] != "running"
    assert relay.pid() is None
    host_relay(world)
    start(world, name)
    wait_guest_relay(world, name)
    assert guest(world, name, read_secret) == value
    assert bundle_reached(world, name) == sorted(all_ports), "after a killed VMM and relay, relaunched"
    root = world["state_dir"] or os.path.expanduser("~/.local/share/smolvm")
    leaked = subprocess.run(["grep", "-rlF", "--", value, root], capture_output=True, text=True, check=False)
    assert leaked.returncode == 1, "the secret value persisted in smolvm's state: %s" % leaked.stdout
