# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Docker connection options shared by every docker-backed module."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine to talk to, as a URL (V(unix:///var/run/docker.sock), V(tcp://host:2376)).
      - Defaults to E(DOCKER_HOST) when set, else the engine's default socket (Docker Desktop's on macOS).
    type: str
  timeout:
    description:
      - Seconds to wait for one API call of the Docker engine.
    type: int
    default: 60
requirements:
  - docker (the Docker SDK for Python) >= 7.0 on the managed host
"""
