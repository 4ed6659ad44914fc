"""Pull mode: each Docker host checks itself on a systemd timer and reports to the monitoring.

    dockguard pull install INVENTORY [--limit HOST|GROUP|GLOB ...] [--fix] [--on-calendar hourly]
                           [--textfile-dir DIR] [--cis 1.8]
    dockguard pull status  INVENTORY [--limit ...] [--json] [--max-age 2h] [--cis 1.8]
    dockguard pull remove  INVENTORY [--limit ...]
    dockguard pull run     INVENTORY [--fix] ...     (what the unit runs on the host)

``install`` is a pyinfra deploy (dockguard/pull_deploy.py) run from the operator's machine over the
inventory's SSH settings, so one host that fails fails alone, and a second install changes
nothing. It gives each host, under fixed root-owned paths:

    /opt/dockguard-pull/venv -> venvs/ID   dockguard and its dependencies (a venv made with
                                           python3 -m venv --without-pip, filled by pip run from
                                           its own wheel with --no-index: the host needs no network)
    /etc/dockguard/pull/inventory.py       the host's own inventory (0600): [("@local", its data)]
    /etc/dockguard/pull/pki/               the CA's public certificates only (never its key)
    /etc/dockguard/pull/registries/        the registries' CA certificates
    /etc/dockguard/pull/pull.json          how pull mode was installed (for remove and the reader)
    /var/lib/dockguard/pull/last.json      the last run's result (JSON)
    TEXTFILE_DIR/dockguard.prom            the same as Prometheus metrics (node_exporter)
    /etc/systemd/system/dockguard-pull.{service,timer}

The wheels come from a wheelhouse built here, on the operator's machine, for each host's Python
version and platform (asked of the host first), cached in the operator's state directory, plus a
wheel of this dockguard. ``run`` is the drift check (``dockguard drift``, with --fix ``drift
--fix`` and a check after it) of the host against itself, then its result written atomically.
``status`` reads every host's last result over SSH into the usual drift table, with the exit
codes of ``dockguard drift``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import os
import posixpath
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import CHECKOUT, PACKAGE, ROOT, TEMPLATES, __version__, cli, controls, fleet, metrics, pki, settings

# --------------------------------------------------------------------------- paths on the host

OPT = "/opt/dockguard-pull"
VENV = f"{OPT}/venv"  # a symlink to venvs/ID, switched in one rename
VENVS = f"{OPT}/venvs"
VENV_MARK = ".dockguard-wheels"  # in a venv: the digest of the wheels it was made from, once complete
ETC = "/etc/dockguard/pull"
INVENTORY = f"{ETC}/inventory.py"
PKI = f"{ETC}/pki"
REGISTRIES = f"{ETC}/registries"
CONFIG = f"{ETC}/pull.json"
STATE = "/var/lib/dockguard/pull"
LAST = f"{STATE}/last.json"
LOCK = f"{STATE}/run.lock"
LYNIS = f"{STATE}/lynis"
UNIT_DIR = "/etc/systemd/system"
SERVICE, TIMER = "dockguard-pull.service", "dockguard-pull.timer"
UNITS = (f"{UNIT_DIR}/{SERVICE}", f"{UNIT_DIR}/{TIMER}")
# (path, mode, owned): pull mode's own directories are root:root with this mode; a parent it
# may share with dockguard's push runs is only made when missing.
DIRECTORIES = (
    (OPT, "755", True),
    (VENVS, "755", True),
    ("/etc/dockguard", "755", False),
    (ETC, "700", True),
    ("/var/lib/dockguard", "755", False),
    (STATE, "700", True),
)
MIN_PYTHON = (3, 11)  # pyproject.toml's requires-python
MAX_AGE = "2h"
FORMAT = 1  # of last.json


class PullError(Exception):
    """Pull mode cannot be given to a host as asked: the message names the host, the setting and why."""


@dataclass(frozen=True)
class Options:
    fix: bool = False
    on_calendar: str = "hourly"
    textfile_dir: str = metrics.TEXTFILE_DIR
    cis: str = controls.DEFAULT_VERSION

    ENV = "DOCKGUARD_PULL_OPTIONS"

    def to_env(self) -> str:
        return json.dumps({"fix": self.fix, "on_calendar": self.on_calendar, "textfile_dir": self.textfile_dir,
                           "cis": self.cis})  # fmt: skip

    @classmethod
    def from_env(cls) -> Options:
        raw = os.environ.get(cls.ENV)
        return cls(**json.loads(raw)) if raw else cls()


def check_textfile_dir(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or not value.startswith("/"):
        raise PullError(f"--textfile-dir must be an absolute path without control characters, got {value!r}")
    if posixpath.normpath(value) != value or value == "/":
        raise PullError(f"--textfile-dir must be a normalised absolute directory (no '..', '.', '//'), got {value!r}")
    return value


# --------------------------------------------------------------------------- the wheelhouse


@dataclass(frozen=True)
class Target:
    """What a host runs dockguard with: its Python (major.minor), machine and glibc version."""

    python: str
    machine: str
    glibc: str

    @property
    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.machine}-glibc{self.glibc}"


def target_of(name: str, probe: dict[str, Any] | None) -> Target:
    """The host's Target from PullState's python probe; PullError names what is missing."""
    if not probe:
        raise PullError(f"{name}: python3 is not installed: pull mode runs dockguard with the host's own python3 "
                        "(Debian: apt-get install python3)")  # fmt: skip
    if probe.get("implementation") != "cpython":
        raise PullError(f"{name}: python3 is {probe.get('implementation')}, not CPython: the wheels are CPython's")
    version = tuple(int(x) for x in probe["version"].split("."))
    if version < MIN_PYTHON:
        raise PullError(f"{name}: python3 is {probe['version']}: dockguard needs Python "
                        f"{'.'.join(map(str, MIN_PYTHON))} or newer")  # fmt: skip
    if probe.get("libc") != "glibc" or not re.fullmatch(r"2\.[0-9]+", probe.get("libc_version") or ""):
        raise PullError(f"{name}: the host's C library is {probe.get('libc') or 'unknown'} "
                        f"{probe.get('libc_version') or ''}: the wheels are built for glibc (manylinux)")  # fmt: skip
    if not re.fullmatch(r"[a-z0-9_]{1,20}", probe.get("machine") or ""):
        raise PullError(f"{name}: unexpected machine type {probe.get('machine')!r}")
    if int(probe["libc_version"].split(".")[1]) < 17:
        raise PullError(f"{name}: glibc {probe['libc_version']} is older than manylinux2014's 2.17")
    return Target(probe["version"], probe["machine"], probe["libc_version"])


def platform_tags(target: Target) -> list[str]:
    """Every manylinux tag a wheel for this glibc and machine may carry, newest first
    (manylinux_2_N, and the legacy aliases manylinux2014, 2010 and 1)."""
    minor = int(target.glibc.split(".")[1])
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for n in range(minor, 4, -1):
        tags.append(f"manylinux_2_{n}_{target.machine}")
        if n in aliases:
            tags.append(f"{aliases[n]}_{target.machine}")
    return tags


def requirements() -> list[str]:
    """dockguard's own dependencies (no extras): from pyproject.toml in a checkout, else from the
    installed package's metadata."""
    if CHECKOUT is not None:
        import tomllib

        return list(tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["dependencies"])
    reqs = importlib.metadata.requires("dockguard") or []
    return [r for r in reqs if ";" not in r or "extra" not in r.split(";", 1)[1]]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> list[str]:
    """name==version of every distribution this machine runs dockguard with (so the hosts run the
    same versions), except dockguard itself."""
    seen: dict[str, str] = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name and _canonical(name) not in seen and _canonical(name) != "dockguard":
            seen[_canonical(name)] = f"{name}=={d.version}"
    return sorted(seen.values(), key=str.lower)


