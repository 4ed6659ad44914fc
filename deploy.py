"""dockguard: harden every Docker host of the inventory.

    pyinfra -y inventory/<site>.py deploy.py

The first host to get here validates the settings of the whole inventory and
runs the preflight (every host's live state, the CA on this machine) before
any operation exists; then each control area brings this host to its hardened
state, in order.
"""

from pyinfra import host, inventory

from operations import docker_files, dockerd, settings

cfg = settings.for_host(host, inventory, preflight=dockerd.preflight)

dockerd.configure(cfg)  # CIS 2: daemon.json, drop-in, TLS, userns; restart only when needed
docker_files.configure(cfg)  # CIS 3: owner and mode of Docker files
