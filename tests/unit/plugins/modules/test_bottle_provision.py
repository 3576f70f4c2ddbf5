# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_provision through the real DockerTransport against an in-memory agent container."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import provisioning
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_transport import DockerTransport
from ansible_collections.botbottle.bottle.plugins.modules import bottle_provision
from ansible_collections.botbottle.bottle.tests.unit.plugins.module_utils.agent_fakes import (
    FakeClient, FakeContainer)
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module

CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PROMPT = "/home/agent/.claude/CLAUDE.md"
SKILL = "/home/agent/.claude/skills/lint/SKILL.md"
LINT_DOC = '---\nname: lint\ndescription: "Skill lint"\n---\n\n# lint'


@pytest.fixture
def box():
    return FakeContainer()


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "bottle-ca.pem"
    path.write_bytes(CERT)
    return str(path)


def run(box, ca, check=False, engine=None, **overrides):
    args = {"target": box.name, "ca_cert_path": ca, "prompt": "Be careful.", "skills": {"lint": "# lint"}}
    args.update(overrides)
    seen = {}

    def fake_transport(module, kind, target, client=None):
        seen["kind"], seen["client"] = kind, client
        return DockerTransport(FakeClient(box), target)

    with mock.patch.object(bottle_provision, "get_transport", fake_transport), \
            mock.patch.object(bottle_provision, "get_docker_client", None, create=True):
        result = run_module(bottle_provision, engine.client if engine else None, args, check=check, diff=True)
    result["_kind"], result["_client"] = seen.get("kind"), seen.get("client")
    return result


def node(box, path):
    n = box.fs[path]
    return n["content"], n["mode"], n["uid"], n["gid"]


def updates(box):
    return [argv for argv, _user in box.execs if argv == ["update-ca-certificates"]]


def test_first_run_writes_everything_and_refreshes_the_trust_store(box, ca):
    result = run(box, ca)
    assert result["changed"] and result["trust_store_updated"]
    assert node(box, provisioning.CA_TARGET) == (CERT, 0o644, 0, 0)
    assert node(box, PROMPT) == (b"Be careful.", 0o644, 1000, 1000)
    assert node(box, SKILL) == (LINT_DOC.encode(), 0o644, 1000, 1000)
    assert box.fs["/home/agent/.claude/skills/lint"]["uid"] == 1000
    assert [(argv, user) for argv, user in box.execs if argv == ["update-ca-certificates"]] == \
        [(["update-ca-certificates"], "root")]
    assert {f["path"] for f in result["files"] if f["reasons"] == ["missing"]} == \
        {provisioning.CA_TARGET, PROMPT, SKILL}
    after = {d["after_header"].split(" ")[0]: d["after"] for d in result["diff"]}
    assert after == {provisioning.CA_TARGET: CERT.decode(), PROMPT: "Be careful.", SKILL: LINT_DOC}
    assert all(d["before"] == "" for d in result["diff"])


def test_second_run_changes_nothing(box, ca):
    run(box, ca)
    box.execs.clear()
    result = run(box, ca)
    assert not result["changed"] and not result["trust_store_updated"]
    assert result["diff"] == []
    assert updates(box) == []
    assert not [argv for argv, _user in box.execs if argv[0] == "mkdir"]


def test_check_mode_writes_nothing_but_reports_everything(box, ca):
    before = dict(box.fs)
    result = run(box, ca, check=True)
    assert result["changed"] and result["trust_store_updated"]
    assert box.fs == before and updates(box) == []
    assert len(result["diff"]) == 3


def test_changed_prompt_only_rewrites_the_prompt_with_a_diff(box, ca):
    run(box, ca)
    box.execs.clear()
    result = run(box, ca, prompt="New prompt.")
    assert [f["path"] for f in result["files"] if f["changed"]] == [PROMPT]
    assert [(d["before"], d["after"]) for d in result["diff"]] == [("Be careful.", "New prompt.")]
    assert updates(box) == []  # the CA did not change: no trust store refresh
    assert node(box, PROMPT)[0] == b"New prompt."


