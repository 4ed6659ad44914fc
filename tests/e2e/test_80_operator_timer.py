"""The scheduled drift check as the operator, not root (issue 12): `install-timer` for a
non-root user on the operator's machine, the service started with systemctl, its verdict read
from the journal, with the CA from that user's own directory; root's home gets no CA.

The operator's machine is this machine with systemd as PID 1 (`labctl.py operator-up`): its own
root file system booted as a throw-away systemd-nspawn container in this machine's network, so
it reaches the lab's hosts as this machine does and needs no systemd here. Every systemctl,
journalctl, useradd, runuser and install-timer runs inside it; the operator user `dgoperator`,
its home, its CA and the units live in its overlay and are gone when it stops. Needs root and
systemd-nspawn on this machine, and the lab's container hosts."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
DOCKGUARD = str(Path(sys.executable).with_name("dockguard"))  # the checkout's venv (make venv)
USER = "dgoperator"
PORT = 2376


@pytest.fixture(scope="module")
def machine(lab):
    missing = [t for t in ("systemd-nspawn", "nsenter") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {' and '.join(missing or ['systemd-nspawn'])} for the operator machine"
        if os.environ.get("DOCKGUARD_REQUIRE_LAB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with lab.operator() as m:
        yield m


def as_operator(machine, *cmd: str, check: bool = True):
    return machine.run(*cmd, user=USER, cwd=ROOT, check=check)


@pytest.fixture(scope="module")
def operator(lab, machine):
    machine.run("useradd", "--create-home", "--shell", "/bin/bash", USER)
    entry = machine.account(USER)
    home = entry.home
    # The operator's own copy of the lab's SSH key and known hosts (the lab's are root's, 0600).
    ssh = machine.path(home / "lab-ssh")
    ssh.mkdir(mode=0o700, exist_ok=True)
    for name in ("id_ed25519", "known_hosts"):
        shutil.copy(STATE / "ssh" / name, ssh / name)
    containers = lab.of_kind("container")
    tls_host = containers[0]
    hosts = []
    for name in containers:
        h = lab.hosts[name]
        data = {
            "ssh_hostname": h["address"], "ssh_port": h["port"], "ssh_user": "root",
            "ssh_key": str(home / "lab-ssh/id_ed25519"), "ssh_known_hosts_file": str(home / "lab-ssh/known_hosts"),
            "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False, "ssh_look_for_keys": False,
            # what inventory/group_data/lab.py gives the lab's hosts
            "docker_default_ulimits": {"nofile": {"soft": 16384, "hard": 16384},
                                       "nproc": {"soft": 8192, "hard": 16384}},
            "lynis_enabled": False,
        }  # fmt: skip
        if name == tls_host:
            data["docker_tcp_listen"] = f"0.0.0.0:{PORT}"
        hosts.append((name, data))
    inventory = home / "site.py"
    machine.path(inventory).write_text(
        f"import json\noperators_hosts = [tuple(h) for h in json.loads({json.dumps(json.dumps(hosts))})]\n"
    )
    for p in [ssh, *ssh.iterdir(), machine.path(inventory)]:
        os.chown(p, entry.uid, entry.gid)
    root_pki = machine.path("/root/.dockguard")  # root's home as the operator machine has it
    root_before = sorted(str(p) for p in root_pki.rglob("*")) if root_pki.exists() else None
    yield {"home": home, "uid": entry.uid, "inventory": str(inventory), "tls_host": tls_host, "hosts": containers,
           "root_pki": root_pki, "root_before": root_before}  # fmt: skip
    # The user, its home and the units go with the operator machine. The hosts back to the lab's own
    # settings (the operator's inventory has none of group_data/lab.py: the TCP listener, the firewall).
    assert lab.apply(limit=containers).rc == 0


def start_service(machine) -> tuple[int, str]:
    """systemctl start (the oneshot runs to its end), then its exit status and journal lines."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 1))
    machine.run("systemctl", "reset-failed", "dockguard-drift.service", check=False)
    machine.run("systemctl", "start", "dockguard-drift.service", check=False)
    status = machine.run("systemctl", "show", "-p", "ExecMainStatus", "--value", "dockguard-drift.service")
    time.sleep(1)  # let journald take the last lines
    journal = machine.run("journalctl", "-u", "dockguard-drift.service", "--since", since, "-o", "cat", "--no-pager")
    return int(status.stdout.strip() or -1), journal.stdout


