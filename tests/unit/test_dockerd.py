"""daemon.json and drop-in rendering, flag conflicts, the preflight guards, and the
decision to restart dockerd."""

import json
from pathlib import Path

import pytest
from dockguard.operations import TEMPLATES
from dockguard.operations.dockerd import (
    command_line,
    daemon_config,
    daemon_json_listeners,
    exec_start,
    flag_conflicts,
    preflight_problems,
    render_daemon_json,
    render_exec_start,
    restart_reasons,
    supports_validate,
)
from pyinfra.api.util import get_template

from dockguard import settings

DEFAULTS = settings.defaults()
VENDOR = "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"


def test_default_daemon_json():
    assert daemon_config(DEFAULTS) == {
        "default-ulimits": {
            "nofile": {"Hard": 65536, "Name": "nofile", "Soft": 65536},
            "nproc": {"Hard": 16384, "Name": "nproc", "Soft": 8192},
        },
        "experimental": False,
        "icc": False,
        "insecure-registries": [],
        "iptables": True,
        "live-restore": True,
        "log-driver": "json-file",
        "log-level": "info",
        "log-opts": {"max-file": "3", "max-size": "10m"},
        "no-new-privileges": True,
        "userland-proxy": False,
        "userns-remap": "default",
    }


def test_optional_keys_only_when_set():
    conf = daemon_config(
        DEFAULTS
        | {
            "docker_storage_driver": "overlay2",
            "docker_cgroup_parent": "docker.slice",
            "docker_authorization_plugins": ["authz-broker"],
            "docker_seccomp_profile": "dockguard",
            "docker_userns_remap": None,
        }
    )
    assert conf["storage-driver"] == "overlay2"
    assert conf["cgroup-parent"] == "docker.slice"
    assert conf["authorization-plugins"] == ["authz-broker"]
    assert conf["seccomp-profile"] == "/etc/docker/seccomp/dockguard.json"
    assert "userns-remap" not in conf


def test_tcp_listener_brings_tls_files_into_daemon_json_but_no_hosts():
    conf = daemon_config(DEFAULTS | {"docker_tcp_listen": "0.0.0.0:2376"})
    assert conf["tlsverify"] is True and conf["tls"] is True
    assert conf["tlscacert"] == "/etc/docker/tls/ca.pem"
    assert conf["tlscert"] == "/etc/docker/tls/server-cert.pem"
    assert conf["tlskey"] == "/etc/docker/tls/server-key.pem"
    assert "hosts" not in conf


def test_log_opts_are_strings_and_rotation_only_for_rotating_drivers():
    assert daemon_config(DEFAULTS | {"docker_log_max_file": 5})["log-opts"]["max-file"] == "5"
    journald = daemon_config(DEFAULTS | {"docker_log_driver": "journald"})
    assert "log-opts" not in journald
    syslog = daemon_config(
        DEFAULTS | {"docker_log_driver": "syslog", "docker_log_opts": {"syslog-address": "udp://10.0.0.1:514"}}
    )
    assert syslog["log-opts"] == {"syslog-address": "udp://10.0.0.1:514"}


def test_extra_keys_pass_through():
    assert (
        daemon_config(DEFAULTS | {"docker_daemon_extra": {"max-concurrent-downloads": 2}})["max-concurrent-downloads"]
        == 2
    )


def test_template_renders_valid_json_with_sorted_keys():
    # pyinfra's own loader, so the test renders exactly as files.template does.
    template = get_template(str(TEMPLATES / "etc/docker/daemon.json.j2"))
    out = template.render(daemon_json=render_daemon_json(DEFAULTS))
    assert json.loads(out) == daemon_config(DEFAULTS)
    assert out.endswith("}\n")
    assert list(json.loads(out)) == sorted(json.loads(out))


UNIT = "/lib/systemd/system/docker.service"
DROPINS = "/etc/systemd/system/docker.service.d"
VENDOR_UNIT = f"[Unit]\nDescription=Docker\n[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart={VENDOR}\n"


