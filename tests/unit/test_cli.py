"""The drift command's parts: which controls drifted, the exit code, the schedule units."""

import shutil
import subprocess

import pytest

from operations import cli

PLAN = [
    {
        "name": "CIS 2.x: /etc/docker/daemon.json content",
        "hosts_with_change": ["dh1"],
        "hosts_with_conditional_change": [],
    },
    {
        "name": "CIS 3.x: owner and mode of Docker files, sockets, units and certificates",
        "hosts_with_change": ["dh1"],
        "hosts_with_conditional_change": [],
    },
    {
        "name": "dockerd: restart when the config changed or the daemon does not match it",
        "hosts_with_change": [],
        "hosts_with_conditional_change": ["dh1", "dh2"],
    },
]
NOTES = [
    {
        "cis": "3.15/3.16",
        "reason": "/var/run/docker.sock is root:docker 666, wants root:docker 660 or stricter",
        "operation": "CIS 3.x: owner and mode of Docker files, sockets, units and certificates",
    },
]


def test_cis_of_operation_names():
    assert cli.cis_of("CIS 3.15/3.16: docker.socket creates docker.sock") == "3.15/3.16"
    assert cli.cis_of("CIS 1.1.3-1.1.18: audit rules for Docker paths") == "1.1.3-1.1.18"
    assert cli.cis_of("dockerd: docker.service enabled") == "2.x"
    assert cli.cis_of("something else") == "-"


def test_drift_items_prefer_the_controls_own_reasons():
    assert cli.drift_items(NOTES, PLAN, "dh1") == [
        {"cis": "3.15/3.16", "operation": PLAN[1]["name"], "reason": NOTES[0]["reason"]},
        {"cis": "2.x", "operation": PLAN[0]["name"], "reason": "differs from what dockguard sets"},
    ]


def test_conditional_operations_alone_are_not_drift():
    assert cli.drift_items([], PLAN, "dh2") == []


def test_text_report_and_exit_code():
    result = {
        "inventory": "inventory/site.py",
        "exit_code": 1,
        "hosts": {
            "dh1": {"status": "drift", "errors": [], "drift": cli.drift_items(NOTES, PLAN, "dh1")},
            "dh2": {"status": "clean", "errors": [], "drift": []},
            "dh3": {"status": "unchecked", "errors": ["Could not connect"], "drift": []},
        },
    }
    assert cli.text_report(result, fixing=False).splitlines() == [
        "dockguard drift check: inventory/site.py",
        "dh1: DRIFT",
        f"    CIS 3.15/3.16    {PLAN[1]['name']}: {NOTES[0]['reason']}",
        f"    CIS 2.x          {PLAN[0]['name']}: differs from what dockguard sets",
        "dh2: clean",
        "dh3: UNCHECKED",
        "    Could not connect",
        "exit 1",
    ]


def test_host_errors_are_picked_from_pyinfra_output():
    stderr = "--> Connecting to hosts...\n    [dh3] Could not connect (Connection refused)\n    [dh1] Connected\n"
    assert cli._host_errors(stderr, "dh3") == ["Could not connect (Connection refused)"]
    assert cli._host_errors(stderr, "dh1") == []


def test_lock_keeps_a_second_run_out(tmp_path):
    path = str(tmp_path / "x.lock")
    with cli.lock(path) as first:
        assert first is True
        with cli.lock(path) as second:
            assert second is False
    with cli.lock(path) as again:
        assert again is True


def test_cron_line():
    line = cli.cron_line("/srv/inv/site.py", True, "*/15 * * * *")
    assert line.startswith("*/15 * * * * root ")
    assert line.endswith("/dockguard drift /srv/inv/site.py --fix </dev/null 2>&1 | logger -t dockguard-drift")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed (make deps)")
def test_timer_units_pass_systemd_analyze_verify(tmp_path):
    for name, text in cli.render_units("/srv/inv/site.py", True, "hourly").items():
        (tmp_path / name).write_text(text)
    service = (tmp_path / "dockguard-drift.service").read_text()
    assert "ExecStart=" in service and "drift /srv/inv/site.py --fix" in service
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "dockguard-drift.timer"), str(tmp_path / "dockguard-drift.service")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
