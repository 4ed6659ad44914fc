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
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/docker",
        "/usr/sbin/dockerd",
        "/usr/sbin/runc",
        "/var/lib/docker",
    ]


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


def test_unavailable_reason_names_the_container():
    reason = audit.unavailable_reason({"available": False, "installed": "yes", "container": "lxc"})
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
