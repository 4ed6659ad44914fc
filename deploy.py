"""dockguard: harden every Docker host of the inventory.

    pyinfra -y inventory/<site>.py deploy.py

The first host to get here validates the settings of the whole inventory and
runs the preflight (every host's distribution and live state, the CA on this
machine) before any operation exists; a host the preflight refuses, or whose
state cannot be read, fails alone with one line naming it and the cause, and
the others go on. Then each control area brings this host to its hardened
state, in order. Where Docker is missing (and docker_install allows it), it is
installed first and the host is hardened right after, with facts read from the
Docker just installed.
"""

from pyinfra import host, inventory
from pyinfra.operations import python

from operations import (
    audit,
    checked,
    content,
    docker_files,
    docker_group,
    dockerd,
    hostpaths,
    lynis,
    mac,
    packages,
    platform,
    settings,
    speedups,
)

speedups.install()  # pyinfra's operation order without inspect.stack(): the same order, far less CPU
cfg = settings.for_host(host, inventory, preflight=dockerd.preflight)


def harden():
    profile = lynis.configure_before(cfg)  # CIS 1.2.1: a first audit of a host never audited
    changed = [
        *mac.configure(cfg),  # CIS 5.1/5.2: AppArmor profile loaded and enforced, or SELinux enforcing
        *dockerd.configure(cfg),  # CIS 2: daemon.json, drop-in, TLS, userns; restart only when needed
    ]
    changed += docker_files.configure(cfg, earlier=profile + changed)  # CIS 3: owner and mode of files, ...
    changed += [
        *audit.configure(cfg),  # CIS 1.1.3-1.1.18: audit watches, loaded and verified
        *docker_group.configure(cfg),  # CIS 1.1.2: docker group members
    ]
    lynis.configure_after(cfg, changed)  # CIS 1.2.1: audit again if changed, save report, gate


def harden_installed():
    for area in (platform, dockerd, content, hostpaths):
        area.forget()
    harden()


def prepare():
    if dockerd.live_state().get("dockerd"):
        harden()
    else:  # the preflight allowed it: docker_install is on and docker_source has packages here
        packages.docker(name=packages.DOCKER_OP, plat=platform.current(), cfg=cfg)
        python.call(name="dockguard: harden the Docker installed in this run", function=harden_installed)
    checked()  # for `dockguard drift`: this host was fully checked


if not dockerd.refused(host):
    try:
        prepare()
    except Exception as e:  # one host's odd state never stops the others
        dockerd.refuse(host, str(e) if isinstance(e, dockerd.HostRefused) else f"{type(e).__name__}: {e}")