def pip_version() -> str:
    return importlib.metadata.version("pip")


def download_command(target: Target, reqs: list[str], constraints_file: str, dest: str) -> list[str]:
    """pip download of binary wheels only, for the host's Python and platform (never this machine's)."""
    py = target.python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", target.python, "--implementation", "cp",
           "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none"]  # fmt: skip
    for tag in platform_tags(target):
        cmd += ["--platform", tag]
    return cmd + ["--constraint", constraints_file, "--dest", dest, *reqs, f"pip=={pip_version()}"]


def cache_root() -> Path:
    """The operator's cache of wheels ($XDG_STATE_HOME/dockguard/pull, private)."""
    root = Path(os.environ.get("DOCKGUARD_PULL_CACHE") or cli.state_dir() / "pull")
    cli.private_dir(root)
    return root


COMPLETE = ".complete"
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()  # the deploy runs for every host at once (greenlets: threading is patched)


def _lock_for(key: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(line for line in text.strip().splitlines()[-lines:])


KEEP = 3  # cache entries kept of each kind (a target's wheelhouses, dockguard's wheels)


def _publish(tmp: Path, final: Path, kind: str) -> Path:
    """Move a finished cache entry into place (another process that got there first wins), and
    drop all but the KEEP newest entries of its ``kind`` (name prefix)."""
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / COMPLETE).is_file():
            raise
    entries = sorted((p for p in final.parent.glob(f"{kind}*") if p != final and (p / COMPLETE).is_file()),
                     key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    for old in entries[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def wheelhouse(target: Target) -> Path:
    """The dependencies' wheels for ``target``, downloaded once (cached per Python version,
    platform, dependency list and the versions pinned here)."""
    reqs, pins = requirements(), constraints()
    digest = hashlib.sha256(json.dumps([target.key, reqs, pins, pip_version()]).encode()).hexdigest()[:16]
    root = cache_root() / "wheelhouses"
    final = root / f"{target.key}-{digest}"
    if (final / COMPLETE).is_file():
        return final
    with _lock_for(str(final)):
        if (final / COMPLETE).is_file():
            return final
        root.mkdir(mode=0o700, exist_ok=True)
        tmp = root / f".{final.name}.{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        try:
            pinned = tmp / ".constraints.txt"
            pinned.write_text("\n".join(pins) + "\n")
            r = subprocess.run(download_command(target, reqs, str(pinned), str(tmp)), capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, timeout=1800)  # fmt: skip
            if r.returncode != 0:
                raise PullError(f"pip could not download wheels for Python {target.python} ({target.machine}, glibc "
                                f"{target.glibc}) at the versions this machine runs:\n{_tail(r.stderr)}")  # fmt: skip
            pinned.unlink()
            wheels = sorted(p.name for p in tmp.iterdir())
            if not wheels or any(not w.endswith(".whl") for w in wheels):
                raise PullError(f"pip download left something else than wheels: {wheels}")
            (tmp / COMPLETE).write_text("\n".join(wheels) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return _publish(tmp, final, f"{target.key}-")


# ---- a wheel of this dockguard, byte for byte the same for the same code


def _record(entries: dict[str, bytes], record_name: str) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for name in sorted(entries):
        digest = base64.urlsafe_b64encode(hashlib.sha256(entries[name]).digest()).rstrip(b"=").decode()
        w.writerow([name, f"sha256={digest}", len(entries[name])])
    w.writerow([record_name, "", ""])
    return out.getvalue().encode()


def write_wheel(path: Path, entries: dict[str, bytes]) -> None:
    """A wheel of ``entries`` ({archive name: bytes}, RECORD excluded) that depends on nothing but
    them: sorted, fixed timestamps and modes, RECORD computed here, .dist-info last."""
    info = {n.split("/", 1)[0] for n in entries if n.split("/", 1)[0].endswith(".dist-info")}
    if len(info) != 1:
        raise PullError(f"a wheel needs exactly one .dist-info directory, got {sorted(info)}")
    record_name = f"{info.pop()}/RECORD"
    entries = {n: d for n, d in entries.items() if n != record_name}
    order = sorted(entries, key=lambda n: (n.split("/", 1)[0].endswith(".dist-info"), n))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in [*order, record_name]:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, entries[name] if name != record_name else _record(entries, record_name))


def _wheel_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir() and not i.filename.endswith("/RECORD")}


def _skip(rel: str) -> bool:
    parts = rel.split("/")
    return "__pycache__" in parts or rel.endswith((".pyc", ".pyo")) or any(p.startswith(".") for p in parts)


SOURCES = ("pyproject.toml", "dockguard", "operations", "templates", "tests/cis")


def _source_files(checkout: Path) -> dict[str, bytes]:
    """What setuptools packages from a checkout (pyproject.toml's packages and package data)."""
    out = {}
    for top in SOURCES:
        p = checkout / top
        paths = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for q in paths:
            rel = q.relative_to(checkout).as_posix()
            if not _skip(rel):
                out[rel] = q.read_bytes()
    return out


def _installed_entries() -> dict[str, bytes]:
    """The installed dockguard's files (package and .dist-info), as a wheel holds them."""
    dist = importlib.metadata.distribution("dockguard")
    out = {}
    for f in dist.files or []:
        rel = f.as_posix()
        top = rel.split("/", 1)[0]
        if rel.startswith("..") or _skip(rel) or not (top == "dockguard" or top.endswith(".dist-info")):
            continue
        if top.endswith(".dist-info") and rel.split("/")[-1] in ("RECORD", "INSTALLER", "REQUESTED",
                                                                    "direct_url.json"):  # fmt: skip
            continue
        out[rel] = Path(dist.locate_file(f)).read_bytes()
    return out


def _digest(entries: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(entries):
        h.update(name.encode() + b"\0" + hashlib.sha256(entries[name]).digest())
    return h.hexdigest()[:16]


def dockguard_wheel() -> Path:
    """A wheel of the dockguard running here: built from this checkout (pip wheel, in a copy of
    the sources, so the checkout gets no build/ directory), or repacked from the installed
    package. Cached by the digest of its sources."""
    if CHECKOUT is not None:
        sources = _source_files(CHECKOUT)
        where = cache_root() / "dockguard" / f"src-{_digest(sources)}"
    else:
        sources = _installed_entries()
        where = cache_root() / "dockguard" / f"installed-{_digest(sources)}"
    found = sorted(where.glob("dockguard-*.whl")) if (where / COMPLETE).is_file() else []
    if found:
        return found[0]
    with _lock_for(str(where)):
        found = sorted(where.glob("dockguard-*.whl")) if (where / COMPLETE).is_file() else []
        if found:
            return found[0]
        where.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = where.parent / f".{where.name}.{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        try:
            entries = _build_checkout(sources) if CHECKOUT is not None else sources
            meta = next(d for n, d in entries.items() if n.endswith(".dist-info/METADATA"))
            version = re.search(rb"^Version: (\S+)$", meta, re.M)[1].decode()
            path = tmp / f"dockguard-{version}-py3-none-any.whl"
            write_wheel(path, entries)
            (tmp / COMPLETE).write_text(path.name + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return _publish(tmp, where, where.name.split("-", 1)[0] + "-") / path.name


def _build_checkout(sources: dict[str, bytes]) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="dockguard-wheel-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        for rel, data in sources.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                            "--wheel-dir", str(out), str(src)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=900)  # fmt: skip
        built = sorted(out.glob("dockguard-*.whl")) if r.returncode == 0 else []
        if not built:
            raise PullError(f"a wheel of dockguard could not be built from {CHECKOUT}:\n{_tail(r.stderr)}")
        return _wheel_entries(built[0])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_set(target: Target) -> tuple[list[dict[str, str]], str]:
    """(the wheels a host with ``target`` gets: [{name, path, sha256}], their digest)."""
    house = wheelhouse(target)
    paths = [p for p in sorted(house.glob("*.whl")) if not p.name.startswith("dockguard-")]
    paths.append(dockguard_wheel())
    wheels = [{"name": p.name, "path": str(p), "sha256": _sha256(p)} for p in paths]
    if not any(w["name"].startswith("pip-") for w in wheels):
        raise PullError(f"the wheelhouse {house} has no pip wheel")
    return wheels, wheels_digest(target, wheels)


def wheels_digest(target: Target, wheels: list[dict[str, str]]) -> str:
    lines = [f"python {target.python} {target.machine} glibc {target.glibc}"]
    lines += sorted(f"{w['sha256']}  {w['name']}" for w in wheels)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# --------------------------------------------------------------------------- what a host gets

_INVENTORY_HEAD = '''"""dockguard pull mode: the inventory of {name} for a run against itself (pyinfra's @local),
written by `dockguard pull install` on the operator's machine from the operator's inventory
(its host and group data, with the paths below pointing at this host's copies). The next
install replaces it: change the operator's inventory instead."""

import json

'''


def carried(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The host data pull mode carries to the host: dockguard's settings (settings.SCHEMA) and
    ssh_hostname, which its certificate names. Nothing else: not how the operator's machine reaches
    it (ssh_*, pyinfra's _* arguments such as _sudo), nor another deploy's data (a password, a
    token). Plain data only: anything else is refused, naming the host and the key."""
    out = {}
    for key in sorted(data):
        if key not in settings.SCHEMA and key != "ssh_hostname":
            continue
        try:
            json.dumps(data[key], allow_nan=False)
        except (TypeError, ValueError) as e:
            raise PullError(f"{name}: {key}: {e}: only plain data (strings, numbers, booleans, lists, mappings) can "
                            "go to the host's own inventory") from None  # fmt: skip
        out[key] = data[key]
    return out


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def host_files(name: str, data: dict[str, Any], opts: Options) -> dict[str, tuple[str, str]]:
    """{path on the host: (text, mode)} of everything pull install writes for host ``name`` but
    the venv, from its data in the operator's inventory; PullError (naming the host, the setting
    and why) for what cannot be carried. The CA's key is never among them."""
    if name.startswith("@"):
        raise PullError(f"{name}: pull mode is installed on hosts the inventory reaches by their own name (over SSH), "
                        f"not through pyinfra's {name.split('/')[0]} connector")  # fmt: skip
    problems = settings.problems(data)
    if data.get("dockguard_host_name") is not None:
        problems.append("dockguard_host_name: only a host's own inventory in pull mode carries it (pull install "
                        "writes it there)")  # fmt: skip
    if problems:
        raise PullError("; ".join(f"{name}: {p}" for p in problems))
    cfg = settings.resolve(data)
    host_data = carried(name, data)
    files: dict[str, tuple[str, str]] = {}
    registries = []
    for i, reg in enumerate(cfg["docker_registries"]):
        reg = dict(reg)
        if reg.get("ca"):
            src = Path(reg["ca"]).expanduser()
            try:
                text = src.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise PullError(f"{name}: docker_registries[{i}].ca: {src} cannot be read: {e}") from None
            dest = f"{REGISTRIES}/{i}-{_file_name(reg['address'])}.crt"
            files[dest] = (text, "644")
            reg["ca"] = dest
        registries.append(reg)
    if "docker_registries" in host_data or registries:
        host_data["docker_registries"] = registries
    if cfg["docker_tcp_listen"] or any(r.get("client_certificate") for r in cfg["docker_registries"]):
        setting = "docker_tcp_listen" if cfg["docker_tcp_listen"] else "docker_registries"
        files.update(ca_files(name, pki.pki_dir(cfg), setting))
    host_data |= {"dockguard_host_name": name, "dockguard_pki_dir": PKI, "lynis_reports_dir": LYNIS}
    # docker_registries was checked as the operator has it (its CA files are read here, not there).
    problems = settings.problems({k: v for k, v in host_data.items() if k != "docker_registries"})
    if problems:
        raise PullError(f"{name}: its settings as the host would read them: {'; '.join(problems)}")
    files[INVENTORY] = (_INVENTORY_HEAD.format(name=name) + "dockguard_pull = [(\"@local\", json.loads("
                        f"{json.dumps(host_data, sort_keys=True, indent=1)!r}))]\n", "600")  # fmt: skip
    config = {"host": name, "fix": opts.fix, "on_calendar": opts.on_calendar, "textfile_dir": opts.textfile_dir,
              "cis": opts.cis, "dockguard_version": __version__}  # fmt: skip
    files[CONFIG] = (json.dumps(config, indent=2, sort_keys=True) + "\n", "600")
    for unit, text in render_units(name, opts).items():
        files[f"{UNIT_DIR}/{unit}"] = (text, "644")
    return files


def ca_files(name: str, directory: Path, setting: str = "docker_tcp_listen") -> dict[str, tuple[str, str]]:
    """The CA's public certificates (and a rotation's stage) as pull mode keeps them on a host,
    in pki's layout; never a key. The CA must exist: pull mode never makes one."""
    current = pki.ca_dir(directory) / "ca.pem"
    if not current.is_file():
        raise PullError(f"{name}: {setting}: there is no dockguard CA in {directory} yet: run dockguard apply "
                        "for it first (pull mode never makes a CA)")  # fmt: skip
    files = {f"{PKI}/ca/current/ca.pem": (current.read_text(), "644")}
    rotation = pki.rotation(directory)
    if rotation:
        files[f"{PKI}/ca/rotation.json"] = (json.dumps(rotation, indent=2) + "\n", "644")
        files[f"{PKI}/ca/next/ca.pem"] = ((pki.next_dir(directory) / "ca.pem").read_text(), "644")
    for path, (text, _) in files.items():
        if "PRIVATE KEY" in text:
            raise PullError(f"{name}: {path} would hold a private key: refused")
    return files


def render_units(name: str, opts: Options) -> dict[str, str]:
    """The service and timer for ``name``: every value quoted for systemd (dockguard/systemd.py)."""
    import jinja2

    argv = [f"{VENV}/bin/python", "-I", "-m", "dockguard", "pull", "run", INVENTORY, "--json-out", LAST,
            "--textfile-dir", opts.textfile_dir, "--lock", LOCK, "--cis", opts.cis]  # fmt: skip
    argv += ["--fix"] if opts.fix else []
    what = "drift check and correction" if opts.fix else "drift check"
    data = {
        "description": cli.unit_text(f"dockguard pull mode: {what} of {name} against itself", "the host name"),
        "calendar_description": cli.unit_text(opts.on_calendar, "--on-calendar"),
        "on_calendar": cli._no_control(opts.on_calendar, "--on-calendar"),
        "fix": opts.fix,
        "exec_start": " ".join(cli.unit_word(a, "the command line") for a in argv),
        "working_directory": cli.unit_path(STATE, "the state directory"),
        "environment": " ".join(
            cli.unit_word(f"{k}={v}", "the environment", exec_line=False)
            for k, v in (("HOME", "/root"), ("PYINFRA_PROGRESS", "off"))
        ),  # fmt: skip
        "inventory": INVENTORY,
        "last": LAST,
        "prom": f"{opts.textfile_dir}/{metrics.PROM_FILE}",
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)
    return {unit: env.get_template(f"etc/systemd/system/{unit}.j2").render(**data) for unit in (SERVICE, TIMER)}


def prepare(inventory, names: list[str], opts: Options) -> dict[str, dict[str, tuple[str, str]]]:
    """Every selected host's files, or one PullError listing every host's problem (before any
    host is touched)."""
    out, problems = {}, []
    for h in inventory:
        if h.name in names:
            try:
                out[h.name] = host_files(h.name, h.data.dict(), opts)
            except PullError as e:
                problems.append(str(e))
    if problems:
        raise PullError("pull mode cannot be installed (nothing was changed on any host):\n  " + "\n  ".join(problems))
    return out


# --------------------------------------------------------------------------- the run on the host


def _now_iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _renamed(result: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """A drift result of the host's own inventory (@local) under the host's inventory name."""
    if result is None:
        return None
    hosts = result.get("hosts", {})
    return result | {"hosts": {(name if h == settings.PULL_HOST else h): v for h, v in hosts.items()}}


def record(name: str, fix: bool, version: str, started: float, finished: float, result: dict[str, Any] | None,
           fixed: dict[str, Any] | None, errors: list[str]) -> dict[str, Any]:  # fmt: skip
    """The result of one pull-mode run (last.json): the drift result of the final check (as
    `dockguard drift --json` has it, under the host's inventory name), what --fix corrected, when,
    how long, and whether it succeeded and checked the host."""
    result, fixed = _renamed(result, name), _renamed(fixed, name)
    host = (result or {}).get("hosts", {}).get(name) or {}
    checked = host.get("status") in ("clean", "drift") and not (result or {}).get("errors") and not errors
    fix_ok = fixed is None or fixed.get("exit_code") == cli.EXIT_CLEAN
    code = cli.EXIT_UNCHECKED if result is None or errors or not fix_ok else result["exit_code"]
    return {
        "format": FORMAT,
        "host": name,
        "mode": "fix" if fix else "check",
        "dockguard_version": __version__,
        "cis_version": version,
        "started": _now_iso(started),
        "finished": _now_iso(finished),
        "finished_unix": round(finished, 3),
        "duration_seconds": round(finished - started, 3),
        "checked": bool(checked),
        "success": bool(checked and fix_ok),
        "exit_code": code,
        "errors": errors,
        "result": result,
        "fix": fixed,
    }


def _own(inventory: str) -> tuple[str, dict[str, Any] | None]:
    """(this host's inventory name, its resolved settings) from its own inventory; when that cannot
    be read (the run then checks nothing), the name pull.json beside it records, else the machine's."""
    try:
        cfg = fleet.host_settings(fleet.load(inventory)).get(settings.PULL_HOST)
        if cfg and cfg.get("dockguard_host_name"):
            return cfg["dockguard_host_name"], cfg
    except Exception:
        cfg = None
    try:
        name = json.loads((Path(inventory).parent / Path(CONFIG).name).read_text())["host"]
        if isinstance(name, str) and name:
            return name, cfg
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return socket.gethostname(), cfg


def write_results(rec: dict[str, Any], json_path: str, textfile_dir: str,
                  cfg: dict[str, Any] | None) -> tuple[list[str], bool]:  # fmt: skip
    """last.json and the metrics, each written atomically; what could not be written, and whether
    that fails the run. A file that cannot be written is removed rather than left saying what an
    older run found: `pull status` then says there is no result, and the metrics' absence alerts."""
    problems, failed = [], False
    targets = [(Path(json_path), lambda: (json.dumps(rec, indent=2) + "\n").encode(), 0o600)]
    if Path(textfile_dir).is_dir():
        targets.append((Path(textfile_dir) / metrics.PROM_FILE, lambda: metrics.render(rec, cfg).encode(), 0o644))
    else:
        problems.append(f"{textfile_dir} does not exist (is prometheus-node-exporter installed?): no metrics written")
    for path, data, mode in targets:
        try:
            metrics.write_atomic(path, data(), mode)
        except OSError as e:
            failed = True
            problems.append(f"{path}: {e}")
            try:
                path.unlink(missing_ok=True)
            except OSError as gone:
                problems.append(f"{path}: the last run's file could not be removed either ({gone})")
    return problems, failed


def run(inventory: str, fix: bool, json_path: str, textfile_dir: str, lock_path: str,
        version: str = controls.DEFAULT_VERSION) -> int:  # fmt: skip
    """One pull-mode run on the host: the drift check against itself (with ``fix``: correct, then
    check again, so the result is the host's state after the run), then the result as JSON and
    metrics. Exit: the final check's code (0 clean, 2 drift, 1 not checked or not corrected), 75
    when another run holds the lock (nothing written: that run writes)."""
    started = time.time()
    name, cfg = _own(inventory)
    result = fixed = None
    errors: list[str] = []
    try:
        with cli.lock(lock_path) as held:
            if not held:
                print(f"dockguard pull: another run is in progress (it holds {lock_path}); exit {cli.EXIT_BUSY}",
                      file=sys.stderr)  # fmt: skip
                return cli.EXIT_BUSY
            result = cli.check(inventory, [])
            if fix and result["exit_code"] == cli.EXIT_DRIFT:
                fixed = cli.fix(inventory, [], result)
                result = cli.check(inventory, [])
    except (cli.LockError, OSError) as e:
        errors.append(f"the run could not take its lock: {e}")
    except Exception as e:  # never leave a result that looks like the last good one
        errors.append(f"the run stopped: {cli._why(e)}")
    for r in (result, fixed):
        if r is not None:
            cli.numbered(r, version)
    rec = record(name, fix, version, started, time.time(), result, fixed, errors)
    if fixed is not None:
        print(cli.text_report(_renamed(fixed, name), fixing=True))
    print(cli.text_report(rec["result"] or cli._result(inventory, {}, errors), fixing=False))
    problems, failed = write_results(rec, json_path, textfile_dir, cfg)
    for problem in problems:
        print(f"dockguard pull: {problem}", file=sys.stderr)
    return cli.EXIT_UNCHECKED if failed else rec["exit_code"]


# --------------------------------------------------------------------------- status


def parse_age(value: str) -> int:
    """'90s', '45m', '2h', '1d' (or plain seconds) in seconds."""
    m = re.fullmatch(r"([0-9]+)([smhd]?)", value.strip())
    if not m or int(m[1]) == 0:
        raise PullError(f"--max-age must be a duration such as 90m, 2h or 1d, got {value!r}")
    return int(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        minutes = seconds % 3600 // 60
        return f"{seconds // 3600} h" + (f" {minutes} min" if minutes else "")
    return f"{seconds // 86400} days"


def host_status(name: str, read: dict[str, Any], max_age: int) -> dict[str, Any]:
    """One host's entry of the drift table (as `dockguard drift` has it) from what PullResult read
    there: its last result, parsed here. Unchecked, never clean, when there is none, it cannot be
    read, it is another host's, it is older than ``max_age`` seconds, or that run did not check it."""

    def unchecked(*why: str, last: dict | None = None) -> dict[str, Any]:
        return {"status": "unchecked", "errors": list(why), "drift": [], "last_run": last}

    timer = read.get("timer") or "unknown"
    if not read.get("present"):
        return unchecked(f"pull mode has no result here ({LAST} does not exist): not installed (dockguard pull "
                         f"install), or its first run has not come yet (dockguard-pull.timer is {timer}; systemctl "
                         "start dockguard-pull.service runs one now)")  # fmt: skip
    try:
        rec = json.loads(read.get("text") or "")
        if not isinstance(rec, dict) or rec.get("format") != FORMAT:
            raise ValueError(f"not a pull-mode result of format {FORMAT}")
        finished, host = float(rec["finished_unix"]), rec["result"]["hosts"].get(name) if rec["result"] else None
        if rec["host"] != name:
            raise ValueError(f"it is the result of {rec['host']!r}, not of {name!r}")
        if host is not None and (host.get("status") not in ("clean", "drift", "unchecked", "failed")
                                 or not isinstance(host.get("drift", []), list)):  # fmt: skip
            raise ValueError("its host entry is not a drift result")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return unchecked(f"its last result {LAST} could not be read ({type(e).__name__}: {e})")
    age = float(read.get("now", 0)) - finished
    last = {"finished": rec.get("finished"), "age_seconds": round(age), "mode": rec.get("mode"),
            "success": bool(rec.get("success")), "duration_seconds": rec.get("duration_seconds"),
            "exit_code": rec.get("exit_code")}  # fmt: skip
    if age > max_age:
        return unchecked(f"its last result is from {rec.get('finished')} ({_ago(age)} ago), older than --max-age "
                         f"{_ago(max_age)}: is dockguard-pull.timer running? (it is {timer})", last=last)  # fmt: skip
    if age < -300:
        return unchecked(f"its last result is dated {rec.get('finished')}, in the host's future: its clock?", last=last)
    if not rec.get("checked") or host is None:
        why = [*rec.get("errors", []), *((rec.get("result") or {}).get("errors") or []), *((host or {}).get("errors")
               or [])] or ["its last run did not check it"]  # fmt: skip
        return unchecked(*why, last=last)
    entry = {"status": host["status"], "errors": list(host.get("errors", [])), "drift": list(host.get("drift", [])),
             "last_run": last}  # fmt: skip
    if not rec.get("success"):
        fixed = ((rec.get("fix") or {}).get("hosts") or {}).get(name) or {}
        entry["status"] = "failed"
        entry["errors"] = list(fixed.get("errors") or []) or ["its last run could not correct the drift it found"]
    return entry


def status(inventory: str, limit: list[str], max_age: int, version: str) -> dict[str, Any]:
    """Every selected host's last pull-mode result, as the drift table (`dockguard drift`'s shape
    and exit codes)."""
    try:
        names, unmatched = cli.select_hosts(fleet.load(inventory), limit)
    except Exception as e:
        return cli._result(inventory, {}, [f"the inventory could not be loaded: {cli._why(e)}"])
    errors = [f"--limit {p!r} matches no host or group of the inventory" for p in unmatched]
    if not names:
        errors.append("no host to check: " + ("--limit matches no host" if limit else "the inventory has no hosts"))
    if errors:
        return cli._result(inventory, {}, errors)
    with tempfile.TemporaryDirectory(prefix="dockguard-pull-status-") as out_dir:
        rc, _, stderr = run_deploy(inventory, "status", limit, Options(), env={"DOCKGUARD_PULL_STATUS_DIR": out_dir})
        found, errors = read_status_dir(out_dir)
    hosts = {}
    for name in names:
        if name in found:
            hosts[name] = host_status(name, found[name], max_age)
        else:
            why = cli._host_errors(stderr, name) or ["its last result could not be read (unreachable?): see pyinfra"]
            hosts[name] = {"status": "unchecked", "errors": why, "drift": [], "last_run": None}
    errors += cli._run_errors(rc, stderr)
    result = cli._result(inventory, hosts, errors, rc)
    cli.numbered(result, version)
    return result


def read_status_dir(out_dir: str) -> tuple[dict[str, dict], list[str]]:
    return cli.read_host_files(out_dir, lambda f, e: f"a host's status file {f.name} could not be read ({e})")


def status_text(result: dict[str, Any]) -> str:
    lines = []
    for name, h in sorted(result["hosts"].items()):
        last = h.get("last_run")
        if last:
            ok = "" if last.get("success") else ", FAILED"
            lines.append(f"{name}: last run {last['finished']} ({_ago(max(last['age_seconds'], 0))} ago, "
                         f"{last['mode']}, {last['duration_seconds']} s, exit {last['exit_code']}{ok})")  # fmt: skip
    report = cli.text_report(result, fixing=False).replace("dockguard drift check:", "dockguard pull status:", 1)
    return "\n".join(lines + [report])


# --------------------------------------------------------------------------- install and remove (pyinfra)

DEPLOY_FILE = PACKAGE / "pull_deploy.py"


def run_deploy(inventory: str, action: str, limit: list[str], opts: Options,
               env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:  # fmt: skip
    """pyinfra -y --json [--limit ...] INVENTORY pull_deploy.py, with DOCKGUARD_PULL_ACTION."""
    environ = dict(os.environ, PYINFRA_PROGRESS="off", DOCKGUARD_PULL_ACTION=action, **{Options.ENV: opts.to_env()},
                   **(env or {}))  # fmt: skip
    r = subprocess.run([cli.PYINFRA, "-y", "--json", *[a for n in limit for a in ("--limit", n)], inventory,
                        str(DEPLOY_FILE)], cwd=ROOT, env=environ, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=7200)  # fmt: skip
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return r.returncode, out, r.stderr


def _host_lines(stderr: str, name: str) -> list[str]:
    """What pyinfra said went wrong with one host: its error lines, and what a failed command of
    pull mode's said on stderr (the lines that start with "dockguard:")."""
    said = [re.sub(r"\x1b\[[0-9;]*m", "", line.strip()[len(name) + 3 :].strip())
            for line in stderr.splitlines() if line.strip().startswith(f"[{name}] ")]  # fmt: skip
    own = [line for line in said if line.startswith("dockguard:")]
    return list(dict.fromkeys(own + cli._host_errors(stderr, name)))


def deploy_report(action: str, inventory: str, names: list[str], rc: int, out: dict | None, stderr: str) -> dict:
    """Per host: done (with the operations that changed it) or failed (with pyinfra's reasons)."""
    results = (out or {}).get("results") if isinstance(out, dict) else None
    errors = cli._run_errors(rc, stderr)
    if not isinstance(results, dict):
        errors.append("pyinfra's JSON output could not be read: what was done is unknown")
        results = None
    failed = set((results or {}).get("failed_hosts", []))
    hosts = {}
    for name in names:
        changed = [op["name"] for op in (results or {}).get("operations", []) if name in op["success"]]
        errored = [op["name"] for op in (results or {}).get("operations", []) if name in op.get("error", [])]
        if results is None or name in failed or errored:
            why = _host_lines(stderr, name) or [f"failed at: {', '.join(errored)}" if errored else
                                                "see pyinfra's output"]  # fmt: skip
            hosts[name] = {"status": "failed", "changed": changed, "errors": why}
        else:
            hosts[name] = {"status": "changed" if changed else "unchanged", "changed": changed, "errors": []}
    code = 1 if errors or any(h["status"] == "failed" for h in hosts.values()) else 0
    return {"action": action, "inventory": inventory, "errors": errors, "hosts": hosts, "exit_code": code,
            "totals": (results or {}).get("totals")}  # fmt: skip


def report_text(report: dict) -> str:
    lines = [f"dockguard pull {report['action']}: {report['inventory']}"]
    lines += [f"error: {e}" for e in report["errors"]]
    for name, h in sorted(report["hosts"].items()):
        if h["status"] == "failed":
            lines.append(f"{name}: FAILED")
            lines += [f"    {e}" for e in h["errors"]]
        else:
            lines.append(f"{name}: {h['status']}")
        lines += [f"    changed: {c}" for c in h["changed"]]
    lines.append(f"exit {report['exit_code']}")
    return "\n".join(lines)


def _selected(inventory_path: str, limit: list[str]):
    inv = fleet.load(inventory_path)
    names, unmatched = cli.select_hosts(inv, limit)
    problems = [f"--limit {p!r} matches no host or group of the inventory" for p in unmatched]
    if not names:
        problems.append("no host: " + ("--limit matches no host" if limit else "the inventory has no hosts"))
    if problems:
        raise PullError("; ".join(problems))
    return inv, names


def cmd_install(args) -> int:
    try:
        opts = Options(fix=args.fix, on_calendar=cli.check_calendar(args.on_calendar),
                       textfile_dir=check_textfile_dir(args.textfile_dir), cis=args.cis)  # fmt: skip
    except (PullError, cli.UnitError) as e:  # a bad option: a usage error, as for every dockguard command
        print(f"dockguard pull install: {e}", file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        inv, names = _selected(args.inventory, args.limit)
        prepare(inv, names, opts)  # every problem of every host, before any host is touched
    except (PullError, cli.UnitError) as e:
        print(f"dockguard pull install: {e}", file=sys.stderr)
        return cli.EXIT_UNCHECKED
    rc, out, stderr = run_deploy(args.inventory, "install", args.limit, opts)
    report = deploy_report("install", args.inventory, names, rc, out, stderr)
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return report["exit_code"]


def cmd_remove(args) -> int:
    try:
        _, names = _selected(args.inventory, args.limit)
    except PullError as e:
        print(f"dockguard pull remove: {e}", file=sys.stderr)
        return cli.EXIT_UNCHECKED
    rc, out, stderr = run_deploy(args.inventory, "remove", args.limit, Options())
    report = deploy_report("remove", args.inventory, names, rc, out, stderr)
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return report["exit_code"]


def cmd_status(args) -> int:
    try:
        max_age = parse_age(args.max_age)
    except PullError as e:
        print(f"dockguard pull status: {e}", file=sys.stderr)
        return cli.EXIT_USAGE
    result = status(args.inventory, args.limit, max_age, args.cis)
    print(json.dumps(result, indent=2) if args.json else status_text(result))
    return result["exit_code"]


def cmd_run(args) -> int:
    return run(args.inventory, args.fix, args.json_out, args.textfile_dir, args.lock, args.cis)


def add_parser(sub) -> None:
    """`dockguard pull ...` (called by cli.parser)."""
    p = sub.add_parser("pull", help="pull mode: each host checks itself on a timer and writes metrics",
                       description=__doc__, formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    psub = p.add_subparsers(dest="pull_cmd", required=True)
    i = psub.add_parser("install", help="install pull mode on the hosts (a pyinfra deploy; idempotent)")
    i.add_argument("inventory")
    i.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    i.add_argument("--fix", action="store_true", help="the hosts correct the drift they find (else: report only)")
    i.add_argument("--on-calendar", default="hourly", help="when the timer runs (systemd calendar; default hourly)")
    i.add_argument("--textfile-dir", default=metrics.TEXTFILE_DIR,
                   help="node_exporter's textfile collector directory on the hosts (default %(default)s)")  # fmt: skip
    i.add_argument("--cis", choices=controls.VERSIONS, default=controls.DEFAULT_VERSION,
                   help="CIS numbering of the metrics' cis labels (default %(default)s)")  # fmt: skip
    i.add_argument("--json", action="store_true", help="machine-readable output")
    s = psub.add_parser("status", help="the hosts' last results as the drift table (dockguard drift's exit codes)",
                        epilog=cli.exit_table_text(), formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    s.add_argument("inventory")
    s.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--max-age", default=MAX_AGE, help="a result older than this is not a check (default %(default)s)")
    s.add_argument("--cis", choices=controls.VERSIONS, default=controls.DEFAULT_VERSION,
                   help="CIS Docker Benchmark numbering of the IDs shown (default %(default)s)")  # fmt: skip
    r = psub.add_parser("remove", help="undo pull install on the hosts (idempotent)")
    r.add_argument("inventory")
    r.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    x = psub.add_parser("run", help="(on a host, what its unit runs) the drift check against itself, then results")
    x.add_argument("inventory")
    x.add_argument("--fix", action="store_true")
    x.add_argument("--json-out", default=LAST)
    x.add_argument("--textfile-dir", default=metrics.TEXTFILE_DIR)
    x.add_argument("--lock", default=LOCK)
    x.add_argument("--cis", choices=controls.VERSIONS, default=controls.DEFAULT_VERSION)


def cmd_pull(args) -> int:
    return {"install": cmd_install, "status": cmd_status, "remove": cmd_remove, "run": cmd_run}[args.pull_cmd](args)
