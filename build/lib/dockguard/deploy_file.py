"""The deploy file `dockguard apply` hands to pyinfra when dockguard is installed
(a checkout's deploy.py does the same)."""

from dockguard.deploy import run

run()
