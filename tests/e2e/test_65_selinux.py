"""SELinux on Debian (CIS 5.2), on the lab's SELinux VM (vm2: Debian 12 with Debian's
selinux-policy-default, its file system labelled, booted permissive).

What the first try on vm2 showed: dockguard made it enforcing (setenforce and
/etc/selinux/config), SSH kept working, dockerd came up with selinux-enabled and
reported name=selinux - and then no container could start: Debian's policy has no
container module (container_t, container_file_t; RHEL's container-selinux ships
it), so the kernel rejects the label dockerd puts on a container's overlay mount.
dockguard now refuses SELinux on such a host in the preflight, before touching it;
this test checks that refusal on the real host.

vm2 is not part of `make test` (a second emulated VM would add minutes to every
run): start it with `make lab-up N=0 SELINUX=1`, then run this file. The RHEL
family's branch (container-selinux, enforcing, labelled containers) is covered by
unit tests with fact fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def vm(lab):
    vms = lab.of_kind("vm-selinux")
    if not vms:
        pytest.skip(
            "needs the lab's SELinux VM, which `make test` does not boot: make lab-up N=0 SELINUX=1, "
            "then run tests/e2e/test_65_selinux.py"
        )
    return vms[0]


@pytest.mark.needs("vm-selinux")
def test_selinux_without_a_container_policy_is_refused_before_anything_changes(lab, vm):
    assert lab.ssh(vm, "getenforce").strip() == "Permissive"
    assert "container" not in lab.ssh(vm, "semodule -l").split()
    before = lab.ssh(vm, "sha256sum /etc/selinux/config; ls /etc/docker")
    r = lab.apply(limit=vm)  # group_data/lab_selinux_vms.py: dockguard_mac = "selinux"
    assert r.rc != 0
    assert (
        f"[{vm}] dockguard: this host is refused, nothing was changed on it: dockguard_mac: 'selinux': this host's SELinux policy has no container module"
        in r.stderr
    )
    assert lab.ssh(vm, "getenforce").strip() == "Permissive"
    assert lab.ssh(vm, "sha256sum /etc/selinux/config; ls /etc/docker") == before
    # and the host is still a working Docker host
    assert lab.ssh(vm, "docker import /opt/dockguard-lab/busybox.tar e2e:busybox >/dev/null && "
                       "docker run --rm e2e:busybox echo ok").strip() == "ok"  # fmt: skip
