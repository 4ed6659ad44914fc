"""The docker group (CIS Docker Benchmark 1.1.2): its members are root-equivalent.

Members not in ``docker_group_members`` are reported on every run; they are
removed only when the operator sets ``docker_group_enforce``.

Member names come from NSS (an LDAP directory may supply any bytes): the fact
hands the group entry over base64-encoded (safe.stream) and every name reaches
the shell quoted as one word (safe.arg) and the operator's terminal escaped
(safe.shown).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, drift, safe, warn

GROUP = "docker"
PURPOSE = "docker group members (getent group docker)"


class DockerGroupMembers(FactBase):
    """Members of the docker group, sorted (None: there is no such group). A name that
    is not UTF-8 is kept byte for byte as surrogate escapes (safe.name)."""

    def command(self) -> str:
        return safe.stream(
            "group",
            f"g=$(getent group {GROUP}); rc=$?; printf 'rc\\0%s\\0' \"$rc\"; "
            '[ "$rc" = 0 ] && printf \'entry\\0%s\\0\' "$g";',
        )

    @staticmethod
    def default():
        return None

    def process(self, output: list[str]) -> list[str] | None:
        found = safe.fields(output, "group", PURPOSE)
        record = dict(zip(found[::2], found[1::2], strict=False))
        if len(found) % 2 or len(record) != len(found) // 2 or not {b"rc"} <= set(record) <= {b"rc", b"entry"}:
            raise FactProcessError(f"{PURPOSE}: unexpected fields {safe.shown(b' '.join(found))}")
        rc = record[b"rc"]
        if rc == b"2":  # getent: no such key
            return None
        if rc != b"0" or b"entry" not in record:
            raise FactProcessError(f"{PURPOSE}: getent failed (exit {safe.shown(rc)})")
        parts = record[b"entry"].split(b":", 3)
        if len(parts) != 4 or parts[0] != GROUP.encode():
            raise FactProcessError(f"{PURPOSE}: not a group entry: {safe.shown(record[b'entry'])}")
        return sorted(safe.name(m) for m in parts[3].split(b",") if m)


def unexpected(members: list[str] | None, allowed: list[str]) -> list[str]:
    return [m for m in members or [] if m not in allowed]


def unremovable(member: str) -> bool:
    """A name that /etc/group cannot hold (an NSS source such as LDAP listed it):
    gpasswd could not remove it, and it has no place on a command line."""
    return any(c in member for c in "\n\0:,")


def remove_command(member: str) -> str:
    """Shell: remove ``member`` from the docker group. gpasswd's getopt takes the
    word after ``-d`` as its argument whatever it starts with (a leading ``-`` is
    a name, not an option), and ``arg`` keeps the name one word, byte for byte."""
    return f"gpasswd -d {safe.arg(member)} {GROUP} >/dev/null"


def _names(members: list[str]) -> str:
    return ", ".join(safe.shown(m) for m in members)


@operation()
def members(allowed: list[str], enforce: bool):
    current = list(Context.of().read(MEMBERS) or [])
    others = unexpected(current, allowed)
    if not others:
        host.noop(f"docker group members are allowed ({len(current)})")
        return
    drift("1.1.2", f"docker group members not in docker_group_members: {_names(others)}", GROUP_OP)
    if not enforce:
        warn(
            f"CIS 1.1.2: docker group members not in docker_group_members: {_names(others)} "
            "(reported only; set docker_group_enforce: True to remove them)"
        )
        host.noop("docker group has unlisted members (report only)")
        return
    odd = [m for m in others if unremovable(m)]
    if odd:
        warn(
            f"CIS 1.1.2: docker group members that /etc/group cannot hold (a newline, NUL, ',' or ':' in "
            f"the name; listed by NSS, e.g. LDAP): {_names(odd)}: not removed, remove them at their source"
        )
    removable = [m for m in others if not unremovable(m)]
    if not removable:
        host.noop("docker group has unlisted members that only their NSS source can remove")
        return
    yield " && ".join(remove_command(m) for m in removable)


MEMBERS = ("docker_group.DockerGroupMembers", DockerGroupMembers, {})
GROUP_OP = "CIS 1.1.2: only trusted users in the docker group"


def reads(ctx: Context) -> list:
    """The facts this area reads (operations/prefetch.py)."""
    return [MEMBERS]


def configure(ctx: Context) -> list:
    cfg = ctx.cfg
    return [
        members(
            name=GROUP_OP,
            allowed=list(cfg["docker_group_members"]),
            enforce=cfg["docker_group_enforce"],
        )
    ]
