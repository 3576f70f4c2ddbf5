# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_health.read_health: bottle-health --json in the bundle, as (rc, report, output)."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import HEALTH_COMMAND, read_health


def container(rc, out, err=b"", demuxed=True):
    box = mock.Mock()
    box.exec_run.return_value = mock.Mock(exit_code=rc, output=(out, err) if demuxed else out)
    return box


def test_a_report_is_text_keyed_text():
    box = container(1, b'{"egress": "healthy", "pipelock": 503}')
    assert read_health(box) == (1, {"egress": "healthy", "pipelock": "503"}, '{"egress": "healthy", "pipelock": 503}')
    box.exec_run.assert_called_once_with(HEALTH_COMMAND, demux=True)


@pytest.mark.parametrize("out, err, output", [(b"oops", b"", "oops"), (b"[1]", b" warn\n", "[1] warn"),
                                              (None, None, ""), (b"", b"exec failed", "exec failed")])
def test_no_json_object_is_no_report(out, err, output):
    assert read_health(container(126, out, err)) == (126, None, output)


def test_output_not_split_by_the_engine():
    assert read_health(container(0, b'{"egress": "healthy"}', demuxed=False))[1] == {"egress": "healthy"}