def test_wrong_mode_or_owner_is_repaired(box, ca):
    run(box, ca)
    box.fs[PROMPT]["mode"] = 0o666
    box.fs[SKILL]["uid"] = 0
    result = run(box, ca)
    reasons = {f["path"]: f["reasons"] for f in result["files"] if f["changed"]}
    assert reasons == {PROMPT: ["mode"], SKILL: ["owner"]}
    assert node(box, PROMPT)[1] == 0o644 and node(box, SKILL)[2] == 1000
    assert "mode 0666" in result["diff"][0]["before_header"]


def test_a_symlink_in_place_of_the_prompt_is_replaced(box, ca):
    run(box, ca)
    box.fs[PROMPT] = {"type": "link", "mode": 0o777, "uid": 1000, "gid": 1000, "target": "/etc/shadow"}
    result = run(box, ca)
    assert result["changed"]
    assert box.fs[PROMPT]["type"] == "file" and node(box, PROMPT)[0] == b"Be careful."


def test_trust_store_missing_the_ca_is_refreshed_even_when_the_file_is_right(box, ca):
    run(box, ca)
    del box.fs[provisioning.CA_LINK]  # an earlier run stopped between write and update
    box.execs.clear()
    result = run(box, ca)
    assert result["changed"] and result["trust_store_updated"]
    assert not any(f["changed"] for f in result["files"])
    assert len(updates(box)) == 1


def test_update_ca_certificates_failure_names_the_package(box, ca):
    box.fail_update_ca = True
    with pytest.raises(Failed, match="needs the ca-certificates package"):
        run(box, ca)


def test_without_ca_nothing_touches_the_trust_store(box):
    result = run(box, None)
    assert not result["trust_store_updated"]
    assert provisioning.CA_TARGET not in box.fs and updates(box) == []


def test_other_user_and_home(box, ca):
    box.fs["/srv"] = {"type": "dir", "mode": 0o755, "uid": 1000, "gid": 1000}
    run(box, ca, agent_home="/srv/", skills={})
    assert node(box, "/srv/.claude/CLAUDE.md")[2] == 1000


def test_unknown_agent_user_fails_naming_it(box, ca):
    with pytest.raises(Failed, match="no user ghost"):
        run(box, ca, agent_user="ghost")


def test_missing_container_fails_naming_it(ca):
    with pytest.raises(Failed, match="agent container bb-demo-agent not found"):
        run(FakeContainer(name="elsewhere"), ca, target="bb-demo-agent")


