"""Every fact a run reads from a host, in one remote command.

Each remote command costs a host an SSH channel (two round trips) and a shell, and the
areas read about a dozen facts: that was most of a no-op run's wall time across a WAN and
of the host's CPU. The preflight asks each area which facts it will read (its ``reads``)
and runs all of their commands in one ``Batch``; each fact's own ``process`` parses its
part, and the readings are handed to the host's Context (Context.remember), where the
areas find them. A part that failed (non-zero exit, or output its fact rejects) is not
handed in: the area reads that fact again itself, as pyinfra would, with pyinfra's own
error handling. Nothing here decides anything about the host.

Each part's output travels base64-encoded with its exit status appended, so no output
(binary, a line that looks like a marker, no final newline) can be confused with another
part's or with the frame.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from pyinfra.api import FactBase

# (key in Context.facts, fact class, its keyword arguments)
Request = tuple[str, type, dict[str, Any]]


def command_of(fact_cls: type, kwargs: dict[str, Any]) -> str | None:
    """The shell command of ``fact_cls(**kwargs)``, or None where it cannot run inside a
    batch (a fact that needs a command checked first, or a command that is not a string)."""
    fact = fact_cls()
    if fact.shell_executable or _call(fact.requires_command, kwargs):
        return None
    if type(fact).check_preconditions is not FactBase.check_preconditions:
        return None  # its own checks come first
    cmd = _call(fact.command, kwargs)
    return cmd if isinstance(cmd, str) else None


def _call(attr, kwargs: dict[str, Any]):
    return attr(**kwargs) if callable(attr) else attr


class Batch(FactBase):
    """[(exit status, stdout lines) or None] for each command of the batch, in order (None: the
    part's output did not arrive whole). The fact's one argument is the batch's nonce; its
    script is kept here (``of``), so pyinfra's log lines about it never carry the whole script.
    (Not a subclass per batch: pyinfra spends 2 ms of CPU checking each new fact class.)"""

    _scripts: dict[str, str] = {}

    def command(self, batch: str) -> str:
        return self._scripts[batch]

    @classmethod
    def of(cls, commands: list[str], nonce: str) -> str:
        """Keep the script of ``commands`` under ``nonce``; returns the fact's argument."""
        cls._scripts[nonce] = cls.compose(commands, nonce)
        return nonce

    @staticmethod
    def compose(commands: list[str], nonce: str) -> str:
        parts = [f"echo {nonce}-begin"]
        for i, cmd in enumerate(commands):
            # The part's stdout, then a newline and its exit status, base64 on one line.
            body = f"{{ ( :; {cmd}\n) 2>/dev/null; printf '\\n%s' \"$?\"; }} | base64 -w0"
            parts.append(f"printf '{nonce}-{i} '; {body}; echo")
        parts.append(f"echo {nonce}-end")
        return "; ".join(parts)

    @staticmethod
    def default() -> list:
        return []

    def process(self, output: list[str]) -> list[tuple[int, list[str]] | None]:
        lines = [line.rstrip("\r") for line in output]
        if not lines or not lines[0].endswith("-begin") or lines[-1] != lines[0][: -len("begin")] + "end":
            return []  # cut short: every fact is read again on its own
        nonce = lines[0][: -len("-begin")]
        out: dict[int, tuple[int, list[str]] | None] = {}
        for line in lines[1:-1]:
            head, _, body = line.partition(" ")
            if not head.startswith(nonce + "-") or not head[len(nonce) + 1 :].isdigit():
                continue
            out[int(head[len(nonce) + 1 :])] = _part(body)
        size = max(out, default=-1) + 1
        return [out.get(i) for i in range(size)]


def _part(body: str) -> tuple[int, list[str]] | None:
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    data, sep, rc = raw.rpartition(b"\n")
    if not sep or not rc.isdigit():
        return None
    # As pyinfra's connectors read a command's output: lines split on newlines, each decoded.
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return int(rc), lines


def read(h, requests: list[Request]) -> dict[str, Any]:
    """Run every request's command on host ``h`` at once; {key: reading} for each part that
    succeeded (a part that did not is left out, for the area to read on its own)."""
    plan = []
    for key, fact_cls, kwargs in requests:
        cmd = command_of(fact_cls, kwargs)
        if cmd is not None:
            plan.append((key, fact_cls, cmd))
    if not plan:
        return {}
    # A batch that fails as a whole fails nothing: every area then reads its fact on its own.
    batch = Batch.of([cmd for _, _, cmd in plan], f"dgb{secrets.token_hex(6)}")
    try:
        results = h.get_fact(Batch, batch=batch, _ignore_errors=True)
    finally:
        Batch._scripts.pop(batch, None)
    got: dict[str, Any] = {}
    for (key, fact_cls, _), result in zip(plan, results or [], strict=False):
        if result is None or result[0] != 0:
            continue
        fact = fact_cls()
        try:
            got[key] = fact.process(result[1]) if result[1] else fact.default()
        except Exception:  # noqa: BLE001 - any error: the area reads this fact on its own, as before
            continue  # where pyinfra reports it (and fails this host, or the run) as it always did
    return got
