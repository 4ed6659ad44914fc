"""Pull mode end to end (issue 17): `dockguard pull install` on two lab hosts (a Debian 12 and a
Debian 13 one: a wheelhouse for each Python), drift made by hand on one, its unit started, and
node_exporter there (Debian's prometheus-node-exporter, in the lab images) serving dockguard_*
metrics that show the drift; installed again with --fix, the same metrics show it corrected.
`pull status` agrees with `dockguard drift` throughout, a second install changes nothing, and
`pull remove` leaves nothing behind.

The lab's hosts drop INPUT but for SSH (firewall_input_drop), so node_exporter is read on the host
itself (loopback), with the host's own python3."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]
DOCKGUARD = str(Path(sys.executable).with_name("dockguard"))  # the checkout's venv (make venv)
METRICS = "http://127.0.0.1:9100/metrics"
LEFT = ("/opt/dockguard-pull", "/etc/dockguard/pull", "/var/lib/dockguard/pull",
        "/etc/systemd/system/dockguard-pull.service", "/etc/systemd/system/dockguard-pull.timer",
        "/var/lib/prometheus/node-exporter/dockguard.prom",
        "/var/lib/systemd/timers/stamp-dockguard-pull.timer")  # fmt: skip


def dockguard(*args: str, timeout: float = 3600) -> tuple[int, dict]:
    r = subprocess.run([DOCKGUARD, *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    try:
        return r.returncode, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"dockguard {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        ) from None


def limit(hosts: list[str]) -> list[str]:
    return [a for h in hosts for a in ("--limit", h)]


def scrape(lab, host: str) -> dict[str, float]:
    """dockguard_* samples node_exporter serves on ``host``: {'name{labels}': value}."""
    text = lab.ssh(host, f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{METRICS}', "
                         "timeout=10).read().decode())\"")  # fmt: skip
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(dockguard_\w+(?:\{.*\})?) (\S+)$", line)
        if m:
            out[m[1]] = float(m[2])
    return out


def control(samples: dict[str, float], cis: str) -> float:
    found = [v for k, v in samples.items() if k.startswith("dockguard_control_drift{") and f'cis="{cis}"' in k]
    assert len(found) == 1, f"no single dockguard_control_drift for {cis}: {found}"
    return found[0]


def run_unit(lab, host: str) -> int:
    """Start the host's pull-mode service (as its timer does) and wait for it; its exit code."""
    lab.ssh(host, "systemctl start dockguard-pull.service", check=False, timeout=1800)
    return int(lab.ssh(host, "systemctl show -p ExecMainStatus --value dockguard-pull.service").strip())


def findings(result: dict, host: str) -> list[tuple]:
    return sorted((d["cis"], d["operation"] or "", d["reason"]) for d in result["hosts"][host]["drift"])


def agree(hosts: list[str]) -> tuple[int, dict]:
    """`pull status` and `dockguard drift` say the same of ``hosts``: exit code, status and drift."""
    rc_pull, pulled = dockguard("pull", "status", "inventory/lab.py", *limit(hosts))
    rc_push, pushed = dockguard("drift", "inventory/lab.py", *limit(hosts))
    assert rc_pull == rc_push, (pulled, pushed)
    for h in hosts:
        assert pulled["hosts"][h]["status"] == pushed["hosts"][h]["status"], (h, pulled, pushed)
        assert findings(pulled, h) == findings(pushed, h), h
    return rc_pull, pulled


@pytest.fixture(scope="module")
def pulled(lab):
    hosts = lab.of_kind("container")[:2]
    if len(hosts) < 2:
        pytest.fail("pull mode's e2e test needs two container hosts (make lab-up N=2)")
    for h in hosts:  # Debian's node_exporter, from the apt cache of the lab's images (the hosts have no network)
        lab.ssh(h, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                   "prometheus-node-exporter >/dev/null", timeout=600)  # fmt: skip
        if lab.ssh(h, "systemctl is-active prometheus-node-exporter", check=False).strip() != "active":
            pytest.fail(f"{h}: prometheus-node-exporter is not running")
    assert lab.apply(limit=hosts).rc == 0
    try:
        rc, report = dockguard("pull", "install", "inventory/lab.py", *limit(hosts))
        assert rc == 0, report
        yield hosts
    finally:
        dockguard("pull", "remove", "inventory/lab.py", *limit(hosts))
        for h in hosts:
            lab.ssh(h, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q prometheus-node-exporter >/dev/null; "
                       "rm -rf /var/lib/prometheus", check=False, timeout=600)  # fmt: skip
        lab.apply(limit=hosts)


def test_install_gives_each_host_a_venv_of_its_own_python_and_changes_nothing_the_second_time(lab, pulled):
    for h in pulled:
        mine = lab.ssh(h, "python3 -c 'import sys; print(*sys.version_info[:2])'").split()
        venv = lab.ssh(h, "/opt/dockguard-pull/venv/bin/python -I -c 'import sys, dockguard.pull; "
                          "print(*sys.version_info[:2])'").split()  # fmt: skip
        assert venv == mine, h
        modes = lab.ssh(h, "stat -c '%a %U %n' /etc/dockguard/pull /etc/dockguard/pull/inventory.py "
                           "/var/lib/dockguard/pull /opt/dockguard-pull").splitlines()  # fmt: skip
        assert modes == ["700 root /etc/dockguard/pull", "600 root /etc/dockguard/pull/inventory.py",
                         "700 root /var/lib/dockguard/pull", "755 root /opt/dockguard-pull"], h  # fmt: skip
        assert lab.ssh(h, "find /etc/dockguard/pull -name '*key*' | wc -l").strip() == "0"
        assert lab.ssh(h, "systemctl is-enabled dockguard-pull.timer").strip() == "enabled"
    rc, again = dockguard("pull", "install", "inventory/lab.py", *limit(pulled))
    assert rc == 0 and again["totals"]["success"] == 0, again
    assert {h["status"] for h in again["hosts"].values()} == {"unchanged"}


