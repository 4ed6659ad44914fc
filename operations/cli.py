"""The operator's command line: drift checks, compliance reports, and their schedule.

    ./dockguard drift INVENTORY [--json] [--fix] [--limit HOST]
    ./dockguard report INVENTORY [--out reports]
    ./dockguard install-timer INVENTORY [--fix] [--on-calendar hourly] [--dest /etc/systemd/system]
    ./dockguard cron-line INVENTORY [--fix] [--schedule '*/30 * * * *']

`drift` runs the deploy in dry-run mode (pyinfra --dry: facts are read, nothing
changes) and reports, per host, every control that would change: its CIS ID, the
operation, and why. Exit codes: 0 clean, 2 drift found, 1 a host could not be
checked (unreachable, sudo wants a password, a fact failed) - an unchecked host
is never reported clean. With --fix it applies the deploy and reports what was
corrected (0 when every host is now in line, 1 otherwise). Runs never overlap: a
run that finds another holding the lock exits 0 saying so. Nothing here reads or
prints private keys.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import ROOT, TEMPLATES, fleet

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
_CIS = re.compile(r"^CIS ([0-9][0-9./x-]*):")
# Operations gated by `_if` show up as "conditional" in a dry run whatever the host's state;
# their controls report drift through notes instead (see operations.drift()).
EXIT_CLEAN, EXIT_UNCHECKED, EXIT_DRIFT = 0, 1, 2


def cis_of(op_name: str) -> str:
    m = _CIS.match(op_name)
    if m:
        return m.group(1)
    if op_name.startswith("dockerd:"):
        return "2.x"
    return "-"


def drift_items(notes: list[dict], plan: list[dict], name: str) -> list[dict[str, Any]]:
    """One host's drift: what the controls noted (with their reasons), then every other
    operation the dry run would change on it."""
    items = [{"cis": n["cis"], "operation": n.get("operation"), "reason": n["reason"]} for n in notes]
    named = {n.get("operation") for n in notes}
    for op in plan:
        if name not in op["hosts_with_change"] or op["name"] in named:
            continue
        cis = cis_of(op["name"])
        items.append({"cis": cis, "operation": op["name"], "reason": "differs from what dockguard sets"})
    return items


def run_pyinfra(inventory: str, *args: str, drift_dir: str | None = None) -> tuple[int, dict | None, str]:
    env = dict(os.environ, PYINFRA_PROGRESS="off")
    if drift_dir:
        env["DOCKGUARD_DRIFT_DIR"] = drift_dir
    r = subprocess.run(
        [PYINFRA, "--json", *args, inventory, "deploy.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return r.returncode, out, r.stderr


def _host_errors(stderr: str, name: str) -> list[str]:
    """What pyinfra said went wrong with one host (connection, sudo, a fact)."""
    out = []
    for line in stderr.splitlines():
        text = line.strip()
        if text.startswith(f"[{name}]") and re.search(r"error|could not|failed|password|refused|timed out", text, re.I):
            out.append(re.sub(r"\x1b\[[0-9;]*m", "", text[len(name) + 2 :].strip()))
    if re.search(r"invalid dockguard settings|dockguard refuses to run", stderr):
        block = stderr[stderr.index("pyinfra error") :] if "pyinfra error" in stderr else stderr
        out += [line.strip() for line in block.splitlines() if line.strip().startswith(f"{name}:")]
    return out


def check(inventory: str, limit: list[str]) -> dict[str, Any]:
    """The drift of every host of the inventory (or of --limit), from a dry run."""
    names = [h.name for h in fleet.load(inventory)]
    if limit:
        names = [n for n in names if n in limit]
    args = ["--dry"] + [a for name in limit for a in ("--limit", name)]
    with tempfile.TemporaryDirectory(prefix="dockguard-drift-") as notes_dir:
        rc, out, stderr = run_pyinfra(inventory, *args, drift_dir=notes_dir)
        notes = {}
        for f in Path(notes_dir).glob("*.json"):
            data = json.loads(f.read_text())
            notes[data["host"]] = data["notes"]
    plan = (out or {}).get("plan") or []
    hosts: dict[str, Any] = {}
    for name in names:
        if name not in notes:
            errors = _host_errors(stderr, name) or [
                "the host was not checked (unreachable, or the run stopped before it): see pyinfra's output"
            ]
            hosts[name] = {"status": "unchecked", "errors": errors, "drift": []}
            continue
        hosts[name] = {"status": "clean", "errors": [], "drift": drift_items(notes[name], plan, name)}
        hosts[name]["status"] = "drift" if hosts[name]["drift"] else "clean"
    if any(h["status"] == "unchecked" for h in hosts.values()):
        code = EXIT_UNCHECKED
    elif any(h["status"] == "drift" for h in hosts.values()):
        code = EXIT_DRIFT
    else:
        code = EXIT_CLEAN
    return {"inventory": inventory, "hosts": hosts, "exit_code": code, "pyinfra_exit_code": rc}


def fix(inventory: str, limit: list[str], before: dict[str, Any]) -> dict[str, Any]:
    """Apply the deploy; report, per host, the operations that changed something."""
    args = ["-y"] + [a for name in limit for a in ("--limit", name)]
    rc, out, stderr = run_pyinfra(inventory, *args)
    results = (out or {}).get("results") or {"operations": [], "failed_hosts": []}
    failed = set(results.get("failed_hosts", []))
    fixed: dict[str, Any] = {}
    for name, h in before["hosts"].items():
        if h["status"] == "unchecked":
            fixed[name] = {"status": "unchecked", "errors": h["errors"], "corrected": []}
            continue
        changed = [op["name"] for op in results["operations"] if name in op["success"]]
        # What the check found, for the operations that changed; then any other change.
        corrected = [d for d in h["drift"] if d["operation"] in changed]
        corrected += [
            {"cis": cis_of(op), "operation": op, "reason": "changed"}
            for op in changed
            if op not in {d["operation"] for d in corrected}
        ]
        if name in failed or (out is None and rc != 0):
            fixed[name] = {"status": "failed", "errors": _host_errors(stderr, name) or ["see pyinfra's output"],
                           "corrected": corrected}  # fmt: skip
        else:
            fixed[name] = {"status": "corrected" if corrected else "clean", "errors": [], "corrected": corrected}
    code = EXIT_UNCHECKED if any(h["status"] in ("unchecked", "failed") for h in fixed.values()) else EXIT_CLEAN
    return {"inventory": inventory, "hosts": fixed, "exit_code": code, "pyinfra_exit_code": rc}


def text_report(result: dict[str, Any], fixing: bool) -> str:
    lines = [f"dockguard {'drift fix' if fixing else 'drift check'}: {result['inventory']}"]
    for name, h in sorted(result["hosts"].items()):
        if h["status"] in ("unchecked", "failed"):
            lines.append(f"{name}: {h['status'].upper()}")
            lines += [f"    {e}" for e in h["errors"]]
        if fixing:
            if h["status"] in ("corrected", "clean"):
                lines.append(f"{name}: {h['status']}")
            lines += [
                f"    CIS {c['cis']:<12} corrected: {c['operation']}: {c['reason']}" for c in h.get("corrected", [])
            ]
        elif h["status"] != "unchecked":
            lines.append(f"{name}: {'DRIFT' if h['drift'] else 'clean'}")
            for d in h["drift"]:
                what = f"{d['operation']}: " if d["operation"] else ""
                lines.append(f"    CIS {d['cis']:<12} {what}{d['reason']}")
    lines.append(f"exit {result['exit_code']}")
    return "\n".join(lines)


@contextlib.contextmanager
def lock(path: str):
    """One drift run at a time; yields False when another run holds the lock."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def default_lock() -> str:
    return (
        "/run/lock/dockguard-drift.lock"
        if os.access("/run/lock", os.W_OK)
        else str(Path.home() / ".cache/dockguard/drift.lock")
    )


