# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""naming: slugs, object names, labels, label filters and state directories."""

from __future__ import annotations

import os

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import naming


@pytest.mark.parametrize("slug", ["a", "0", "demo", "demo-2", "a" * 31, "my-agent-x1"])
def test_valid_slugs(slug):
    assert naming.slug_error(slug) is None


@pytest.mark.parametrize("slug", ["", "-demo", "Demo", "de_mo", "de.mo", "a" * 32, "démo", None, 7, ["demo"]])
def test_invalid_slugs_say_the_rule(slug):
    assert "use 1-31 characters of a-z, 0-9 and '-'" in naming.slug_error(slug)


def test_a_trailing_dash_is_its_own_error():
    assert naming.slug_error("demo-") == "bottle slug 'demo-' is invalid: it must not end with '-'"


def test_make_slug():
    assert naming.make_slug("demo") == "demo"
    assert naming.make_slug("demo", "") == "demo"
    assert naming.make_slug("demo", "2") == "demo-2"


@pytest.mark.parametrize("component", naming.COMPONENTS)
def test_object_names(component):
    assert naming.object_name("demo", component) == "bb-demo-" + component


def test_unknown_component_is_refused_by_names_and_labels():
    with pytest.raises(ValueError, match="unknown bottle component 'db' \\(known: net-int, net-out, bundle, agent\\)"):
        naming.object_name("demo", "db")
    with pytest.raises(ValueError, match="unknown bottle component 'db'"):
        naming.labels("demo", "demo", "db")


def test_labels():
    assert naming.labels("demo-2", "demo", "agent") == {
        "io.botbottle.bottle": "demo-2", "io.botbottle.agent": "demo",
        "io.botbottle.component": "agent", "io.botbottle.backend": "docker"}
    assert naming.labels("demo", "demo", "bundle", backend="smolmachines")[naming.LABEL_BACKEND] == "smolmachines"


def test_bottle_filter():
    assert naming.bottle_filter() == {"label": ["io.botbottle.bottle"]}
    assert naming.bottle_filter("demo") == {"label": ["io.botbottle.bottle=demo"]}
    assert naming.bottle_filter(agent="demo") == {"label": ["io.botbottle.bottle", "io.botbottle.agent=demo"]}
    assert naming.bottle_filter("demo-2", "demo") == {
        "label": ["io.botbottle.bottle=demo-2", "io.botbottle.agent=demo"]}


def test_state_dir_is_absolute_under_the_root(tmp_path, monkeypatch):
    assert naming.state_dir("demo", str(tmp_path)) == str(tmp_path / "demo")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert naming.state_dir("demo") == str(tmp_path / ".bot-bottle" / "state" / "demo")
    monkeypatch.chdir(tmp_path)
    assert naming.state_dir("demo", "rel") == os.path.join(str(tmp_path), "rel", "demo")