def test_a_key_in_the_ca_file_is_refused(box, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_bytes(CERT + b"-----BEGIN EC PRIVATE KEY-----\nx\n")
    with pytest.raises(Failed, match="CA certificate only"):
        run(box, str(bad))


def test_missing_ca_file_names_the_fix(box, tmp_path):
    with pytest.raises(Failed, match="launch the bundle before provisioning"):
        run(box, str(tmp_path / "absent.pem"))


def test_path_like_skill_name_refused(box, ca):
    with pytest.raises(Failed, match=r"skills\.\.\./\.\./etc is not a valid skill name"):
        run(box, ca, skills={"../../etc": "x"})


def test_relative_home_refused(box, ca):
    with pytest.raises(Failed, match="agent_home home/agent must be an absolute path"):
        run(box, ca, agent_home="home/agent")


def test_transport_option_reaches_the_factory(box, ca):
    assert run(box, ca)["_kind"] == "docker"
    # smolvm is accepted by the argument spec; the factory decides how to reach the machine.
    assert run(box, ca, transport="smolvm")["_kind"] == "smolvm"


def test_skill_front_matter_added_from_the_first_prose_paragraph():
    text = '# Deploy\n\nShip it: run "make deploy".\nThen check.\n\nMore later.\n'
    doc = provisioning.skill_document("deploy", text)
    head, body = doc.split("\n---\n\n", 1)
    expected = {"name": "deploy", "description": 'Ship it: run "make deploy". Then check.'}
    assert yaml.safe_load(head[len("---\n"):]) == expected
    assert body == text


def test_skill_with_its_own_front_matter_is_kept():
    text = "---\nname: x\ndescription: mine\n---\nbody"
    assert provisioning.skill_document("x", text) == text


GATE = {"user": {"name": "Agent", "email": "agent@example.com"},
        "repos": [{"name": "app", "aliases": ["ssh://git@git.example.com/app.git", "git@git.example.com:app.git"]}]}


def test_git_gate_writes_the_system_gitconfig_owned_by_root(box, ca):
    result = run(box, ca, git_gate=GATE, gate_host="172.29.0.2")
    content, mode, uid, gid = node(box, "/etc/gitconfig")
    assert (mode, uid, gid) == (0o644, 0, 0)
    text = content.decode()
    assert '[url "git://172.29.0.2:9418/app.git"]\n\tinsteadOf = ssh://git@git.example.com/app.git\n' \
        '\tinsteadOf = git@git.example.com:app.git\n' in text
    assert "name = Agent" in text
    assert result["changed"]
    assert not run(box, ca, git_gate=GATE, gate_host="172.29.0.2")["changed"]


def test_git_gate_needs_the_gate_host_and_the_resolved_shape(box, ca):
    with pytest.raises(Failed) as err:
        run(box, ca, git_gate=GATE)
    assert "gate_host is required with git_gate" in str(err.value)
    with pytest.raises(Failed) as err:
        run(box, ca, git_gate={"repos": {"app": {}}}, gate_host="172.29.0.2")
    assert "git_gate.repos must be a list of {name, aliases}" in str(err.value)


CLAUDE_JSON = "/home/agent/.claude.json"
SERVERS = {"supervise": {"type": "http", "url": "http://10.1.0.2:9100/mcp"}}


def test_mcp_servers_registered_in_the_user_config(box, ca):
    result = run(box, ca, mcp_servers=SERVERS)
    content, mode, uid, gid = node(box, CLAUDE_JSON)
    assert json.loads(content) == {"mcpServers": SERVERS} and (mode, uid, gid) == (0o600, 1000, 1000)
    assert result["changed"]
    assert not run(box, ca, mcp_servers=SERVERS)["changed"]


def test_mcp_registration_keeps_claude_codes_own_state(box, ca):
    run(box, ca)
    mine = {"numStartups": 3, "mcpServers": {"other": {"type": "stdio", "command": "x"}}}
    DockerTransport(FakeClient(box), box.name).write_file(CLAUDE_JSON, json.dumps(mine).encode(), mode=0o600,
                                                          owner="agent:agent")
    run(box, ca, mcp_servers=SERVERS)
    written = json.loads(node(box, CLAUDE_JSON)[0])
    assert written == {"numStartups": 3, "mcpServers": dict(mine["mcpServers"], **SERVERS)}
    assert not run(box, ca, mcp_servers=SERVERS)["changed"]
    changed = dict(SERVERS, supervise={"type": "http", "url": "http://10.1.0.3:9100/mcp"})
    run(box, ca, mcp_servers=changed)
    assert json.loads(node(box, CLAUDE_JSON)[0])["mcpServers"]["supervise"]["url"].startswith("http://10.1.0.3")


def test_a_broken_claude_json_is_reported(box, ca):
    run(box, ca)
    DockerTransport(FakeClient(box), box.name).write_file(CLAUDE_JSON, b"{oops", mode=0o600, owner="agent:agent")
    with pytest.raises(Failed, match="claude.json in the agent is not valid JSON"):
        run(box, ca, mcp_servers=SERVERS)


def test_bad_mcp_server_entry(box, ca):
    with pytest.raises(Failed, match="mcp_servers.supervise must be"):
        run(box, ca, mcp_servers={"supervise": {"url": "http://x"}})


# The model credential's placeholder (resolve_bottle's model): Claude Code 2.1.330 starts without its
# onboarding (hasCompletedOnboarding) and, for ANTHROPIC_API_KEY, without asking whether to use the key
# (customApiKeyResponses.approved holds the key's last 20 characters, trimmed).
API_KEY_MODEL = {"host": "api.anthropic.com", "credential": "api_key", "env": "ANTHROPIC_API_KEY",
                 "placeholder": "bottle-placeholder-demo"}
OAUTH_MODEL = dict(API_KEY_MODEL, credential="oauth", env="CLAUDE_CODE_OAUTH_TOKEN")


def test_an_api_key_placeholder_is_approved_and_onboarding_done(box, ca):
    result = run(box, ca, mcp_servers=SERVERS, model=API_KEY_MODEL)
    content, mode, uid, gid = node(box, CLAUDE_JSON)
    assert json.loads(content) == {"mcpServers": SERVERS, "hasCompletedOnboarding": True,
                                   "customApiKeyResponses": {"approved": ["tle-placeholder-demo"], "rejected": []}}
    assert "tle-placeholder-demo" == "bottle-placeholder-demo"[-20:] == provisioning.approved_key(" bottle-placeholder-demo\n")
    assert (mode, uid, gid) == (0o600, 1000, 1000) and result["changed"]
    assert not run(box, ca, mcp_servers=SERVERS, model=API_KEY_MODEL)["changed"]


def test_an_oauth_placeholder_needs_onboarding_done_only(box, ca):
    run(box, ca, model=OAUTH_MODEL)
    assert json.loads(node(box, CLAUDE_JSON)[0]) == {"hasCompletedOnboarding": True}
    assert not run(box, ca, model=OAUTH_MODEL)["changed"]


def test_the_model_keys_keep_claude_codes_own_state(box, ca):
    run(box, ca)
    mine = {"numStartups": 3, "hasCompletedOnboarding": False, "userID": "u",
            "customApiKeyResponses": {"approved": ["other-key-suffix-0001"], "rejected": ["tle-placeholder-demo"]}}
    DockerTransport(FakeClient(box), box.name).write_file(CLAUDE_JSON, json.dumps(mine).encode(), mode=0o600,
                                                          owner="agent:agent")
    result = run(box, ca, mcp_servers=SERVERS, model=API_KEY_MODEL)
    assert json.loads(node(box, CLAUDE_JSON)[0]) == {
        "numStartups": 3, "userID": "u", "mcpServers": SERVERS, "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": ["other-key-suffix-0001", "tle-placeholder-demo"], "rejected": []}}
    assert [f for f in result["files"] if f["path"] == CLAUDE_JSON] == [
        {"path": CLAUDE_JSON, "changed": True, "reasons": ["content"]}]
    assert not run(box, ca, mcp_servers=SERVERS, model=API_KEY_MODEL)["changed"]


