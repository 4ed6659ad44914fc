"""A faster stand-in for one pyinfra internal, with the same result.

pyinfra orders operations by the line numbers of the deploy code that called them,
read from the call stack at every operation call with ``inspect.stack()``. That
builds the source context of every frame (it reads source files and scans
``sys.modules`` for each frame): about 8 ms of CPU per operation call, most of the
controller's work in a no-op run (160 calls for 10 hosts: 1.3 s). The same line
numbers come straight from the frames, as ``inspect.getframeinfo`` computes them,
without the source context.

``install()`` replaces ``get_operation_order_from_stack`` where pyinfra 3.10 calls
it, only if it is there; tests/unit/test_speedups.py checks the two give the same
list for the same stack.
"""

from __future__ import annotations

import importlib
import inspect
import sys

import pyinfra
from pyinfra.api import util as _util

_operation = importlib.import_module("pyinfra.api.operation")
_original = _util.get_operation_order_from_stack
_position = getattr(inspect, "_get_code_position", None)  # Python 3.11+


def _lineno(frame) -> int:
    """The line inspect.getframeinfo(frame) reports (the start of the current instruction)."""
    if _position is not None:
        line = _position(frame.f_code, frame.f_lasti)[0]
        if line is not None:
            return line
    return frame.f_lineno


def get_operation_order_from_stack(state, _start=None) -> list[int]:
    frames = []
    frame = _start or sys._getframe(1)  # from the caller, as inspect.stack() in pyinfra's own function
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    i = 0
    if state.current_deploy_filename:
        for i, f in enumerate(frames):  # noqa: B007 - the index is used after the loop
            if f.f_code.co_filename == state.current_deploy_filename:
                break
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    for f in frames[i:]:
        if f.f_code.co_filename.startswith(_util.PYINFRA_INSTALL_DIR):
            continue
        line_numbers.append(_lineno(f))
    return line_numbers


def install() -> None:
    if getattr(_operation, "get_operation_order_from_stack", None) is _original:
        _operation.get_operation_order_from_stack = get_operation_order_from_stack
