"""The OS baseline around Docker on real hosts: sshd's drop-in (checked with sshd -t,
rolled back, never locking the operator out) and the firewall (INPUT drops, published
ports restricted in DOCKER-USER), checked from the lab's own network namespaces."""

from __future__ import annotations

import contextlib
import subprocess
import time

import pytest

DROPIN = "/etc/ssh/sshd_config.d/01-dockguard.conf"
SSHD_OP = "SSH-7408: sshd drop-in /etc/ssh/sshd_config.d/01-dockguard.conf, checked with sshd -t and reloaded"


def sshd_value(lab, host: str, keyword: str) -> str:
    return lab.ssh(host, f"sshd -T | sed -n 's/^{keyword} //p'").strip()


def test_the_baseline_applies_twice_and_the_host_stays_reachable(hardened_lab):
    lab = hardened_lab
    again = lab.apply()
    assert again.rc == 0, again.stderr[-3000:]
    assert again.totals["success"] == 0, again.changed_hosts()
    for host in lab.names:
        assert sshd_value(lab, host, "maxsessions") == "4"
        assert sshd_value(lab, host, "allowtcpforwarding") == "no"
        assert sshd_value(lab, host, "loglevel").lower() == "verbose"
        rules = lab.ssh(host, "iptables -S INPUT").splitlines()
        assert rules[0] == "-P INPUT DROP" and "-A INPUT -j DGD-INPUT" in rules
        # sftp still works (pyinfra uploads over it): a new connection, a file round trip.
        lab.ssh(host, "test -x /usr/lib/openssh/sftp-server || test -x /usr/libexec/openssh/sftp-server")


@pytest.mark.needs("container")
def test_a_setting_change_reloads_sshd_and_a_broken_admin_drop_in_fails_only_that_host(hardened_lab):
    lab = hardened_lab
    bad, good = lab.of_kind("container")[:2]
    lab.ssh(bad, "printf 'NoSuchKeyword yes\\n' > /etc/ssh/sshd_config.d/50-admin.conf")
    try:
        r = lab.apply(limit=[bad, good], hosts={h: {"sshd_max_sessions": 3} for h in (bad, good)})
        assert r.rc != 0
        assert r.out["results"]["failed_hosts"] == [bad]
        assert f"[{bad}]" in r.stderr and "sshd -t fails with the host's own configuration" in r.stderr
        assert "50-admin.conf" in r.stderr  # sshd's own complaint, naming the file
        assert SSHD_OP in r.changed_ops(good) and sshd_value(lab, good, "maxsessions") == "3"
        assert "MaxSessions 4" in lab.ssh(bad, f"cat {DROPIN}")  # untouched
    finally:
        lab.ssh(bad, "rm -f /etc/ssh/sshd_config.d/50-admin.conf")
    back = lab.apply(limit=[bad, good])
    assert back.rc == 0, back.stderr[-3000:]
    assert sshd_value(lab, good, "maxsessions") == "4"


@pytest.mark.needs("container")
def test_a_drop_in_sshd_rejects_is_rolled_back_and_the_host_stays_reachable(hardened_lab):
    lab = hardened_lab
    host = lab.of_kind("container")[0]
    before = lab.ssh(host, f"cat {DROPIN}")
    # An sshd that does not know one of the drop-in's keywords (an older OpenSSH): a wrapper found
    # first on PATH answers `sshd -t` as that sshd would, for the drop-in with MaxSessions 3.
    # (A Match block in an admin's drop-in does not do it: OpenSSH ends it at the end of its file.)
    shim = (
        "#!/bin/sh\n"
        'if [ "$1" = -t ] && grep -qx "MaxSessions 3" /etc/ssh/sshd_config.d/01-dockguard.conf; then\n'
        '  echo "/etc/ssh/sshd_config.d/01-dockguard.conf line 16: Bad configuration option: MaxSessions" >&2\n'
        '  exit 255\nfi\nexec /usr/sbin/sshd "$@"\n'
    )
    lab.ssh(host, f"printf '{shim}' > /usr/local/sbin/sshd && chmod 755 /usr/local/sbin/sshd")
    try:
        r = lab.apply(limit=host, hosts={host: {"sshd_max_sessions": 3}})
        assert r.rc != 0
        assert f"[{host}]" in r.stderr and "sshd -t rejected the new drop-in" in r.stderr
        assert "Bad configuration option: MaxSessions" in r.stderr
        assert "the previous sshd configuration was restored and sshd was not reloaded" in r.stderr
        assert lab.ssh(host, f"cat {DROPIN}") == before
        assert sshd_value(lab, host, "maxsessions") == "4"
        assert lab.ssh(host, "echo still here").strip() == "still here"  # a new SSH connection
    finally:
        lab.ssh(host, "rm -f /usr/local/sbin/sshd")
    back = lab.apply(limit=host)
    assert back.rc == 0, back.stderr[-3000:]
    assert back.totals["success"] == 0  # the old drop-in stayed, loaded