def host_files(dropins=None, default=None, daemon=None):
    """A DockerdState's files, as the fact reads them from the disk."""
    files = {}
    if default is not None:
        files["/etc/default/docker"] = default
    if daemon is not None:
        files["/etc/docker/daemon.json"] = daemon
    return {"fragment": [UNIT, VENDOR_UNIT], "dropins": dropins or {}, "files": files}


def test_dropin_keeps_the_vendor_command_and_adds_the_tcp_listener():
    conf = daemon_config(DEFAULTS)
    argv, dropped = exec_start(host_files(), DEFAULTS, conf)
    assert render_exec_start(argv, host_files()) == VENDOR
    assert dropped == []
    argv, _ = exec_start(host_files(), DEFAULTS | {"docker_tcp_listen": "0.0.0.0:2376"}, conf)
    assert render_exec_start(argv, host_files()) == (
        "/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
    )
    template = get_template(str(TEMPLATES / "etc/systemd/system/docker.service.d/dockguard.conf.j2"))
    lines = template.render(exec_start=VENDOR).splitlines()
    assert lines[-3:] == ["[Service]", "ExecStart=", f"ExecStart={VENDOR}"]


def test_an_admin_override_with_a_plain_tcp_listener_is_named_and_left_out():
    override = "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --data-root /srv/d\n"
    live = host_files({f"{DROPINS}/zz-override.conf": override, f"{DROPINS}/zzz-dockguard.conf": "[Service]\n"})
    argv, dropped = exec_start(live, DEFAULTS, daemon_config(DEFAULTS))
    assert argv == ["/usr/sbin/dockerd", "-H", "fd://", "--data-root", "/srv/d"]
    assert dropped == [
        f"CIS 2.7: {DROPINS}/zz-override.conf line 3 opens tcp://0.0.0.0:2375: dockguard's drop-in runs dockerd "
        "without it"
    ]


def test_tcp_hosts_in_daemon_json_are_named():
    live = host_files(daemon='{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}')
    assert daemon_json_listeners(live) == ["/etc/docker/daemon.json (hosts) opens tcp://0.0.0.0:2375"]
    assert daemon_json_listeners(host_files(daemon="{not json")) == []


def test_docker_opts_are_written_out_without_listeners_and_managed_flags():
    live = host_files(default='# comment\nDOCKER_OPTS="-H tcp://0.0.0.0:2375 --icc=true --dns 10.0.0.53"\n')
    argv, dropped = exec_start(live, DEFAULTS, daemon_config(DEFAULTS))
    assert argv == ["/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock",
                    "--dns", "10.0.0.53"]  # fmt: skip
    assert dropped == [
        "CIS 2.7: DOCKER_OPTS in /etc/default/docker line 2 opens tcp://0.0.0.0:2375: dockguard's drop-in runs "
        "dockerd without it",
        "CIS 2.x: DOCKER_OPTS in /etc/default/docker line 2 sets --icc=true, which daemon.json sets as 'icc': "
        "dockguard's drop-in runs dockerd without the flag",
    ]


def test_a_dropin_sorting_after_dockguards_is_refused():
    live = host_files({f"{DROPINS}/zzzz-late.conf": "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n"})
    assert command_line(live)[1] == [
        f"{DROPINS}/zzzz-late.conf line 3 sorts after dockguard's drop-in and sets ExecStart=: dockguard cannot own "
        "dockerd's listeners (CIS 2.7); rename or remove that drop-in"
    ]


def test_flag_conflicts_name_the_source_and_key():
    conf = daemon_config(DEFAULTS | {"docker_daemon_extra": {"dns": ["8.8.8.8"]}})
    live = host_files(default="DOCKER_OPTS='--icc=false -l debug --dns 8.8.8.8'\n")
    assert flag_conflicts(live, conf) == [
        "DOCKER_OPTS in /etc/default/docker line 1 sets --dns, which daemon.json sets as 'dns' (docker_daemon_extra)"
    ]
    assert flag_conflicts(host_files(), conf) == []


