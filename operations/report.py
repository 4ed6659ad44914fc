"""Summary of a CIS verification run: controls x hosts, from the suite's JUnit XML.

python -m operations.report reports/cis.xml
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

_NAME = re.compile(r"^test_cis_(?P<id>\d+(?:_\d+)*)_(?P<title>[a-z_0-9]+?)\[ssh://(?P<host>[^\]]+)\]$")


def _control(test_id: str, title: str) -> tuple[str, str]:
    """test_cis_3_17_3_18_daemon_json_owner_and_mode -> ("3.17/3.18", "daemon json owner and mode")."""
    parts = test_id.split("_")
    ids = []
    while parts:
        # Section and number come in pairs: 2_2 -> 2.2, 3_17_3_18 -> 3.17/3.18.
        ids.append(".".join(parts[:2]))
        parts = parts[2:]
    return "/".join(ids), title.replace("_", " ")


def results(junit_path: str) -> tuple[dict[tuple[str, str], dict[str, str]], list[str]]:
    table: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    hosts: set[str] = set()
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        m = _NAME.match(case.get("name", ""))
        if not m:
            continue
        key = _control(m["id"], m["title"])
        if case.find("failure") is not None or case.find("error") is not None:
            status = "FAIL"
        elif case.find("skipped") is not None:
            status = "N/A"
        else:
            status = "PASS"
        prev = table[key].get(m["host"])
        # A parametrised control is as good as its worst case.
        if prev is None or (prev, status) in (("PASS", "N/A"), ("PASS", "FAIL"), ("N/A", "FAIL")):
            table[key][m["host"]] = status
        hosts.add(m["host"])
    return dict(table), sorted(hosts)


def _sort_key(item):
    (cis, _), _ = item
    return [int(x) for x in re.findall(r"\d+", cis)]


def markdown(junit_path: str) -> str:
    table, hosts = results(junit_path)
    lines = ["| CIS | control | " + " | ".join(hosts) + " |", "|---|---|" + "---|" * len(hosts)]
    for (cis, title), row in sorted(table.items(), key=_sort_key):
        lines.append(f"| {cis} | {title} | " + " | ".join(row.get(h, "-") for h in hosts) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(sys.argv[1]))
