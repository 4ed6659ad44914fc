"""Pull mode, the hosts' side: the facts and operations of `dockguard pull install`, `remove` and
`status` (dockguard/pull_deploy.py runs ``deploy()`` for each host; dockguard/pull.py is the
operator's side: the wheelhouse, the host's files, the command line).

One fact per host reads all of pull mode's state (PullState: the host's python3, the venv, every
file with its digest, owner and mode, the timer), so a second install runs one command and
changes nothing. Uploads go through a private staging directory (made 0700 by the SSH user,
uploaded to without sudo: nothing is written through pyinfra's shared temporary files, and the
host's inventory, which can hold registry credentials, is readable by root only once in place);
one root command then moves each file into place (written next to it and renamed, 0600 for the
inventory) and removes the stage, whatever happens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shlex
from io import BytesIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import DeployError, FactProcessError

from dockguard import __version__, compat, metrics, pull
from dockguard.operations import failed, hostlock

q = shlex.quote
# Commands and uploads as the SSH user itself, whatever privilege escalation the inventory sets
# (the staging directory is that user's; only the final move runs as root).
UNPRIVILEGED: dict[str, Any] = {"_sudo": False, "_doas": False, "_dzdo": False, "_su_user": None}
PROBE = ("import sys, platform; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], platform.machine(), "
         "*platform.libc_ver())")  # fmt: skip


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FactProcessError(f"pull mode state: {what}: not base64 ({e})") from None


class PullState(FactBase):
    """Everything of pull mode on the host, in one command: {"python": {path, implementation,
    version, machine, libc, libc_version} or None, "venv": the venv link's target, "venv_digest",
    "venvs": [directories in venvs/], "dirs": {path: {mode, owner} | None | "other"}, "files":
    {path: {sha256, mode, owner} | None | "other"}, "found": [[type, path]] under /etc/dockguard/pull,
    "timer": {enabled, active}, "last": bool, "config": pull.json's text or None, "prom": [paths]}."""

    def command(self, files: list[str], textfile_dirs: list[str]) -> str:
        parts = [
            'py=$(command -v python3 2>/dev/null); '
            f'if [ -n "$py" ] && out=$("$py" -c {q(PROBE)} 2>/dev/null); then echo "python $py $out"; '
            'else echo "python -"; fi',
            f'echo "venv $(readlink {pull.VENV} 2>/dev/null || echo -)"',
            f'if [ -x {pull.VENV}/bin/python ] && [ -f {pull.VENV}/{pull.VENV_MARK} ]; then '
            f'echo "venv_digest $(head -c 64 {pull.VENV}/{pull.VENV_MARK})"; else echo "venv_digest -"; fi',
            f'echo "venvs $(ls -1A {pull.VENVS} 2>/dev/null | base64 -w0)"',
        ]  # fmt: skip
        for path, _, _ in pull.DIRECTORIES:
            parts.append(f'if [ -d {q(path)} ] && [ ! -L {q(path)} ]; then echo "dir $(stat -c "%a %u:%g" {q(path)}) '
                         f'{path}"; elif [ -e {q(path)} ] || [ -L {q(path)} ]; then echo "dir other - {path}"; '
                         f'else echo "dir - - {path}"; fi')  # fmt: skip
        for path in files:
            parts.append(f'if [ -f {q(path)} ] && [ ! -L {q(path)} ]; then echo "file $(sha256sum < {q(path)} | '
                         f"cut -d' ' -f1) $(stat -c '%a %u:%g' {q(path)}) {path}\"; "
                         f'elif [ -e {q(path)} ] || [ -L {q(path)} ]; then echo "file other - - {path}"; '
                         f'else echo "file - - - {path}"; fi')  # fmt: skip
        parts += [
            f"echo \"found $(find {pull.ETC} -mindepth 1 -printf '%y %p\\0' 2>/dev/null | base64 -w0)\"",
            f'e=$(systemctl is-enabled {pull.TIMER} 2>/dev/null); a=$(systemctl is-active {pull.TIMER} 2>/dev/null); '
            'echo "timer ${e:-none} ${a:-unknown}"',
            f'if [ -f {pull.LAST} ]; then echo "last yes"; else echo "last no"; fi',
            f'if [ -f {pull.CONFIG} ]; then echo "config $(base64 -w0 < {pull.CONFIG})"; else echo "config -"; fi',
        ]  # fmt: skip
        for d in textfile_dirs:
            prom = f"{d}/{metrics.PROM_FILE}"
            parts.append(f'if [ -e {q(prom)} ]; then echo "prom $(printf %s {q(prom)} | base64 -w0)"; fi')
        return "; ".join(parts) + "; true"

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"python": None, "venv": None, "venv_digest": None, "venvs": [], "dirs": {},
                               "files": {}, "found": [], "timer": None, "last": False, "config": None,
                               "prom": []}  # fmt: skip
        for line in output:
            key, _, value = line.partition(" ")
            if key == "python":
                words = value.split()
                if value != "-" and len(words) >= 4:
                    out["python"] = {"path": words[0], "implementation": words[1], "version": words[2],
                                     "machine": words[3], "libc": words[4] if len(words) > 5 else None,
                                     "libc_version": words[5] if len(words) > 5 else None}  # fmt: skip
                elif value != "-":
                    raise FactProcessError(f"pull mode state: unexpected python3 probe {value!r}")
            elif key in ("venv", "venv_digest"):
                out[key] = None if value in ("-", "") else value
            elif key == "venvs":
                out["venvs"] = sorted(n for n in _b64(value, "venvs").decode(errors="replace").split("\n") if n)
            elif key in ("dir", "file"):
                fields = value.split(" ", 3 if key == "file" else 2)
                if len(fields) != (4 if key == "file" else 3) or not fields[-1].startswith("/"):
                    raise FactProcessError(f"pull mode state: unexpected {key} line {line!r}")
                path = fields[-1]
                if fields[0] == "-":
                    out[f"{key}s"][path] = None
                elif fields[0] == "other":
                    out[f"{key}s"][path] = "other"
                elif key == "dir":
                    out["dirs"][path] = {"mode": fields[0], "owner": fields[1]}
                else:
                    out["files"][path] = {"sha256": fields[0], "mode": fields[1], "owner": fields[2]}
            elif key == "found":
                raw = _b64(value, "found").decode(errors="surrogateescape")
                out["found"] = [entry.split(" ", 1) for entry in raw.split("\0") if entry]
            elif key == "timer":
                enabled, _, active = value.partition(" ")
                out["timer"] = {"enabled": enabled, "active": active}
            elif key == "last":
                out["last"] = value == "yes"
            elif key == "config":
                out["config"] = _b64(value, "config").decode(errors="replace") if value != "-" else None
            elif key == "prom":
                out["prom"].append(_b64(value, "prom").decode(errors="surrogateescape"))
            else:
                raise FactProcessError(f"pull mode state: unexpected line {line!r}")
        return out


