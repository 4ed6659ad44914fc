"""Kernel hardening (Lynis KRNL-6000, USB-1000, STRG-1846, NETW-3200, FILE-6430):
sysctl keys and blacklisted kernel modules, chosen so that Docker keeps working.

* /etc/sysctl.d/60-dockguard.conf holds Lynis' KRNL-6000 keys (``HARDENING``) with
  ``kernel_sysctl`` merged over them; systemd-sysctl applies it at every boot.
  Docker traps avoided: IP forwarding (``net.ipv4.ip_forward``,
  ``conf.all.forwarding``) is never turned off (container networking routes through
  the host), nor ``bridge-nf-call-*`` (published ports and isolation rules are
  iptables rules on bridged traffic), ``kernel.modules_disabled`` (dockerd loads
  overlay, br_netfilter, veth, ... on demand) or ``route_localnet`` (published ports
  on 127.0.0.1 without the userland proxy). The settings refuse those in
  ``kernel_sysctl`` too, and dockguard's Lynis profile skips them.
* The running kernel gets the same values: one fact (``SysctlState``) reads every
  key's live value and whether /proc/sys lets this host write it, and one
  ``sysctl -w`` sets only the writable keys that differ. A key that differs but
  cannot be written is not retried on every run (it would never converge): on a
  container host most of /proc/sys belongs to the outer kernel (said once, the file
  is still written for the day the host runs on its own kernel); on a VM or real
  host it is drift (a read-only key, or a one-way lock such as
  ``kernel.yama.ptrace_scope=3``, holds until the next boot). Keys this kernel does
  not have are named once.
* /etc/modprobe.d/dockguard-blacklist.conf stops ``kernel_blacklist_modules`` from
  loading (``install <m> /bin/false`` and ``blacklist <m>``): USB storage, FireWire,
  rare file systems and network protocols. Modules Docker needs are refused by the
  settings. The file only: nothing is unloaded live (a mounted USB disk or a module
  in use stays until the next boot).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, content, drift, hostlock, platform, safe, say, warn

SYSCTL_FILE = "/etc/sysctl.d/60-dockguard.conf"
BLACKLIST_FILE = "/etc/modprobe.d/dockguard-blacklist.conf"
FILE_OP = f"KRNL-6000: hardening sysctl keys in {SYSCTL_FILE}"
LIVE_OP = f"KRNL-6000: sysctl keys of {SYSCTL_FILE} applied to the running kernel"
BLACKLIST_OP = f"USB-1000/STRG-1846/NETW-3200/FILE-6430: kernel modules blacklisted in {BLACKLIST_FILE}"

# Lynis KRNL-6000 keys that do not touch Docker, at the values Lynis expects.
HARDENING: dict[str, str] = {
    "fs.suid_dumpable": "0",
    "fs.protected_fifos": "2",
    "fs.protected_hardlinks": "1",
    "fs.protected_regular": "2",
    "fs.protected_symlinks": "1",
    "kernel.core_uses_pid": "1",
    "kernel.ctrl-alt-del": "0",
    "kernel.dmesg_restrict": "1",
    "kernel.kptr_restrict": "2",
    "kernel.perf_event_paranoid": "3",
    "kernel.randomize_va_space": "2",
    "kernel.sysrq": "0",
    "kernel.unprivileged_bpf_disabled": "1",
    "kernel.yama.ptrace_scope": "1",
    "net.core.bpf_jit_harden": "2",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.bootp_relay": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.conf.all.mc_forwarding": "0",
    "net.ipv4.conf.all.proxy_arp": "0",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv4.conf.default.log_martians": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.icmp_ignore_bogus_error_responses": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.all.accept_source_route": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
    "net.ipv6.conf.default.accept_source_route": "0",
    "dev.tty.ldisc_autoload": "0",
}
# Keys whose value, once set, the kernel refuses to change until the next boot.
LOCKED = {"kernel.yama.ptrace_scope": "3", "kernel.unprivileged_bpf_disabled": "1", "kernel.modules_disabled": "1"}
KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")  # as settings._SYSCTL_KEY
STATES = {"w": True, "r": False}


def normal(value: Any) -> str:
    """A sysctl value as the kernel prints it, blanks (tabs) made single spaces."""
    return " ".join(str(value).split())


def wanted(cfg: dict[str, Any]) -> dict[str, str]:
    """dockguard's keys with ``kernel_sysctl`` merged over them, in file order."""
    return {**HARDENING, **{k: normal(v) for k, v in cfg["kernel_sysctl"].items()}}


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


