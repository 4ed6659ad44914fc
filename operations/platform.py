"""Which distribution a host runs, and what that decides.

One fact (``HostPlatform``, one command) tells each control area what it branches
on: the distribution and its family, the package manager (apt or dnf), which of
the packages dockguard cares about are installed (Docker from the distribution,
docker.io, or Docker CE, docker-ce + containerd.io), whether the host is a
container, and the state of its mandatory access control (AppArmor or SELinux).
Unit and defaults-file paths are not guessed from the distribution: the fact of
hostpaths.DockerHostPaths reads them from systemd and the file system.

The preflight reads it for every host before any host is touched and refuses an
unsupported distribution, or a missing Docker it may not or cannot install.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from . import PerHost, safe

# Distributions dockguard supports: os-release ID -> (family, supported VERSION_ID major versions).
SUPPORTED = {
    "debian": ("debian", ("12", "13")),
    "ubuntu": ("debian", ("22.04", "24.04", "26.04")),
    "rocky": ("rhel", ("9", "10")),
    "rhel": ("rhel", ("9", "10")),
}
SUPPORTED_TEXT = "Debian 12/13, Ubuntu 22.04/24.04/26.04, Rocky Linux 9/10, RHEL 9/10"
# Packages whose presence a control branches on (dpkg or rpm names).
PACKAGES = (
    "docker.io", "docker-cli", "docker-ce", "docker-ce-cli", "containerd.io", "containerd", "moby-engine",
    "podman-docker",
    "apparmor", "apparmor-utils", "container-selinux", "selinux-policy-default", "policycoreutils",
    "auditd", "audit", "lynis",
)  # fmt: skip
# Docker as each source installs it, per family.
DOCKER_PACKAGES = {
    ("distribution", "debian"): ("docker.io",),
    ("docker-ce", "debian"): ("docker-ce", "docker-ce-cli", "containerd.io"),
    ("docker-ce", "rhel"): ("docker-ce", "docker-ce-cli", "containerd.io"),
}
APPARMOR_PROFILE_FILE = "/etc/apparmor.d/dockguard-default"
APPARMOR_KERNEL_PARAMETERS = "apparmor=1 security=apparmor"


class HostPlatform(FactBase):
    """{"id", "version", "codename", "name", "family", "pkg", "packages": [installed names],
    "container": virtualization or None, "cmdline", "apparmor": {...}, "selinux": {...}}."""

    def command(self) -> str:
        names = " ".join(PACKAGES)
        return (
            # os-release is the host's to write: its values, NUL-separated, base64-encoded on one line.
            "if [ -r /etc/os-release ]; then . /etc/os-release; fi; "
            + safe.encoded("os=", 'printf \'%s\\0\' "$ID" "$VERSION_ID" "$VERSION_CODENAME" "$PRETTY_NAME" "$ID_LIKE"')
            + "; "
            "if command -v apt-get >/dev/null 2>&1; then echo pkg=apt; "
            "elif command -v dnf >/dev/null 2>&1; then echo pkg=dnf; fi; "
            "if command -v dpkg-query >/dev/null 2>&1; then "
            f"dpkg-query -W -f='pkgstatus=${{Package}} ${{Status}}\\n' {names} 2>/dev/null; "
            "elif command -v rpm >/dev/null 2>&1; then "
            f"rpm -q --qf 'package=%{{NAME}}\\n' {names} 2>/dev/null | grep '^package='; fi; "
            # A container: what systemd found at boot (/run/systemd/container, which
            # systemd-detect-virt reads first), else systemd-detect-virt's own checks.
            "virt=; [ -r /run/systemd/container ] && read -r virt < /run/systemd/container; "
            '[ -n "$virt" ] || virt=$(systemd-detect-virt --container 2>/dev/null); echo "container=${virt:-none}"; '
            "c=; IFS= read -r c < /proc/cmdline; printf 'cmdline=%s\\n' \"$c\"; "
            # AppArmor: the kernel's switch, the tools, the loaded profiles (as aa-status reads them,
            # from securityfs, without starting aa-status's Python).
            "a=absent; [ -r /sys/module/apparmor/parameters/enabled ] && "
            "read -r a < /sys/module/apparmor/parameters/enabled; echo aa_kernel=$a; "
            "command -v apparmor_parser >/dev/null 2>&1 && echo aa_parser=yes; "
            "[ -r /sys/kernel/security/apparmor/profiles ] && echo aa_profiles=readable && "
            "sed 's/^/aa_profile=/' /sys/kernel/security/apparmor/profiles; "
            # SELinux: the running mode and the configured one.
            "command -v getenforce >/dev/null 2>&1 && echo se_mode=$(getenforce 2>/dev/null); "
            "[ -f /etc/selinux/config ] && echo se_config=$(sed -n 's/^SELINUX=//p' /etc/selinux/config); "
            "[ -e /.autorelabel ] && echo se_relabel=yes; "
            # The policy module that defines container types (container-selinux on the RHEL family).
            'for x in /var/lib/selinux/*/active/modules/*/container; do [ -e "$x" ] && echo se_container=yes; '
            "break; done; true"
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        raw: dict[str, str] = {}
        installed: list[str] = []
        profiles: dict[str, str] = {}
        for line in output:
            key, sep, value = line.partition("=")
            if not sep:
                if line.strip():
                    raise FactProcessError(f"unexpected output: {line!r}")
                continue
            if key == "os":
                raw.update(_os_release(value))
            elif key == "package":
                installed.append(value)
            elif key == "pkgstatus":  # "NAME install ok installed" (dpkg-query)
                name, _, status = value.partition(" ")
                if status.split()[-1:] == ["installed"]:
                    installed.append(name)
            elif key == "aa_profile":  # "NAME (MODE)"
                name, _, mode = value.rpartition(" (")
                profiles[name] = mode.rstrip(")")
            else:
                raw[key] = value
        os_id = raw.get("id", "").strip().lower()
        family = SUPPORTED.get(os_id, (None,))[0]
        if family is None:
            like = raw.get("like", "").split()
            family = "debian" if "debian" in like else "rhel" if ("rhel" in like or "fedora" in like) else None
        container = raw.get("container", "none")
        return {
            "id": os_id,
            "version": raw.get("version", ""),
            "codename": raw.get("codename", ""),
            "name": raw.get("name", "") or os_id or "unknown",
            "family": family,
            "pkg": raw.get("pkg"),
            "packages": sorted(set(installed)),
            "container": None if container in ("", "none") else container,
            "cmdline": raw.get("cmdline", ""),
            "apparmor": {
                # Y: enabled; N: built in but off; absent: not in this kernel.
                "kernel": raw.get("aa_kernel", "absent"),
                "parser": raw.get("aa_parser") == "yes",
                "profiles_readable": raw.get("aa_profiles") == "readable",
                "profiles": profiles,
            },
            "selinux": {
                "mode": (raw.get("se_mode") or "").lower() or None,
                "config": (raw.get("se_config") or "").lower() or None,
                "relabel_pending": raw.get("se_relabel") == "yes",
                "container_policy": raw.get("se_container") == "yes",
            },
        }


OS_RELEASE = ("id", "version", "codename", "name", "like")
PURPOSE = "the distribution (/etc/os-release)"
CODENAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def _os_release(value: str) -> dict[str, str]:
    """The os-release values (OS_RELEASE) from their base64-encoded NUL-separated form."""
    try:
        found = base64.b64decode(value, validate=True).split(b"\0")
    except (binascii.Error, ValueError):
        raise FactProcessError(f"{PURPOSE}: output is not base64 (truncated?): {safe.shown(value[:80])}") from None
    if len(found) != len(OS_RELEASE) + 1 or found[-1]:
        raise FactProcessError(f"{PURPOSE}: expected {len(OS_RELEASE)} values, got {len(found) - 1}")
    return {k: safe.text(v, f"{PURPOSE} {k}") for k, v in zip(OS_RELEASE, found, strict=False)}


def supported(plat: dict[str, Any]) -> bool:
    entry = SUPPORTED.get(plat.get("id", ""))
    if not entry:
        return False
    version = plat.get("version", "")
    return any(version == v or version.startswith(v + ".") for v in entry[1])


def mac(plat: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """The MAC system dockguard manages on this host: "apparmor", "selinux" or None."""
    choice = cfg["dockguard_mac"]
    if choice == "off":
        return None
    if choice != "auto":
        return choice
    return {"debian": "apparmor", "rhel": "selinux"}.get(plat.get("family") or "")


def docker_packages(plat: dict[str, Any], cfg: dict[str, Any]) -> tuple[str, ...] | None:
    """The packages that install Docker from the configured source here (None: not available)."""
    return DOCKER_PACKAGES.get((cfg["docker_source"], plat.get("family") or ""))


def problems(plat: dict[str, Any], cfg: dict[str, Any], dockerd_present: bool) -> list[str]:
    """Why this host cannot be hardened as configured: refused before any host is touched."""
    if not supported(plat):
        name = plat.get("name") or "an unknown distribution"
        return [f"unsupported distribution: {name} (dockguard supports {SUPPORTED_TEXT})"]
    out = []
    codename = plat.get("codename") or ""
    if codename and not CODENAME.match(codename):
        out.append(
            f"os-release VERSION_CODENAME {safe.shown(codename)!s} is not a plain name (lowercase letters, digits "
            "and '-'); dockguard puts it in APT sources and commands: fix /etc/os-release"
        )
    if not plat.get("pkg"):
        out.append("no package manager found (apt-get or dnf)")
    if not dockerd_present:
        if not cfg["docker_install"]:
            out.append(
                "dockerd is not installed: install Docker first, or set docker_install: True to let dockguard "
                f"install it (from docker_source: {cfg['docker_source']!r})"
            )
        elif docker_packages(plat, cfg) is None:
            out.append(
                f"docker_source: {cfg['docker_source']!r}: {plat['name']} ships no Docker engine of its own; "
                "set docker_source: 'docker-ce' (Docker's repository)"
            )
    choice = mac(plat, cfg)
    if cfg["dockguard_mac"] == "selinux" and plat.get("family") == "debian" and not plat["selinux"]["mode"]:
        out.append("dockguard_mac: 'selinux' but SELinux is not installed on this host (getenforce not found)")
    elif choice == "selinux" and plat.get("pkg") == "apt" and not plat["selinux"].get("container_policy"):
        out.append(
            "dockguard_mac: 'selinux': this host's SELinux policy has no container module (container_t, "
            "container_file_t; Debian's and Ubuntu's policies do not ship one, RHEL's container-selinux does): "
            "with selinux-enabled dockerd could not start any container; use AppArmor here or dockguard_mac: 'off'"
        )
    if choice == "apparmor" and plat.get("family") == "rhel":
        out.append("dockguard_mac: 'apparmor' is not available on the RHEL family (SELinux is its MAC system)")
    return out


# HostPlatform of every host, read by the preflight before any host is prepared.
_cache = PerHost(HostPlatform)
remember = _cache.set
current = _cache.get  # this host's HostPlatform (as the preflight read it, or read now)
request = _cache.request
KEY = _cache.key
