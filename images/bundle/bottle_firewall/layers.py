# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Three small patches of mitmproxy 12.1.2's protocol layers, installed by the firewall.

mitmproxy offers no hook for either of these, so the firewall wraps the layer methods itself:

1. **WebSocket control frames.** ``WebsocketLayer.relay_messages`` forwards ping, pong and
   close frames (payload, close reason) without calling ``websocket_message``. The wrapper
   filters the events of the agent's side (``client_ws.events()``): the payload of every
   ping and pong and the reason of a close is handed to ``firewall.websocket_control(flow,
   kind, payload)``. When that answers True (a finding, or the flow was refused before), the
   frame is replaced by a close with code 1008 (policy violation) and no reason: mitmproxy's
   own close path then closes both connections, and the payload is never sent.
2. **The request body cap, per chunk.** ``HttpStream.state_consume_request_body`` buffers the
   whole body before ``request`` runs (``body_size_limit`` would also cut downloads). The
   wrapper asks ``firewall.request_body_cap(flow)`` (None: no cap) before each chunk is added:
   when the buffer would exceed the cap, the buffer is dropped and the request is answered
   ``413`` as mitmproxy's own ``body_size_limit`` does (``ResponseProtocolError``
   ``REQUEST_TOO_LARGE``) with ``firewall.request_over_cap(flow, size, cap)``'s text; nothing
   was sent upstream (no server connection is opened before ``request``). A request the
   firewall already refused in ``requestheaders`` keeps no body at all.
3. **An unreachable upstream, in egress's words.** When the upstream connection of an allowed
   request fails (connect, TLS verify, timeout), ``HttpStream.handle_protocol_error`` sends
   mitmproxy's own HTML 502 page. The wrapper first runs the ``error`` hook (the outcome line,
   its ``upstream-*`` rule), then answers ``firewall.upstream_unreachable(flow, message)``'s
   response instead: "egress allowed this; the upstream failed: ... (rule upstream-tls)". Only a
   message is at stake: when the patch is not in force (or the firewall answers None) mitmproxy's
   page goes, nothing is refused for it.

Fail closed: a patch is installed only when mitmproxy's version is the one read
(``EXPECTED_VERSION``) and the wrapped method's source is the one read (``SOURCE_SHA256``).
``install`` returns which patches are in force; the firewall refuses WebSocket when the first
is not, and request bodies of unknown length when the second is not. The module imports
mitmproxy lazily: the package still imports on the controller's Python 3.11.
"""

import functools
import hashlib
import inspect
import logging

LOG = logging.getLogger("bottle_firewall")
EXPECTED_VERSION = "12.1.2"
# sha256 of inspect.getsource() of the wrapped methods (decorators unwrapped), mitmproxy 12.1.2.
SOURCE_SHA256 = {
    "WebsocketLayer.relay_messages": "2d451252c7287da0d392ab91ede1d881954ad2fa101513e1857db9492b4582ca",
    "HttpStream.state_consume_request_body": "45459c1bbd8bdb1ac31251376aea71cfa58cb5dbd3a603d4e4e22b2891e663d7",
    "HttpStream.handle_protocol_error": "59fc3b2eeeabf63a64d4cce98b4fe4cab5193ebefbd9c32ae186e65c7d25bfe2",
}
POLICY_VIOLATION = 1008


class Status:
    """Which patches are in force, and why not when one is not."""

    __slots__ = ("websocket_control", "request_cap", "reason", "upstream_text")

    def __init__(self, websocket_control=False, request_cap=False, reason=None, upstream_text=False):
        self.websocket_control, self.request_cap, self.reason = websocket_control, request_cap, reason
        self.upstream_text = upstream_text

    def __repr__(self):
        return "Status(websocket_control=%r, request_cap=%r, reason=%r, upstream_text=%r)" % (
            self.websocket_control, self.request_cap, self.reason, self.upstream_text)


class _State:
    firewall = None  # the Firewall whose callbacks the patched layers call
    status = None    # the Status of the first install in this process


STATE = _State()


def source_digest(function):
    """sha256 of ``function``'s source, decorators (``functools.wraps``) unwrapped."""
    return hashlib.sha256(inspect.getsource(inspect.unwrap(function)).encode("utf-8")).hexdigest()


