"""lab/e2e_lanes.py: which lane runs which test, and the check that nothing was dropped."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("e2e_lanes", ROOT / "lab" / "e2e_lanes.py")
lanes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lanes)

HOSTS = {
    "dh1": {"kind": "container", "suite": "bookworm"},
    "dh2": {"kind": "container", "suite": "trixie"},
    "vm1": {"kind": "vm", "suite": "trixie"},
}


def test_lanes_by_kind_and_empty_lanes_left_out():
    assert lanes.plan_lanes(HOSTS) == {"containers": ["dh1", "dh2"], "vms": ["vm1"]}
    assert lanes.plan_lanes({"dh1": HOSTS["dh1"]}) == {"containers": ["dh1"]}
    selinux = {**HOSTS, "vm2": {"kind": "vm-selinux"}}
    assert lanes.plan_lanes(selinux)["vms"] == ["vm1", "vm2"]


def test_a_test_runs_where_its_hosts_are_and_an_unmarked_one_everywhere():
    plan = lanes.plan_lanes(HOSTS)
    where = {
        frozenset(wanted): {lane for lane in plan if lanes.runs_in(set(wanted), lane, plan, HOSTS)}
        for wanted in [(), ("container",), ("vm",), ("container", "vm"), ("vm-selinux",)]
    }
    assert where[frozenset()] == {"containers", "vms"}
    assert where[frozenset({"container"})] == {"containers"}
    assert where[frozenset({"vm"})] == {"vms"}
    # No lane has both kinds, and no lane has the SELinux VM: the first lane runs such a test
    # (where it fails or skips, saying why), never no lane.
    assert where[frozenset({"container", "vm"})] == {"containers"}
    assert where[frozenset({"vm-selinux"})] == {"containers"}


def plan(selected, deselected, outcomes=None):
    return {"selected": selected, "deselected": deselected,
            "outcomes": outcomes if outcomes is not None else dict.fromkeys(selected, "passed")}  # fmt: skip


def test_check_passes_when_every_test_ran_in_a_lane():
    plans = {"containers": plan(["a", "c"], ["b"]), "vms": plan(["b", "c"], ["a"])}
    assert lanes.check(plans) == []


def test_check_names_what_was_dropped_or_cut_short():
    assert lanes.check({"containers": plan(["a"], ["b"]), "vms": plan([], ["a", "b"])}) == ["b: ran in no lane"]
    cut = {"containers": plan(["a", "b"], [], {"a": "passed"}), "vms": plan([], ["a", "b"])}
    assert lanes.check(cut) == ["lane containers: b was selected but did not run"]
    gone = lanes.check({"containers": plan(["a"], ["b"]), "vms": None})
    assert gone == ["lane vms: wrote no plan (its pytest stopped before the end of its session)"]
    other = lanes.check({"containers": plan(["a"], ["b"]), "vms": plan(["b"], ["a", "x"])})
    assert "lane containers: collected another set of tests than the other lanes" in other


def test_the_e2e_suite_splits_into_lanes_with_nothing_dropped(tmp_path):
    """The real suite, collected in each lane of a lab of two container hosts and the VM host: each
    test is in a lane, the VM's tests in the VM's lane, and the tests without a mark in both."""
    (tmp_path / "hosts.json").write_text(json.dumps({"hosts": HOSTS}))
    plans = {}
    for lane in ("containers", "vms"):
        out = tmp_path / f"{lane}.json"
        env = {"PATH": "/usr/bin:/bin", "DOCKGUARD_LAB_STATE": str(tmp_path), lanes.LANE_ENV: lane,
               lanes.PLAN_ENV: str(out)}  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "--collect-only", "-q", "-p",
                            "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        plans[lane] = json.loads(out.read_text())
        plans[lane]["outcomes"] = dict.fromkeys(plans[lane]["selected"], "passed")
    assert lanes.check(plans) == []
    vms, containers = set(plans["vms"]["selected"]), set(plans["containers"]["selected"])
    assert "tests/e2e/test_72_os_baseline.py::test_the_firewall_survives_a_reboot" in vms - containers
    assert "tests/e2e/test_60_mac.py::test_profile_enforced_and_a_container_confined_by_it" in vms - containers
    assert "tests/e2e/test_20_dockerd_safety.py::test_running_containers_survive_a_restart" in containers - vms
    assert "tests/e2e/test_10_harden_loop.py::test_cis_suite_passes_on_every_host" in vms & containers
