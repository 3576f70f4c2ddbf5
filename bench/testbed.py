"""The benchmarks' own set-up: the test internet, plain containers, bottles and their inventory.

bench/chain.py (and bench/soak.py through it) and bench/tools.py each put a server of the test internet
(our own container: testnet or the registries) on a network of their own, a plain container beside it
as the baseline, and bottles launched by the playbook from an inventory that reaches that network.
``Testbed`` records all it starts and removes it in ``teardown`` (also on failure): the bottles (each
torn down with its inventory), then containers, networks and images in the reverse order of their
making, then the run's temporary folder. Nothing here talks to any address outside this machine.
"""

import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
# What every benchmark inventory holds: the controller itself, the model credential as the controller would
# hold it (the test server's stand-in takes any), the bundle on the benchmark's network with that network's
# addresses let through egress's SSRF check, the test server's CA trusted upstream, and no supervise.
# Formatted with net, subnet and ca (and whatever the part a benchmark appends names); a benchmark appends
# its own vars (at four spaces), its agents and its policies.
INVENTORY_HEAD = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    ANTHROPIC_API_KEY: bench-model-key-not-real
    bottle_bundle_extra_networks: [%(net)s]
    bottle_ssrf_ip_allowlist: [%(subnet)s]
    bottle_upstream_ca_file: %(ca)s
    bottle_supervise_enabled: false
"""
# Marks what a test or benchmark started (docker ps --filter label=io.botbottle.test=1).
TEST_LABEL = ["--label", "io.botbottle.test=1"]


class BenchError(RuntimeError):
    pass


def sh(argv, check=True, timeout=600, **kw):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %d s" % (" ".join(argv[:4]), timeout))
    if check and proc.returncode != 0:
        raise BenchError("%s failed (%d): %s" % (" ".join(argv[:4]), proc.returncode,
                                                 (proc.stderr.strip() or proc.stdout.strip())[-2000:]))
    return proc


def wait_for(what, probe, deadline_s, logs=None):
    """Poll ``probe`` until it returns a true value; on the deadline, say what and show the logs."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    shown = sh(["docker", "logs", "--tail", "30", logs], check=False).stdout if logs else ""
    raise BenchError("waited %d s for %s%s" % (deadline_s, what, ("; last logs of %s:\n%s" % (logs, shown)) if logs else ""))


class Testbed:
    """What one benchmark run starts, and its removal. ``prefix``: the temporary folder's; ``teardown_args``:
    the teardown playbook's extra arguments for each bottle (where its archive goes, or none)."""

    def __init__(self, prefix, teardown_args):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.teardown_args = list(teardown_args)
        self.started = []          # (kind, name): containers, networks and images this run created
        self.bottles = []          # (slug, inventory) of each bottle launched
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))

    def network(self, name, subnet):
        """The benchmark's network (made, and removed at the end, unless it exists already)."""
        if sh(["docker", "network", "inspect", name], check=False).returncode != 0:
            sh(["docker", "network", "create", "--subnet", subnet] + TEST_LABEL + [name])
            self.started.append(("network", name))

    def container(self, name, network, args):
        """``docker run -d`` of ``args`` (options, then the image and its command) as ``name`` on ``network``
        (None: Docker's default), replacing a container of that name left by an earlier run."""
        sh(["docker", "rm", "-f", name], check=False)
        sh(["docker", "run", "-d", "--name", name] + TEST_LABEL + (["--network", network] if network else []) + args)
        self.started.append(("container", name))

    def server(self, name, image, network, hosts, env=()):
        """A server of the test internet: ``image`` on ``network``, answering as each of ``hosts``."""
        aliases = [arg for host in hosts for arg in ("--network-alias", host)]
        self.container(name, network, [arg for pair in env for arg in ("-e", pair)] + aliases + [image])

    def plain(self, name, image, network):
        """The baseline: a container of ``image`` (an agent image) on ``network``, no proxy, idle until exec'd."""
        self.container(name, network, ["--entrypoint", "sleep", image, "infinity"])

    def server_ca(self, server, path, name):
        """The CA file ``path`` of container ``server`` (waited for: the server may write it as it starts),
        copied into the run's folder as ``name``; its path."""
        def read():
            out = sh(["docker", "exec", server, "cat", path], check=False).stdout
            return out if "BEGIN CERTIFICATE" in out else None
        return self.write(name, wait_for("the CA of %s (docker exec %s cat %s)" % (server, server, path), read, 30,
                                         logs=server))

    def write(self, name, text):
        """A file of the run's folder; its path."""
        path = os.path.join(self.tmp, name)
        with open(path, "w") as handle:
            handle.write(text)
        return path

    def launch_bottle(self, inventory, agent, instance, extra=()):
        """Launch agent ``agent`` as instance ``instance`` (playbooks/bottle.yml with ``inventory`` and the
        ``extra`` arguments); its slug. Torn down at the end."""
        slug = "%s-%s" % (agent, instance)
        self.bottles.append((slug, inventory))
        proc = sh([PLAYBOOK, "playbooks/bottle.yml", "-i", inventory, "-e", "agent=" + agent,
                   "-e", "bottle_instance=" + instance] + list(extra), check=False, env=self.env, timeout=900)
        if proc.returncode != 0:
            raise BenchError("launching bottle %s failed:\n%s" % (slug, proc.stdout[-3000:]))
        return slug

    def teardown(self):
        for slug, inventory in self.bottles:
            sh([PLAYBOOK, "playbooks/teardown.yml", "-i", inventory, "-e", "bottle=" + slug] + self.teardown_args,
               check=False, env=self.env, timeout=300)
        for kind, name in reversed(self.started):
            argv = {"container": ["docker", "rm", "-f"], "network": ["docker", "network", "rm"],
                    "image": ["docker", "image", "rm", "-f"]}[kind]
            sh(argv + [name], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
