"""Accounts and login sessions (Lynis AUTH-9230, AUTH-9262, AUTH-9286, AUTH-9328,
KRNL-5820, SHLL-6220, BANN-7126, BANN-7130, HRDN-7222), without touching Docker.

* /etc/login.defs: PASS_MAX_DAYS, PASS_MIN_DAYS, UMASK, SHA_CRYPT_MIN_ROUNDS and
  SHA_CRYPT_MAX_ROUNDS. Only those lines are rewritten (a commented-out key is
  uncommented in place, a missing one appended), only when the fact says they
  differ; every other byte of the file stays as it is. Written atomically and
  digest-checked (content.atomic_write). These apply to accounts and logins made
  from now on: existing accounts, dockerd and its containers are not affected (UMASK
  is a login default; dockerd gets its umask from systemd, not login.defs).
* PAM password quality: libpam-pwquality on apt hosts (its postinst runs
  pam-auth-update, which adds it to common-password); the RHEL family ships
  pam_pwquality with libpwquality already enabled.
* No core dumps (``accounts_no_core_dumps``): limits.d for login sessions and
  systemd-coredump's Storage=none. pam_limits applies to PAM sessions only, so the
  limits of dockerd and its containers (set by systemd and ``--default-ulimit``)
  stay as dockguard's dockerd area sets them.
* Idle interactive shells end after ``accounts_shell_timeout`` seconds (TMOUT,
  readonly, exported, interactive shells only, so ``docker exec``, ssh commands and
  scripts are not cut off). 0: no timeout; the file is removed if dockguard made it.
* The legal banner in /etc/issue and /etc/issue.net (settings refuse backslashes:
  agetty expands them).
* Compilers and assemblers present on the host (as, cc, gcc, g++, clang, ...), their
  real files, run for root only (0750 root:root): with dpkg-statoverride on Debian,
  so package upgrades keep it (a path that already has an override is left to it),
  chmod elsewhere. Image builds compile inside containers, not with the host's
  compilers; DKMS runs as root.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, content, drift, hostlock, packages, platform, safe, say

LOGIN_DEFS = "/etc/login.defs"
LIMITS_FILE = "/etc/security/limits.d/dockguard-core.conf"
COREDUMP_FILE = "/etc/systemd/coredump.conf.d/dockguard.conf"
TIMEOUT_FILE = "/etc/profile.d/dockguard-timeout.sh"
ISSUE, ISSUE_NET = "/etc/issue", "/etc/issue.net"
MARKER = "Managed by dockguard"  # the first comment of every file dockguard makes here
OWN_FILES = (LIMITS_FILE, COREDUMP_FILE, TIMEOUT_FILE)  # removed when their setting turns them off

LOGIN_DEFS_OP = f"AUTH-9230/AUTH-9286/AUTH-9328: password aging, umask and SHA crypt rounds in {LOGIN_DEFS}"
PWQUALITY_OP = "AUTH-9262: PAM password quality (pam_pwquality)"
LIMITS_OP = f"KRNL-5820: no core dumps for login sessions ({LIMITS_FILE})"
COREDUMP_OP = f"KRNL-5820: systemd-coredump keeps no core dumps ({COREDUMP_FILE})"
TIMEOUT_OP = f"SHLL-6220: idle interactive shells time out ({TIMEOUT_FILE})"
ISSUE_OP = f"BANN-7126: legal banner in {ISSUE}"
ISSUE_NET_OP = f"BANN-7130: legal banner in {ISSUE_NET}"
COMPILERS_OP = "HRDN-7222: compilers and assemblers run for root only"
# When a setting turns a file off: dockguard's own copy is removed.
REMOVE_OPS = {
    LIMITS_FILE: f"KRNL-5820: {LIMITS_FILE} removed (accounts_no_core_dumps is off)",
    COREDUMP_FILE: f"KRNL-5820: {COREDUMP_FILE} removed (accounts_no_core_dumps is off)",
    TIMEOUT_FILE: f"SHLL-6220: {TIMEOUT_FILE} removed (accounts_shell_timeout is 0)",
}

DEFS_KEYS = ("PASS_MAX_DAYS", "PASS_MIN_DAYS", "UMASK", "SHA_CRYPT_MIN_ROUNDS", "SHA_CRYPT_MAX_ROUNDS")
# Compilers and assemblers looked for (Lynis HRDN-7222 checks as, cc, clang and gcc), where Lynis looks.
COMPILERS = ("as", "cc", "c++", "gcc", "g++", "clang", "clang++", "tcc")
BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
PURPOSE = "accounts (login.defs, pwquality, compilers)"
# Fields of each record of the fact's stream, after its tag.
ARITY = {b"defs": 1, b"pwquality": 1, b"mine": 2, b"compiler": 4}


class AccountsState(FactBase):
    """{"login_defs": /etc/login.defs as text (bytes that are not UTF-8 kept as surrogate
    escapes) or None, "pwquality": libpam-pwquality installed (None: no dpkg),
    "mine": {path of OWN_FILES that exists: whether dockguard made it},
    "compilers": [{"path", "real", "mode", "uid", "gid", "override"}] one per real file,
    ``override``: it has a dpkg-statoverride (None: no dpkg)}."""

    def command(self) -> str:
        names = " ".join(COMPILERS)
        return safe.stream(
            "accounts",
            f"if [ -f {LOGIN_DEFS} ]; then printf 'defs\\0'; cat {LOGIN_DEFS}; printf '\\0'; fi; "
            "if command -v dpkg-query >/dev/null 2>&1; then "
            "if dpkg-query -W -f='${Status}\\n' libpam-pwquality 2>/dev/null | grep -q ' installed$'; "
            "then printf 'pwquality\\0yes\\0'; else printf 'pwquality\\0no\\0'; fi; fi; "
            f'for f in {" ".join(OWN_FILES)}; do if [ -f "$f" ]; then '
            f'if grep -q {safe.arg(MARKER)} "$f"; then m=yes; else m=no; fi; '
            'printf \'mine\\0%s\\0%s\\0\' "$f" "$m"; fi; done; '
            f'for d in {" ".join(BIN_DIRS)}; do for n in {names}; do f="$d/$n"; '
            'if [ -e "$f" ]; then r=$(readlink -f "$f"); s=$(stat -L -c \'%a %u %g\' "$r"); o=-; '
            "if command -v dpkg-statoverride >/dev/null 2>&1; then "
            'if dpkg-statoverride --list "$r" >/dev/null 2>&1; then o=yes; else o=no; fi; fi; '
            'printf \'compiler\\0%s\\0%s\\0%s\\0%s\\0\' "$f" "$r" "$s" "$o"; fi; done; done;',
        )

    @staticmethod
    def default() -> dict:
        return {"login_defs": None, "pwquality": None, "mine": {}, "compilers": []}

    def process(self, output: list[str]) -> dict[str, Any]:
        found = safe.fields(output, "accounts", PURPOSE)
        out: dict[str, Any] = {"login_defs": None, "pwquality": None, "mine": {}, "compilers": []}
        seen: set[str] = set()
        i = 0
        while i < len(found):
            tag = found[i]
            n = ARITY.get(tag)
            if n is None or i + n >= len(found):
                raise FactProcessError(f"{PURPOSE}: unexpected field {safe.shown(tag[:40])}")
            values = found[i + 1 : i + 1 + n]
            i += 1 + n
            if tag == b"defs":
                out["login_defs"] = safe.name(values[0])
            elif tag == b"pwquality":
                out["pwquality"] = _yes_no(values[0], "pwquality")
            elif tag == b"mine":
                out["mine"][safe.name(values[0])] = _yes_no(values[1], "mine")
            else:
                out["compilers"] += _compiler(values, seen)
        out["compilers"].sort(key=lambda c: c["real"])
        return out


def _yes_no(value: bytes, what: str) -> bool:
    if value not in (b"yes", b"no"):
        raise FactProcessError(f"{PURPOSE}: {what}: expected yes or no, got {safe.shown(value[:40])}")
    return value == b"yes"


def _compiler(values: list[bytes], seen: set[str]) -> list[dict[str, Any]]:
    path, real, stat, override = values
    parts = stat.split()
    if not real.startswith(b"/") or len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise FactProcessError(f"{PURPOSE}: compiler {safe.shown(path)}: unexpected stat {safe.shown(stat[:40])}")
    if override not in (b"yes", b"no", b"-"):
        raise FactProcessError(f"{PURPOSE}: compiler {safe.shown(path)}: unexpected override {safe.shown(override)}")
    name = safe.name(real)
    if name in seen:  # /bin/cc and /usr/bin/gcc: one real file
        return []
    seen.add(name)
    mode, uid, gid = (p.decode() for p in parts)
    return [{
        "path": safe.name(path), "real": name, "mode": mode.zfill(4), "uid": int(uid), "gid": int(gid),
        "override": None if override == b"-" else override == b"yes",
    }]  # fmt: skip


# ----------------------------------------------------------------------------- login.defs


def defs_wanted(cfg: dict[str, Any]) -> dict[str, str]:
    rounds = str(cfg["accounts_sha_crypt_rounds"])
    return {
        "PASS_MAX_DAYS": str(cfg["accounts_pass_max_days"]),
        "PASS_MIN_DAYS": str(cfg["accounts_pass_min_days"]),
        "UMASK": cfg["accounts_umask"],
        "SHA_CRYPT_MIN_ROUNDS": rounds,
        "SHA_CRYPT_MAX_ROUNDS": rounds,
    }


def _same(key: str, live: str | None, want: str) -> bool:
    if live is None:
        return False
    try:
        return int(live, 8 if key == "UMASK" else 10) == int(want, 8 if key == "UMASK" else 10)
    except ValueError:
        return False


def defs_values(text: str) -> dict[str, str]:
    """The values in effect (login.defs: the last active line of a key wins)."""
    out = {}
    for line in text.split("\n"):
        parts = line.split()
        if parts and parts[0] in DEFS_KEYS:
            out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def _commented(line: str) -> str | None:
    """The key of a commented-out setting (``#UMASK 022``, ``# PASS_MAX_DAYS 99999``), or
    None (a description such as ``#\tPASS_MAX_DAYS\tMaximum number of days ...`` is not one)."""
    stripped = line.strip()
    if not stripped.startswith("#"):
        return None
    parts = stripped.lstrip("#").split()
    return parts[0] if parts and parts[0] in DEFS_KEYS and len(parts) <= 2 else None


def defs_rewrite(text: str, wanted: dict[str, str]) -> str:
    """``text`` with the ``wanted`` keys set: every active line of a key that differs is
    rewritten, a key with no active line takes the place of its first commented-out
    line, or is appended. Every other line stays byte for byte."""
    lines = text.split("\n")
    active = set()
    for i, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] in wanted:
            active.add(parts[0])
            if len(parts) != 2 or not _same(parts[0], parts[1], wanted[parts[0]]):
                lines[i] = f"{parts[0]}\t{wanted[parts[0]]}" + ("\r" if line.endswith("\r") else "")
    for i, line in enumerate(lines):
        key = _commented(line)
        if key in wanted and key not in active:
            lines[i] = f"{key}\t{wanted[key]}"
            active.add(key)
    missing = [k for k in wanted if k not in active]
    out = "\n".join(lines)
    if missing:
        if out and not out.endswith("\n"):
            out += "\n"
        out += "# Set by dockguard (Lynis AUTH-9230/9286/9328)\n" + "".join(f"{k}\t{wanted[k]}\n" for k in missing)
    return out


@operation()
def login_defs(text: str | None, wanted: dict[str, str]):
    """/etc/login.defs holds ``wanted``. ``text``: the file as read while the area was
    prepared (AccountsState; None: there is none)."""
    live = defs_values(text or "")
    differ = [k for k in wanted if not _same(k, live.get(k), wanted[k])]
    if not differ:
        host.noop(f"{LOGIN_DEFS} holds dockguard's values")
        return
    shown = ", ".join(f"{k}={live.get(k, 'unset')} (wanted {wanted[k]})" for k in differ)
    drift("AUTH-9286", f"{LOGIN_DEFS}: {shown}", LOGIN_DEFS_OP)
    new = defs_rewrite(text or "", wanted)
    digest = hashlib.sha256(safe.raw(text)).hexdigest() if text is not None else None
    yield from content.atomic_write(LOGIN_DEFS, safe.raw(new), digest, "644")


# ----------------------------------------------------------------------------- own files, compilers


@operation()
def removed(path: str, mine: bool | None):
    """``path`` is gone if dockguard made it (``mine``: AccountsState's reading; None: no such file)."""
    if mine is None:
        host.noop(f"{path} does not exist")
        return
    if not mine:
        say(f"{path} was not made by dockguard (no {MARKER!r} line): left alone")
        host.noop(f"{path} is not dockguard's")
        return
    yield StringCommand(hostlock.prefix() + f"rm -f {safe.arg(path)}")


def restricted(c: dict[str, Any]) -> bool:
    """Root-owned, nothing for others (0750 or stricter)."""
    return c["uid"] == 0 and int(c["mode"], 8) & 0o007 == 0


@operation()
def compilers(found: list[dict[str, Any]]):
    """Compilers in ``found`` (AccountsState) that others may run become 0750 root:root:
    recorded with dpkg-statoverride where dpkg is (kept across upgrades), chmod elsewhere."""
    loose = [c for c in found if not restricted(c)]
    kept = [c for c in loose if c["override"]]
    if kept:
        say(
            "HRDN-7222: left to their existing dpkg-statoverride: "
            + ", ".join(f"{safe.shown(c['real'])} ({c['mode']})" for c in kept)
        )
    todo = [c for c in loose if not c["override"]]
    if not todo:
        host.noop(f"compilers run for root only ({len(found)} found)")
        return
    drift("HRDN-7222", "compilers others may run: " + ", ".join(safe.shown(c["real"]) for c in todo), COMPILERS_OP)
    steps = []
    for c in todo:
        p = safe.arg(c["real"])
        if c["override"] is None:
            steps.append(f"chown root:root {p} && chmod 0750 {p}")
        else:
            steps.append(f"dpkg-statoverride --update --add root root 0750 {p}")
    yield StringCommand(hostlock.prefix() + " && ".join(steps))


# ----------------------------------------------------------------------------- the area


STATE = (f"{__name__}.AccountsState", AccountsState, {})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [STATE]


def configure(ctx: Context) -> list:
    cfg = ctx.cfg
    live = ctx.read(STATE)
    plat = platform.current()
    ops = [login_defs(name=LOGIN_DEFS_OP, text=live["login_defs"], wanted=defs_wanted(cfg))]
    ops.append(
        packages.ensure(
            name=PWQUALITY_OP,
            present=bool(live["pwquality"]) or plat.get("pkg") != "apt",  # the RHEL family ships it enabled
            plat=plat,
            apt="libpam-pwquality",
            dnf="libpwquality",
        )
    )
    banner = cfg["accounts_banner"].rstrip("\n")
    specs = {
        ISSUE: (content.render("etc/issue.j2", banner=banner), "644"),
        ISSUE_NET: (content.render("etc/issue.net.j2", banner=banner), "644"),
    }
    names = {ISSUE: ISSUE_OP, ISSUE_NET: ISSUE_NET_OP, LIMITS_FILE: LIMITS_OP, COREDUMP_FILE: COREDUMP_OP,
             TIMEOUT_FILE: TIMEOUT_OP}  # fmt: skip
    gone = []
    if cfg["accounts_no_core_dumps"]:
        specs[LIMITS_FILE] = (content.render("etc/security/limits.d/dockguard-core.conf.j2"), "644")
        specs[COREDUMP_FILE] = (content.render("etc/systemd/coredump.conf.d/dockguard.conf.j2"), "644")
    else:
        gone += [LIMITS_FILE, COREDUMP_FILE]
    if cfg["accounts_shell_timeout"]:
        timeout = int(cfg["accounts_shell_timeout"])
        specs[TIMEOUT_FILE] = (content.render("etc/profile.d/dockguard-timeout.sh.j2", timeout=timeout), "644")
    else:
        gone.append(TIMEOUT_FILE)
    ops += content.files(specs, {p: names[p] for p in specs})
    ops += [removed(name=REMOVE_OPS[p], path=p, mine=live["mine"].get(p)) for p in gone]
    if cfg["accounts_restrict_compilers"]:
        ops.append(compilers(name=COMPILERS_OP, found=list(live["compilers"])))
        # Packages installed earlier in this run (os_packages: needrestart brings binutils' `as`)
        # were not there when the facts were read: look again on the host, only then.
        installs = list(ctx.area("os_packages").get("installs", []))
        if installs:
            ops.append(
                compilers_installed(
                    name=COMPILERS_OP + " (those installed in this run)",
                    _if=lambda: any(op.did_change() for op in installs),
                )
            )
    return ops


@operation()
def compilers_installed():
    """The compilers present now that others may run become 0750 root:root, decided on the host
    (gate with ``_if``: packages installed in this run)."""
    names = " ".join(COMPILERS)
    yield StringCommand(
        hostlock.prefix() + f'for c in {names}; do p=$(command -v $c) || continue; r=$(readlink -f "$p"); '
        'm=$(stat -c %a "$r"); [ $((0$m & 7)) -eq 0 ] && continue; '
        "if command -v dpkg-statoverride >/dev/null 2>&1; then "
        'dpkg-statoverride --list "$r" >/dev/null || dpkg-statoverride --update --add root root 0750 "$r"; '
        'else chown root:root "$r" && chmod 0750 "$r"; fi; done; true'
    )
