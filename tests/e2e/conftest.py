"""End-to-end tests: pyinfra over SSH against the running lab (make lab-up).

`make test` boots the lab first and sets DOCKGUARD_REQUIRE_LAB=1, so a missing
lab is a failure there; run by hand without a lab, these tests skip and say why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
LABCTL = ROOT / "lab" / "labctl.py"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lanes = _load("e2e_lanes", ROOT / "lab" / "e2e_lanes.py")


@dataclass
class Run:
    rc: int
    out: dict | None
    stderr: str

    @property
    def totals(self) -> dict:
        assert self.out and self.out.get("results"), f"no results (rc={self.rc}):\n{self.stderr[-3000:]}"
        return self.out["results"]["totals"]

    def changed_hosts(self) -> set[str]:
        return {h for op in self.out["results"]["operations"] for h in op["success"]}

    def changed_ops(self, host: str) -> list[str]:
        return [op["name"] for op in self.out["results"]["operations"] if host in op["success"]]

    def changes(self) -> dict[str, list[str]]:
        """{host: the operations that changed it}: what an assertion of "nothing changed" shows."""
        if not (self.out and self.out.get("results")):
            return {"(no results)": [self.stderr[-2000:]]}
        return {h: self.changed_ops(h) for h in sorted(self.changed_hosts())}


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    home: Path


class OperatorMachine:
    """This machine with systemd as PID 1 (`labctl.py operator-up`): its own root file system booted
    as a throw-away systemd-nspawn container in this machine's network, so it reaches the lab's
    hosts at the addresses this machine does and sees the checkout and its virtualenv at the same
    paths. Users, homes and units made in it are gone when it stops."""

    def __init__(self, state: dict):
        self.leader = int(state["leader"])
        self.root = Path(state["root"])

    def run(self, *cmd: str, user: str | None = None, cwd: str | Path | None = None, check: bool = True,
            timeout: float = 1800) -> subprocess.CompletedProcess:  # fmt: skip
        """``cmd`` inside (as root, or as ``user`` with runuser; in ``cwd``, a path inside)."""
        argv = ["nsenter", "-t", str(self.leader), "-a", "--"]
        argv += ["runuser", "-u", user, "--"] if user else []
        argv += ["env", "-C", str(cwd)] if cwd else []
        r = subprocess.run(argv + [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            where = f" as {user}" if user else ""
            raise AssertionError(f"{cmd}{where} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def path(self, path: str | Path) -> Path:
        """A file inside, as this machine reaches it (through the overlay): not in /tmp, /run,
        /proc, /sys or /dev, which are the container's own there (use ``run``)."""
        path = Path(path)
        if not path.is_absolute() or path.parts[1:2] and path.parts[1] in ("tmp", "run", "proc", "sys", "dev"):
            raise ValueError(f"{path} is not reachable from outside the operator machine")
        return self.root / path.relative_to("/")

    def account(self, name: str) -> Account:
        entry = self.run("getent", "passwd", name).stdout.strip().split(":")
        return Account(entry[0], int(entry[2]), int(entry[3]), Path(entry[5]))


@contextlib.contextmanager
def operator_machine():
    """Boot the operator machine (this machine with systemd as PID 1) for the block; stop it and
    leave nothing behind after. Needs root, systemd-nspawn and nsenter."""
    up = subprocess.run([sys.executable, str(LABCTL), "operator-up", "--json"], capture_output=True, text=True,
                        timeout=180)  # fmt: skip
    try:
        if up.returncode != 0:
            raise AssertionError(f"labctl.py operator-up exited {up.returncode}:\n{up.stderr[-3000:]}")
        yield OperatorMachine(json.loads(up.stdout))
    finally:
        subprocess.run([sys.executable, str(LABCTL), "operator-down"], capture_output=True, timeout=120)
        left = _load("labctl", LABCTL).operator_leftovers()
        assert not left, "operator-down left behind: " + ", ".join(left)


