"""sshd (Lynis SSH-7408): a drop-in in ``sshd_config.d/``, checked with ``sshd -t``
before sshd reloads it, rolled back when the check fails.

Never lock the operator out: the host's own configuration must pass ``sshd -t``
before dockguard touches it (else this host fails, naming sshd's complaint, and
nothing is written); the new drop-in is put in place and checked; a failed check puts
the previous file back (or removes the new one) and fails this host; a passed one
reloads sshd, which keeps every open connection (this run's included), and waits until
sshd listens again (a new connection during its re-exec would be refused). The reload is
gated on the drop-in's digest recorded after the last good reload, so a run
interrupted between the write and the reload reloads on the next run.

``MaxSessions``, ``MaxAuthTries``, ``AllowTcpForwarding`` and ``PermitRootLogin``
are settings: ``docker -H ssh://`` and compose over SSH need sessions, ``ssh -L`` to a
container port needs forwarding. The port stays where it is (Lynis counts port 22
against the host; moving it is an operator's decision, not a hardening default).
What sshd really uses (``sshd -T``) is compared with the drop-in; a keyword that an
earlier file or sshd_config itself sets otherwise is reported, never fought over.
"""

from __future__ import annotations

import base64
import shlex
from io import BytesIO
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, content, drift, failed, hostlock, say, warn

DROPIN = "/etc/ssh/sshd_config.d/01-dockguard.conf"
APPLIED = "/var/lib/dockguard/sshd-applied"
TEMPLATE = "etc/ssh/sshd_config.d/01-dockguard.conf.j2"
LYNIS = "SSH-7408"
# The keywords of the drop-in (as sshd -T prints them), and the port.
KEYWORDS = (
    "allowagentforwarding", "allowtcpforwarding", "clientalivecountmax", "clientaliveinterval", "gatewayports",
    "hostbasedauthentication", "ignorerhosts", "logingracetime", "loglevel", "maxauthtries", "maxsessions",
    "permitemptypasswords", "permitrootlogin", "permittunnel", "permituserenvironment", "printlastlog",
    "strictmodes", "tcpkeepalive", "usedns", "x11forwarding", "port",
)  # fmt: skip


class SshdState(FactBase):
    """{"present", "unit", "include", "check_rc", "check", "effective": {keyword: value},
    "digest", "applied"} of the host's sshd (None fields: not there)."""

    def command(self) -> str:
        q = shlex.quote
        return (
            "p=$(command -v sshd 2>/dev/null || echo /usr/sbin/sshd); "
            'if [ ! -x "$p" ]; then echo present=no; exit 0; fi; echo present=yes; '
            "for u in ssh sshd; do if systemctl cat $u.service >/dev/null 2>&1; then echo unit=$u; break; fi; done; "
            "grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\\.d/\\*\\.conf' /etc/ssh/sshd_config "
            "2>/dev/null && echo include=yes; "
            # sshd -t needs its privilege-separation directory (made by the unit's RuntimeDirectory).
            "mkdir -p /run/sshd 2>/dev/null; "
            'out=$("$p" -t 2>&1); echo check_rc=$?; echo "check=$(printf %s "$out" | head -n3 | base64 -w0)"; '
            f'"$p" -T 2>/dev/null | grep -E {q("^(" + "|".join(KEYWORDS) + ") ")} | sed "s/^/eff=/"; '
            f"[ -f {q(DROPIN)} ] && echo digest=$(sha256sum < {q(DROPIN)} | cut -d' ' -f1); "
            f"[ -f {q(APPLIED)} ] && echo applied=$(head -c 64 {q(APPLIED)}); true"
        )

    @staticmethod
    def default() -> dict:
        return {"present": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"present": False, "unit": None, "include": False, "check_rc": None,
                               "check": "", "effective": {}, "digest": None, "applied": None}  # fmt: skip
        for line in output:
            key, sep, value = line.partition("=")
            if not sep:
                raise FactProcessError(f"sshd: unexpected output {line[:80]!r}")
            if key == "present":
                out["present"] = value == "yes"
            elif key == "unit":
                out["unit"] = value
            elif key == "include":
                out["include"] = True
            elif key == "check_rc":
                if not value.isdigit():
                    raise FactProcessError(f"sshd: unexpected sshd -t exit status {value[:20]!r}")
                out["check_rc"] = int(value)
            elif key == "check":
                try:
                    out["check"] = " ".join(base64.b64decode(value).decode(errors="replace").split())[:300]
                except ValueError as e:
                    raise FactProcessError(f"sshd: unreadable sshd -t output: {e}") from None
            elif key == "eff":
                name, _, val = value.partition(" ")
                out["effective"].setdefault(name.lower(), val.lower())  # a keyword listed twice (port): keep the first
            elif key in ("digest", "applied"):
                if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                    if key == "digest":
                        raise FactProcessError(f"sshd: unexpected digest {value[:80]!r}")
                    value = None  # a damaged stamp: reload again
                out[key] = value
            else:
                raise FactProcessError(f"sshd: unexpected output {line[:80]!r}")
        return out