LIVE_OK = {
    "active": "active",
    "enabled": "enabled",
    "vendor_exec": VENDOR,
    "default_opts": None,
    "sysconfig_opts": None,
    "config_digest": "abc",
    "applied_digest": "abc",
    "known_good": True,
    "dockerd": "/usr/sbin/dockerd",
    "server_version": "20.10.24",
    "live_restore": True,
    "logging_driver": "json-file",
    "security_options": ["name=seccomp,profile=default", "name=userns"],
    "swarm": "inactive",
    "containers": 0,
    "running": 0,
    "images": 0,
    "root_dir": "/var/lib/docker/100000.100000",
    "bridge_icc": False,
}


def test_no_restart_when_running_daemon_matches():
    assert restart_reasons(LIVE_OK, DEFAULTS) == []


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"active": "failed"}, "dockerd is failed"),
        ({"active": "inactive"}, "dockerd is inactive"),
        ({"applied_digest": "old"}, "its configuration files differ from the ones dockerd last started healthy with"),
        ({"applied_digest": None}, "its configuration files differ from the ones dockerd last started healthy with"),
        ({"bridge_icc": True}, "default bridge runs with enable_icc=true"),
        ({"live_restore": False}, "dockerd runs with live-restore=false"),
        ({"logging_driver": "journald"}, "dockerd runs with log-driver=journald"),
        ({"security_options": ["name=seccomp,profile=default"]}, "dockerd runs with userns-remap off"),
        ({"server_version": None}, "docker info did not answer"),
    ],
)
def test_restart_when_running_daemon_differs(change, reason):
    assert restart_reasons(LIVE_OK | change, DEFAULTS) == [reason]


def test_restart_when_state_unknown():
    assert restart_reasons({}, DEFAULTS) == ["dockerd state unknown"]


STOCK = LIVE_OK | {"security_options": ["name=seccomp,profile=default"], "root_dir": "/var/lib/docker"}


def test_preflight_refuses_userns_remap_that_would_hide_containers():
    live = STOCK | {"containers": 3, "running": 1, "images": 2}
    assert preflight_problems(live, DEFAULTS) == [
        "docker_userns_remap: turning userns-remap on moves dockerd to another storage root: 3 containers "
        "(1 running) and 2 images in /var/lib/docker would disappear from view (running containers would be "
        "stopped); set docker_userns_allow_hiding: True for this host to accept that"
    ]
    assert preflight_problems(live, DEFAULTS | {"docker_userns_allow_hiding": True}) == []
    assert preflight_problems(STOCK, DEFAULTS) == []  # nothing to hide
    assert preflight_problems(live, DEFAULTS | {"docker_userns_remap": None}) == []  # no change


def test_preflight_refuses_turning_userns_remap_off_over_content():
    live = LIVE_OK | {"images": 4}
    assert preflight_problems(live, DEFAULTS | {"docker_userns_remap": None})[0].startswith(
        "docker_userns_remap: turning userns-remap off moves dockerd to another storage root: 4 images"
    )


def test_preflight_refuses_live_restore_on_a_swarm_node():
    assert preflight_problems(LIVE_OK | {"swarm": "active"}, DEFAULTS) == [
        "docker_live_restore: this host is a Swarm node; live-restore cannot be used with Swarm mode"
    ]
    assert preflight_problems(LIVE_OK | {"swarm": "active"}, DEFAULTS | {"docker_live_restore": False}) == []


def test_preflight_refuses_a_host_without_docker():
    assert preflight_problems({"active": "inactive", "dockerd": None}, DEFAULTS) == [
        "dockerd is not installed (install docker.io or docker-ce first)"
    ]


@pytest.mark.parametrize(
    "version, expected", [("20.10.24+dfsg1", False), ("23.0.1", True), ("27.3.1", True), (None, False)]
)
def test_dockerd_validate_only_where_the_engine_has_it(version, expected):
    assert supports_validate({"server_version": version}) is expected


