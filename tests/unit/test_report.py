"""The compliance report: every control once, x every host, from the CIS suite's JUnit XML."""

import json

from dockguard import controls, report

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="t" name="test_cis_2_2_icc_disabled[ssh://dh1]"/>
<testcase classname="t" name="test_cis_2_2_icc_disabled[ssh://vm1]"><failure message="assert 'true' == 'false'&#10;more"/></testcase>
<testcase classname="t" name="test_cis_1_1_5_audit_var_lib_docker[ssh://dh1]"><skipped message="auditd cannot run on this host"/></testcase>
<testcase classname="t" name="test_cis_1_1_5_audit_var_lib_docker[ssh://vm1]"/>
<testcase classname="t" name="test_cis_1_1_10_audit_etc_default_docker[ssh://dh1]"/>
<testcase classname="t" name="test_cis_3_17_3_18_daemon_json_owner_and_mode[ssh://dh1]"/>
<testcase classname="t" name="test_cis_3_17_3_18_daemon_json_owner_and_mode[ssh://vm1]"/>
<testcase classname="t" name="test_helper_not_a_control[ssh://dh1]"/>
</testsuite></testsuites>
"""


def test_every_control_appears_once_with_how_it_is_handled(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(JUNIT)
    data = report.compliance(str(path))
    assert data["hosts"] == ["dh1", "vm1"]
    assert [c["cis"] for c in data["controls"]] == [c.cis for c in controls.CONTROLS]
    by = {c["cis"]: c for c in data["controls"]}
    assert by["2.2"]["hosts"] == {
        "dh1": {"status": "PASS", "reason": ""},
        "vm1": {"status": "FAIL", "reason": "assert 'true' == 'false'"},
    }
    assert by["1.1.5"]["hosts"]["dh1"] == {"status": "N/A", "reason": "auditd cannot run on this host"}
    assert by["1.1.1"]["hosts"]["dh1"]["status"] == "N/A"  # in the catalogue, not run here
    assert by["2.1"]["handled"] == "manual" and by["2.1"]["verified"] is False
    assert by["2.9"]["handled"] == "choice"
    assert by["1.1.10"]["hosts"]["dh1"]["status"] == "PASS"  # not mistaken for 1.1.1
    json.dumps(data)


def test_markdown_table(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(JUNIT)
    lines = report.markdown(str(path)).splitlines()
    assert lines[0] == "| CIS | control | handled | verified | dh1 | vm1 |"
    assert (
        "| 2.2 | Inter-container communication off on the default bridge | auto | yes | PASS | FAIL: assert 'true' == 'false' |"
        in lines
    )
    assert lines[-1].startswith("dh1: ")


def test_worst_case_of_a_control_wins(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(
        '<testsuite><testcase name="test_cis_3_5_3_6_x[ssh://dh1]"/>'
        '<testcase name="test_cis_3_5_3_6_y[ssh://dh1]"><failure message="bad"/></testcase>'
        '<testcase name="test_cis_3_5_3_6_z[ssh://dh1]"/></testsuite>'
    )
    table, hosts = report.results(str(path))
    assert hosts == ["dh1"]
    assert table == {"3.5/3.6": {"dh1": {"status": "FAIL", "reason": "bad"}}}


def test_every_cis_test_maps_to_a_control():
    import ast
    from pathlib import Path

    names = []
    for f in (Path(__file__).parents[1] / "cis").glob("test_cis_*.py"):
        names += [
            n.name
            for n in ast.parse(f.read_text()).body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
        ]
    assert names
    for name in names:
        assert controls.for_test(name), f"{name} verifies no control in dockguard/controls.py"
