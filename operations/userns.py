"""userns-remap (CIS 2.9): the ``dockremap`` user and its subordinate id ranges.

dockerd's ``userns-remap: default`` maps container root to the first id of the
``dockremap`` ranges in /etc/subuid and /etc/subgid. dockguard manages the user
and the ranges itself, idempotently: an existing range is kept; a missing one is
placed after every range already in the file, so it never overlaps another user's.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, safe

USER = "dockremap"
SIZE = 65536
FIRST = 100000
PURPOSE = "subordinate id ranges (/etc/subuid, /etc/subgid)"


class SubIds(FactBase):
    """/etc/subuid, /etc/subgid and whether the dockremap user and group exist."""

    def command(self) -> str:
        return safe.stream(
            "subids",
            # Both files by one cat, the fields between them from its stdin.
            "printf 'subuid\\0'; printf '\\0subgid\\0' | cat /etc/subuid - /etc/subgid 2>/dev/null; "
            f"printf '\\0'; getent passwd {USER} >/dev/null && printf 'user\\0'; "
            f"getent group {USER} >/dev/null && printf 'group\\0';",
        )

    @staticmethod
    def default() -> dict:
        return {"subuid": [], "subgid": [], "user": False, "group": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = safe.fields(output, "subids", PURPOSE)
        if found[:1] != [b"subuid"] or found[2:3] != [b"subgid"] or not set(found[4:]) <= {b"user", b"group"}:
            raise FactProcessError(f"{PURPOSE}: unexpected output (a NUL byte in /etc/subuid or /etc/subgid?)")
        out: dict[str, Any] = {"subuid": [], "subgid": [], "user": b"user" in found[4:], "group": b"group" in found[4:]}
        for section, content in (("subuid", found[1]), ("subgid", found[3])):
            for line in safe.text(content, f"/etc/{section}").splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.strip().split(":")
                if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                    raise FactProcessError(f"/etc/{section}: unexpected line {safe.shown(line)}")
                out[section].append([parts[0], int(parts[1]), int(parts[2])])
        return out


def append_command(path: str, line: str) -> str:
    """Shell: ``path`` with ``line`` added, written atomically: a copy (owner and mode kept,
    0644 root for a new file) in the same directory, the line appended (after a newline if
    the file lacks its last one), synced, renamed over ``path``."""
    tmp = f"{path}.dockguard-tmp"
    return (
        f"{{ if [ -e {path} ]; then cp -p {path} {tmp}; else : > {tmp} && chmod 644 {tmp}; fi; }} && "
        f'{{ [ ! -s {tmp} ] || [ -z "$(tail -c1 {tmp})" ] || echo >> {tmp}; }} && '
        f"printf '%s\\n' {shlex.quote(line)} >> {tmp} && sync {tmp} && mv -f {tmp} {path}"
    )


def next_free(ranges: list[list]) -> int:
    """The start of a SIZE-long range after every existing one, aligned to SIZE."""
    end = max([FIRST] + [start + count for _, start, count in ranges])
    return -(-end // SIZE) * SIZE


SUBIDS = ("userns.SubIds", SubIds, {})


@operation()
def remap_user():
    """The dockremap system user and group, with ranges in /etc/subuid and /etc/subgid."""
    live = Context.of().read(SUBIDS)
    cmds = []
    if not live["group"]:
        cmds.append(f"groupadd --system {USER}")
    if not live["user"]:
        shell = "/usr/sbin/nologin"
        cmds.append(f"useradd --system --no-create-home --home-dir /nonexistent --shell {shell} -g {USER} {USER}")
    # One start for both files when both need one, so uid and gid maps line up.
    need = [f for f in ("subuid", "subgid") if not any(r[0] == USER for r in live[f])]
    if need:
        start = next_free(live["subuid"] + live["subgid"])
        for f in need:
            cmds.append(append_command(f"/etc/{f}", f"{USER}:{start}:{SIZE}"))
    if not cmds:
        host.noop(f"{USER} and its subordinate ranges exist")
        return
    yield " && ".join(cmds)


def configure(cfg: dict[str, Any]):
    return remap_user(name="CIS 2.9: dockremap user and its /etc/subuid, /etc/subgid ranges")
