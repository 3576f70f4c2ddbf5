# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git_gate: a policy's git_gate validated key by key, normalised, and the agent's git config."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import git_gate_policy as git_gate
from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, resolve

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIPpedB8yaxuGAaG1qMfF9EFSLZnPOesJBB2cOrcOorlK"
HOST_KEY = "ssh-ed25519 " + KEY
REPO = {"url": "ssh://git@git.example.com/team/app.git", "identity": "/home/me/.ssh/gate",
        "host_key": HOST_KEY, "protected_branches": ["main", "release/*"]}


def gate(**repo_overrides):
    repo = dict(REPO)
    repo.update(repo_overrides)
    return {"user": {"name": "Agent", "email": "agent@example.com"}, "repos": {"app": repo}}


def check(value):
    git_gate.check(value, "bottle_policies.p.git_gate", ManifestError)


def test_a_valid_gate_passes():
    check(gate())


@pytest.mark.parametrize("value, message", [
    ({"repo": {}}, "git_gate.repo is not a known key"),
    ({"user": {"name": "A", "mail": "x"}}, "git_gate.user.mail is not a known key"),
    ({"user": {"email": "not-an-address"}}, "git_gate.user.email 'not-an-address' is not an email address"),
    ({"repos": []}, "git_gate.repos must be a mapping"),
    ({"repos": {"../x": dict(REPO)}}, "git_gate.repos.../x: a repo name uses"),
    ({"repos": {"app": dict(REPO, branch="main")}}, "git_gate.repos.app.branch is not a known key"),
    ({"repos": {"app": {k: v for k, v in REPO.items() if k != "identity"}}},
     "git_gate.repos.app.identity is required"),
    ({"repos": {"app": dict(REPO, url="https://git.example.com/team/app.git")}},
     "git_gate.repos.app.url 'https://git.example.com/team/app.git' is not an ssh:// URL"),
    ({"repos": {"app": dict(REPO, url="ssh://git@git.example.com/../etc/passwd")}}, "is not an ssh:// URL"),
    ({"repos": {"app": dict(REPO, host_key="ssh-ed25519 not-base64!")}},
     "git_gate.repos.app.host_key is not a public host key line"),
    ({"repos": {"app": dict(REPO, host_key="ssh-rsa " + KEY)}}, "host_key is not a public host key line"),
    ({"repos": {"app": dict(REPO, host_key="AAAA")}}, "host_key is not a public host key line"),
    ({"repos": {"app": dict(REPO, identity="id_ed25519")}}, "identity 'id_ed25519' must be an absolute path"),
    ({"repos": {"app": dict(REPO, protected_branches="main")}}, "protected_branches must be a list"),
    ({"repos": {"app": dict(REPO, protected_branches=["refs/heads/main"])}},
     "protected_branches[0] 'refs/heads/main' is not a branch name"),
    ({"repos": {"app": dict(REPO, protected_branches=["a..b"])}}, "is not a branch name"),
    ({"repos": {"app": dict(REPO, protected_tags="v*")}}, "protected_tags must be a list of tag name patterns"),
    ({"repos": {"app": dict(REPO, protected_tags=["refs/tags/v1"])}},
     "protected_tags[0] 'refs/tags/v1' is not a tag name pattern"),
    ({"repos": {"app": dict(REPO, protected_tags=["a b"])}}, "is not a tag name pattern"),
    ({"repos": {"app": dict(REPO, allowed_fingerprints="x")}}, "allowed_fingerprints must be a list"),
    ({"repos": {"app": dict(REPO, allowed_fingerprints=[3])}}, "allowed_fingerprints[0] must be a string"),
    ({"repos": {"app": dict(REPO, allowed_fingerprints=["ghp_abc"])}}, "'ghp_abc' is not a fingerprint"),
    ({"repos": {"app": dict(REPO, allowed_fingerprints=["known-secret:" + "a" * 40])}},
     "a known secret (secret_env or a route's credential) is never allowed out"),
    ({"repos": {"app": dict(REPO), "copy": dict(REPO, url="ssh://git@GIT.example.com:22/team/app")}},
     "git_gate.repos.copy.url is the same upstream as bottle_policies.p.git_gate.repos.app.url"),
])
def test_each_bad_key_is_named_with_the_fix(value, message):
    with pytest.raises(ManifestError) as err:
        check(value)
    assert message in str(err.value)


