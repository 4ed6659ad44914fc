"""Pull mode's metrics (dockguard/metrics.py) and the alert rules in docs/prometheus/: every control
dockguard checks has a series with its CIS ID, a run that did not check the host never looks clean,
and promtool (Debian's prometheus package) accepts the metrics and the rules, whose own tests pass.

Without promtool the promtool tests skip, unless DOCKGUARD_REQUIRE_PROMTOOL=1, which `make unit` sets
(CI) with DOCKGUARD_PROMTOOL, the promtool it extracts from Debian's prometheus .deb: then they fail."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dockguard import cli, controls, metrics, pull

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus" / "dockguard-alerts.yml"
RULE_TESTS = ROOT / "docs" / "prometheus" / "dockguard-alerts.test.yml"


def promtool() -> str:
    """Debian's promtool: DOCKGUARD_PROMTOOL (`make unit` extracts it from the prometheus .deb,
    without installing a Prometheus server), or on the PATH."""
    found = os.environ.get("DOCKGUARD_PROMTOOL") or shutil.which("promtool")
    if found and os.access(found, os.X_OK):
        return found
    if os.environ.get("DOCKGUARD_REQUIRE_PROMTOOL") == "1":
        pytest.fail(
            f"promtool is not there ({found or 'not on the PATH'}) but the unit tests require it: make promtool"
        )
    pytest.skip("promtool is not installed (make promtool); DOCKGUARD_REQUIRE_PROMTOOL=1 makes this fail")


def _record(status: str, drift: list[dict] | None = None, version: str = "1.8", fixed: dict | None = None) -> dict:
    host = {"status": status, "errors": [], "drift": drift or []}
    result = {"inventory": pull.INVENTORY, "errors": [], "hosts": {"@local": host},
              "exit_code": {"clean": 0, "drift": 2}.get(status, 1)}  # fmt: skip
    cli.numbered(result, version)
    if fixed:
        cli.numbered(fixed, version)
    t = time.time()
    return pull.record("dh1", fixed is not None, version, t - 3.5, t, result, fixed, [])


DRIFT = [
    {
        "cis": "2.x",
        "operation": "CIS 2.x: /etc/docker/daemon.json content",
        "reason": "differs from what dockguard sets",
    },
    {"cis": "3.15/3.16", "operation": "CIS 3.x: owner and mode", "reason": "/var/run/docker.sock is root:docker 666"},
    {"cis": "2.7/3.9-3.10", "operation": "CIS 2.7/3.9-3.10: CA certificate", "reason": "differs"},
    {"cis": "ACCT-9622/9626", "operation": "ACCT-9622/9626: process accounting", "reason": "acct is not running"},
    {"cis": "1.1", "operation": None, "reason": "auditd is inactive"},
]


def series(text: str, name: str) -> dict[str, str]:
    """{the labels text: the value} of one metric in the exposition format."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{.*\}})? (\S+)$", line)
        if m:
            out[m[1] or ""] = m[2]
    return out


def test_every_control_dockguard_checks_has_one_series_with_its_cis_id():
    text = metrics.render(_record("clean"))
    drift = series(text, "dockguard_control_drift")
    wanted = [c for c in controls.CONTROLS if c.kind != "manual" and c.key not in metrics.NOT_CHECKED_BY_DEPLOY]
    for c in wanted:
        assert sum(f'cis="{controls.shown(c)}"' in labels for labels in drift) == 1, c.key
    for o in controls.OS_CONTROLS:
        if o.lynis != "-":
            assert sum(f'cis="{o.lynis}"' in labels for labels in drift) == 1, o.lynis
    assert len(drift) == len(wanted) + len(metrics.GROUPS) + sum(o.lynis != "-" for o in controls.OS_CONTROLS)
    assert set(drift.values()) == {"0"}
    assert series(text, "dockguard_drifted_controls") == {"": "0"}
    assert series(text, "dockguard_host_checked") == {"": "1"}


def test_drifted_controls_are_1_and_counted():
    text = metrics.render(_record("drift", DRIFT))
    drifted = {labels for labels, v in series(text, "dockguard_control_drift").items() if v == "1"}
    ids = sorted(re.search(r'cis="([^"]*)"', labels)[1] for labels in drifted)
    os_row = next(o.lynis for o in controls.OS_CONTROLS if "ACCT-9622/9626" in o.lynis)
    # 1.6.0's 2.7 (TLS) is 1.8.0's 2.8; one finding can name several controls (2.7 and 3.9/3.10).
    assert ids == sorted(["1.1", "2.x", "3.15/3.16", "2.8", "3.9/3.10", os_row])
    assert series(text, "dockguard_drifted_controls") == {"": "6"}
    assert series(text, "dockguard_drift_findings") == {"": "5"}
    assert series(text, "dockguard_last_run_exit_code") == {"": "2"}
    in_16 = metrics.render(_record("drift", DRIFT, version="1.6"))
    assert series(in_16, "dockguard_control_drift")['{cis="2.7",title="TLS authentication on the TCP socket"}'] == "1"