@contextlib.contextmanager
def extra_address(device: str, address: str):
    """A second address of this machine on a lab host's link: a source the firewall does not allow."""
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", device], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", device], check=False)


def fetch(url: str, source: str | None = None) -> str:
    cmd = ["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url]
    if source:
        cmd[1:1] = ["--interface", source]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()


@pytest.mark.needs("container")
def test_published_ports_are_restricted_in_docker_user_and_containers_still_talk(hardened_lab):
    lab = hardened_lab
    host = lab.of_kind("container")[0]
    address, device = lab.hosts[host]["address"], lab.hosts[host]["veth"]
    ours = address.rsplit(".", 1)[0] + ".1"  # this machine's end of the host's link
    other = address.rsplit(".", 1)[0] + ".3"
    lab.ssh(
        host, "docker image inspect keep:me >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar keep:me"
    )
    lab.ssh(host, "docker rm -f dg-web dg-a dg-b >/dev/null 2>&1; docker network rm dg-net >/dev/null 2>&1; "
                  "docker run -d --name dg-web -p 8080:80 keep:me httpd -f -p 80 -h /etc >/dev/null")  # fmt: skip
    data = {host: {"firewall_published_ports": {"tcp/8080": [f"{ours}/32"]}}}
    try:
        r = lab.apply(limit=host, hosts=data)
        assert r.rc == 0, r.stderr[-3000:]
        again = lab.apply(limit=host, hosts=data)
        assert again.totals["success"] == 0, again.changed_ops(host)
        url = f"http://{lab.hosts[host]['address']}:8080/passwd"
        assert fetch(url) == "404"  # allowed: busybox httpd answers (no such file under -h /etc)
        with extra_address(device, other):
            assert fetch(url, other) == "000"  # refused: no answer at all
        # Containers on a user network reach each other, and the outside of their bridge.
        lab.ssh(host, "docker network create dg-net >/dev/null && "
                      "docker run -d --name dg-a --network dg-net keep:me httpd -f -p 80 -h /etc >/dev/null && "
                      "docker run -d --name dg-b --network dg-net keep:me sleep 600 >/dev/null")  # fmt: skip
        # busybox httpd answers (a 404: the image has no /etc/passwd): dg-b reached dg-a.
        assert "HTTP/1." in lab.ssh(host, "docker exec dg-b wget -S -O /dev/null http://dg-a/passwd 2>&1 || true")
        lab.ssh(host, f"docker exec dg-b ping -c1 -W3 {ours}")
        # A dockerd restart keeps the rules (dockerd never empties DOCKER-USER).
        lab.ssh(host, "systemctl restart docker.service")
        assert "-A DOCKER-USER -j DGD-PUB" in lab.ssh(host, "iptables -S DOCKER-USER")
        with extra_address(device, other):
            assert fetch(url, other) == "000"
        # What a boot does: the unit puts the chains back from nothing.
        lab.ssh(host, "iptables -D DOCKER-USER -j DGD-PUB; iptables -F DGD-PUB; iptables -D INPUT -j DGD-INPUT; "
                      "iptables -P INPUT ACCEPT; systemctl restart dockguard-firewall.service")  # fmt: skip
        assert lab.apply(limit=host, hosts=data).totals["success"] == 0
        # Drift: a rule removed by hand is found and put back.
        lab.ssh(host, "iptables -F DGD-PUB")
        fixed = lab.apply(limit=host, hosts=data)
        assert fixed.rc == 0 and fixed.totals["success"] == 1, fixed.stderr[-2000:]
        with extra_address(device, other):
            assert fetch(url, other) == "000"
    finally:
        lab.ssh(host, "docker rm -f dg-web dg-a dg-b >/dev/null 2>&1; docker network rm dg-net >/dev/null 2>&1; true")
    back = lab.apply(limit=host)
    assert back.rc == 0, back.stderr[-3000:]
    assert lab.ssh(host, "iptables -S DGD-PUB").strip() == "-N DGD-PUB"


@pytest.mark.needs("vm")
def test_the_firewall_survives_a_reboot(hardened_lab):
    """dockguard-firewall.service puts the chains back at boot, before dockerd, which keeps
    DOCKER-USER's content; the audit rules load at boot (the watch in /run/containerd, which
    does not exist then, is loaded by dockguard-audit-runtime.service after containerd), so
    auditd runs; the next run finds nothing to change."""
    lab = hardened_lab
    host = lab.of_kind("vm")[0]
    data = {host: {"firewall_published_ports": {"tcp/8080": ["192.0.2.0/24"]}}}
    r = lab.apply(limit=host, hosts=data)
    assert r.rc == 0, r.stderr[-3000:]
    boot = lab.ssh(host, "cat /proc/sys/kernel/random/boot_id").strip()
    # AIDE's first database is built in the background for minutes under emulation: a reboot
    # before it is done interrupts it, and the next run rightly starts it again.
    aide_done = lab.ssh(host, "test -s /var/lib/aide/aide.db && echo yes || true").strip() == "yes"
    lab.ssh(host, "systemctl reboot", check=False, timeout=30)
    deadline = time.monotonic() + 600
    while True:
        try:
            if lab.ssh(host, "cat /proc/sys/kernel/random/boot_id", timeout=30).strip() != boot:
                break
        except (AssertionError, subprocess.TimeoutExpired):
            pass
        assert time.monotonic() < deadline, f"{host} did not come back within 600 s of its reboot"
        time.sleep(5)
    # (`is-active` does not wait: the boot's jobs are done once is-system-running answers.)
    lab.ssh(host, "systemctl is-system-running --wait >/dev/null; systemctl is-active docker.service "
                  "dockguard-firewall.service dockguard-audit-runtime.service", timeout=300)  # fmt: skip
    rules = lab.ssh(host, "iptables -S INPUT").splitlines()
    assert rules[0] == "-P INPUT DROP" and "-A INPUT -j DGD-INPUT" in rules
    assert "-A DOCKER-USER -j DGD-PUB" in lab.ssh(host, "iptables -S DOCKER-USER")
    assert "--ctorigdstport 8080 --ctdir ORIGINAL -j DROP" in lab.ssh(host, "iptables -S DGD-PUB")
    assert lab.ssh(host, "systemctl --failed --no-legend --plain").strip() == ""
    lab.ssh(host, "systemctl is-active auditd.service", timeout=60)
    assert "-w /run/containerd/containerd.sock -p wa -k docker" in lab.ssh(host, "auditctl -l").splitlines()
    again = lab.apply(limit=host, hosts=data)
    assert again.rc == 0, again.stderr[-3000:]
    allowed = set() if aide_done else {"FINT-4350: AIDE database built (once, in the background)"}
    assert set(again.changed_ops(host)) <= allowed, again.changed_ops(host)
    back = lab.apply(limit=host)
    assert back.rc == 0, back.stderr[-3000:]