def test_without_model_no_onboarding_state_is_written(box, ca):
    run(box, ca, mcp_servers=SERVERS)
    assert json.loads(node(box, CLAUDE_JSON)[0]) == {"mcpServers": SERVERS}
    run(box, ca)
    assert json.loads(node(box, CLAUDE_JSON)[0]) == {"mcpServers": SERVERS}


def test_model_in_check_mode_changes_nothing(box, ca):
    result = run(box, ca, check=True, model=API_KEY_MODEL)
    assert result["changed"] and CLAUDE_JSON not in box.fs


@pytest.mark.parametrize("model, needle", [
    ({"env": "OPENAI_API_KEY", "placeholder": "p"}, "model must hold env (ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN)"),
    ({"env": "ANTHROPIC_API_KEY"}, "model must hold env"),
    ({"env": "ANTHROPIC_API_KEY", "placeholder": " "}, "model must hold env"),
    ({}, "model must hold env"),
    ({"env": "ANTHROPIC_API_KEY", "placeholder": "sk-ant-api03-realLookingKey"},
     "model.placeholder looks like a real Anthropic credential (sk-ant-...): the agent gets a placeholder only"),
])
def test_bad_model_refused_and_a_real_key_never_written(box, ca, model, needle):
    with pytest.raises(Failed) as err:
        run(box, ca, model=model)
    assert needle in str(err.value) and "realLookingKey" not in str(err.value)
    assert CLAUDE_JSON not in box.fs


