"""Mandatory access control end to end (CIS 5.1): on the VM host (Debian's kernel
booted with AppArmor) dockguard-default is loaded in enforce mode and confines a
container that opts in; it is reloaded only when the file changed or the kernel
lost it; a container host says AppArmor is not its own and goes on."""

from __future__ import annotations

import json

import pytest

PROFILE = "dockguard-default"
PROFILE_FILE = f"/etc/apparmor.d/{PROFILE}"
FILE_OP = "CIS 5.1: dockguard-default AppArmor profile"
LOAD_OP = "CIS 5.1: dockguard-default loaded in enforce mode (aa-status)"


@pytest.fixture
def vm(lab):
    vms = lab.of_kind("vm")
    if not vms:
        pytest.skip("needs the lab's VM host (make lab-up VM=1): a container host cannot load AppArmor profiles")
    return vms[0]


def profiles(lab, host):
    return json.loads(lab.ssh(host, "aa-status --json"))["profiles"]


@pytest.mark.needs("vm")
def test_profile_enforced_and_a_container_confined_by_it(lab, vm):
    r = lab.apply(limit=vm)
    assert r.rc == 0, r.stderr[-3000:]
    assert profiles(lab, vm)[PROFILE] == "enforce"
    assert profiles(lab, vm)["docker-default"] == "enforce"
    image = "dockguard-e2e:busybox"
    lab.ssh(vm, f"docker image inspect {image} >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar {image}")
    out = lab.docker(vm, f"run --rm --security-opt apparmor={PROFILE} {image} cat /proc/self/attr/current")
    assert out == f"{PROFILE} (enforce)"
    assert lab.docker(vm, f"run --rm {image} cat /proc/self/attr/current") == "docker-default (enforce)"
    # Confined for real: the kernel refuses what the profile denies (a raw socket).
    denied = lab.ssh(
        vm, f"docker run --rm --security-opt apparmor={PROFILE} {image} ping -c1 127.0.0.1 2>&1", check=False
    )
    assert "can't create raw socket: Permission denied" in denied
    assert "1 packets received" in lab.docker(vm, f"run --rm {image} ping -c1 127.0.0.1")


@pytest.mark.needs("vm")
def test_profile_reloaded_only_when_the_kernel_lost_it_or_the_file_changed(lab, vm):
    assert lab.apply(limit=vm).rc == 0
    lab.ssh(vm, f"apparmor_parser -R {PROFILE_FILE}")  # unloaded by hand: the file is unchanged
    assert PROFILE not in profiles(lab, vm)
    fix = lab.apply(limit=vm)
    assert fix.changed_ops(vm) == [LOAD_OP]
    assert profiles(lab, vm)[PROFILE] == "enforce"
    lab.ssh(vm, f"sed -i 's/deny network raw,/network raw,/' {PROFILE_FILE}")  # loosened by hand
    fix = lab.apply(limit=vm)
    assert fix.changed_ops(vm) == [FILE_OP, LOAD_OP]
    assert "deny network raw," in lab.ssh(vm, f"cat {PROFILE_FILE}")
    assert lab.apply(limit=vm).totals["success"] == 0


@pytest.mark.needs("container")
def test_container_host_says_apparmor_is_not_its_own_and_goes_on(lab):
    host = lab.of_kind("container")[0]
    r = lab.apply(limit=host)
    assert r.rc == 0, r.stderr[-3000:]
    assert f"[{host}] CIS 5.1: this host is a container (systemd-nspawn): AppArmor profiles are loaded" in r.stderr
    assert f"profile {PROFILE} " in lab.ssh(host, f"cat {PROFILE_FILE}")
    assert LOAD_OP not in lab.apply(limit=host).changed_ops(host)
