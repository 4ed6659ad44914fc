"""SELinux end to end (CIS 5.2) on the lab's SELinux VM (vm2: Debian 12 with Debian's
selinux-policy-default, its file system labelled, booted permissive): dockguard makes
it enforcing, turns on SELinux labelling in dockerd, containers run confined, SSH
still works, and a second run changes nothing.

vm2 is not part of `make test` (a second emulated VM would add minutes to every
run): start it with `make lab-up N=0 SELINUX=1`, then run this file. The RHEL
family's branch of the same code is covered by unit tests with fact fixtures."""

from __future__ import annotations

import json

import pytest

ENFORCING_OP = "CIS 5.2: SELinux enforcing"
IMAGE = "dockguard-e2e:busybox"


@pytest.fixture
def vm(lab):
    vms = lab.of_kind("vm-selinux")
    if not vms:
        pytest.skip(
            "needs the lab's SELinux VM, which `make test` does not boot: make lab-up N=0 SELINUX=1, "
            "then run tests/e2e/test_65_selinux.py"
        )
    return vms[0]


def test_permissive_host_made_enforcing_and_containers_labelled(lab, vm):
    assert lab.ssh(vm, "getenforce").strip() in ("Permissive", "Enforcing")
    first = lab.apply(limit=vm)
    assert first.rc == 0, first.stderr[-3000:]
    assert lab.ssh(vm, "getenforce").strip() == "Enforcing"
    assert "SELINUX=enforcing" in lab.ssh(vm, "cat /etc/selinux/config").splitlines()
    assert json.loads(lab.ssh(vm, "cat /etc/docker/daemon.json"))["selinux-enabled"] is True
    assert "name=selinux" in lab.docker(vm, "info --format '{{json .SecurityOptions}}'")
    lab.ssh(vm, f"docker image inspect {IMAGE} >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar {IMAGE}")
    label = lab.docker(vm, f"run --rm {IMAGE} cat /proc/self/attr/current").strip("\x00")
    assert ":container_t:" in label or ":svirt_lxc_net_t:" in label, label
    second = lab.apply(limit=vm)
    assert second.totals["success"] == 0, second.changed_ops(vm)
