"""The docker group (CIS Docker Benchmark 1.1.2): its members are root-equivalent.

Members not in ``docker_group_members`` are reported on every run; they are
removed only when the operator sets ``docker_group_enforce``.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation

from . import drift, warn


class DockerGroupMembers(FactBase):
    """Members of the docker group (None: there is no such group)."""

    def command(self) -> str:
        return "getent group docker >/dev/null && getent group docker | cut -d: -f4 | tr ',' '\\n' || echo '-'"

    @staticmethod
    def default():
        return None

    def process(self, output: list[str]) -> list[str] | None:
        if output == ["-"]:
            return None
        return sorted(m.strip() for m in output if m.strip())


def unexpected(members: list[str] | None, allowed: list[str]) -> list[str]:
    return [m for m in members or [] if m not in allowed]


@operation()
def members(allowed: list[str], enforce: bool):
    current = list(host.get_fact(DockerGroupMembers) or [])
    others = unexpected(current, allowed)
    if not others:
        host.noop(f"docker group members are allowed ({len(current)})")
        return
    drift("1.1.2", f"docker group members not in docker_group_members: {', '.join(others)}", GROUP_OP)
    if not enforce:
        warn(
            f"CIS 1.1.2: docker group members not in docker_group_members: {', '.join(others)} "
            "(reported only; set docker_group_enforce: True to remove them)"
        )
        host.noop("docker group has unlisted members (report only)")
        return
    yield " && ".join(f"gpasswd -d {m} docker >/dev/null" for m in others)


GROUP_OP = "CIS 1.1.2: only trusted users in the docker group"


def configure(cfg: dict[str, Any]) -> list:
    return [
        members(
            name=GROUP_OP,
            allowed=list(cfg["docker_group_members"]),
            enforce=cfg["docker_group_enforce"],
        )
    ]
