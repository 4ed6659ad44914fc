"""auditd (CIS Docker Benchmark 1.6.0, 1.1.3-1.1.18): a watch for every Docker and
containerd path that exists on the host, loaded into the kernel and verified there.

* The rules file (/etc/audit/rules.d/dockguard-docker.rules) holds one
  ``-w PATH -p wa -k docker`` line per path that exists (a watch on a missing
  path would stop augenrules at that line), found by hostpaths.DockerHostPaths
  wherever the distribution puts binaries and units. Rules files of others are
  left alone.
* ``augenrules --load`` runs only when the file changed or the kernel's list
  (``auditctl -l``) lacks one of our watches; the load is then verified against
  the kernel's list, not the file.
* A watch whose directory a service makes under /run after the boot loaded the rules
  (/run/containerd/containerd.sock) is not in that file: at boot auditctl would refuse
  it and stop loading every rules file at that line (auditd then does not start on
  Debian 13). ``dockguard-audit-runtime.service`` loads it once containerd is up (and
  again when containerd restarts), and the load below adds it after ``augenrules --load``.
* Where auditd cannot run (a container host: the kernel refuses audit control
  from a container) the host says so, keeps the rules file for the day it runs
  elsewhere, and goes on. Immutable rules (``-e 2``) are reported: they change
  only at the next boot.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation

from dockguard import registry, systemd

from . import Context, content, drift, hostpaths, packages, platform, registered, safe, warn, when
from .dockerd import DAEMON_JSON

RULES_FILE = registry.AUDIT_RULES
RUNTIME_UNIT = registry.AUDIT_RUNTIME_UNIT
RUNTIME_UNIT_NAME = RUNTIME_UNIT.rsplit("/", 1)[1]
RUNTIME_TEMPLATE = registry.by_path(RUNTIME_UNIT).template
RUNNING_OP = "CIS 1.1: auditd enabled and running"
LOAD_OP = "CIS 1.1: audit rules loaded and verified in the kernel"
KEY = "docker"
# CIS 1.1.x paths (besides binaries and units, found per host).
AUDITED = registry.audited()


def watched_paths(paths: dict[str, Any]) -> list[str]:
    """Every Docker/containerd path to watch on this host: what exists, plus daemon.json,
    which dockguard writes before the rules are loaded, plus the upstream path of each
    installed binary (``upstream_paths``)."""
    found = set(paths.get("bins", {}).values())
    found |= {p for u, p in paths.get("units", {}).items() if u in ("docker.service", "docker.socket")}
    found |= {p for p in AUDITED if p in paths.get("stat", {})}
    found |= set(upstream_paths(paths))
    found.add(DAEMON_JSON)
    return sorted(found)


def upstream_paths(paths: dict[str, Any]) -> dict[str, str]:
    """{upstream path: the real binary} for each installed binary the distribution puts
    elsewhere (Debian 13: /usr/sbin/dockerd; /usr/bin/runc a link to /usr/sbin/runc).
    Auditors' checkers look for a watch at Docker's own install path (/usr/bin/NAME): it is
    watched too, as a link or where nothing is (a binary dropped there later is then
    recorded), and the rules file names the real binary."""
    out = {}
    for name, real in paths.get("bins", {}).items():
        upstream = registry.UPSTREAM_BINS.get(name)
        if upstream and upstream != real:
            entry = paths.get("stat", {}).get(upstream)
            if entry is None or entry["type"] == "symbolic link":
                out[upstream] = real
    return out


def watchable(path: str) -> bool:
    """Whether ``path`` can be a watch: auditctl splits a rule on whitespace and the
    rules file is text, so a path with whitespace, a control character or bytes that
    are not UTF-8 cannot be one (it is left out and reported: ``unwatchable``). A printable
    string's only whitespace is the ASCII space (str.isprintable: every other space is a
    separator or a control character)."""
    return safe.plain(path) and " " not in path


def unwatchable(watched: list[str]) -> list[str]:
    return [p for p in watched if not watchable(p)]


def rule_lines(watched: list[str]) -> list[str]:
    return [f"-w {p} -p wa -k {KEY}" for p in watched if watchable(p)]


_UNIT_SAFE = re.compile(r"[A-Za-z0-9/._+-]+")


def made_at_runtime(path: str) -> bool:
    """Whether ``path``'s directory is made under /run by a service, after the boot loaded
    the audit rules (/run/containerd/containerd.sock: /run/containerd is containerd's).
    Such a watch is loaded by the runtime unit, whose ExecStart lines take it unquoted:
    only a path of plain characters goes there (any other stays in the rules file)."""
    parent = posixpath.dirname(path)
    return parent.startswith(("/run/", "/var/run/")) and bool(_UNIT_SAFE.fullmatch(path))


def split_rules(watched: list[str]) -> tuple[list[str], list[str]]:
    """(rules for the rules file, loaded at boot; rules for the runtime unit)."""
    boot = rule_lines([p for p in watched if not made_at_runtime(p)])
    runtime = rule_lines([p for p in watched if made_at_runtime(p)])
    return boot, runtime


_UNITS = ["auditd.service", RUNTIME_UNIT_NAME]
_PROPS = ["ActiveState", "UnitFileState"]


class AuditState(FactBase):
    """Whether this host can run auditd, its state, and the kernel's rule list."""

    systemd_show = (_UNITS, _PROPS)  # read by one systemctl for a whole batch (prefetch)

    def command(self) -> str:
        # Whether the host is a container is the platform's (HostPlatform): not read twice.
        return (
            "if command -v auditctl >/dev/null 2>&1; then echo installed=yes; else echo installed=no; fi; "
            f"echo units-begin; {systemd.show(_UNITS, _PROPS)}; echo units-end; "
            "if s=$(auditctl -s 2>&1); then echo status=ok; o=$IFS; IFS='\n'; set -f; for x in $s; do "
            'case $x in "enabled "*) echo "audit_enabled=${x#enabled }";; esac; done; set +f; IFS=$o; '
            # The kernel's rules (only where its status could be read).
            'auditctl -l 2>/dev/null | while IFS= read -r x; do echo "rule=$x"; done; '
            # Why not: its message on one line, at most 200 bytes (printf's precision: no head process).
            "else set -f; s=$(echo $s); set +f; printf 'status=%.200s\\n' \"$s\"; fi; true"
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"rules": []}
        units = systemd.show_blocks(output, _UNITS, _PROPS)
        auditd, runtime = units.get(_UNITS[0], {}), units.get(_UNITS[1], {})
        if auditd:
            out.update(active=auditd.get("ActiveState", ""), enabled=auditd.get("UnitFileState", ""))
        if runtime.get("UnitFileState") in systemd.ENABLED_STATES:
            out["runtime_unit"] = "enabled"
        for line in output:
            key, _, value = line.partition("=")
            if key == "rule":
                if value != "No rules":
                    out["rules"].append(value)
            elif key in ("installed", "status", "audit_enabled"):
                out[key] = value
        out["available"] = out.get("status") == "ok"
        out["immutable"] = out.get("audit_enabled") == "2"
        return out


def unavailable_reason(live: dict[str, Any]) -> str | None:
    if live.get("available"):
        return None
    if live.get("installed") != "yes":
        return "auditd is being installed"
    where = platform.current().get("container")
    if where:
        return (
            f"auditd cannot run on this host: it is a container ({where}) and the kernel refuses audit "
            "control from a container; the rules file is installed, the live checks run on a VM or real host"
        )
    return f"the kernel's audit status cannot be read ({live.get('status')})"


def _current(live: dict[str, Any] | None) -> dict[str, Any]:
    """The state read while the area was prepared, unless auditd was not installed then
    (it is installed by an earlier operation of this run: read it again)."""
    if live and live.get("installed") == "yes":
        return live
    return host.get_fact(AuditState)


@operation()
def running(live: dict[str, Any] | None = None):
    """auditd enabled and running, where it can run."""
    live = _current(live)
    reason = unavailable_reason(live)
    if reason:
        warn(f"CIS 1.1: {reason}")
        host.noop(reason)
        return
    cmds = []
    if live.get("active") != "active":
        drift("1.1", f"auditd is {live.get('active') or 'not running'}", operation=RUNNING_OP)
    if live.get("enabled") != "enabled":
        cmds.append("systemctl enable auditd.service")
    if live.get("active") != "active":
        # Not `restart`: RHEL refuses a manual restart of auditd.
        cmds.append("systemctl start auditd.service")
    if not cmds:
        host.noop("auditd is enabled and running")
        return
    yield " && ".join(cmds)


@operation()
def runtime_unit():
    """The runtime watches' unit enabled as its [Install] section says, systemd told of its
    text (gate with ``_if``: the unit changed or is not enabled)."""
    yield f"systemctl daemon-reload && systemctl reenable {RUNTIME_UNIT_NAME} >/dev/null 2>&1"


def missing_rules(live: dict[str, Any], wanted: list[str]) -> list[str]:
    have = set(live.get("rules", []))
    return [r for r in wanted if r not in have]


@operation()
def loaded(wanted: list[str], live: dict[str, Any] | None = None, runtime: list[str] | None = None):
    """Load the rules (gate with ``_if``) and verify them in the kernel's list. ``runtime``:
    those of ``wanted`` that are not in the rules file (see :func:`made_at_runtime`), added
    with auditctl after the file's load (which may begin with ``-D``)."""
    live = _current(live)
    reason = unavailable_reason(live)
    if reason:
        host.noop(f"audit rules not loaded: {reason}")
        return
    if live.get("immutable"):
        warn(
            "CIS 1.1: audit rules are immutable (-e 2) until the next boot: the Docker watches load then; "
            f"missing now: {', '.join(missing_rules(live, wanted)) or 'none'}"
        )
        host.noop("audit rules are immutable until reboot")
        return
    checks = " ".join(f'auditctl -l | grep -qxF -- {q} || missing="$missing; "{q};' for q in map(shlex.quote, wanted))
    adds = "".join(
        f"auditctl -l | grep -qxF -- {shlex.quote(r)} || auditctl {shlex.join(r.split())} >/dev/null || exit 1; "
        for r in runtime or []
    )
    yield StringCommand(
        "augenrules --load >/dev/null || exit 1; "
        + adds
        + "missing=''; "
        + checks
        + ' if [ -n "$missing" ]; then '
        + "printf '%s\\n' \"dockguard: audit rules not in the kernel after loading:$missing\" >&2; exit 1; fi"
    )


STATE = ("audit.AuditState", AuditState, {})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [STATE, hostpaths.request()]


def configure(ctx: Context) -> list:
    """CIS 1.1.3-1.1.18."""
    live = ctx.read(STATE)
    paths = hostpaths.current()
    watched = watched_paths(paths)
    for path in unwatchable(watched):
        why = (
            f"{safe.shown(path)} cannot be an audit watch (auditctl splits a rule on whitespace; a control "
            f"character or a byte that is not UTF-8 cannot be written to the rules file): left out of {RULES_FILE}"
        )
        warn(f"CIS 1.1: {why}")
        drift("1.1.3-1.1.18", why)
    wanted = rule_lines(watched)
    boot, runtime = split_rules(watched)
    inst = packages.ensure(
        name="CIS 1.1: auditd installed",
        present=live.get("installed") == "yes",
        plat=platform.current(),
        apt="auditd",
        dnf="audit",
    )
    # Content here, owner and mode (root:root 0640) with the other files (docker_files).
    rules, unit = content.files(
        {
            RULES_FILE: (
                content.render(
                    "etc/audit/rules.d/dockguard-docker.rules.j2",
                    rules=boot,
                    upstream=sorted(upstream_paths(paths).items()),
                ),
                "640",
            ),
            RUNTIME_UNIT: (content.render(RUNTIME_TEMPLATE, rules=runtime), "644"),
        },
        {
            RULES_FILE: "CIS 1.1.3-1.1.18: audit rules for Docker paths",
            RUNTIME_UNIT: f"CIS 1.1.4/1.1.8: {RUNTIME_UNIT_NAME}, the watches on paths made under /run at runtime",
        },
    )
    unit_enabled = live.get("runtime_unit") == "enabled"
    unit_on = when(
        registered(unit) or not unit_enabled,
        runtime_unit,
        name=f"CIS 1.1.4/1.1.8: {RUNTIME_UNIT_NAME} enabled",
        _if=lambda: unit.did_change() or not unit_enabled,
    )
    run = running(name=RUNNING_OP, live=live)
    missing = missing_rules(live, wanted) if live.get("available") else []
    if missing:
        drift(
            "1.1.3-1.1.18",
            f"{len(missing)} Docker audit watches missing from the kernel: {'; '.join(missing)}",
            operation=LOAD_OP,
        )
    stale = bool(missing)
    load = when(
        stale or registered(rules) or registered(unit),
        loaded,
        name=LOAD_OP,
        wanted=wanted,
        runtime=runtime,
        live=live,
        _if=lambda: stale or rules.did_change() or unit.did_change(),
    )
    return [inst, rules, unit, unit_on, run, load]
