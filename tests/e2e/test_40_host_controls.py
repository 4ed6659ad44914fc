"""Host controls end to end: audit watches live on the VM host (and restored after a
rule is deleted by hand), a loosened file and socket restored on a container host,
the docker group allowlist, and Lynis with its report and gate."""

from __future__ import annotations

import pytest

LOAD = "CIS 1.1: audit rules loaded and verified in the kernel"
PERMS = "CIS 3.x: owner and mode of Docker files, sockets, units and certificates"


@pytest.mark.needs("vm")
def test_audit_rules_live_and_a_deleted_rule_restored(lab):
    vms = lab.of_kind("vm")
    if not vms:
        pytest.skip("needs the lab's VM host (make lab-up VM=1): auditd cannot run in a container host")
    vm = vms[0]
    r = lab.apply(limit=vm)
    assert r.rc == 0, r.stderr[-3000:]
    live = lab.ssh(vm, "auditctl -l").splitlines()
    for path in ("/usr/sbin/dockerd", "/etc/docker", "/var/lib/docker", "/etc/docker/daemon.json", "/usr/sbin/runc"):
        assert f"-w {path} -p wa -k docker" in live
    lab.ssh(vm, "auditctl -W /etc/docker -p wa -k docker")
    assert "-w /etc/docker -p wa -k docker" not in lab.ssh(vm, "auditctl -l")
    fix = lab.apply(limit=vm)
    assert fix.changed_ops(vm) == [LOAD]
    assert "-w /etc/docker -p wa -k docker" in lab.ssh(vm, "auditctl -l").splitlines()
    assert lab.apply(limit=vm).totals["success"] == 0


@pytest.mark.needs("container")
def test_container_host_says_auditd_cannot_run_and_goes_on(lab):
    host = lab.of_kind("container")[0]
    r = lab.apply(limit=host)
    assert r.rc == 0
    assert f"[{host}] CIS 1.1: auditd cannot run on this host: it is a container (systemd-nspawn)" in r.stderr
    assert "-w /etc/docker -p wa -k docker" in lab.ssh(host, "cat /etc/audit/rules.d/dockguard-docker.rules")


@pytest.mark.needs("container")
def test_loosened_files_and_socket_are_restored(lab):
    host = lab.of_kind("container")[0]
    lab.ssh(host, "chmod 666 /var/run/docker.sock && chown root:root /var/run/docker.sock && "
                  "chmod 664 /lib/systemd/system/docker.service && chmod 777 /etc/docker && "
                  "chmod 666 /etc/audit/rules.d/dockguard-docker.rules /etc/apparmor.d/dockguard-default")  # fmt: skip
    r = lab.apply(limit=host)
    assert r.rc == 0, r.stderr[-3000:]
    assert r.changed_ops(host) == [PERMS]
    modes = lab.ssh(
        host,
        "stat -L -c '%n %a %U:%G' /var/run/docker.sock /lib/systemd/system/docker.service /etc/docker "
        "/etc/audit/rules.d/dockguard-docker.rules /etc/apparmor.d/dockguard-default",
    )
    assert modes.splitlines() == [
        "/var/run/docker.sock 660 root:docker",
        "/lib/systemd/system/docker.service 644 root:root",
        "/etc/docker 755 root:root",
        "/etc/audit/rules.d/dockguard-docker.rules 640 root:root",
        "/etc/apparmor.d/dockguard-default 644 root:root",
    ]
    assert lab.apply(limit=host).totals["success"] == 0


@pytest.mark.needs("container")
def test_docker_group_members_reported_then_enforced(lab):
    host = lab.of_kind("container")[-1]
    # From the hardened state, whatever the module run before left on the host (the modules run in any order).
    assert lab.apply(limit=host).rc == 0
    lab.ssh(host, "id alice >/dev/null 2>&1 || useradd -M alice; gpasswd -a alice docker >/dev/null")
    r = lab.apply(limit=host)
    assert r.rc == 0 and r.totals["success"] == 0, r.changes()
    assert f"[{host}] CIS 1.1.2: docker group members not in docker_group_members: alice" in r.stderr
    assert "alice" in lab.ssh(host, "getent group docker")
    allowed = lab.apply(limit=host, hosts={host: {"docker_group_members": ["alice"]}})
    assert "docker group members not in docker_group_members" not in allowed.stderr
    enforce = {host: {"docker_group_enforce": True}}
    removed = lab.apply(limit=host, hosts=enforce)
    assert removed.changed_ops(host) == ["CIS 1.1.2: only trusted users in the docker group"]
    assert "alice" not in lab.ssh(host, "getent group docker")
    assert lab.apply(limit=host, hosts=enforce).totals["success"] == 0


@pytest.mark.needs("container")
def test_lynis_index_before_and_after_hardening_and_the_gate(lab, tmp_path):
    host = lab.of_kind("container")[-1]
    lab.reset_to_stock(host)
    lab.ssh(host, "rm -f /var/log/lynis-report.dat /etc/lynis/dockguard.prf")
    lynis = {"lynis_enabled": True, "lynis_reports_dir": str(tmp_path)}
    first = lab.apply(limit=host, hosts={host: lynis})
    assert first.rc == 0, first.stderr[-3000:]
    ops = first.changed_ops(host)
    assert "CIS 1.2.1: Lynis baseline before hardening" in ops
    assert "CIS 1.2.1: Lynis audit after hardening" in ops
    line = next(x for x in first.stderr.splitlines() if f"[{host}] CIS 1.2.1: Lynis hardening index" in x)
    after = int(line.split("hardening index ")[1].split(" ")[0])
    before = int(line.split("before dockguard: ")[1].split(")")[0])
    print(f"Lynis hardening index on {host}: {before} stock, {after} hardened; {line}")
    # dockguard hardens Docker, not the whole OS: Lynis's score may stay where it was,
    # but it must not drop.
    assert after >= before
    saved = (tmp_path / f"{host}.dat").read_text()
    assert f"hardening_index={after}" in saved
    skipped = next(x for x in saved.splitlines() if x.startswith("tests_skipped="))
    assert "PKGS-7392" in skipped.split("=", 1)[1].split("|")  # dockguard's profile was used

    again = lab.apply(limit=host, hosts={host: lynis})
    assert again.totals["success"] == 0, again.out["results"]["operations"]

    gate = lab.apply(limit=host, hosts={host: lynis | {"lynis_min_hardening_index": 99}})
    assert gate.rc != 0  # the only host failed: pyinfra ends with "No hosts remaining"
    assert f"Lynis hardening index {after} is below lynis_min_hardening_index 99 (top warnings: " in gate.stderr
    ok = lab.apply(limit=host, hosts={host: lynis | {"lynis_min_hardening_index": after}})
    assert ok.rc == 0 and ok.totals["success"] == 0
