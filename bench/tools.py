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
and each of issue 22's two fixes on its own, under the dropping DNS:
  resolver fix only    the same bottle with the old rate limit (600 a minute, burst 120) written
                       into its egress.json and reloaded (SIGHUP), as before the limit was resized
  rate-limit fix only  a second bottle whose bundle resolves with getaddrinfo per tunnel, as egress
                       did before resolver.py (this tree's bundle image with ssrf.system_resolver
                       replaced; built here, removed at the end)
  (--old-bundle-image IMAGE adds a row with any other bundle image under the dropping DNS.)
Aim (issue 22): bottle <= 1.3x plain, with and without the dropping resolver. A row with an old
behaviour may fail (npm gives up after 429s): it is shown as failed with its 429s, not an error.
Upstream connection reuse across tunnels (mitmproxy keeps a server connection per client
connection only): the run prints the most it could save, measured - the bottle's whole overhead
over the plain container - beside an estimate from the tunnels counted and their set-up time.

--smoke: npm ci and pip install once in plain and bottle (Docker DNS), for `make bench-smoke`.
--real:  the same npm and pip projects against the public registries (registry.npmjs.org, pypi.org,
         files.pythonhosted.org): one install on this host (when it has npm and python3), one in a
         plain container and one in a bottle. Ordinary use of each registry by its own client;
         opt-in (`make bench-real`), never in `make test`. Behind a TLS-intercepting proxy,
         UPSTREAM_CA=<its CA bundle> is trusted by the bottle's egress and by the plain container,
         as this host trusts it.
Every wait has a deadline; everything the benchmark starts is removed at the end, also on failure.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The set-up shared with bench/chain.py: the test network, the server, the plain container, the bottles.
from testbed import INVENTORY_HEAD, ROOT, BenchError, Testbed, sh, wait_for  # noqa: E402

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

INVENTORY = INVENTORY_HEAD + """    bottle_state_root: %(state)s
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
OLD_RATE_LIMIT = {"requests_per_minute": 600, "burst": 120}  # egress's default before issue 22
GETADDRINFO_IMAGE = PREFIX + "-bundle-getaddrinfo:bench"
# Appended to bottle_firewall/ssrf.py in the getaddrinfo image: a lookup per tunnel, no cache, glibc's
# timeouts - egress's resolution before resolver.py.
GETADDRINFO_PATCH = """

class _BenchGetaddrinfo:
    \"\"\"bench/tools.py only: getaddrinfo for every tunnel, as egress resolved before resolver.py.\"\"\"

    async def __call__(self, host, port=None):
        import asyncio
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        return [info[4][0] for info in infos]


