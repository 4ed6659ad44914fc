"""Both Debian releases of the lab, side by side (issue 13): Debian 12 (docker.io 20.10,
cgroup v1 in a container) and Debian 13 (docker.io 26.1, containerd 1.7, runc 1.1,
AppArmor 4.1, auditd 4.0, Lynis 3.1; cgroup v2 on the VM host). Each branch that only a
current engine or a Debian 13 host takes is run here on a Debian 13 host and asserted by
what it left on the host; the rest of the suite runs on both releases too (the mixed lab).

The versions of each host are written to reports/lab-versions.json (for the closing note
of a change and for anyone asking "what did this run on").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = (
    '. /etc/os-release; echo "release=$PRETTY_NAME"; '
    "echo \"docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null)\"; "
    "echo \"containerd=$(containerd --version 2>/dev/null | cut -d' ' -f3)\"; "
    "echo \"runc=$(runc --version 2>/dev/null | sed -n 's/^runc version //p')\"; "
    "echo \"apparmor=$(apparmor_parser --version 2>/dev/null | sed -n 's/^AppArmor parser version //p')\"; "
    "echo \"auditd=$(dpkg-query -W -f='${Version}' auditd 2>/dev/null)\"; "
    'echo "lynis=$(lynis --version 2>/dev/null)"; '
    "echo \"systemd=$(systemctl --version | sed -n '1s/^systemd \\([0-9]*\\).*/\\1/p')\"; "
    "echo \"cgroup=$(docker info --format '{{.CgroupVersion}}' 2>/dev/null)\"; "
    'echo "iptables=$(iptables --version 2>/dev/null)"'
)


@pytest.fixture(scope="module")
def releases(hardened_lab):
    lab = hardened_lab
    suites = {h.get("suite", "bookworm") for h in lab.all_hosts.values()}  # the whole lab, lanes or not
    if not {"bookworm", "trixie"} <= suites:
        pytest.fail(f"the lab must run both Debian 12 and Debian 13 hosts (make lab-up SUITES=bookworm,trixie): "
                    f"{ {n: h.get('suite') for n, h in lab.all_hosts.items()} }")  # fmt: skip
    found = {}
    for name in lab.names:
        found[name] = dict(line.split("=", 1) for line in lab.ssh(name, VERSIONS).splitlines() if "=" in line)
        found[name]["kind"] = lab.hosts[name]["kind"]
    out = ROOT / "reports" / "lab-versions.json"
    out.parent.mkdir(exist_ok=True)
    # Each lane of the suite (lab/e2e_lanes.py) adds its hosts to the file (under a lock); a run on
    # the whole lab starts it afresh.
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = {}
        if lab.all_hosts is not lab.hosts and out.exists():
            with contextlib.suppress(ValueError):
                known = {n: v for n, v in json.loads(out.read_text()).items() if n in lab.all_hosts}
        out.write_text(json.dumps(known | found, indent=2, sort_keys=True) + "\n")
    print(json.dumps(found, indent=2, sort_keys=True))
    return lab, found


def test_each_host_runs_the_release_the_lab_booted(releases):
    lab, found = releases
    for name in lab.names:
        release = {"bookworm": "Debian GNU/Linux 12 (bookworm)", "trixie": "Debian GNU/Linux 13 (trixie)"}
        assert found[name]["release"] == release[lab.hosts[name]["suite"]], name
    for name in lab.of_suite("trixie"):
        assert found[name]["docker"].startswith("26."), found[name]
        assert found[name]["apparmor"].startswith("4."), found[name]
        assert found[name]["lynis"].startswith("3.1"), found[name]
        assert "nf_tables" in found[name]["iptables"], found[name]
    for name in lab.of_suite("bookworm"):
        assert found[name]["docker"].startswith("20.10."), found[name]
    # The VM host has its own kernel and the unified cgroup hierarchy; the container hosts share
    # this machine's (cgroup v1 here), which Debian 13's systemd only boots on when told to.
    for name in lab.of_suite("trixie", "vm"):
        assert found[name]["cgroup"] == "2", found[name]


@pytest.mark.needs("container")
def test_a_current_engine_validates_before_a_restart_and_never_restarts_on_a_rejected_file(releases):
    """dockerd --validate (Engine 23+) rejects a bad daemon.json before dockerd is touched: the
    running daemon keeps its pid, the old file is back, and only that host fails."""
    lab, _ = releases
    host = lab.of_suite("trixie", "container")[0]
    cid = lab.start_container(host)
    pid = lab.ssh(host, "systemctl show -p MainPID --value docker").strip()
    before = lab.ssh(host, "cat /etc/docker/daemon.json")
    r = lab.apply(limit=host, hosts={host: {"docker_daemon_extra": {"no-such-option": True}}})
    assert r.rc != 0
    assert "dockerd --validate rejected the new configuration" in r.stderr, r.stderr[-3000:]
    assert "no-such-option" in r.stderr
    assert lab.ssh(host, "systemctl show -p MainPID --value docker").strip() == pid  # never restarted
    assert lab.ssh(host, "cat /etc/docker/daemon.json") == before
    assert lab.docker(host, f"inspect -f '{{{{.State.Running}}}}' {cid}") == "true"
    back = lab.apply(limit=host)
    assert back.rc == 0 and back.totals["success"] == 0, back.stderr[-3000:]
    lab.ssh(host, f"docker rm -f {cid} >/dev/null")


def test_the_newer_docker_info_reports_what_dockguard_set(releases):
    """userns-remap, seccomp and (on the VM) AppArmor in a 26.x engine's SecurityOptions, and
    no-new-privileges in effect in a container (the engine does not list it)."""
    lab, _ = releases
    for host in lab.of_suite("trixie"):
        info = json.loads(lab.docker(host, "info --format '{{json .}}'"))
        options = info["SecurityOptions"]
        assert any(o.startswith("name=userns") for o in options), (host, options)
        assert any(o.startswith("name=seccomp") for o in options), (host, options)
        if lab.hosts[host]["kind"] == "vm":
            assert "name=apparmor" in options, (host, options)
        assert info["LiveRestoreEnabled"] is True
        lab.start_container(host)
        status = lab.docker(host, "run --rm keep:me grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status").split()
        assert status == ["NoNewPrivs:", "1", "Seccomp:", "2"], (host, status)


def test_inter_container_traffic_is_dropped_by_the_engines_firewall(releases):
    """icc=false (CIS 2.2) as the engine applies it, through iptables over nf_tables on both
    releases: a container cannot reach another on the default bridge."""
    lab, _ = releases
    for host in lab.names:
        lab.start_container(host)
        target = lab.docker(host, "run -d keep:me httpd -f -p 8080")
        try:
            ip = lab.docker(
                host, f"inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {target}"
            )
            assert ip, host
            out = lab.docker(host, f"run --rm keep:me sh -c 'wget -q -T 3 -O- http://{ip}:8080/ >/dev/null 2>&1; "
                                   "echo rc=$?'")  # fmt: skip
            assert out != "rc=0", f"{host}: a container reached {ip}:8080 with icc=false"
        finally:
            lab.ssh(host, f"docker rm -f {target} >/dev/null")


@pytest.mark.needs("vm")
def test_debian_13_paths_are_watched_and_dockers_own_paths_too(releases):
    """auditd 4 on the Debian 13 VM: the watches at the paths Debian 13 installs to (merged /usr,
    units in /usr/lib/systemd/system) and at Docker's own paths that auditors' checkers use."""
    lab, _ = releases
    for host in lab.of_suite("trixie", "vm"):
        rules = set(lab.ssh(host, "auditctl -l").splitlines())
        for path in ("/usr/sbin/dockerd", "/usr/sbin/runc", "/usr/bin/runc", "/usr/bin/dockerd",
                     "/usr/lib/systemd/system/docker.service", "/var/run/docker.sock"):  # fmt: skip
            assert f"-w {path} -p wa -k docker" in rules, (host, path)
        assert lab.ssh(host, "readlink /usr/bin/runc").strip() == "../sbin/runc"
        assert "## /usr/bin/runc: Docker's own install path" in lab.ssh(
            host, "cat /etc/audit/rules.d/dockguard-docker.rules"
        )
        # Debian 13 loads the rules at boot in audit-rules.service (auditd 4), which dockguard's file feeds.
        assert lab.ssh(host, "systemctl is-enabled audit-rules.service").strip() == "enabled"


@pytest.mark.needs("vm")
def test_apparmor_4_parser_loads_dockguards_profile(releases):
    lab, found = releases
    for host in lab.of_suite("trixie", "vm"):
        assert found[host]["apparmor"].startswith("4.")
        modes = json.loads(lab.ssh(host, "aa-status --json"))["profiles"]
        assert modes.get("dockguard-default") == "enforce", modes.get("dockguard-default")
        # the parser of this release accepts the file as it is on disk (no cache, no load)
        lab.ssh(host, "apparmor_parser --skip-kernel-load --skip-cache -Q /etc/apparmor.d/dockguard-default")
