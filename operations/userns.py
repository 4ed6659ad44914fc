"""userns-remap (CIS 2.9): the ``dockremap`` user and its subordinate id ranges.

dockerd's ``userns-remap: default`` maps container root to the first id of the
``dockremap`` ranges in /etc/subuid and /etc/subgid. dockguard manages the user
and the ranges itself, idempotently: an existing range is kept; a missing one is
placed after every range already in the file, so it never overlaps another user's.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import FactProcessError

USER = "dockremap"
SIZE = 65536
FIRST = 100000


class SubIds(FactBase):
    """/etc/subuid, /etc/subgid and whether the dockremap user and group exist."""

    def command(self) -> str:
        return (
            "echo '--- subuid'; cat /etc/subuid 2>/dev/null; echo '--- subgid'; cat /etc/subgid 2>/dev/null; "
            f"echo '--- user'; getent passwd {USER} >/dev/null && echo yes; "
            f"echo '--- group'; getent group {USER} >/dev/null && echo yes; true"
        )

    @staticmethod
    def default() -> dict:
        return {"subuid": [], "subgid": [], "user": False, "group": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"subuid": [], "subgid": [], "user": False, "group": False}
        section = None
        for line in output:
            if line.startswith("--- "):
                section = line[4:]
                continue
            if section in ("subuid", "subgid"):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.strip().split(":")
                if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                    raise FactProcessError(f"/etc/{section}: unexpected line {line!r}")
                out[section].append([parts[0], int(parts[1]), int(parts[2])])
            elif section in ("user", "group"):
                out[section] = line.strip() == "yes"
            else:
                raise FactProcessError(f"unexpected output {line!r}")
        return out


def next_free(ranges: list[list]) -> int:
    """The start of a SIZE-long range after every existing one, aligned to SIZE."""
    end = max([FIRST] + [start + count for _, start, count in ranges])
    return -(-end // SIZE) * SIZE


@operation()
def remap_user():
    """The dockremap system user and group, with ranges in /etc/subuid and /etc/subgid."""
    live = host.get_fact(SubIds)
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
            cmds.append(f"echo {USER}:{start}:{SIZE} >> /etc/{f}")
    if not cmds:
        host.noop(f"{USER} and its subordinate ranges exist")
        return
    yield " && ".join(cmds)


def configure(cfg: dict[str, Any]):
    return remap_user(name="CIS 2.9: dockremap user and its /etc/subuid, /etc/subgid ranges")
