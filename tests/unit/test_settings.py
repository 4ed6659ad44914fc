"""Settings validation: every bad input gets a clear message before any host is touched."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import DeployError

from operations import settings

ALL_PY = Path(__file__).resolve().parents[2] / "inventory/group_data/all.py"


def _fake_host(name, **data):
    return SimpleNamespace(name=name, data=SimpleNamespace(dict=lambda: data))


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
