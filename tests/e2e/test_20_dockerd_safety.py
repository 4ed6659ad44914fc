"""dockerd changes on live hosts never lose anything: userns-remap refused where it
would hide containers, running containers survive restarts (live-restore), a
rejected option is rolled back with dockerd up, one bad host fails alone, and an
interrupted run is healed by the next one."""

from __future__ import annotations

import json

import pytest

pytestmark = [
    pytest.mark.usefixtures("hardened_lab"),  # the tests start from hardened hosts
    pytest.mark.needs("container"),
]  # the container hosts' lane (lab/e2e_lanes.py)
HARDEN_KIND = "container"  # its tests use the container hosts only (conftest.hardened_lab)

DAEMON_JSON = "/etc/docker/daemon.json"
RESTART = "dockerd: restart when the config changed or the daemon does not match it"


def running(lab, name, cid) -> bool:
    return lab.docker(name, f"inspect --format '{{{{.State.Running}}}}' {cid}") == "true"


def started_at(lab, name, cid) -> str:
    return lab.docker(name, f"inspect --format '{{{{.State.StartedAt}}}}' {cid}")


def test_userns_remap_is_refused_where_it_would_hide_containers(lab):
    host = lab.of_kind("container")[0]
    lab.reset_to_stock(host)
    cid = lab.start_container(host)
    before = lab.ssh(host, f"ls -la /etc/docker; ls {DAEMON_JSON} 2>&1 || true")

    r = lab.apply(limit=host)
    assert r.rc != 0
    assert (
        f"[{host}] dockguard: this host is refused, nothing was changed on it: "
        "docker_userns_remap: turning userns-remap on moves dockerd to another storage root: "
        "1 containers (1 running) and 1 images in /var/lib/docker would disappear from view" in r.stderr
    )
    assert lab.ssh(host, f"ls -la /etc/docker; ls {DAEMON_JSON} 2>&1 || true") == before
    assert running(lab, host, cid)

    # The operator's other way out: keep userns-remap off for this host. Everything else applies
    # and the container, started before, survives the restart.
    ok = lab.apply(limit=host, hosts={host: {"docker_userns_remap": None}})
    assert ok.rc == 0, ok.stderr[-3000:]
    assert RESTART in ok.changed_ops(host)
    assert running(lab, host, cid)
    lab.docker(host, f"rm -f {cid}")
    lab.docker(host, "rmi keep:me")
    # Nothing left to hide: the default (userns-remap on) applies.
    on = lab.apply(limit=host)
    assert on.rc == 0, on.stderr[-3000:]
    assert "name=userns" in lab.docker(host, "info --format '{{json .SecurityOptions}}'")


def test_running_containers_survive_a_restart(lab):
    host = lab.of_kind("container")[0]
    cid = lab.start_container(host)
    since = started_at(lab, host, cid)
    r = lab.apply(limit=host, hosts={host: {"docker_log_max_file": 4}})
    assert r.rc == 0, r.stderr[-3000:]
    assert RESTART in r.changed_ops(host)
    assert json.loads(lab.ssh(host, f"cat {DAEMON_JSON}"))["log-opts"]["max-file"] == "4"
    assert running(lab, host, cid) and started_at(lab, host, cid) == since


def test_a_rejected_option_is_rolled_back_and_only_that_host_fails(lab):
    # The bad host runs an engine without `dockerd --validate` (Debian 12's 20.10): the new file
    # reaches a restart, which fails and is rolled back (test_15 covers a current engine's validation).
    bad = (lab.of_suite("bookworm", "container") or lab.of_kind("container"))[0]
    good = next(n for n in lab.of_kind("container") if n != bad)
    start = lab.apply(limit=[good, bad])  # both at the defaults: the last step goes back there
    assert start.rc == 0, start.stderr[-3000:]
    cid = lab.start_container(bad)
    before = lab.ssh(bad, f"cat {DAEMON_JSON}")
    r = lab.apply(
        limit=[good, bad],
        hosts={good: {"docker_log_max_file": 5}, bad: {"docker_daemon_extra": {"no-such-option": True}}},
    )
    assert r.rc != 0
    assert r.out["results"]["failed_hosts"] == [bad]
    # The other host went on and applied its change.
    assert RESTART in r.changed_ops(good)
    assert json.loads(lab.ssh(good, f"cat {DAEMON_JSON}"))["log-opts"]["max-file"] == "5"
    # The bad host: the rejected option named, the old file back, dockerd up, the container alive.
    assert f"[{bad}]" in r.stderr
    assert "no-such-option" in r.stderr
    assert "the previous configuration was restored and dockerd is active" in r.stderr
    assert "dockerd --validate" not in r.stderr  # 20.10 has no --validate: the restart itself failed
    assert lab.ssh(bad, f"cat {DAEMON_JSON}") == before
    assert lab.ssh(bad, "systemctl is-active docker").strip() == "active"
    assert running(lab, bad, cid)
    # Back to the defaults: the bad host has nothing left to change.
    back = lab.apply(limit=[good, bad])
    assert back.rc == 0, back.stderr[-3000:]
    assert back.changed_hosts() == {good}
    assert running(lab, bad, cid)


