"""Host-controlled bytes, in and out, without injection.

In: a fact that reads names or paths the host controls (NSS, the file system,
/etc/os-release) prints them as NUL-terminated fields, base64-encoded on one
line (``stream``): no byte of a value can break the format, nothing passes
through ``echo`` (dash's echo expands backslashes), and pyinfra only ever sees
ASCII. ``fields`` decodes that line in Python and turns truncated, garbled or
missing output into a FactProcessError naming the fact's purpose (pyinfra then
fails that host only).

Out: ``arg`` quotes a value for a POSIX shell (shlex.quote; bytes that are not
printable UTF-8 are written as printf octal escapes, so a command never carries
raw control characters); ``shown`` writes a value for the operator's terminal
(repr-style escapes, never raw control characters).
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex

from pyinfra.api.exceptions import FactProcessError

_ASIDE = re.compile(r"[\s,;:'\"\\]|^$")
END = b"dockguard-end"  # the last field of every stream: a stream without it was cut short


def which(names: str, body: str) -> str:
    """Shell that runs ``body`` for each of ``names`` (a shell word list) with ``$b`` the name
    and ``$p`` its path as `command -v` finds it, looked up by the shell itself (no process):
    PATH's absolute entries in order, the first regular, executable file; empty if none."""
    return (
        f"o=$IFS; for b in {names}; do p=; IFS=:; set -f; for d in $PATH; do case $d in /*) "
        '[ -f "$d/$b" ] && [ -x "$d/$b" ] && { p=$d/$b; break; };; esac; done; set +f; IFS=$o; '
        f"{body}; done"
    )


def stream(tag: str, script: str) -> str:
    """Shell: run ``script`` (which prints NUL-terminated fields, e.g. with
    ``printf '%s\\0' "$x"`` or ``find -printf '%p\\0'``) and print ``TAG:BASE64``
    on one line, the stream closed by the field ``dockguard-end``."""
    return encoded(f"{tag}:", f"{{ {script} printf '{END.decode()}\\0'; }} 2>/dev/null")


def encoded(label: str, command: str, status: str | None = None) -> str:
    """Shell: ``LABEL``, then the bytes ``command`` prints, base64-encoded, on one line.

    Inside the preflight's batch (operations/prefetch.py), whose own frame already carries any
    bytes, without a base64 process: a line ``\\0raw:LABEL``, the bytes as they are, then a line
    with the batch's nonce and ``raw-end``, which no byte of the command's output can forge (a
    shell's printf of a value never writes a NUL, so neither can the opening line be forged).
    The batch turns each such run of bytes back into ``LABEL`` + base64 before a fact reads it,
    so a fact's output is the same alone and in a batch. ``label`` is text of dockguard's own;
    ``status``: a shell variable that gets the command's exit status."""
    raw, piped = command, f"{command} | base64 -w0"
    if status:  # the pipeline's status is base64's: the command's comes out on fd 3
        raw += f"; {status}=$?"
        piped = f"{{ {status}=$({{ {{ {command}; echo $? >&3; }} | base64 -w0 >&4; }} 3>&1); }} 4>&1"
    return (
        f"if [ -n \"${{{RAW_NONCE}:-}}\" ]; then printf '\\0raw:%s\\n' '{label}'; {raw}; "
        f"printf '\\n%s {RAW_END}\\n' \"${RAW_NONCE}\"; "
        f"else printf '%s' '{label}'; {piped}; echo; fi"
    )


# The batch's nonce (a shell variable of the batch only) and the word after it that closes raw bytes.
RAW_NONCE = "dg_batch_nonce"
RAW_END = "raw-end"


def fields(output: list[str], tag: str, purpose: str) -> list[bytes]:
    """The NUL-terminated fields of a ``stream`` line (without the closing marker). Output
    cut short anywhere lacks the marker, except when a value is the marker itself and the
    cut falls right after it (an accident no fixed marker can rule out)."""
    lines = [line for line in output if line.strip()]
    if len(lines) != 1:
        got = "no output" if not lines else f"{len(lines)} lines of output"
        raise FactProcessError(f"{purpose}: expected one line '{tag}:BASE64', got {got}")
    head, sep, payload = lines[0].strip().partition(":")
    if head != tag or not sep:
        raise FactProcessError(f"{purpose}: expected '{tag}:BASE64', got {shown(lines[0][:80])}")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FactProcessError(f"{purpose}: output is not base64 (truncated?): {e}") from None
    if not raw.endswith(b"\0" + END + b"\0") and raw != END + b"\0":
        raise FactProcessError(f"{purpose}: output was cut short (no end marker; is base64 installed?)")
    return raw.split(b"\0")[:-2]


def text(value: bytes, purpose: str) -> str:
    """``value`` as text; a FactProcessError if it is not UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise FactProcessError(f"{purpose}: not UTF-8: {shown(value)}") from None


def name(value: bytes) -> str:
    """A name as text, whatever its bytes: UTF-8 as it is, other bytes kept as
    surrogate escapes (``arg`` writes them back byte for byte)."""
    return value.decode("utf-8", "surrogateescape")


def raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def plain(value: str) -> bool:
    """Printable UTF-8 (no control characters, no undecodable bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


def quotable(value: str) -> bool:
    """Whether ``arg`` can carry ``value`` (no NUL, no trailing newline)."""
    return not value.endswith("\n") and "\0" not in value


def arg(value: str) -> str:
    """``value`` as one word of a POSIX shell command, byte for byte. Printable
    UTF-8 is shlex-quoted; anything else becomes ``"$(printf -- '...')"`` with
    each control character or byte that is not UTF-8 (from ``name``) as an
    octal escape ``\\NNN``. A value cannot end in a newline or hold a NUL
    (callers check ``quotable`` first)."""
    if not quotable(value):
        raise ValueError(f"cannot pass {shown(value)} as a shell word")
    if plain(value):
        return shlex.quote(value)
    return "\"$(printf -- '" + "".join(_printf(c) for c in value) + "')\""


def _printf(c: str) -> str:
    """One character in a single-quoted printf format that prints it."""
    if c == "'":
        return "'\\''"
    if c in "%\\":
        return c * 2
    return c if plain(c) else "".join(f"\\{b:03o}" for b in raw(c))


def shown(value: str | bytes) -> str:
    """``value`` for the operator's terminal: as it is when it is printable
    text without blanks, quotes, backslashes or separators, else its repr
    (escapes for control characters and undecodable bytes)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    if plain(value) and not _ASIDE.search(value):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return repr(raw(value))
    return repr(value)