# -- bundle: the wait for the bundle started with sidecar_bundle wait=false ---------------------------

def started_bundle(on_create=None):
    from ansible_collections.botbottle.bottle.plugins.modules import sidecar_bundle
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine
    engine = FakeEngine()
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True)
    engine.add_image("botbottle/bundle:latest", env=["BOTTLE_DAEMONS=egress"])
    engine.on_create = on_create
    run_module(sidecar_bundle, engine.client, {"slug": "demo", "agent": "demo", "image": "botbottle/bundle:latest",
                                               "internal_network": "bb-demo-net-int", "internal_ip": "10.1.0.2",
                                               "daemons": ["egress"], "wait": False})
    return engine


def run_with_bundle(box, ca, engine, check=False, **overrides):
    return run(box, ca, check=check, engine=engine, bundle="bb-demo-bundle", bundle_health_timeout=1, **overrides)


def test_with_bundle_provisions_then_reports_its_health(box, ca):
    engine = started_bundle()
    result = run_with_bundle(box, ca, engine)
    assert result["changed"] and result["health"] == {"egress": "healthy"}
    assert result["_client"] is engine.client  # one connection for the bundle and the agent
    assert node(box, PROMPT)[0] == b"Be careful."


def test_with_an_unhealthy_bundle_fails_naming_the_daemon_and_its_lines(box, ca):
    def sick(container):
        container.unhealthy = {"egress": "nothing listens on 127.0.0.1:8888"}
        container.log_lines = ["[egress] cannot bind 8888"]
    engine = started_bundle(sick)
    with pytest.raises(Failed) as failure:
        run_with_bundle(box, ca, engine)
    msg = failure.value.result["msg"]
    assert "bundle bb-demo-bundle is not healthy" in msg and "Unhealthy: egress." in msg
    assert "[egress] cannot bind 8888" in msg and failure.value.result["unhealthy"] == ["egress"]


def test_a_bundle_that_exits_before_writing_the_ca_fails_with_its_log(box, tmp_path):
    def dies(container):
        container.exit_on_start = 1
        container.log_lines = ["[bottle-init] start-up failed: creating the bottle CA failed"]
    engine = started_bundle(dies)
    with pytest.raises(Failed) as failure:
        run_with_bundle(box, str(tmp_path / "ca" / "bottle-ca.pem"), engine)
    msg = failure.value.result["msg"]
    assert "the bundle did not write" in msg and "the bundle exited (status exited, exit code 1)" in msg
    assert "creating the bottle CA failed" in msg


def test_a_missing_bundle_is_named(box, ca):
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine
    with pytest.raises(Failed, match="bundle bb-demo-bundle does not exist"):
        run_with_bundle(box, ca, FakeEngine())


def test_with_bundle_in_check_mode_no_wait(box, ca):
    result = run_with_bundle(box, ca, started_bundle(), check=True)
    assert "health" not in result and box.fs.get(PROMPT) is None


def test_every_write_in_one_archive_and_one_mkdir_per_owner(box, ca):
    archives = []
    extract = box.put_archive

    def counted(path, data):
        archives.append(path)
        return extract(path, data)
    box.put_archive = counted
    run(box, ca, skills={"lint": "# lint", "deploy": "# deploy"}, mcp_servers={"supervise": {"type": "http"}})
    assert archives == ["/"]
    mkdirs = [(argv, user) for argv, user in box.execs if argv[0] == "mkdir"]
    assert sorted(user for _argv, user in mkdirs) == ["agent", "root"]
    assert node(box, "/home/agent/.claude/skills/deploy/SKILL.md")[2:] == (1000, 1000)
    assert node(box, "/home/agent/.claude.json")[1:] == (0o600, 1000, 1000)
