"""Scheduled drift correction end to end: tamper with different controls on two hosts,
the drift check names exactly those controls on exactly those hosts (exit 2), --fix
corrects them, the next check is clean (exit 0); a host that cannot be reached is
reported as such (exit 1), never as clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DOCKGUARD = str(Path(sys.executable).with_name("dockguard"))  # the checkout's venv (make venv)


def drift(*args: str) -> tuple[int, dict]:
    r = subprocess.run([DOCKGUARD, "drift", "inventory/lab.py", "--json", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    return r.returncode, json.loads(r.stdout)


def found(result: dict, host: str) -> set[tuple[str, str]]:
    return {(d["cis"], d["reason"]) for d in result["hosts"][host]["drift"]}


def test_clean_lab_has_no_drift(lab):
    assert lab.apply().rc == 0
    rc, result = drift()
    assert rc == 0, result
    assert {h: r["status"] for h, r in result["hosts"].items()} == {n: "clean" for n in lab.names}


def test_tampered_controls_are_found_fixed_and_clean_again(lab):
    """A container host's daemon.json and socket, and a VM host's audit (which a container host
    cannot run): each lane of lab/e2e_lanes.py tampers with the hosts it has."""
    containers, vms = lab.of_kind("container"), lab.of_kind("vm")
    if not vms and not containers:
        pytest.skip(f"needs a container host or the lab's VM host (make lab-up VM=1): {lab.names}")
    tampered = set()
    if containers:
        container = containers[0]
        lab.ssh(
            container,
            'sed -i \'s/"icc": false/"icc": true/\' /etc/docker/daemon.json && chmod 666 /var/run/docker.sock',
        )
        tampered.add(container)
    if vms:
        vm = vms[0]
        lab.ssh(vm, "auditctl -W /etc/docker -p wa -k docker && systemctl stop auditd")
        tampered.add(vm)

    rc, result = drift()
    assert rc == 2, result
    assert {h for h, r in result["hosts"].items() if r["status"] == "drift"} == tampered
    if containers:
        assert found(result, container) == {
            ("2.x", "its configuration files differ from the ones dockerd last started healthy with"),
            ("3.15/3.16", "/var/run/docker.sock is root:docker 666, wants root:docker 660 or stricter"),
            ("2.x", "differs from what dockguard sets"),  # the daemon.json content operation
        }
        assert {d["operation"] for d in result["hosts"][container]["drift"]} == {
            "dockerd: restart when the config changed or the daemon does not match it",
            "CIS 3.x: owner and mode of Docker files, sockets, units and certificates",
            "CIS 2.x: /etc/docker/daemon.json content",
        }
    if vms:
        assert found(result, vm) == {
            ("1.1", "auditd is inactive"),
            ("1.1.3-1.1.18", "1 Docker audit watches missing from the kernel: -w /etc/docker -p wa -k docker"),
        }

    rc, fixed = drift("--fix")
    assert rc == 0, fixed
    for host in tampered:
        assert fixed["hosts"][host]["status"] == "corrected"
    if vms:
        assert {c["cis"] for c in fixed["hosts"][vm]["corrected"]} == {"1.1", "1.1.3-1.1.18"}

    rc, again = drift()
    assert rc == 0, again


@pytest.mark.needs("container")
def test_an_unreachable_host_is_reported_never_clean(lab):
    down = lab.of_kind("container")[-1]
    veth = lab.hosts[down]["veth"]
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        rc, result = drift()
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert rc == 1, result
    assert result["hosts"][down]["status"] == "unchecked"
    assert result["hosts"][down]["errors"]
    others = [n for n in lab.names if n != down]
    assert all(result["hosts"][n]["status"] == "clean" for n in others)


@pytest.mark.needs("container")
def test_runs_never_overlap(lab, tmp_path):
    import fcntl

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    lock = state / "drift.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = subprocess.run([DOCKGUARD, "drift", "inventory/lab.py", "--lock", str(lock)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 75, r.stderr  # never clean: a timer counts it as failed
    assert "another run is in progress" in r.stderr


@pytest.mark.needs("container")
def test_a_limit_that_matches_no_host_is_never_clean(lab):
    r = subprocess.run([DOCKGUARD, "drift", "inventory/lab.py", "--json", "--limit", "dh99"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["errors"] == [
        "--limit 'dh99' matches no host or group of the inventory",
        "no host to check: --limit matches no host",
    ]


@pytest.mark.needs("container")
def test_a_limit_by_group_checks_the_group(lab):
    rc, result = drift("--limit", "lab_containers")
    assert rc == 0, result
    assert sorted(result["hosts"]) == lab.of_kind("container")


@pytest.mark.needs("container")
def test_usage_errors_are_not_drift(lab):
    r = subprocess.run([DOCKGUARD, "drift"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 64
