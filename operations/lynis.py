"""Lynis (CIS Docker Benchmark 1.2.1, "the host is hardened"): installed from the
distribution, run with dockguard's profile, its report parsed, saved per host on
the operator's machine, and optionally a gate on the hardening index.

Lynis runs when the host has no complete report yet (a baseline, before any
hardening), and again at the end of a run that changed something on the host,
so an unchanged host is not re-audited and a second run changes nothing. The
index before and after is printed for every host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.operations import files

from . import ROOT, Context, content, drift, packages, platform, say

REPORT = "/var/log/lynis-report.dat"
PROFILE = "/etc/lynis/dockguard.prf"
BASELINE = "/var/lib/dockguard/lynis-baseline.dat"
_KEYS = ("hardening_index", "report_datetime_end", "lynis_version", "warning[]", "suggestion[]", "tests_skipped")


class LynisReport(FactBase):
    """Whether Lynis is installed, and the parsed report (None when there is none).

    A report without ``report_datetime_end`` is truncated (an interrupted run):
    ``complete`` is False and its index is not trusted."""

    def command(self) -> str:
        keys = "|".join(k.replace("[", "\\[").replace("]", "\\]") for k in _KEYS)
        return (
            "echo installed=$(command -v lynis >/dev/null 2>&1 && echo yes || echo no); "
            f'for f in {REPORT} {BASELINE}; do if [ -f $f ]; then echo "--- $f"; '
            f"grep -E '^({keys})=' $f; fi; done; true"
        )

    @staticmethod
    def default() -> dict:
        return {"installed": False, "report": None, "baseline": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"installed": False, "report": None, "baseline": None}
        current = None
        for line in output:
            if line.startswith("installed="):
                out["installed"] = line == "installed=yes"
            elif line.startswith("--- "):
                current = "report" if line[4:] == REPORT else "baseline"
                out[current] = {"complete": False, "hardening_index": None, "version": None,
                                "warnings": [], "suggestions": [], "skipped": []}  # fmt: skip
            elif current:
                _parse_line(out[current], line)
        return out


def _parse_line(report: dict[str, Any], line: str) -> None:
    key, _, value = line.partition("=")
    if key == "hardening_index" and value.isdigit():
        report["hardening_index"] = int(value)
    elif key == "report_datetime_end" and value:
        report["complete"] = True
    elif key == "lynis_version":
        report["version"] = value
    elif key in ("warning[]", "suggestion[]"):
        test, _, rest = value.partition("|")
        text = rest.split("|", 1)[0]
        report["warnings" if key == "warning[]" else "suggestions"].append({"test": test, "text": text})
    elif key == "tests_skipped":
        report["skipped"] = [t for t in value.split("|") if t]


def index_of(report: dict[str, Any] | None) -> int | None:
    if not report or not report["complete"]:
        return None
    return report["hardening_index"]


def gate_problem(report: dict[str, Any] | None, minimum: int | None) -> str | None:
    """Why this host fails the hardening-index gate, or None."""
    if minimum is None:
        return None
    index = index_of(report)
    if index is None:
        return f"no complete Lynis report to check against lynis_min_hardening_index {minimum}"
    if index >= minimum:
        return None
    top = "; ".join(f"{w['test']}: {w['text']}" for w in report["warnings"][:5]) or "no warnings"
    return f"Lynis hardening index {index} is below lynis_min_hardening_index {minimum} (top warnings: {top})"


def _run_command() -> StringCommand:
    return StringCommand(
        "timeout 1800 lynis audit system --quick --no-colors --profile "
        + PROFILE
        + " >/var/log/lynis-dockguard.out 2>&1 "
        "|| { echo 'dockguard: lynis failed:' >&2; tail -n 5 /var/log/lynis-dockguard.out >&2; exit 1; }"
    )


@operation()
def baseline():
    """Before any hardening: audit the host as it is, and keep that report."""
    yield _run_command()
    yield f"mkdir -p {BASELINE.rsplit('/', 1)[0]} && cp {REPORT} {BASELINE}"


@operation()
def audit():
    """Audit the host as it is now (gate with ``_if``)."""
    yield _run_command()


@operation()
def summary(reports_dir: str, minimum: int | None):
    """Print the index before and after, save the report here, and apply the gate."""
    live = Context.of().read(REPORT_STATE)  # read again if Lynis ran in this run
    before, after = index_of(live["baseline"]), index_of(live["report"])
    report = live["report"]
    if report:
        warnings = ", ".join(w["test"] for w in report["warnings"]) or "none"
        say(
            f"CIS 1.2.1: Lynis hardening index {after} (before dockguard: {before}); "
            f"warnings: {warnings}; report: {Path(reports_dir) / (host.name + '.dat')}"
        )
    problem = gate_problem(report, minimum)
    if problem:
        drift("1.2.1", problem)
        yield StringCommand(f"echo {_quote('dockguard: ' + problem)} >&2; exit 1")
    else:
        host.noop("Lynis report checked")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def reports_path(cfg: dict[str, Any]) -> Path:
    p = Path(os.path.expanduser(cfg["lynis_reports_dir"]))
    return p if p.is_absolute() else ROOT / p


REPORT_STATE = ("lynis.LynisReport", LynisReport, {})


def reads(ctx: Context) -> list:
    """The facts this area reads (operations/prefetch.py)."""
    return [REPORT_STATE] if ctx.cfg["lynis_enabled"] else []


def baseline_area(ctx: Context) -> list:
    """First area: the baseline audit of a host that has no report yet. Returns the
    operation that writes dockguard's Lynis profile (if Lynis is on)."""
    cfg = ctx.cfg
    if not cfg["lynis_enabled"]:
        return []
    live = ctx.read(REPORT_STATE)
    packages.ensure(
        name="CIS 1.2.1: Lynis installed",
        present=live["installed"],
        plat=platform.current(),
        apt="lynis",
        dnf="lynis",
        epel=True,  # Lynis on the RHEL family comes from EPEL
    )
    # Content here, owner and mode (root:root 0644) with the other files (docker_files).
    (profile,) = content.files(
        {PROFILE: (content.render("etc/lynis/dockguard.prf.j2"), "644")},
        {PROFILE: "CIS 1.2.1: dockguard's Lynis profile"},
    )
    no_report = index_of(live["report"]) is None and cfg["lynis_baseline"]
    baseline(name="CIS 1.2.1: Lynis baseline before hardening", _if=lambda: no_report)
    ctx.area("lynis")["profile"] = profile
    return [profile]


def configure(ctx: Context) -> list:
    """Last area: audit again if anything changed, save the report, print, gate."""
    cfg, changed = ctx.cfg, list(ctx.changed)
    if not cfg["lynis_enabled"]:
        return []
    audit(
        name="CIS 1.2.1: Lynis audit after hardening",
        _if=lambda: any(op.did_change() for op in changed),
    )
    reports = reports_path(cfg)
    reports.mkdir(parents=True, exist_ok=True)
    files.get(
        name="CIS 1.2.1: Lynis report saved on the operator's machine",
        src=REPORT,
        dest=str(reports / f"{host.name}.dat"),
    )
    summary(
        name="CIS 1.2.1: Lynis hardening index",
        reports_dir=str(reports),
        minimum=cfg["lynis_min_hardening_index"],
    )
    return []
