"""dockguard: harden every Docker host of the inventory.

    pyinfra -y inventory/<site>.py deploy.py

The control areas and their order are in dockguard/deploy.py; this file is what pyinfra
runs once per host.
"""

from dockguard.deploy import run

run()