system_resolver = _BenchGetaddrinfo()
"""


class Tools(Testbed):
    def __init__(self, args):
        super().__init__("bb-bench-tools-", ["-e", "bottle_archive=false"])
        os.chmod(self.tmp, 0o755)  # the bundle reads its state (bottle_state_root) under it
        self.args = args
        self.results = []

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        if not self.args.real:
            if sh(["docker", "image", "inspect", REGISTRIES_IMAGE], check=False).returncode != 0:
                raise BenchError("no %s image: make test-images builds it (playbooks/images.yml, "
                                 "bottle_images_include_testnet)" % REGISTRIES_IMAGE)
            self.network(NET, SUBNET)
            self.server(REGISTRIES, REGISTRIES_IMAGE, NET, TEST_DOMAINS, env=["DNS_DROP_SHARE=0.5"])
            self.ca_file = self.server_ca(REGISTRIES, "/srv/registries/ca.pem", "registries-ca.pem")
            self.registries_ip = sh(["docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}"
                                     % NET, REGISTRIES]).stdout.strip()
            wait_for("the registries to answer", self._registries_up, 180, logs=REGISTRIES)
        else:
            self.ca_file = self.write("registries-ca.pem", "")
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
        self.plain(PLAIN, AGENT_IMAGE, NET if not self.args.real else None)
        # Trusted as a bottle trusts its CA: in the system store, and Node's extra CA file. --real: the
        # CA of a TLS-intercepting proxy in front of this host (UPSTREAM_CA), which the host trusts.
        self.plain_ca = self.ca_file if not self.args.real else os.environ.get("UPSTREAM_CA")
        if self.plain_ca:
            sh(["docker", "cp", self.plain_ca, PLAIN + ":" + CA_TARGET])
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
        inventory = self.write("inventory-%s.yml" % instance, INVENTORY % {
            "net": NET, "subnet": SUBNET, "ca": self.ca_file, "agent_image": AGENT_IMAGE,
            "state": os.path.join(self.tmp, "state"),
            "domains": json.dumps(REAL_DOMAINS if self.args.real else TEST_DOMAINS)})
        extra = ["-e", "bottle_bundle_image=" + bundle_image]
        if self.args.real:
            # JSON: a key=value extra var is a string ("[]"), not an empty list.
            extra += ["-e", json.dumps({"bottle_bundle_extra_networks": [], "bottle_ssrf_ip_allowlist": []})]
            if os.environ.get("UPSTREAM_CA"):
                extra += ["-e", "bottle_upstream_ca_file=" + os.environ["UPSTREAM_CA"]]
        slug = self.launch_bottle(inventory, "tools", instance, extra)
        agent, bundle = "bb-%s-agent" % slug, "bb-%s-bundle" % slug
        self.copy_project(agent)
        return agent, bundle, slug

    # -- measurements ------------------------------------------------------------------------
    def timed(self, container, script, plain):
        env = []
        if plain and self.plain_ca:
            env = ["-e", "NODE_EXTRA_CA_CERTS=" + CA_TARGET]
        start = time.monotonic()
        if container is None:  # this host, in a copy of the project (--real)
            proc = sh(["bash", "-c", "cd %s && %s" % (self.host_project, script)], check=False, timeout=1800)
        else:
            proc = sh(["docker", "exec", "-u", "agent", "-w", WORK + "/project"] + env
                      + [container, "bash", "-c", script], check=False, timeout=1800)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise BenchError("%s: %s failed after %.2f s (rc %d):\n%s" % (
                container or "this host", script.split("&&")[-1].strip()[:60], elapsed, proc.returncode,
                (proc.stdout + proc.stderr)[-2500:]))
        return elapsed, proc.stdout + proc.stderr

    def installs(self, label, container, plain=False, bundle=None, may_fail=False):
        """npm and pip from a cold start in ``container`` (None: this host). ``may_fail``: a row of an
        old behaviour, whose failure (npm giving up after 429s) is shown, not raised."""
        run = len(self.results)
        scratch = "/tmp" if container is not None else self.tmp
        if self.args.real:
            npm = ("npm install --no-fund --no-audit --no-package-lock "
                   "--cache %s/npm-cache-%d" % (scratch, run))
            pip = ("python3 -m venv %s/venv-%d && %s/venv-%d/bin/pip install -q --no-cache-dir -r requirements.txt"
                   % (scratch, run, scratch, run))
        else:
            npm = ("npm ci --no-fund --no-audit --registry %s --cache %s/npm-cache-%d"
                   % (NPM_REGISTRY, scratch, run))
            pip = ("python3 -m venv %s/venv-%d && %s/venv-%d/bin/pip install -q --no-cache-dir --index-url %s "
                   "-r requirements.txt" % (scratch, run, scratch, run, PIP_INDEX))
        before = self.egress_429s(bundle) if bundle else 0
        connects = self.connects(bundle) if bundle else 0
        # A cold start each time: no node_modules (removed outside the timing), a fresh cache and venv.
        self.timed(container, "rm -rf node_modules", plain)
        row = {"where": label, "failed": []}
        for tool, script in (("npm", npm), ("pip", pip)):
            try:
                row[tool + "_s"], _out = self.timed(container, script, plain)
            except BenchError as exc:
                if not may_fail:
                    raise
                row[tool + "_s"] = float(str(exc).split("after ", 1)[1].split(" s", 1)[0])
                row["failed"].append(tool)
        row["429s"] = (self.egress_429s(bundle) - before) if bundle else 0
        row["connects"] = (self.connects(bundle) - connects) if bundle else 0
        self.results.append(row)
        print("  %-44s npm %6.2f s%s   pip %6.2f s%s   429s %d" % (
            label, row["npm_s"], " FAILED" if "npm" in row["failed"] else "", row["pip_s"],
            " FAILED" if "pip" in row["failed"] else "", row["429s"]), flush=True)

    def set_rate_limit(self, slug, bundle, rate_limit):
        """Write ``rate_limit`` into the bottle's egress.json and reload the bundle (SIGHUP: bottle-init
        stages it again; egress reads a changed file on its next request)."""
        path = os.path.join(self.tmp, "state", slug, "bundle", "egress.json")
        with open(path) as handle:
            config = json.load(handle)
        config["rate_limit"] = rate_limit
        with open(path, "w") as handle:
            json.dump(config, handle)
        sh(["docker", "kill", "-s", "HUP", bundle])

        def staged():
            out = sh(["docker", "exec", "-u", "root", bundle, "cat", "/run/bottle/egress/egress.json"], check=False)
            try:
                return json.loads(out.stdout).get("rate_limit") == rate_limit
            except ValueError:
                return False
        wait_for("the bundle to stage the rate limit %r" % rate_limit, staged, 60, logs=bundle)

    def getaddrinfo_image(self):
        """This tree's bundle image with egress resolving by getaddrinfo per tunnel (GETADDRINFO_PATCH)."""
        context = os.path.join(self.tmp, "getaddrinfo")
        os.makedirs(context)
        with open(os.path.join(context, "patch.py"), "w") as handle:
            handle.write(GETADDRINFO_PATCH)
        with open(os.path.join(context, "Dockerfile"), "w") as handle:
            handle.write("FROM %s\nCOPY patch.py /tmp/patch.py\nRUN cat /tmp/patch.py >> "
                         "/opt/egress/bottle_firewall/ssrf.py && rm /tmp/patch.py\n" % self.args.bundle_image)
        sh(["docker", "build", "-q", "-t", GETADDRINFO_IMAGE, context], timeout=600,
           env=dict(os.environ, DOCKER_BUILDKIT="0"))
        self.started.append(("image", GETADDRINFO_IMAGE))
        return GETADDRINFO_IMAGE

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

    def reuse(self, agent, bundle):
        """Would reusing upstream connections across tunnels pay? Issue 22: implement it only if it cuts
        the bottle's time by 20% or more. mitmproxy 12 keeps server connections per client connection
        (HttpLayer.connections), so every tunnel npm opens dials the registry again. Two figures:
          measured bound  the bottle's whole overhead over the plain container (bottle - plain): no
                          change in egress, reuse included, can save more than that;
          estimate        tunnels counted x the upstream set-up they repeat (the plain container's
                          first byte on a new connection minus on a reused one), serial and at npm's
                          15 sockets."""
        bottle = next(row for row in self.results if row["where"] == "bottle")
        plain = next(row for row in self.results if row["where"] == "plain container")
        plain_new, plain_again = self.connection_costs(PLAIN, True)
        bottle_new, bottle_again = self.connection_costs(agent, False)
        upstream_ms = max(0.0, plain_new - plain_again)
        tunnels = bottle["connects"]
        print("\nupstream connection reuse across tunnels:")
        print("  %d CONNECTs to the npm registry for one npm ci in the bottle; first byte on a new connection "
              "%.1f ms, reused %.1f ms (bottle), %.1f / %.1f ms (plain)"
              % (tunnels, bottle_new, bottle_again, plain_new, plain_again))
        print("  estimate: %d tunnels x %.1f ms upstream set-up = %.2f s if every set-up were serial, %.2f s at "
              "npm's 15 sockets (%.0f%% of the bottle's npm ci)" % (
                  tunnels, upstream_ms, tunnels * upstream_ms / 1000, tunnels * upstream_ms / 15000,
                  100 * tunnels * upstream_ms / 15000 / bottle["npm_s"]))
        for tool in ("npm", "pip"):
            overhead = max(0.0, bottle[tool + "_s"] - plain[tool + "_s"])
            share = 100 * overhead / bottle[tool + "_s"]
            print("  measured bound, %s: the bottle's whole overhead is %.2f s of its %.2f s (%.0f%%): reuse saves "
                  "less than that - %s the 20%% that would justify it" % (
                      tool, overhead, bottle[tool + "_s"], share, "below" if share < 20 else "NOT below"))

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
        if self.args.real and shutil.which("npm") and shutil.which("python3"):
            self.host_project = os.path.join(self.tmp, "host-project")
            shutil.copytree(self.project, self.host_project)
            self.installs("this host", None)
        self.installs("plain container", PLAIN, plain=True)
        agent, bundle, slug = self.launch("new", self.args.bundle_image)
        self.installs("bottle", agent, bundle=bundle)
        if not self.args.smoke and not self.args.real:
            self.drop_dns(bundle)
            self.installs("bottle, dropping DNS", agent, bundle=bundle)
        # Real work must never meet the limit: the rows above, with both fixes, count.
        refused = sum(row["429s"] for row in self.results)
        if not self.args.smoke and not self.args.real:
            self.set_rate_limit(slug, bundle, OLD_RATE_LIMIT)
            self.installs("resolver fix only (old rate limit), dropping DNS", agent, bundle=bundle, may_fail=True)
            gai_agent, gai_bundle, _slug = self.launch("gai", self.getaddrinfo_image())
            self.drop_dns(gai_bundle)
            self.installs("rate-limit fix only (getaddrinfo), dropping DNS", gai_agent, bundle=gai_bundle,
                          may_fail=True)
            if self.args.old_bundle_image:
                old_agent, old_bundle, _slug = self.launch("old", self.args.old_bundle_image)
                self.drop_dns(old_bundle)
                self.installs("%s, dropping DNS" % self.args.old_bundle_image, old_agent, bundle=old_bundle,
                              may_fail=True)
        if not self.args.real:
            self.reuse(agent, bundle)
        base = next(row for row in self.results if row["where"] == "plain container")
        print("\n%-48s %8s %8s %8s %8s %6s" % ("", "npm s", "x plain", "pip s", "x plain", "429s"))
        for row in self.results:
            print("%-48s %8.2f %8.2f %8.2f %8.2f %6d%s" % (
                row["where"], row["npm_s"], row["npm_s"] / base["npm_s"], row["pip_s"], row["pip_s"] / base["pip_s"],
                row["429s"], ("   (%s failed)" % " and ".join(row["failed"])) if row["failed"] else ""))
        print("rate-limit refusals in the bottle (both fixes): %d" % refused)
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
