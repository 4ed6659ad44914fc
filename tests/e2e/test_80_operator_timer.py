"""The scheduled drift check as the operator, not root (issue 12): `install-timer` for a
non-root user on this machine, the service started with systemctl, its verdict read from the
journal, with the CA from that user's own directory; root's home gets no CA.

Needs systemd as PID 1 on this machine (systemctl, journalctl) and the lab's container hosts.
The operator user `dgoperator` is made for the test and removed after it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
DOCKGUARD = str(ROOT / "dockguard")
USER = "dgoperator"
PORT = 2376


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=1800, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def as_operator(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("runuser", "-u", USER, "--", *cmd, check=check, cwd=ROOT)


@pytest.fixture(scope="module")
def operator(lab):
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        pytest.skip("needs systemd as PID 1 on this machine (systemctl start, journalctl)")
    if os.geteuid() != 0:
        pytest.skip("needs root to make the operator user and install the units")
    made = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        sh("useradd", "--create-home", "--shell", "/bin/bash", USER)
        made = True
    entry = pwd.getpwnam(USER)
    home = Path(entry.pw_dir)
    # The operator's own copy of the lab's SSH key and known hosts (the lab's are root's, 0600).
    ssh = home / "lab-ssh"
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
            "ssh_key": str(ssh / "id_ed25519"), "ssh_known_hosts_file": str(ssh / "known_hosts"),
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
    inventory.write_text(
        f"import json\noperators_hosts = [tuple(h) for h in json.loads({json.dumps(json.dumps(hosts))})]\n"
    )
    for p in [ssh, *ssh.iterdir(), inventory]:
        os.chown(p, entry.pw_uid, entry.pw_gid)
    root_pki = Path("/root/.dockguard")
    root_before = sorted(str(p) for p in root_pki.rglob("*")) if root_pki.exists() else None
    yield {"home": home, "inventory": str(inventory), "tls_host": tls_host, "hosts": containers,
           "root_pki": root_pki, "root_before": root_before}  # fmt: skip
    sh("systemctl", "disable", "--now", "dockguard-drift.timer", check=False)
    for name in ("dockguard-drift.service", "dockguard-drift.timer"):
        Path("/etc/systemd/system", name).unlink(missing_ok=True)
    sh("systemctl", "daemon-reload", check=False)
    sh("systemctl", "reset-failed", "dockguard-drift.service", check=False)
    lab.apply(limit=tls_host)  # TCP listener closed again
    if made:
        sh("userdel", "--remove", USER, check=False)


def start_service() -> tuple[int, str]:
    """systemctl start (the oneshot runs to its end), then its exit status and journal lines."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 1))
    sh("systemctl", "reset-failed", "dockguard-drift.service", check=False)
    sh("systemctl", "start", "dockguard-drift.service", check=False)
    status = sh("systemctl", "show", "-p", "ExecMainStatus", "--value", "dockguard-drift.service").stdout.strip()
    time.sleep(1)  # let journald take the last lines
    journal = sh("journalctl", "-u", "dockguard-drift.service", "--since", since, "-o", "cat", "--no-pager").stdout
    return int(status or -1), journal


def test_the_operator_hardens_with_a_ca_of_their_own(lab, operator):
    r = as_operator(str(ROOT / ".venv/bin/pyinfra"), "-y", operator["inventory"], "deploy.py")
    assert r.returncode == 0, r.stderr[-3000:]
    pki = operator["home"] / ".dockguard" / "pki"
    assert (pki / "ca" / "current" / "ca-key.pem").stat().st_uid == pwd.getpwnam(USER).pw_uid
    assert sorted(p.name for p in (pki / "client").iterdir()) == ["ca.pem", "cert.pem", "key.pem"]


def test_install_timer_for_the_operator(operator):
    r = sh(DOCKGUARD, "install-timer", operator["inventory"], "--user", USER, "--on-calendar", "hourly", cwd=ROOT)
    assert "runs as dgoperator" in r.stdout and "systemd-analyze security:" in r.stdout, r.stdout
    service = Path("/etc/systemd/system/dockguard-drift.service").read_text()
    assert f"User={USER}" in service.splitlines()
    assert f"DOCKGUARD_PKI_DIR={operator['home']}/.dockguard/pki" in service
    assert sh("systemctl", "is-enabled", "dockguard-drift.timer").stdout.strip() == "enabled"
    bad = sh(DOCKGUARD, "install-timer", operator["inventory"], "--user", USER, "--on-calendar", "every hour",
             "--no-enable", "--dest", "/tmp/nowhere", cwd=ROOT, check=False)  # fmt: skip
    assert bad.returncode == 1 and "is not a systemd calendar expression" in bad.stderr


def test_the_scheduled_check_runs_as_the_operator_and_is_clean(lab, operator):
    status, journal = start_service()
    assert status == 0, journal[-5000:]
    assert "dockguard drift check: " + operator["inventory"] in journal
    for name in operator["hosts"]:
        assert f"{name}: clean" in journal
    assert journal.rstrip().endswith("exit 0")
    user = sh("systemctl", "show", "-p", "User", "--value", "dockguard-drift.service").stdout.strip()
    assert user == USER
    # root's home got no CA (and nothing else of dockguard's)
    after = sorted(str(p) for p in operator["root_pki"].rglob("*")) if operator["root_pki"].exists() else None
    assert after == operator["root_before"]


def test_the_scheduled_check_fails_the_unit_on_drift(lab, operator):
    host = operator["hosts"][-1]
    lab.ssh(host, "chmod 666 /var/run/docker.sock")
    try:
        status, journal = start_service()
        assert status == 2, journal[-5000:]
        assert f"{host}: DRIFT" in journal
        assert "/var/run/docker.sock is root:docker 666" in journal
        assert sh("systemctl", "is-failed", "dockguard-drift.service", check=False).stdout.strip() == "failed"
    finally:
        lab.ssh(host, "chmod 660 /var/run/docker.sock")


def test_the_scheduled_check_refuses_a_ca_that_is_not_the_operators(lab, operator):
    """The same unit with HOME pointing elsewhere (as a root run would have it): the CA directory
    differs from the one the unit was installed for, so it refuses and makes no CA."""
    dropin = Path("/etc/systemd/system/dockguard-drift.service.d/test.conf")
    dropin.parent.mkdir(exist_ok=True)
    dropin.write_text("[Service]\nEnvironment=HOME=/tmp\n")
    try:
        sh("systemctl", "daemon-reload")
        status, journal = start_service()
        assert status == 1, journal[-5000:]
        assert "but this run was installed for" in journal
        assert not Path("/tmp/.dockguard").exists()
    finally:
        shutil.rmtree(dropin.parent)
        sh("systemctl", "daemon-reload")
