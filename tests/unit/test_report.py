"""The controls x hosts table made from the CIS suite's JUnit XML."""

from operations import report

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="t" name="test_cis_2_2_icc_disabled[ssh://dh1]"/>
<testcase classname="t" name="test_cis_2_2_icc_disabled[ssh://vm1]"><failure message="x"/></testcase>
<testcase classname="t" name="test_cis_2_15_live_restore_enabled[ssh://dh1]"><skipped message="opted out"/></testcase>
<testcase classname="t" name="test_cis_2_15_live_restore_enabled[ssh://vm1]"/>
<testcase classname="t" name="test_cis_3_17_3_18_daemon_json_owner_and_mode[ssh://dh1]"/>
<testcase classname="t" name="test_cis_3_17_3_18_daemon_json_owner_and_mode[ssh://vm1]"/>
<testcase classname="t" name="test_helper_not_a_control[ssh://dh1]"/>
</testsuite></testsuites>
"""


def test_markdown_table(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(JUNIT)
    assert report.markdown(str(path)).splitlines() == [
        "| CIS | control | dh1 | vm1 |",
        "|---|---|---|---|",
        "| 2.2 | icc disabled | PASS | FAIL |",
        "| 2.15 | live restore enabled | N/A | PASS |",
        "| 3.17/3.18 | daemon json owner and mode | PASS | PASS |",
    ]


def test_worst_case_of_a_parametrised_control_wins(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(
        '<testsuite><testcase name="test_cis_3_5_3_6_x[ssh://dh1]"/>'
        '<testcase name="test_cis_3_5_3_6_x[ssh://dh1]"><failure/></testcase>'
        '<testcase name="test_cis_3_5_3_6_x[ssh://dh1]"/></testsuite>'
    )
    table, hosts = report.results(str(path))
    assert hosts == ["dh1"]
    assert table == {("3.5/3.6", "x"): {"dh1": "FAIL"}}
