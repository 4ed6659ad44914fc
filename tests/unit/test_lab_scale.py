"""The lab's checks of this machine's kernel limits (lab/labctl.py), and the benchmark's
arithmetic (bench/run.py): rows, CPU per host, round trips."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


labctl = _load("labctl_under_test", ROOT / "lab" / "labctl.py")
bench = _load("bench_under_test", ROOT / "bench" / "run.py")


@pytest.fixture
def proc_sys(tmp_path, monkeypatch):
    """A /proc/sys of files under tmp_path: {key: value} written; returns a reader."""

    def path(key: str) -> Path:
        return tmp_path / key.replace(".", "/")

    monkeypatch.setattr(labctl, "_sysctl_path", path)

    def make(values: dict[str, int]):
        for key, value in values.items():
            path(key).parent.mkdir(parents=True, exist_ok=True)
            path(key).write_text(f"{value}\n")
        return lambda key: int(path(key).read_text())

    return make


def test_the_needs_grow_with_the_hosts_from_what_the_machine_keeps():
    one, hundred = labctl.limit_needs(1), labctl.limit_needs(100)
    for key, (base, per_host) in labctl.KERNEL_LIMITS.items():
        assert one[key] == base + per_host
        assert hundred[key] - one[key] == 99 * per_host
    # The limit the lab stopped at (about 14 hosts at the kernel's default of 128) is checked.
    assert labctl.limit_needs(14)["fs.inotify.max_user_instances"] > 128


def test_limits_that_are_too_low_are_raised_and_put_back(proc_sys):
    read = proc_sys({key: 1 for key in labctl.KERNEL_LIMITS})
    raised, refused = labctl.check_kernel_limits(100)
    assert refused == []
    need = labctl.limit_needs(100)
    assert raised == {key: (1, need[key]) for key in labctl.KERNEL_LIMITS}
    assert all(read(key) == need[key] for key in labctl.KERNEL_LIMITS)
    labctl.restore_kernel_limits(raised)
    assert all(read(key) == 1 for key in labctl.KERNEL_LIMITS)


def test_limits_high_enough_are_left_alone(proc_sys):
    high = {key: 10**7 for key in labctl.KERNEL_LIMITS}
    read = proc_sys(high)
    assert labctl.check_kernel_limits(100) == ({}, [])
    assert all(read(key) == 10**7 for key in labctl.KERNEL_LIMITS)


def test_a_limit_someone_changed_since_is_not_put_back(proc_sys):
    key = "fs.inotify.max_user_instances"
    read = proc_sys({key: 128})
    raised = {key: (128, 4000)}
    labctl._sysctl_path(key).write_text("9999\n")  # an admin raised it further while the lab ran
    labctl.restore_kernel_limits(raised)
    assert read(key) == 9999


def test_a_limit_that_cannot_be_raised_is_refused_with_the_sysctl_to_run(proc_sys):
    proc_sys({key: 1 for key in labctl.KERNEL_LIMITS})
    raised, refused = labctl.check_kernel_limits(30, raise_them=False)
    assert raised == {}
    need = labctl.limit_needs(30)
    assert len(refused) == len(labctl.KERNEL_LIMITS)
    for key in labctl.KERNEL_LIMITS:
        line = next(r for r in refused if r.startswith(key))
        assert f"`sysctl -w {key}={need[key]}`" in line and "30 container hosts" in line


def test_memory_that_cannot_hold_the_hosts_is_refused(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    4194304 kB\n")  # 4096 MiB
    real = labctl.Path

    def fake(p, *a):
        return meminfo if str(p) == "/proc/meminfo" else real(p, *a)

    monkeypatch.setattr(labctl, "Path", fake)
    fits = (4096 - labctl.MEMORY_SPARE_MB) // labctl.MEMORY_PER_HOST_MB
    assert labctl.check_memory(fits) == []
    (line,) = labctl.check_memory(fits + 1)
    assert f"{fits + 1} container hosts" in line and "4096 MiB are available" in line


# --------------------------------------------------------------------------- the benchmark


def _run(tool, scenario, size, wall, ctl, hosts_cpu, wan=False, rtt=0):
    return {"tool": tool, "scenario": scenario, "size": size, "wall_s": wall, "controller_cpu_s": ctl,
            "host_cpu_net_s": hosts_cpu, "maxrss_mb": 100.0, "tree_peak_mb": 120.0, "wan": wan, "rtt_ms": rtt,
            "outcome": {"changed": 0}}  # fmt: skip


def test_rows_give_cpu_per_host_on_each_end():
    runs = [
        _run("dockguard", "noop_apply", 10, 3.0, 2.0, {f"dh{i}": 0.2 for i in range(10)}),
        _run("dockguard", "noop_apply", 10, 5.0, 2.4, {f"dh{i}": 0.4 for i in range(10)}),
    ]
    (row,) = bench.summarize(runs, ["dockguard"])
    dg = row["dockguard"]
    assert dg["wall_s"]["median"] == 4.0
    assert dg["controller_cpu_s"] == 2.2 and dg["controller_cpu_per_host_s"] == 0.22
    assert dg["host_cpu_per_host_s"] == 0.3 and dg["host_cpu_per_host_max_s"] == 0.4


def test_a_row_takes_its_commands_from_the_counted_runs_and_its_cpu_from_the_others():
    """Counting makes every host's sshd log at DEBUG1 (and journald store it): the no-op rows
    get their time, CPU and memory from the runs without it, their commands from the counted."""
    counted = _run("dockguard", "noop_apply", 2, 3.0, 2.0, {"dh1": 0.3, "dh2": 0.3})
    counted.update(counted=True, remote={h: {"exec": 1, "uploads": 0, "downloads": 0, "sftp_sessions": 0,
                                             "connections": 1, "suppressed": 0} for h in ("dh1", "dh2")})  # fmt: skip
    quiet = _run("dockguard", "noop_apply", 2, 2.0, 1.0, {"dh1": 0.1, "dh2": 0.2})
    quiet["counted"] = False
    (row,) = bench.summarize([counted, quiet], ["dockguard"])
    dg = row["dockguard"]
    assert dg["measured_on"] == "uncounted runs"
    assert dg["wall_s"]["median"] == 2.0 and dg["controller_cpu_s"] == 1.0
    assert dg["host_cpu_per_host_s"] == 0.15 and dg["host_cpu_per_host_max_s"] == 0.2
    assert dg["remote_per_host"]["exec"] == 1 and dg["remote_per_host"]["connections"] == 1
    # A first apply is only ever counted: its row is measured on those runs.
    first = dict(counted, scenario="first_apply")
    (row,) = bench.summarize([first], ["dockguard"])
    assert row["dockguard"]["measured_on"] == "counted runs" and row["dockguard"]["wall_s"]["median"] == 3.0


def test_the_cpu_targets_use_the_slope_of_the_controller_and_the_worst_host():
    runs = [
        _run("dockguard", "noop_apply", 1, 1.0, 1.5, {"dh1": 0.1}),
        _run("dockguard", "noop_apply", 100, 6.0, 3.0, {f"dh{i}": 0.12 for i in range(100)}),
    ]
    checks = {c["target"]: c for c in bench.targets(bench.summarize(runs, ["dockguard"]))}
    ctl = checks["a no-op check (noop_apply) costs at most 0.02 s of controller CPU per added host"]
    assert ctl["pass"] is True and ctl["value"].startswith("0.0152 s per host")
    host = checks["a no-op check (noop_apply) costs at most 0.15 s of host CPU per host"]
    assert host["pass"] is True and "0.120 s at 100" in host["value"]
    runs.append(_run("dockguard", "noop_apply", 100, 6.0, 3.0, {f"dh{i}": 0.5 for i in range(100)}))
    checks = {c["target"]: c for c in bench.targets(bench.summarize(runs, ["dockguard"]))}
    assert checks["a no-op check (noop_apply) costs at most 0.15 s of host CPU per host"]["pass"] is False


def test_round_trips_are_the_slope_of_wall_time_against_the_round_trip():
    # 1.2 s locally plus 14 sequential round trips.
    runs = [_run("dockguard", "drift_check", 10, 1.2 + 14 * rtt / 1000, 2.0, {"dh1": 0.1}, wan=True, rtt=rtt)
            for rtt in (0, 50, 150)]  # fmt: skip
    rows = bench.summarize(runs, ["dockguard"])
    rt = bench.round_trips(rows, "dockguard", "drift_check")
    assert rt["round_trips"] == 14.0 and rt["intercept_s"] == 1.2
    checks = {c["target"]: c for c in bench.targets(rows)}
    assert checks["a no-op check (drift_check) makes at most 10 sequential round trips per host"]["pass"] is False
    # One delay is not a slope: no verdict, rather than a made-up one.
    assert bench.round_trips(rows[:1], "dockguard", "drift_check") is None


def test_the_wan_rows_are_kept_apart_from_the_local_rows_of_the_same_size():
    runs = [
        _run("dockguard", "drift_check", 10, 2.0, 2.0, {"dh1": 0.1}),
        _run("dockguard", "drift_check", 10, 2.5, 2.0, {"dh1": 0.1}, wan=True, rtt=0),
    ]
    rows = bench.summarize(runs, ["dockguard"])
    assert [(r["wan"], r["dockguard"]["wall_s"]["median"]) for r in rows] == [(False, 2.0), (True, 2.5)]


def test_the_bench_inventory_leaves_the_baseline_out_only_for_the_playbook_comparison(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    (tmp_path / "inventory").mkdir()
    docker = bench.dockguard_inventory(["dh1"], "t1", "docker").read_text()
    assert f"'dockguard_disabled_areas': {bench.BASELINE_AREAS!r}" in docker
    full = bench.dockguard_inventory(["dh1"], "t2", "all").read_text()
    assert "dockguard_disabled_areas" not in full and "'os_packages_aide': False" in full


def test_the_baseline_areas_the_bench_leaves_out_are_the_deploys_os_baseline():
    from dockguard.deploy import AREA_NAMES

    # The deploy's areas after Docker's own (docker_group is the last of those), Lynis aside.
    after_docker = list(AREA_NAMES[AREA_NAMES.index("docker_group") + 1 :])
    assert [a for a in after_docker if a != "lynis"] == bench.BASELINE_AREAS


# --------------------------------------------------------------------------- what a no-op run costs a host


def test_digests_come_from_one_sha256sum_and_a_bad_line_fails_that_host():
    from dockguard.operations.content import Digests
    from pyinfra.api.exceptions import FactProcessError

    cmd = Digests().command(["/etc/a b", "/etc/c"])
    assert cmd.count("sha256sum") == 1 and "'/etc/a b'" in cmd
    digest = "0" * 63 + "f"
    assert Digests().process([f"{digest}  /etc/a b", f"{digest} */etc/c", "- /etc/d"]) == {
        "/etc/a b": digest, "/etc/c": digest, "/etc/d": None}  # fmt: skip
    for bad in ("xyz  /etc/a", f"{digest} /etc/a", f"{digest[:-1]}g  /etc/a", digest):
        with pytest.raises(FactProcessError):
            Digests().process([bad])


def test_the_hosts_daily_timers_are_stopped_for_the_bench_and_started_again(tmp_path):
    """TIMERS_OFF, run by a real sh against a systemctl that knows two active timers: it stops
    each active one with its job, names them, and leaves the inactive ones alone."""
    import subprocess

    calls = tmp_path / "calls"
    fake = tmp_path / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'if [ "$1" = is-active ]; then case "$3" in lynis.timer|man-db.timer) exit 0;; esac; exit 3; fi\n'
    )
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", bench.TIMERS_OFF], env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert bench.stopped_timers(out + "\nnoise.timer junk") == ["lynis.timer", "man-db.timer"]
    stops = [line for line in calls.read_text().splitlines() if line.startswith("stop")]
    assert stops == ["stop lynis.timer lynis.service", "stop man-db.timer man-db.service"]
    assert bench.timers_on(["lynis.timer", "man-db.timer"]) == "systemctl start lynis.timer man-db.timer"
    assert bench.timers_on([]) == "true"
