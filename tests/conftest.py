"""Shared pytest fixtures.

Docker-engine fixtures come from tests/support/dockerd.py (private dockerd instances with their own
socket, data-root and exec-root), parametrized by engine (tests/support/engines.py: Debian's dockerd
and those named by GPUDOCTOR_TEST_ENGINE_DIRS); an engine this machine lacks skips its variants.
"""

from __future__ import annotations

from tests.support.dockerd import docker_engine, dockerd_factory, private_dockerd  # noqa: F401  (fixtures)
