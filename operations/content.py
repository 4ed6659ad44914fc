"""The content of files dockguard renders from templates/, checked by digest.

pyinfra's files.template reads three facts per file (directory, file, checksum):
for the several files a control area writes, that is most of the commands of a
no-op run. Here one fact reads the sha256 of all of an area's files at once,
while the host is prepared (the first area to ask reads them all: MANAGED); each
file is written by exactly one operation, so the digest read then is still the
file's state when that operation runs.

A file is written in place (its owner and mode stay as they are: they belong to
the CIS 3.x operation), or created root-owned, 0644 unless ``mode`` is given.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from io import BytesIO
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.util import get_template

from dockguard import compat, registry, settings

from . import TEMPLATES, Context, NotNeeded, hostlock


class Digests(FactBase):
    """{path: sha256 of its content, or None where there is no such file}. One sha256sum for
    every file there is (not two processes per file): the fact is read on every run."""

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return (
            f'for p in {quoted}; do if [ -f "$p" ]; then set -- "$@" "$p"; '
            "else printf -- '- %s\\n' \"$p\"; fi; done; "
            '[ "$#" -eq 0 ] || sha256sum -- "$@" 2>/dev/null; true'
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for line in output:
            if line.startswith("- "):
                out[line[2:]] = None
                continue
            digest, path = line[:64], line[66:]  # sha256sum: "DIGEST  PATH" (or "DIGEST *PATH")
            if len(line) < 67 or line[64:66] not in ("  ", " *") or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise FactProcessError(f"unexpected digest line: {line!r}")
            out[path] = digest
        return out


_rendered: dict = {}


def render(template: str, **data: Any) -> str:
    """A template under templates/, rendered as files.template would. Kept per template and data
    (every host renders the same few files, mostly from the same settings)."""
    return settings.kept(_rendered, (template, data), lambda: get_template(str(TEMPLATES / template)).render(**data))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@operation()
def file(path: str, text: str, digest: str | None, mode: str = "644"):
    """``path`` holds ``text``. ``digest``: the file's sha256 as read at prepare time (Digests).

    Written atomically: uploaded to a temporary file in the same directory, given the
    owner and mode (the file's own, or root:root ``mode`` for a new one), fsynced and
    renamed over the file, under the host lock, and only if the file is still what this
    run read (else this host fails: someone else changed it meanwhile). A host that dies
    mid-run keeps the old file or the new one, never half of one."""
    if digest == sha256(text):
        host.noop(f"{path} is up to date")
        return
    yield from atomic_write(path, text.encode(), digest, mode)


def atomic_write(path: str, data: bytes, digest: str | None, mode: str = "644"):
    """The commands of :func:`file` (for operations that write a file of their own)."""
    parent, q = posixpath.dirname(path), shlex.quote
    tmp = f"{parent}/.{posixpath.basename(path)}.dockguard-{hostlock.RUN_ID[:12]}"
    if digest is None:
        yield StringCommand(f"mkdir -p {q(parent)}")
    yield FileUploadCommand(BytesIO(data), tmp)
    attrs = (
        f"chown root:root {q(tmp)} && chmod {mode} {q(tmp)}"
        if digest is None
        else f"chown --reference={q(path)} {q(tmp)} && chmod --reference={q(path)} {q(tmp)}"
    )
    yield StringCommand(
        hostlock.prefix() + f"now=$(if [ -f {q(path)} ]; then sha256sum < {q(path)} | cut -d' ' -f1; else echo -; fi); "
        f'if [ "$now" != {digest or "-"} ]; then rm -f {q(tmp)}; echo {q(f"dockguard: {path} changed on the host since this run read it (another run, or a person): not overwritten; run again")} >&2; exit 1; fi; '  # noqa: E501
        f"{attrs} && sync {q(tmp)} && mv -f {q(tmp)} {q(path)} && sync {q(parent)}"
    )


# Every file dockguard renders: the first area to ask reads all their digests in one
# command, for the areas after it (the files are not written until the operations run).
MANAGED = registry.managed_files()
DIGESTS_KEY = "content.Digests"


def reads(ctx: Context) -> list:
    """The digests every area asks for (operations/prefetch.py)."""
    return [(DIGESTS_KEY, Digests, {"paths": sorted(MANAGED)})]


def digests(paths: list[str]) -> dict[str, str | None]:
    """The digests of ``paths`` as this host has them now (read once per run, see MANAGED)."""
    ctx = Context.of()
    known = ctx.area("content")
    if not known:  # the preflight's reading, while it still holds (operations/prefetch.py)
        known.update(ctx.kept(DIGESTS_KEY) or {})
    missing = [p for p in paths if p not in known]
    if missing:
        wanted = missing if known else sorted(set(MANAGED) | set(missing))
        known.update(host.get_fact(Digests, paths=wanted))
    return {p: known.get(p) for p in paths}


# Each file's place in the operation order (compat.at_position): the same on every host.
_POSITIONS = {p: i for i, p in enumerate(sorted(MANAGED))}


def _position(path: str) -> int:
    found = _POSITIONS.get(path)
    return found if found is not None else len(_POSITIONS) + int(sha256(path)[:8], 16)


def files(specs: dict[str, tuple[str, str]], names: dict[str, str]) -> list:
    """Write several files of one area: {path: (text, mode)}, with operation names
    {path: name}. Returns the operations: NotNeeded for a file that already holds its text
    (what :func:`file` would find when it runs)."""
    digests_now = digests(list(specs))
    out = []
    for path, (text, mode) in specs.items():
        digest = digests_now.get(path)
        if digest == sha256(text):
            out.append(NotNeeded(names[path]))
            continue
        with compat.at_position(host, _position(path)):
            out.append(file(name=names[path], path=path, text=text, digest=digest, mode=mode))
    return out
