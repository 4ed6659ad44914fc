"""Where Docker and containerd live on this host: binaries, unit files and the
fixed paths of CIS sections 1 and 3, with the owner and mode of each path that
exists. One command; the audit rules and the file controls are built from it,
so a distribution that puts a unit or a binary elsewhere is covered as it is.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from . import PerHost

BINARIES = ("docker", "dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v1",
            "containerd-shim-runc-v2", "runc")  # fmt: skip
UNITS = ("docker.service", "docker.socket", "containerd.service")
# Fixed paths of CIS 1.1.x and 3.x; only those that exist are used.
PATHS = (
    "/var/lib/docker", "/etc/docker", "/run/containerd", "/etc/default/docker", "/etc/sysconfig/docker",
    "/etc/docker/daemon.json", "/etc/containerd/config.toml", "/run/containerd/containerd.sock",
    "/var/run/docker.sock", "/etc/docker/tls/ca.pem", "/etc/docker/tls/server-cert.pem",
    "/etc/docker/tls/server-key.pem", "/etc/systemd/system/docker.service.d/dockguard.conf",
    "/etc/systemd/system/docker.socket.d/dockguard.conf", "/etc/audit/rules.d/dockguard-docker.rules",
    "/etc/apparmor.d/dockguard-default", "/etc/lynis/dockguard.prf",
)  # fmt: skip


class DockerHostPaths(FactBase):
    """{"bins": {name: path}, "units": {unit: path}, "stat": {path: {mode, user, group, type}},
    "certs": [paths under /etc/docker/certs.d]} for what exists on this host."""

    def command(self) -> str:
        return (
            f'bins=$(for b in {" ".join(BINARIES)}; do p=$(command -v $b 2>/dev/null) && echo "$b $p"; done); '
            f"units=$(systemctl show -p Id -p FragmentPath {' '.join(UNITS)} 2>/dev/null | "
            "awk -F= '/^Id=/ {id=$2} /^FragmentPath=./ {print id, $2}'); "
            'echo "$bins" | while read b p; do [ -n "$p" ] && echo "bin $b $p"; done; '
            'echo "$units" | while read u p; do [ -n "$p" ] && [ -e "$p" ] && echo "unit $u $p"; done; '
            "certs=$(find /etc/docker/certs.d -mindepth 1 2>/dev/null); "
            'for c in $certs; do echo "cert $c"; done; '
            "stat -L -c 'stat %a %U %G %F|%n' "
            f"{' '.join(PATHS)} $certs "
            "$(echo \"$units\" | cut -d' ' -f2) $(echo \"$bins\" | cut -d' ' -f2) 2>/dev/null; true"
        )

    @staticmethod
    def default() -> dict:
        return {"bins": {}, "units": {}, "certs": [], "stat": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"bins": {}, "units": {}, "certs": [], "stat": {}}
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "bin" or kind == "unit":
                name, _, path = rest.partition(" ")
                out["bins" if kind == "bin" else "units"][name] = path
            elif kind == "cert":
                out["certs"].append(rest)
            elif kind == "stat":
                head, _, path = rest.partition("|")
                parts = head.split(" ", 3)
                if len(parts) != 4 or not parts[0].isdigit():
                    raise FactProcessError(f"unexpected stat output: {line!r}")
                mode, user, group, ftype = parts
                out["stat"][path] = {"mode": mode, "user": user, "group": group, "type": ftype}
            elif line.strip():
                raise FactProcessError(f"unexpected output: {line!r}")
        return out


_cache = PerHost(DockerHostPaths)
current = _cache.get  # this host's paths as read while it is prepared (once, for every area)
forget = _cache.forget
