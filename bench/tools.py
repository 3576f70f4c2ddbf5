#!/usr/bin/env python
"""Real package managers through a bottle, side by side with a plain container, in one run.

The registries are the test internet's own (images/testnet/registries: Verdaccio as
registry.bottle.test, pypiserver as pypi.bottle.test:8443, seeded at image build, offline): nothing
leaves this machine. Each client runs from a cold cache:
  npm ci       of the fixed lockfile (several hundred packages: past the old rate limit's burst)
  pip install  -r of the fixed requirements (a small data-science stack) into a fresh venv
in these places:
  plain                a container on the test network, no proxy (the baseline)
  bottle               a bottle's agent through egress (this tree's bundle image), Docker's DNS
  bottle, dropping DNS the same bottle with egress's resolv.conf pointed at the registries
                       container's DNS server, which drops half of the queries that arrive together
  old egress, dropping the same with another bundle image (--old-bundle-image, e.g. the one built
                       before the resolver: getaddrinfo per tunnel): the resolver's fix on its own
Aim (issue 22): bottle <= 1.3x plain, with and without the dropping resolver.

--smoke: npm ci and pip install once in plain and bottle (Docker DNS), for `make bench-smoke`.
--real:  the same npm and pip projects against the public registries (registry.npmjs.org, pypi.org,
         files.pythonhosted.org): one install in a bottle and one in a plain container. Ordinary
         use of each registry by its own client; opt-in (`make bench-real`), never in `make test`.
Every wait has a deadline; everything the benchmark starts is removed at the end, also on failure.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chain import PLAYBOOK, ROOT, BenchError, sh, wait_for  # noqa: E402

# Names and subnet of what the run creates (BENCH_PREFIX, BENCH_SUBNET: to run beside another run).
PREFIX = os.environ.get("BENCH_PREFIX", "bb-tools")
NET, SUBNET = PREFIX + "-net", os.environ.get("BENCH_SUBNET", "172.28.247.0/24")
REGISTRIES = PREFIX + "-registries"
PLAIN = PREFIX + "-plain"
INSTANCE = os.environ.get("BENCH_INSTANCE", "")
REGISTRIES_IMAGE = os.environ.get("TESTREGISTRIES_IMAGE", "botbottle/testregistries:latest")
AGENT_IMAGE = os.environ.get("AGENT_IMAGE", "botbottle/agent:latest")
NPM_REGISTRY = "https://registry.bottle.test/"
PIP_INDEX = "https://pypi.bottle.test:8443/simple/"
WORK = "/home/agent/work"
CA_TARGET = "/usr/local/share/ca-certificates/bottle-ca.crt"

INVENTORY = """
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
    bottle_agent_image: %(agent_image)s
    bottle_agents:
      tools:
        description: Package managers; no model is called.
        policy: tools
    bottle_policies:
      tools:
        model: {credential: api_key}
        allowed_domains: %(domains)s
        firewall:
          ports: [443, 8443]