def test_host_key_accepts_a_known_hosts_line_and_a_comment():
    assert git_gate.parse_host_key("git.example.com " + HOST_KEY + " root@host") == ("ssh-ed25519", KEY)
    assert git_gate.parse_host_key("[git.example.com]:2222 " + HOST_KEY) == ("ssh-ed25519", KEY)


def test_normalise_pins_the_key_to_the_url_host_and_port():
    out = git_gate.normalise(gate(url="ssh://git@git.example.com:2222/team/app.git"))
    repo = out["repos"][0]
    assert repo["known_hosts"] == "[git.example.com]:2222 ssh-ed25519 " + KEY
    assert repo["mount"] == {"source": "/home/me/.ssh/gate", "target": "/etc/bottle-identities/app",
                             "read_only": True}
    assert out["bundle_config"] == {"repos": [{"name": "app", "url": "ssh://git@git.example.com:2222/team/app.git",
                                               "known_hosts": repo["known_hosts"],
                                               "protected_branches": ["main", "release/*"],
                                               "protected_tags": ["*"], "allowed_fingerprints": []}]}
    assert "identity" not in str(out["bundle_config"])


def test_normalise_without_repos_is_none():
    assert git_gate.normalise(None) is None
    assert git_gate.normalise({"user": {"name": "A"}}) is None


def test_aliases_cover_every_spelling_of_the_upstream():
    aliases = git_gate.normalise(gate())["repos"][0]["aliases"]
    for form in ("ssh://git@git.example.com/team/app.git", "ssh://git@git.example.com/team/app",
                 "git@git.example.com:team/app.git", "git@git.example.com:team/app",
                 "ssh://git.example.com/team/app.git", "https://git.example.com/team/app.git",
                 "https://git.example.com/team/app"):
        assert form in aliases
    assert len(aliases) == len(set(aliases))


def test_gitconfig_rewrites_to_the_gate_and_disables_credential_helpers():
    text = git_gate.gitconfig(git_gate.normalise(gate()), "172.29.0.2")
    assert "[user]\n\tname = Agent\n\temail = agent@example.com\n" in text
    assert '[url "git://172.29.0.2:9418/app.git"]\n\tinsteadOf = ssh://git@git.example.com/team/app.git\n' in text
    assert text.endswith("[credential]\n\thelper =\n")


def test_resolve_returns_the_merged_gate_and_rechecks_duplicates_across_extends():
    policies = {"base": {"allowed_domains": ["a.example.com"], "git_gate": {"repos": {"app": dict(REPO)}}},
                "child": {"extends": "base", "git_gate": {"user": {"name": "Child"},
                                                          "repos": {"lib": dict(REPO, url="ssh://git@x.example.com/lib.git")}}}}
    r = resolve({"a": {"policy": "child"}}, policies, "a")
    assert [repo["name"] for repo in r["git_gate"]["repos"]] == ["app", "lib"]
    assert r["git_gate"]["user"] == {"name": "Child"}
    policies["child"]["git_gate"]["repos"]["lib"]["url"] = REPO["url"]
    with pytest.raises(ManifestError) as err:
        resolve({"a": {"policy": "child"}}, policies, "a")
    assert "(merged along extends).repos.lib.url is the same upstream" in str(err.value)


def test_resolve_without_git_gate_is_none():
    r = resolve({"a": {"policy": "p"}}, {"p": {"allowed_domains": ["a.example.com"]}}, "a")
    assert r["git_gate"] is None


def test_protected_tags_and_allowed_fingerprints_reach_the_bundle():
    repo = dict(REPO, protected_tags=["v*"], allowed_fingerprints=[
        "kingfisher.aws.1:" + "a" * 40, "b" * 40 + ":tests/fixture.txt:generic-api-key:3"])
    git_gate.check({"repos": {"app": repo}}, "policy.git_gate", ValueError)
    bundle = git_gate.normalise({"repos": {"app": repo}})["bundle_config"]["repos"][0]
    assert bundle["protected_tags"] == ["v*"] and len(bundle["allowed_fingerprints"]) == 2
    assert git_gate.normalise({"repos": {"app": REPO}})["bundle_config"]["repos"][0]["protected_tags"] == ["*"]
    assert git_gate.normalise({"repos": {"app": dict(REPO, protected_tags=[])}})["bundle_config"]["repos"][0][
        "protected_tags"] == []
