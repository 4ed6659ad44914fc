"""The deploy file `dockguard pull install|remove|status` hands to pyinfra (DOCKGUARD_PULL_ACTION):
pull mode's facts and operations are in dockguard/pull_ops.py, the operator's side in
dockguard/pull.py."""

from dockguard.pull_ops import deploy

deploy()
