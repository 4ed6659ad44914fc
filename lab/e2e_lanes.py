"""The end-to-end suite in lanes: one pytest per kind of lab host, side by side.

The VM host runs under software emulation: a test of it waits on the VM most of its time, and
the container hosts' tests wait on this machine's other core. So `make e2e` runs the suite once
per lane at the same time (``python lab/e2e_lanes.py [pytest args]``):

- lane ``containers``: the container hosts (dh1..dhN);
- lane ``vms``: the VM hosts (vm1, and vm2 with SELINUX=1).

Each lane's pytest sees only its lane's hosts: inventory/lab.py reads ``DOCKGUARD_LAB_HOSTS``, so
every pyinfra run, `dockguard drift` and CIS suite of that lane reaches those hosts and no other.
A lane after the first has a home of its own (the operator's CA in ~/.dockguard, the drift lock in
~/.local/state), so the lanes share no state on this machine either.

A test marked ``@pytest.mark.needs("vm")`` (or ``"container"``) runs in the lane that has those
hosts; a test without the mark runs in every lane, on that lane's hosts (the first apply, the CIS
suite, the drift check: each host is still covered once). A test whose kinds no lane has (the
SELinux VM, which `make test` does not boot) runs in the first lane, where it says why it skips.

Nothing is dropped unseen: each lane writes what it selected, left to another lane and ran
(``DOCKGUARD_E2E_PLAN``), and the run fails unless every test of the suite ran in a lane, every
lane ran all it selected, and every lane passed. With one lane (a lab of one kind), pytest runs
as before, once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
ENV = "DOCKGUARD_LAB_HOSTS"  # inventory/lab.py: only these hosts (comma-separated)
LANE_ENV = "DOCKGUARD_E2E_LANE"
PLAN_ENV = "DOCKGUARD_E2E_PLAN"
# lane -> the kinds of host it runs (in this order: the first lane runs what no lane has hosts for)
LANES = {"containers": ("container",), "vms": ("vm", "vm-selinux")}


def read_hosts(state: Path = STATE) -> dict:
    try:
        return json.loads((state / "hosts.json").read_text())["hosts"]
    except (OSError, ValueError, KeyError):
        return {}


def plan_lanes(hosts: dict) -> dict[str, list[str]]:
    """{lane: its hosts}, lanes without a host left out."""
    out = {name: sorted(n for n, h in hosts.items() if h["kind"] in kinds) for name, kinds in LANES.items()}
    return {name: names for name, names in out.items() if names}


def lane_hosts() -> list[str] | None:
    """The hosts of this run's lane (None: not a lane, the whole lab)."""
    value = os.environ.get(ENV)
    return None if value is None else [n for n in value.split(",") if n]


def needs(item) -> set[str]:
    return {kind for mark in item.iter_markers("needs") for kind in mark.args}


def runs_in(wanted: set[str], lane: str, lanes: dict[str, list[str]], hosts: dict) -> bool:
    """Whether a test that needs hosts of kinds ``wanted`` runs in ``lane``."""
    kinds = {hosts[n]["kind"] for n in lanes[lane]}
    if wanted <= kinds:
        return True
    anywhere = any(wanted <= {hosts[n]["kind"] for n in names} for names in lanes.values())
    return not anywhere and lane == next(iter(lanes))


