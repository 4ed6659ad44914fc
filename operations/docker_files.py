"""Owner and mode of Docker's files (CIS Docker Benchmark 1.6.0, section 3).

One fact reads every path at once and one operation fixes them all, so a no-op
run costs one command however many paths are checked. Modes are compared as
bitmasks: "644 or stricter" means no bits beyond 0644 (a 0622 file is not
stricter than 0644, though 622 < 644), and a stricter mode is left alone.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import FactProcessError


@dataclass(frozen=True)
class PathRule:
    cis: str
    path: str
    user: str
    group: str
    max_mode: str  # the loosest mode allowed, octal: "644"
    exact: bool = False  # the mode must be max_mode itself (private keys: exactly 0400)


RULES = [
    PathRule("3.5/3.6", "/etc/docker", "root", "root", "755"),
    PathRule("3.9/3.10", "/etc/docker/tls/ca.pem", "root", "root", "444"),
    PathRule("3.11/3.12", "/etc/docker/tls/server-cert.pem", "root", "root", "444"),
    PathRule("3.13/3.14", "/etc/docker/tls/server-key.pem", "root", "root", "400", exact=True),
    PathRule("3.17/3.18", "/etc/docker/daemon.json", "root", "root", "644"),
    PathRule("3.1/3.2", "/etc/systemd/system/docker.service.d/dockguard.conf", "root", "root", "644"),
]


class PathModes(FactBase):
    """{path: {"mode": "644", "user": "root", "group": "root"}} for the paths that exist."""

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f"stat -c '%a %U %G %n' -- {quoted} 2>/dev/null; true"

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        out = {}
        for line in output:
            parts = line.split(" ", 3)
            if len(parts) != 4 or not parts[0].isdigit():
                raise FactProcessError(f"unexpected stat output: {line!r}")
            mode, user, group, path = parts
            out[path] = {"mode": mode, "user": user, "group": group}
        return out


def fixes(rule: PathRule, current: dict[str, str] | None) -> list[str]:
    """Commands that bring one existing path within its rule (none: it complies)."""
    if current is None:
        return []
    cmds = []
    have = int(current["mode"], 8)
    extra = have & ~int(rule.max_mode, 8) & 0o7777
    path = shlex.quote(rule.path)
    if (current["user"], current["group"]) != (rule.user, rule.group):
        cmds.append(f"chown {rule.user}:{rule.group} {path}")
    if rule.exact and have & 0o7777 != int(rule.max_mode, 8):
        cmds.append(f"chmod {rule.max_mode} {path}")
    elif extra:
        cmds.append(f"chmod {have & ~extra:o} {path}")
    return cmds


@operation()
def permissions(rules: list[PathRule] | None = None):
    """Every rule's path that exists: owner exact, mode no looser than allowed."""
    rules = rules if rules is not None else RULES
    live = host.get_fact(PathModes, paths=[r.path for r in rules])
    cmds = [c for r in rules for c in fixes(r, live.get(r.path))]
    if not cmds:
        host.noop(f"{len(live)} Docker paths have the required owner and mode")
        return
    yield " && ".join(cmds)


def configure(cfg) -> None:
    permissions(name="CIS 3.x: owner and mode of Docker files")