def test_drift_made_by_hand_shows_in_node_exporter_and_in_pull_status(lab, pulled):
    dirty, clean = pulled
    lab.ssh(dirty, "chmod 666 /var/run/docker.sock")
    assert run_unit(lab, dirty) == 2  # drift found: the unit fails, as `dockguard drift` exits 2
    assert run_unit(lab, clean) == 0
    samples = scrape(lab, dirty)
    assert control(samples, "3.15/3.16") == 1
    assert samples["dockguard_drifted_controls"] >= 1
    assert samples["dockguard_host_checked"] == 1 and samples["dockguard_last_run_success"] == 1
    assert samples["dockguard_last_run_exit_code"] == 2
    assert control(scrape(lab, clean), "3.15/3.16") == 0
    assert scrape(lab, clean)["dockguard_drifted_controls"] == 0
    rc, status = agree(pulled)
    assert rc == 2 and status["hosts"][dirty]["status"] == "drift" and status["hosts"][clean]["status"] == "clean"
    assert ("3.15/3.16", "/var/run/docker.sock is root:docker 666, wants root:docker 660 or stricter") in {
        (d["cis"], d["reason"]) for d in status["hosts"][dirty]["drift"]
    }
    last = json.loads(lab.ssh(dirty, "cat /var/lib/dockguard/pull/last.json"))
    assert last["host"] == dirty and last["result"]["hosts"][dirty]["status"] == "drift"


def test_with_fix_the_host_corrects_itself_and_the_metrics_say_so(lab, pulled):
    dirty, _ = pulled
    lab.ssh(dirty, "chmod 666 /var/run/docker.sock")
    rc, report = dockguard("pull", "install", "inventory/lab.py", "--fix", "--limit", dirty)
    assert rc == 0 and report["hosts"][dirty]["status"] == "changed", report  # its unit now runs --fix
    assert run_unit(lab, dirty) == 0
    assert lab.ssh(dirty, "stat -c %a /var/run/docker.sock").strip() in ("660", "600")
    samples = scrape(lab, dirty)
    assert control(samples, "3.15/3.16") == 0 and samples["dockguard_drifted_controls"] == 0
    assert samples["dockguard_corrected_controls"] >= 1 and samples["dockguard_last_run_success"] == 1
    assert any('mode="fix"' in k for k in samples if k.startswith("dockguard_pull_info"))
    rc, status = agree(pulled)
    assert rc == 0 and {h["status"] for h in status["hosts"].values()} == {"clean"}


def test_an_unchecked_host_never_looks_clean(lab, pulled):
    dirty, _ = pulled
    lab.ssh(dirty, "mv /etc/dockguard/pull/inventory.py /etc/dockguard/pull/inventory.py.away && "
                   "echo 'raise RuntimeError(\"broken\")' > /etc/dockguard/pull/inventory.py")  # fmt: skip
    try:
        assert run_unit(lab, dirty) == 1
        samples = scrape(lab, dirty)
        assert samples["dockguard_host_checked"] == 0 and samples["dockguard_last_run_success"] == 0
        values = {v for k, v in samples.items() if k.startswith("dockguard_control_drift{")}
        assert values and all(v != v for v in values)  # NaN: never 0, never "in line"
        rc, status = dockguard("pull", "status", "inventory/lab.py", "--limit", dirty)
        assert rc == 1 and status["hosts"][dirty]["status"] == "unchecked"
    finally:
        lab.ssh(dirty, "mv /etc/dockguard/pull/inventory.py.away /etc/dockguard/pull/inventory.py")
    rc, report = dockguard("pull", "install", "inventory/lab.py", "--fix", "--limit", dirty)
    assert rc == 0 and report["hosts"][dirty]["status"] == "unchanged", report


def test_remove_leaves_nothing_and_a_second_remove_changes_nothing(lab, pulled):
    rc, report = dockguard("pull", "remove", "inventory/lab.py", *limit(pulled))
    assert rc == 0 and {h["status"] for h in report["hosts"].values()} == {"changed"}, report
    for h in pulled:
        left = lab.ssh(h, " ".join(f"[ -e {p} ] && echo {p};" for p in LEFT) + " true").split()
        assert left == [], (h, left)
        assert lab.ssh(h, "systemctl list-units --all --plain --no-legend 'dockguard-pull*'").strip() == ""
    rc, again = dockguard("pull", "remove", "inventory/lab.py", *limit(pulled))
    assert rc == 0 and {h["status"] for h in again["hosts"].values()} == {"unchanged"}, again
    rc, status = dockguard("pull", "status", "inventory/lab.py", *limit(pulled))
    assert rc == 1 and {h["status"] for h in status["hosts"].values()} == {"unchecked"}
