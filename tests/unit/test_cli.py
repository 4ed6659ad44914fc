"""The drift command's parts: which controls drifted, the exit code, the schedule units."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockguard import cli

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
        "errors": [],
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
    (tmp_path / "state").mkdir(mode=0o700)
    path = str(tmp_path / "state" / "x.lock")
    with cli.lock(path) as first:
        assert first is True
        with cli.lock(path) as second:
            assert second is False
    with cli.lock(path) as again:
        assert again is True


def test_cron_line():
    line = cli.cron_line("/srv/inv/site.py", True, "*/15 * * * *", "alice")
    assert line.startswith("*/15 * * * * alice ")
    assert line.endswith(" -m dockguard drift /srv/inv/site.py --fix </dev/null 2>&1 | logger -t dockguard-drift")
    with pytest.raises(cli.UnitError):
        cli.cron_line("/srv/inv/site.py", False, "* * * *", "alice")
    with pytest.raises(cli.UnitError):
        cli.cron_line("/srv/inv/site.py\n* * * * * root evil", False, "* * * * *", "alice")


# --------------------------------------------------------------------------- every exit path of drift

INVENTORY = "web = [('dh1', {}), ('dh2', {})]\ndb = [('db1', {})]\n"


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    path = tmp_path / "site.py"
    path.write_text(INVENTORY)
    monkeypatch.delenv("DOCKGUARD_PKI_DIR", raising=False)
    return str(path)


def fake_pyinfra(monkeypatch, rc=0, out="plan", notes=None, stderr="", corrupt=()):
    """run_pyinfra that writes drift notes for ``notes`` ({host: [notes]}) and returns ``out``."""
    calls = []

    def run(inventory, *args, drift_dir=None):
        calls.append(args)
        for name, n in (notes or {}).items():
            if drift_dir:
                Path(drift_dir, f"{name}.json").write_text(json.dumps({"host": name, "notes": n}))
        for name in corrupt:
            Path(drift_dir, f"{name}.json").write_text("{not json")
        payload = {"plan": PLAN, "results": None} if out == "plan" else out
        return rc, payload, stderr

    monkeypatch.setattr(cli, "run_pyinfra", run)
    return calls


def test_every_host_checked_and_clean_is_exit_0(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": [], "db1": []}, out={"plan": [], "results": None})
    r = cli.check(inventory, [])
    assert (r["exit_code"], r["errors"]) == (0, [])
    assert {h: v["status"] for h, v in r["hosts"].items()} == {"dh1": "clean", "dh2": "clean", "db1": "clean"}


def test_drift_is_exit_2(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": NOTES, "dh2": [], "db1": []})
    r = cli.check(inventory, [])
    assert r["exit_code"] == 2
    assert r["hosts"]["dh1"]["status"] == "drift" and r["hosts"]["dh2"]["status"] == "clean"


def test_an_inventory_without_hosts_is_exit_1_never_clean(tmp_path, monkeypatch):
    calls = fake_pyinfra(monkeypatch)
    empty = tmp_path / "empty.py"
    empty.write_text("hosts = []\n")
    r = cli.check(str(empty), [])
    assert (r["exit_code"], r["errors"]) == (1, ["no host to check: the inventory has no hosts"])
    assert calls == []  # pyinfra is not even started


def test_a_limit_that_matches_nothing_is_exit_1(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": []})
    r = cli.check(inventory, ["dh9"])
    assert r["exit_code"] == 1
    assert r["errors"] == [
        "--limit 'dh9' matches no host or group of the inventory",
        "no host to check: --limit matches no host",
    ]
    r = cli.check(inventory, ["dh1", "dhx"])  # one good, one typo: still not clean
    assert r["exit_code"] == 1 and r["errors"] == ["--limit 'dhx' matches no host or group of the inventory"]


def test_a_limit_selects_groups_and_globs_as_pyinfra_does(inventory, monkeypatch):
    calls = fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": []}, out={"plan": [], "results": None})
    r = cli.check(inventory, ["web"])
    assert sorted(r["hosts"]) == ["dh1", "dh2"] and r["exit_code"] == 0
    assert calls[-1] == ("--dry", "--limit", "web")
    assert sorted(cli.check(inventory, ["d*1"])["hosts"]) == ["db1", "dh1"]


def test_a_failed_pyinfra_run_is_exit_1_even_when_every_host_left_notes(inventory, monkeypatch):
    stderr = "--> pyinfra error: dockguard refuses to run (nothing was changed on any host):\n  dh1: something\n"
    fake_pyinfra(monkeypatch, rc=1, notes={"dh1": [], "dh2": [], "db1": []}, stderr=stderr)
    r = cli.check(inventory, [])
    assert r["exit_code"] == 1
    assert r["errors"] == [
        "pyinfra exited 1",
        "pyinfra error: dockguard refuses to run (nothing was changed on any host):",
        "dh1: something",
    ]


def test_unreadable_json_is_exit_1_and_no_host_is_clean(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, out=None, notes={"dh1": [], "dh2": NOTES, "db1": []})
    r = cli.check(inventory, [])
    assert r["exit_code"] == 1
    assert r["errors"] == ["pyinfra's JSON output could not be read: the planned changes are unknown"]
    assert r["hosts"]["dh1"] == {
        "status": "unchecked",
        "drift": [],
        "errors": ["its planned changes are unknown (pyinfra's output)"],
    }
    assert r["hosts"]["dh2"]["status"] == "drift"  # what its controls noted still stands


def test_a_host_without_its_notes_file_is_unchecked(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": []}, stderr="    [db1] Could not connect (timed out)\n")
    r = cli.check(inventory, [])
    assert r["exit_code"] == 1
    assert r["hosts"]["db1"] == {"status": "unchecked", "errors": ["Could not connect (timed out)"], "drift": []}


def test_a_corrupt_notes_file_is_unchecked(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": []}, corrupt=["db1"])
    r = cli.check(inventory, [])
    assert r["exit_code"] == 1
    assert r["errors"][0].startswith("the drift notes db1.json could not be read (")
    assert r["hosts"]["db1"]["status"] == "unchecked"


def test_an_inventory_that_does_not_load_is_exit_1(tmp_path, monkeypatch):
    fake_pyinfra(monkeypatch)
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    r = cli.check(str(bad), [])
    assert r["exit_code"] == 1 and r["errors"][0].startswith("the inventory could not be loaded: ")


def test_fix_exit_codes(inventory, monkeypatch):
    fake_pyinfra(monkeypatch, notes={"dh1": NOTES, "dh2": [], "db1": []})
    before = cli.check(inventory, [])
    results = {"operations": [{"name": PLAN[1]["name"], "success": ["dh1"]}], "failed_hosts": []}
    fake_pyinfra(monkeypatch, out={"plan": [], "results": results})
    fixed = cli.fix(inventory, [], before)
    assert fixed["exit_code"] == 0 and fixed["hosts"]["dh1"]["status"] == "corrected"
    fake_pyinfra(monkeypatch, rc=1, out={"plan": [], "results": results | {"failed_hosts": ["dh2"]}})
    failed = cli.fix(inventory, [], before)
    assert failed["exit_code"] == 1 and failed["hosts"]["dh2"]["status"] == "failed"
    fake_pyinfra(monkeypatch, out=None)
    unknown = cli.fix(inventory, [], before)
    assert unknown["exit_code"] == 1
    assert "pyinfra's JSON output could not be read: what was corrected is unknown" in unknown["errors"]


def _drift_main(inventory, *extra):
    return cli.main(["drift", inventory, *extra])


def test_cmd_drift_exit_codes(inventory, monkeypatch, tmp_path, capsys):
    lock = str(tmp_path / "state" / "drift.lock")
    fake_pyinfra(monkeypatch, notes={"dh1": NOTES, "dh2": [], "db1": []})
    assert _drift_main(inventory, "--lock", lock) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "exit 2"
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": [], "db1": []}, out={"plan": [], "results": None})
    assert _drift_main(inventory, "--lock", lock, "--json") == 0
    assert json.loads(capsys.readouterr().out)["exit_code"] == 0


def test_a_held_lock_is_exit_75_never_clean(inventory, monkeypatch, tmp_path, capsys):
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": [], "db1": []}, out={"plan": [], "results": None})
    lock = tmp_path / "state" / "drift.lock"
    with cli.lock(str(lock)) as held:
        assert held
        assert _drift_main(inventory, "--lock", str(lock)) == 75
    assert "another run is in progress" in capsys.readouterr().err


def test_a_lock_in_a_directory_others_can_write_is_refused(inventory, monkeypatch, tmp_path, capsys):
    fake_pyinfra(monkeypatch, notes={"dh1": [], "dh2": [], "db1": []}, out={"plan": [], "results": None})
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert _drift_main(inventory, "--lock", str(shared / "drift.lock")) == 1
    out = capsys.readouterr().out
    assert f"error: the lock could not be taken: {shared} is writable by others (mode 1777)" in out


def test_the_default_lock_is_in_a_private_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    assert cli.default_lock() == str(tmp_path / "st" / "dockguard" / "drift.lock")
    with cli.lock(cli.default_lock()) as held:
        assert held
    assert (tmp_path / "st" / "dockguard").stat().st_mode & 0o777 == 0o700


def test_a_run_for_another_ca_refuses(inventory, monkeypatch, tmp_path, capsys):
    calls = fake_pyinfra(monkeypatch)
    monkeypatch.setenv("DOCKGUARD_PKI_DIR", "/home/alice/.dockguard/pki")
    monkeypatch.setenv("HOME", "/root")
    assert _drift_main(inventory, "--lock", str(tmp_path / "s" / "l")) == 1
    assert calls == []
    assert "but this run was installed for /home/alice/.dockguard/pki" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["drift"], ["bogus"], ["drift", "/nonexistent/inv.py"], ["drift", "inv.py", "--frobnicate"], []],
)
def test_usage_errors_exit_64_not_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 64


def test_pki_client_days_must_be_positive(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["pki", "client", "--days", "0"])
    assert e.value.code == 64


def test_exit_codes_agree_in_help_docs_and_code(capsys):
    guide = (Path(cli.ROOT) / "docs" / "operator-guide.md").read_text()
    assert cli.exit_table_markdown() in guide
    assert [c for c, _ in cli.EXIT_CODES] == [0, 1, 2, 64, 75]
    with pytest.raises(SystemExit):
        cli.main(["drift", "--help"])
    help_text = capsys.readouterr().out
    for code, text in cli.EXIT_CODES:
        assert f"{code:>3}  {text.split(':')[0]}" in help_text


# --------------------------------------------------------------------------- every exit path of report


def _junit(tmp_path, *cases):
    path = tmp_path / "cis.xml"
    body = "".join(f'<testcase name="t{i}[ssh://dh1]">{c}</testcase>' for i, c in enumerate(cases))
    path.write_text(f"<testsuites><testsuite>{body}</testsuite></testsuites>")
    return path


def test_report_exit_codes(tmp_path):
    assert cli.report_exit(0, _junit(tmp_path, "", '<skipped message="n/a"/>'))[0] == 0
    assert cli.report_exit(1, _junit(tmp_path, "", '<failure message="x"/>')) == (2, "1 CIS tests failed")
    assert cli.report_exit(1, _junit(tmp_path, '<error message="x"/>')) == (
        1,
        "1 tests could not check their host (unreachable, a fixture failed)",
    )
    assert cli.report_exit(5, _junit(tmp_path)) == (1, "the CIS suite ran no test (no host in the inventory?)")
    assert cli.report_exit(2, _junit(tmp_path, "")) == (1, "the CIS suite stopped (pytest exited 2)")
    code, why = cli.report_exit(3, tmp_path / "missing.xml")
    assert code == 1 and why.startswith("the CIS suite left no readable JUnit XML")
    (tmp_path / "bad.xml").write_text("<testsuites>")
    assert cli.report_exit(1, tmp_path / "bad.xml")[0] == 1


# --------------------------------------------------------------------------- the unit files


HAVE_ANALYZE = shutil.which("systemd-analyze") is not None


@pytest.fixture
def project_elsewhere(monkeypatch):
    """The unit files depend on where the project and its Python live (PrivateTmp is off when
    they are under /tmp, as a CI clone may be): these tests see one fixed place."""
    monkeypatch.setattr(cli, "ROOT", Path("/srv/dockguard"))
    monkeypatch.setattr(cli.sys, "executable", "/srv/dockguard/.venv/bin/python")


def _units(tmp_path, inventory="/srv/inv/site.py", **kw):
    for name, text in cli.render_units(inventory, True, "hourly", "alice", "/home/alice", **kw).items():
        (tmp_path / name).write_text(text)
    return (tmp_path / "dockguard-drift.service").read_text()


@pytest.mark.usefixtures("project_elsewhere")
def test_unit_values_are_escaped(tmp_path):
    service = _units(tmp_path, inventory='/srv/my inv/100% "$HOME" \\x.py')
    python = cli.COMMAND[0]
    assert (
        f'ExecStart="{python}" "-m" "dockguard" "drift" "/srv/my inv/100%% \\"$$HOME\\" \\\\x.py" '
        '"--lock" "/home/alice/.local/state/dockguard/drift.lock" "--fix"'
    ) in service.splitlines()
    assert 'Description=dockguard drift check of /srv/my inv/100%% "$HOME" \\x.py' in service.splitlines()
    assert "User=alice" in service.splitlines()
    assert (
        'Environment="HOME=/home/alice" "XDG_STATE_HOME=/home/alice/.local/state" '
        '"DOCKGUARD_PKI_DIR=/home/alice/.dockguard/pki" "PYINFRA_PROGRESS=off"'
    ) in service.splitlines()
    if HAVE_ANALYZE:
        cli.verify_units(tmp_path)


@pytest.mark.parametrize("bad", ["/srv/inv.py\nExecStartPre=/bin/evil", "/srv/inv\x00.py", "/srv/inv\r.py"])
@pytest.mark.usefixtures("project_elsewhere")
def test_control_characters_never_reach_a_unit(tmp_path, bad):
    with pytest.raises(cli.UnitError) as e:
        _units(tmp_path, inventory=bad)
    assert "contains a control character" in str(e.value)


@pytest.mark.usefixtures("project_elsewhere")
def test_a_bad_user_never_reaches_a_unit(tmp_path):
    with pytest.raises(cli.UnitError):
        cli.render_units("/srv/inv.py", False, "hourly", "alice\nUser=root", "/home/alice")


@pytest.mark.usefixtures("project_elsewhere")
def test_the_service_is_sandboxed(tmp_path):
    lines = _units(tmp_path).splitlines()
    for setting in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=read-only",
        "CapabilityBoundingSet=",
        'ReadWritePaths="/home/alice/.local/state/dockguard" "' + str(cli.ROOT / "reports/lynis") + '"',
    ):
        assert setting in lines


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed (make deps)")
@pytest.mark.usefixtures("project_elsewhere")
def test_timer_units_pass_systemd_analyze_verify_and_score_well(tmp_path):
    _units(tmp_path)
    cli.verify_units(tmp_path)
    score = cli.security_score(tmp_path / "dockguard-drift.service")
    assert score is not None and float(score.split()[0]) < 2.0, score


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed (make deps)")
def test_on_calendar_is_checked_by_systemd():
    assert cli.check_calendar("hourly") == "hourly"
    assert cli.check_calendar("Mon..Fri *-*-* 06:00") == "Mon..Fri *-*-* 06:00"
    with pytest.raises(cli.UnitError) as e:
        cli.check_calendar("every hour")
    assert "is not a systemd calendar expression" in str(e.value)
    with pytest.raises(cli.UnitError):
        cli.check_calendar("hourly\nExecStartPre=/bin/evil")


def test_the_timer_refuses_root_unless_named(monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setattr(cli.os, "getuid", lambda: 0)
    with pytest.raises(cli.UnitError) as e:
        cli.operator_user(None)
    assert "would run as root" in str(e.value)
    assert cli.operator_user("root")[0] == "root"
    with pytest.raises(cli.UnitError):
        cli.operator_user("no-such-user-here")


def test_install_timer_writes_units_for_the_operator(inventory, tmp_path, monkeypatch, capsys):
    import pwd

    me = pwd.getpwuid(os.getuid())
    monkeypatch.setattr(cli, "check_calendar", lambda e: e)
    monkeypatch.setattr(cli, "unit_values", lambda inv, user, home: {
        "pki": tmp_path / "pki", "state": tmp_path / "state", "reports": [tmp_path / "reports"],
        "tls": False, "protect_home": "read-only"})  # fmt: skip
    dest = tmp_path / "units"
    assert cli.main(["install-timer", inventory, "--user", me.pw_name, "--dest", str(dest), "--no-enable"]) == 0
    assert f"User={me.pw_name}" in (dest / "dockguard-drift.service").read_text().splitlines()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert "systemd-analyze security:" in capsys.readouterr().out


# --------------------------------------------------------------------------- pki rotate-ca, resumed


def test_rotate_ca_stops_at_a_failed_stage_and_resumes_there(tmp_path, capsys):
    from dockguard import pki as tls

    pki = tmp_path / "pki"
    tls.ensure_ca(pki, dry=False)
    results = iter([0, 1])  # stage 1 deploys, stage 2 fails
    assert cli.rotate_ca("inv.py", pki, False, 30, deploy=lambda inv: next(results)) == 1
    assert tls.rotation(pki)["stage"] == 2 and not tls.rotation(pki)["deployed"]
    assert "it resumes here" in capsys.readouterr().err
    deployed = []
    assert cli.rotate_ca("inv.py", pki, False, 30, deploy=lambda inv: deployed.append(inv) or 0) == 0
    assert deployed == ["inv.py", "inv.py"]  # stages 2 and 3 only
    assert tls.rotation(pki) is None
    lines, problems = tls.status(pki)
    assert problems == [] and "rotation: none" in lines


def test_rotate_ca_one_stage_at_a_time(tmp_path):
    from dockguard import pki as tls

    pki = tmp_path / "pki"
    tls.ensure_ca(pki, dry=False)
    for stage in (2, 3):
        assert cli.rotate_ca("inv.py", pki, True, 30, deploy=lambda inv: 0) == 0
        assert tls.rotation(pki)["stage"] == stage
    assert cli.rotate_ca("inv.py", pki, True, 30, deploy=lambda inv: 0) == 0
    assert tls.rotation(pki) is None


def test_apply_hands_pyinfra_the_packaged_deploy_and_options_after_the_double_dash(tmp_path, monkeypatch):
    inventory = tmp_path / "site.py"
    inventory.write_text("hosts = ['a']\n")
    seen = {}

    def run(cmd, cwd=None, **kw):
        seen["cmd"], seen["cwd"] = cmd, cwd
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(cli.subprocess, "run", run)
    assert cli.main(["apply", str(inventory), "--limit", "a", "--", "--json", "-v"]) == 3
    assert seen["cmd"] == [cli.PYINFRA, "-y", "--limit", "a", "--json", "-v", str(inventory), str(cli.DEPLOY_FILE)]
    with pytest.raises(SystemExit) as e:
        cli.main(["drift", str(inventory), "--", "--json"])
    assert e.value.code == 64


@pytest.mark.usefixtures("project_elsewhere")
def test_private_tmp_unless_what_the_service_needs_lives_under_tmp(tmp_path):
    assert "PrivateTmp=yes" in _units(tmp_path).splitlines()
    in_tmp = _units(tmp_path, inventory="/tmp/site/site.py").splitlines()
    assert "PrivateTmp=no" in in_tmp and "RuntimeDirectory=dockguard-drift" in in_tmp
    assert any(line.startswith("Environment=") and '"TMPDIR=/run/dockguard-drift"' in line for line in in_tmp)


def test_drift_names_os_baseline_operations_by_their_lynis_tests():
    from dockguard import cli

    assert cli.cis_of("SSH-7408: sshd drop-in /etc/ssh/sshd_config.d/01-dockguard.conf, checked") == "SSH-7408"
    assert cli.cis_of("USB-1000/STRG-1846/NETW-3200/FILE-6430: kernel modules blacklisted") == (
        "USB-1000/STRG-1846/NETW-3200/FILE-6430"
    )
    assert cli.cis_of("DEB-0280/0811/0831/0880, PKGS-7370, ACCT-9622/9626, HRDN-7230: tools") == (
        "DEB-0280/0811/0831/0880, PKGS-7370, ACCT-9622/9626, HRDN-7230"
    )
    assert cli.cis_of("CIS 2.2: icc") == "2.2"
    assert cli.cis_of("dockguard: something else") == "-"