class SysctlState(FactBase):
    """{key: {"value": the live value (blanks made single spaces), or None where this
    kernel has no such key, "writable": whether /proc/sys lets this host write it}}."""

    def command(self, keys: list[str]) -> str:
        parts = []
        for key in keys:
            p, k = shlex.quote(proc_path(key)), shlex.quote(key)
            parts.append(
                f"if [ -e {p} ]; then if [ -w {p} ]; then s=w; else s=r; fi; "
                # read, a shell builtin: no process per key (the fact is read on every run)
                f'v=; read -r v 2>/dev/null < {p}; printf \'%s %s %s\\n\' "$s" {k} "$v"; '
                f"else printf -- '- %s\\n' {k}; fi;"
            )
        parts.append(f"echo end {len(keys)}")
        return " ".join(parts)

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        end = None
        for line in output:
            if not line.strip():
                continue
            state, _, rest = line.strip().partition(" ")
            key, _, value = rest.partition(" ")
            if end is not None:
                raise FactProcessError(f"sysctl keys: output after its end: {safe.shown(line[:80])}")
            if state == "end":
                end = rest
                continue
            if state not in ("w", "r", "-") or not KEY.match(key) or key in out or (state == "-" and value):
                raise FactProcessError(f"sysctl keys: unexpected line {safe.shown(line[:80])}")
            out[key] = {"value": None if state == "-" else normal(value), "writable": STATES.get(state, False)}
        if end is None or not end.isdigit() or int(end) != len(out):
            raise FactProcessError(f"sysctl keys: output cut short ({len(out)} keys read, end marker {end!r})")
        return out


def plan(keys: dict[str, str], live: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What the running kernel needs: keys to ``write``, keys that differ but are
    ``read_only`` or ``locked`` until the next boot, keys ``absent`` from this kernel."""
    out: dict[str, list[str]] = {"write": [], "read_only": [], "locked": [], "absent": []}
    for key, value in keys.items():
        now = live.get(key) or {"value": None, "writable": False}
        if now["value"] is None:
            out["absent"].append(key)
        elif normal(now["value"]) == normal(value):
            continue
        elif not now["writable"]:
            out["read_only"].append(key)
        elif LOCKED.get(key) == normal(now["value"]):
            out["locked"].append(key)
        else:
            out["write"].append(key)
    return out


def _listed(keys: list[str], live: dict[str, dict[str, Any]], wanted_keys: dict[str, str]) -> str:
    return ", ".join(f"{k}={live[k]['value']} (wanted {wanted_keys[k]})" for k in keys)


@operation()
def applied(keys: dict[str, str], live: dict[str, dict[str, Any]], container: str | None):
    """The running kernel holds ``keys`` (as far as this host may write them). ``live``:
    SysctlState as read while the area was prepared."""
    todo = plan(keys, live)
    if todo["absent"]:
        say(f"KRNL-6000: not in this kernel (left in {SYSCTL_FILE}): {', '.join(todo['absent'])}")
    stuck = todo["read_only"] + todo["locked"]
    if stuck and container:
        say(
            f"KRNL-6000: set by the outer kernel, not from inside this {container} container (kept in "
            f"{SYSCTL_FILE} for a VM or real host): {_listed(stuck, live, keys)}"
        )
    elif stuck:
        why = []
        if todo["read_only"]:
            why.append(f"read-only in /proc/sys: {_listed(todo['read_only'], live, keys)}")
        if todo["locked"]:
            why.append(f"locked by the kernel until the next boot: {_listed(todo['locked'], live, keys)}")
        reason = "; ".join(why)
        drift("KRNL-6000", reason, LIVE_OP)
        warn(f"KRNL-6000: sysctl keys that cannot be set live ({reason}); {SYSCTL_FILE} sets them at the next boot")
    if not todo["write"]:
        held = "the running kernel holds dockguard's sysctl values"
        host.noop(f"{held} ({len(stuck)} cannot be set live here)" if stuck else held)
        return
    drift("KRNL-6000", f"sysctl keys differ: {_listed(todo['write'], live, keys)}", LIVE_OP)
    args = " ".join(shlex.quote(f"{k}={keys[k]}") for k in todo["write"])
    yield StringCommand(hostlock.prefix() + f"sysctl -q -w {args}")


def _request(ctx: Context) -> tuple:
    return (f"{__name__}.SysctlState", SysctlState, {"keys": list(wanted(ctx.cfg))})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [_request(ctx)]


def configure(ctx: Context) -> list:
    """The sysctl.d file and the modprobe.d blacklist, then the live sysctl values."""
    cfg = ctx.cfg
    keys = wanted(cfg)
    ops = content.files(
        {
            SYSCTL_FILE: (content.render("etc/sysctl.d/60-dockguard.conf.j2", keys=keys), "644"),
            BLACKLIST_FILE: (
                content.render("etc/modprobe.d/dockguard-blacklist.conf.j2", modules=cfg["kernel_blacklist_modules"]),
                "644",
            ),
        },
        {SYSCTL_FILE: FILE_OP, BLACKLIST_FILE: BLACKLIST_OP},
    )
    live = ctx.read(_request(ctx))
    ops.append(applied(name=LIVE_OP, keys=keys, live=live, container=platform.current().get("container")))
    return ops