"""
TEST_DOMAINS = ["registry.bottle.test", "pypi.bottle.test"]
REAL_DOMAINS = ["registry.npmjs.org", "pypi.org", "files.pythonhosted.org"]


def build_registries_image():
    """images/testnet/registries, context images/testnet plus the build's extra CA (as bottle_image)."""
    extra_ca = os.environ.get("EXTRA_CA", "/etc/ssl/certs/ca-certificates.crt")
    context = tempfile.mkdtemp(prefix="bb-tools-build-")
    try:
        testnet = os.path.join(ROOT, "images", "testnet")
        shutil.copytree(os.path.join(testnet, "registries"), os.path.join(context, "registries"))
        for name in ("dnsserver.py", "gen-certs.sh"):
            shutil.copy(os.path.join(testnet, name), context)
        with open(os.path.join(context, "extra-ca.pem"), "w") as handle:
            if extra_ca and os.path.exists(extra_ca):
                with open(extra_ca) as source:
                    handle.write(source.read())
        print("building %s (seeds the registries from npm and PyPI: a few minutes)" % REGISTRIES_IMAGE, flush=True)
        sh(["docker", "build", "-q", "-f", os.path.join(context, "registries", "Dockerfile"), "-t", REGISTRIES_IMAGE,
            context], timeout=1800, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    finally:
        shutil.rmtree(context, ignore_errors=True)


class Tools:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bb-bench-tools-")
        self.started = []
        self.bottles = []
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
        self.results = []

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        if not self.args.real:
            if sh(["docker", "image", "inspect", REGISTRIES_IMAGE], check=False).returncode != 0:
                build_registries_image()
            sh(["docker", "rm", "-f", REGISTRIES, PLAIN], check=False)
            if sh(["docker", "network", "inspect", NET], check=False).returncode != 0:
                sh(["docker", "network", "create", "--subnet", SUBNET, "--label", "io.botbottle.test=1", NET])
                self.started.append(("network", NET))
            aliases = []
            for host in TEST_DOMAINS:
                aliases += ["--network-alias", host]
            sh(["docker", "run", "-d", "--name", REGISTRIES, "--label", "io.botbottle.test=1", "--network", NET,
                "-e", "DNS_DROP_SHARE=0.5"] + aliases + [REGISTRIES_IMAGE])
            self.started.append(("container", REGISTRIES))
            ca = sh(["docker", "exec", REGISTRIES, "cat", "/srv/registries/ca.pem"]).stdout
            self.registries_ip = sh(["docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}"
                                     % NET, REGISTRIES]).stdout.strip()
            wait_for("the registries to answer", self._registries_up, 60, logs=REGISTRIES)
        else:
            ca = ""
        self.ca_file = os.path.join(self.tmp, "registries-ca.pem")
        with open(self.ca_file, "w") as handle:
            handle.write(ca)
        # The fixed projects: the image's own (lockfile resolved at registry.bottle.test) or, for
        # --real, the same package.json and requirements against the public registries.
        self.project = os.path.join(self.tmp, "project")
        os.makedirs(self.project)
        if not self.args.real:
            for path in ("/srv/seed/npm/package.json", "/srv/seed/npm/package-lock.json",
                         "/srv/seed/pip/requirements.txt"):
                sh(["docker", "cp", "%s:%s" % (REGISTRIES, path), self.project])
        else:
            registries = os.path.join(ROOT, "images", "testnet", "registries")
            shutil.copy(os.path.join(registries, "package.json"), self.project)
            shutil.copy(os.path.join(registries, "requirements.in"), os.path.join(self.project, "requirements.txt"))
        network = ["--network", NET] if not self.args.real else []
        sh(["docker", "run", "-d", "--name", PLAIN, "--label", "io.botbottle.test=1"] + network
           + ["--entrypoint", "sleep", AGENT_IMAGE, "infinity"])
        self.started.append(("container", PLAIN))
        if not self.args.real:
            # Trusted as a bottle trusts its CA: in the system store, and Node's extra CA file.
            sh(["docker", "cp", self.ca_file, PLAIN + ":" + CA_TARGET])
            sh(["docker", "exec", "-u", "root", PLAIN, "update-ca-certificates"])
        self.copy_project(PLAIN)

    def _registries_up(self):
        probe = ("curl -sf --cacert /srv/registries/ca.pem --resolve registry.bottle.test:443:127.0.0.1 "
                 "https://registry.bottle.test/-/ping >/dev/null && "
                 "curl -sf --cacert /srv/registries/ca.pem --resolve pypi.bottle.test:8443:127.0.0.1 "
                 "https://pypi.bottle.test:8443/simple/ >/dev/null")
        return sh(["docker", "exec", REGISTRIES, "sh", "-c", probe], check=False).returncode == 0

    def copy_project(self, container):
        # The agent makes the directory (a bottle's root has no capabilities to); the copied files only
        # need to be readable: npm ci writes node_modules beside them, pip reads requirements.txt.
        sh(["docker", "exec", "-u", "agent", container, "mkdir", "-p", WORK + "/project"])
        for name in os.listdir(self.project):
            os.chmod(os.path.join(self.project, name), 0o644)
            sh(["docker", "cp", os.path.join(self.project, name), "%s:%s/project/%s" % (container, WORK, name)])

    def launch(self, instance, bundle_image):
        instance = INSTANCE + instance
        slug = "tools-" + instance
        inventory = os.path.join(self.tmp, "inventory-%s.yml" % instance)
        with open(inventory, "w") as handle:
            handle.write(INVENTORY % {"net": NET, "subnet": SUBNET, "ca": self.ca_file, "agent_image": AGENT_IMAGE,
                                      "domains": json.dumps(REAL_DOMAINS if self.args.real else TEST_DOMAINS)})
        extra = ["-e", "bottle_bundle_image=" + bundle_image]
        if self.args.real:
            extra += ["-e", "bottle_bundle_extra_networks=[]", "-e", "bottle_ssrf_ip_allowlist=[]"]
            if os.environ.get("UPSTREAM_CA"):
                extra += ["-e", "bottle_upstream_ca_file=" + os.environ["UPSTREAM_CA"]]
        self.bottles.append((slug, inventory))
        proc = sh([PLAYBOOK, "playbooks/bottle.yml", "-i", inventory, "-e", "agent=tools",
                   "-e", "bottle_instance=" + instance] + extra, check=False, env=self.env, timeout=900)
        if proc.returncode != 0:
            raise BenchError("launching bottle %s failed:\n%s" % (slug, proc.stdout[-3000:]))
        agent, bundle = "bb-%s-agent" % slug, "bb-%s-bundle" % slug
        self.copy_project(agent)
        return agent, bundle

    def teardown(self):
        for slug, inventory in self.bottles:
            sh([PLAYBOOK, "playbooks/teardown.yml", "-i", inventory, "-e", "bottle=" + slug,
                "-e", "bottle_archive=false"], check=False, env=self.env, timeout=300)
        for kind, name in reversed(self.started):
            sh(["docker", "rm", "-f", name] if kind == "container" else ["docker", "network", "rm", name], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- measurements ------------------------------------------------------------------------
    def timed(self, container, script, plain):
        env = []
        if plain and not self.args.real:
            env = ["-e", "NODE_EXTRA_CA_CERTS=" + CA_TARGET]
        start = time.monotonic()
        proc = sh(["docker", "exec", "-u", "agent", "-w", WORK + "/project"] + env + [container, "bash", "-c", script],
                  check=False, timeout=1800)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise BenchError("%s: %s failed (rc %d):\n%s" % (
                container, script.split("&&")[-1].strip()[:60], proc.returncode, (proc.stdout + proc.stderr)[-2500:]))
        return elapsed, proc.stdout + proc.stderr

    def installs(self, label, container, plain=False):
        run = len(self.results)
        if self.args.real:
            npm = ("npm install --no-fund --no-audit --no-package-lock "
                   "--cache /tmp/npm-cache-%d" % run)
            pip = ("python3 -m venv /tmp/venv-%d && /tmp/venv-%d/bin/pip install -q --no-cache-dir -r requirements.txt"
                   % (run, run))
        else:
            npm = ("npm ci --no-fund --no-audit --registry %s --cache /tmp/npm-cache-%d"
                   % (NPM_REGISTRY, run))
            pip = ("python3 -m venv /tmp/venv-%d && /tmp/venv-%d/bin/pip install -q --no-cache-dir --index-url %s "
                   "-r requirements.txt" % (run, run, PIP_INDEX))
        # A cold start each time: no node_modules (removed outside the timing), a fresh cache and venv.
        self.timed(container, "rm -rf node_modules", plain)
        npm_s, _out = self.timed(container, npm, plain)
        pip_s, _out = self.timed(container, pip, plain)
        self.results.append({"where": label, "npm_s": npm_s, "pip_s": pip_s})
        print("  %-28s npm %6.2f s   pip %6.2f s" % (label, npm_s, pip_s), flush=True)

    def drop_dns(self, bundle):
        """egress's resolver -> the registries container's dropping DNS server (read again on change)."""
        sh(["docker", "exec", "-u", "root", bundle, "sh", "-c",
            "printf 'nameserver %s\\noptions ndots:0\\n' > /etc/resolv.conf" % self.registries_ip])

    def connection_costs(self, container, plain):
        """Median time to the first byte of a registry request on a new connection and on a reused
        one (one curl, two URLs): through a bottle, a new tunnel costs the agent's TLS with egress and
        egress's TCP + TLS with the registry; in the plain container only the latter."""
        script = ("for i in 1 2 3 4 5; do curl -s -o /dev/null -o /dev/null -w '%%{time_starttransfer} ' "
                  "%s-/ping %s-/ping; echo; done" % (NPM_REGISTRY, NPM_REGISTRY))
        _s, out = self.timed(container, script, plain)
        pairs = [line.split() for line in out.splitlines() if len(line.split()) == 2]
        first = sorted(float(a) for a, _b in pairs)[len(pairs) // 2]
        again = sorted(float(b) for _a, b in pairs)[len(pairs) // 2]
        return first * 1000, again * 1000

    def connects(self, bundle):
        out = sh(["docker", "logs", bundle], check=False)
        return sum(1 for line in (out.stdout + out.stderr).splitlines()
                   if '"event":"connect"' in line and "registry.bottle.test" in line)

    def egress_429s(self, bundle):
        out = sh(["docker", "logs", bundle], check=False)
        return (out.stdout + out.stderr).count('"rule":"rate-limit"')

    def run(self):
        self.setup()
        packages = 0
        lock = os.path.join(self.project, "package-lock.json")
        if os.path.exists(lock):
            with open(lock) as handle:
                packages = sum(1 for key in json.load(handle).get("packages", {}) if key)
        print("tools: npm project of %s packages, pip project of %d files%s" % (
            packages or "(resolved at install)", sum(1 for line in open(os.path.join(self.project, "requirements.txt"))
                                                     if line.strip() and not line.startswith("#")),
            ", public registries" if self.args.real else ""), flush=True)
        self.installs("plain container", PLAIN, plain=True)
        agent, bundle = self.launch("new", self.args.bundle_image)
        self.installs("bottle", agent)
        if not self.args.smoke and not self.args.real:
            self.drop_dns(bundle)
            self.installs("bottle, dropping DNS", agent)
            if self.args.old_bundle_image:
                old_agent, old_bundle = self.launch("old", self.args.old_bundle_image)
                self.drop_dns(old_bundle)
                self.installs("old egress, dropping DNS", old_agent)
        refused = self.egress_429s(bundle)
        if not self.args.real:
            # Would reusing upstream connections across tunnels pay? Its upper bound: every tunnel's
            # upstream TCP + TLS set-up (the plain container's new-minus-reused time) saved once.
            tunnels = self.connects(bundle)
            plain_new, plain_again = self.connection_costs(PLAIN, True)
            bottle_new, bottle_again = self.connection_costs(agent, False)
            upstream_ms = max(0.0, plain_new - plain_again)
            bottle_npm = self.results[1]["npm_s"]
            runs = sum(1 for row in self.results if row["where"].startswith("bottle"))  # in this bundle
            print("connections: %d CONNECTs to the npm registry for %d npm runs in the bottle; first byte on a new "
                  "connection %.1f ms, reused %.1f ms (bottle), %.1f / %.1f ms (plain)"
                  % (tunnels, runs, bottle_new, bottle_again, plain_new, plain_again))
            if tunnels:
                per_run = tunnels / float(runs)
                # npm fetches on up to 15 sockets at once: set-ups overlap, so the serial sum is a bound.
                print("upstream reuse across tunnels could save at most %.0f tunnels x %.1f ms = %.2f s of the bottle's "
                      "npm ci (%.2f s, %.0f%%) if every set-up were serial; %.2f s (%.0f%%) at npm's 15 sockets"
                      % (per_run, upstream_ms, per_run * upstream_ms / 1000, bottle_npm,
                         100 * per_run * upstream_ms / 1000 / bottle_npm, per_run * upstream_ms / 15000,
                         100 * per_run * upstream_ms / 15000 / bottle_npm))
        base = self.results[0]
        print("\n%-28s %8s %8s %8s %8s" % ("", "npm s", "x plain", "pip s", "x plain"))
        for row in self.results:
            print("%-28s %8.2f %8.2f %8.2f %8.2f" % (
                row["where"], row["npm_s"], row["npm_s"] / base["npm_s"], row["pip_s"], row["pip_s"] / base["pip_s"]))
        print("rate-limit refusals in the bottle: %d" % refused)
        if refused:
            raise BenchError("the bottle answered %d requests 429: real work met the rate limit" % refused)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="plain and bottle once each (make bench-smoke)")
    parser.add_argument("--real", action="store_true", help="the public registries (make bench-real; opt-in)")
    parser.add_argument("--bundle-image", default=os.environ.get("BUNDLE_IMAGE", "botbottle/bundle:latest"))
    parser.add_argument("--old-bundle-image", default=os.environ.get("OLD_BUNDLE_IMAGE"),
                        help="a bundle image to compare with, under the dropping DNS")
    args = parser.parse_args()
    tools = Tools(args)
    try:
        tools.run()
    except BenchError as exc:
        print("bench tools: FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        tools.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