def install(firewall):
    """Install both patches (once per process) and point them at ``firewall``; a ``Status``."""
    STATE.firewall = firewall
    if STATE.status is not None:
        return STATE.status
    try:
        from mitmproxy import version
        from mitmproxy.proxy.layers import websocket as websocket_layer
        from mitmproxy.proxy.layers.http import HttpStream
    except ImportError as exc:
        STATE.status = Status(reason="mitmproxy is not importable (%s)" % type(exc).__name__)
        return STATE.status
    if version.VERSION != EXPECTED_VERSION:
        STATE.status = Status(reason="mitmproxy %s, not %s" % (version.VERSION, EXPECTED_VERSION))
        LOG.error("egress: %s: WebSocket and request bodies of unknown length are refused", STATE.status.reason)
        return STATE.status
    reasons = []
    websocket_ok = _check(websocket_layer.WebsocketLayer, "relay_messages", "WebsocketLayer.relay_messages", reasons)
    cap_ok = _check(HttpStream, "state_consume_request_body", "HttpStream.state_consume_request_body", reasons)
    if websocket_ok:
        _patch_websocket(websocket_layer)
    if cap_ok:
        _patch_request_body(HttpStream)
    # Only a message is at stake here: not in force, mitmproxy's page goes (not in `reasons`, nothing refused).
    text_ok = _check(HttpStream, "handle_protocol_error", "HttpStream.handle_protocol_error", [])
    if text_ok:
        _patch_connect_failed(HttpStream)
    STATE.status = Status(websocket_ok, cap_ok, "; ".join(reasons) or None, text_ok)
    if reasons:
        LOG.error("egress: mitmproxy's layers are not the ones read (%s): what they carry is refused",
                  STATE.status.reason)
    return STATE.status


def _check(cls, name, key, reasons):
    method = getattr(cls, name, None)
    if method is None:
        reasons.append("%s is missing" % key)
        return False
    try:
        digest = source_digest(method)
    except (OSError, TypeError):
        reasons.append("the source of %s cannot be read" % key)
        return False
    if digest != SOURCE_SHA256[key]:
        reasons.append("%s changed (source sha256 %s)" % (key, digest[:16]))
        return False
    return True


# --- 1. WebSocket control frames -------------------------------------------------------------

def control_payload(event):
    """(kind, payload bytes) of a wsproto control event, or None for any other event."""
    import wsproto.events as ws_events
    if isinstance(event, ws_events.Ping):
        return "ping", bytes(event.payload or b"")
    if isinstance(event, ws_events.Pong):
        return "pong", bytes(event.payload or b"")
    if isinstance(event, ws_events.CloseConnection):
        return "close", (event.reason or "").encode("utf-8", "surrogatepass")
    return None


def _refuse_control(flow, kind, payload):
    """Whether this control frame must not go (the firewall's answer; any error: refuse)."""
    firewall = STATE.firewall
    if firewall is None:
        return True
    try:
        return bool(firewall.websocket_control(flow, kind, payload))
    except Exception as exc:  # fail closed
        LOG.error("egress: scanning a WebSocket %s frame failed with %s; closing", kind, type(exc).__name__)
        return True


def _scanned_events(layer, events):
    """``client_ws.events`` with every control frame put to the firewall first."""
    import wsproto.events as ws_events

    def scanned():
        for event in events():
            control = control_payload(event)
            if control is not None and _refuse_control(layer.flow, *control):
                # mitmproxy's close path: a close (no reason) to both sides, both connections closed.
                yield ws_events.CloseConnection(code=POLICY_VIOLATION, reason="")
                return
            yield event
    return scanned