def test_preflight_refuses_ulimits_above_dockerds_own():
    live = LIVE_OK | {"hard_limits": {"nofile": 20000, "nproc": -1}}
    assert preflight_problems(live, DEFAULTS) == [
        "docker_default_ulimits: nofile hard limit 65536 is above dockerd's own hard limit 20000 on this host: "
        "every container start would fail"
    ]
    small = {"nofile": {"soft": 1024, "hard": 20000}, "nproc": {"soft": -1, "hard": -1}}
    assert preflight_problems(live, DEFAULTS | {"docker_default_ulimits": small}) == []


@pytest.mark.parametrize(
    "setting, value, key, expected",
    [
        ("docker_icc", True, "icc", True),
        ("docker_log_level", "warn", "log-level", "warn"),
        ("docker_iptables", False, "iptables", False),
        ("docker_insecure_registries", ["reg.lan:5000"], "insecure-registries", ["reg.lan:5000"]),
        ("docker_storage_driver", "btrfs", "storage-driver", "btrfs"),
        ("docker_default_ulimits", {"core": {"soft": 0, "hard": 0}}, "default-ulimits",
         {"core": {"Name": "core", "Soft": 0, "Hard": 0}}),
        ("docker_userns_remap", "builder:builder", "userns-remap", "builder:builder"),
        ("docker_cgroup_parent", "/docker", "cgroup-parent", "/docker"),
        ("docker_authorization_plugins", ["opa"], "authorization-plugins", ["opa"]),
        ("docker_log_driver", "local", "log-driver", "local"),
        ("docker_log_max_size", "50m", "log-opts", {"max-size": "50m", "max-file": "3"}),
        ("docker_log_max_file", 9, "log-opts", {"max-size": "10m", "max-file": "9"}),
        ("docker_log_opts", {"compress": "true"}, "log-opts", {"compress": "true", "max-size": "10m", "max-file": "3"}),
        ("docker_no_new_privileges", False, "no-new-privileges", False),
        ("docker_live_restore", False, "live-restore", False),
        ("docker_userland_proxy", True, "userland-proxy", True),
        ("docker_seccomp_profile", "/srv/seccomp.json", "seccomp-profile", "/srv/seccomp.json"),
        ("docker_experimental", True, "experimental", True),
        ("docker_tcp_listen", "10.0.0.5:2376", "tlsverify", True),
        ("docker_daemon_extra", {"default-address-pools": []}, "default-address-pools", []),
    ],
)  # fmt: skip
def test_every_setting_renders_into_daemon_json(setting, value, key, expected):
    assert settings.problems({setting: value}) == []
    assert daemon_config(DEFAULTS | {setting: value})[key] == expected


