"""dockguard-authz (CIS 2.12): an authorization plugin that refuses the containers the
inventory's ``docker_authz_policy`` forbids, installed where that setting is on.

* The plugin (dockguard/authz_plugin.py, Python's standard library only) is installed as
  it is, with its policy as JSON, a socket unit (/run/docker/plugins/dockguard-authz.sock,
  ordered before docker.service) and a sandboxed service the socket starts (DynamicUser,
  no network, read-only system). A policy change is read by the running plugin (it
  watches its file); a new plugin or unit restarts it (the socket stays: no call is lost).
* This area runs before dockerd's: the socket listens before dockerd restarts with the
  plugin in daemon.json, and dockerd's restart health check asks the plugin for a
  decision (a privileged create it must refuse); a failed check rolls daemon.json back.
* On an engine without the fixes of CVE-2024-41110 and CVE-2026-34040 the policy can be
  bypassed: every run says so, and the CIS 2.12 test fails there with the reason.
* With the setting off, what dockguard installed is removed after dockerd no longer uses
  it (``cleanup``, after the dockerd area).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation

from dockguard import PACKAGE, registry, settings, systemd

from . import Context, content, drift, hostlock, packages, platform, warn

NAME = settings.AUTHZ_PLUGIN
FILES = registry.AUTHZ_FILES
PLUGIN, POLICY, SOCKET_UNIT, SERVICE_UNIT = FILES
SOCKET = f"/run/docker/plugins/{NAME}.sock"
OP = "CIS 2.12: dockguard-authz"
# The engine releases that fix each authorization bypass (upstream moby), and the CVE each is.
BYPASSES = {
    "CVE-2024-41110": ("a request with an empty body reaches the plugin without it",
                       ((23, 0, 15), (25, 0, 6), (26, 1, 5), (27, 1, 1))),
    "CVE-2026-34040": ("a request body over 1 MB reaches the plugin empty", ((29, 3, 1),)),
}  # fmt: skip


_UNITS = [f"{NAME}.socket", f"{NAME}.service"]
_PROPS = ["ActiveState", "UnitFileState"]


class AuthzState(FactBase):
    """{"python": bool, "socket": ActiveState, "socket_enabled": bool, "service": ActiveState,
    "version": "26.1.5" | None, "package": "docker.io" | "docker-ce" | None, "changelog_cves": [..],
    "files": [paths of FILES that exist]}."""

    systemd_show = (_UNITS, _PROPS)  # read by one systemctl for a whole batch (prefetch)

    def command(self, engine: bool = True) -> str:
        """``engine``: also python3, the engine's version, package and changelog (the policy's
        area needs them; the clean-up, on every host where the policy is off, needs only the
        files and units: without them the fact costs a tenth of the CPU)."""
        files = " ".join(FILES)
        probe = (
            (
                "command -v python3 >/dev/null 2>&1 && echo python=yes; "
                "echo version=$(dockerd --version 2>/dev/null "
                "| sed -n 's/^Docker version \\([0-9][0-9.]*\\).*/\\1/p'); "
                "for p in docker.io docker-ce moby-engine; do "
                "dpkg-query -W -f='${Status}\\n' $p 2>/dev/null | grep -q 'ok installed' "
                "&& { echo package=$p; break; }; "
                "done; "
                "for f in /usr/share/doc/docker.io/changelog.Debian.gz; do [ -f $f ] && "
                "zcat $f | grep -oE 'CVE-[0-9]{4}-[0-9]+' | sort -u | sed 's/^/cve=/'; done; "
            )
            if engine
            else ""
        )
        return (
            f"echo units-begin; {systemd.show(_UNITS, _PROPS)}; echo units-end; "
            + probe
            + f"for f in {files}; do [ -e $f ] && echo file=$f; done; "
            f"[ -f {PLUGIN} ] && echo plugin_mode=$(stat -c '%U:%G %a' {PLUGIN}); true"
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"python": False, "socket": "", "socket_enabled": False, "service": "",
                               "version": None, "package": None, "changelog_cves": [], "files": [],
                               "plugin_mode": None}  # fmt: skip
        units = systemd.show_blocks(output, _UNITS, _PROPS)
        socket, service = units.get(_UNITS[0], {}), units.get(_UNITS[1], {})
        out.update(socket=socket.get("ActiveState", ""), service=service.get("ActiveState", ""),
                   socket_enabled=socket.get("UnitFileState") in systemd.ENABLED_STATES)  # fmt: skip
        for line in output:
            key, _, value = line.partition("=")
            if key == "python":
                out["python"] = True
            elif key == "version" and re.fullmatch(r"[0-9]+(\.[0-9]+)*", value):
                out["version"] = value
            elif key == "package":
                out["package"] = value
            elif key == "cve" and re.fullmatch(r"CVE-[0-9]{4}-[0-9]+", value):
                out["changelog_cves"].append(value)
            elif key == "file" and value in FILES:
                out["files"].append(value)
            elif key == "plugin_mode":
                out["plugin_mode"] = value
        return out


def unfixed(live: dict[str, Any]) -> list[str]:
    """The authorization bypasses this engine has: a Debian package fixes one when its changelog
    names the CVE; otherwise the upstream release must be one that fixes it (same minor
    release, or a later one than the newest listed)."""
    version = tuple(int(x) for x in (live.get("version") or "0").split(".")[:3])
    out = []
    for cve, (_, fixed_in) in BYPASSES.items():
        if cve in live.get("changelog_cves", []):
            continue
        fixed = any(version[:2] == f[:2] and version >= f for f in fixed_in) or version >= max(fixed_in)
        if not fixed:
            out.append(cve)
    return out


def policy_text(cfg: dict[str, Any]) -> str:
    from dockguard import authz_plugin

    return json.dumps(authz_plugin.policy_defaults(cfg["docker_authz_policy"]), indent=2, sort_keys=True) + "\n"


SOCKET_TEXT = f"""\
# Managed by dockguard: the socket of dockguard-authz, Docker's authorization plugin (CIS 2.12).
# It listens before dockerd starts; systemd starts the plugin on the first call and keeps the
# socket while the plugin restarts (no call is lost).
[Unit]
Description=dockguard-authz socket (Docker authorization plugin, CIS 2.12)
Before=docker.service

