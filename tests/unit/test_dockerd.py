"""daemon.json rendering and the decision to restart dockerd."""

import json

import pytest
from pyinfra.api.util import get_template

from operations import TEMPLATES, settings
from operations.dockerd import daemon_config, render_daemon_json, restart_reasons

DEFAULTS = settings.defaults()


def test_default_daemon_json():
    assert daemon_config(DEFAULTS) == {
        "icc": False,
        "live-restore": True,
        "log-driver": "json-file",
        "log-level": "info",
        "log-opts": {"max-file": "3", "max-size": "10m"},
        "no-new-privileges": True,
        "userland-proxy": False,
    }


def test_log_opts_are_strings_and_only_for_rotating_drivers():
    assert daemon_config(DEFAULTS | {"docker_log_max_file": 5})["log-opts"]["max-file"] == "5"
    assert "log-opts" not in daemon_config(DEFAULTS | {"docker_log_driver": "journald"})


def test_template_renders_valid_json_with_sorted_keys():
    # pyinfra's own loader, so the test renders exactly as files.template does.
    template = get_template(str(TEMPLATES / "etc/docker/daemon.json.j2"))
    out = template.render(daemon_json=render_daemon_json(DEFAULTS))
    assert json.loads(out) == daemon_config(DEFAULTS)
    assert out.endswith("}\n")
    assert list(json.loads(out)) == sorted(json.loads(out))


LIVE_OK = {
    "active": "active",
    "enabled": "enabled",
    "config_sha": "abc",
    "applied_sha": "abc",
    "server_version": "20.10.24",
    "live_restore": True,
    "logging_driver": "json-file",
    "security_options": [],
    "bridge_icc": False,
}


def test_no_restart_when_running_daemon_matches():
    assert restart_reasons(LIVE_OK, DEFAULTS) == []


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"active": "failed"}, "dockerd is failed"),
        ({"active": "inactive"}, "dockerd is inactive"),
        ({"applied_sha": "old"}, "daemon.json differs from the one dockerd was last started with"),
        ({"applied_sha": None}, "daemon.json differs from the one dockerd was last started with"),
        ({"bridge_icc": True}, "default bridge runs with enable_icc=true"),
        ({"live_restore": False}, "dockerd runs with live-restore=false"),
        ({"logging_driver": "journald"}, "dockerd runs with log-driver=journald"),
        ({"server_version": None}, "docker info did not answer"),
    ],
)
def test_restart_when_running_daemon_differs(change, reason):
    assert restart_reasons(LIVE_OK | change, DEFAULTS) == [reason]


def test_restart_when_state_unknown():
    assert restart_reasons({}, DEFAULTS) == ["dockerd state unknown"]
