"""The CIS verification suite: testinfra over the hosts of a pyinfra inventory.

    pytest tests/cis --inventory inventory/lab.py

The conftest turns the inventory into testinfra hosts (ssh://<name>, with an
ssh_config made from the inventory's connection data), so the suite checks
exactly the hosts a deploy reaches. Each test is named after its CIS control
and checks the effective state (docker info, the running daemon, a real
container), not only files.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from dockguard import controls, fleet

TEST_IMAGE = "dockguard-test:busybox"
LAB_IMAGE_TAR = "/opt/dockguard-lab/busybox.tar"


def pytest_addoption(parser):
    parser.addoption("--inventory", default="inventory/lab.py", help="pyinfra inventory to verify")
    parser.addoption(
        "--cis",
        default=controls.DEFAULT_VERSION,
        choices=controls.VERSIONS,
        help="CIS Docker Benchmark numbering of the test names (default %(default)s)",
    )
    parser.addoption("--limit", action="append", default=[], metavar="HOST",
                     help="only this host of the inventory (repeatable)")  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    """Test functions carry 1.6.0's IDs; in 1.8.0's numbering (the default) a test whose control
    moved is reported (verbose output, JUnit XML) under its 1.8.0 ID: test_cis_2_7_... is shown
    as test_cis18_2_8_... (``-k`` still matches the function's own name)."""
    prefix, sep, name = report.nodeid.rpartition("::")
    report.nodeid = prefix + sep + controls.test_name(name, _numbering[0])


_numbering = [controls.DEFAULT_VERSION]


def pytest_configure(config):
    _numbering[0] = config.getoption("--cis")
    if config.option.hosts is not None:  # plain testinfra use: --hosts given
        config._dockguard_settings = {}
        return
    inventory = fleet.load(config.getoption("--inventory"))
    config._dockguard_settings = fleet.host_settings(inventory)
    limit = config.getoption("--limit")
    if limit:
        unknown = sorted(set(limit) - {h.name for h in inventory})
        if unknown:
            raise pytest.UsageError(f"--limit: no such host in {config.getoption('--inventory')}: {', '.join(unknown)}")
        inventory = [h for h in inventory if h.name in limit]
    if not config._dockguard_settings:
        raise pytest.UsageError(
            f"no hosts in {config.getoption('--inventory')} (inventory/lab.py: make lab-up; "
            "inventory/vagrant.py: vagrant up)"
        )
    if any(h.data.get("_sudo") for h in inventory):  # e.g. the Vagrant boxes: log in as vagrant, check as root
        config.option.sudo = True
    # One SSH connection per host for the whole suite (testinfra asks for ControlMaster=auto
    # but names no ControlPath, so each check was a new connection: on an emulated VM most of
    # the suite's time). The masters live in this run's own directory and are closed at its end.
    shared = tempfile.mkdtemp(prefix="dockguard-cis-")
    path = os.path.join(shared, "ssh.conf")
    with open(path, "w") as f:
        f.write(fleet.ssh_config(inventory) + f"\nHost *\n  ControlPath {shared}/%C\n")
    config.add_cleanup(lambda: _close_masters(path, shared, [h.name for h in inventory]))
    config.option.ssh_config = path
    config.option.hosts = ",".join(f"ssh://{h.name}" for h in inventory)


def _close_masters(config_path: str, directory: str, names: list[str]) -> None:
    import shutil
    import subprocess

    for name in names:
        if any(os.scandir(directory)):
            subprocess.run(["ssh", "-F", config_path, "-O", "exit", name], capture_output=True, timeout=10)
    shutil.rmtree(directory, ignore_errors=True)


_releases: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _release(request):
    """Each test's JUnit record names its host's release (the report's column heads)."""
    if "host" not in request.fixturenames:
        return
    host = request.getfixturevalue("host")
    name = host.backend.hostname
    if name not in _releases:
        r = host.run('. /etc/os-release && printf "%s %s" "$NAME" "$VERSION_ID"')
        _releases[name] = " ".join(r.stdout.split()) if r.rc == 0 and r.stdout.strip() else "unknown release"
    request.node.user_properties.append(("dockguard_release", _releases[name]))


@pytest.fixture(scope="module")
def cfg(host, request):
    """The dockguard settings of the host under test (defaults when unknown)."""
    from dockguard import settings

    name = host.backend.hostname
    return request.config._dockguard_settings.get(name) or settings.defaults()


@pytest.fixture(scope="module")
def docker_info(host):
    out = host.check_output("docker info --format '{{json .}}'")
    return json.loads(out)


@pytest.fixture(scope="module")
def daemon_json(host):
    f = host.file("/etc/docker/daemon.json")
    assert f.exists, "/etc/docker/daemon.json is missing"
    return json.loads(f.content_string)


@pytest.fixture(scope="module")
def test_image(host):
    """A local image to start real containers with; the lab ships a busybox root."""
    if host.run(f"docker image inspect {TEST_IMAGE}").rc == 0:
        return TEST_IMAGE
    if not host.file(LAB_IMAGE_TAR).exists:
        pytest.skip(f"no local test image ({TEST_IMAGE}) and no {LAB_IMAGE_TAR} to import it from")
    host.check_output(f"docker import {LAB_IMAGE_TAR} {TEST_IMAGE}")
    return TEST_IMAGE


@pytest.fixture
def unless_opted_out(cfg):
    """Skip, with the reason, a control the operator turned off for this host."""

    def check(key, compliant, control):
        if cfg[key] != compliant:
            pytest.skip(f"CIS {control}: {key}={cfg[key]!r} is set for this host (an operator decision)")

    return check


# Which control area (dockguard_disabled_areas) each test belongs to, by its name.
_AREA_OF = (
    ("test_cis_1_1_2_", "docker_group"), ("test_cis_1_1_", "audit"), ("test_cis_1_2_1_", "lynis"),
    ("test_cis_2_", "dockerd"), ("test_cis_3_", "files"), ("test_cis_5_", "mac"),
)  # fmt: skip


@pytest.fixture(autouse=True)
def area_switched_off(request):
    """A test of an area the operator switched off for this host is skipped with the reason."""
    if "host" not in request.fixturenames:
        return
    settings = request.getfixturevalue("cfg")
    name = request.node.name
    c = controls.for_test(name)
    if isinstance(c, controls.OsControl):  # the OS baseline's controls name their area
        if c.area in settings.get("dockguard_disabled_areas", ()):
            pytest.skip(f"dockguard_disabled_areas: {c.area!r} is switched off for this host (an operator decision)")
        return
    for prefix, area in _AREA_OF:
        if name.startswith(prefix):
            if area in settings.get("dockguard_disabled_areas", ()):
                pytest.skip(f"dockguard_disabled_areas: {area!r} is switched off for this host (an operator decision)")
            return
