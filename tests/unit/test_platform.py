"""Each supported distribution's branch of every control area, decided from fact
fixtures (tests/unit/facts/platform.HostPlatform, hostpaths.DockerHostPaths)."""

import json
from pathlib import Path

import pytest
from dockguard.operations import audit, docker_files, dockerd, mac, platform

from dockguard import settings

FACTS = Path(__file__).parent / "facts"


def plat(name):
    return json.loads((FACTS / "platform.HostPlatform" / f"{name}.json").read_text())["fact"]


def paths(name):
    return json.loads((FACTS / "hostpaths.DockerHostPaths" / name).read_text())["fact"]


def cfg(**overrides):
    return {**settings.defaults(), **overrides}


RUNNING = {"dockerd": "/usr/bin/dockerd", "active": "active", "server_version": "27.3.1", "security_options": []}

# fixture -> (family, MAC system under dockguard_mac: auto, selinux-enabled in daemon.json)
DISTROS = {
    "debian12_vm": ("debian", "apparmor", False),
    "ubuntu2204_docker_ce": ("debian", "apparmor", False),
    "ubuntu2404": ("debian", "apparmor", False),
    "rocky9_enforcing": ("rhel", "selinux", True),
    "debian13_vm": ("debian", "apparmor", False),
    "debian13_container": ("debian", "apparmor", False),
    "ubuntu2604": ("debian", "apparmor", False),
    "rhel10_enforcing": ("rhel", "selinux", True),
    "rocky10_enforcing": ("rhel", "selinux", True),
}


@pytest.mark.parametrize("name", sorted(DISTROS))
def test_each_supported_distribution_is_accepted_and_branches_by_family(name):
    family, mac_kind, selinux = DISTROS[name]
    p = plat(name)
    assert platform.supported(p)
    assert p["family"] == family
    assert platform.mac(p, cfg()) == mac_kind
    assert platform.problems(p, cfg(), dockerd_present=True) == []
    assert ("selinux-enabled" in dockerd.daemon_config(cfg(), dockerd.selinux_labels(p, cfg()))) is selinux


@pytest.mark.parametrize("name", sorted(DISTROS))
def test_mac_off_leaves_daemon_json_without_selinux(name):
    p = plat(name)
    assert platform.mac(p, cfg(dockguard_mac="off")) is None
    assert "selinux-enabled" not in dockerd.daemon_config(cfg(), dockerd.selinux_labels(p, cfg(dockguard_mac="off")))


def test_package_manager_follows_the_family():
    assert {n: plat(n)["pkg"] for n in DISTROS} == {
        "debian12_vm": "apt",
        "ubuntu2204_docker_ce": "apt",
        "ubuntu2404": "apt",
        "rocky9_enforcing": "dnf",
        "debian13_vm": "apt",
        "debian13_container": "apt",
        "ubuntu2604": "apt",
        "rhel10_enforcing": "dnf",
        "rocky10_enforcing": "dnf",
    }


def test_docker_flavour_is_read_from_the_packages():
    assert "docker.io" in plat("debian12_vm")["packages"]
    assert {"docker-ce", "containerd.io"} <= set(plat("ubuntu2204_docker_ce")["packages"])
    assert "docker-ce" in plat("rocky9_enforcing")["packages"]
    assert not {"docker.io", "docker-ce"} & set(plat("rocky9_disabled_no_docker")["packages"])


def test_docker_packages_per_source_and_family():
    assert platform.docker_packages(plat("debian12_vm"), cfg()) == ("docker.io",)
    assert platform.docker_packages(plat("ubuntu2404"), cfg(docker_source="docker-ce")) == (
        "docker-ce",
        "docker-ce-cli",
        "containerd.io",
    )
    assert platform.docker_packages(plat("rocky9_enforcing"), cfg()) is None  # RHEL ships no Docker


def test_an_unsupported_distribution_is_refused_before_anything_changes():
    p = plat("unsupported_centos7")
    assert platform.problems(p, cfg(), dockerd_present=True) == [
        "unsupported distribution: CentOS Linux 7 (Core) (dockguard supports Debian 12/13, Ubuntu 22.04/24.04/26.04, "
        "Rocky Linux 9/10, RHEL 9/10)"
    ]
    # and the preflight says so for the host, whatever its dockerd state
    assert dockerd.preflight_problems(RUNNING, cfg(), p) == platform.problems(p, cfg(), dockerd_present=True)


