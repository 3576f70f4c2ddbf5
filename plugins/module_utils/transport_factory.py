# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ``AgentTransport`` a module gets: ``get_transport(module, kind, target)``.

``TRANSPORTS`` lists the kinds it accepts (a module's ``transport`` choices);
anything else raises ``TransportError``.
"""

from __future__ import annotations

from ansible_collections.botbottle.bottle.plugins.module_utils import docker_client, docker_transport, smolvm
from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm_transport
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError

TRANSPORTS = ("docker", "smolvm")


def get_transport(module, kind, target, client=None):
    """The transport of ``kind`` (``docker`` or ``smolvm``) to the running agent ``target``.

    docker: ``module`` carries the docker connection options (``DOCKER_COMMON_ARGS``).
    smolvm: ``module`` may carry ``smolvm_path`` and ``smolvm_state_dir``.
    """
    if kind == "docker":
        if client is None:
            client = docker_client.get_docker_client(module)
        return docker_transport.DockerTransport(client, target)
    if kind == "smolvm":
        params = module.params
        try:
            binary = smolvm.find_smolvm(params.get("smolvm_path"), which=module.get_bin_path)
        except smolvm.SmolvmError as exc:
            raise TransportError(str(exc))
        cli = smolvm.SmolvmCLI(smolvm.module_runner(module), binary, state_dir=params.get("smolvm_state_dir"))
        return smolvm_transport.SmolvmTransport(cli, target)
    raise TransportError("unknown transport %r: use one of %s" % (kind, ", ".join(TRANSPORTS)))
