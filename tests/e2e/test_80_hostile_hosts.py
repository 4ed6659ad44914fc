"""Hosts in odd states, as fleets have them: each state is set up on one lab host, then
one drift check, one apply (with a second, healthy host in the same run) and a second
apply. For every state: nothing hidden (the same `docker ps -a` / `docker images`
before and after), no plain TCP socket left (`ss -ltn`), the message names the host,
the file and the CIS ID, the other host is still hardened and checked clean, and the
second apply changes nothing.

Each state's outcome and the apply's wall time are appended to the file named by
DOCKGUARD_E2E_TIMINGS, when set (for the closing note's table).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]
DOCKGUARD = str(Path(sys.executable).with_name("dockguard"))  # the checkout's venv (make venv)
DROPIN_DIR = "/etc/systemd/system/docker.service.d"


@dataclass
class Outcome:
    check: tuple[int, dict]
    apply_rc: int
    failed: list[str]
    stderr: str
    changed: list[str]
    again_success: int
    seconds: float


def drift(*limit: str) -> tuple[int, dict]:
    args = [a for name in limit for a in ("--limit", name)]
    r = subprocess.run([DOCKGUARD, "drift", "inventory/lab.py", "--json", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    return r.returncode, json.loads(r.stdout)


def inventory_of(lab, host: str) -> tuple[str, str]:
    """(ids of every container, ids of every image) as dockerd shows them."""
    ps = lab.ssh(host, "docker ps -aq --no-trunc | sort").strip()
    images = lab.ssh(host, "docker images -q --no-trunc | sort -u").strip()
    return ps, images


def plain_sockets(lab, host: str) -> list[str]:
    return [line for line in lab.ssh(host, "ss -ltnH").splitlines() if ":2375 " in line]


def both_ways(lab, host: str) -> dict:
    """The daemon's state read by perl over its socket (the default where a host has perl) and
    by the docker CLI and ss (a host without perl): the same reading, whatever state it is in."""
    from dockguard.operations import dockerd

    got = {}
    for api in ("perl", "cli"):
        out = lab.ssh(host, "sh -c " + shlex.quote(dockerd.DockerdState().command(api=api)), timeout=120)
        got[api] = dockerd.parse_state(out.splitlines())
    assert got["perl"] == got["cli"], {
        k: (v, got["cli"].get(k)) for k, v in got["perl"].items() if v != got["cli"].get(k)
    }
    return got["perl"]


def record(state: str, outcome: Outcome, did: str) -> None:
    path = os.environ.get("DOCKGUARD_E2E_TIMINGS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"state": state, "did": did, "apply_s": round(outcome.seconds, 1)}) + "\n")


@pytest.fixture
def pair(lab):
    """(target, other): two container hosts, both hardened, the target with a running
    container and an image (its inventory is compared after each state)."""
    hosts = lab.of_kind("container")
    if len(hosts) < 2:
        pytest.fail("needs two container hosts (make lab-up N=2)")
    target, other = hosts[:2]
    for h in (target, other):
        lab.ssh(h, "systemctl unmask docker.service; systemctl enable docker.service docker.socket >/dev/null 2>&1; "
                   "systemctl start docker.service; true")  # fmt: skip
    base = lab.apply(limit=[target, other])
    assert base.rc == 0, base.stderr[-3000:]
    lab.start_container(target)
    before = inventory_of(lab, target)
    assert before[0] and before[1]
    yield target, other, before
    lab.ssh(target, f"rm -f {DROPIN_DIR}/zz-*.conf {DROPIN_DIR}/override.conf; "
                    "sed -i '/^DOCKER_OPTS=/d' /etc/default/docker; systemctl daemon-reload; "
                    "systemctl unmask docker.service; systemctl enable docker.service >/dev/null 2>&1; "
                    "systemctl start docker.service; docker rm -f $(docker ps -aq) >/dev/null 2>&1; true")  # fmt: skip
    assert lab.apply(limit=[target, other]).rc == 0


def run_state(lab, target: str, other: str, hosts: dict | None = None) -> Outcome:
    check = drift(target, other)
    t0 = time.monotonic()
    r = lab.apply(limit=[target, other], hosts=hosts)
    seconds = time.monotonic() - t0
    assert r.out is not None, r.stderr[-3000:]
    again = lab.apply(limit=[target, other], hosts=hosts)
    assert again.out is not None, again.stderr[-3000:]
    changed = r.changed_ops(target)
    # The healthy host went on, is hardened, and the next check finds it clean.
    assert other not in r.out["results"].get("failed_hosts", [])
    assert other not in again.out["results"].get("failed_hosts", [])
    after_check = drift(other)
    assert after_check[1]["hosts"][other]["status"] == "clean", after_check
    return Outcome(check, r.rc, r.out["results"].get("failed_hosts", []), r.stderr, changed,
                   again.totals["success"], seconds)  # fmt: skip


def reasons(check: tuple[int, dict], host: str) -> str:
    h = check[1]["hosts"][host]
    return " | ".join([f"CIS {d['cis']}: {d['reason']}" for d in h["drift"]] + h.get("errors", []))


def assert_fixed(lab, target, before, outcome: Outcome, *needles: str) -> None:
    assert outcome.apply_rc == 0, outcome.stderr[-3000:]
    assert outcome.failed == []
    assert outcome.again_success == 0
    assert outcome.check[0] == 2, outcome.check
    text = reasons(outcome.check, target)
    for n in needles:
        assert n in text, (n, text)
    assert plain_sockets(lab, target) == []
    assert lab.ssh(target, "systemctl is-active docker").strip() == "active"
    assert inventory_of(lab, target) == before


def assert_refused(outcome: Outcome, target: str, *needles: str) -> None:
    assert outcome.apply_rc != 0
    assert outcome.failed == [target]
    assert outcome.again_success == 0
    lines = [line for line in outcome.stderr.splitlines() if f"[{target}]" in line and "dockguard" in line]
    assert lines, outcome.stderr[-3000:]
    for n in needles:
        assert any(n in line for line in lines), (n, lines)
    assert outcome.check[0] == 1 and outcome.check[1]["hosts"][target]["status"] == "unchecked", outcome.check


def test_stopped_daemon_is_guarded_from_the_disk(lab, pair):
    target, other, _ = pair
    # userns-remap off with a container and an image, then the daemon stopped (a host in maintenance).
    lab.reset_to_stock(target)
    assert lab.apply(limit=target, hosts={target: {"docker_userns_remap": None}}).rc == 0
    lab.start_container(target)
    before = inventory_of(lab, target)
    lab.ssh(target, "systemctl stop docker.socket docker.service")
    live = both_ways(lab, target)
    assert (live["active"], live["info_rc"], live["containers"]) == ("inactive", None, None)
    out = run_state(lab, target, other)
    assert_refused(out, target, "turning userns-remap on", "1 containers (1 running) and 1 images in /var/lib/docker",
                   "counted from the disk")  # fmt: skip
    lab.ssh(target, "systemctl start docker.service")
    assert inventory_of(lab, target) == before
    record("dockerd stopped, userns-remap off over a container and an image", out, "refused")
    assert lab.apply(limit=target, hosts={target: {"docker_userns_allow_hiding": True}}).rc == 0


def test_admin_override_with_a_plain_tcp_socket_is_closed(lab, pair):
    target, other, before = pair
    # A host hardened by an older dockguard, whose drop-in ("dockguard.conf") sorted before the admin's.
    lab.ssh(target, f"printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375 "
                    f"--containerd=/run/containerd/containerd.sock\\n' > {DROPIN_DIR}/zz-override.conf && "
                    f"mv {DROPIN_DIR}/zzz-dockguard.conf {DROPIN_DIR}/dockguard.conf && "
                    "systemctl daemon-reload && systemctl restart docker")  # fmt: skip
    assert plain_sockets(lab, target)
    lab.ssh(target, "docker rm -f web >/dev/null 2>&1; docker run -d --name web -p 8080:80 keep:me sleep 600")
    live = both_ways(lab, target)  # the published port (dockerd holds it) is no API listener
    assert [a.rsplit(":", 1)[1] for a in live["live_listeners"]] == ["2375"] and live["server_version"], live
    lab.ssh(target, "docker rm -f web")
    out = run_state(lab, target, other)
    assert_fixed(lab, target, before, out, "CIS 2.7", f"{DROPIN_DIR}/zz-override.conf line 3 opens tcp://0.0.0.0:2375")
    record("admin drop-in zz-override.conf opening tcp://0.0.0.0:2375", out, "fixed")


def test_docker_opts_with_a_plain_tcp_socket_is_closed(lab, pair):
    target, other, before = pair
    lab.ssh(target, "echo 'DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"' >> /etc/default/docker && systemctl restart docker")
    assert plain_sockets(lab, target)
    out = run_state(lab, target, other)
    assert_fixed(lab, target, before, out, "CIS 2.7", "DOCKER_OPTS in /etc/default/docker line")
    record('DOCKER_OPTS="-H tcp://0.0.0.0:2375" in /etc/default/docker', out, "fixed")


def test_override_setting_icc_true_is_overridden(lab, pair):
    target, other, before = pair
    lab.ssh(target, f"printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/dockerd -H fd:// --icc=true "
                    f"--containerd=/run/containerd/containerd.sock\\n' > {DROPIN_DIR}/override.conf")  # fmt: skip
    out = run_state(lab, target, other)
    assert_fixed(lab, target, before, out, "CIS 2.x", f"{DROPIN_DIR}/override.conf line 3 sets --icc=true")
    assert "--icc" not in lab.ssh(target, "cat /proc/$(pidof dockerd)/cmdline | tr '\\0' ' '")
    assert (
        lab.docker(
            target, "network inspect bridge --format '{{index .Options \"com.docker.network.bridge.enable_icc\"}}'"
        )
        == "false"
    )  # noqa: E501
    record("override drop-in setting --icc=true", out, "fixed")


def test_daemon_json_that_is_not_json(lab, pair):
    target, other, before = pair
    lab.ssh(target, "printf '{\"icc\": true,\\n' > /etc/docker/daemon.json")
    out = run_state(lab, target, other)
    assert_fixed(lab, target, before, out, "CIS 2.x", "/etc/docker/daemon.json is not valid JSON")
    record("daemon.json not valid JSON", out, "fixed")


def test_daemon_json_with_a_key_dockerd_rejects(lab, pair):
    target, other, before = pair
    lab.ssh(target, "sed -i 's/^{/{\"no-such-key\": 1,/' /etc/docker/daemon.json")
    assert "no-such-key" in lab.ssh(target, "cat /etc/docker/daemon.json")
    lab.ssh(target, "systemctl restart docker || true")  # dockerd refuses to start with it
    out = run_state(lab, target, other)
    assert_fixed(lab, target, before, out, "CIS 2.x", "keys dockguard does not set", "no-such-key")
    record("daemon.json with a key dockerd rejects (dockerd down)", out, "fixed")


def test_masked_daemon_stays_masked(lab, pair):
    target, other, before = pair
    lab.ssh(target, "sed -i 's/\"icc\": false/\"icc\": true/' /etc/docker/daemon.json; "
                    "systemctl stop docker.socket docker.service; systemctl mask docker.service")  # fmt: skip
    out = run_state(lab, target, other)
    assert out.apply_rc == 0, out.stderr[-3000:]
    assert out.again_success == 0
    assert "CIS 2.x: /etc/docker/daemon.json content" in out.changed
    assert lab.ssh(target, "systemctl is-enabled docker.service || true").strip() == "masked"
    # The masked unit is a link to /dev/null: its owner and mode are never "fixed" through the link.
    assert lab.ssh(target, "stat -c %a /dev/null").strip() == "666"
    assert lab.ssh(target, "systemctl is-active docker.service || true").strip() == "inactive"
    assert "dockerd is masked: left as the operator set it" in reasons(out.check, target)
    assert f"[{target}]" in out.stderr and "dockerd is masked" in out.stderr
    lab.ssh(target, "systemctl unmask docker.service && systemctl start docker.service")
    assert inventory_of(lab, target) == before
    record("dockerd masked", out, "reported (left masked; files hardened)")


def test_stopped_and_disabled_daemon_stays_stopped_unless_asked(lab, pair):
    target, other, before = pair
    lab.ssh(target, "systemctl disable --now docker.socket docker.service >/dev/null 2>&1")
    out = run_state(lab, target, other)
    assert out.apply_rc == 0 and out.again_success == 0, out.stderr[-3000:]
    assert lab.ssh(target, "systemctl is-active docker.service || true").strip() == "inactive"
    assert "dockerd is stopped and disabled" in reasons(out.check, target)
    started = lab.apply(limit=target, hosts={target: {"docker_start_stopped": True}})
    assert started.rc == 0, started.stderr[-3000:]
    assert lab.ssh(target, "systemctl is-active docker.service").strip() == "active"
    assert inventory_of(lab, target) == before
    record("dockerd stopped and disabled", out, "reported (left stopped; started with docker_start_stopped)")


def test_hung_daemon_is_refused_not_restarted(lab, pair):
    target, other, before = pair
    pid = lab.ssh(target, "systemctl show -p MainPID --value docker").strip()
    lab.ssh(target, f'sed -i \'s/"icc": false/"icc": true/\' /etc/docker/daemon.json; kill -STOP {pid}')
    try:
        live = both_ways(lab, target)  # each way waits its 10 s for the daemon
        assert (live["info_rc"], live["process_state"], live["server_version"]) == (124, "T", None)
        out = run_state(lab, target, other)
        assert_refused(out, target, f"dockerd (pid {pid}) is stopped", "does not restart a daemon it cannot ask")
        assert lab.ssh(target, "systemctl show -p MainPID --value docker").strip() == pid
    finally:
        lab.ssh(target, f"kill -CONT {pid}")
    assert inventory_of(lab, target) == before
    record("docker info hangs (dockerd SIGSTOPped)", out, "refused")


def test_read_only_etc_docker_is_refused(lab, pair):
    target, other, before = pair
    lab.ssh(target, "sed -i 's/\"icc\": false/\"icc\": true/' /etc/docker/daemon.json && "
                    "mount --bind /etc/docker /etc/docker && mount -o remount,bind,ro /etc/docker")  # fmt: skip
    try:
        out = run_state(lab, target, other)
    finally:
        lab.ssh(target, "umount /etc/docker")
    assert_refused(out, target, "/etc/docker is read-only")
    assert inventory_of(lab, target) == before
    record("read-only /etc/docker", out, "refused")


def test_host_lock_held_by_another_run(lab, pair):
    target, other, before = pair
    lab.ssh(target, "sed -i 's/\"icc\": false/\"icc\": true/' /etc/docker/daemon.json && "
                    "echo 'someone 1 since earlier by alice@laptop' > /run/dockguard.owner && "
                    "(setsid flock /run/dockguard.lock sleep 121 </dev/null >/dev/null 2>&1 &)")  # fmt: skip
    try:
        out = run_state(lab, target, other, hosts={target: {"dockguard_lock_wait": 3}})
    finally:
        lab.ssh(target, "pkill -f '^flock /run/dockguard.lock'; pkill -f '^sleep 121$'; true")
    assert out.apply_rc != 0 and out.failed == [target]
    assert "another dockguard run holds this host's lock" in out.stderr and "alice@laptop" in out.stderr
    assert "CIS 2.x" in reasons(out.check, target)  # the check itself takes no lock
    fixed = lab.apply(limit=target)
    assert fixed.rc == 0, fixed.stderr[-3000:]
    assert inventory_of(lab, target) == before
    record("host lock held by another run", out, "failed that host after dockguard_lock_wait")


def test_fact_output_that_is_not_what_it_should_be(lab, pair):
    target, other, before = pair
    # base64 that prints garbage: the state fact cannot be decoded.
    lab.ssh(target, "mv /usr/bin/base64 /usr/bin/base64.real && printf '#!/bin/sh\\necho \"not*base64\\\\n\"\\n' "
                    "> /usr/bin/base64 && chmod 755 /usr/bin/base64")  # fmt: skip
    try:
        out = run_state(lab, target, other)
    finally:
        lab.ssh(target, "mv /usr/bin/base64.real /usr/bin/base64")
    assert_refused(out, target, "could not read its state", "not base64")
    assert inventory_of(lab, target) == before
    record("fact output garbled (a broken base64 on the host)", out, "refused")


def test_broken_subuid_fails_that_host_alone(lab, pair):
    target, other, before = pair
    lab.ssh(target, "cp /etc/subuid /root/subuid.bak && echo 'this is: not a range' >> /etc/subuid")
    try:
        out = run_state(lab, target, other)
    finally:
        lab.ssh(target, "cp /root/subuid.bak /etc/subuid")
    assert out.apply_rc != 0 and out.failed == [target]
    assert any(f"[{target}]" in line and "/etc/subuid" in line for line in out.stderr.splitlines()), out.stderr[-3000:]
    assert inventory_of(lab, target) == before
    record("broken /etc/subuid", out, "refused")


def test_group_member_with_shell_syntax_is_removed_without_running_it(lab, pair):
    target, other, before = pair
    name = "x;touch${IFS}/tmp/pwned;"
    lab.ssh(
        target, f"rm -f /tmp/pwned; sed -i 's|^docker:\\([^:]*\\):\\([^:]*\\):.*|docker:\\1:\\2:{name}|' /etc/group"
    )
    assert name in lab.ssh(target, "getent group docker")
    out = run_state(lab, target, other, hosts={target: {"docker_group_enforce": True}})
    assert out.apply_rc == 0, out.stderr[-3000:]
    assert out.again_success == 0
    assert "CIS 1.1.2" in reasons(out.check, target)
    assert name not in lab.ssh(target, "getent group docker")
    assert lab.ssh(target, "ls /tmp/pwned 2>/dev/null; true").strip() == ""
    assert inventory_of(lab, target) == before
    record("docker group member named x;touch${IFS}/tmp/pwned; (enforce)", out, "fixed (removed, nothing run)")


def test_a_cut_short_known_good_copy_never_deletes_certificates(lab, pair):
    from dockguard.operations import dockerd

    target, other, before = pair
    tls = {"docker_tcp_listen": "0.0.0.0:2376"}
    assert lab.apply(limit=target, hosts={target: tls}).rc == 0
    files = lab.ssh(target, "sha256sum /etc/docker/tls/*.pem /etc/docker/daemon.json")
    assert files.count("/etc/docker/tls/") == 3
    # A known-good copy cut short (its last line lost): the rollback restores nothing and
    # deletes nothing (a run's own restore script, run as a failed restart would run it).
    lab.ssh(target, "sed -i '$d' /var/lib/dockguard/known-good/manifest")
    said = lab.ssh(target, dockerd._restore_script() + "; echo restored=$restored")
    assert said.strip().endswith("restored=no")
    assert lab.ssh(target, "sha256sum /etc/docker/tls/*.pem /etc/docker/daemon.json") == files
    # The next run sees the copy is not whole and keeps a new one before anything else.
    out = run_state(lab, target, other, hosts={target: tls})
    assert out.apply_rc == 0 and out.again_success == 0, out.stderr[-3000:]
    assert out.changed == ["dockerd: keep the current configuration to roll back to"]
    assert lab.ssh(target, "tail -n1 /var/lib/dockguard/known-good/manifest").strip() == "end"
    assert lab.ssh(target, "sha256sum /etc/docker/tls/*.pem /etc/docker/daemon.json") == files
    assert inventory_of(lab, target) == before
    assert lab.apply(limit=target).rc == 0  # TLS off again
    record("known-good manifest cut short", out, "rollback restores and deletes nothing; the next run keeps a new copy")