def wanted(text: str) -> dict[str, str]:
    """{keyword in lowercase: value in lowercase} of the drop-in, as ``sshd -T`` prints them."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.strip().partition(" ")
            out[k.lower()] = v.strip().lower()
    return out


def overridden(text: str, effective: dict[str, str]) -> list[str]:
    """The drop-in's keywords that sshd uses with another value ("maxsessions 10, not 4")."""
    # sshd -T spells a few values its own way.
    same = {("permitrootlogin", "prohibit-password"): {"without-password"}}
    out = []
    for k, v in wanted(text).items():
        have = effective.get(k)
        if have is not None and have != v and have not in same.get((k, v), ()):
            out.append(f"{k} {have}, not {v}")
    return out


# sshd re-executes itself on SIGHUP: it closes its listening sockets and opens them again, and
# `systemctl reload` returns once the signal is sent (ExecReload=kill -HUP). A connection made in
# between is refused before sshd's banner ("kex_exchange_identification: Connection reset"): the
# operator's next ssh, or the next run. The e2e suite met it on the emulated VM host, where the
# re-exec takes seconds under load. So the reload waits (up to 60 s) until sshd's main process
# listens on sockets it did not hold before. Where it held none (socket activation: systemd holds
# the socket, which stays open), there is nothing to wait for.
_LISTENING = (
    'dg_sshd_listen() { for f in /proc/$1/fd/*; do l=$(readlink "$f" 2>/dev/null) || continue; '
    "case $l in socket:*) i=${l#socket:?}; i=${i%?}; "
    'awk -v i="$i" \'$4 == "0A" && $10 == i { print i; exit }\' /proc/$1/net/tcp /proc/$1/net/tcp6 2>/dev/null;; '
    "esac; done; }; "
)
RELISTEN_POLLS = 300  # of 0.2 s


def reload_and_wait(unit: str) -> str:
    """Shell: reload sshd's ``unit`` and wait until it listens again (see _LISTENING), then ``&& ``."""
    u = shlex.quote(f"{unit}.service")
    pid = f"dg_pid=$(systemctl show -p MainPID --value {u} 2>/dev/null); "
    listening = 'dg_sshd_listen "${dg_pid:-0}" | sort | tr "\\n" " "'
    return (
        _LISTENING + pid + f"dg_old=$({listening}); "
        f"systemctl try-reload-or-restart {u} && "
        '{ dg_i=0; while [ -n "$dg_old" ]; do ' + pid + f"dg_new=$({listening}); "
        'if [ -n "$dg_new" ]; then dg_same=; for x in $dg_new; do case " $dg_old " in *" $x "*) dg_same=1;; esac; '
        'done; [ -n "$dg_same" ] || break; fi; dg_i=$((dg_i + 1)); '
        f"if [ $dg_i -ge {RELISTEN_POLLS} ]; then "
        f'echo "dockguard: sshd did not listen again within {RELISTEN_POLLS // 5} s of its reload '
        '(the drop-in is in place; the next run reloads it again)" >&2; exit 1; fi; sleep 0.2; done; } && '
    )