def test_unsupported_versions_of_supported_distributions():
    assert not platform.supported({**plat("debian12_vm"), "version": "11"})
    assert not platform.supported({**plat("ubuntu2404"), "version": "20.04"})
    assert platform.supported({**plat("rocky9_enforcing"), "version": "9.5"})
    assert not platform.supported({**plat("rocky9_enforcing"), "version": "8.10"})


def test_missing_docker_is_refused_unless_it_may_be_installed():
    p = plat("rocky9_disabled_no_docker")
    live = {"active": "inactive", "dockerd": None}
    assert dockerd.preflight_problems(live, cfg(), p) == [
        "dockerd is not installed: install Docker first, or set docker_install: True to let dockguard install "
        "it (from docker_source: 'distribution')"
    ]
    assert dockerd.preflight_problems(live, cfg(docker_install=True), p) == [
        "docker_source: 'distribution': Rocky Linux 9.4 (Blue Onyx) ships no Docker engine of its own; set "
        "docker_source: 'docker-ce' (Docker's repository)"
    ]
    assert dockerd.preflight_problems(live, cfg(docker_install=True, docker_source="docker-ce"), p) == []
    debian = {**plat("debian12_vm"), "packages": []}
    assert dockerd.preflight_problems(live, cfg(docker_install=True), debian) == []


def test_a_mac_system_the_family_does_not_have_is_refused():
    assert platform.problems(plat("rocky9_enforcing"), cfg(dockguard_mac="apparmor"), True) == [
        "dockguard_mac: 'apparmor' is not available on the RHEL family (SELinux is its MAC system)"
    ]
    assert platform.problems(plat("debian12_vm"), cfg(dockguard_mac="selinux"), True) == [
        "dockguard_mac: 'selinux' but SELinux is not installed on this host (getenforce not found)"
    ]


def test_rhel_sysconfig_selinux_flag_conflicts_with_daemon_json():
    p = plat("rocky9_enforcing")
    unit = "[Service]\nEnvironmentFile=-/etc/sysconfig/docker\nExecStart=/usr/bin/dockerd -H fd:// $OPTIONS\n"
    live = {**RUNNING, "fragment": ["/usr/lib/systemd/system/docker.service", unit],
            "files": {"/etc/sysconfig/docker": "OPTIONS='--selinux-enabled --log-driver=journald'\n"}}  # fmt: skip
    conf = dockerd.daemon_config(cfg(), dockerd.selinux_labels(p, cfg()))
    argv, dropped = dockerd.exec_start(live, cfg(), conf)
    assert argv == ["/usr/bin/dockerd", "-H", "fd://"]
    assert (
        "CIS 2.x: OPTIONS in /etc/sysconfig/docker line 1 sets --selinux-enabled, which daemon.json sets as "
        "'selinux-enabled': dockguard's drop-in runs dockerd without the flag"
    ) in dropped
    assert dockerd.preflight_problems(live, cfg(), p) == []


def test_selinux_labelling_missing_from_the_running_daemon_restarts_it():
    live = {**RUNNING, "config_digest": "a", "applied_digest": "a", "bridge_icc": False, "live_restore": True,
            "logging_driver": "json-file", "security_options": ["name=seccomp,profile=builtin", "name=userns"]}  # fmt: skip
    assert dockerd.restart_reasons(live, cfg(), selinux=False) == []
    assert dockerd.restart_reasons(live, cfg(), selinux=True) == [
        "dockerd runs without SELinux labelling of containers"
    ]
    live["security_options"].append("name=selinux")
    assert dockerd.restart_reasons(live, cfg(), selinux=True) == []


def test_apparmor_problems_per_host_kind():
    assert mac.apparmor_problem(plat("debian12_vm")) is None
    assert mac.apparmor_problem(plat("ubuntu2404")) is None
    container = mac.apparmor_problem(plat("debian12_container"))
    assert container.startswith("this host is a container (systemd-nspawn)")
    off = {**plat("debian12_vm"), "apparmor": {**plat("debian12_vm")["apparmor"], "kernel": "N"}}
    assert mac.apparmor_problem(off) == (
        "AppArmor is disabled in the running kernel: add `apparmor=1 security=apparmor` to GRUB_CMDLINE_LINUX in "
        "/etc/default/grub, run update-grub and reboot (with the apparmor package installed)"
    )


