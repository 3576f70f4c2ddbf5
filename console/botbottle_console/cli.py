# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console's command line: which bottles to watch (this machine's, or an inventory's hosts)."""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def importable_collection():
    """Make ``ansible_collections.botbottle.bottle`` importable: the collections path this console was installed
    into (``<path>/ansible_collections/botbottle/bottle/console``), else this checkout's link
    (scripts/collection-link.sh)."""
    try:
        import ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        return None
    except ImportError:
        pass
    parts = ROOT.split(os.sep)
    if parts[-3:] == ["ansible_collections", "botbottle", "bottle"]:
        sys.path.insert(0, os.sep.join(parts[:-3]) or os.sep)
        return None
    link = os.path.join(ROOT, ".build", "collections")
    if not os.path.isdir(os.path.join(link, "ansible_collections", "botbottle", "bottle")):
        return "the collection is not linked: run make setup (or bash scripts/collection-link.sh) in %s" % ROOT
    sys.path.insert(0, link)
    return None


def parser():
    p = argparse.ArgumentParser(
        prog="console",
        description="Watch bottles (health, firewall decisions) and decide the asks of their agents. "
                    "From the checkout: make console ARGS=\"...\", or .venv/bin/python console ...; installed: "
                    "python <collections path>/ansible_collections/botbottle/bottle/console ...")
    p.add_argument("-i", "--inventory", help="an Ansible inventory: watch its hosts (default: this machine only)")
    p.add_argument("--hosts", default="all", help="the inventory's hosts to watch, an Ansible pattern (default: all)")
    p.add_argument("--state-root", default="~/.bot-bottle/state",
                   help="where bottles keep their state (default: ~/.bot-bottle/state)")
    p.add_argument("--archive-root", default="~/.bot-bottle/archive",
                   help="where teardown archives bottles' audit, on each host (the role's bottle_archive_root; "
                        "default: ~/.bot-bottle/archive); v in the console shows them")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks for new asks on this machine")
    p.add_argument("--no-notify", action="store_true", help="no desktop notification (the terminal bell still rings)")
    return p


def ansible_command():
    beside = os.path.join(os.path.dirname(sys.executable), "ansible")
    return beside if os.access(beside, os.X_OK) else "ansible"


def build_backend(args):
    from botbottle_console import backend as bk  # pylint: disable=import-outside-toplevel
    if not args.inventory:
        return bk.LocalBackend(args.state_root, archive_root=args.archive_root)
    os.environ.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))
    hosts = bk.inventory_hosts(args.inventory, args.hosts, ansible_command())
    if not hosts:
        raise ValueError("inventory %s has no host matching %r" % (args.inventory, args.hosts))
    local = next((h for h in hosts if h in bk.LOCAL_NAMES), None)
    remote = [h for h in hosts if h not in bk.LOCAL_NAMES]
    return bk.Fleet(bk.LocalBackend(args.state_root, host=local, archive_root=args.archive_root) if local else None,
                    bk.AnsibleBackend(args.inventory, remote, args.state_root, ansible_command(),
                                      archive_root=args.archive_root) if remote else None)


def main(argv=None):
    args = parser().parse_args(argv)
    problem = importable_collection()
    if problem:
        print("console: " + problem, file=sys.stderr)
        return 2
    try:
        backend = build_backend(args)
    except ValueError as exc:
        print("console: %s" % exc, file=sys.stderr)
        return 2
    from botbottle_console import notify  # pylint: disable=import-outside-toplevel
    from botbottle_console.app import ConsoleApp  # pylint: disable=import-outside-toplevel
    app = ConsoleApp(backend, poll=args.poll, notifier=None if args.no_notify else notify.desktop)
    app.run()
    # Textual sets a non-zero return code when the console died of an error (after printing it).
    return app.return_code or 0