def cmd_drift(args) -> int:
    with lock(args.lock) as held:
        if not held:
            print(f"dockguard: another drift run holds {args.lock}; not starting a second one", file=sys.stderr)
            return EXIT_CLEAN
        result = check(args.inventory, args.limit)
        if args.fix and result["exit_code"] != EXIT_CLEAN:
            result = fix(args.inventory, args.limit, result)
    print(json.dumps(result, indent=2) if args.json else text_report(result, args.fix))
    return result["exit_code"]


def cmd_report(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "cis.xml"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cis", "--inventory", args.inventory, "-q", "-p", "no:cacheprovider",
         f"--junitxml={junit.resolve()}"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )  # fmt: skip
    from . import report

    report.main([str(junit), "--json", str(out / "compliance.json"), "--markdown", str(out / "compliance.md")])
    print(f"\nreports: {junit}, {out / 'compliance.md'}, {out / 'compliance.json'}")
    return 0 if r.returncode == 0 else 1


def render_units(inventory: str, fix_: bool, on_calendar: str) -> dict[str, str]:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)
    data = {"root": str(ROOT), "inventory": inventory, "fix": fix_, "on_calendar": on_calendar}
    return {
        name: env.get_template(f"etc/systemd/system/{name}.j2").render(**data)
        for name in ("dockguard-drift.service", "dockguard-drift.timer")
    }