class Lab:
    def __init__(self, hosts: dict, all_hosts: dict | None = None):
        self.hosts = hosts
        # The whole lab, when this run is one lane of it (lab/e2e_lanes.py): what `make lab-up` booted.
        self.all_hosts = all_hosts if all_hosts is not None else hosts

    @property
    def names(self) -> list[str]:
        return sorted(self.hosts)

    def of_kind(self, kind: str) -> list[str]:
        return sorted(n for n, h in self.hosts.items() if h["kind"] == kind)

    def of_suite(self, suite: str, kind: str | None = None) -> list[str]:
        """Hosts of one Debian release (bookworm, trixie), of one kind if given."""
        return sorted(n for n, h in self.hosts.items() if h.get("suite", "bookworm") == suite
                      and kind in (None, h["kind"]))  # fmt: skip

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 180) -> str:
        r = subprocess.run(
            ["ssh", "-F", str(STATE / "ssh" / "config"), name, command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"{name}: `{command}` exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def operator(self):
        """The operator's machine with systemd as PID 1, for the block (``operator_machine``)."""
        return operator_machine()

    def reset_to_stock(self, name: str) -> None:
        """Docker as the distribution installs it, empty: no dockguard file, no dockguard state,
        no container or image in its (not remapped) storage root."""
        self.ssh(
            name,
            "systemctl stop docker.service docker.socket; rm -rf /etc/docker/daemon.json /etc/docker/tls "
            "/etc/docker/seccomp /etc/systemd/system/docker.service.d/dockguard.conf "
            "/etc/systemd/system/docker.service.d/zzz-dockguard.conf /var/lib/dockguard; "
            "systemctl daemon-reload; systemctl reset-failed docker.service; systemctl start docker.service && "
            "docker ps -aq | xargs -r docker rm -f >/dev/null && docker image prune -af >/dev/null",
        )

    def docker(self, name: str, args: str) -> str:
        return self.ssh(name, f"docker {args}").strip()

    def start_container(self, name: str) -> str:
        """A running container from the lab's busybox image; returns its id."""
        self.ssh(
            name, "docker image inspect keep:me >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar keep:me"
        )
        return self.docker(name, "run -d keep:me sleep 100000")

    @contextlib.contextmanager
    def inventory(self, hosts: dict[str, dict] | None = None):
        """inventory/lab.py, or (with ``hosts``) an inventory that is inventory/lab.py plus
        some host data ({"dh1": {"docker_icc": True}}); yields its path."""
        if not hosts:
            yield "inventory/lab.py"
            return
        path = ROOT / f"inventory/e2e_{os.getpid()}.py"
        path.write_text(
            "import json\n"
            "exec(open('inventory/lab.py').read())\n"
            f"_extra = json.loads({json.dumps(json.dumps(hosts))})\n"
            "lab_containers = [(n, {**d, **_extra.get(n, {})}) for n, d in lab_containers]\n"
            "lab_vms = [(n, {**d, **_extra.get(n, {})}) for n, d in lab_vms]\n"
            "lab = [h[0] for h in lab_containers + lab_vms]  # the group of group_data/lab.py\n"
        )
        try:
            yield str(path.relative_to(ROOT))
        finally:
            path.unlink()

    def cis(self, junit: Path, hosts: dict[str, dict] | None = None, keyword: str | None = None):
        """Run the CIS testinfra suite against the lab (with ``hosts`` data, as ``apply``);
        returns (exit code, output, {test id: "passed"/"failed"/"skipped"}). Without a keyword,
        one suite per host, all at once: the container hosts' checks run while the VM's do."""
        with self.inventory(hosts) as inventory:
            base = [sys.executable, "-m", "pytest", "tests/cis", "--inventory", inventory, "-q",
                    "-p", "no:cacheprovider"]  # fmt: skip
            if keyword:
                runs = {junit: base + [f"--junitxml={junit}", "-k", keyword]}
            else:
                runs = {junit.with_name(f"{junit.stem}.{name}.xml"): base + ["--limit", name, f"--junitxml="
                        f"{junit.with_name(f'{junit.stem}.{name}.xml')}"] for name in self.names}  # fmt: skip
            procs = {xml: subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for xml, cmd in runs.items()}  # fmt: skip
            outs = {xml: p.communicate(timeout=1800)[0] for xml, p in procs.items()}
        rc = max(p.returncode for p in procs.values())
        results = {}
        for xml in runs:
            for case in ET.parse(xml).getroot().iter("testcase"):
                failed = case.find("failure") is not None or case.find("error") is not None
                results[case.get("name")] = (
                    "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
                )
        return rc, "\n".join(outs.values()), results

    def apply(self, *args: str, limit: str | list[str] | None = None, hosts: dict[str, dict] | None = None) -> Run:
        """pyinfra -y --json inventory/lab.py deploy.py: the result, parsed.

        ``hosts`` adds host data for some hosts ({"dh1": {"docker_icc": True}}), through an
        inventory that is inventory/lab.py plus those values."""
        cmd = [PYINFRA, "-y", "--json", *args]
        for name in [limit] if isinstance(limit, str) else limit or []:
            cmd += ["--limit", name]
        with self.inventory(hosts) as inventory:
            cmd += [inventory, "deploy.py"]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
        try:
            out = json.loads(r.stdout) if r.stdout.strip() else None
        except json.JSONDecodeError:
            out = None
        return Run(r.returncode, out, r.stderr)


@pytest.fixture(scope="session")
def lab() -> Lab:
    hosts = lanes.read_hosts(STATE)
    if not hosts:
        reason = "the lab is not running: start it with `make lab-up N=2 VM=1`"
        if os.environ.get("DOCKGUARD_REQUIRE_LAB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    lane = lanes.lane_hosts()
    if lane is None:
        return Lab(hosts)
    if not set(lane) <= set(hosts):
        pytest.fail(f"{lanes.ENV}={','.join(lane)} names hosts the lab does not run: {sorted(set(lane) - set(hosts))}")
    return Lab({n: h for n, h in hosts.items() if n in lane}, all_hosts=hosts)


@pytest.fixture(scope="module")
def hardened_lab(lab, request) -> Lab:
    """Every lab host as dockguard leaves it, for a module that starts from there (the modules
    run in any order, and a fresh lab is stock). A module whose tests use only one kind of host
    says so (``HARDEN_KIND = "container"``): the others are not waited for (the VM's apply
    under emulation is the slow one)."""
    kind = getattr(request.module, "HARDEN_KIND", None)
    r = lab.apply(limit=lab.of_kind(kind)) if kind else lab.apply()
    assert r.rc == 0, r.stderr[-3000:]
    return lab


def pytest_collection_modifyitems(session, config, items):
    lanes.select(config, items, STATE)
    shuffle(config, items)


def shuffle(config, items):
    """With DOCKGUARD_E2E_SHUFFLE=1 (make e2e), the modules run in a random order (a module's
    tests keep theirs: each module is one scenario that starts from the state it sets up).
    The seed is printed in the header; DOCKGUARD_E2E_SEED=N repeats an order."""
    if os.environ.get("DOCKGUARD_E2E_SHUFFLE") != "1":
        return
    import random

    seed = os.environ.get("DOCKGUARD_E2E_SEED") or str(random.SystemRandom().randrange(1, 10**6))
    config._dockguard_e2e_seed = seed
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    order = sorted(modules)
    random.Random(int(seed)).shuffle(order)
    items[:] = [item for module in order for item in modules[module]]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"e2e modules in a random order: DOCKGUARD_E2E_SEED={seed} repeats it")
