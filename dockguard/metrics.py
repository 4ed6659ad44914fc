"""A pull-mode run's result as Prometheus metrics, for node_exporter's textfile collector.

Debian's prometheus-node-exporter reads ``/var/lib/prometheus/node-exporter/*.prom``; a run
writes ``dockguard.prom`` there (atomically: a hidden temporary file renamed over it, which the
collector never reads). Every control dockguard checks on the host has a series, with its CIS
Docker Benchmark ID (or, for the OS baseline, its Lynis test IDs) as the ``cis`` label:

    dockguard_control_drift{cis="2.2",title="..."}   1 drifted, 0 in line, NaN: not checked

A run that did not check the host never looks clean: every per-control value and the count of
drifted controls are NaN then (NaN is never equal to 0, and never above it), and
``dockguard_host_checked`` is 0. The series are the same on every run (a control that is not
checked on this host, e.g. in an area dockguard_disabled_areas turns off, has none), so a
corrected control goes back to 0 instead of disappearing; a drift item that names no control
of the catalogue gets a series of its own (its ID as dockguard drift shows it) while it lasts.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import controls

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's prometheus-node-exporter
PROM_FILE = "dockguard.prom"

# Controls of the catalogue the deploy does not check (the CIS suite verifies them): no series.
NOT_CHECKED_BY_DEPLOY = {
    "1.1.1": "a separate partition for /var/lib/docker is verified by the CIS suite only",
    "1.8.0 2.7": "devicemapper is refused as a setting; a daemon on it is reported by the CIS suite",
}
# IDs the operations use for a group of controls (cli.cis_of, drift notes): always a series of their own.
GROUPS = [
    ("1.1", "auditd runs (the audit watches 1.1.3-1.1.18 need it)", ("audit",)),
    ("2.x", "dockerd's configuration and state (no single control named)", ("dockerd",)),
    ("3.x", "owner and mode of Docker's files (no single control named)", ("files",)),
]


@dataclass(frozen=True)
class Row:
    key: str  # the 1.6.0 ID or the Lynis IDs: what drift items carry ("cis_1.6.0")
    label: str  # the ID in the report's numbering
    title: str
    atoms: frozenset[str]


def atoms(cis: str) -> frozenset[str]:
    """The single control IDs an ID or a group of them names: "3.1/3.2" -> {3.1, 3.2},
    "1.1.3-1.1.18" -> {1.1.3, ..., 1.1.18}, "2.7/3.9-3.10" -> {2.7, 3.9, 3.10},
    "ACCT-9622/9626, PKGS-7370" -> {ACCT-9622, ACCT-9626, PKGS-7370}."""
    out: set[str] = set()
    lynis_prefix = ""
    for part in re.split(r"[/,]", cis):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"((?:[0-9]+\.)+)([0-9]+)-(?:\1)?([0-9]+)", part)
        if m and int(m[2]) <= int(m[3]) <= int(m[2]) + 100:
            out.update(f"{m[1]}{n}" for n in range(int(m[2]), int(m[3]) + 1))
            continue
        m = re.fullmatch(r"([A-Z]{3,4})-([0-9]{4})", part)
        if m:
            lynis_prefix = m[1]
            out.add(part)
        elif re.fullmatch(r"[0-9]{4}", part) and lynis_prefix:
            out.add(f"{lynis_prefix}-{part}")
        else:
            out.add(part)
    return frozenset(out)


def _areas_of(c: controls.Control) -> tuple[str, ...]:
    """The control areas (dockguard_disabled_areas) that check a CIS control."""
    cis = c.cis
    if cis == "1.1.2":
        return ("docker_group",)
    if cis.startswith("1.1."):
        return ("audit",)
    if cis == "1.2.1":
        return ("lynis",)
    if cis == "2.12":
        return ("authz", "dockerd")
    if cis == "3.7/3.8":
        return ("registries", "files")
    return {"2": ("dockerd",), "3": ("files",), "5": ("mac",)}.get(cis.split(".", 1)[0], ())


def rows(cfg: dict[str, Any] | None = None, version: str = controls.DEFAULT_VERSION) -> list[Row]:
    """Every control the deploy checks on a host with settings ``cfg`` (None: every one), in the
    catalogue's order: CIS controls, the groups the operations use, then the OS baseline."""
    disabled = set((cfg or {}).get("dockguard_disabled_areas", ()))
    lynis_on = (cfg or {}).get("lynis_enabled", True)

    def on(areas: tuple[str, ...]) -> bool:
        return any(a not in disabled for a in areas)

    out = []
    for c in controls.CONTROLS:
        if c.kind == "manual" or c.key in NOT_CHECKED_BY_DEPLOY or not on(_areas_of(c)):
            continue
        if c.cis == "1.2.1" and not lynis_on:
            continue
        out.append(Row(c.cis, controls.shown(c, version), c.title, atoms(c.cis)))
    for key, title, areas in GROUPS:
        if on(areas):
            out.append(Row(key, controls.renumber(key, version), title, frozenset([key])))
    for o in controls.OS_CONTROLS:
        if o.lynis != "-" and on((o.area,)):
            out.append(Row(o.lynis, o.lynis, o.title, atoms(o.lynis)))
    return out