class PullResult(FactBase):
    """The last pull-mode result on the host, raw (parsed on the operator's machine):
    {"now": the host's clock, "timer": dockguard-pull.timer's state, "present": bool, "text"}."""

    def command(self) -> str:
        return (
            'echo "now $(date +%s)"; '
            f'echo "timer $(systemctl is-active {pull.TIMER} 2>/dev/null)"; '
            f'if [ -f {pull.LAST} ]; then echo "last $(base64 -w0 < {pull.LAST})"; else echo "last -"; fi'
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"now": None, "timer": None, "present": False, "text": None}
        for line in output:
            key, _, value = line.partition(" ")
            if key == "now" and value.isdigit():
                out["now"] = int(value)
            elif key == "timer":
                out["timer"] = value or "unknown"
            elif key == "last":
                out["present"] = value != "-"
                out["text"] = _b64(value, "last.json").decode(errors="replace") if value != "-" else None
            else:
                raise FactProcessError(f"pull mode result: unexpected line {line!r}")
        if out["now"] is None:
            raise FactProcessError("pull mode result: the host's clock was not read")
        return out


# --------------------------------------------------------------------------- operations


def stage(what: str) -> str:
    """The private staging directory of this run's uploads (made by the SSH user, 0700)."""
    return f"/var/tmp/dockguard-pull-{hostlock.RUN_ID[:12]}-{what}"


