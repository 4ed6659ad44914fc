"""A host firewall Docker cannot bypass, and that cannot break Docker (Lynis FIRE-4508).

Two chains of dockguard's own, in the ``filter`` table of whatever ``iptables`` the
host runs (iptables-nft or legacy: the one dockerd itself uses), never anyone else's:

- ``DGD-INPUT``, jumped to first from INPUT, with INPUT's policy DROP, when
  ``firewall_input_drop`` is on: loopback, replies, ICMP (and ICMPv6, which IPv6 needs),
  DHCP replies, SSH from ``firewall_ssh_sources`` (on every port sshd listens on),
  dockerd's TLS port, and ``firewall_input_allow``. IPv4 and IPv6 alike.
- ``DGD-PUB``, jumped to first from ``DOCKER-USER``: a published container port bypasses
  INPUT (Docker DNATs it in PREROUTING and the packet goes through FORWARD), so each port of
  ``firewall_published_ports`` is matched by its original destination port
  (``conntrack --ctorigdstport``, DNATed connections only) and refused to every source not
  listed. Containers talking to each other or to the outside are not DNATed and never match.

Nothing is flushed but these two chains, and they are replaced whole in one
``iptables-restore --noflush`` transaction, so there is no instant where INPUT drops
and DGD-INPUT is empty. Docker keeps DOCKER-USER's content across its restarts; a boot
runs the same script from ``dockguard-firewall.service`` (before docker.service, after
nftables.service). Debian's ``/etc/nftables.conf`` starts with ``flush ruleset``: an
enabled nftables.service that flushes is reported, because restarting it deletes
Docker's rules and dockguard's.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, content, drift, failed, hostlock, warn

SCRIPT = "/usr/local/sbin/dockguard-firewall"
UNIT = "/etc/systemd/system/dockguard-firewall.service"
INPUT, PUB = "DGD-INPUT", "DGD-PUB"
LYNIS = "FIRE-4508"
_TOOLS = {4: "iptables", 6: "ip6tables"}


class FirewallState(FactBase):
    """{"iptables": bool, "v4"/"v6": {"policy", "input_jump", "user_jump", "rules": {chain: [lines]}},
    "ssh_ports": [int], "nft_flush": bool, "unit_enabled": bool}."""

    def command(self) -> str:
        parts = [
            "command -v iptables >/dev/null 2>&1 || { echo iptables=no; exit 0; }; echo iptables=yes; "
            "p=$(command -v sshd 2>/dev/null || echo /usr/sbin/sshd); mkdir -p /run/sshd 2>/dev/null; "
            '[ -x "$p" ] && "$p" -T 2>/dev/null | sed -n -e "s/^port /ssh_port=/p" '
            '-e "s/^listenaddress .*:\\([0-9]*\\)$/ssh_port=\\1/p"; '
            "systemctl is-enabled nftables.service >/dev/null 2>&1 && "
            "grep -qE '^[[:space:]]*flush[[:space:]]+ruleset' /etc/nftables.conf 2>/dev/null && echo nft_flush=yes; "
            "systemctl is-enabled dockguard-firewall.service >/dev/null 2>&1 && echo unit_enabled=yes; "
        ]
        for v, tool in _TOOLS.items():
            # One {tool}-save of the filter table (not a -S per chain: the fact is read on every run),
            # reduced to the lines -S would print for these chains.
            keep = f"(INPUT|DOCKER-USER|{INPUT}|{PUB})"
            parts.append(
                f"if command -v {tool}-save >/dev/null 2>&1 && command -v {tool} >/dev/null 2>&1; then "
                f"{tool}-save -t filter 2>/dev/null | sed -n -E -e 's/^:INPUT ([A-Z]+) .*/v{v} -P INPUT \\1/p' "
                f"-e 's/^(-A {keep} .*)/v{v} \\1/p'; "
                f"elif command -v {tool} >/dev/null 2>&1; then "
                f"{tool} -w 5 -S INPUT 2>/dev/null | sed 's/^/v{v} /'; "
                f"{tool} -w 5 -S DOCKER-USER 2>/dev/null | sed 's/^/v{v} /'; "
                f"for c in {INPUT} {PUB}; do {tool} -w 5 -S $c 2>/dev/null | sed 's/^/v{v} /'; done; fi; "
            )
        return "".join(parts) + "true"

    @staticmethod
    def default() -> dict:
        return {"iptables": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"iptables": False, "ssh_ports": [], "nft_flush": False, "unit_enabled": False}
        for v in (4, 6):
            out[f"v{v}"] = {"policy": None, "input_jump": False, "user_jump": False, "rules": {INPUT: [], PUB: []}}
        for line in output:
            if line.startswith(("v4 ", "v6 ")):
                fam, rule = out[line[:2]], line[3:]
                words = rule.split()
                if rule.startswith("-P INPUT ") and len(words) == 3:
                    fam["policy"] = words[2]
                elif rule == f"-A INPUT -j {INPUT}":
                    fam["input_jump"] = True
                elif rule == f"-A DOCKER-USER -j {PUB}":
                    fam["user_jump"] = True
                elif len(words) > 1 and words[0] == "-A" and words[1] in (INPUT, PUB):
                    fam["rules"][words[1]].append(rule)
                continue
            key, sep, value = line.partition("=")
            if key == "iptables":
                out["iptables"] = value == "yes"
            elif key == "ssh_port" and value.isdigit():
                out["ssh_ports"].append(int(value))
            elif key == "nft_flush":
                out["nft_flush"] = True
            elif key == "unit_enabled":
                out["unit_enabled"] = True
            elif line.strip():
                raise FactProcessError(f"firewall: unexpected output {line[:80]!r}")
        return out


def _nets(sources: list[str], v: int) -> list[str | None]:
    """The sources of one family, normalised (None: from anywhere)."""
    out: list[str | None] = []
    for s in sources:
        net = ipaddress.ip_network(s, strict=False)
        if net.version == v:
            out.append(None if net.prefixlen == 0 else str(net))
    return [None] if None in out else out


def _src(net: str | None) -> str:
    return f"-s {net} " if net else ""


def drops(cfg: dict[str, Any], v: int) -> bool:
    """Whether INPUT drops for IP version ``v``: only where firewall_ssh_sources lets SSH in over
    it (an IPv4-only allowlist leaves IPv6's INPUT as it is, never closed to SSH)."""
    return bool(cfg["firewall_input_drop"] and _nets(cfg["firewall_ssh_sources"], v))


def rules(cfg: dict[str, Any], ssh_ports: list[int], v: int) -> dict[str, list[str]]:
    """{chain: the rules dockguard wants, exactly as ``iptables -S`` prints them}."""
    inp: list[str] = []
    if drops(cfg, v):
        icmp = "icmp" if v == 4 else "ipv6-icmp"
        inp += [
            f"-A {INPUT} -i lo -j ACCEPT",
            f"-A {INPUT} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {INPUT} -p {icmp} -j ACCEPT",
            f"-A {INPUT} -p udp -m udp --sport 67 --dport 68 -j ACCEPT"
            if v == 4
            else f"-A {INPUT} -p udp -m udp --sport 547 --dport 546 -j ACCEPT",
        ]
        for port in sorted(set(ssh_ports)):
            inp += [f"-A {INPUT} {_src(n)}-p tcp -m tcp --dport {port} -j ACCEPT" for n in _nets(
                cfg["firewall_ssh_sources"], v)]  # fmt: skip
        if cfg["docker_tcp_listen"]:  # mutual TLS guards it (CIS 2.7): reachable as configured
            port = int(cfg["docker_tcp_listen"].rpartition(":")[2])
            inp.append(f"-A {INPUT} -p tcp -m tcp --dport {port} -j ACCEPT")
        for key, sources in sorted(cfg["firewall_input_allow"].items()):
            proto, _, port = key.partition("/")
            inp += [f"-A {INPUT} {_src(n)}-p {proto} -m {proto} --dport {int(port)} -j ACCEPT" for n in _nets(
                sources, v)]  # fmt: skip
    pub: list[str] = []
    if v == 4:  # dockerd publishes IPv4 ports through iptables; ip6tables only where enabled per network
        for key, sources in sorted(cfg["firewall_published_ports"].items()):
            proto, _, port = key.partition("/")
            match = f"-p {proto} -m conntrack --ctstate DNAT --ctorigdstport {int(port)} --ctdir ORIGINAL"
            nets = _nets(sources, 4)
            if None in nets:
                continue  # open to every source: nothing to restrict
            pub += [f"-A {PUB} -s {n} {match} -j RETURN" for n in nets]
            pub.append(f"-A {PUB} {match} -j DROP")
    return {INPUT: inp, PUB: pub}


def script(cfg: dict[str, Any], ssh_ports: list[int]) -> str:
    """The shell script that puts the rules in place (the operation and the boot unit run it)."""
    lines = [
        "#!/bin/sh",
        "# Managed by dockguard (Lynis FIRE-4508): dockguard's own chains only; never flushes Docker's.",
        "set -eu",
    ]
    for v, tool in _TOOLS.items():
        want = rules(cfg, ssh_ports, v)
        drop = drops(cfg, v)
        restore = "\n".join(["*filter", f":{INPUT} - [0:0]", f":{PUB} - [0:0]", *want[INPUT], *want[PUB], "COMMIT"])
        body = [
            f"if command -v {tool} >/dev/null 2>&1 && {tool} -w 5 -S INPUT >/dev/null 2>&1; then",
            f"  {tool}-restore -w 5 --noflush <<'DOCKGUARD_RULES'",
            restore,
            "DOCKGUARD_RULES",
        ]
        if v == 4:  # dockerd creates DOCKER-USER at its start and keeps what is in it; it may start later
            body += [
                f"  {tool} -w 5 -N DOCKER-USER 2>/dev/null || true",
                f"  {tool} -w 5 -C DOCKER-USER -j {PUB} 2>/dev/null || {tool} -w 5 -I DOCKER-USER 1 -j {PUB}",
            ]
        if drop:  # appended: rules already in INPUT (fail2ban's bans) come first
            body += [
                f"  {tool} -w 5 -C INPUT -j {INPUT} 2>/dev/null || {tool} -w 5 -A INPUT -j {INPUT}",
                f"  {tool} -w 5 -P INPUT DROP",
            ]
        else:  # off (or no SSH source of this family): undo only what dockguard did, never open others' INPUT
            body += [
                f"  if {tool} -w 5 -C INPUT -j {INPUT} 2>/dev/null; then {tool} -w 5 -P INPUT ACCEPT; "
                f"while {tool} -w 5 -D INPUT -j {INPUT} 2>/dev/null; do :; done; fi",
            ]
        body.append("fi")
        lines += body
    return "\n".join(lines) + "\n"


def problems(live: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """How the live rules differ from the wanted ones (empty: in line)."""
    out = []
    for v in (4, 6):
        fam, want = live[f"v{v}"], rules(cfg, live["ssh_ports"], v)
        if fam["policy"] is None and v == 6:
            continue  # no IPv6 filter table here (ip6tables absent or IPv6 off)
        for chain in (INPUT, PUB):
            if fam["rules"][chain] != want[chain]:
                out.append(f"IPv{v} chain {chain} differs from dockguard's rules")
        if v == 4 and not fam["user_jump"]:
            out.append(f"IPv{v} DOCKER-USER does not jump to {PUB}")
        drop = drops(cfg, v)
        if drop and not fam["input_jump"]:
            out.append(f"IPv{v} INPUT does not jump to {INPUT}")
        if drop and fam["policy"] != "DROP":
            out.append(f"IPv{v} INPUT policy is {fam['policy']}, not DROP")
        if not drop and fam["input_jump"]:
            out.append(f"IPv{v} INPUT still jumps to {INPUT}")
    return out


@operation()
def loaded(differs: list[str], enabled: bool):
    """Run the firewall script now (where the live rules differ) and enable its boot unit."""
    if not differs and enabled:
        host.noop("the firewall rules are in place")
        return
    cmds = []
    if differs:
        cmds.append(f"{shlex.quote(SCRIPT)}")
    if not enabled:
        cmds.append("systemctl daemon-reload && systemctl enable dockguard-firewall.service >/dev/null 2>&1")
    yield StringCommand(hostlock.prefix() + " && ".join(cmds))


UNIT_TEXT = """\
# Managed by dockguard: puts dockguard's firewall chains in place at boot (Lynis FIRE-4508).
[Unit]
Description=dockguard firewall chains (DGD-INPUT, DGD-PUB in DOCKER-USER)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target docker.service
After=local-fs.target nftables.service netfilter-persistent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/dockguard-firewall

[Install]
WantedBy=multi-user.target
"""


STATE = ("firewall.FirewallState", FirewallState, {})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [STATE]


def configure(ctx: Context) -> list:
    """The firewall script and its boot unit, and the rules live."""
    live = ctx.read(STATE)
    if not live["iptables"]:
        drift(LYNIS, "no iptables on this host: dockguard's firewall cannot be put in place")
        warn("FIRE-4508: no iptables here (dockerd needs it too): the firewall is not managed")
        return []
    cfg = ctx.cfg
    if live["nft_flush"]:
        drift(LYNIS, "nftables.service is enabled and /etc/nftables.conf flushes the whole ruleset")
        warn(
            "FIRE-4508: nftables.service is enabled and /etc/nftables.conf starts with `flush ruleset`: "
            "restarting it deletes Docker's rules and dockguard's (dockerd and dockguard-firewall.service "
            "put them back when restarted); remove the flush or the service"
        )
    ops = content.files(
        {SCRIPT: (script(cfg, live["ssh_ports"]), "755"), UNIT: (UNIT_TEXT, "644")},
        {SCRIPT: f"{LYNIS}: firewall script {SCRIPT}", UNIT: f"{LYNIS}: firewall boot unit dockguard-firewall.service"},
    )
    if not live["ssh_ports"] and (drops(cfg, 4) or drops(cfg, 6)):
        why = "sshd -T names no port here: INPUT would drop SSH; the firewall is not changed on this host"
        drift(LYNIS, why)
        return ops + [failed(name=f"{LYNIS}: SSH stays reachable", why=why)]
    differs = problems(live, cfg)
    ops.append(
        loaded(
            name=f"{LYNIS}: firewall chains {INPUT} (INPUT) and {PUB} (DOCKER-USER) in place",
            differs=differs,
            enabled=live["unit_enabled"],
        )
    )
    return ops