[Socket]
ListenStream={SOCKET}
SocketMode=0600
DirectoryMode=0755

[Install]
WantedBy=sockets.target
"""


def service_text(cfg: dict[str, Any]) -> str:
    mode = cfg["docker_authz_failure_mode"]  # deny or allow (the schema's choices)
    return f"""\
# Managed by dockguard: dockguard-authz, Docker's authorization plugin (CIS 2.12), started by its
# socket. Failure mode: {mode} (docker_authz_failure_mode).
[Unit]
Description=dockguard-authz (Docker authorization plugin, CIS 2.12)
Requires={NAME}.socket
After={NAME}.socket
# No start limit: a plugin that fails is tried again on the next call, and its socket never
# gives up listening (a socket that failed would make dockerd refuse every call).
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/python3 {PLUGIN} {POLICY} {mode}
Restart=on-failure
DynamicUser=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateNetwork=yes
RestrictAddressFamilies=AF_UNIX
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictRealtime=yes
SystemCallArchitectures=native
UMask=0077
"""


# Asks the plugin what dockerd asks first (/Plugin.Activate) through its socket: the plugin must
# start and answer before dockerd is restarted with it (dockerd would not start otherwise).
PROBE = (
    "import json,socket,sys\n"
    "s=socket.socket(socket.AF_UNIX);s.settimeout(10);s.connect(sys.argv[1])\n"
    "s.sendall(b'POST /Plugin.Activate HTTP/1.0\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
    "d=b''\n"
    "while True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
    "sys.exit(0 if json.loads(d.split(b'\\r\\n\\r\\n',1)[1])=={'Implements':['authz']} else 1)\n"
)


def probe_command() -> str:
    return (
        f"python3 -c {shlex.quote(PROBE)} {SOCKET} >/dev/null 2>&1 || {{ "
        f"why=$(journalctl -u {NAME}.service -n 3 --no-pager -o cat 2>/dev/null | tr '\n' ' ' | cut -c1-400); "
        f'echo "dockguard: {NAME} does not answer on {SOCKET} (dockerd is not restarted with it): $why" >&2; '
        "exit 1; }"
    )


@operation()
def running(live: dict[str, Any], changed: bool):
    """The socket enabled and listening, the plugin restarted when its code or units changed
    (gate with ``_if``: changed, or the socket not active or not enabled), and answering."""
    cmds = [
        f"chown root:root {PLUGIN} && chmod 755 {PLUGIN}",  # its DynamicUser reads it
        "systemctl daemon-reload",
        f"systemctl reset-failed {NAME}.socket {NAME}.service >/dev/null 2>&1; true",
        f"systemctl enable {NAME}.socket >/dev/null 2>&1",
        f"systemctl restart {NAME}.socket",
    ]
    if changed and live.get("service") in ("active", "activating", "deactivating"):
        cmds.append(f"systemctl restart {NAME}.service")
    yield StringCommand(hostlock.prefix() + " && ".join(cmds) + " && " + probe_command())


@operation()
def removed(present: list[str], socket: str):
    """What dockguard installed for the plugin, stopped and removed (dockerd no longer uses it)."""
    cmds = []
    if socket or present:
        cmds.append(f"systemctl disable --now {NAME}.socket {NAME}.service >/dev/null 2>&1 || true")
    if present:
        cmds.append("rm -f " + " ".join(present) + " && systemctl daemon-reload")
    if not cmds:
        host.noop("dockguard-authz is not installed")
        return
    yield StringCommand(hostlock.prefix() + "; ".join(cmds))


STATE = ("authz.AuthzState", AuthzState, {})
UNITS_STATE = ("authz.AuthzState.units", AuthzState, {"engine": False})  # cleanup: no engine checks


def reads(ctx: Context) -> list:
    """The facts configure or cleanup read (operations/prefetch.py)."""
    return [UNITS_STATE if ctx.cfg["docker_authz_policy"] is None else STATE]


def configure(ctx: Context) -> list:
    """Before dockerd's area: the plugin, its policy and units, the socket listening."""
    cfg = ctx.cfg
    if cfg["docker_authz_policy"] is None:
        return []
    live = ctx.read(STATE)
    bypass = unfixed(live)
    if bypass:
        engine = f"{live.get('package') or 'dockerd'} {live.get('version') or '(version unknown)'}"
        warn(
            f"CIS 2.12: the dockguard-authz policy is not a control on this engine ({engine}): "
            + "; ".join(f"{c} unfixed ({BYPASSES[c][0]})" for c in bypass)
            + "; the plugin refuses container requests without a body, but upgrade the engine"
        )
    if cfg["docker_authz_failure_mode"] == "allow":
        warn("CIS 2.12: docker_authz_failure_mode is allow: when dockguard-authz cannot decide, it allows")
    ops = [
        packages.ensure(
            name=f"{OP}: python3 installed",
            present=live["python"],
            plat=platform.current(),
            apt="python3",
            dnf="python3",
        )  # fmt: skip
    ]
    files = content.files(
        {
            PLUGIN: ((PACKAGE / "authz_plugin.py").read_text(), "755"),
            POLICY: (policy_text(cfg), "644"),
            SOCKET_UNIT: (SOCKET_TEXT, "644"),
            SERVICE_UNIT: (service_text(cfg), "644"),
        },
        {
            PLUGIN: f"{OP}: the plugin {PLUGIN}",
            POLICY: f"{OP}: the policy {POLICY} (docker_authz_policy)",
            SOCKET_UNIT: f"{OP}: its socket unit",
            SERVICE_UNIT: f"{OP}: its service unit (sandboxed, failure mode {cfg['docker_authz_failure_mode']})",
        },
    )
    ops += files
    code = [f for f in files if f is not files[1]]  # a policy change is read by the running plugin
    if live["socket"] != "active" or not live["socket_enabled"]:
        drift("2.12", f"{NAME}.socket is {live['socket'] or 'not installed'}", f"{OP}: socket listening")
    if live["plugin_mode"] not in (None, "root:root 755"):
        drift("2.12", f"{PLUGIN} is {live['plugin_mode']}, not root:root 755", f"{OP}: socket listening")
    ready = live["socket"] == "active" and live["socket_enabled"] and live["plugin_mode"] in (None, "root:root 755")
    ops.append(
        running(
            name=f"{OP}: socket listening, plugin current",
            live=live,
            changed=True,
            _if=lambda: not ready or any(f.did_change() for f in code),
        )
    )
    return ops


def cleanup(ctx: Context) -> list:
    """After dockerd's area: with docker_authz_policy off, remove what dockguard installed."""
    if ctx.cfg["docker_authz_policy"] is not None:
        return []
    live = ctx.read(UNITS_STATE)
    if NAME in ctx.cfg["docker_authorization_plugins"]:
        return []  # the operator names a plugin of this name themselves: not ours to remove
    if not live["files"] and live["socket"] in ("", "inactive"):
        return []
    return [
        removed(
            name=f"{OP}: removed (docker_authz_policy is off)",
            present=sorted(live["files"]),
            socket=live["socket"] if live["socket"] not in ("", "inactive") else "",
        )
    ]
