"""The one registry of the paths dockguard manages or checks on a host.

Each row says, for one path: its CIS IDs (1.6.0 and 1.8.0), owner, group and loosest
mode, whether dockguard renders its content (and from which template), whether it is
an audit watch (CIS 1.1.x), and whether it belongs to dockerd's rollback set (a change
needs a dockerd restart, and the last known-good copy is kept). Every table of the
control areas derives from it: the content digests read in one command
(``managed_files``), the owner/mode rules of section 3 (``mode_rules``), the fixed
audit watches (``audited``), dockerd's rollback set (``rollback_set``) and the paths the
host facts stat (``stat_paths``). Paths that differ per host (binaries, unit files,
registry certificates) are found by the hostpaths fact and get their rules from
``UNIT_RULES``, ``BINARY_WATCHES`` and ``CERTS_D``.

tests/unit/test_registry.py checks that every CIS 3 control and every 1.1.x watch of
the catalogue has its row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Path:
    path: str
    cis: str  # CIS Docker Benchmark 1.6.0 IDs ("3.17/3.18", "1.1.11")
    cis18: str = ""  # 1.8.0 IDs where they differ ("" : the same)
    owner: str = "root"
    group: str = "root"
    mode: str | None = None  # the loosest mode allowed (octal), None: not checked
    exact: bool = False  # the mode must be exactly ``mode`` (private keys)
    template: str | None = None  # rendered by dockguard from templates/
    audited: str | None = None  # the 1.1.x watch this path answers
    rollback: bool = False  # in dockerd's config and rollback set
    family: str | None = None  # only on this distribution family (None: wherever it exists)


DROPIN = "/etc/systemd/system/docker.service.d/zzz-dockguard.conf"
LEGACY_DROPIN = "/etc/systemd/system/docker.service.d/dockguard.conf"
SOCKET_DROPIN = "/etc/systemd/system/docker.socket.d/dockguard.conf"
DAEMON_JSON = "/etc/docker/daemon.json"
SECCOMP_PROFILE = "/etc/docker/seccomp/dockguard.json"
TLS_DIR = "/etc/docker/tls"
CA_CERT, SERVER_CERT, SERVER_KEY = f"{TLS_DIR}/ca.pem", f"{TLS_DIR}/server-cert.pem", f"{TLS_DIR}/server-key.pem"
AUDIT_RULES = "/etc/audit/rules.d/dockguard-docker.rules"
AUDIT_RUNTIME_UNIT = "/etc/systemd/system/dockguard-audit-runtime.service"
APPARMOR_PROFILE = "/etc/apparmor.d/dockguard-default"
LYNIS_PROFILE = "/etc/lynis/dockguard.prf"
CERTS_D = "/etc/docker/certs.d"

PATHS: tuple[Path, ...] = (
    # Docker's own paths (section 3 owner/mode, section 1.1 watches)
    Path("/var/lib/docker", "1.1.5", audited="1.1.5"),
    Path("/etc/docker", "3.5/3.6", mode="755", audited="1.1.6"),
    Path(CERTS_D, "3.7/3.8", mode="755"),
    Path("/run/containerd", "1.1.4", audited="1.1.4"),
    Path("/etc/default/docker", "3.19/3.20", mode="644", audited="1.1.10", family="debian"),
    Path("/etc/sysconfig/docker", "3.21/3.22", mode="644", audited="1.1.13", family="rhel"),
    Path(
        DAEMON_JSON, "3.17/3.18", mode="644", template="etc/docker/daemon.json.j2", audited="1.1.11", rollback=True
    ),  # fmt: skip
    Path("/etc/containerd/config.toml", "1.1.12", audited="1.1.12"),
    Path("/run/containerd/containerd.sock", "3.23/3.24", mode="660", audited="1.1.8"),
    # 1.7.0 and 1.8.0 audit docker.sock for 1.1.9 (1.6.0: the docker.socket unit): both are watched
    Path("/var/run/docker.sock", "3.15/3.16", group="docker", mode="660", audited="1.1.9"),
    Path(CA_CERT, "3.9/3.10", mode="444", rollback=True),
    Path(SERVER_CERT, "3.11/3.12", mode="444", rollback=True),
    Path(SERVER_KEY, "3.13/3.14", mode="400", exact=True, rollback=True),
    # Files dockguard renders
    Path(
        DROPIN, "3.1/3.2", mode="644", template="etc/systemd/system/docker.service.d/dockguard.conf.j2", rollback=True
    ),  # fmt: skip
    Path(LEGACY_DROPIN, "2.7"),  # the drop-in's old name, removed
    Path(SECCOMP_PROFILE, "2.17", "2.18", template="etc/docker/seccomp/dockguard.json.j2", rollback=True),
    Path(SOCKET_DROPIN, "3.3/3.4", mode="644", template="etc/systemd/system/docker.socket.d/dockguard.conf.j2"),
    Path(AUDIT_RULES, "1.1", mode="640", template="etc/audit/rules.d/dockguard-docker.rules.j2"),
    Path(
        AUDIT_RUNTIME_UNIT, "1.1", mode="644", template="etc/systemd/system/dockguard-audit-runtime.service.j2"
    ),  # fmt: skip
    Path(APPARMOR_PROFILE, "5.1", mode="644", template="etc/apparmor.d/dockguard-default.j2"),
    Path(LYNIS_PROFILE, "1.2.1", mode="644", template="etc/lynis/dockguard.prf.j2"),
)

# Paths found per host by the hostpaths fact, and the rules they get.
UNIT_RULES = {"docker.service": ("3.1/3.2", "1.1.7"), "docker.socket": ("3.3/3.4", "1.1.9")}
BINARY_WATCHES = {
    "docker": "1.1.3", "dockerd": "1.1.3", "containerd": "1.1.14", "containerd-shim": "1.1.15",
    "containerd-shim-runc-v1": "1.1.16", "containerd-shim-runc-v2": "1.1.17", "runc": "1.1.18",
}  # fmt: skip
# Where Docker's own packages install each binary: third-party checkers (docker-bench-security and
# the like) look for watches there, whatever the distribution does (Debian: /usr/sbin/dockerd, and
# /usr/bin/runc a link to /usr/sbin/runc). Watched too, so their scan agrees with dockguard's report.
UPSTREAM_BINS = {name: f"/usr/bin/{name}" for name in BINARY_WATCHES}
CERT_RULE = ("3.7/3.8", "444")  # every file under certs.d (a directory there: 755)


def by_path(path: str) -> Path:
    for p in PATHS:
        if p.path == path:
            return p
    raise KeyError(path)


# The OS baseline's rendered files (operations/kernel, accounts, os_packages, firewall):
# read with Docker's in the one digest command. tests/unit/test_registry.py checks the list.
OS_FILES = (
    "/etc/sysctl.d/60-dockguard.conf", "/etc/modprobe.d/dockguard-blacklist.conf",
    "/etc/security/limits.d/dockguard-core.conf", "/etc/systemd/coredump.conf.d/dockguard.conf",
    "/etc/profile.d/dockguard-timeout.sh", "/etc/issue", "/etc/issue.net",
    "/etc/apt/sources.list.d/dockguard-security.sources", "/etc/apt/apt.conf.d/20auto-upgrades",
    "/etc/apt/apt.conf.d/52dockguard-unattended", "/etc/needrestart/conf.d/dockguard.conf",
    "/etc/fail2ban/jail.d/dockguard.local", "/etc/aide/aide.conf.d/99_dockguard",
    "/usr/local/sbin/dockguard-firewall", "/etc/systemd/system/dockguard-firewall.service",
)  # fmt: skip


# dockguard-authz (operations/authz.py, CIS 2.12): the plugin, its policy and units.
AUTHZ_FILES = (
    "/usr/local/lib/dockguard-authz.py", "/etc/docker/dockguard-authz.json",
    "/etc/systemd/system/dockguard-authz.socket", "/etc/systemd/system/dockguard-authz.service",
)  # fmt: skip


def managed_files() -> tuple[str, ...]:
    """Every file whose content dockguard renders or removes (digests read in one command)."""
    return tuple(p.path for p in PATHS if p.template or p.path == LEGACY_DROPIN) + OS_FILES + AUTHZ_FILES


def mode_rules() -> list[Path]:
    """Every fixed path with an owner/mode rule (section 3, and dockguard's own files)."""
    return [p for p in PATHS if p.mode]


def audited() -> tuple[str, ...]:
    """Fixed paths that are audit watches wherever they exist (binaries and units are
    found per host)."""
    return tuple(p.path for p in PATHS if p.audited)


# dockerd's configuration, in a fixed order: the digest dockerd last started healthy with is
# of these files in this order, and the known-good manifest names them by position.
ROLLBACK = (DAEMON_JSON, DROPIN, SECCOMP_PROFILE, CA_CERT, SERVER_CERT, SERVER_KEY)


def rollback_set() -> tuple[str, ...]:
    """dockerd's configuration: a change needs a restart; the known-good copy keeps them
    (the rows marked ``rollback``, in ROLLBACK's order: test_registry checks they agree)."""
    return ROLLBACK


def stat_paths() -> tuple[str, ...]:
    """Fixed paths whose owner, mode and type the hostpaths fact reads."""
    return tuple(p.path for p in PATHS if p.mode or p.audited) + tuple(UPSTREAM_BINS.values())
