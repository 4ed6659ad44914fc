"""Compliance report: every CIS control once, x every host, from the CIS suite's JUnit XML.

    python -m dockguard.report reports/cis.xml [--cis 1.6|1.8] [--json reports/compliance.json] [--markdown FILE]

A control's cell is PASS, FAIL, or N/A with the reason its test gave (a skipped
test always says why). Each row also says how dockguard handles the control
(auto, choice, report, manual) and whether a test verifies it. IDs are shown in the
numbering of CIS Docker Benchmark 1.8.0 (the default) or 1.6.0; the JSON carries both.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET

from .controls import BENCHMARK, CONTROLS, DEFAULT_VERSION, MAPPING, OS_CONTROLS, VERSIONS, for_test, shown

_HOST = re.compile(r"\[ssh://(?P<host>[^\]]+)\]$")
_RANK = {"PASS": 0, "N/A": 1, "FAIL": 2}


def _property(case: ET.Element, name: str) -> str:
    return next((q.get("value") or "" for q in case.iter("property") if q.get("name") == name), "")


def releases(junit_path: str) -> dict[str, str]:
    """{host: its release ("Debian GNU/Linux 13")} as the CIS suite recorded it."""
    out = {}
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        m = _HOST.search(case.get("name", ""))
        if m and _property(case, "dockguard_release"):
            out[m["host"]] = _property(case, "dockguard_release")
    return out


def results(junit_path: str) -> tuple[dict[str, dict[str, dict[str, str]]], list[str]]:
    """({cis: {host: {"status", "reason"}}}, hosts). A control verified by several
    tests (or parametrised ones) is as good as its worst case."""
    table: dict[str, dict[str, dict[str, str]]] = {}
    hosts: set[str] = set()
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        name = case.get("name", "")
        m = _HOST.search(name)
        control = for_test(name)
        if not m or not control:
            continue
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            cell = {"status": "FAIL", "reason": (failure.get("message") or "").splitlines()[0][:200]}
        elif skipped is not None:
            reason = skipped.get("message") or ""
            cell = {"status": "N/A", "reason": re.sub(r"^Skipped: ", "", reason)[:200]}
        else:
            # a passing test may say what it found (the real binary of an audited path)
            note = _property(case, "dockguard_note")
            cell = {"status": "PASS", "reason": note[:200]}
        row = table.setdefault(control.key, {})
        prev = row.get(m["host"])
        if prev is None or _RANK[cell["status"]] > _RANK[prev["status"]]:
            row[m["host"]] = cell
        hosts.add(m["host"])
    return table, sorted(hosts)


def compliance(junit_path: str, version: str = DEFAULT_VERSION) -> dict:
    table, hosts = results(junit_path)
    controls = []
    for c in CONTROLS:
        row = table.get(c.key, {})
        cells = {h: row.get(h, {"status": "N/A", "reason": c.note or "not verified by a test"}) for h in hosts}
        controls.append(
            {
                "cis": shown(c, version),
                "cis_1.6.0": c.cis or None,
                "cis_1.8.0": c.cis18,
                "title": c.title,
                "handled": c.kind,
                "verified": c.test is not None,
                "note": c.note,
                "hosts": cells,
            }  # fmt: skip
        )
    if version == "1.6":  # a 1.8.0-only control has no row in 1.6.0's numbering
        controls = [c for c in controls if c["cis_1.6.0"]]
    summary = {h: {s: sum(1 for c in controls if c["hosts"][h]["status"] == s) for s in _RANK} for h in hosts}
    baseline = []
    for c in OS_CONTROLS:
        row = table.get(c.key, {})
        cells = {h: row.get(h, {"status": "N/A", "reason": c.note or "not verified by a test"}) for h in hosts}
        baseline.append({"lynis": c.lynis, "title": c.title, "area": c.area, "note": c.note, "hosts": cells})
    os_summary = {h: {s: sum(1 for c in baseline if c["hosts"][h]["status"] == s) for s in _RANK} for h in hosts}
    return {"benchmark": f"{BENCHMARK[version]}, sections 1-3 and 5.1/5.2 (host side)", "numbering": version,
            "mapping": MAPPING, "hosts": hosts, "releases": releases(junit_path), "summary": summary,
            "controls": controls, "os_baseline": baseline, "os_summary": os_summary}  # fmt: skip


def _cell(cell: dict[str, str]) -> str:
    text = f"{cell['status']}: {' '.join(cell['reason'].split())}" if cell["reason"] else cell["status"]
    return text.replace("|", "\\|")


def markdown(junit_path: str, version: str = DEFAULT_VERSION) -> str:
    data = compliance(junit_path, version)
    hosts = data["hosts"]
    heads = [f"{h} ({data['releases'][h]})" if h in data["releases"] else h for h in hosts]
    lines = [
        "| CIS | control | handled | verified | " + " | ".join(heads) + " |",
        "|---|---|---|---|" + "---|" * len(hosts),
    ]
    for c in data["controls"]:
        cells = " | ".join(_cell(c["hosts"][h]) for h in hosts)
        lines.append(f"| {c['cis']} | {c['title']} | {c['handled']} | {'yes' if c['verified'] else 'no'} | {cells} |")
    totals = ", ".join(f"{h}: {s['PASS']} pass, {s['FAIL']} fail, {s['N/A']} n/a" for h, s in data["summary"].items())
    note = f"IDs: {BENCHMARK[version]}." + (f" {MAPPING}." if version == "1.8" else "")
    os_lines = [
        "OS baseline around Docker (by the Lynis tests each control answers):",
        "",
        "| Lynis | control | area | " + " | ".join(heads) + " |",
        "|---|---|---|" + "---|" * len(hosts),
    ]
    for c in data["os_baseline"]:
        cells = " | ".join(_cell(c["hosts"][h]) for h in hosts)
        os_lines.append(f"| {c['lynis']} | {c['title']} | {c['area']} | {cells} |")
    os_totals = ", ".join(
        f"{h}: {s['PASS']} pass, {s['FAIL']} fail, {s['N/A']} n/a" for h, s in data["os_summary"].items()
    )
    return "\n".join(lines) + f"\n\n{totals}\n\n{note}\n\n" + "\n".join(os_lines) + f"\n\n{os_totals}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dockguard.report")
    p.add_argument("junit")
    p.add_argument("--cis", choices=VERSIONS, default=DEFAULT_VERSION, help="numbering of the CIS IDs shown")
    p.add_argument("--json", help="also write the report as JSON here")
    p.add_argument("--markdown", help="also write the Markdown table here")
    args = p.parse_args(argv)
    text = markdown(args.junit, args.cis)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(compliance(args.junit, args.cis), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
