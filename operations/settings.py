"""dockguard settings: one schema, validated in one place before any host is touched.

Every setting is host/group data (``inventory/group_data/all.py`` holds the
defaults). ``validate_inventory`` checks every host of the inventory at once and
raises one error that lists every problem, naming the host and the setting, so
a typo or a wrong type never reaches a host.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError

# Host-data keys under these prefixes belong to dockguard: an unknown one is an error.
PREFIXES = ("dockguard_", "docker_")

_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")


@dataclass(frozen=True)
class Setting:
    name: str
    type: type | tuple[type, ...]
    default: Any
    cis: str
    doc: str
    breaks: str = ""
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int in Python; never accept one for the other.
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join(_type_name(t) for t in types)
            return f"expected {want}, got {_type_name(type(value))} {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.check:
            return self.check(value)
        return None


def _type_name(t: type) -> str:
    return {bool: "a boolean", int: "an integer", str: "a string", list: "a list", dict: "a mapping"}.get(t, t.__name__)


def _size(value: str) -> str | None:
    if not _SIZE.match(value):
        return f"must be a size like '10m' (a number and k, m or g), got {value!r}"
    return None


def _positive(value: int) -> str | None:
    return None if value >= 1 else f"must be at least 1, got {value}"


SCHEMA: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "docker_icc", bool, False, "2.2",
            "Inter-container communication on the default bridge network.",
            breaks="containers on the default bridge can no longer reach each other; "
            "put containers that must talk on a user-defined network",
        ),
        Setting(
            "docker_log_level", str, "info", "2.3", "dockerd's log level.",
            choices=("debug", "info", "warn", "error", "fatal"),
        ),
        Setting(
            "docker_no_new_privileges", bool, True, "2.14",
            "Containers cannot gain privileges through setuid/setgid binaries.",
            breaks="sudo and other setuid programs inside containers; opt a container out "
            "with --security-opt no-new-privileges=false",
        ),
        Setting(
            "docker_live_restore", bool, True, "2.15",
            "Running containers survive a dockerd restart.",
            breaks="cannot be used with Swarm mode",
        ),
        Setting(
            "docker_userland_proxy", bool, False, "2.16",
            "Use docker-proxy for published ports (off: iptables hairpin NAT only).",
            breaks="relies on net.ipv4.conf.*.route_localnet for published ports on 127.0.0.1",
        ),
        Setting(
            "docker_log_driver", str, "json-file", "2.13",
            "Default logging driver for containers.",
            choices=("json-file", "local", "journald", "syslog"),
        ),
        Setting(
            "docker_log_max_size", str, "10m", "2.13",
            "Rotate a container's log at this size (json-file, local).", check=_size,
        ),
        Setting(
            "docker_log_max_file", int, 3, "2.13",
            "Rotated log files kept per container (json-file, local).", check=_positive,
        ),
    ]
}  # fmt: skip


def defaults() -> dict[str, Any]:
    return {name: s.default for name, s in SCHEMA.items()}


def problems(data: Mapping[str, Any]) -> list[str]:
    """Every problem with one host's data, as 'setting: message' lines."""
    out = []
    for key in sorted(data):
        if key.startswith(PREFIXES) and key not in SCHEMA:
            hint = difflib.get_close_matches(key, list(SCHEMA), n=1)
            out.append(f"{key}: unknown setting" + (f" (did you mean {hint[0]}?)" if hint else ""))
    for name, setting in SCHEMA.items():
        if name not in data:
            continue
        msg = setting.problem(data[name])
        if msg:
            out.append(f"{name}: {msg}")
    return out


def resolve(data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings for one host: defaults, overlaid with its data. Assumes valid data."""
    values = defaults()
    values.update({k: data[k] for k in SCHEMA if k in data})
    return values


def validate_hosts(hosts) -> None:
    """Validate every host's data; raise one DeployError listing every problem."""
    lines = []
    for h in hosts:
        for p in problems(h.data.dict()):
            lines.append(f"  {h.name}: {p}")
    if lines:
        raise DeployError("invalid dockguard settings (nothing was changed on any host):\n" + "\n".join(lines))


_validated: set[int] = set()


def for_host(host, inventory) -> dict[str, Any]:
    """Called at the top of deploy.py for each host: the whole inventory is
    validated on the first call (before any operation runs anywhere)."""
    if id(inventory) not in _validated:
        validate_hosts(list(inventory))
        _validated.add(id(inventory))
    return resolve(host.data.dict())
