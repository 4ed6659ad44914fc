"""dockguard: harden every Docker host of the inventory.

    pyinfra -y inventory/<site>.py deploy.py

The first host to get here validates the settings of the whole inventory and
runs the preflight (every host's live state, the CA on this machine) before
any operation exists; then each control area brings this host to its hardened
state, in order.
"""

from pyinfra import host, inventory

from operations import audit, checked, docker_files, docker_group, dockerd, lynis, settings

cfg = settings.for_host(host, inventory, preflight=dockerd.preflight)

lynis.configure_before(cfg)  # CIS 1.2.1: a first audit of a host never audited
changed = [
    *dockerd.configure(cfg),  # CIS 2: daemon.json, drop-in, TLS, userns; restart only when needed
    *docker_files.configure(cfg),  # CIS 3: owner and mode of files, sockets, units, certificates
    *audit.configure(cfg),  # CIS 1.1.3-1.1.18: audit watches, loaded and verified
    *docker_group.configure(cfg),  # CIS 1.1.2: docker group members
]
lynis.configure_after(cfg, changed)  # CIS 1.2.1: audit again if changed, save report, gate
checked()  # for `dockguard drift`: this host was fully checked
