"""Unit tests see one fixed run id and operator in the host lock's commands (see
operations/hostlock.py), so operation fixtures are the same on every machine."""

import os

os.environ.setdefault("DOCKGUARD_RUN_ID", "0123456789abcdef0123456789abcdef")
os.environ.setdefault("DOCKGUARD_RUN_WHO", "operator@laptop")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_contexts(monkeypatch):
    """Each test starts with no host Context: a fact kept for one fixture's host (they share
    a name) must not answer for the next (operations.Context keeps readings per host name)."""
    from dockguard.operations import Context

    monkeypatch.setattr(Context, "_hosts", {})
