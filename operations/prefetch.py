"""Every fact a run reads from a host, in one remote command.

Each remote command costs a host an SSH channel (two round trips) and a shell, and the
areas read about a dozen facts: that was most of a no-op run's wall time across a WAN and
of the host's CPU. The preflight asks each area which facts it will read (its ``reads``)
and runs all of their commands in one ``Batch``; each fact's own ``process`` parses its
part, and the readings are handed to the host's Context (Context.remember), where the
areas find them. A part that failed (non-zero exit, or output its fact rejects) is not
handed in: the area reads that fact again itself, as pyinfra would, with pyinfra's own
error handling. Nothing here decides anything about the host.

The frame: the whole batch's output travels as one base64 line. Inside it each part's
bytes (any bytes: binary, no final newline) sit between two markers that carry a nonce
the host draws for this batch from /proc/sys/kernel/random/uuid, with the part's exit
status in the closing one. The nonce is in no command line (a shell variable of the
batch, never exported): nobody but root on that host can know it during the run, so no
part's output can pass for a marker, another part's output or the frame. (A base64 per
part, as before, cost a host 0.002 s of CPU per part.)
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from pyinfra.api import FactBase

from dockguard import systemd

from . import safe

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
    def of(cls, commands: list[str], nonce: str, units: tuple[list[str], list[str]] = ([], [])) -> str:
        """Keep the script of ``commands`` under ``nonce``; returns the fact's argument."""
        cls._scripts[nonce] = cls.compose(commands, nonce, units)
        return nonce

    @staticmethod
    def compose(commands: list[str], nonce: str, units: tuple[list[str], list[str]] = ([], [])) -> str:
        """``units``: the systemd units and properties the parts read (their facts'
        ``systemd_show``), read first by one systemctl that every part then shares (a
        systemctl costs a host 0.007 s of CPU to start, and PID 1 a call). ``nonce`` names
        the batch in pyinfra's log; the frame's own nonce is drawn on the host."""
        body = [f"IFS= read -r {_N} < /proc/sys/kernel/random/uuid", f'printf "%s\\n" "${_N}"']
        if units[0]:
            body.append(systemd.show_preamble(*units))
        for i, cmd in enumerate(commands):
            # The part in a subshell (an `exit` in it ends only the part), its status after.
            body.append(f'printf "%s {i}\\n" "${_N}"; ( :; {cmd}\n) 2>/dev/null; printf "\\n%s {i} %s\\n" "${_N}" "$?"')
        body.append(f'printf "%s end\\n" "${_N}"')
        return "{ " + "; ".join(body) + "; } | base64 -w0; echo"

    @staticmethod
    def default() -> list:
        return []

    def process(self, output: list[str]) -> list[tuple[int, list[str]] | None]:
        try:
            data = base64.b64decode("".join(line.strip() for line in output), validate=True)
        except (binascii.Error, ValueError):
            return []  # garbled: every fact is read again on its own
        nonce, _, data = data.partition(b"\n")
        if not _NONCE.fullmatch(nonce) or not data.endswith(nonce + b" end\n"):
            return []  # no nonce, or cut short
        out: list[tuple[int, list[str]] | None] = []
        at = 0
        while True:  # part i: NONCE i\n, its bytes, \nNONCE i STATUS\n
            head, tail = nonce + b" %d\n" % len(out), b"\n" + nonce + b" %d " % len(out)
            if not data.startswith(head, at):
                break
            close = data.find(tail, at + len(head))
            eol = data.find(b"\n", close + len(tail)) if close >= 0 else -1
            if eol < 0 or not data[close + len(tail) : eol].isdigit():
                break
            part = _from_raw(data[at + len(head) : close], nonce)
            out.append((int(data[close + len(tail) : eol]), _lines(part)))
            at = eol + 1
        return out


_N = safe.RAW_NONCE  # the batch's nonce: the variable safe.stream's raw form reads
_NONCE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _from_raw(part: bytes, nonce: bytes) -> bytes:
    """A part's raw runs of bytes (safe.encoded inside a batch: a line ``\\0raw:LABEL``, the
    bytes, a line with this batch's nonce and ``raw-end``) as their commands give them alone:
    ``LABEL`` + base64 on one line. A run cut short (no closing line) is left as it is, for its
    fact to reject; an opening line with a label that is not dockguard's, too."""
    out, at = [], 0
    close = b"\n" + nonce + b" " + safe.RAW_END.encode() + b"\n"
    while True:
        i = part.find(b"\0raw:", at)
        while i > 0 and part[i - 1] != 0x0A:  # only at the start of a line
            i = part.find(b"\0raw:", i + 1)
        eol = part.find(b"\n", i) if i >= 0 else -1
        end = part.find(close, eol) if eol >= 0 else -1
        if end < 0 or not _LABEL.fullmatch(part[i + 5 : eol]):
            out.append(part[at:])
            return b"".join(out)
        out += [part[at:i], part[i + 5 : eol], base64.b64encode(part[eol + 1 : end]), b"\n"]
        at = end + len(close)


_LABEL = re.compile(rb"[a-z_]+[:=]")


def _lines(data: bytes) -> list[str]:
    """A part's bytes as pyinfra's connectors hand a command's output over: lines split on
    newlines, each decoded."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


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
    units: tuple[list[str], list[str]] = ([], [])
    for _, fact_cls, _ in plan:
        for have, wanted in zip(units, getattr(fact_cls, "systemd_show", ([], [])), strict=True):
            have.extend(x for x in wanted if x not in have)
    # A batch that fails as a whole fails nothing: every area then reads its fact on its own.
    batch = Batch.of([cmd for _, _, cmd in plan], f"dgb{secrets.token_hex(6)}", units)
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
