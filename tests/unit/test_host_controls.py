"""Audit watches from the host's paths, Lynis gate, docker group allowlist."""

import json
from pathlib import Path

from dockguard.operations import audit, docker_group, lynis

FIXTURES = Path(__file__).parent / "facts"


def _paths(name):
    return json.loads((FIXTURES / "hostpaths.DockerHostPaths" / name).read_text())["fact"]


def test_watches_cover_every_existing_docker_path_on_debian():
    assert audit.watched_paths(_paths("debian_docker_io.json")) == [
        "/etc/containerd/config.toml",
        "/etc/default/docker",
        "/etc/docker",
        "/etc/docker/daemon.json",
        "/lib/systemd/system/docker.service",
        "/lib/systemd/system/docker.socket",
        "/run/containerd",
        "/run/containerd/containerd.sock",
        "/usr/bin/containerd",
        "/usr/bin/containerd-shim",
        "/usr/bin/containerd-shim-runc-v1",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/docker",
        "/usr/bin/dockerd",  # Docker's own path (absent here): auditors' checkers look there
        "/usr/bin/runc",  # likewise
        "/usr/sbin/dockerd",
        "/usr/sbin/runc",
        "/var/lib/docker",
        "/var/run/docker.sock",  # CIS 1.7.0/1.8.0 1.1.9
    ]


def test_debian_13_watches_its_binaries_and_dockers_own_paths():
    paths = _paths("debian13_docker_io.json")
    watched = audit.watched_paths(paths)
    assert {"/usr/sbin/dockerd", "/usr/sbin/runc", "/usr/lib/systemd/system/docker.service"} <= set(watched)
    assert paths["stat"]["/usr/bin/runc"] == {"mode": "777", "user": "root", "group": "root", "type": "symbolic link",
                                              "target": "../sbin/runc"}  # fmt: skip
    # /usr/bin/runc a link to the binary, /usr/bin/dockerd absent: both watched, the real binary named
    assert audit.upstream_paths(paths) == {"/usr/bin/dockerd": "/usr/sbin/dockerd", "/usr/bin/runc": "/usr/sbin/runc"}
    assert "-w /usr/bin/runc -p wa -k docker" in audit.rule_lines(watched)


def test_an_upstream_path_holding_a_file_of_its_own_is_not_claimed():
    paths = {"bins": {"dockerd": "/usr/sbin/dockerd"}, "units": {},
             "stat": {"/usr/bin/dockerd": {"mode": "755", "user": "root", "group": "root", "type": "regular file"}}}  # fmt: skip
    assert audit.upstream_paths(paths) == {}
    assert audit.upstream_paths({"bins": {"dockerd": "/usr/bin/dockerd"}, "stat": {}}) == {}  # Docker CE: the same


def test_watches_follow_the_distribution_and_skip_what_is_missing():
    watched = audit.watched_paths(_paths("rhel_docker_ce.json"))
    assert "/usr/lib/systemd/system/docker.service" in watched
    assert "/etc/sysconfig/docker" in watched
    assert "/etc/default/docker" not in watched  # absent there: a watch would break the load
    assert "/etc/docker/daemon.json" in watched  # dockguard writes it before loading


def test_rule_lines():
    assert audit.rule_lines(["/etc/docker"]) == ["-w /etc/docker -p wa -k docker"]


def test_missing_rules_compares_with_the_kernel_list():
    live = {"rules": ["-w /etc/docker -p wa -k docker", "-a always,exit -S execve"]}
    wanted = ["-w /etc/docker -p wa -k docker", "-w /var/lib/docker -p wa -k docker"]
    assert audit.missing_rules(live, wanted) == ["-w /var/lib/docker -p wa -k docker"]


def test_unavailable_reason_names_the_container(monkeypatch):
    """Whether the host is a container is the platform's reading (HostPlatform), not read twice."""
    monkeypatch.setattr(audit.platform, "current", lambda: {"container": "lxc"})
    reason = audit.unavailable_reason({"available": False, "installed": "yes"})
    assert reason.startswith("auditd cannot run on this host: it is a container (lxc)")
    assert audit.unavailable_reason({"available": True}) is None


REPORT = {
    "complete": True,
    "hardening_index": 58,
    "version": "3.0.8",
    "warnings": [{"test": "PKGS-7388", "text": "Can't find any security repository"}],
    "suggestions": [],
    "skipped": [],
}


def test_lynis_gate():
    assert lynis.gate_problem(REPORT, None) is None
    assert lynis.gate_problem(REPORT, 58) is None
    assert lynis.gate_problem(REPORT, 70) == (
        "Lynis hardening index 58 is below lynis_min_hardening_index 70 "
        "(top warnings: PKGS-7388: Can't find any security repository)"
    )
    truncated = REPORT | {"complete": False}
    assert lynis.gate_problem(truncated, 10) == "no complete Lynis report to check against lynis_min_hardening_index 10"
    assert lynis.gate_problem(None, 10) == "no complete Lynis report to check against lynis_min_hardening_index 10"
    assert lynis.index_of(truncated) is None


def test_docker_group_unexpected_members():
    assert docker_group.unexpected(["alice", "deploy"], ["deploy"]) == ["alice"]
    assert docker_group.unexpected(None, []) == []
