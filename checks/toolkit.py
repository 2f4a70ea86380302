"""Checks of the toolkit layer."""

from __future__ import annotations

from ..checking import Check

CHECKS: tuple[Check, ...] = ()
