"""dockguard: harden every Docker host of the inventory.

    pyinfra -y inventory/<site>.py deploy.py

Settings are validated for the whole inventory before any operation runs;
then each control area brings this host to its hardened state, in order.
"""

from pyinfra import host, inventory

from operations import docker_files, dockerd, settings

cfg = settings.for_host(host, inventory)

dockerd.configure(cfg)  # CIS 2: daemon.json, restart only when needed
docker_files.configure(cfg)  # CIS 3: owner and mode of Docker files
