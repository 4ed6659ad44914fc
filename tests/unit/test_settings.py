"""Settings validation: every bad input gets a clear message before any host is touched."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import DeployError

from dockguard import settings

ALL_PY = Path(__file__).resolve().parents[2] / "inventory/group_data/all.py"


def _fake_host(name, **data):
    return SimpleNamespace(name=name, data=SimpleNamespace(dict=lambda: data))


def test_one_ca_for_every_host_of_a_run():
    with pytest.raises(DeployError) as e:
        settings.validate_hosts([_fake_host("a"), _fake_host("b", dockguard_pki_dir="/srv/pki")])
    assert "dockguard_pki_dir: every host of a run uses one CA, got ['/srv/pki', '~/.dockguard/pki']" in str(e.value)


def test_group_data_all_holds_every_default():
    """inventory/group_data/all.py is the operator's view of the schema defaults: they agree."""
    tree = ast.parse(ALL_PY.read_text())
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert values == settings.defaults()


def test_defaults_are_valid():
    assert settings.problems(settings.defaults()) == []


def test_every_setting_documents_its_cis_control():
    for s in settings.SCHEMA.values():
        assert s.cis and s.doc, s.name


def test_settings_table_in_docs_is_generated_from_the_schema():
    page = (ALL_PY.parents[2] / "docs" / "settings.md").read_text()
    assert settings.markdown_table() in page, "run `make docs`"


def test_defaults_are_not_shared_between_hosts():
    a, b = settings.resolve({}), settings.resolve({})
    a["docker_default_ulimits"]["nofile"]["soft"] = 1
    assert b["docker_default_ulimits"]["nofile"]["soft"] == 65536


@pytest.mark.parametrize(
    "data, message",
    [
        ({"docker_icc": "false"}, "docker_icc: expected a boolean, got a string 'false'"),
        ({"docker_icc": 0}, "docker_icc: expected a boolean, got an integer 0"),
        ({"docker_log_max_file": True}, "docker_log_max_file: expected an integer, got a boolean True"),
        ({"docker_log_max_file": "3"}, "docker_log_max_file: expected an integer, got a string '3'"),
        ({"docker_log_max_file": 0}, "docker_log_max_file: must be at least 1, got 0"),
        (
            {"docker_log_max_size": "10MB"},
            "docker_log_max_size: must be a size like '10m' (a number and k, m or g), got '10MB'",
        ),
        (
            {"docker_log_level": "verbose"},
            "docker_log_level: must be one of 'debug', 'info', 'warn', 'error', 'fatal', got 'verbose'",
        ),
        (
            {"docker_log_driver": "fluentd"},
            "docker_log_driver: must be one of 'json-file', 'local', 'journald', 'syslog', got 'fluentd'",
        ),
        ({"docker_live_restor": True}, "docker_live_restor: unknown setting (did you mean docker_live_restore?)"),
        ({"dockguard_frobnicate": 1}, "dockguard_frobnicate: unknown setting"),
        ({"dockguard_macc": "auto"}, "dockguard_macc: unknown setting (did you mean dockguard_mac?)"),
        ({"dockguard_mac": "smack"}, "dockguard_mac: must be one of 'auto', 'apparmor', 'selinux', 'off', got 'smack'"),
        ({"docker_source": "snap"}, "docker_source: must be one of 'distribution', 'docker-ce', got 'snap'"),
        ({"docker_install": "yes"}, "docker_install: expected a boolean, got a string 'yes'"),
        (
            {"docker_storage_driver": "aufs"},
            "docker_storage_driver: aufs is deprecated and not allowed (CIS 2.6): use overlay2",
        ),
        (
            {"docker_tcp_listen": "2376"},
            "docker_tcp_listen: must be ADDRESS:PORT such as '0.0.0.0:2376', got '2376'",
        ),
        (
            {"docker_tcp_listen": "docker.example:2376"},
            "docker_tcp_listen: must be an IP address and a port such as '0.0.0.0:2376', got 'docker.example:2376'",
        ),
        (
            {"docker_tcp_listen": "0.0.0.0:2376", "docker_tls_verify": False},
            "docker_tcp_listen: dockerd would listen on TCP 0.0.0.0:2376 without verifying client certificates: "
            "anyone who reaches the port is root on the host (CIS 2.7); set docker_tls_verify: True",
        ),
        (
            {"docker_default_ulimits": {"nofile": {"soft": 2048, "hard": 1024}}},
            "docker_default_ulimits: nofile: soft limit 2048 is above the hard limit 1024",
        ),
        (
            {"docker_default_ulimits": {"nofile": 1024}},
            "docker_default_ulimits: nofile must be a mapping with exactly 'soft' and 'hard', got 1024",
        ),
        (
            {"docker_default_ulimits": {"files": {"soft": 1, "hard": 1}}},
            "docker_default_ulimits: unknown ulimit 'files' (known: core, cpu, data, fsize, locks, memlock, "
            "msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)",
        ),
        (
            {"docker_insecure_registries": "reg:5000"},
            "docker_insecure_registries: expected a list, got a string 'reg:5000'",
        ),
        (
            {"docker_log_opts": {"max-buffer-size": 4}},
            "docker_log_opts: keys and values must be strings (dockerd rejects others), got 'max-buffer-size': 4",
        ),
        (
            {"docker_seccomp_profile": "strict"},
            "docker_seccomp_profile: must be 'dockguard' (the shipped profile) or an absolute path on the host, "
            "got 'strict'",
        ),
        (
            {"docker_userns_remap": "Dock Remap"},
            "docker_userns_remap: must be 'default' or USER[:GROUP], got 'Dock Remap'",
        ),
        (
            {"docker_daemon_extra": {"icc": True}},
            "docker_daemon_extra: icc is managed by dockguard settings; set those",
        ),
        (
            {"docker_daemon_extra": {"hosts": ["tcp://0.0.0.0:2375"]}},
            "docker_daemon_extra: 'hosts' conflicts with the -H flags of docker.service; use docker_tcp_listen",
        ),
        (
            {"docker_daemon_extra": {"storage-opts": ["dm.basesize=20G"]}},
            "docker_daemon_extra: dm.basesize changes the base device size (CIS 2.11)",
        ),
        (
            {"docker_tls_renew_days": 400},
            "docker_tls_renew_days: 400 is not below docker_tls_days 365: every run would renew the certificate",
        ),
        ({"docker_userns_remap": 1}, "docker_userns_remap: expected a string or None, got an integer 1"),
    ],
)
def test_bad_input_messages(data, message):
    assert settings.problems(data) == [message]


