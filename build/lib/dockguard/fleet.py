"""Operator-side helpers: read a pyinfra inventory outside a pyinfra run.

Used by the testinfra suite (tests/cis) and by reports, so that they reach
exactly the hosts, addresses and keys a deploy reaches.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import ROOT, compat, settings


def load(inventory_path: str | os.PathLike):
    """The pyinfra Inventory of a file, with its group_data applied."""
    return compat.load_inventory(inventory_path, cwd=ROOT)


def host_settings(inventory) -> dict[str, dict]:
    """{host name: resolved dockguard settings}; invalid data raises as deploy would."""
    settings.validate_hosts(list(inventory), one_run=False)
    return {h.name: settings.resolve(h.data.dict()) | {"_groups": sorted(h.groups)} for h in inventory}


class UnsafeValue(ValueError):
    """An inventory value that cannot be written into an OpenSSH client config safely."""


def ssh_value(host: str, key: str, value) -> str:
    """One argument of an ssh_config line: refused if it holds a line break, a NUL or a
    double quote (a new line would be a new directive, such as ProxyCommand, run on this
    machine); double-quoted if it holds blanks or '#'."""
    text = str(value)
    if not text or any(ord(c) < 0x20 or c in '"\x7f' for c in text):
        raise UnsafeValue(f"{host}: {key}: {text!r} cannot be written into an SSH config "
                          "(empty, or a control character or double quote)")  # fmt: skip
    return f'"{text}"' if any(c.isspace() or c == "#" for c in text) else text


def ssh_host_pattern(name: str) -> str:
    """A host name as a single ``Host`` pattern: no blanks, wildcards, negation or lists."""
    if not name or any(c.isspace() or ord(c) < 0x20 or c in '*?!,"#\\' for c in name):
        raise UnsafeValue(f"{name!r}: a host name used in an SSH config cannot hold blanks, control "
                          "characters, quotes or the pattern characters * ? ! , #")  # fmt: skip
    return name


def ssh_config(inventory) -> str:
    """An OpenSSH client config with one Host block per inventory host; every value is
    checked and quoted for that format (see :func:`ssh_value`)."""
    blocks = []
    for h in inventory:
        d = h.data

        def line(key: str, option: str, value, name: str = h.name) -> str:
            return f"  {option} {ssh_value(name, key, value)}"

        lines = [f"Host {ssh_host_pattern(h.name)}", line("ssh_hostname", "HostName", d.get("ssh_hostname") or h.name)]
        if d.get("ssh_port"):
            lines.append(line("ssh_port", "Port", int(d.get("ssh_port"))))
        if d.get("ssh_user"):
            lines.append(line("ssh_user", "User", d.get("ssh_user")))
        if d.get("ssh_key"):
            lines += [line("ssh_key", "IdentityFile", Path(d.get("ssh_key")).expanduser()), "  IdentitiesOnly yes"]
        if d.get("ssh_known_hosts_file"):
            lines.append(
                line("ssh_known_hosts_file", "UserKnownHostsFile", Path(d.get("ssh_known_hosts_file")).expanduser())
            )
        if d.get("ssh_strict_host_key_checking"):
            value = str(d.get("ssh_strict_host_key_checking"))
            if value not in ("yes", "no", "accept-new", "off", "ask"):
                raise UnsafeValue(f"{h.name}: ssh_strict_host_key_checking: {value!r} is not yes, no, accept-new, "
                                  "off or ask")  # fmt: skip
            lines.append(f"  StrictHostKeyChecking {value}")
        lines += ["  BatchMode yes", "  ConnectTimeout 10"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
