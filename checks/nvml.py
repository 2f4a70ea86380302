"""Checks of the nvml layer."""

from __future__ import annotations

from ..checking import Check

CHECKS: tuple[Check, ...] = ()