def test_unrelated_host_data_is_not_ours():
    assert settings.problems({"ssh_port": 22, "lab_kind": "vm"}) == []


def test_validate_hosts_lists_every_problem_of_every_host():
    hosts = [
        _fake_host("dh1", docker_icc="no"),
        _fake_host("dh2"),
        _fake_host("vm1", docker_log_max_file=-1, docker_iccc=False),
    ]
    with pytest.raises(DeployError) as e:
        settings.validate_hosts(hosts)
    assert str(e.value) == (
        "invalid dockguard settings (nothing was changed on any host):\n"
        "  dh1: docker_icc: expected a boolean, got a string 'no'\n"
        "  vm1: docker_iccc: unknown setting (did you mean docker_icc?)\n"
        "  vm1: docker_log_max_file: must be at least 1, got -1"
    )


def test_resolve_overlays_host_data_on_defaults():
    cfg = settings.resolve({"docker_icc": True, "ssh_port": 22})
    assert cfg["docker_icc"] is True
    assert cfg["docker_live_restore"] is True
    assert "ssh_port" not in cfg


# Issue 12: values that are unsafe or meaningless, each refused with the setting and the reason.
REFUSALS = [
    (
        {"docker_insecure_registries": ["0.0.0.0/0"]},
        "docker_insecure_registries: '0.0.0.0/0' would skip TLS verification for 4294967296 addresses (CIS 2.5); "
        "name the registries, or a CIDR of at most /24",
    ),
    (
        {"docker_insecure_registries": ["10.0.0.0/8"]},
        "docker_insecure_registries: '10.0.0.0/8' would skip TLS verification for 16777216 addresses (CIS 2.5); "
        "name the registries, or a CIDR of at most /24",
    ),
    (
        {"docker_insecure_registries": ["::/0"]},
        "docker_insecure_registries: '::/0' would skip TLS verification for "
        "340282366920938463463374607431768211456 addresses (CIS 2.5); name the registries, or a CIDR of at most /120",
    ),
    (
        {"docker_insecure_registries": ["10.1.2.3/24"]},
        "docker_insecure_registries: '10.1.2.3/24' is neither HOST[:PORT] nor a CIDR such as '10.1.2.0/24'",
    ),
    (
        {"docker_insecure_registries": ["http://reg:5000"]},
        "docker_insecure_registries: 'http://reg:5000' is neither HOST[:PORT] nor a CIDR such as '10.1.2.0/24'",
    ),
    (
        {"docker_insecure_registries": ["*"]},
        "docker_insecure_registries: '*' is neither HOST[:PORT] nor a CIDR such as '10.1.2.0/24'",
    ),
    (
        {"docker_insecure_registries": ["reg:99999"]},
        "docker_insecure_registries: 'reg:99999': port 99999 is out of range",
    ),
    (
        {"docker_tls_san": ["*"]},
        "docker_tls_san: '*' is not a DNS name or an IP address (no wildcards, spaces or URLs in a certificate)",
    ),
    (
        {"docker_tls_san": ["a b"]},
        "docker_tls_san: 'a b' is not a DNS name or an IP address (no wildcards, spaces or URLs in a certificate)",
    ),
    (
        {"docker_tls_san": ["*.example.com"]},
        "docker_tls_san: '*.example.com' is not a DNS name or an IP address (no wildcards, spaces or URLs in a "
        "certificate)",
    ),
    (
        {"docker_tls_san": ["-bad.example"]},
        "docker_tls_san: '-bad.example' is not a DNS name or an IP address (no wildcards, spaces or URLs in a "
        "certificate)",
    ),
    ({"docker_tls_san": [""]}, "docker_tls_san: must be a list of non-empty strings, got '' in it"),
    (
        {"docker_tls_days": 4000, "docker_tls_renew_days": 30},
        "docker_tls_days: 4000 days is beyond the life of the dockguard CA (3650 days)",
    ),
    ({"docker_tls_days": 0}, "docker_tls_days: must be at least 1, got 0"),
    (
        {"docker_userns_remap": "root"},
        "docker_userns_remap: 'root' maps the containers' root to the host's root, which is no remapping at all "
        "(CIS 2.9); use 'default' or an unprivileged user",
    ),
    (
        {"docker_userns_remap": "dockremap:root"},
        "docker_userns_remap: 'dockremap:root' maps the containers' root to the host's root, which is no remapping "
        "at all (CIS 2.9); use 'default' or an unprivileged user",
    ),
    (
        {"docker_userns_remap": "default\n"},
        "docker_userns_remap: must not contain control characters (a newline, a tab), got 'default\\n'",
    ),
    (
        {"docker_log_level": "info\n"},
        "docker_log_level: must not contain control characters (a newline, a tab), got 'info\\n'",
    ),
    (
        {"docker_log_max_size": " 10m"},
        "docker_log_max_size: must not start or end with spaces, got ' 10m'",
    ),
    (
        {"docker_log_opts": {"tag": "a\nb"}},
        "docker_log_opts: must not contain control characters (a newline, a tab), got 'a\\nb'",
    ),
    (
        {"docker_log_opts": {"max-size": "1g"}},
        "docker_log_opts: max-size: set by docker_log_max_size and docker_log_max_file",
    ),
    (
        {"docker_daemon_extra": {"runtimes": {"evil": {"path": "/tmp/x"}}}},
        "docker_daemon_extra: runtimes would change what runs as root or who reaches the daemon; "
        "allow it explicitly with docker_daemon_extra_trust: ['runtimes']",
    ),
    (
        {"docker_daemon_extra": {"default-runtime": "evil"}},
        "docker_daemon_extra: default-runtime would change what runs as root or who reaches the daemon; "
        "allow it explicitly with docker_daemon_extra_trust: ['default-runtime']",
    ),
    (
        {"docker_daemon_extra": {"group": "staff"}},
        "docker_daemon_extra: group would change what runs as root or who reaches the daemon; "
        "allow it explicitly with docker_daemon_extra_trust: ['group']",
    ),
    (
        {"docker_daemon_extra": {"authorization-plugins": ["x"]}},
        "docker_daemon_extra: authorization-plugins is managed by dockguard settings; set those",
    ),
    (
        {"docker_daemon_extra": {"tls-min-version": "1.0"}},
        "docker_daemon_extra: tls-min-version: TLS of the daemon socket is set by docker_tcp_listen and the "
        "dockguard CA",
    ),
    (
        {"docker_daemon_extra": {"storage-opts": ["DM.BASESIZE=20G"]}},
        "docker_daemon_extra: dm.basesize changes the base device size (CIS 2.11)",
    ),
    (
        {"docker_daemon_extra": {"storage-opts": "dm.basesize=20G"}},
        "docker_daemon_extra: storage-opts must be a list of strings, got 'dm.basesize=20G'",
    ),
    (
        {"docker_daemon_extra": {"labels": {"a", "b"}}},
        "docker_daemon_extra: must be plain JSON data (strings, numbers, booleans, lists, mappings) for "
        "daemon.json: Object of type set is not JSON serializable",
    ),
    (
        {"docker_daemon_extra": {"max-concurrent-downloads": float("nan")}},
        "docker_daemon_extra: must be plain JSON data (strings, numbers, booleans, lists, mappings) for "
        "daemon.json: Out of range float values are not JSON compliant",
    ),
    (
        {"docker_daemon_extra": {1: True}},
        "docker_daemon_extra: keys must be strings (daemon.json is JSON), got 1",
    ),
    (
        {"docker_daemon_extra_trust": ["hosts"]},
        "docker_daemon_extra_trust: 'hosts' is not a key that needs this opt-in (those are: containerd, data-root, "
        "default-runtime, exec-root, group, init-path, runtimes)",
    ),
    (
        {"docker_tcp_listen": "::1:2376"},
        "docker_tcp_listen: an IPv6 address goes in brackets ('[::]:2376'), an IPv4 address does not, got '::1:2376'",
    ),
    (
        {"docker_storage_driver": "overlay"},
        "docker_storage_driver: must be one of overlay2, fuse-overlayfs, btrfs, zfs, vfs (or None: dockerd "
        "chooses), got 'overlay'",
    ),
    (
        {"docker_cgroup_parent": "../../system.slice"},
        "docker_cgroup_parent: must not climb out of the cgroup tree with '..', got '../../system.slice'",
    ),
    (
        {"docker_seccomp_profile": "/etc/docker/../shadow"},
        "docker_seccomp_profile: must be a normalised absolute path (no '..', '.' or '//'), "
        "got '/etc/docker/../shadow'",
    ),
    (
        {"dockguard_pki_dir": "pki"},
        "dockguard_pki_dir: must be absolute or under '~/': a relative CA directory depends on where a run "
        "starts, got 'pki'",
    ),
    (
        {"dockguard_pki_dir": "~root/.dockguard/pki"},
        "dockguard_pki_dir: must be absolute or under your own home ('~/...'), not another user's "
        "('~root/.dockguard/pki')",
    ),
    (
        {"docker_group_members": ["alice,bob"]},
        "docker_group_members: 'alice,bob' cannot be a member name in /etc/group (no newline, NUL, ',', ':' or "
        "control characters)",
    ),
    (
        {"docker_authorization_plugins": ["authz broker"]},
        "docker_authorization_plugins: 'authz broker' is not a plugin name (NAME, or REPOSITORY/NAME:TAG)",
    ),
    (
        {"lynis_reports_dir": "~other/reports"},
        "lynis_reports_dir: must be absolute or under your own home ('~/...'), not another user's ('~other/reports')",
    ),
]


