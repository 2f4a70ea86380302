"""Shared pytest fixtures.

Docker-engine fixtures come from tests/support/dockerd.py (private dockerd instances with their own
socket, data-root and exec-root; skipped only where no dockerd binary is installed).
"""

from __future__ import annotations

from tests.support.dockerd import dockerd_factory, private_dockerd  # noqa: F401  (fixtures)