def test_docker_default_not_loaded_means_a_restart_only_where_apparmor_runs():
    p = plat("ubuntu2404")
    assert not dockerd.apparmor_profile_missing(p, cfg())  # loaded
    unloaded = {**p, "apparmor": {**p["apparmor"], "profiles": {"rsyslogd": "enforce"}}}
    assert dockerd.apparmor_profile_missing(unloaded, cfg())
    assert not dockerd.apparmor_profile_missing(unloaded, cfg(dockguard_mac="off"))
    assert not dockerd.apparmor_profile_missing(plat("debian12_container"), cfg())
    assert not dockerd.apparmor_profile_missing(plat("rocky9_enforcing"), cfg())


def test_dockguard_profile_is_enforced_only_when_aa_status_says_enforce():
    assert mac.enforced(plat("debian12_vm"), mac.PROFILE)
    assert not mac.enforced(plat("ubuntu2404"), mac.PROFILE)  # not loaded yet
    assert not mac.enforced(plat("ubuntu2404"), "ubuntu_pro_apt_news")  # complain mode


def test_selinux_commands_per_state():
    assert mac.selinux_commands(plat("rocky9_enforcing")) == []
    assert mac.selinux_commands(plat("rocky9_disabled_no_docker")) == []  # prepared: waits for a reboot
    permissive = {**plat("rocky9_enforcing"), "selinux": {"mode": "permissive", "config": "enforcing",
                                                           "relabel_pending": False}}  # fmt: skip
    assert mac.selinux_commands(permissive) == ["setenforce 1"]


def test_file_rules_and_audit_watches_follow_the_distribution_paths():
    rhel = [r.path for r in docker_files.rules_for(paths("rhel_docker_ce.json"))]
    debian = [r.path for r in docker_files.rules_for(paths("debian_docker_io.json"))]
    assert "/usr/lib/systemd/system/docker.service" in rhel
    assert "/lib/systemd/system/docker.service" in debian
    assert "/usr/bin/dockerd" in audit.watched_paths(paths("rhel_docker_ce.json"))
    assert "/usr/sbin/dockerd" in audit.watched_paths(paths("debian_docker_io.json"))


def test_selinux_without_a_container_policy_is_refused_on_debian():
    p = plat("debian12_selinux_vm")  # the lab's vm2: Debian's own SELinux policy
    assert p["selinux"]["mode"] in ("enforcing", "permissive") and not p["selinux"]["container_policy"]
    assert platform.problems(p, cfg(dockguard_mac="selinux"), True) == [
        "dockguard_mac: 'selinux': this host's SELinux policy has no container module (container_t, "
        "container_file_t; Debian's and Ubuntu's policies do not ship one, RHEL's container-selinux does): with "
        "selinux-enabled dockerd could not start any container; use AppArmor here or dockguard_mac: 'off'"
    ]
    assert platform.problems(plat("rocky9_enforcing"), cfg(), True) == []  # container-selinux is there


def test_the_releases_of_today_are_supported_and_the_next_ones_are_not():
    for name, version in [("debian13_vm", "13"), ("ubuntu2604", "26.04"), ("rhel10_enforcing", "10.0"),
                          ("rocky10_enforcing", "10.1")]:  # fmt: skip
        assert platform.supported({**plat(name), "version": version}), name
    assert not platform.supported({**plat("debian13_vm"), "version": "14"})
    assert not platform.supported({**plat("ubuntu2604"), "version": "25.10"})  # interim releases are not
    assert not platform.supported({**plat("rocky10_enforcing"), "version": "11.0"})


def test_debian_13_records_its_docker_client_package():
    assert "docker-cli" in plat("debian13_container")["packages"]
    assert plat("debian13_vm")["codename"] == "trixie"
    assert plat("debian13_container")["container"] == "systemd-nspawn"


def test_a_dockerd_without_its_client_is_refused_unless_dockguard_may_install_it():
    no_cli = {**RUNNING, "docker_cli": None}
    assert dockerd.preflight_problems(no_cli, cfg(), plat("debian13_vm")) == [dockerd.CLIENT_MISSING]
    assert dockerd.CLIENT_MISSING not in dockerd.preflight_problems(
        no_cli, cfg(docker_install=True), plat("debian13_vm")
    )
    assert dockerd.client_present({**RUNNING, "docker_cli": "/usr/bin/docker"})