def select(config, items, state: Path = STATE) -> None:
    """pytest_collection_modifyitems in a lane: leave to other lanes what they run."""
    lane = os.environ.get(LANE_ENV)
    if lane is None:
        return
    hosts = read_hosts(state)
    lanes = plan_lanes(hosts)
    if lane not in lanes:
        raise SystemExit(f"e2e lanes: {LANE_ENV}={lane}: the lab has no hosts for that lane ({sorted(lanes)})")
    keep, left = [], []
    for item in items:
        (keep if runs_in(needs(item), lane, lanes, hosts) else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
    items[:] = keep
    plan = os.environ.get(PLAN_ENV)
    if plan:
        config.pluginmanager.register(
            Recorder(Path(plan), [i.nodeid for i in keep], [i.nodeid for i in left]), "e2e-lane-recorder"
        )


class Recorder:
    """Writes the lane's plan and each selected test's outcome when the session ends."""

    def __init__(self, path: Path, selected: list[str], deselected: list[str]):
        self.path, self.selected, self.deselected = path, selected, deselected
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and self.outcomes.get(report.nodeid) != "failed":
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed:
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_sessionfinish(self, session):
        plan = {"selected": self.selected, "deselected": self.deselected, "outcomes": self.outcomes}
        self.path.write_text(json.dumps(plan, indent=1))


def check(plans: dict[str, dict | None]) -> list[str]:
    """What is wrong with the lanes' plans together (nothing: every test ran in a lane)."""
    errors = []
    for lane, plan in plans.items():
        if plan is None:
            errors.append(f"lane {lane}: wrote no plan (its pytest stopped before the end of its session)")
    done = {lane: plan for lane, plan in plans.items() if plan is not None}
    every = set().union(*(set(p["selected"]) | set(p["deselected"]) for p in done.values())) if done else set()
    for lane, plan in done.items():
        if set(plan["selected"]) | set(plan["deselected"]) != every:
            errors.append(f"lane {lane}: collected another set of tests than the other lanes")
        errors += [f"lane {lane}: {t} was selected but did not run" for t in plan["selected"]
                   if t not in plan["outcomes"]]  # fmt: skip
    if len(done) == len(plans):
        errors += [f"{t}: ran in no lane" for t in sorted(every) if not any(t in p["selected"] for p in done.values())]
    return errors


def _pump(name: str, stream, width: int, started: float, took: dict) -> None:
    for line in stream:
        sys.stdout.write(f"[{name:<{width}}] {line}")
        sys.stdout.flush()
    took[name] = time.monotonic() - started  # its output ends when its pytest does


def main(argv: list[str]) -> int:
    hosts = read_hosts()
    lanes = plan_lanes(hosts)
    pytest = [sys.executable, "-m", "pytest", "tests/e2e"]
    if len(lanes) < 2:
        return subprocess.run(pytest + argv, cwd=ROOT).returncode
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    seed = {}
    if os.environ.get("DOCKGUARD_E2E_SHUFFLE") == "1":  # one order seed for every lane: one number repeats the run
        seed = {
            "DOCKGUARD_E2E_SEED": os.environ.get("DOCKGUARD_E2E_SEED") or str(random.SystemRandom().randrange(1, 10**6))
        }
        print(
            f"e2e lanes: modules in a random order in each lane: DOCKGUARD_E2E_SEED={seed['DOCKGUARD_E2E_SEED']} "
            "repeats it",
            flush=True,
        )
    width = max(map(len, lanes))
    procs, threads, started, took = {}, [], time.monotonic(), {}
    try:
        for i, (lane, names) in enumerate(lanes.items()):
            plan = reports / f"e2e-{lane}.plan.json"
            plan.unlink(missing_ok=True)
            tmp = Path(tempfile.gettempdir()) / f"dockguard-e2e-{lane}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o700)
            env = {**os.environ, **seed, ENV: ",".join(names), LANE_ENV: lane, PLAN_ENV: str(plan)}
            if i:  # the operator's CA and drift lock of this lane, apart from the first lane's
                env["HOME"] = str(tmp / "home")
                env["XDG_STATE_HOME"] = str(tmp / "home" / ".local" / "state")
                (tmp / "home").mkdir(mode=0o700)
            cmd = pytest + ["-p", "no:cacheprovider", f"--basetemp={tmp / 'pytest'}", *argv]
            print(f"e2e lanes: {lane} ({', '.join(names)}): {' '.join(cmd[2:])}", flush=True)
            procs[lane] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, bufsize=1)  # fmt: skip
            t = threading.Thread(target=_pump, args=(lane, procs[lane].stdout, width, started, took), daemon=True)
            t.start()
            threads.append(t)
        for proc in procs.values():
            proc.wait()
        for t in threads:
            t.join(timeout=10)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
    plans = {}
    for lane in lanes:
        path = reports / f"e2e-{lane}.plan.json"
        plans[lane] = json.loads(path.read_text()) if path.exists() else None
    errors = check(plans)
    print()
    for lane, proc in procs.items():
        plan = plans[lane] or {"selected": []}
        print(f"e2e lanes: {lane} ({', '.join(lanes[lane])}): {len(plan['selected'])} tests, "
              f"exit {proc.returncode}, done after {took.get(lane, 0):.0f} s")  # fmt: skip
    for e in errors:
        print(f"e2e lanes: {e}")
    if not errors:
        print(f"e2e lanes: every test of the suite ran in a lane ({time.monotonic() - started:.0f} s in all)")
    failed = any(p.returncode != 0 for p in procs.values())
    return 1 if errors or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