def _in_stage(directory: str, script: str) -> str:
    """Run ``script`` (as root) in a subshell that stops at the first error; the stage is removed
    whatever happens, and the script's status is the command's."""
    return f's={q(directory)}; ( set -e; {script} ); rc=$?; rm -rf "$s"; exit $rc'


@operation()
def directories(live: dict[str, Any]):
    """Pull mode's directories: its own root:root with their modes; a shared parent made if missing."""
    fixes = []
    for path, mode, owned in pull.DIRECTORIES:
        now = live.get(path)
        if now == "other":
            fixes.append(f"echo {q(f'dockguard: {path} is not a directory')} >&2; exit 1")
        elif now is None:
            fixes.append(f"mkdir -p -m {mode} {path} && chown root:root {path}")
        elif owned and (now["mode"] != mode or now["owner"] != "0:0"):
            fixes.append(f"chown root:root {path} && chmod {mode} {path}")
    if not fixes:
        host.noop("pull mode's directories are there, root:root with their modes")
        return
    yield " && ".join(fixes)


@operation()
def venv(wheels: list[dict[str, str]], digest: str, python: str, live: dict[str, Any]):
    """dockguard and its dependencies in a venv of the host's python3 (made --without-pip: the host
    needs neither ensurepip nor python3-venv), filled by pip run from its own wheel with --no-index
    from the uploaded wheels (their sha256 checked first). A new venv gets a directory of its own and
    the link is switched in one rename, while no pull-mode run holds the run lock."""
    vid = digest[:16]
    here = live.get("venv") == f"venvs/{vid}" and live.get("venv_digest") == digest
    leftovers = [n for n in live.get("venvs", []) if n != vid and "/" not in n]
    if here and not leftovers:
        host.noop(f"{pull.VENV} holds these wheels ({vid})")
        return
    lock = f"exec 9>>{pull.LOCK}; flock -w 3600 9 || {{ echo 'dockguard: a pull-mode run still holds {pull.LOCK}' >&2; exit 75; }}"  # noqa: E501
    if here:  # what an interrupted install left
        yield f"( {lock}; rm -rf {' '.join(q(f'{pull.VENVS}/{n}') for n in leftovers)} )"
        return
    names = {w["name"] for w in wheels}
    pip_whl = sorted(n for n in names if n.startswith("pip-"))[-1]
    d = stage("venv")
    yield StringCommand(f"umask 077 && mkdir {d}", **UNPRIVILEGED)
    for w in wheels:
        yield FileUploadCommand(w["path"], f"{d}/{w['name']}", **UNPRIVILEGED)
    sums = "".join(f"{w['sha256']}  {w['name']}\n" for w in wheels)
    yield FileUploadCommand(BytesIO(sums.encode()), f"{d}/SHA256SUMS", **UNPRIVILEGED)
    v = f"{pull.VENVS}/{vid}"
    yield StringCommand(
        _in_stage(
            d,
            f'v={v}; cd "$s"; sha256sum --quiet --strict -c SHA256SUMS; rm -rf "$v"; '
            f'{q(python)} -m venv --without-pip "$v"; '
            # Every staged wheel and nothing else: no pip configuration of the host's (PIP_CONFIG_FILE,
            # --isolated: no find-links or index), no dependency resolution (--no-deps): the import below
            # finds a missing one.
            f'PIP_CONFIG_FILE=/dev/null "$v/bin/python" "$s"/{q(pip_whl)}/pip install --isolated --no-index '
            "--only-binary=:all: --no-deps --no-cache-dir --disable-pip-version-check --no-warn-script-location "
            '--quiet "$s"/*.whl; '
            '"$v/bin/python" -I -c "import dockguard.pull, dockguard.operations.dockerd"; '
            f'echo {digest} > "$v/{pull.VENV_MARK}"; {lock}; '
            f"ln -sfn venvs/{vid} {pull.OPT}/venv.new; mv -Tf {pull.OPT}/venv.new {pull.VENV}; "
            f'for o in {pull.VENVS}/*; do [ "$o" = "$v" ] || rm -rf "$o"; done',
        )
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@operation()
def files(specs: dict[str, list[str]], live: dict[str, Any]):
    """Pull mode's files ({path: [text, mode]}), root:root with their modes: a file that differs is
    uploaded to the stage, written next to its place and renamed over it (never through a link);
    one whose owner or mode alone differs is fixed in place."""
    changed, attrs = [], []
    for path in sorted(specs):
        text, mode = specs[path]
        now = live.get(path)
        if not isinstance(now, dict) or now["sha256"] != sha256(text):
            changed.append(path)
        elif now["mode"] != mode or now["owner"] != "0:0":
            attrs.append(path)
    if not changed and not attrs:
        host.noop("pull mode's inventory, certificates and units are current")
        return
    steps = [f"chown root:root {q(p)}; chmod {specs[p][1]} {q(p)}" for p in attrs]
    if not changed:
        yield "set -e; " + "; ".join(steps)
        return
    d = stage("files")
    yield StringCommand(f"umask 077 && mkdir {d}", **UNPRIVILEGED)
    for i, path in enumerate(changed):
        yield FileUploadCommand(BytesIO(specs[path][0].encode()), f"{d}/{i}", **UNPRIVILEGED)
    for i, path in enumerate(changed):
        new = q(f"{path}.dockguard-new")
        steps.append(f'install -D -o root -g root -m {specs[path][1]} "$s/{i}" {new}; mv -Tf {new} {q(path)}')
    yield StringCommand(_in_stage(d, "; ".join(steps)))


@operation()
def stale(paths: list[str]):
    """Files of an earlier install that pull mode no longer needs (a rotation's CA once it is over,
    a registry no longer listed), and the directories they leave empty."""
    if not paths:
        host.noop("nothing of an earlier install is left over")
        return
    yield f"rm -f {' '.join(q(p) for p in paths)} && find {pull.ETC} -mindepth 1 -type d -empty -delete"


@operation()
def timer(reload: bool, enabled: str, active: str):
    """dockguard-pull.timer enabled and running; systemd reloaded (and the timer restarted) when a unit changed."""
    steps = ["systemctl daemon-reload"] if reload else []
    if enabled != "enabled":
        steps.append(f"systemctl enable {pull.TIMER}")
    if active != "active":
        steps.append(f"systemctl start {pull.TIMER}")
    elif reload:
        steps.append(f"systemctl restart {pull.TIMER}")
    if not steps:
        host.noop(f"{pull.TIMER} is enabled and active")
        return
    yield " && ".join(steps)


# Where systemd keeps a Persistent= timer's last trigger (removed with the timer).
TIMER_STAMP = f"/var/lib/systemd/timers/stamp-{pull.TIMER}"


@operation()
def removed(live: dict[str, Any], textfile_dirs: list[str]):
    """Everything pull install made, gone: the timer and service (a run in progress finishes
    first), the venv, the inventory and certificates, the results and the metrics file; the shared
    parents /etc/dockguard and /var/lib/dockguard only if that leaves them empty."""
    timer_on = (live.get("timer") or {}).get("enabled") not in (None, "none", "not-found")
    units = [p for p in pull.UNITS if live["files"].get(p) is not None]
    dirs = [p for p, _, owned in pull.DIRECTORIES if owned and live["dirs"].get(p) is not None]
    if not (timer_on or units or dirs or live.get("prom")):
        host.noop("pull mode is not installed")
        return
    proms = " ".join(q(f"{d}/{metrics.PROM_FILE}") for d in textfile_dirs)
    yield (
        f"systemctl disable --now {pull.TIMER} >/dev/null 2>&1; "
        f"if [ -f {pull.LOCK} ]; then exec 9>>{pull.LOCK}; flock -w 3600 9; fi; "
        f"systemctl stop {pull.SERVICE} >/dev/null 2>&1; "
        f"rm -f {' '.join(pull.UNITS)} && systemctl daemon-reload && "
        f"{{ systemctl reset-failed {pull.SERVICE} {pull.TIMER} >/dev/null 2>&1; true; }} && "
        f"rm -rf {pull.OPT} {pull.ETC} {pull.STATE} && rm -f {proms} {q(TIMER_STAMP)} && "
        "{ rmdir /etc/dockguard /var/lib/dockguard 2>/dev/null; true; }"
    )


# --------------------------------------------------------------------------- the deploy


def install(opts: pull.Options) -> None:
    name = host.name
    try:
        specs = pull.host_files(name, host.data.dict(), opts)
    except Exception as e:  # `dockguard pull install` refused it before any host was touched
        failed(name="dockguard pull: this host's settings can go to the host", why=str(e))
        return
    live = host.get_fact(PullState, files=sorted(specs), textfile_dirs=[opts.textfile_dir])
    if not live:  # the fact failed: pyinfra has failed this host and said why
        return
    try:
        target = pull.target_of(name, live["python"])
        wheels, digest = pull.wheel_set(target)
    except Exception as e:  # pip download timing out, a full cache disk...: this host fails alone
        failed(name="dockguard pull: dockguard can run on this host",
               why=str(e) if isinstance(e, pull.PullError) else f"{type(e).__name__}: {e}")  # fmt: skip
        return
    directories(name="dockguard pull: /opt/dockguard-pull, /etc/dockguard/pull, /var/lib/dockguard/pull",
                live=live["dirs"])  # fmt: skip
    venv(name=f"dockguard pull: dockguard {__version__} for Python {target.python} in {pull.VENV}", wheels=wheels,
         digest=digest, python=live["python"]["path"], live=live)  # fmt: skip
    files(name="dockguard pull: the host's inventory, the CA's certificates, pull.json and the units",
          specs={p: [t, m] for p, (t, m) in specs.items()}, live=live["files"])  # fmt: skip
    wanted = set(specs)
    left = sorted(p for kind, p in live["found"] if kind != "d" and p not in wanted)
    earlier = _configured_textfile_dir(live["config"])
    if earlier and earlier != opts.textfile_dir:  # the metrics moved: node_exporter must not serve the old file
        left.append(f"{earlier}/{metrics.PROM_FILE}")
    stale(name="dockguard pull: files of an earlier install removed", paths=left)
    units_changed = any(not isinstance(live["files"].get(p), dict) or live["files"][p]["sha256"] != sha256(specs[p][0])
                        for p in pull.UNITS)  # fmt: skip
    t = live["timer"] or {}
    timer(name=f"dockguard pull: {pull.TIMER} enabled and started", reload=units_changed,
          enabled=t.get("enabled", "none"), active=t.get("active", "unknown"))  # fmt: skip


def _configured_textfile_dir(config: str | None) -> str | None:
    """The textfile directory an install recorded in pull.json (None when it cannot be read)."""
    try:
        value = json.loads(config or "")["textfile_dir"]
        return pull.check_textfile_dir(value)
    except (ValueError, KeyError, TypeError, pull.PullError):
        return None


def remove(opts: pull.Options) -> None:
    live = host.get_fact(PullState, files=list(pull.UNITS), textfile_dirs=[opts.textfile_dir])
    if not live:
        return
    dirs = [opts.textfile_dir]
    configured = _configured_textfile_dir(live["config"])
    if configured and configured not in dirs:
        dirs.append(configured)
    removed(name="dockguard pull: removed (timer, service, venv, inventory, certificates, results, metrics)",
            live=live, textfile_dirs=dirs)  # fmt: skip


def status() -> None:
    """Hand the host's last result (raw) to the operator's machine: DOCKGUARD_PULL_STATUS_DIR."""
    read = host.get_fact(PullResult)
    if not read:  # not read (unreachable, the fact failed): that host stays unchecked
        return
    directory = os.environ.get("DOCKGUARD_PULL_STATUS_DIR")
    if not directory:
        raise DeployError("DOCKGUARD_PULL_STATUS_DIR is not set: `dockguard pull status` runs this deploy")
    out = Path(directory) / f"{hashlib.sha256(host.name.encode()).hexdigest()}.json"
    out.write_text(json.dumps({"host": host.name, **read}))


def deploy() -> None:
    """The body of dockguard/pull_deploy.py, for the current host."""
    compat.install_speedups()
    action = os.environ.get("DOCKGUARD_PULL_ACTION", "install")
    opts = pull.Options.from_env()
    if action == "status":
        status()
    elif action == "remove":
        remove(opts)
    elif action == "install":
        install(opts)
    else:
        raise ValueError(f"DOCKGUARD_PULL_ACTION must be install, remove or status, got {action!r}")