def test_the_operator_hardens_with_a_ca_of_their_own(lab, machine, operator):
    r = as_operator(machine, str(ROOT / ".venv/bin/pyinfra"), "-y", operator["inventory"], "deploy.py")
    assert r.returncode == 0, r.stderr[-3000:]
    pki = machine.path(operator["home"] / ".dockguard" / "pki")
    assert (pki / "ca" / "current" / "ca-key.pem").stat().st_uid == operator["uid"]
    assert sorted(p.name for p in (pki / "client").iterdir()) == ["ca.pem", "cert.pem", "key.pem"]


def test_install_timer_for_the_operator(machine, operator):
    r = machine.run(
        DOCKGUARD, "install-timer", operator["inventory"], "--user", USER, "--on-calendar", "hourly", cwd=ROOT
    )
    assert "runs as dgoperator" in r.stdout and "systemd-analyze security:" in r.stdout, r.stdout
    service = machine.path("/etc/systemd/system/dockguard-drift.service").read_text()
    assert f"User={USER}" in service.splitlines()
    assert f"DOCKGUARD_PKI_DIR={operator['home']}/.dockguard/pki" in service
    assert machine.run("systemctl", "is-enabled", "dockguard-drift.timer").stdout.strip() == "enabled"
    bad = machine.run(DOCKGUARD, "install-timer", operator["inventory"], "--user", USER, "--on-calendar",
                      "every hour", "--no-enable", "--dest", "/tmp/nowhere", cwd=ROOT, check=False)  # fmt: skip
    assert bad.returncode == 1 and "is not a systemd calendar expression" in bad.stderr


def test_the_scheduled_check_runs_as_the_operator_and_is_clean(lab, machine, operator):
    status, journal = start_service(machine)
    assert status == 0, journal[-5000:]
    assert "dockguard drift check: " + operator["inventory"] in journal
    for name in operator["hosts"]:
        assert f"{name}: clean" in journal
    assert "exit 0" in journal.splitlines()  # the check's last line (systemd's own lines follow it)
    user = machine.run("systemctl", "show", "-p", "User", "--value", "dockguard-drift.service").stdout.strip()
    assert user == USER
    # root's home got no CA (and nothing else of dockguard's)
    after = sorted(str(p) for p in operator["root_pki"].rglob("*")) if operator["root_pki"].exists() else None
    assert after == operator["root_before"]


def test_the_scheduled_check_fails_the_unit_on_drift(lab, machine, operator):
    host = operator["hosts"][-1]
    lab.ssh(host, "chmod 666 /var/run/docker.sock")
    try:
        status, journal = start_service(machine)
        assert status == 2, journal[-5000:]
        assert f"{host}: DRIFT" in journal
        assert "/var/run/docker.sock is root:docker 666" in journal
        assert machine.run("systemctl", "is-failed", "dockguard-drift.service", check=False).stdout.strip() == "failed"
    finally:
        lab.ssh(host, "chmod 660 /var/run/docker.sock")


def test_the_scheduled_check_refuses_a_ca_that_is_not_the_operators(lab, machine, operator):
    """The same unit with HOME pointing elsewhere (as a root run would have it): the CA directory
    differs from the one the unit was installed for, so it refuses and makes no CA."""
    dropin = machine.path("/etc/systemd/system/dockguard-drift.service.d/test.conf")
    dropin.parent.mkdir(exist_ok=True)
    dropin.write_text("[Service]\nEnvironment=HOME=/tmp\n")
    try:
        machine.run("systemctl", "daemon-reload")
        status, journal = start_service(machine)
        assert status == 1, journal[-5000:]
        assert "but this run was installed for" in journal
        assert machine.run("test", "-e", "/tmp/.dockguard", check=False).returncode == 1  # its own /tmp
    finally:
        shutil.rmtree(dropin.parent)
        machine.run("systemctl", "daemon-reload")