@operation()
def dropin(text: str, digest: str | None, applied: str | None, unit: str | None):
    """``DROPIN`` holds ``text``, passed ``sshd -t``, and sshd reloaded it."""
    new = content.sha256(text)
    if digest == new and applied == new:
        host.noop(f"{DROPIN} is up to date and loaded")
        return
    q = shlex.quote
    reload = (
        reload_and_wait(unit) if unit else ""
    ) + f"mkdir -p {q(APPLIED.rsplit('/', 1)[0])} && echo {new} > {q(APPLIED)}"
    if digest == new:  # written by a run that stopped before its reload
        yield StringCommand(hostlock.prefix() + reload)
        return
    tmp = f"/etc/ssh/.01-dockguard.conf.dockguard-{hostlock.RUN_ID[:12]}"  # not *.conf: sshd never reads it
    backup = f"/etc/ssh/.01-dockguard.conf.previous-{hostlock.RUN_ID[:12]}"
    yield FileUploadCommand(BytesIO(text.encode()), tmp)
    restore = f"if [ -f {q(backup)} ]; then mv -f {q(backup)} {q(DROPIN)}; else rm -f {q(DROPIN)}; fi"
    yield StringCommand(
        hostlock.prefix() + f"chown root:root {q(tmp)} && chmod 644 {q(tmp)} && "
        f"if [ -f {q(DROPIN)} ]; then cp -p {q(DROPIN)} {q(backup)}; else rm -f {q(backup)}; fi && "
        f"mv -f {q(tmp)} {q(DROPIN)} && mkdir -p /run/sshd && "
        f"if ! out=$(sshd -t 2>&1); then {restore}; "
        'echo "dockguard: sshd -t rejected the new drop-in: $(printf %s "$out" | head -n2 | tr "\\n" " ")'
        f'; the previous sshd configuration was restored and sshd was not reloaded" >&2; exit 1; fi; '
        f"rm -f {q(backup)}; " + reload
    )


STATE = ("sshd.SshdState", SshdState, {})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [STATE]


def configure(ctx: Context) -> list:
    """The sshd drop-in, validated and loaded; what sshd really uses, checked."""
    live = ctx.read(STATE)
    if not live["present"]:
        say("SSH-7408: no sshd on this host: nothing to harden")
        return []
    text = content.render(TEMPLATE, cfg=ctx.cfg)
    if not live["include"]:
        drift(LYNIS, "/etc/ssh/sshd_config does not include sshd_config.d/*.conf: the drop-in is not read")
        warn(
            "SSH-7408: /etc/ssh/sshd_config does not include sshd_config.d/*.conf; dockguard's drop-in "
            "is written but sshd does not read it: add `Include /etc/ssh/sshd_config.d/*.conf` at its top"
        )
    if live["check_rc"] != 0:
        why = (
            f"sshd -t fails with the host's own configuration, before any change ({live['check'] or 'no message'}): "
            "dockguard does not touch sshd until that is fixed"
        )
        drift(LYNIS, why)
        return [failed(name=f"{LYNIS}: sshd configuration passes sshd -t", why=why)]
    op = dropin(
        name=f"{LYNIS}: sshd drop-in {DROPIN}, checked with sshd -t and reloaded",
        text=text,
        digest=live["digest"],
        applied=live["applied"],
        unit=live["unit"],
    )
    if live["digest"] == content.sha256(text) and live["include"]:
        other = overridden(text, live["effective"])
        if other:
            drift(LYNIS, "sshd uses other values than dockguard's drop-in: " + "; ".join(other))
            warn(
                "SSH-7408: sshd uses other values than dockguard's drop-in (an earlier file or sshd_config "
                "sets them first): " + "; ".join(other)
            )
    return [op]
