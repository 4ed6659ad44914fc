"""The authz area (operations/authz.py) and its settings: the schema refuses a bad policy
before any host is touched, the plugin joins authorization-plugins, and the engines with an
authorization bypass are named."""

import json

import pytest
from dockguard.operations import authz

from dockguard import settings


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"rule": []}, "unknown key 'rule' (keys: rules, host_paths, capabilities, exceptions)"),
        ({"rules": ["privileged", "priviledged"]}, "rules: unknown rule 'priviledged'"),
        ({"host_paths": ["etc"]}, "host_paths: 'etc' is not an absolute path of plain characters"),
        ({"host_paths": ["/etc\n/x"]}, "must not contain control characters"),
        ({"capabilities": ["SYS ADMIN"]}, "capabilities: 'SYS ADMIN' is not a capability name"),
        ({"exceptions": [{"rules": ["privileged"]}]}, "exceptions[0]: needs an image (name, digest or glob) or a label"),
        ({"exceptions": [{"image": "ci/*", "why": "x"}]}, "exceptions[0]: a mapping of image, label and rules"),
        ({"exceptions": [{"label": "a=b", "rules": ["nope"]}]}, "exceptions[0].rules: a list of rule names"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_naming_the_setting(policy, problem):
    found = settings.problems({"docker_authz_policy": policy})
    assert len(found) == 1 and found[0].startswith(f"docker_authz_policy: {problem}"), found


def test_a_policy_turns_the_plugin_on_in_daemon_json_and_validates():
    assert settings.problems({"docker_authz_policy": {}}) == []
    assert settings.problems({"docker_authz_failure_mode": "open"}) != []
    cfg = settings.resolve({"docker_authz_policy": {"exceptions": [{"image": "ci/*", "rules": ["privileged"]}]}})
    assert cfg["docker_authorization_plugins"] == ["dockguard-authz"]
    assert settings.resolve({})["docker_authorization_plugins"] == []
    text = json.loads(authz.policy_text(cfg))
    assert text["rules"][0] == "privileged" and text["exceptions"] == [{"image": "ci/*", "rules": ["privileged"]}]
    assert "ExecStart=/usr/bin/python3 /usr/local/lib/dockguard-authz.py /etc/docker/dockguard-authz.json " \
           "deny\n" in authz.service_text(cfg)  # fmt: skip


@pytest.mark.parametrize(
    ("live", "bypasses"),
    [
        # Debian 12: the empty-body fix is in the changelog, the 1 MB one is not
        ({"version": "20.10.24", "changelog_cves": ["CVE-2024-41110"]}, ["CVE-2026-34040"]),
        # Debian 13's security update names both
        ({"version": "26.1.5", "changelog_cves": ["CVE-2024-41110", "CVE-2026-34040"]}, []),
        # upstream releases
        ({"version": "26.1.4", "changelog_cves": []}, ["CVE-2024-41110", "CVE-2026-34040"]),
        ({"version": "27.1.1", "changelog_cves": []}, ["CVE-2026-34040"]),
        ({"version": "29.3.1", "changelog_cves": []}, []),
        ({"version": None, "changelog_cves": []}, ["CVE-2024-41110", "CVE-2026-34040"]),
    ],
)  # fmt: skip
def test_engines_with_an_authorization_bypass_are_named(live, bypasses):
    assert authz.unfixed(live) == bypasses


# `systemctl show -p Id -p ActiveState -p UnitFileState dockguard-authz.socket dockguard-authz.service`
# as the lab's Debian 13 host prints it with the plugin installed (blocks in the order asked).
UNITS = ["units-begin", "ActiveState=active", "Id=dockguard-authz.socket", "UnitFileState=enabled", "",
         "Id=dockguard-authz.service", "ActiveState=inactive", "UnitFileState=static", "units-end"]  # fmt: skip


def test_the_fact_reads_units_engine_and_changelog():
    out = authz.AuthzState().process([
        *UNITS, "python=yes", "version=26.1.5",
        "package=docker.io", "cve=CVE-2026-34040", "cve=CVE-$(x)", "file=/etc/docker/dockguard-authz.json",
        "file=/etc/passwd", "plugin_mode=root:root 600",
    ])  # fmt: skip
    assert out == {"python": True, "socket": "active", "socket_enabled": True, "service": "inactive",
                   "version": "26.1.5", "package": "docker.io", "changelog_cves": ["CVE-2026-34040"],
                   "files": ["/etc/docker/dockguard-authz.json"], "plugin_mode": "root:root 600"}  # fmt: skip


@pytest.mark.parametrize("state, enabled", [("enabled", True), ("static", True), ("enabled-runtime", True),
                                            ("disabled", False), ("masked", False), ("", False)])  # fmt: skip
def test_the_socket_is_enabled_as_systemctl_is_enabled_says(state, enabled):
    """UnitFileState read with the other properties (one systemctl): enabled where `systemctl
    is-enabled` exits 0. A block is the unit asked in its place, whatever its Id (an alias)."""
    lines = ["Id=other-name.socket", "ActiveState=active", f"UnitFileState={state}", "",
             "Id=dockguard-authz.service", "ActiveState=active", "UnitFileState=static"]  # fmt: skip
    out = authz.AuthzState().process(lines)
    assert (out["socket"], out["socket_enabled"], out["service"]) == ("active", enabled, "active")


def test_the_clean_up_reads_only_files_and_units():
    """Where the policy is off (every host by default) the fact runs no dockerd, dpkg-query or
    zcat: the engine's version and changelog matter only to the policy's area."""
    full, units = authz.AuthzState().command(), authz.AuthzState().command(engine=False)
    for probe in ("dockerd --version", "dpkg-query", "zcat", "command -v python3"):
        assert probe in full and probe not in units
    for kept in ("dockguard-authz.socket", "UnitFileState", "plugin_mode", "echo file="):
        assert kept in units
    live = authz.AuthzState().process(["Id=dockguard-authz.socket", "ActiveState=inactive", "UnitFileState=",
                                       "Id=dockguard-authz.service", "ActiveState=inactive", "UnitFileState="])  # fmt: skip
    assert (live["socket"], live["files"], live["version"]) == ("inactive", [], None)
