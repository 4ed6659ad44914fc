"""Owner and mode of Docker's files, sockets, units and certificates
(CIS Docker Benchmark 1.6.0, section 3).

One fact reads every path at once (hostpaths.DockerHostPaths) and one operation
fixes them all, so a no-op run costs one command however many paths are
checked. Each rule applies only where its path exists. Modes are compared as
bitmasks: "644 or stricter" means no bits beyond 0644 (a 0622 file is not
stricter than 0644, though 622 < 644), and a stricter mode is left alone;
private keys must be exactly 0400.

The sockets are re-created by systemd and containerd at every start, so their
owner and mode are also set where they come from: docker.socket gets a drop-in
(SocketMode/SocketUser/SocketGroup); containerd's socket is root:root 0660 by
default ([grpc] uid/gid 0) and is only checked and corrected live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra import host, state
from pyinfra.api import operation

from dockguard import registry

from . import Context, content, drift, hostpaths, registered, safe, say, warn, when
from .hostpaths import DockerHostPaths

SOCKET_DROPIN = registry.SOCKET_DROPIN
LINK = "symbolic link"
PERMISSIONS_OP = "CIS 3.x: owner and mode of Docker files, sockets, units and certificates"


@dataclass(frozen=True)
class PathRule:
    cis: str
    path: str
    user: str
    group: str
    max_mode: str  # the loosest mode allowed, octal: "644"
    exact: bool = False  # the mode must be max_mode itself (private keys: exactly 0400)


# Every fixed path with an owner/mode rule, from the registry.
FIXED_RULES = [PathRule(p.cis, p.path, p.owner, p.group, p.mode, p.exact) for p in registry.mode_rules()]


def rules_for(paths: dict[str, Any]) -> list[PathRule]:
    """Every rule for this host: the fixed paths, the unit files where this
    distribution keeps them, and each registry certificate (3.7/3.8)."""
    rules = list(FIXED_RULES)
    units = paths.get("units", {})
    for unit, (cis, _) in registry.UNIT_RULES.items():
        if unit in units:
            rules.append(PathRule(cis, units[unit], "root", "root", "644"))
    cis, mode = registry.CERT_RULE
    for cert in paths.get("certs", []):
        kind = paths.get("stat", {}).get(cert, {}).get("type", "")
        rules.append(PathRule(cis, cert, "root", "root", "755" if kind == "directory" else mode))
    return rules


def fixes(rule: PathRule, current: dict[str, str] | None) -> list[str]:
    """Commands that bring one existing path within its rule (none: it complies, or it
    is a symbolic link, which is reported and never followed: see ``links``). chown
    changes the link itself (-h) and chmod, which would follow one, runs only while
    the path is still no link."""
    if current is None or current.get("type") == LINK or not safe.quotable(rule.path):
        return []
    cmds = []
    have = int(current["mode"], 8)
    extra = have & ~int(rule.max_mode, 8) & 0o7777
    path = safe.arg(rule.path)
    if (current["user"], current["group"]) != (rule.user, rule.group):
        cmds.append(f"chown -h {rule.user}:{rule.group} {path}")
    if rule.exact and have & 0o7777 != int(rule.max_mode, 8):
        cmds.append(f"[ ! -L {path} ] && chmod {rule.max_mode} {path}")
    elif extra:
        cmds.append(f"[ ! -L {path} ] && chmod {have & ~extra:o} {path}")
    return cmds


def refused(paths: dict[str, Any]) -> list[tuple[PathRule, str]]:
    """(rule, why) for every rule's path that dockguard leaves alone: a symbolic link
    (under /etc/docker/certs.d it can point anywhere; chown or chmod through it would
    change that file), or a name no shell word can carry (it ends in a newline)."""
    out = []
    for rule in rules_for(paths):
        have = paths.get("stat", {}).get(rule.path)
        if have is None:
            continue
        if have.get("type") == LINK:
            out.append((rule, f"{safe.shown(rule.path)} is a symbolic link to {safe.shown(have.get('target', '?'))}; "
                              "dockguard does not follow links: replace it with a file or remove it"))  # fmt: skip
        elif not safe.quotable(rule.path):
            out.append((rule, f"{safe.shown(rule.path)}: dockguard cannot name this path safely in a command "
                              "(it ends in a newline): rename it"))  # fmt: skip
    return out


def violations(paths: dict[str, Any]) -> list[tuple[PathRule, list[str]]]:
    """(rule, commands) for every existing path that is out of its rule."""
    out = []
    for rule in rules_for(paths):
        cmds = fixes(rule, paths.get("stat", {}).get(rule.path))
        if cmds:
            out.append((rule, cmds))
    return out


def _paths(prepared: dict[str, Any] | None, earlier: list) -> dict[str, Any]:
    """The paths as read while the host was prepared, while that is still true: when
    checking only, or when no earlier operation of this run changed anything (they may
    have written a file, restarted a socket); otherwise read them again now."""
    if prepared is not None and (not state.is_executing or not any(op.did_change() for op in earlier)):
        return prepared
    return host.get_fact(DockerHostPaths)


@operation()
def permissions(prepared: dict[str, Any] | None = None, earlier: list | None = None):
    """Every rule's path that exists: owner exact, mode no looser than allowed."""
    paths = _paths(prepared, earlier or [])
    for rule, why in refused(paths):
        warn(f"CIS {rule.cis}: {why}")
        drift(rule.cis, why)
    found = violations(paths)
    if not found:
        checked = sum(1 for r in rules_for(paths) if r.path in paths.get("stat", {}))
        host.noop(f"{checked} Docker paths have the required owner and mode")
        return
    for rule, _ in found:
        have = paths["stat"][rule.path]
        wants = f"{rule.user}:{rule.group} {rule.max_mode}" + ("" if rule.exact else " or stricter")
        found_here = f"{safe.shown(rule.path)} is {have['user']}:{have['group']} {have['mode']}, wants {wants}"
        say(f"CIS {rule.cis}: {found_here}")
        drift(rule.cis, found_here, PERMISSIONS_OP)
    yield " && ".join(c for _, cmds in found for c in cmds)


def configure(ctx: Context) -> list:
    """CIS 3.x (``earlier``: the operations of this run before this area). Returns the
    operations whose change matters to later areas."""
    earlier = list(ctx.changed)
    (socket,) = content.files(
        {SOCKET_DROPIN: (content.render("etc/systemd/system/docker.socket.d/dockguard.conf.j2"), "644")},
        {SOCKET_DROPIN: "CIS 3.15/3.16: docker.socket creates docker.sock root:docker 0660"},
    )
    when(registered(socket), reload_units, name="CIS 3.15/3.16: systemd reads the docker.socket drop-in",
         _if=socket.did_change)  # fmt: skip
    perms = permissions(name=PERMISSIONS_OP, prepared=hostpaths.current(), earlier=[*earlier, socket])
    return [socket, perms]


@operation()
def reload_units():
    yield "systemctl daemon-reload"
