# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/demo_view.py prints what the agent wrote (its transcript, the hosts and paths it reached) as plain
text: no control character, escape sequence or bidi override reaches the terminal."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "demo_view.py"
HOSTILE = "hi \x1b[2J\x1b]8;;https://evil.example\x07link \u202eexe.txt \x9b31m"


def view(mode, lines):
    run = subprocess.run([sys.executable, str(SCRIPT), mode], input="".join(line + "\n" for line in lines),
                         capture_output=True, text=True, check=True, timeout=30)
    return run.stdout


def test_the_transcript_and_the_firewall_lines_are_plain():
    out = view("transcript", [json.dumps({"type": "assistant", "message": {"content": [
        {"type": "text", "text": HOSTILE}, {"type": "tool_use", "name": "Bash", "input": {"command": HOSTILE}}]}}),
        HOSTILE])
    out += view("firewall", ["[egress] " + json.dumps({"event": "request", "method": "GET", "host": "x.example",
                                                       "path": "/" + HOSTILE, "action": "block", "rule": HOSTILE})])
    assert not any(char in out for char in ("\x1b", "\x07", "\x9b", "\u202e"))
    assert out.count("\\x1b[2J") >= 4 and "\\u202eexe.txt" in out and "BLOCK" in out


def test_codex_events_become_plain_lines():
    """codex exec --json events (codex 0.171.0): the agent's messages, its commands and their output, MCP calls."""
    events = [{"type": "thread.started", "thread_id": "t1"},
              {"type": "item.completed", "item": {"type": "agent_message", "text": HOSTILE}},
              {"type": "item.started", "item": {"type": "command_execution", "command": "/bin/bash -lc 'id'"}},
              {"type": "item.completed", "item": {"type": "command_execution", "aggregated_output": "a\nb\nc\nd\ne\n"}},
              {"type": "item.started", "item": {"type": "mcp_tool_call", "server": "supervise", "tool": "request_domain",
                                                "arguments": {"host": "x.example"}}},
              {"type": "item.completed", "item": {"type": "mcp_tool_call", "result": {"content": [
                  {"type": "text", "text": "approved"}]}}},
              {"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 2}}]
    out = view("codex", [json.dumps(event) for event in events] + ["7", "not json"])
    assert not any(char in out for char in ("\x1b", "\x07", "\x9b", "\u202e"))
    lines = out.splitlines()
    assert lines[0] == "agent     Codex started (thread t1)" and "\\x1b[2J" in lines[1]
    assert "agent  >  shell: /bin/bash -lc 'id'" in lines and "tool   <  ... (1 more lines)" in lines
    assert 'agent  >  supervise.request_domain: {"host": "x.example"}' in lines and "tool   <  approved" in lines
    assert "agent     done (5 input, 2 output tokens)" in lines and "agent     not json" in lines
