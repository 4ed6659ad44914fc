"""Installing what a control needs with the host's own package manager: apt on
Debian/Ubuntu, dnf on the RHEL family (platform.HostPlatform decides which).

apt installs from the package lists the host has and refreshes them only when
that fails, so a host with a working local mirror or cache is not sent to the
network for nothing. Docker itself is installed only where dockerd is missing
and ``docker_install`` allows it, from ``docker_source``.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation

from . import drift, platform, when

# The EPEL repository (Lynis on the RHEL family comes from it).
EPEL = "epel-release"
EPEL_RHEL = "https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm"
DOCKER_CE = "https://download.docker.com/linux"
LIST = "/etc/apt/sources.list.d/docker.list"  # written atomically: a temporary file beside it, synced, renamed
DOCKER_OP = "dockguard: Docker installed (docker_install)"


def install_command(plat: dict[str, Any], names: tuple[str, ...] | list[str], epel: bool = False) -> str:
    """Shell: install ``names`` with this host's package manager."""
    pkgs = " ".join(shlex.quote(n) for n in names)
    if plat.get("pkg") == "apt":
        apt = f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {pkgs}"
        return f"{{ {apt} || {{ apt-get update -q && {apt}; }}; }}"
    if plat.get("pkg") == "dnf":
        pre = ""
        if epel:
            source = EPEL_RHEL if plat.get("id") == "rhel" else EPEL
            pre = f"{{ rpm -q epel-release >/dev/null 2>&1 || dnf install -y -q {source}; }} && "
        return f"{pre}dnf install -y -q {pkgs}"
    raise ValueError(f"no package manager known for {plat.get('name') or 'this host'}")


@operation()
def installed(present: bool, plat: dict[str, Any], apt: str, dnf: str, epel: bool = False):
    """Install the package(s) (names separated by spaces) unless ``present`` (read by the control's own fact)."""
    name = apt if plat.get("pkg") == "apt" else dnf
    if present:
        host.noop(f"{name} is installed")
        return
    yield StringCommand(install_command(plat, name.split(), epel=epel and plat.get("pkg") == "dnf"))


def ensure(*, name: str, present: bool, **kwargs):
    """:func:`installed`, registered only where something is missing (NotNeeded elsewhere)."""
    return when(not present, installed, name=name, present=present, **kwargs)


def docker_ce_repo(plat: dict[str, Any]) -> str:
    """Shell: add Docker's own package repository (docker-ce) for this distribution."""
    if plat.get("pkg") == "apt":
        keyring = "/etc/apt/keyrings/docker.asc"
        # The id and codename come from the host's os-release (the preflight refuses a codename that
        # is not a plain name): quoted here all the same, and the sources line written with printf.
        repo = f"{DOCKER_CE}/{plat['id']}"
        return (
            f"{install_command(plat, ['ca-certificates', 'curl'])} && install -m 0755 -d /etc/apt/keyrings && "
            f"curl -fsSL {shlex.quote(repo + '/gpg')} -o {keyring} && chmod a+r {keyring} && "
            f"printf 'deb [arch=%s signed-by={keyring}] %s %s stable\\n' \"$(dpkg --print-architecture)\" "
            f"{shlex.quote(repo)} {shlex.quote(plat['codename'])} > {LIST}.tmp && sync {LIST}.tmp && "
            f"mv -f {LIST}.tmp {LIST} && apt-get update -q"
        )
    # Docker publishes el9 packages under centos/ (Rocky) and rhel/ (RHEL).
    repo = "rhel" if plat.get("id") == "rhel" else "centos"
    return f"dnf install -y -q dnf-plugins-core && dnf config-manager --add-repo {DOCKER_CE}/{repo}/docker-ce.repo"


@operation()
def docker(plat: dict[str, Any], cfg: dict[str, Any]):
    """Install Docker from ``docker_source``; called only where dockerd is missing (the
    preflight has refused the host if it may not or cannot be installed there)."""
    drift("2.x", "Docker is not installed", operation=DOCKER_OP)
    names = platform.docker_packages(plat, cfg)
    if names is None:  # the preflight refuses this; never guess a source
        raise ValueError(f"no Docker packages for {cfg['docker_source']!r} on {plat.get('name')}")
    steps = []
    if cfg["docker_source"] == "docker-ce":
        steps.append(docker_ce_repo(plat))
    steps.append(install_command(plat, names))
    if cfg["docker_source"] == "distribution":
        steps.append(client_command(plat))
    yield StringCommand(" && ".join(steps))


CLIENT_OP = "dockguard: docker client installed (docker_install)"


def client_command(plat: dict[str, Any]) -> str:
    """Shell: the docker client where the distribution packages it apart from the engine
    (Debian 13's docker-cli, only recommended by docker.io; apt here never takes recommends)."""
    if plat.get("pkg") != "apt":
        return "true"
    return (
        "if ! command -v docker >/dev/null 2>&1; then "
        "if apt-cache show docker-cli >/dev/null 2>&1; then " + install_command(plat, ["docker-cli"]) + "; "
        "else echo 'dockguard: the docker client is missing and this archive has no docker-cli' >&2; exit 1; fi; fi"
    )


@operation()
def client(plat: dict[str, Any], cfg: dict[str, Any]):
    """Install the docker client next to an installed dockerd (the preflight allowed it: docker_install)."""
    drift("2.x", "the docker client is not installed", operation=CLIENT_OP)
    if cfg["docker_source"] == "docker-ce":
        yield StringCommand(install_command(plat, ["docker-ce-cli"]))
    else:
        yield StringCommand(client_command(plat))
