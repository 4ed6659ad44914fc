"""Who a host is, and whether the CA's key can be here: push runs and pull mode alike.

In a push run (the operator's machine, over SSH) a host is its inventory name and the CA is on
the machine that runs pyinfra. In pull mode (``dockguard pull install``) a host runs the deploy
against itself with pyinfra's local connector, whose host is named ``@local``; its own inventory
carries ``dockguard_host_name`` (its name in the operator's inventory) and the CA's public
certificates only. Everything that names a host (certificate names, drift results, metrics) uses
:func:`name`; everything that would sign with the CA's key asks :func:`pull` first.
"""

from __future__ import annotations

from typing import Any


def name(h=None) -> str:
    """The host's name in the operator's inventory: ``dockguard_host_name`` where pull mode set
    it, else pyinfra's name for the host (by default the current host)."""
    if h is None:
        from pyinfra import host as h
    data = h.data
    value = data.get("dockguard_host_name") if hasattr(data, "get") else None
    return value or h.name


def pull(cfg: dict[str, Any]) -> bool:
    """This run is a host checking itself (pull mode): the CA's key is on the operator's machine,
    never here. A certificate that must be (re)issued is reported for the operator, and no CA is made."""
    return cfg.get("dockguard_host_name") is not None


def operator_fix(host_name: str) -> str:
    """What the operator runs for what pull mode cannot do on the host."""
    return f"run dockguard apply for {host_name} (pull mode never holds the CA's key)"
