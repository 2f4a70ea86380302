"""Checks of the kernel layer."""

from __future__ import annotations

from ..checking import Check

CHECKS: tuple[Check, ...] = ()
