"""Where Docker and containerd live on this host: binaries, unit files and the
fixed paths of CIS sections 1 and 3, with the owner and mode of each path that
exists. One command; the audit rules and the file controls are built from it,
so a distribution that puts a unit or a binary elsewhere is covered as it is.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from dockguard import registry, systemd

from . import PerHost, safe

BINARIES = tuple(registry.BINARY_WATCHES)
UNITS = ("docker.service", "docker.socket", "containerd.service")
# Fixed paths of CIS 1.1.x and 3.x; only those that exist are used.
PATHS = registry.stat_paths()
assert registry.CERTS_D in PATHS  # the one find descends into it (DockerHostPaths)


# find -printf, never following a link (find -P, the default, lstat()s every path):
# "stat", mode, user, group, type letter, link target (empty but for a link), path.
STAT = "stat\\0%m\\0%u\\0%g\\0%y\\0%l\\0%p\\0"
TYPES = {"f": "regular file", "d": "directory", "l": "symbolic link", "s": "socket", "p": "fifo",
         "c": "character special file", "b": "block special file"}  # fmt: skip
PURPOSE = "Docker paths and their owners and modes (find -printf)"


class DockerHostPaths(FactBase):
    """{"bins": {name: path}, "units": {unit: path}, "stat": {path: {mode, user, group, type}},
    "certs": [paths under /etc/docker/certs.d]} for what exists on this host. Links are not
    followed: a link's type is "symbolic link" and its "target" is where it points. Paths
    may hold any bytes (not UTF-8: surrogate escapes, safe.name)."""

    systemd_show = (list(UNITS), ["FragmentPath"])  # read by one systemctl for a whole batch (prefetch)

    def command(self) -> str:
        # The binaries' and units' paths (absolute: find never takes one for an expression) are
        # stat()ed by the one find of the fixed paths: not a find per path (read on every run).
        return safe.stream(
            "paths",
            # Each binary as `command -v` finds it.
            "set --; "
            + safe.which(
                " ".join(BINARIES), '[ -n "$p" ] && { printf \'bin\\0%s\\0%s\\0\' "$b" "$p"; set -- "$@" "$p"; }'
            )
            + "; "
            # Every unit's file from one systemctl (a block per unit, in the order asked).
            f"sd=$({systemd.show(*self.systemd_show)}); "
            + systemd.show_each(
                '"$sd"',
                list(UNITS),
                systemd.show_prop("FragmentPath") + '; case $dg_v in /*) if [ -e "$dg_v" ] || [ -L "$dg_v" ]; then '
                'printf \'unit\\0%s\\0%s\\0\' "$dg_u" "$dg_v"; set -- "$@" "$dg_v"; fi;; esac',
            )
            + "; "
            # One find: each path itself (not descended), and everything under certs.d.
            f"find \"$@\" {' '.join(PATHS)} \\( -path '{registry.CERTS_D}/*' "
            f"-printf 'cert\\0%p\\0{STAT}' \\) -o \\( -path {registry.CERTS_D} -printf '{STAT}' \\) "
            f"-o \\( -prune -printf '{STAT}' \\);",
        )

    @staticmethod
    def default() -> dict:
        return {"bins": {}, "units": {}, "certs": [], "stat": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = safe.fields(output, "paths", PURPOSE)
        out: dict[str, Any] = {"bins": {}, "units": {}, "certs": [], "stat": {}}
        i = 0
        while i < len(found):
            kind = found[i]
            size = {b"bin": 3, b"unit": 3, b"cert": 2, b"stat": 7}.get(kind)
            if size is None or i + size > len(found):
                raise FactProcessError(f"{PURPOSE}: unexpected field {safe.shown(kind)}")
            item = [safe.name(f) for f in found[i + 1 : i + size]]
            i += size
            if kind in (b"bin", b"unit"):
                out["bins" if kind == b"bin" else "units"][item[0]] = item[1]
            elif kind == b"cert":
                out["certs"].append(item[0])
            else:
                mode, user, group, letter, target, path = item
                if not mode.isdigit() or letter not in TYPES or not path:
                    raise FactProcessError(f"{PURPOSE}: unexpected entry {safe.shown(' '.join(item))}")
                entry = {"mode": mode, "user": user, "group": group, "type": TYPES[letter]}
                if letter == "l":
                    entry["target"] = target
                out["stat"][path] = entry
        return out


_cache = PerHost(DockerHostPaths)
current = _cache.get  # this host's paths as read while it is prepared (once, for every area)
request = _cache.request
