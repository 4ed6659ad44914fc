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
    data = report.compliance(str(path), "1.6")
    assert data["hosts"] == ["dh1", "vm1"]
    assert [c["cis"] for c in data["controls"]] == [c.cis for c in controls.CONTROLS if c.cis]
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
    lines = report.markdown(str(path), "1.6").splitlines()
    assert lines[0] == "| CIS | control | handled | verified | dh1 | vm1 |"
    assert (
        "| 2.2 | Inter-container communication off on the default bridge | auto | yes | PASS | FAIL: assert 'true' == 'false' |"
        in lines
    )
    ids = lines.index("IDs: CIS Docker Benchmark 1.6.0.")
    assert lines[ids - 2].startswith("dh1: ")
    assert lines[ids + 4] == "| Lynis | control | area | dh1 | vm1 |"  # the OS baseline's own table


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


JUNIT_18 = """<testsuite>
<testcase name="test_cis18_2_8_tcp_socket_requires_client_certificates[ssh://dh1]"/>
<testcase name="test_cis18_2_7_no_devicemapper[ssh://dh1]"><failure message="assert 'devicemapper' != 'devicemapper'"/></testcase>
<testcase name="test_cis_2_2_icc_disabled[ssh://dh1]"/>
</testsuite>"""


def test_the_report_defaults_to_1_8_numbering_and_carries_both_ids(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(JUNIT_18)
    data = report.compliance(str(path))
    assert data["numbering"] == "1.8" and "inferred from the published titles" in data["mapping"]
    assert [c["cis"] for c in data["controls"]] == [c.cis18 for c in controls.CONTROLS]
    by = {c["cis"]: c for c in data["controls"]}
    # 1.6.0's 2.7 (TLS) is 1.8.0's 2.8; 1.8.0's 2.7 (devicemapper) has no 1.6.0 ID
    assert by["2.8"]["cis_1.6.0"] == "2.7" and by["2.8"]["hosts"]["dh1"]["status"] == "PASS"
    assert by["2.7"]["cis_1.6.0"] is None and by["2.7"]["hosts"]["dh1"]["status"] == "FAIL"
    assert by["2.19"]["cis_1.6.0"] == "2.18"
    assert by["2.2"]["hosts"]["dh1"]["status"] == "PASS"
    # the same results in 1.6.0's numbering: TLS is 2.7 again, devicemapper has no row
    old = {c["cis"]: c for c in report.compliance(str(path), "1.6")["controls"]}
    assert old["2.7"]["title"] == by["2.8"]["title"] and old["2.7"]["hosts"] == by["2.8"]["hosts"]
    assert "No devicemapper storage driver (1.8.0 only)" not in {c["title"] for c in old.values()}
    text = report.markdown(str(path))
    assert any(line.startswith("IDs: CIS Docker Benchmark 1.8.0. 1.8.0 IDs are inferred") for line in text.splitlines())


def test_renumbering_follows_1_8_0():
    assert [controls.renumber(i) for i in ("2.6", "2.7", "2.12", "2.18", "1.1.2", "1.2.1", "3.1/3.2", "5.1")] == [
        "2.6", "2.8", "2.13", "2.19", "1.1.2", "1.2.1", "3.1/3.2", "5.1"]  # fmt: skip
    assert controls.renumber("2.7, 2.9") == "2.8, 2.10"
    assert controls.renumber("2.7", "1.6") == "2.7"
    # the 1.8.0 titles named in the published change list land where 1.8.0 puts them
    by18 = {c.cis18: c.title for c in controls.CONTROLS}
    assert "TLS" in by18["2.8"] and "ulimits" in by18["2.9"] and "namespace" in by18["2.10"]
    assert "Authorization" in by18["2.13"] and "new privileges" in by18["2.15"]
    assert "Live restore" in by18["2.16"] and "Userland proxy" in by18["2.17"]
    assert "devicemapper" in by18["2.7"]
    assert len({c.key for c in controls.CONTROLS}) == len(controls.CONTROLS)


def test_test_names_in_either_numbering():
    for c in controls.CONTROLS:  # a 1.6.0 test name encodes its control's 1.6.0 ID
        if c.test and c.cis:
            assert c.test == "test_cis_" + c.cis.replace(".", "_").replace("/", "_") + "_", c
    assert controls.test_name("test_cis_2_7_tcp_socket[ssh://dh1]") == "test_cis18_2_8_tcp_socket[ssh://dh1]"
    assert controls.test_name("test_cis_2_7_tcp_socket[ssh://dh1]", "1.6") == "test_cis_2_7_tcp_socket[ssh://dh1]"
    assert controls.test_name("test_cis_2_2_icc_disabled") == "test_cis_2_2_icc_disabled"  # same ID in both
    assert controls.for_test("test_cis18_2_8_tcp_socket").cis == "2.7"
    assert controls.for_test("test_cis_2_7_tcp_socket").cis == "2.7"
    assert controls.for_test("test_cis18_2_7_no_devicemapper").cis18 == "2.7"


def test_columns_name_each_hosts_release_and_a_pass_may_say_what_it_found(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(
        '<testsuite><testcase name="test_cis_1_1_18_audit_runc[ssh://vm1]"><properties>'
        '<property name="dockguard_release" value="Debian GNU/Linux 13"/>'
        '<property name="dockguard_note" value="/usr/sbin/runc is the binary; /usr/bin/runc (a link to it) watched too"/>'
        "</properties></testcase>"
        '<testcase name="test_cis_1_1_18_audit_runc[ssh://dh1]"><properties>'
        '<property name="dockguard_release" value="Debian GNU/Linux 12"/></properties>'
        '<skipped message="auditd cannot run&#10;netlink"/></testcase></testsuite>'
    )
    data = report.compliance(str(path))
    assert data["releases"] == {"dh1": "Debian GNU/Linux 12", "vm1": "Debian GNU/Linux 13"}
    lines = report.markdown(str(path)).splitlines()
    assert lines[0] == "| CIS | control | handled | verified | dh1 (Debian GNU/Linux 12) | vm1 (Debian GNU/Linux 13) |"
    row = next(line for line in lines if line.startswith("| 1.1.18 "))
    assert row.endswith("| N/A: auditd cannot run netlink | PASS: /usr/sbin/runc is the binary; /usr/bin/runc (a link "
                        "to it) watched too |")  # fmt: skip


def test_the_os_baseline_has_its_own_table_by_lynis_id(tmp_path):
    path = tmp_path / "cis.xml"
    path.write_text(
        '<testsuite><testcase name="test_lynis_ssh_7408_sshd_values[ssh://dh1]"/>'
        '<testcase name="test_lynis_fire_4508_input_policy[ssh://dh1]"><skipped message="Skipped: '
        'firewall_input_drop is off for this host (an operator decision)"/></testcase>'
        '<testcase name="test_cis_2_2_icc[ssh://dh1]"/></testsuite>'
    )
    data = report.compliance(str(path))
    rows = {c["lynis"]: c for c in data["os_baseline"]}
    assert rows["SSH-7408"]["hosts"]["dh1"] == {"status": "PASS", "reason": ""}
    assert rows["FIRE-4508"]["hosts"]["dh1"]["status"] == "N/A"
    assert rows["KRNL-6000"]["hosts"]["dh1"]["status"] == "N/A"  # no test ran: never PASS
    assert data["os_summary"]["dh1"] == {"PASS": 1, "N/A": len(controls.OS_CONTROLS) - 1, "FAIL": 0}
    text = report.markdown(str(path))
    assert "| SSH-7408 | sshd uses dockguard's hardened values | sshd | PASS |" in text.splitlines()
