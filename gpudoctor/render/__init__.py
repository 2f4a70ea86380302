"""Renderers: turn an immutable Report into text, JSON, JUnit XML or Prometheus metrics. They decide nothing."""

from __future__ import annotations

FORMATS = ("text", "json", "junit", "prometheus")
