"""Containers on real hosts: the container audit's findings on a mix of containers (running
and created, read from the daemon and, with the daemon stopped, from the disk), and
dockguard-authz refusing what its policy forbids, with exceptions, restarts and its failure
mode, applied twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]
AUDIT = [sys.executable, "-m", "dockguard", "audit-containers"]
# An image with a user and a HEALTHCHECK, built offline from the lab's busybox (printf's format).
GOOD_DOCKERFILE = "FROM keep:me\\nUSER 1000\\nHEALTHCHECK CMD true\\n"
DENIED = "authorization denied by plugin dockguard-authz"

HARDEN_KIND = "container"  # its tests use the container hosts only (conftest.hardened_lab)


def audit(lab, host: str, *args: str) -> tuple[int, dict]:
    with lab.inventory() as inventory:
        r = subprocess.run([*AUDIT, inventory, "--limit", host, "--json", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert r.stdout.strip(), r.stderr[-3000:]
    return r.returncode, json.loads(r.stdout)


def fails(result: dict, host: str) -> dict[str, set[str]]:
    return {
        ct["container"]: {r["cis"] for r in ct["results"] if r["status"] == "FAIL"}
        for ct in result["hosts"][host]["containers"]
    }


def images(lab, host: str) -> None:
    lab.ssh(
        host, "docker image inspect keep:me >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar keep:me"
    )
    lab.ssh(host, f"printf '{GOOD_DOCKERFILE}' | DOCKER_BUILDKIT=0 docker build -q -t dg-good:1 - >/dev/null")


def test_the_audit_finds_exactly_what_each_container_breaks(hardened_lab):
    lab = hardened_lab
    host = lab.of_kind("container")[0]
    images(lab, host)
    lab.ssh(host, "docker rm -f dg-ok dg-priv dg-hostnet >/dev/null 2>&1; docker network rm dg-audit >/dev/null 2>&1; "
                  "docker network create dg-audit >/dev/null")  # fmt: skip
    try:
        lab.ssh(host, "docker run -d --name dg-ok --network dg-audit --user 1000 --read-only --memory 64m "
                      "--cpu-shares 512 --pids-limit 50 --restart on-failure:3 --cap-drop ALL "
                      "--security-opt no-new-privileges -p 127.0.0.1:8081:8081 dg-good:1 sleep 100000 >/dev/null")  # fmt: skip
        # Created, never started: the audit covers every container, running or not.
        lab.ssh(host, "docker create --name dg-priv --privileged --userns host "
                      "-v /var/run/docker.sock:/var/run/docker.sock keep:me sleep 1 >/dev/null")  # fmt: skip
        lab.ssh(host, "docker create --name dg-hostnet --network host --userns host keep:me sleep 1 >/dev/null")
        apparmor = "name=apparmor" in lab.ssh(host, "docker info --format '{{json .SecurityOptions}}'")
        rc, live = audit(lab, host)
        assert rc == 2 and live["exit_code"] == 2, live
        assert live["hosts"][host]["source"] == "daemon"
        # Every finding a default container has (root, no limits, image without HEALTHCHECK) ...
        defaults = {"4.1", "4.6", "5.10", "5.11", "5.12", "5.26", "5.28"}
        expected = {
            "dg-ok": set(),
            # ... with privileged mode, which also lifts seccomp (and AppArmor where the daemon applies it),
            # the host's user namespace, Docker's socket, and the default bridge.
            "dg-priv": defaults | {"5.4", "5.21", "5.29", "5.30", "5.31"} | ({"5.1"} if apparmor else set()),
            "dg-hostnet": defaults | {"5.9", "5.30"},
        }
        found = fails(live, host)
        assert {k: found[k] for k in expected} == expected, found
        ok = next(ct for ct in live["hosts"][host]["containers"] if ct["container"] == "dg-ok")
        reasons = {r["cis"]: r["reason"] for r in ok["results"]}
        assert reasons["5.25"] == "set on the container" and reasons["4.1"] == "runs as '1000'"
        assert live["exceptions"]["4.5"].startswith("content trust: Docker retired")
        # The daemon stopped: read from the disk, the same findings.
        lab.ssh(host, "systemctl stop docker.service docker.socket")
        try:
            rc, disk = audit(lab, host)
        finally:
            lab.ssh(host, "systemctl start docker.service")
        assert rc == 2 and disk["hosts"][host]["source"] == "disk", disk
        on_disk = fails(disk, host)
        assert {k: on_disk[k] for k in expected} == {k: found[k] for k in expected}
        assert lab.docker(host, "inspect -f '{{.State.Running}}' dg-ok") == "true"  # live-restore kept it
        # Only findings of high severity count with --fail-on high; text output names the checks.
        with lab.inventory() as inventory:
            text = subprocess.run([*AUDIT, inventory, "--limit", host, "--fail-on", "high"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
        assert text.returncode == 2 and "CIS 5.31  high   Docker socket not mounted: mounts /var/run/docker.sock" \
            in text.stdout, text.stdout  # fmt: skip
    finally:
        lab.ssh(host, "docker rm -f dg-ok dg-priv dg-hostnet >/dev/null 2>&1; docker network rm dg-audit >/dev/null")
    rc, empty = audit(lab, host)
    assert not [c for c in fails(empty, host) if c.startswith("dg-")]


def test_an_unreachable_host_is_unchecked_never_clean(lab, tmp_path):
    inventory = tmp_path / "gone.py"
    # Loopback on a port nothing listens on: the connection is refused.
    inventory.write_text("hosts = [('gone', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9})]\n")
    r = subprocess.run([*AUDIT, str(inventory), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["hosts"]["gone"]["status"] == "unchecked", out


POLICY = {"exceptions": [{"label": "dockguard.authz/exception=e2e", "rules": ["privileged"]}]}


def test_the_policy_refuses_what_it_forbids_and_survives_restarts(hardened_lab, tmp_path):
    lab = hardened_lab
    fixed, bypassable = lab.of_suite("trixie", "container")[0], lab.of_suite("bookworm", "container")[0]
    data = {h: {"docker_authz_policy": POLICY} for h in (fixed, bypassable)}
    r = lab.apply(limit=[fixed, bypassable], hosts=data)
    assert r.rc == 0, r.stderr[-3000:]
    # Debian 12's engine lacks the fix of CVE-2026-34040: every run says the policy is no control there.
    assert f"[{bypassable}] CIS 2.12: the dockguard-authz policy is not a control on this engine" in r.stderr
    assert "CVE-2026-34040 unfixed" in r.stderr and f"[{fixed}] CIS 2.12: the dockguard-authz" not in r.stderr
    again = lab.apply(limit=[fixed, bypassable], hosts=data)
    assert again.rc == 0 and again.totals["success"] == 0, again.changed_ops(fixed) + again.changed_ops(bypassable)
    host = fixed
    images(lab, host)

    def run(args: str) -> subprocess.CompletedProcess:
        out = lab.ssh(host, f"docker run --rm {args} keep:me true 2>&1; echo rc=$?", check=False)
        text, _, rc = out.rstrip("\n").rpartition("rc=")
        return subprocess.CompletedProcess(args, int(rc), text, text)

    try:
        for args, rule in (("--privileged --userns host", "rule privileged"),
                           ("-v /var/run/docker.sock:/var/run/docker.sock", "rule host_path"),
                           ("--pid host --userns host", "rule host_pid"),
                           ("--cap-add SYS_ADMIN", "rule capability: --cap-add SYS_ADMIN")):  # fmt: skip
            out = run(args)
            assert out.returncode != 0 and DENIED in out.stderr and rule in out.stderr, (args, out.stderr)
            assert "docker_authz_policy's exceptions" in out.stderr
        assert run("").returncode == 0
        assert run("--privileged --userns host --label dockguard.authz/exception=e2e").returncode == 0
        # dockerd restarts with the plugin; live-restore keeps a container; the policy still holds.
        cid = lab.start_container(host)
        lab.ssh(host, "systemctl restart docker.service")
        assert lab.docker(host, f"inspect -f '{{{{.State.Running}}}}' {cid}") == "true"
        assert DENIED in run("--privileged --userns host").stderr
        # The plugin stopped: its socket starts it again on the next call, which is decided.
        lab.ssh(host, "systemctl stop dockguard-authz.service")
        assert DENIED in run("--privileged --userns host").stderr and run("").returncode == 0
        # The policy unreadable: failure mode deny refuses everything it checks ...
        lab.ssh(
            host, "cp /etc/docker/dockguard-authz.json /tmp/policy && printf '{' > /etc/docker/dockguard-authz.json"
        )
        out = run("")
        assert out.returncode != 0 and "cannot decide" in out.stderr and "failure_mode deny" in out.stderr
        # ... and failure mode allow lets it through, warned on every run; the run restores the policy.
        allow = {fixed: {"docker_authz_policy": POLICY, "docker_authz_failure_mode": "allow"}}
        r = lab.apply(limit=fixed, hosts=allow)
        assert r.rc == 0 and f"[{fixed}] CIS 2.12: docker_authz_failure_mode is allow" in r.stderr
        assert lab.ssh(host, "cat /etc/docker/dockguard-authz.json") == lab.ssh(host, "cat /tmp/policy")
        lab.ssh(host, "printf '{' > /etc/docker/dockguard-authz.json")
        assert run("").returncode == 0
        assert run("--privileged --userns host").returncode == 0  # cannot decide: allowed
        r = lab.apply(limit=fixed, hosts=data)
        assert r.rc == 0, r.stderr[-3000:]
        assert DENIED in run("--privileged --userns host").stderr
        # The plugin made unreadable for its DynamicUser (an admin's chmod; the running plugin has it
        # loaded): the next run puts its mode back, and the restarted plugin answers.
        lab.ssh(host, "chmod 600 /usr/local/lib/dockguard-authz.py")
        r = lab.apply(limit=fixed, hosts=data)
        assert r.rc == 0 and "CIS 2.12: dockguard-authz: socket listening, plugin current" in r.changed_ops(fixed)
        assert lab.ssh(host, "stat -c %a /usr/local/lib/dockguard-authz.py").strip() == "755"
        lab.ssh(host, "systemctl restart dockguard-authz.service")
        assert run("").returncode == 0 and DENIED in run("--privileged --userns host").stderr
        # Its socket stopped by hand: dockerd refuses every call, and the run says why and how, for
        # that host alone; once started again, all is well.
        lab.ssh(host, "systemctl stop dockguard-authz.socket dockguard-authz.service")
        r = lab.apply(limit=[fixed, bypassable], hosts=data)
        assert r.rc != 0 and r.out["results"]["failed_hosts"] == [fixed], r.stderr[-3000:]
        assert f"[{fixed}] dockguard: this host is refused" in r.stderr
        assert "dockguard-authz socket and plugin: inactive inactive" in r.stderr
        lab.ssh(host, "systemctl start dockguard-authz.socket")
        assert lab.apply(limit=[fixed, bypassable], hosts=data).totals["success"] == 0
        # CIS 2.12 is checked, not assumed: it passes where the engine is fixed, and fails where not.
        _, _, results = lab.cis(tmp_path / "cis.xml", hosts=data, keyword="authorization_plugins")
        # (named by its CIS 1.8.0 ID, 2.13, unless run with --cis 1.6)
        verdict = {h: [v for k, v in results.items() if k.endswith(f"authorization_plugins[ssh://{h}]")]
                   for h in (fixed, bypassable)}  # fmt: skip
        assert verdict == {fixed: ["passed"], bypassable: ["failed"]}, results
    finally:
        lab.ssh(host, "chmod 755 /usr/local/lib/dockguard-authz.py; systemctl start dockguard-authz.socket; "
                      "timeout 60 docker rm -f $(timeout 30 docker ps -aq) >/dev/null 2>&1; true")  # fmt: skip
    # Off again: the plugin leaves daemon.json, then the host; Docker answers.
    off = lab.apply(limit=[fixed, bypassable])
    assert off.rc == 0, off.stderr[-3000:]
    for h in (fixed, bypassable):
        assert "authorization-plugins" not in lab.ssh(h, "cat /etc/docker/daemon.json")
        assert lab.ssh(h, "ls /etc/systemd/system/dockguard-authz.socket /etc/docker/dockguard-authz.json "
                          "2>/dev/null; true").strip() == ""  # fmt: skip
        lab.ssh(h, "docker ps >/dev/null")
    assert lab.apply(limit=[fixed, bypassable]).totals["success"] == 0