def test_settings_without_a_daemon_json_key_are_covered_elsewhere():
    """Every setting reaches dockerd somewhere: daemon.json, the drop-in, the TLS files,
    the dockremap user, or the preflight."""
    elsewhere = {
        "docker_tls_verify": "a TCP listener without it is refused (settings)",
        "docker_tls_san": "server certificate names (tls)",
        "docker_tls_days": "server certificate validity (tls)",
        "docker_tls_renew_days": "renewal margin (tls)",
        "dockguard_pki_dir": "the operator's CA (tls)",
        "docker_userns_allow_hiding": "preflight",
        "docker_start_stopped": "a stopped and disabled dockerd is started (dockerd.left_stopped)",
        "dockguard_disabled_areas": "areas left alone (dockguard/deploy.py)",
        "dockguard_lock_wait": "the host lock (hostlock)",
        "docker_group_members": "CIS 1.1.2 (docker_group)",
        "docker_group_enforce": "CIS 1.1.2 (docker_group)",
        "lynis_enabled": "CIS 1.2.1 (lynis)",
        "lynis_min_hardening_index": "CIS 1.2.1 (lynis)",
        "lynis_baseline": "CIS 1.2.1 (lynis)",
        "lynis_reports_dir": "CIS 1.2.1 (lynis)",
        "docker_install": "Docker installed where missing (packages, deploy.py)",
        "docker_source": "which packages install Docker (platform, packages)",
        "dockguard_mac": "CIS 5.1/5.2 (mac), and selinux-enabled in daemon.json",
        "dockguard_allow_reboot": "CIS 5.2 (mac)",
        "docker_daemon_extra_trust": "an opt-in for docker_daemon_extra keys, checked by the schema (settings)",
        "docker_authz_policy": "CIS 2.12 (authz), and dockguard-authz in authorization-plugins",
        "docker_authz_failure_mode": "CIS 2.12 (authz)",
        "docker_registries": "CIS 3.7/3.8 (registries)",
        "dockguard_host_name": "pull mode: the host's identity and no CA key on it (identity, tls, registries)",
    }
    # The OS baseline areas own their settings, by prefix (one module each).
    elsewhere.update({n: "OS baseline (operations/" + n.split("_")[0] + ")" for n in settings.SCHEMA if n.startswith(
        ("sshd_", "kernel_", "accounts_", "os_packages_", "firewall_"))})  # fmt: skip
    rendered = {
        "docker_icc", "docker_log_level", "docker_iptables", "docker_insecure_registries",
        "docker_storage_driver", "docker_tcp_listen", "docker_default_ulimits", "docker_userns_remap",
        "docker_cgroup_parent", "docker_authorization_plugins", "docker_log_driver", "docker_log_max_size",
        "docker_log_max_file", "docker_log_opts", "docker_no_new_privileges", "docker_live_restore",
        "docker_userland_proxy", "docker_seccomp_profile", "docker_experimental", "docker_daemon_extra",
    }  # fmt: skip
    assert set(settings.SCHEMA) == rendered | set(elsewhere)


def test_icc_kept_on_the_default_bridge_by_running_containers_is_said_once_not_restarted_forever():
    """Recorded on Debian 13: icc turned off while a container ran on the default bridge; with
    live-restore, dockerd restores that network as it was, so restarting again changes nothing."""
    import yaml
    from dockguard.operations import dockerd

    path = Path(__file__).parent / "facts/dockerd.DockerdState/trixie_icc_kept_by_running_container.yaml"
    live = yaml.safe_load(path.read_text())["fact"]
    cfg = settings.defaults()
    assert live["bridge_icc"] is True and live["bridge_containers"] == 1 and live["live_restore"] is True
    assert dockerd.restart_reasons(live, cfg) == []
    assert "1 container(s) on it run" in dockerd.bridge_kept(live, cfg)
    # with no container on it (or without live-restore), a restart does apply it
    assert dockerd.restart_reasons({**live, "bridge_containers": 0}, cfg) == [
        "default bridge runs with enable_icc=true"
    ]
    assert dockerd.restart_reasons({**live, "live_restore": False}, cfg) == [
        "default bridge runs with enable_icc=true", "dockerd runs with live-restore=false"]  # fmt: skip
    assert dockerd.bridge_kept(live, {**cfg, "docker_icc": True}) is None


def test_a_port_a_container_publishes_is_not_a_dockerd_api_listener():
    """Found on the lab (Debian 12, userland-proxy off): dockerd itself holds a published port
    open, so `ss` shows dockerd on 0.0.0.0:8080. That is not an API listener (CIS 2.7): reading
    it as one restarted dockerd on every run."""
    from dockguard.operations.dockerd import _published

    assert _published("0.0.0.0:8080->80/tcp, :::8080->80/tcp\n\n127.0.0.1:9000-9001->9000-9001/tcp") == {
        "8080", "9000", "9001"}  # fmt: skip
    assert _published("80/tcp") == set()  # exposed, not published
    assert _published("0.0.0.0:5353->53/udp") == set()  # ss -lt lists TCP only
