"""Every container on the host and its image, read in one command for the container audit
(CIS Docker Benchmark sections 4 and 5; the checks are in dockguard.containers).

The daemon is asked first (``docker inspect`` of every container, running or not, and
``docker image inspect`` of their images, one call each). When it cannot answer (stopped,
hung: every call is bounded), the containers are read from the disk instead: each
container's ``config.v2.json`` and ``hostconfig.json`` under every storage root (the
default, ``data-root`` of daemon.json, and userns-remap's ``<uid>.<gid>`` roots), and
their images' configurations from the image store. Every document travels as base64 and
is parsed here, in Python; output cut short or not base64 is a FactProcessError (that
host is unchecked, the others go on).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

DAEMON_JSON = "/etc/docker/daemon.json"

_COMMAND = r"""
b() { base64 -w0; echo; }
if ! command -v docker >/dev/null 2>&1 && [ ! -d /var/lib/docker ]; then echo source=none; echo end=1; exit 0; fi
printf 'apparmor='; cat /sys/module/apparmor/parameters/enabled 2>/dev/null | head -c 1; echo
printf 'selinux='; cat /sys/fs/selinux/enforce 2>/dev/null | head -c 1; echo
[ -f /etc/docker/daemon.json ] && { printf 'daemon_json='; b < /etc/docker/daemon.json; }
if ids=$(timeout 20 docker ps -aq --no-trunc 2>/dev/null); then
  echo source=daemon
  printf 'security='; timeout 20 docker info --format '{{json .SecurityOptions}}' 2>/dev/null | b
  if [ -n "$ids" ]; then
    printf 'containers='; timeout 60 docker inspect $ids 2>/dev/null | b
    imgs=$(timeout 60 docker inspect --format '{{.Image}}' $ids 2>/dev/null | sort -u)
    [ -n "$imgs" ] && { printf 'images='; timeout 60 docker image inspect $imgs 2>/dev/null | b; }
  fi
else
  echo source=disk
  key='s/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
  root=$(sed -n "$key" /etc/docker/daemon.json 2>/dev/null | head -n 1)
  for r in /var/lib/docker /var/lib/docker/*.* "${root:-/var/lib/docker}" "${root:-/var/lib/docker}"/*.*; do
    [ -d "$r/containers" ] || continue
    for c in "$r"/containers/*/config.v2.json; do
      [ -f "$c" ] || continue
      d=${c%/config.v2.json}
      printf 'disk_container=%s ' "$(printf %s "$r" | base64 -w0)"; b < "$c"
      [ -f "$d/hostconfig.json" ] && { printf 'disk_hostconfig=- '; b < "$d/hostconfig.json"; }
      for i in $(grep -o '"Image":"sha256:[0-9a-f]*"' "$c" | sed 's/.*sha256://; s/"//'); do
        for f in "$r"/image/*/imagedb/content/sha256/"$i"; do
          [ -f "$f" ] && { printf 'disk_image=%s ' "$i"; b < "$f"; }
        done
      done
    done
  done
fi
echo end=1
"""


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FactProcessError(f"the container audit's {what} is not base64 ({e})") from None


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8", "surrogateescape")) if data.strip() else None
    except ValueError as e:
        raise FactProcessError(f"the container audit's {what} is not JSON ({e})") from None


def from_disk(config: dict, hostconfig: dict | None) -> dict:
    """A container's ``config.v2.json`` (and ``hostconfig.json``) in ``docker inspect``'s shape,
    as far as the audit reads it."""
    mounts = []
    for dest, m in (config.get("MountPoints") or {}).items():
        mounts.append({
            "Type": m.get("Type") or ("bind" if m.get("Source") else "volume"),
            "Source": m.get("Source") or "",
            "Destination": m.get("Destination") or dest,
            "Propagation": m.get("Propagation") or "",
            "RW": bool(m.get("RW")),
        })  # fmt: skip
    state = config.get("State") or {}
    return {
        "Id": config.get("ID", ""),
        "Name": config.get("Name", ""),
        "Image": config.get("Image", ""),
        "Config": config.get("Config") or {},
        "State": {"Running": bool(state.get("Running")), "Status": "running" if state.get("Running") else "exited"},
        "HostConfig": hostconfig or {},
        "AppArmorProfile": config.get("AppArmorProfile", ""),
        "ProcessLabel": config.get("ProcessLabel", ""),
        "Mounts": mounts,
        "NetworkSettings": {"Ports": (config.get("NetworkSettings") or {}).get("Ports") or {}},
    }


class ContainerAudit(FactBase):
    """{"source": "daemon" | "disk" | "none", "containers": [inspect], "images": {id: inspect},
    "security": [docker info's SecurityOptions] | None, "daemon_json": dict | None,
    "apparmor": bool, "selinux": bool}."""

    def command(self) -> str:
        return _COMMAND

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        if not output or output[-1] != "end=1":
            raise FactProcessError("the container audit's output was cut short (no end line)")
        out: dict[str, Any] = {"source": None, "containers": [], "images": {}, "security": None,
                               "daemon_json": None, "apparmor": False, "selinux": False}  # fmt: skip
        disk: dict[str, dict] = {}
        order: list[str] = []
        for line in output[:-1]:
            key, _, value = line.partition("=")
            if key == "source":
                out["source"] = value
            elif key == "apparmor":
                out["apparmor"] = value == "Y"
            elif key == "selinux":
                out["selinux"] = value in ("0", "1")
            elif key == "daemon_json":
                try:
                    out["daemon_json"] = _json(_b64(value, "daemon.json"), "daemon.json")
                except FactProcessError:
                    out["daemon_json"] = None  # an unreadable daemon.json: its defaults are unknown
            elif key == "security":
                out["security"] = _json(_b64(value, "docker info"), "docker info") or []
            elif key == "containers":
                out["containers"] = _json(_b64(value, "docker inspect"), "docker inspect") or []
            elif key == "images":
                for image in _json(_b64(value, "docker image inspect"), "docker image inspect") or []:
                    out["images"][image.get("Id", "")] = image
            elif key in ("disk_container", "disk_hostconfig", "disk_image"):
                where, _, doc = value.partition(" ")
                data = _json(_b64(doc, key), key)
                if key == "disk_image":
                    out["images"][f"sha256:{where}"] = data or {}
                    continue
                if not isinstance(data, dict):
                    continue
                if key == "disk_container":
                    disk[data.get("ID", "")] = {"config": data, "hostconfig": None}
                    order.append(data.get("ID", ""))
                elif order:
                    disk[order[-1]]["hostconfig"] = data
            elif line.strip():
                raise FactProcessError(f"unexpected line in the container audit's output: {line[:80]!r}")
        if out["source"] not in ("daemon", "disk", "none"):
            raise FactProcessError("the container audit's output names no source")
        if out["source"] == "disk":
            out["containers"] = [from_disk(d["config"], d["hostconfig"]) for d in disk.values()]
            for image in list(out["images"].values()):  # an image store's config: its "config" is the Config
                if "Config" not in image and "config" in image:
                    image["Config"] = image.get("config") or {}
        if not isinstance(out["containers"], list):
            raise FactProcessError("docker inspect did not give a list")
        return out
