"""Docker installed by dockguard itself (docker_install), then hardened in the same
run with facts read from the Docker just installed; a second run changes nothing.
Without docker_install the host is refused before anything changes.

The lab's hosts have no network: the lab keeps the docker.io package in their apt
cache (lab/labctl.py KEEP_DEBS), so apt installs it as it would from a mirror."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

INSTALL_OP = "dockguard: Docker installed (docker_install)"
NESTED_OP = "dockguard: harden the Docker installed in this run"
RESTART_OP = "dockerd: restart when the config changed or the daemon does not match it"


def test_docker_installed_and_hardened_in_one_run(lab):
    host = lab.of_kind("container")[-1]
    if not lab.ssh(host, "ls /var/cache/apt/archives/ | grep '^docker.io_'", check=False).strip():
        pytest.skip("this lab's root filesystem has no cached docker.io package (rebuild it: make lab-down lab-up)")
    lab.reset_to_stock(host)
    lab.ssh(host, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q docker.io >/dev/null 2>&1")
    assert not lab.ssh(host, "command -v dockerd", check=False).strip()

    refused = lab.apply(limit=host)  # docker_install is off by default
    assert refused.rc != 0
    assert (
        f"[{host}] dockguard: this host is refused, nothing was changed on it: dockerd is not installed: install "
        "Docker first, or set docker_install: True"
    ) in refused.stderr
    assert not lab.ssh(host, "command -v dockerd", check=False).strip()  # nothing changed

    data = {host: {"docker_install": True}}
    first = lab.apply(limit=host, hosts=data)
    assert first.rc == 0, first.stderr[-3000:]
    changed = first.changed_ops(host)
    assert changed[:2] == [INSTALL_OP, NESTED_OP]
    assert RESTART_OP in changed  # hardened in the same run
    assert lab.ssh(host, "command -v dockerd").strip() == "/usr/sbin/dockerd"
    assert "name=userns" in lab.docker(host, "info --format '{{json .SecurityOptions}}'")
    assert lab.docker(host, "network inspect bridge --format '{{json .Options}}'").count(
        '"com.docker.network.bridge.enable_icc":"false"'
    )
    second = lab.apply(limit=host, hosts=data)
    assert second.totals["success"] == 0, second.changed_ops(host)