def cmd_install_timer(args) -> int:
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in render_units(args.inventory, args.fix, args.on_calendar).items():
        (dest / name).write_text(text)
        print(f"wrote {dest / name}")
    if args.dest == "/etc/systemd/system" and not args.no_enable:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", "dockguard-drift.timer"], check=True)
        print("enabled dockguard-drift.timer (journalctl -u dockguard-drift.service)")
    return 0


def cron_line(inventory: str, fix_: bool, schedule: str) -> str:
    cmd = f"{shlex.quote(str(ROOT / 'dockguard'))} drift {shlex.quote(inventory)}" + (" --fix" if fix_ else "")
    return f"{schedule} root {cmd} </dev/null 2>&1 | logger -t dockguard-drift"


def cmd_cron_line(args) -> int:
    print(cron_line(args.inventory, args.fix, args.schedule))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dockguard", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drift", help="report (and with --fix correct) drift per host and CIS control")
    d.add_argument("inventory")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--fix", action="store_true", help="apply the deploy and report what was corrected")
    d.add_argument("--limit", action="append", default=[], help="only this host (repeatable)")
    d.add_argument("--lock", default=default_lock(), help="lock file that keeps runs from overlapping")
    r = sub.add_parser("report", help="run the CIS suite; write JUnit XML, Markdown and JSON")
    r.add_argument("inventory")
    r.add_argument("--out", default=str(ROOT / "reports"))
    t = sub.add_parser("install-timer", help="install a systemd service and timer that run the drift check")
    t.add_argument("inventory")
    t.add_argument("--fix", action="store_true")
    t.add_argument("--on-calendar", default="hourly")
    t.add_argument("--dest", default="/etc/systemd/system")
    t.add_argument("--no-enable", action="store_true")
    c = sub.add_parser("cron-line", help="print a cron line (for machines without systemd)")
    c.add_argument("inventory")
    c.add_argument("--fix", action="store_true")
    c.add_argument("--schedule", default="*/30 * * * *")
    args = p.parse_args(argv)
    if hasattr(args, "inventory"):
        args.inventory = str(Path(args.inventory).resolve())
        if not Path(args.inventory).exists():
            p.error(f"no such inventory: {args.inventory}")
    return {"drift": cmd_drift, "report": cmd_report, "install-timer": cmd_install_timer,
            "cron-line": cmd_cron_line}[args.cmd](args)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
