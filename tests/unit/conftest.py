"""Unit tests see one fixed run id and operator in the host lock's commands (see
operations/hostlock.py), so operation fixtures are the same on every machine."""

import os

os.environ.setdefault("DOCKGUARD_RUN_ID", "0123456789abcdef0123456789abcdef")
os.environ.setdefault("DOCKGUARD_RUN_WHO", "operator@laptop")