def test_a_host_that_was_not_checked_never_looks_clean():
    text = metrics.render(_record("unchecked"))
    values = series(text, "dockguard_control_drift").values()
    assert values and all(v == "NaN" for v in values)
    assert series(text, "dockguard_drifted_controls") == {"": "NaN"}
    assert series(text, "dockguard_host_checked") == {"": "0"}
    assert series(text, "dockguard_last_run_success") == {"": "0"}
    # NaN is never equal to 0 (a "clean" query) nor above it (a "drift" alert): only host_checked says why.
    assert not (math.nan == 0 or math.nan > 0)


def test_a_finding_outside_the_catalogue_gets_a_series_of_its_own():
    text = metrics.render(_record("drift", [{"cis": "-", "operation": "something new", "reason": "x"}]))
    assert series(text, "dockguard_control_drift")['{cis="-",title="not in dockguard\'s catalogue"}'] == "1"
    assert series(text, "dockguard_drifted_controls") == {"": "1"}


def test_corrected_controls_are_counted_with_fix():
    fixed = {"inventory": pull.INVENTORY, "errors": [], "exit_code": 0,
             "hosts": {"@local": {"status": "corrected", "errors": [], "corrected": DRIFT[:2]}}}  # fmt: skip
    text = metrics.render(_record("clean", fixed=fixed))
    assert series(text, "dockguard_corrected_controls") == {"": "2"}
    assert series(text, "dockguard_drifted_controls") == {"": "0"}
    assert 'mode="fix"' in next(iter(series(text, "dockguard_pull_info")))


def test_areas_turned_off_have_no_series():
    cfg = {"dockguard_disabled_areas": ["audit", "sshd", "accounts"], "lynis_enabled": False}
    text = metrics.render(_record("clean"), cfg)
    ids = {re.search(r'cis="([^"]*)"', labels)[1] for labels in series(text, "dockguard_control_drift")}
    assert not ids & {"1.1", "1.1.3", "1.1.18", "1.2.1", "SSH-7408", "KRNL-5820"}
    assert {"1.1.2", "2.2", "3.15/3.16", "KRNL-6000"} <= ids


def test_atoms_of_the_ids_operations_carry():
    assert metrics.atoms("1.1.3-1.1.18") == {f"1.1.{n}" for n in range(3, 19)}
    assert metrics.atoms("2.7/3.9-3.10") == {"2.7", "3.9", "3.10"}
    assert metrics.atoms("ACCT-9622/9626, PKGS-7370") == {"ACCT-9622", "ACCT-9626", "PKGS-7370"}
    assert metrics.atoms("USB-1000/STRG-1846") == {"USB-1000", "STRG-1846"}
    assert metrics.atoms("2.x") == {"2.x"}


def test_every_metric_has_help_and_type_and_label_values_are_escaped():
    rec = _record("drift", DRIFT)
    rec["host"] = 'odd"host\\name'
    rec["result"]["hosts"] = {rec["host"]: rec["result"]["hosts"]["dh1"]}
    text = metrics.render(rec)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert names == set(metrics.HELP)
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text
    assert 'host="odd\\"host\\\\name"' in text


def test_the_metrics_file_is_replaced_in_one_step(tmp_path):
    target = tmp_path / metrics.PROM_FILE
    target.write_text("old\n")
    metrics.write_atomic(target, b"new\n", 0o644)
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [metrics.PROM_FILE]  # no temporary file left


# --------------------------------------------------------------------------- promtool


@pytest.mark.parametrize("status", ["clean", "drift", "unchecked"])
def test_promtool_accepts_the_metrics(status, tmp_path):
    tool = promtool()
    text = metrics.render(_record(status, DRIFT if status == "drift" else None))
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_promtool_accepts_the_alert_rules():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS: 5 rules found" in r.stdout, r.stdout + r.stderr


def test_the_alert_rules_fire_for_their_hosts_only():
    """docs/prometheus/dockguard-alerts.test.yml: drift present, a run failing or not checking its
    host, a last run too old, a node_exporter without dockguard metrics, each for its own host."""
    r = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_the_rules_name_the_metrics_a_run_writes():
    text = metrics.render(_record("drift", DRIFT))
    written = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    used = set(re.findall(r"\bdockguard_[a-z_]+", RULES.read_text()))
    assert used - {"dockguard_control_drift"} <= written and "dockguard_control_drift" in written
