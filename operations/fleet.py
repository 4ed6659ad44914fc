"""Operator-side helpers: read a pyinfra inventory outside a pyinfra run.

Used by the testinfra suite (tests/cis) and by reports, so that they reach
exactly the hosts, addresses and keys a deploy reaches.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from . import ROOT, settings


def load(inventory_path: str | os.PathLike):
    """The pyinfra Inventory of a file, with its group_data applied."""
    with ctx_state.use(State()):
        return make_inventory(str(inventory_path), cwd=str(ROOT))


def host_settings(inventory) -> dict[str, dict]:
    """{host name: resolved dockguard settings}; invalid data raises as deploy would."""
    settings.validate_hosts(list(inventory), one_run=False)
    return {h.name: settings.resolve(h.data.dict()) | {"_groups": sorted(h.groups)} for h in inventory}


def ssh_config(inventory) -> str:
    """An OpenSSH client config with one Host block per inventory host."""
    blocks = []
    for h in inventory:
        d = h.data
        lines = [f"Host {h.name}", f"  HostName {d.get('ssh_hostname') or h.name}"]
        if d.get("ssh_port"):
            lines.append(f"  Port {d.get('ssh_port')}")
        if d.get("ssh_user"):
            lines.append(f"  User {d.get('ssh_user')}")
        if d.get("ssh_key"):
            lines += [f"  IdentityFile {Path(d.get('ssh_key')).expanduser()}", "  IdentitiesOnly yes"]
        if d.get("ssh_known_hosts_file"):
            lines.append(f"  UserKnownHostsFile {Path(d.get('ssh_known_hosts_file')).expanduser()}")
        if d.get("ssh_strict_host_key_checking"):
            lines.append(f"  StrictHostKeyChecking {d.get('ssh_strict_host_key_checking')}")
        lines += ["  BatchMode yes", "  ConnectTimeout 10"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