@pytest.mark.parametrize(
    "data, message", REFUSALS, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(REFUSALS)]
)
def test_unsafe_or_meaningless_values_are_refused(data, message):
    assert settings.problems(data) == [message]


def test_refusals_name_the_host():
    with pytest.raises(DeployError) as e:
        settings.validate_hosts([_fake_host("dh7", docker_tls_san=["*"])])
    assert "  dh7: docker_tls_san: '*' is not a DNS name" in str(e.value)


@pytest.mark.parametrize(
    "data",
    [
        {"docker_insecure_registries": ["reg.example:5000", "10.1.2.0/24", "[::1]:5000", "192.0.2.7", "fd00::/120"]},
        {"docker_tls_san": ["docker.example", "192.0.2.7", "fd00::1", "host-1.example."]},
        {"docker_tcp_listen": "[::]:2376"},
        {"docker_userns_remap": "dockremap:dockremap"},
        {
            "docker_daemon_extra": {"runtimes": {"runsc": {"path": "/usr/bin/runsc"}}},
            "docker_daemon_extra_trust": ["runtimes"],
        },
        {"docker_daemon_extra": {"storage-opts": ["overlay2.size=10G"], "max-concurrent-downloads": 3}},
        {"dockguard_pki_dir": "/srv/dockguard/pki"},
        {"docker_group_members": ["alice", "ci-runner"]},
        {"docker_authorization_plugins": ["authz-broker", "registry.example/team/opa:0.4"]},
        {"docker_storage_driver": "overlay2", "docker_tls_days": 3650, "docker_tls_renew_days": 30},
    ],
)
def test_sensible_values_are_accepted(data):
    assert settings.problems(data) == []
