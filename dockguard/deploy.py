"""The dockguard deploy: every control area, in order, for the current host.

pyinfra runs a deploy file once per host; ``run()`` is that file's body (deploy.py in
a checkout, dockguard/deploy_file.py when installed). ``dockguard()`` is the same as a
reusable pyinfra deploy (``@deploy``), to call from someone else's deploy file::

    from dockguard.deploy import dockguard
    dockguard()

The first host to get here validates the settings of the whole inventory and runs the
preflight (every host's distribution and live state, the CA on this machine) before any
operation exists; a host the preflight refuses, or whose state cannot be read, fails
alone with one line naming it and the cause, and the others go on. Where Docker is
missing (and docker_install allows it), it is installed first and the host is hardened
right after, with facts read from the Docker just installed.
"""

from __future__ import annotations

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.operations import python

from . import compat, settings
from .operations import (
    Context,
    accounts,
    audit,
    authz,
    checked,
    content,
    docker_files,
    docker_group,
    dockerd,
    firewall,
    hostpaths,
    kernel,
    lynis,
    mac,
    os_packages,
    packages,
    platform,
    registries,
    sshd,
)

# The control areas, in order: (name for dockguard_disabled_areas, what it configures).
# Each takes the host's Context and returns the operations that may change the host.
AREAS = (
    ("lynis", lynis.baseline_area),  # CIS 1.2.1: a first audit of a host never audited
    ("mac", mac.configure),  # CIS 5.1/5.2: AppArmor profile loaded and enforced, or SELinux enforcing
    ("authz", authz.configure),  # CIS 2.12: dockguard-authz listening before dockerd restarts with it
    ("dockerd", dockerd.configure),  # CIS 2: daemon.json, drop-in, TLS, userns; restart only when needed
    ("authz", authz.cleanup),  # CIS 2.12: with docker_authz_policy off, the plugin removed once unused
    ("registries", registries.configure),  # CIS 3.7/3.8: registry CAs and client certificates in certs.d
    ("files", docker_files.configure),  # CIS 3: owner and mode of files, sockets, units and certificates
    ("audit", audit.configure),  # CIS 1.1.3-1.1.18: audit watches, loaded and verified
    ("docker_group", docker_group.configure),  # CIS 1.1.2: docker group members
    # The OS baseline around Docker (named by the Lynis tests they answer), after Docker's own areas.
    ("sshd", sshd.configure),  # SSH-7408: drop-in checked with sshd -t, reloaded, rolled back on failure
    ("kernel", kernel.configure),  # KRNL-6000: sysctl.d (forwarding left on), modprobe.d blacklist
    ("os_packages", os_packages.configure),  # PKGS/DEB/ACCT/FINT/HRDN: security repo, upgrades, tools, AIDE
    ("accounts", accounts.configure),  # AUTH/KRNL-5820/SHLL/BANN/HRDN: logins, core dumps, banners, compilers
    ("firewall", firewall.configure),  # FIRE-4508: INPUT and DOCKER-USER chains of dockguard's own
    ("lynis", lynis.configure),  # CIS 1.2.1: audit again if changed, save report, gate
)
AREA_NAMES = tuple(dict.fromkeys(name for name, _ in AREAS))


# The facts each area reads, for the preflight to read in one command per host
# (operations/prefetch.py); the areas read any fact missing from it themselves.
READS = (
    ("lynis", lynis.reads),
    ("authz", authz.reads),
    ("dockerd", dockerd.reads),
    ("registries", registries.reads),
    ("files", lambda ctx: [hostpaths.request()]),
    ("audit", audit.reads),
    ("docker_group", docker_group.reads),
    ("sshd", sshd.reads),
    ("kernel", kernel.reads),
    ("os_packages", os_packages.reads),
    ("accounts", accounts.reads),
    ("firewall", firewall.reads),
)


def reads(ctx: Context) -> list:
    """Every fact the enabled areas of ``ctx``'s host will read, and the digests of the files
    they render."""
    out = {r[0]: r for r in content.reads(ctx)}
    for name, area_reads in READS:
        if ctx.enabled(name):
            for r in area_reads(ctx):
                out.setdefault(r[0], r)
    return list(out.values())


def _preflight(hosts: list) -> None:
    dockerd.preflight(hosts, reads=reads)


def harden(ctx: Context) -> None:
    # pyinfra tells operations apart by the line numbers of their call stacks, not the files:
    # two areas calling an operation from the same line numbers would be one operation to it,
    # and ordered against each other differently on two hosts, a cycle. host.loop adds each
    # area's place in AREAS to its operations' order.
    for name, area in host.loop(AREAS):
        if ctx.enabled(name):
            ctx.changed += area(ctx)


def _harden_installed() -> None:
    ctx = Context.of()
    ctx.refresh()  # read the Docker just installed
    harden(ctx)


def _prepare(ctx: Context) -> None:
    live = dockerd.live_state()
    if live.get("dockerd") and not dockerd.client_present(live):  # the preflight allowed it: docker_install
        packages.client(name=packages.CLIENT_OP, plat=platform.current(), cfg=ctx.cfg)
        python.call(name="dockguard: harden with the docker client installed in this run", function=_harden_installed)
    elif live.get("dockerd"):
        harden(ctx)
    else:  # the preflight allowed it: docker_install is on and docker_source has packages here
        packages.docker(name=packages.DOCKER_OP, plat=platform.current(), cfg=ctx.cfg)
        python.call(name="dockguard: harden the Docker installed in this run", function=_harden_installed)
    checked()  # for `dockguard drift`: this host was fully checked


def run() -> None:
    """The body of a deploy file: harden the current host."""
    compat.install_speedups(inventory)
    settings.for_host(host, inventory, preflight=_preflight)
    if dockerd.refused(host):
        return
    try:
        _prepare(Context.of())
    except Exception as e:  # one host's odd state never stops the others
        dockerd.refuse(host, str(e) if isinstance(e, dockerd.HostRefused) else f"{type(e).__name__}: {e}")


@deploy("dockguard")
def dockguard() -> None:
    """Harden the current host (for use inside another pyinfra deploy)."""
    run()