def _patch_websocket(websocket_layer):
    original = websocket_layer.WebsocketLayer.relay_messages

    @functools.wraps(original)
    def relay_messages(self, event):
        client_ws = getattr(self, "client_ws", None)
        if client_ws is not None and not getattr(client_ws, "bottle_scanned", False):
            client_ws.events = _scanned_events(self, client_ws.events)
            client_ws.bottle_scanned = True
        return (yield from original(self, event))

    relay_messages.bottle_patched = True
    websocket_layer.WebsocketLayer.relay_messages = relay_messages


# --- 2. the request body cap -----------------------------------------------------------------

def _cap(flow):
    firewall = STATE.firewall
    if firewall is None:
        return 0
    try:
        return firewall.request_body_cap(flow)
    except Exception as exc:  # fail closed: no body at all
        LOG.error("egress: the request body cap failed with %s; refusing the body", type(exc).__name__)
        return 0


def _over_cap_text(flow, size, cap):
    firewall = STATE.firewall
    try:
        return firewall.request_over_cap(flow, size, cap)
    except Exception as exc:
        LOG.error("egress: reporting a request over the cap failed with %s", type(exc).__name__)
        return "blocked by egress: request body exceeds the scan limit of %d bytes" % cap


def _patch_request_body(http_stream_cls):
    from mitmproxy import flow as flow_module
    from mitmproxy.proxy.layers.http import ErrorCode, HttpErrorHook, RequestData, ResponseProtocolError, SendHttp

    original = http_stream_cls.state_consume_request_body

    @functools.wraps(original)
    def state_consume_request_body(self, event):
        if isinstance(event, RequestData):
            if self.flow.response is not None:
                return  # refused in requestheaders: its body is read and dropped, never kept
            cap = _cap(self.flow)
            size = len(self.request_body_buf) + len(event.data)
            if cap is not None and size > cap:
                self.request_body_buf.clear()
                text = _over_cap_text(self.flow, size, cap)
                self.flow.error = flow_module.Error(text)
                yield HttpErrorHook(self.flow)
                yield SendHttp(ResponseProtocolError(self.stream_id, text, ErrorCode.REQUEST_TOO_LARGE),
                               self.context.client)
                self.client_state = self.state_errored
                self.flow.live = False
                return
        yield from original(self, event)

    state_consume_request_body.bottle_patched = True
    http_stream_cls.state_consume_request_body = state_consume_request_body


# --- 3. an unreachable upstream, in egress's words ---------------------------------------------

def _unreachable_response(flow, message):
    """The firewall's answer for an allowed request whose upstream could not be reached, or None."""
    firewall = STATE.firewall
    if firewall is None:
        return None
    try:
        return firewall.upstream_unreachable(flow, message)
    except Exception as exc:  # pylint: disable=broad-except  # mitmproxy's own page goes instead
        LOG.error("egress: wording an upstream failure failed with %s", type(exc).__name__)
        return None


def _patch_connect_failed(http_stream_cls):
    from mitmproxy import flow as flow_module
    from mitmproxy.proxy.layers.http import ErrorCode, HttpErrorHook, ResponseProtocolError

    original = http_stream_cls.handle_protocol_error

    @functools.wraps(original)
    def handle_protocol_error(self, event):
        if (isinstance(event, ResponseProtocolError) and event.code == ErrorCode.CONNECT_FAILED
                and self.flow.response is None and self.client_state == self.state_done):
            response = _unreachable_response(self.flow, event.message)
            if response is not None:
                self.flow.error = flow_module.Error(event.message)
                yield HttpErrorHook(self.flow)  # the outcome line, with the upstream-* rule of mitmproxy's message
                self.flow.error = None
                self.flow.response = response
                yield from self.send_response()  # as a response an addon set: the response hook, then the agent
                return
        yield from original(self, event)

    handle_protocol_error.bottle_patched = True
    http_stream_cls.handle_protocol_error = handle_protocol_error
