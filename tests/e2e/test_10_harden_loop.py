"""The first harden loop, end to end on the lab: apply, apply again (nothing
changes), verify with the CIS testinfra suite, correct drift made by hand,
and refuse bad settings before any host is touched.

The tests run in file order and build on each other, as an operator's day would.
"""

from __future__ import annotations

import json
import re

DAEMON_JSON = "/etc/docker/daemon.json"


def bridge_icc(lab, name) -> str:
    opts = json.loads(lab.ssh(name, "docker network inspect bridge --format '{{json .Options}}'"))
    return opts["com.docker.network.bridge.enable_icc"]


def test_first_apply_hardens_every_host_and_second_apply_changes_nothing(lab):
    # Start from Docker as Debian installs it, whatever an earlier run left.
    for name in lab.names:
        lab.reset_to_stock(name)
        assert bridge_icc(lab, name) == "true"

    first = lab.apply()
    assert first.rc == 0, first.stderr[-3000:]
    assert first.totals["error"] == 0
    assert first.changed_hosts() == set(lab.names)
    for name in lab.names:
        assert "CIS 2.x: /etc/docker/daemon.json content" in first.changed_ops(name)
        assert bridge_icc(lab, name) == "false"

    second = lab.apply("--debug")
    assert second.rc == 0, second.stderr[-3000:]
    assert second.totals["success"] == 0, second.out["results"]["operations"]
    assert second.totals["error"] == 0
    assert second.totals["no_change"] > 0
    # A no-op run reads each host once: every fact of every area in one command (the
    # preflight's batch, operations/prefetch.py), none on its own.
    read = re.findall(r"Getting fact: (\S+)", second.stderr)
    assert read == ["dockguard.operations.prefetch.Batch"] * len(lab.names), read


def test_cis_suite_passes_on_every_host(lab, tmp_path):
    rc, out, results = lab.cis(tmp_path / "cis.xml")
    assert rc == 0, out[-5000:]
    for host in lab.names:
        ran = {name: r for name, r in results.items() if name.endswith(f"[ssh://{host}]")}
        assert ran[f"test_cis_2_2_icc_disabled[ssh://{host}]"] == "passed"
        assert ran[f"test_cis18_2_10_userns_remap[ssh://{host}]"] == "passed"
        assert sum(r == "passed" for r in ran.values()) >= 18, ran


def test_hand_made_drift_is_corrected(lab):
    """On the container hosts a file and a running setting; on the VM hosts a stopped daemon (each
    lane of lab/e2e_lanes.py makes the drift its hosts have)."""
    containers, drifted = lab.of_kind("container"), set()
    if containers:
        file_host, live_host = containers[:2]
        # A managed file edited and loosened by hand.
        lab.ssh(file_host, f'sed -i \'s/"icc": false/"icc": true/\' {DAEMON_JSON} && chmod 666 {DAEMON_JSON}')
        # A running setting: dockerd restarted by hand with icc on, then the file put
        # back as dockguard wrote it (what a run interrupted before its restart leaves). No container
        # runs there: with live-restore, dockerd keeps the bridge of running containers as it was
        # (test_20 covers that case).
        lab.ssh(
            live_host,
            "docker rm -f $(docker ps -aq) >/dev/null 2>&1; "
            f'cp {DAEMON_JSON} /root/daemon.json.good && sed -i \'s/"icc": false/"icc": true/\' {DAEMON_JSON} '
            f"&& systemctl restart docker && cp /root/daemon.json.good {DAEMON_JSON} && chmod 644 {DAEMON_JSON}",
        )
        assert bridge_icc(lab, live_host) == "true"
        drifted |= {file_host, live_host}
    for vm in lab.of_kind("vm"):  # and a daemon stopped by hand
        lab.ssh(vm, "systemctl stop docker.service docker.socket")
        drifted.add(vm)
    assert drifted, f"no container or VM host to make drift on: {lab.names}"

    fix = lab.apply()
    assert fix.rc == 0, fix.stderr[-3000:]
    assert fix.changed_hosts() == drifted
    if containers:
        assert "CIS 2.x: /etc/docker/daemon.json content" in fix.changed_ops(file_host)
        assert "CIS 3.x: owner and mode of Docker files, sockets, units and certificates" in fix.changed_ops(file_host)
        assert fix.changed_ops(live_host) == [
            "dockerd: restart when the config changed or the daemon does not match it"
        ]
        assert lab.ssh(file_host, f"stat -c '%a %U:%G' {DAEMON_JSON}").split() == ["644", "root:root"]
    for name in drifted:
        assert bridge_icc(lab, name) == "false"

    again = lab.apply()
    assert again.totals["success"] == 0, again.out["results"]["operations"]


def test_bad_settings_stop_the_run_before_any_host_is_touched(lab):
    before = {n: lab.ssh(n, f"sha256sum {DAEMON_JSON}") for n in lab.names}
    r = lab.apply("--data", "docker_icc=maybe", "--data", "docker_log_max_fil=4")
    assert r.rc != 0
    assert "invalid dockguard settings (nothing was changed on any host)" in r.stderr
    for name in lab.names:
        assert f"{name}: docker_icc: expected a boolean, got a string 'maybe'" in r.stderr
        assert f"{name}: docker_log_max_fil: unknown setting (did you mean docker_log_max_file?)" in r.stderr
    assert {n: lab.ssh(n, f"sha256sum {DAEMON_JSON}") for n in lab.names} == before
    # A TCP socket without client certificates is refused the same way.
    tcp = lab.apply("--data", "docker_tcp_listen=0.0.0.0:2375", "--data", "docker_tls_verify=false")
    assert tcp.rc != 0
    assert (
        "docker_tcp_listen: dockerd would listen on TCP 0.0.0.0:2375 without verifying client certificates"
        in tcp.stderr
    )
    assert {n: lab.ssh(n, f"sha256sum {DAEMON_JSON}") for n in lab.names} == before
