#!/usr/bin/env python
"""Show a bottle at work, line by line, as it happens (scripts/demo.sh pipes into it).

  demo_view.py transcript   stdin: Claude Code's `--output-format stream-json` events
  demo_view.py codex        stdin: Codex's `codex exec --json` events
  demo_view.py firewall     stdin: the bundle's log (`docker logs -f`); egress's JSON audit lines
                            become one readable line per decision, everything else is dropped

Standard library only; the controller's Python. Everything printed is what an agent wrote or caused: each
line goes through the collection's agent_text.terminal (control characters and escape sequences escaped,
bidi overrides neutralised), loaded from this checkout.
"""

import importlib.util
import json
import os
import sys


def _agent_text():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plugins", "module_utils",
                        "agent_text.py")
    spec = importlib.util.spec_from_file_location("botbottle_agent_text", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent_text = _agent_text()

WIDTH = 110


def short(text, limit=WIDTH):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def tool_text(content):
    """A tool result's text (a string, or a list of text blocks)."""
    if isinstance(content, list):
        return "\n".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content or "")


def transcript_lines(event):
    kind = event.get("type")
    if kind == "system" and event.get("subtype") == "init":
        yield "agent     Claude Code started (model %s, tools: %s)" % (
            event.get("model", "?"), ", ".join(event.get("tools", [])[:6]) + ("..." if len(event.get("tools", [])) > 6 else ""))
    elif kind == "assistant":
        for block in (event.get("message") or {}).get("content") or []:
            if block.get("type") == "text" and block.get("text", "").strip():
                for line in block["text"].strip().splitlines():
                    yield "agent     " + short(line)
            elif block.get("type") == "tool_use":
                command = (block.get("input") or {}).get("command")
                shown = command if command else json.dumps(block.get("input"), sort_keys=True)
                yield "agent  >  %s: %s" % (block.get("name"), short(shown, WIDTH - 10))
    elif kind == "user":
        for block in (event.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                lines = [line for line in tool_text(block.get("content")).splitlines() if line.strip()] or ["(no output)"]
                for line in lines[:4]:
                    yield "tool   <  " + short(line)
                if len(lines) > 4:
                    yield "tool   <  ... (%d more lines)" % (len(lines) - 4)
    elif kind == "result":
        yield "agent     done in %.1f s, %s turn(s)%s" % (
            (event.get("duration_ms") or 0) / 1000.0, event.get("num_turns", "?"),
            " (error)" if event.get("is_error") else "")


def _output_lines(text, prefix="tool   <  "):
    lines = [line for line in str(text or "").splitlines() if line.strip()] or ["(no output)"]
    for line in lines[:4]:
        yield prefix + short(line)
    if len(lines) > 4:
        yield prefix + "... (%d more lines)" % (len(lines) - 4)


def codex_lines(event):
    """Readable lines for one `codex exec --json` event (codex 0.171.0: thread/turn/item events)."""
    if not isinstance(event, dict):
        return
    kind = event.get("type")
    item = event.get("item") if isinstance(event.get("item"), dict) else {}
    if kind == "thread.started":
        yield "agent     Codex started (thread %s)" % short(event.get("thread_id", "?"), 40)
    elif kind == "item.started" and item.get("type") == "command_execution":
        yield "agent  >  shell: %s" % short(item.get("command", ""), WIDTH - 10)
    elif kind == "item.started" and item.get("type") == "mcp_tool_call":
        yield "agent  >  %s.%s: %s" % (item.get("server"), item.get("tool"),
                                       short(json.dumps(item.get("arguments"), sort_keys=True), WIDTH - 30))
    elif kind == "item.completed" and item.get("type") == "agent_message":
        for line in str(item.get("text", "")).strip().splitlines():
            yield "agent     " + short(line)
    elif kind == "item.completed" and item.get("type") == "command_execution":
        yield from _output_lines(item.get("aggregated_output"))
    elif kind == "item.completed" and item.get("type") == "mcp_tool_call":
        result = item.get("result") or {}
        yield from _output_lines(tool_text(result.get("content")) if isinstance(result, dict) else item.get("error"))
    elif kind == "turn.completed":
        usage = event.get("usage") or {}
        yield "agent     done (%s input, %s output tokens)" % (usage.get("input_tokens", "?"), usage.get("output_tokens", "?"))
    elif kind in ("turn.failed", "error"):
        yield "agent     failed: %s" % short(json.dumps(event.get("error") or event.get("message")), WIDTH - 20)


def firewall_line(raw):
    """One readable line for an egress audit line of the bundle's log, else None."""
    prefix = "[egress] "
    if not raw.startswith(prefix + "{"):
        return None
    try:
        entry = json.loads(raw[len(prefix):])
    except ValueError:
        return None
    action = entry.get("action") or "?"
    if entry.get("event") == "connect" and action == "allow":
        return None  # the requests inside the tunnel say more
    what = "%s %s%s" % (entry.get("method") or entry.get("event") or "", entry.get("host") or "?",
                        entry.get("path") or "")
    extra = []
    if entry.get("rule"):
        extra.append("rule " + str(entry["rule"]))
    if entry.get("route") and action == "allow":
        extra.append("credential added by egress")
    return "firewall  %-5s %s%s" % ("ALLOW" if action == "allow" else action.upper(), short(what, 70),
                                    ("  (" + ", ".join(extra) + ")") if extra else "")


def main(argv):
    mode = argv[1] if len(argv) > 1 else "transcript"
    for raw in sys.stdin:
        raw = raw.rstrip("\n")
        if mode == "firewall":
            line = firewall_line(raw)
            lines = [line] if line else []
        else:
            try:
                lines = list((codex_lines if mode == "codex" else transcript_lines)(json.loads(raw)))
            except ValueError:
                lines = ["agent     " + short(raw)] if raw.strip() else []
        for line in lines:
            sys.stdout.write(agent_text.terminal(line, 4 * WIDTH) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
