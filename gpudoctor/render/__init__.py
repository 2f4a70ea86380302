"""Renderers: turn an immutable Report into text, JSON or JUnit XML. They decide nothing."""

from __future__ import annotations

FORMATS = ("text", "json", "junit")