def test_a_run_interrupted_before_its_restart_is_healed_by_the_next(lab):
    host = lab.of_kind("container")[0]
    # What a run killed between writing daemon.json and restarting dockerd leaves:
    # the new file in place, dockerd still running the old one.
    lab.ssh(host, f'sed -i \'s/"max-file": "[0-9]*"/"max-file": "7"/\' {DAEMON_JSON}')
    r = lab.apply(limit=host, hosts={host: {"docker_log_max_file": 7}})
    assert r.rc == 0, r.stderr[-3000:]
    assert r.changed_ops(host) == [RESTART]
    again = lab.apply(limit=host, hosts={host: {"docker_log_max_file": 7}})
    assert again.totals["success"] == 0
    assert lab.apply(limit=host).rc == 0  # back to the defaults


def test_hardened_seccomp_profile_confines_containers(lab):
    host = lab.of_kind("container")[-1]
    lab.start_container(host)  # makes sure the image exists
    # Docker's default profile lets a container chroot (CAP_SYS_CHROOT); dockguard's does not.
    assert lab.docker(host, "run --rm keep:me chroot / true; echo rc=$?").endswith("rc=0")
    r = lab.apply(limit=host, hosts={host: {"docker_seccomp_profile": "dockguard"}})
    assert r.rc == 0, r.stderr[-3000:]
    assert lab.docker(host, "run --rm keep:me echo confined") == "confined"
    assert "rc=0" not in lab.docker(host, "run --rm keep:me chroot / true 2>&1; echo rc=$?")
    assert lab.docker(host, "run --rm keep:me grep Seccomp: /proc/self/status").split() == ["Seccomp:", "2"]
    again = lab.apply(limit=host, hosts={host: {"docker_seccomp_profile": "dockguard"}})
    assert again.totals["success"] == 0
    assert lab.apply(limit=host).rc == 0
    lab.ssh(host, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; true")


def test_icc_turned_off_under_running_containers_is_said_not_restarted_forever(lab):
    """With live-restore, dockerd restores the default bridge as it was while containers run on it:
    turning icc off restarts dockerd once (for daemon.json), then says why the bridge keeps icc
    and restarts no more; once the containers are gone, one restart applies it."""
    host = lab.of_kind("container")[0]
    lab.ssh(host, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; true")
    opted_out = lab.apply(limit=host, hosts={host: {"docker_icc": True}})
    assert opted_out.rc == 0, opted_out.stderr[-3000:]
    cid = lab.start_container(host)
    first = lab.apply(limit=host)
    assert first.rc == 0, first.stderr[-3000:]
    assert RESTART in first.changed_ops(host)
    assert f"[{host}] CIS 2.2: the default bridge keeps enable_icc=true while " in first.stderr  # true after it too
    again = lab.apply(limit=host)
    assert again.rc == 0 and again.totals["success"] == 0, again.out["results"]["operations"]
    assert f"[{host}] CIS 2.2: the default bridge keeps enable_icc=true while " in again.stderr
    assert running(lab, host, cid)
    lab.ssh(host, "docker rm -f $(docker ps -aq) >/dev/null")
    applied = lab.apply(limit=host)
    assert applied.changed_ops(host) == [RESTART]
    assert json.loads(lab.ssh(host, "docker network inspect bridge --format '{{json .Options}}'"))[
        "com.docker.network.bridge.enable_icc"] == "false"  # fmt: skip
    assert lab.apply(limit=host).totals["success"] == 0
