# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress: the bottle's firewall, loaded by ``mitmdump -s egress_addon.py``.

The firewall itself is the ``bottle_firewall`` package beside this script (mitmproxy's script
loader puts the script's directory on sys.path; the image copies both to /opt/egress/).

If the package cannot be imported or started, mitmproxy would log the error and run *without*
any addon, i.e. relay everything. So this script never fails to load: it then installs
``RefuseAll``, which refuses every connection and request, and says why in the log.
"""

import logging

LOG = logging.getLogger("bottle_firewall")


class RefuseAll:
    """Fail closed: the firewall did not start, nothing leaves (stdlib only, no mitmproxy API
    beyond what the hooks hand over)."""

    def __init__(self, reason):
        self.reason = reason

    def _text(self):
        return "blocked by egress: the firewall did not start (%s); see egress's log\n" % self.reason

    def http_connect(self, flow):
        from mitmproxy import http
        flow.response = http.Response.make(502, self._text(), {"Content-Type": "text/plain; charset=utf-8"})

    def requestheaders(self, flow):
        from mitmproxy import http
        flow.response = http.Response.make(502, self._text(), {"Content-Type": "text/plain; charset=utf-8"})

    def request(self, flow):
        if flow.response is None:
            self.requestheaders(flow)

    def tls_clienthello(self, data):
        data.ignore_connection = False

    def server_connect(self, data):
        data.server.error = self._text().strip()

    def tcp_start(self, flow):
        flow.server_conn.error = self._text().strip()
        flow.kill()

    def websocket_message(self, flow):
        flow.websocket.messages[-1].drop()


try:
    from bottle_firewall.addon import Firewall
    addons = [Firewall()]
except Exception as exc:  # fail closed, loudly
    LOG.exception("egress: the firewall did not start; every request is refused")
    addons = [RefuseAll(type(exc).__name__)]