def item_id(item: dict[str, Any]) -> str:
    """A drift item's ID in 1.6.0's numbering (what the operations carry)."""
    return str(item.get("cis_1.6.0", item.get("cis", "-")))


def states(items: list[dict[str, Any]], table: list[Row], version: str) -> list[tuple[Row, int]]:
    """(row, 1 drifted / 0 in line) for every row, then a row of its own for each drift item that
    names no control of ``table``."""
    drifted: set[str] = set()
    extra: dict[str, Row] = {}
    for item in items:
        cis = item_id(item)
        mine = atoms(cis)
        hit = [r.key for r in table if r.key == cis or r.atoms & mine]
        drifted.update(hit)
        if not hit and cis not in extra:
            extra[cis] = Row(cis, controls.renumber(cis, version), "not in dockguard's catalogue", frozenset([cis]))
    return [(r, int(r.key in drifted)) for r in table] + [(r, 1) for r in extra.values()]


# --------------------------------------------------------------------------- the text format


def label_value(value: str) -> str:
    """A label value in the text exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items()) + "}"


HELP = {
    "dockguard_control_drift": "Whether a control dockguard checks differs on this host from what dockguard sets "
    "(1) or is in line (0), by CIS Docker Benchmark ID (Lynis test IDs for the OS baseline); NaN when the last run "
    "did not check the host.",
    "dockguard_drifted_controls": "The number of controls that differ on this host (dockguard_control_drift == 1); "
    "NaN when the last run did not check the host.",
    "dockguard_drift_findings": "The number of drift findings of the last run (operations and notes, as dockguard "
    "drift lists them); NaN when it did not check the host.",
    "dockguard_corrected_controls": "The number of controls the last run corrected (pull mode with --fix; 0 without).",
    "dockguard_host_checked": "1 when the last run checked the whole host, 0 when it did not (then no control "
    "value may be read as in line).",
    "dockguard_last_run_success": "1 when the last run completed (the host checked and, with --fix, its corrections "
    "applied without error), else 0.",
    "dockguard_last_run_exit_code": "The last run's exit code (0 clean, 1 not checked or not corrected, 2 drift).",
    "dockguard_last_run_timestamp_seconds": "When the last run finished, in seconds since the epoch.",
    "dockguard_last_run_duration_seconds": "How long the last run took, in seconds.",
    "dockguard_pull_info": "dockguard pull mode on this host: its inventory name, dockguard's version, whether it "
    "corrects drift (mode fix) or only reports it (mode check), and the CIS numbering of the cis labels.",
}


def render(record: dict[str, Any], cfg: dict[str, Any] | None = None) -> str:
    """The metrics of one pull-mode run (``record``: see dockguard.pull.record)."""
    version = record.get("cis_version", controls.DEFAULT_VERSION)
    checked = bool(record.get("checked"))
    host = (record.get("result") or {}).get("hosts", {}).get(record.get("host"), {})
    table = rows(cfg, version)
    series: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in HELP}
    if checked:
        found = states(host.get("drift", []), table, version)
        drifted = sum(v for _, v in found)
    else:
        found = [(r, math.nan) for r in table]
        drifted = math.nan
    for row, value in found:
        series["dockguard_control_drift"].append(({"cis": row.label, "title": row.title}, value))
    series["dockguard_drifted_controls"].append(({}, drifted))
    series["dockguard_drift_findings"].append(({}, len(host.get("drift", [])) if checked else math.nan))
    corrected = ((record.get("fix") or {}).get("hosts", {}).get(record.get("host")) or {}).get("corrected", [])
    corrected_rows = {r.key for r, v in states(corrected, table, version) if v}
    series["dockguard_corrected_controls"].append(({}, len(corrected_rows)))
    series["dockguard_host_checked"].append(({}, int(checked)))
    series["dockguard_last_run_success"].append(({}, int(bool(record.get("success")))))
    series["dockguard_last_run_exit_code"].append(({}, int(record.get("exit_code", 1))))
    series["dockguard_last_run_timestamp_seconds"].append(({}, round(float(record["finished_unix"]), 3)))
    series["dockguard_last_run_duration_seconds"].append(({}, round(float(record["duration_seconds"]), 3)))
    info = {"host": str(record.get("host", "")), "version": str(record.get("dockguard_version", "")),
            "mode": "fix" if record.get("mode") == "fix" else "check",
            "cis_numbering": controls.BENCHMARK.get(version, version)}  # fmt: skip
    series["dockguard_pull_info"].append((info, 1))
    lines = []
    for name, values in series.items():
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in values]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """``data`` at ``path`` in one step: a hidden temporary file in the same directory (which the
    textfile collector, reading *.prom only, never reads), synced, then renamed over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)  # whatever the umask; on the file opened, never on a name swapped since
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
