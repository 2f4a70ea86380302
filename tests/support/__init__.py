"""Test helpers (a package so tests can import them)."""
