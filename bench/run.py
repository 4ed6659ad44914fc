#!/usr/bin/env python3
"""Benchmark: dockguard against an equivalent Ansible playbook on the running lab (issue 7).

    make bench                                                   # 1, 3 and 10 hosts, 5 repetitions
    .venv/bin/python bench/run.py --sizes 1,3,10 --repeat 5 --out bench/results.json
    .venv/bin/python bench/run.py --hosts dh3 --sizes 1 --repeat 1 --out /tmp/bench.json

For each size N (the first N container hosts of the running lab, or of --hosts) and each tool,
every repetition resets the hosts to stock Docker (not timed), then times three runs:

    first_apply   dockguard: pyinfra -y INVENTORY deploy.py     ansible: ansible-playbook
    noop_apply    the same again, right after                   the same again
    drift_check   dockguard drift INVENTORY --json            ansible-playbook --check --diff

and records the wall time, the remote commands and file transfers per host (counted by each
host's sshd, see bench/README.md) and the peak memory of the tool. It writes a JSON file and
prints a table and the issue's targets as PASS/FAIL lines. It never starts or stops the lab:
it uses the container hosts in /var/lib/dockguard-lab/hosts.json and refuses when there are
fewer than the largest size. Stdlib only (plus ansible-core, from the `bench` extra).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
BIN = Path(sys.executable).parent
PLAYBOOK = ROOT / "bench" / "ansible" / "playbook.yml"
ANSIBLE_CFG = ROOT / "bench" / "ansible" / "ansible.cfg"
TOOLS = ("dockguard", "ansible")
SCENARIOS = ("first_apply", "noop_apply", "drift_check")
# Run again without counting (sshd at its usual log level) for their time, CPU and memory.
UNCOUNTED = ("noop_apply", "drift_check")
WHAT = {
    ("dockguard", "first_apply"): "pyinfra -y INVENTORY deploy.py (from stock Docker)",
    ("dockguard", "noop_apply"): "pyinfra -y INVENTORY deploy.py (right after the first apply)",
    ("dockguard", "drift_check"): "dockguard drift INVENTORY --json (the operator's drift check: pyinfra --dry)",
    ("ansible", "first_apply"): "ansible-playbook -i INVENTORY playbook.yml (from stock Docker)",
    ("ansible", "noop_apply"): "ansible-playbook -i INVENTORY playbook.yml (right after the first apply)",
    ("ansible", "drift_check"): "ansible-playbook -i INVENTORY playbook.yml --check --diff",
}

# tests/e2e/conftest.py Lab.reset_to_stock (Docker as the distribution installs it, empty), plus
# the other things either tool creates, so that a first apply writes every file: the docker.socket
# drop-in, the audit rules file, the AppArmor profile file, and the dockremap user with its
# subordinate ranges.
RESET_TO_STOCK = (
    "systemctl stop docker.service docker.socket; rm -rf /etc/docker/daemon.json /etc/docker/tls "
    "/etc/docker/seccomp /etc/systemd/system/docker.service.d/dockguard.conf /var/lib/dockguard; "
    # bench additions
    "rm -f /etc/systemd/system/docker.socket.d/dockguard.conf /etc/audit/rules.d/dockguard-docker.rules "
    "/etc/apparmor.d/dockguard-default; "
    "userdel dockremap >/dev/null 2>&1; groupdel dockremap >/dev/null 2>&1; "
    "sed -i '/^dockremap:/d' /etc/subuid /etc/subgid; "
    # back to the e2e command
    "systemctl daemon-reload; systemctl reset-failed docker.service; systemctl start docker.service && "
    "docker ps -aq | xargs -r docker rm -f >/dev/null && docker image prune -af >/dev/null"
)

# Server-side counting: sshd logs every channel request at LogLevel DEBUG1, and sftp-server
# logs every file it opens with -l INFO. Both are undone at the end.
SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-dockguard-bench.conf"
SFTP_MARK = "# dockguard-bench"
COUNT_ON = (
    f"printf 'LogLevel DEBUG1\\n' > {SSHD_DROPIN} && "
    "sed -i 's|^\\(Subsystem[[:space:]]\\+sftp[[:space:]]\\+/usr/lib/openssh/sftp-server\\)[[:space:]]*$|"
    f"\\1 -l INFO {SFTP_MARK}|' /etc/ssh/sshd_config && "
    f"grep -q '{SFTP_MARK}' /etc/ssh/sshd_config && sshd -t && systemctl reload ssh.service"
)
COUNT_OFF = (
    f"rm -f {SSHD_DROPIN}; sed -i 's| -l INFO {SFTP_MARK}$||' /etc/ssh/sshd_config; "
    "sshd -t && systemctl reload ssh.service"
)
# The hosts' own daily jobs (Debian's timers) would land in some runs and not in others:
# lynis.timer fires on every lab host within half an hour after midnight, and 100 Lynis audits
# at once made a no-op check of 100 hosts take 48 s instead of 11. Each active one is stopped
# for the bench, with its job if it runs, and started again at the end.
TIMERS = ("lynis.timer", "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
          "fstrim.timer", "logrotate.timer", "dpkg-db-backup.timer")  # fmt: skip
TIMERS_OFF = (
    f"for t in {' '.join(TIMERS)}; do if systemctl is-active -q $t; then "
    'systemctl stop "$t" "${t%.timer}.service" && echo "$t"; fi; done; true'
)


def stopped_timers(output: str) -> list[str]:
    """The timers TIMERS_OFF stopped, from its output (anything else it printed is left out)."""
    return [t for t in output.split() if t in TIMERS]


def timers_on(timers: list[str]) -> str:
    return f"systemctl start {' '.join(shlex.quote(t) for t in timers)}" if timers else "true"


JOURNAL_LINES = re.compile(  # POSIX classes only: the same pattern goes to grep -E on the host
    r"session_input_channel_req: session [0-9]+ req (exec|subsystem)$|Accepted publickey|"
    r"sftp-server\[[0-9]+\]: open |Suppressed [0-9]+ messages"
)


# --------------------------------------------------------------------------- the lab


def natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def lab_hosts() -> dict[str, dict]:
    try:
        return json.loads((STATE / "hosts.json").read_text())["hosts"]
    except (OSError, ValueError, KeyError):
        return {}


def lab_timings() -> dict | None:
    """How long `make lab-up` took to bring the running lab up (labctl's own figure)."""
    try:
        return json.loads((STATE / "hosts.json").read_text()).get("timings")
    except (OSError, ValueError):
        return None


def ssh(host: str, command: str, check: bool = True, timeout: float = 300) -> str:
    """A command on a lab host, outside any timed run (its own connection, no multiplexing)."""
    r = subprocess.run(
        ["ssh", "-F", str(STATE / "ssh" / "config"), "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-o", "BatchMode=yes", host, command],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and r.returncode != 0:
        raise RuntimeError(f"{host}: `{command[:120]}` exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def on_hosts(hosts: list[str], command: str, check: bool = True) -> dict[str, str]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = {h: pool.submit(ssh, h, command, check) for h in hosts}
        return {h: f.result() for h, f in futures.items()}


def sshd_reconfigure(hosts: list[str], command: str, check: bool = True) -> None:
    """Change sshd's configuration and wait until it accepts connections again (a reload
    re-executes sshd, which refuses connections for a moment)."""
    on_hosts(hosts, command, check)
    for host in hosts:
        deadline = time.time() + 20
        while True:
            try:
                ssh(host, "true", timeout=20)
                break
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.time() > deadline:
                    if check:
                        raise
                    break
                time.sleep(0.2)


def cgroup_memory_mb(info: dict) -> float | None:
    """A lab host's resident memory (its cgroup's rss and shared memory; not its page cache, which
    the kernel takes back when it needs it), read on this machine."""
    for path in info.get("cgroups", []):
        f = Path(path) / "memory.stat"
        if f.exists():
            with contextlib.suppress(OSError, ValueError, KeyError):
                stat = dict(line.split() for line in f.read_text().splitlines())
                return (int(stat["total_rss"]) + int(stat["total_shmem"])) / 2**20
    return None


def meminfo_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            out[key] = int(value.split()[0]) / 1024
    return out


# --------------------------------------------------------------------------- inventories


# The OS baseline's areas (issue 14): not in the Ansible playbook, which does Docker's own work.
BASELINE_AREAS = ["sshd", "kernel", "os_packages", "accounts", "firewall"]


def dockguard_inventory(names: list[str], tag: str, areas: str = "docker") -> Path:
    """inventory/lab.py restricted to ``names``, in inventory/ so that group_data/all.py and
    group_data/lab.py apply (the hosts are in group ``lab``, as with inventory/lab.py).
    ``areas``: "docker" leaves the OS baseline's areas off (the playbook's work); "all" is
    dockguard's default deploy, without AIDE's first database (a background job of minutes of
    CPU per host, once, that would swamp a hundred hosts on two cores)."""
    extra = {"dockguard_disabled_areas": BASELINE_AREAS} if areas == "docker" else {"os_packages_aide": False}
    path = ROOT / "inventory" / f"bench_{os.getpid()}_{tag}.py"
    path.write_text(
        '"""Generated by bench/run.py (removed at the end): inventory/lab.py, these hosts only."""\n'
        f"exec(open({str(ROOT / 'inventory' / 'lab.py')!r}).read())\n"
        f"_names = {names!r}\n"
        f"_extra = {extra!r}\n"
        "lab_containers = [(n, {**d, **_extra}) for n, d in lab_containers if n in _names]\n"
        "lab_vms = []\n"
        "lab = [h[0] for h in lab_containers]  # the group of group_data/lab.py\n"
    )
    return path


def symbolic(max_mode: str, exact: bool) -> str:
    """dockguard's "MAX_MODE or stricter" as a symbolic mode that removes every other bit
    (a stricter mode is left alone); an exact mode as itself."""
    if exact:
        return "0" + max_mode
    allowed = [int(c) for c in max_mode]
    parts = []
    for who, bits, special in zip("ugo", allowed, ("s", "s", "t"), strict=True):
        remove = "".join(c for c, b in (("r", 4), ("w", 2), ("x", 1)) if not bits & b) + special
        parts.append(f"{who}-{remove}")
    return ",".join(parts)


def ansible_inventory(dg_inventory: Path, work: Path, tag: str) -> Path:
    """The same hosts, addresses, keys and dockguard settings, for ansible-playbook. Made in a
    child process: importing pyinfra's CLI monkey-patches this process with gevent, which would
    turn the memory sampler's thread into a greenlet that os.wait4 blocks."""
    path = work / f"inventory.{tag}.json"
    subprocess.run([sys.executable, __file__, "--make-ansible-inventory", str(dg_inventory), str(path)],
                   cwd=ROOT, check=True)  # fmt: skip
    return path


def make_ansible_inventory(dg_inventory: Path, path: Path) -> None:
    check_settings_supported(dg_inventory)
    work = path.parent
    from dockguard.operations import audit, content, docker_files, dockerd, hostpaths

    from dockguard import fleet, settings

    try:  # CIS 5.1 (AppArmor), where this checkout of dockguard has it
        from dockguard.operations import mac
    except ImportError:
        mac = None
    inventory = fleet.load(dg_inventory)
    hosts = {}
    for h in inventory:
        d = h.data
        cfg = settings.resolve(d.dict())
        daemon_json = work / f"daemon.{h.name}.json"
        # Exactly what dockguard writes (operations/dockerd.py configure()).
        daemon_json.write_text(content.render("etc/docker/daemon.json.j2", daemon_json=dockerd.render_daemon_json(cfg)))
        hosts[h.name] = {
            "ansible_host": d.get("ssh_hostname") or h.name,
            "ansible_port": d.get("ssh_port") or 22,
            "ansible_user": d.get("ssh_user") or "root",
            "ansible_ssh_private_key_file": d.get("ssh_key"),
            "dg": cfg,
            "dg_daemon_json": str(daemon_json),
        }
    if mac is not None:
        profile = work / "apparmor.dockguard-default"
        profile.write_text(content.render("etc/apparmor.d/dockguard-default.j2", name=mac.PROFILE))
        for h in hosts.values():
            h["dg_apparmor"] = {"src": str(profile), "dest": mac.PROFILE_FILE, "profile": mac.PROFILE}
    unit_rules = [
        {"cis": cis, "unit": unit, "owner": "root", "group": "root", "mode": symbolic("644", False)}
        for unit, cis in (("docker.service", "3.1/3.2"), ("docker.socket", "3.3/3.4"))
    ]
    group_vars = {
        "dg_templates": str(ROOT / "templates"),
        "dg_binaries": list(hostpaths.BINARIES),
        "dg_units": list(hostpaths.UNITS),
        "dg_paths": list(hostpaths.PATHS),
        "dg_audited": list(audit.AUDITED),
        "dg_path_rules": [
            {"cis": r.cis, "path": r.path, "owner": r.user, "group": r.group, "mode": symbolic(r.max_mode, r.exact)}
            for r in docker_files.FIXED_RULES
        ],
        "dg_unit_rules": unit_rules,
        "dg_cert_rules": {"directory": symbolic("755", False), "file": symbolic("444", False)},
    }
    # JSON is YAML: ansible's yaml inventory plugin reads it.
    path.write_text(json.dumps({"bench": {"hosts": hosts, "vars": group_vars}}, indent=2))


def check_settings_supported(inventory: Path) -> None:
    """The playbook covers the lab's settings; refuse others rather than compare unequal work."""
    from dockguard import fleet, settings

    for h in fleet.load(inventory):
        cfg = settings.resolve(h.data.dict())
        unsupported = [
            k
            for k, v in (
                ("docker_tcp_listen", cfg["docker_tcp_listen"]),
                ("docker_seccomp_profile", cfg["docker_seccomp_profile"] == "dockguard"),
                ("lynis_enabled", cfg["lynis_enabled"]),
            )
            if v
        ]
        if cfg["docker_userns_remap"] not in (None, "default"):
            unsupported.append("docker_userns_remap")
        if unsupported:
            sys.exit(f"bench: {h.name}: the comparison playbook does not cover {', '.join(unsupported)}")


# --------------------------------------------------------------------------- CPU, each end apart

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class ControllerCgroup:
    """A cpuacct cgroup of this machine for the tool under test: the tool and every process it
    starts (pyinfra's process tree; ansible-playbook, its forks and ssh, ControlPersist masters
    included, which wait4 never reaps) stay in it, so its CPU time is the controller's."""

    def __init__(self) -> None:
        self.path = CPUACCT / f"dockguard-bench-{os.getpid()}"
        self.path.mkdir(exist_ok=True)

    def join(self) -> None:  # in the child, before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        for _ in range(50):
            left = (self.path / "cgroup.procs").read_text().split()
            for pid in left:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGTERM)
            with contextlib.suppress(OSError):
                self.path.rmdir()
                return
            time.sleep(0.1)


def host_cpu_seconds(info: dict) -> float | None:
    """A lab host's CPU time so far: its cpuacct cgroup (every process of the host: sshd, the
    shells and commands a run starts, systemd, dockerd), read on this machine."""
    for path in info.get("cgroups", []):
        f = Path(path) / "cpuacct.usage"
        if Path(path).parent.parent.name == "cpuacct" and f.exists():
            with contextlib.suppress(OSError, ValueError):
                return int(f.read_text()) / 1e9
    return None


def hosts_cpu(lab: dict[str, dict], hosts: list[str]) -> dict[str, float | None]:
    return {h: host_cpu_seconds(lab[h]) for h in hosts}


def idle_rate(lab: dict[str, dict], hosts: list[str], seconds: float = 2.0) -> dict[str, float]:
    """Each host's CPU per second when nothing runs on it (systemd, journald, dockerd idling),
    measured right before a run: subtracted from the run's host CPU."""
    a, t0 = hosts_cpu(lab, hosts), time.perf_counter()
    time.sleep(seconds)
    b, dt = hosts_cpu(lab, hosts), time.perf_counter() - t0
    return {h: max(0.0, (b[h] - a[h]) / dt) if a[h] is not None and b[h] is not None else 0.0 for h in hosts}


# --------------------------------------------------------------------------- a WAN, emulated
# This machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not set, nor fq for an eBPF
# delay), so `tc netem` cannot delay the lab's veth pairs. The same delay comes from a relay on
# this machine: an iptables rule of this machine's own nat OUTPUT chain redirects every new SSH
# connection to a lab container host (10.213.0.0/16, port 22) to the relay, which connects on
# to the address the connection was for (SO_ORIGINAL_DST) with a mark the rule skips, waits one
# round trip (the TCP handshake's), and passes every byte on after half the round trip, each
# way, in order. Both tools go through it with their own inventories unchanged.

WAN_MARK = 0x2137
WAN_RULE = ["-p", "tcp", "-d", "10.213.0.0/16", "--dport", "22", "-m", "mark", "!", "--mark", hex(WAN_MARK),
            "-j", "REDIRECT", "--to-ports"]  # fmt: skip
SO_ORIGINAL_DST = 80


def wan_relay(port: int, rtt_ms: float) -> None:
    """The relay (run in a child process of its own: `run.py --wan-relay PORT RTT_MS`)."""
    import asyncio

    half = rtt_ms / 2000

    async def pump(src, dst) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            while True:
                data = await src.read(65536)
                queue.put_nowait((loop.time() + half, data))
                if not data:
                    return

        async def write() -> None:
            while True:
                due, data = await queue.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                dst.write(data)
                await dst.drain()

        await asyncio.gather(read(), write())

    async def handle(reader, writer) -> None:
        up_writer = None
        try:
            raw = writer.get_extra_info("socket").getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            dport, dip = struct.unpack("!2xH4s8x", raw)
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, WAN_MARK)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up.setblocking(False)
            await asyncio.get_running_loop().sock_connect(up, (socket.inet_ntoa(dip), dport))
            up_reader, up_writer = await asyncio.open_connection(sock=up)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.sleep(2 * half)  # the TCP handshake: connect() would have taken a round trip
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def wan(rtt_ms: float):
    """Every SSH connection to a lab container host delayed by ``rtt_ms`` of round trip, for the
    block (nothing at 0)."""
    if not rtt_ms:
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = subprocess.Popen([sys.executable, __file__, "--wan-relay", str(port), str(rtt_ms)],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    rule = WAN_RULE + [str(port)]
    try:
        if relay.stdout.readline().strip() != "ready":
            raise RuntimeError("the WAN relay did not start")
        subprocess.run(["iptables", "-t", "nat", "-I", "OUTPUT", *rule], check=True)
        try:
            yield
        finally:
            subprocess.run(["iptables", "-t", "nat", "-D", "OUTPUT", *rule], check=False)
    finally:
        relay.terminate()
        relay.wait(10)


# --------------------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Polls /proc every ``interval`` seconds: the summed RSS of a process and its descendants
    (a descendant seen once is followed until it exits, also after it was re-parented, as an
    ssh ControlPersist master is), and the largest single RSS seen."""

    def __init__(self, root: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_tree = self.peak_single = 0
        self.followed: dict[int, bytes] = {}  # pid -> start time (pids are reused)
        self._done = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def sample(self) -> None:
        procs = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            # fields[1]: ppid, fields[19]: start time, fields[21]: rss in pages
            procs[int(d)] = (int(fields[1]), fields[19], int(fields[21]) * self._page)
        tree = {p for p, (_, start, _) in procs.items() if self.followed.get(p) == start}
        if self.root in procs:
            tree.add(self.root)
        grew = True
        while grew:
            grew = False
            for p, (ppid, _, _) in procs.items():
                if ppid in tree and p not in tree:
                    tree.add(p)
                    grew = True
        self.followed = {p: procs[p][1] for p in tree}
        rss = [procs[p][2] for p in tree]
        if rss:
            self.peak_tree = max(self.peak_tree, sum(rss))
            self.peak_single = max(self.peak_single, max(rss))


def measure(cmd: list[str], env: dict[str, str], log: Path, lab: dict[str, dict] | None = None,
            hosts: list[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Run ``cmd``; its wall time, exit code, peak memory (ru_maxrss from wait4: the largest of
    the process and its reaped descendants; and the sampled process tree), and CPU time on each
    end: the controller's (the tool's own cgroup on this machine) and each host's (its cgroup)."""
    ctl = ControllerCgroup()
    before = hosts_cpu(lab or {}, list(hosts))
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        t0 = time.time()
        p0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=ctl.join)  # fmt: skip
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - p0
        t1 = time.time()
        controller_cpu = ctl.seconds()
        after = hosts_cpu(lab or {}, list(hosts))
        sampler.stop()
    ctl.remove()
    proc.returncode = os.waitstatus_to_exitcode(status)
    host_cpu = {h: round(after[h] - before[h], 3) for h in hosts if before[h] is not None and after[h] is not None}
    return {
        "t0": t0,
        "t1": t1,
        "wall_s": round(wall, 3),
        "rc": proc.returncode,
        "maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "tree_peak_mb": round(sampler.peak_tree / 2**20, 1),
        "largest_sampled_mb": round(sampler.peak_single / 2**20, 1),
        "controller_cpu_s": round(controller_cpu, 3),
        "waited_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "host_cpu_s": host_cpu,
        "log": str(log.with_suffix(".out")),
    }


def close_masters(control_dir: Path) -> None:
    """Stop the ssh ControlPersist masters ansible left (by their control sockets)."""
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)  # fmt: skip


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def outcome(tool: str, scenario: str, run: dict[str, Any]) -> dict[str, Any]:
    """What the run changed (or would change): dockguard's results table, the drift report,
    ansible's recap."""
    out = Path(run["log"]).read_text()
    err = Path(run["log"]).with_suffix(".err").read_text()
    if tool == "dockguard" and scenario == "drift_check":
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            return {"ok": False, "changed": None, "error": strip_ansi(err)[-1500:]}
        drifted = {n: h["drift"] for n, h in report["hosts"].items() if h["status"] != "clean"}
        return {"ok": report["exit_code"] in (0, 2), "changed": sum(len(d) for d in drifted.values()),
                "drift": drifted}  # fmt: skip
    if tool == "dockguard":
        m = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", strip_ansi(out + err))
        if not m:
            return {"ok": False, "changed": None, "error": strip_ansi(out + err)[-1500:]}
        num = [0 if v == "-" else int(v) for v in m.groups()]
        return {"ok": run["rc"] == 0 and num[2] == 0, "changed": num[1], "errors": num[2]}
    recap = re.findall(
        r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", strip_ansi(out), re.M
    )
    if not recap:
        return {"ok": False, "changed": None, "error": strip_ansi(out + err)[-1500:]}
    changed = sum(int(r[2]) for r in recap)
    bad = sum(int(r[3]) + int(r[4]) for r in recap)
    return {"ok": run["rc"] == 0 and bad == 0, "changed": changed, "errors": bad}


def count_remote(hosts: list[str], runs: list[dict[str, Any]]) -> None:
    """Per run and host, from the host's journal: exec requests, sftp sessions, files written and
    read over sftp, SSH connections. Adds run["remote"] = {host: counts}."""
    since = int(min(r["t0"] for r in runs)) - 1
    query = (
        f"journalctl -q -o short-unix --no-pager --since @{since} -t sshd -t sshd-session -t sftp-server "
        "-t systemd-journald "
        f"| grep -E {shlex.quote(JOURNAL_LINES.pattern)}; true"
    )
    time.sleep(0.5)  # let journald take the last lines in
    journals = on_hosts(hosts, query)
    for run in runs:
        run["remote"] = {}
        for host, text in journals.items():
            c = {"exec": 0, "sftp_sessions": 0, "uploads": 0, "downloads": 0, "connections": 0, "suppressed": 0}
            for line in text.splitlines():
                stamp, _, rest = line.partition(" ")
                try:
                    t = float(stamp)
                except ValueError:
                    continue
                if not run["t0"] <= t <= run["t1"]:
                    continue
                if rest.endswith("req exec"):
                    c["exec"] += 1
                elif rest.endswith("req subsystem"):
                    c["sftp_sessions"] += 1
                elif "Accepted publickey" in rest:
                    c["connections"] += 1
                elif "sftp-server[" in rest and " open " in rest:
                    c["uploads" if re.search(r"flags \S*WRITE", rest) else "downloads"] += 1
                elif "Suppressed" in rest:
                    c["suppressed"] += 1
            run["remote"][host] = c


# --------------------------------------------------------------------------- the benchmark


def commands(tool: str, scenario: str, dg_inv: Path, ans_inv: Path, work: Path) -> list[str]:
    inv = str(dg_inv.relative_to(ROOT))
    if tool == "dockguard":
        if scenario == "drift_check":
            # A lock of its own: a drift run of someone else's (the timer, a test) would make it stop at once.
            return [
                str(Path(sys.executable).with_name("dockguard")),
                "drift",
                inv,
                "--json",
                "--lock",
                str(work / "drift.lock"),
            ]
        return [str(BIN / "pyinfra"), "-y", inv, "deploy.py"]
    cmd = [str(BIN / "ansible-playbook"), "-i", str(ans_inv), str(PLAYBOOK)]
    return cmd + ["--check", "--diff"] if scenario == "drift_check" else cmd


def base_env() -> dict[str, str]:
    """The environment of every tool run. Without PYTHONDONTWRITEBYTECODE (some CI shells and
    sandboxes set it): an operator's Python keeps the bytecode it compiles, and without it every
    run would compile dockguard's own modules again, about 0.5 s of controller CPU per run
    that is not the tool's work (the playbook's Python runs the same way)."""
    env = dict(os.environ, PYINFRA_PROGRESS="off")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def tool_env(tool: str, work: Path) -> tuple[dict[str, str], Path | None]:
    env = base_env()
    if tool == "dockguard":
        return env, None
    control = Path(tempfile.mkdtemp(prefix="cp-", dir=work))  # a fresh ControlPath per run: starts cold
    env.update(ANSIBLE_CONFIG=str(ANSIBLE_CFG), ANSIBLE_SSH_CONTROL_PATH_DIR=str(control))
    if str(STATE) != "/var/lib/dockguard-lab":
        with open(ANSIBLE_CFG) as f:
            args = re.search(r"^ssh_args = (.*)$", f.read(), re.M)[1]
        env["ANSIBLE_SSH_ARGS"] = args.replace("/var/lib/dockguard-lab", str(STATE))
    return env, control


def timed(args, lab, tool: str, scenario: str, hosts: list[str], dg_inv: Path, ans_inv: Path, work: Path,
          tag: str) -> dict[str, Any]:  # fmt: skip
    """One timed run; the hosts' idle CPU (measured just before) taken out of their CPU."""
    idle = idle_rate(lab, hosts) if not args.no_idle else dict.fromkeys(hosts, 0.0)
    env, control = tool_env(tool, work)
    log = work / re.sub(r"[^A-Za-z0-9.-]+", "_", f"{tag}-{tool}-{scenario}")
    run = measure(commands(tool, scenario, dg_inv, ans_inv, work), env, log, lab, hosts)
    if control:
        close_masters(control)
    run["host_idle_cpu_per_s"] = {h: round(v, 4) for h, v in idle.items()}
    run["host_cpu_net_s"] = {h: round(max(0.0, c - idle[h] * run["wall_s"]), 3) for h, c in run["host_cpu_s"].items()}
    run.update(tool=tool, scenario=scenario, hosts=hosts)
    run["outcome"] = outcome(tool, scenario, run)
    net = run["host_cpu_net_s"]
    print(
        f"  {tag:<14} {tool:<9} {scenario:<11} {run['wall_s']:7.2f} s  controller {run['controller_cpu_s']:.2f} s CPU"
        f"  hosts {sum(net.values()) / max(1, len(net)):.3f} s CPU each  rc={run['rc']}"
        f" changed={run['outcome'].get('changed')}",
        file=sys.stderr,
        flush=True,
    )
    if not run["outcome"]["ok"]:
        raise RuntimeError(
            f"{tool} {scenario} on {hosts} failed (rc={run['rc']}; log {run['log']}):\n"
            + str(run["outcome"].get("error", ""))
        )
    return run


def bench(args, names: list[str], work: Path, runs: list[dict[str, Any]], lab: dict[str, dict]) -> None:
    """Every row, appended to ``runs`` as it is measured (a failure keeps what was measured)."""
    for size in args.sizes:
        hosts = names[:size]
        dg_inv = dockguard_inventory(hosts, str(size), args.areas)
        args.cleanup.append(dg_inv)
        tools = [t for t in args.tools if t != "ansible" or args.ansible_sizes is None or size in args.ansible_sizes]
        ans_inv = ansible_inventory(dg_inv, work, str(size)) if "ansible" in tools else None
        if args.warm_up:  # untimed: the first run on hosts that never had the deploy (packages, baseline)
            env = base_env()
            subprocess.run([str(BIN / "pyinfra"), "-y", str(dg_inv.relative_to(ROOT)), "deploy.py"], cwd=ROOT,
                           env=env, stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
        for rep in range(args.repeat):
            batch, uncounted = [], []
            for tool in tools:
                on_hosts(hosts, RESET_TO_STOCK)
                for scenario in SCENARIOS:
                    run = timed(args, lab, tool, scenario, hosts, dg_inv, ans_inv, work,
                                f"size {size} {rep + 1}/{args.repeat}")  # fmt: skip
                    run.update(size=size, rep=rep, wan=False, rtt_ms=0, counted=not args.no_count)
                    batch.append(run)
                if not args.no_count:
                    # The no-op runs again with sshd logging as it does for an operator: these
                    # give the row its time, CPU and memory (counting makes every host's sshd and
                    # journald work more), the counted runs above its remote commands.
                    sshd_reconfigure(hosts, COUNT_OFF)
                    for scenario in UNCOUNTED:
                        run = timed(args, lab, tool, scenario, hosts, dg_inv, ans_inv, work,
                                    f"size {size} {rep + 1}/{args.repeat} uncounted")  # fmt: skip
                        run.update(size=size, rep=rep, wan=False, rtt_ms=0, counted=False)
                        uncounted.append(run)
                    sshd_reconfigure(hosts, COUNT_ON)
            if not args.no_count:
                count_remote(hosts, batch)
            runs += batch + uncounted
    if args.rtts:
        hosts = names[: args.wan_size]
        dg_inv = dockguard_inventory(hosts, f"wan{args.wan_size}", args.areas)
        args.cleanup.append(dg_inv)
        ans_inv = ansible_inventory(dg_inv, work, f"wan{args.wan_size}") if "ansible" in args.tools else None
        for tool in args.tools:  # hardened by this tool before its no-op rows
            on_hosts(hosts, RESET_TO_STOCK)
            timed(args, lab, tool, "first_apply", hosts, dg_inv, ans_inv, work, "wan prepare")
            for rtt in args.rtts:
                for rep in range(args.repeat):
                    batch = []
                    with wan(rtt):
                        for scenario in ("noop_apply", "drift_check"):
                            tag = f"wan {rtt:g} ms {rep + 1}/{args.repeat}"
                            run = timed(args, lab, tool, scenario, hosts, dg_inv, ans_inv, work, tag)
                            run.update(size=len(hosts), rep=rep, wan=True, rtt_ms=rtt)
                            batch.append(run)
                    if not args.no_count:
                        count_remote(hosts, batch)
                    runs += batch


def summarize(runs: list[dict[str, Any]], tools: list[str]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["wan"], r["rtt_ms"], r["size"], SCENARIOS.index(r["scenario"])) for r in runs})
    for is_wan, rtt, size, sc in keys:
        scenario = SCENARIOS[sc]
        row: dict[str, Any] = {"size": size, "scenario": scenario, "wan": is_wan, "rtt_ms": rtt}
        for tool in tools:
            mine = [r for r in runs if (r["wan"], r["rtt_ms"], r["size"], r["scenario"], r["tool"])
                    == (is_wan, rtt, size, scenario, tool)]  # fmt: skip
            if not mine:
                continue
            # Remote commands from the counted runs; time, CPU and memory from the runs without
            # counting where the row has them (the no-op rows), else from the counted ones.
            counted = [r for r in mine if r.get("counted", True)]
            quiet = [r for r in mine if r.get("counted") is False]
            mine = quiet or counted
            walls = [r["wall_s"] for r in mine]
            ctl = [r["controller_cpu_s"] for r in mine]
            host = [statistics.mean(r["host_cpu_net_s"].values()) for r in mine if r["host_cpu_net_s"]]
            s: dict[str, Any] = {
                "what": WHAT[(tool, scenario)],
                "measured_on": "uncounted runs" if quiet else "counted runs" if "remote" in counted[0] else "runs",
                "wall_s": {"median": round(statistics.median(walls), 3), "min": min(walls), "max": max(walls),
                           "runs": walls},
                "controller_cpu_s": round(statistics.median(ctl), 3),
                "controller_cpu_per_host_s": round(statistics.median(ctl) / size, 4),
                "host_cpu_per_host_s": round(statistics.median(host), 4) if host else None,
                "host_cpu_per_host_max_s": round(max(max(r["host_cpu_net_s"].values()) for r in mine
                                                     if r["host_cpu_net_s"]), 4) if host else None,
                "maxrss_mb": max(r["maxrss_mb"] for r in mine),
                "tree_peak_mb": max(r["tree_peak_mb"] for r in mine),
                "changed": [r["outcome"].get("changed") for r in mine],
            }  # fmt: skip
            if counted and all("remote" in r for r in counted):
                per_host = {}
                for key in ("exec", "uploads", "downloads", "sftp_sessions", "connections"):
                    # per run: the mean over the hosts; then the median over the repetitions
                    means = [statistics.mean(c[key] for c in r["remote"].values()) for r in counted]
                    per_host[key] = round(statistics.median(means), 1)
                    per_host[key + "_max_host"] = max(c[key] for r in counted for c in r["remote"].values())
                s["remote_per_host"] = per_host
                s["journal_suppressed"] = sum(c["suppressed"] for r in counted for c in r["remote"].values())
            row[tool] = s
        if all(t in row for t in ("dockguard", "ansible")):
            row["ratio_ansible_over_dockguard"] = round(
                row["ansible"]["wall_s"]["median"] / row["dockguard"]["wall_s"]["median"], 2
            )
        rows.append(row)
    return rows


def round_trips(rows: list[dict[str, Any]], tool: str, scenario: str) -> dict[str, Any] | None:
    """Sequential round trips per host: the slope of the wall time against the round-trip time
    (least squares over the WAN rows), SSH connection set-up included."""
    pts = [(r["rtt_ms"] / 1000, r[tool]["wall_s"]["median"]) for r in rows
           if r["wan"] and r["scenario"] == scenario and tool in r]  # fmt: skip
    xs = sorted({x for x, _ in pts})
    if len(xs) < 2:
        return None
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return {"round_trips": round(slope, 1), "intercept_s": round(my - slope * mx, 2),
            "points": [{"rtt_ms": round(x * 1000), "wall_s": y} for x, y in pts]}  # fmt: skip


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    local = [r for r in rows if not r["wan"]]

    def row(size, scenario):
        return next((r for r in local if (r["size"], r["scenario"]) == (size, scenario)), None)

    out = []
    one = row(1, "drift_check")
    if one and "remote_per_host" in one.get("dockguard", {}):
        n = one["dockguard"]["remote_per_host"]["exec"]
        up = one["dockguard"]["remote_per_host"]["uploads"]
        out.append({"target": "a no-op drift check of one host runs at most 15 remote commands",
                    "value": f"{n:g} commands, {up:g} file transfers", "pass": n + up <= 15})  # fmt: skip
    else:
        out.append({"target": "a no-op drift check of one host runs at most 15 remote commands", "pass": None,
                    "value": "needs size 1 with counting"})  # fmt: skip
    ten = row(10, "drift_check")
    if one and ten and "dockguard" in one and "dockguard" in ten:
        a, b = one["dockguard"]["wall_s"]["median"], ten["dockguard"]["wall_s"]["median"]
        out.append({"target": "a no-op check of 10 hosts takes at most 2x the time of 1 host",
                    "value": f"{b:.2f} s / {a:.2f} s = {b / a:.2f}x", "pass": b <= 2 * a})  # fmt: skip
    else:
        out.append({"target": "a no-op check of 10 hosts takes at most 2x the time of 1 host", "pass": None,
                    "value": "needs sizes 1 and 10"})  # fmt: skip
    for scenario in ("noop_apply", "drift_check"):
        sized = sorted((r["size"], r["dockguard"]) for r in local if r["scenario"] == scenario and "dockguard" in r)
        what = f"a no-op check ({scenario}) costs at most 0.02 s of controller CPU per added host"
        if len(sized) >= 2 and sized[-1][0] > sized[0][0]:
            (n0, a), (n1, b) = sized[0], sized[-1]
            per = (b["controller_cpu_s"] - a["controller_cpu_s"]) / (n1 - n0)
            out.append({"target": what, "pass": per <= 0.02,
                        "value": f"{per:.4f} s per host ({a['controller_cpu_s']:.2f} s at {n0}, "
                                 f"{b['controller_cpu_s']:.2f} s at {n1})"})  # fmt: skip
        else:
            out.append({"target": what, "pass": None, "value": "needs two sizes"})
        what = f"a no-op check ({scenario}) costs at most 0.15 s of host CPU per host"
        if sized and sized[-1][1]["host_cpu_per_host_s"] is not None:
            worst = max(d["host_cpu_per_host_s"] for _, d in sized)
            out.append({"target": what, "pass": worst <= 0.15,
                        "value": ", ".join(f"{d['host_cpu_per_host_s']:.3f} s at {n}" for n, d in sized)})  # fmt: skip
        else:
            out.append({"target": what, "pass": None, "value": "no host CPU measured"})
    for scenario in ("noop_apply", "drift_check"):
        rt = round_trips(rows, "dockguard", scenario)
        what = f"a no-op check ({scenario}) makes at most 10 sequential round trips per host"
        if rt:
            out.append({"target": what, "pass": rt["round_trips"] <= 10,
                        "value": f"{rt['round_trips']:g} round trips (wall = {rt['intercept_s']:g} s + "
                                 f"{rt['round_trips']:g} x RTT)"})  # fmt: skip
        else:
            out.append({"target": what, "pass": None, "value": "needs --rtts with two delays"})
    both = [r for r in rows if "ratio_ansible_over_dockguard" in r]
    slower = [f"{r['size']}/{r['scenario']}/{r['rtt_ms']:g}ms" for r in both if r["ratio_ansible_over_dockguard"] <= 1]
    out.append({"target": "dockguard is faster than the Ansible playbook on every row",
                "value": f"slower on {', '.join(slower)}" if slower else f"faster on all {len(both)} rows",
                "pass": (not slower) if both else None})  # fmt: skip
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = ("size", "rtt", "scenario", "dockguard s", "ansible s", "ansible/dg", "ctl CPU/host", "host CPU/host",
            "cmds/host dg", "cmds/host ans", "peak MB dg", "peak MB ans")  # fmt: skip

    def wall(s):
        if not s:
            return "-"
        w = s["wall_s"]
        return f"{w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f})"

    def cmds(s):
        if not s or "remote_per_host" not in s:
            return "-"
        c = s["remote_per_host"]
        return f"{c['exec']:g} + {c['uploads']:g} up"

    def mem(s):
        return f"{s['maxrss_mb']:.0f} / {s['tree_peak_mb']:.0f}" if s else "-"

    def cpu(s, key):
        if not s or s.get(key) is None:
            return "-"
        return f"{s[key]:.3f}"

    def both(r, key):
        dg, an = r.get("dockguard"), r.get("ansible")
        return " / ".join(x for x in (cpu(dg, key), cpu(an, key)) if x != "-") or "-"

    lines = [head]
    for r in rows:
        dg, an = r.get("dockguard"), r.get("ansible")
        ratio = f"{r['ratio_ansible_over_dockguard']:.2f}x" if "ratio_ansible_over_dockguard" in r else "-"
        rtt = f"{r['rtt_ms']:g}ms" if r["wan"] else "-"
        lines.append((str(r["size"]), rtt, r["scenario"], wall(dg), wall(an), ratio,
                      both(r, "controller_cpu_per_host_s"), both(r, "host_cpu_per_host_s"), cmds(dg), cmds(an),
                      mem(dg), mem(an)))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append(
        "wall: median (min-max) of the repetitions; rtt: the emulated round trip to each host; ctl/host CPU per host: "
        "seconds of CPU of the controller (the tool's cgroup here) and of each host (its cgroup, idle CPU taken out), "
        "per host (dockguard / ansible); cmds/host: exec requests + files uploaded, per host (sshd's log); "
        "peak MB: largest process (wait4 ru_maxrss) / whole process tree (sampled)"
    )
    return "\n".join(text)


def equivalence(names: list[str], work: Path, args) -> dict[str, Any]:
    """After the playbook's last run, dockguard's apply on the same hosts: what it still changes
    (nothing, when the playbook did the same work). Leaves the hosts hardened by dockguard."""
    dg_inv = dockguard_inventory(names, "final")
    args.cleanup.append(dg_inv)
    env = base_env()
    r = subprocess.run([str(BIN / "pyinfra"), "-y", "--json", str(dg_inv.relative_to(ROOT)), "deploy.py"],
                       cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)  # fmt: skip
    try:
        ops = json.loads(r.stdout)["results"]["operations"]
    except (ValueError, KeyError, TypeError):
        return {"rc": r.returncode, "error": strip_ansi(r.stderr)[-1500:]}
    return {"rc": r.returncode, "changed": {op["name"]: op["success"] for op in ops if op["success"]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1,3,10", help="host counts, comma-separated (default 1,3,10)")
    p.add_argument("--repeat", type=int, default=5, help="repetitions of each row (default 5)")
    p.add_argument("--out", default="bench/results.json", help="the JSON file to write")
    p.add_argument("--hosts", help="use these lab container hosts (comma-separated) instead of all of them")
    p.add_argument("--tools", default=",".join(TOOLS), help="dockguard,ansible (default both)")
    p.add_argument("--no-count", action="store_true", help="do not count remote commands (sshd stays untouched)")
    p.add_argument("--keep-work", action="store_true", help="keep the logs and generated files (path printed)")
    p.add_argument("--areas", choices=("docker", "all"), default="docker",
                   help="docker: Docker's own control areas, the playbook's work (default); all: dockguard's "
                        "whole deploy, the OS baseline included (dockguard only)")  # fmt: skip
    p.add_argument("--rtts", default="", help="WAN rows: round-trip times in ms, e.g. 0,50,150 (default none)")
    p.add_argument("--wan-size", type=int, default=10, help="hosts in the WAN rows (default 10)")
    p.add_argument("--warm-up", action="store_true",
                   help="an untimed apply before each size's rows (hosts that never had the deploy)")  # fmt: skip
    p.add_argument("--no-idle", action="store_true", help="do not measure and take out the hosts' idle CPU")
    p.add_argument("--ansible-sizes", help="run the playbook at these sizes only (default: every size); the WAN "
                   "rows always run both tools")  # fmt: skip
    p.add_argument("--make-ansible-inventory", nargs=2, metavar=("DG_INVENTORY", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--wan-relay", nargs=2, metavar=("PORT", "RTT_MS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.make_ansible_inventory:
        make_ansible_inventory(*map(Path, args.make_ansible_inventory))
        return 0
    if args.wan_relay:
        wan_relay(int(args.wan_relay[0]), float(args.wan_relay[1]))
        return 0
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.tools = [t for t in args.tools.split(",") if t]
    try:
        args.rtts = [float(r) for r in args.rtts.split(",") if r.strip()]
        args.ansible_sizes = (
            None if args.ansible_sizes is None else {int(s) for s in args.ansible_sizes.split(",") if s.strip()}
        )
    except ValueError:
        p.error("--rtts needs numbers (milliseconds), --ansible-sizes host counts, comma-separated")
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1 or not set(args.tools) <= set(TOOLS):
        p.error("--sizes needs positive integers, --repeat at least 1, --tools dockguard and/or ansible")
    if args.areas == "all" and "ansible" in args.tools:
        p.error("--areas all is dockguard's whole deploy, which the playbook does not do: add --tools dockguard")
    if any(r < 0 for r in args.rtts) or (args.rtts and args.wan_size < 1):
        p.error("--rtts needs round-trip times of 0 ms or more, --wan-size at least 1")

    lab = lab_hosts()
    containers = sorted((n for n, h in lab.items() if h.get("kind") == "container"), key=natural)
    if args.hosts:
        names = [n.strip() for n in args.hosts.split(",") if n.strip()]
        unknown = [n for n in names if n not in containers]
        if unknown:
            sys.exit(f"bench: not container hosts of the running lab: {', '.join(unknown)} "
                     f"(running: {', '.join(containers) or 'none'})")  # fmt: skip
    else:
        names = containers
    largest = max(args.sizes + ([args.wan_size] if args.rtts else []))
    if len(names) < largest:
        sys.exit(
            f"bench: the largest size is {largest} hosts, but {len(names)} lab container hosts are "
            f"available ({', '.join(names) or 'none'}; {STATE / 'hosts.json'}). This script never starts or "
            "stops the lab: "
            + (
                "pass more --hosts or smaller --sizes."
                if args.hosts
                else f"start one with `make lab-up N={largest}`, or pass smaller --sizes."
            )
        )
    if "ansible" in args.tools and not (BIN / "ansible-playbook").exists():
        sys.exit("bench: ansible-playbook is not in the virtualenv: `make bench` installs the bench extra")
    names = names[:largest]

    work = Path(tempfile.mkdtemp(prefix="dockguard-bench-"))
    args.cleanup = []
    runs: list[dict[str, Any]] = []
    final, error = None, None
    started = time.time()
    load_start = os.getloadavg()
    speed = python_speed()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (sshd, inventories) on a kill too
    print(f"bench: hosts {', '.join(names)}; sizes {args.sizes}; {args.repeat} repetitions; work {work}; "
          f"a 10-million-step Python loop takes {speed} s of CPU here",
          file=sys.stderr)  # fmt: skip
    stopped: dict[str, list[str]] = {}
    try:
        stopped = {h: stopped_timers(out) for h, out in on_hosts(names, TIMERS_OFF).items()}
        if any(stopped.values()):
            print(f"bench: stopped the hosts' daily timers for the bench: "
                  f"{', '.join(sorted({t for ts in stopped.values() for t in ts}))}", file=sys.stderr)  # fmt: skip
        if not args.no_count:
            sshd_reconfigure(names, COUNT_ON)
            t0 = time.time()
            on_hosts(names, "true")
            probe = [{"t0": t0, "t1": time.time()}]
            count_remote(names, probe)
            broken = [h for h, c in probe[0]["remote"].items() if (c["exec"], c["connections"]) != (1, 1)]
            if broken:
                raise RuntimeError(f"server-side counting does not see one command on {', '.join(broken)}")
        bench(args, names, work, runs, lab)
        if args.tools[-1] == "ansible":
            final = equivalence(names, work, args)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        error = str(e)
        print(f"bench: stopped: {error}", file=sys.stderr)
    finally:
        if not args.no_count:
            sshd_reconfigure(names, COUNT_OFF, check=False)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(stopped))) as pool:
            for h, timers in stopped.items():
                if timers:
                    pool.submit(ssh, h, timers_on(timers), False)
        for f in args.cleanup:
            f.unlink(missing_ok=True)
        if not args.keep_work and error is None:
            shutil.rmtree(work, ignore_errors=True)

    rows = summarize(runs, args.tools)
    checks = targets(rows)
    mem = meminfo_mb()
    host_mb = {n: cgroup_memory_mb(lab[n]) for n in names}
    known = [v for v in host_mb.values() if v]
    tools_mb = max([r["tree_peak_mb"] for r in runs] or [0])
    fit = None
    if known and "MemAvailable" in mem:
        # Each more host as large as the largest bench host, with room for the tools and 1 GiB to spare.
        fit = len(containers) + int(max(0, mem["MemAvailable"] - tools_mb - 1024) // max(known))
    result = {
        "issues": [7, 17],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "error": error,
        "machine": {"cpus": os.cpu_count(), "mem_total_mb": round(mem.get("MemTotal", 0)),
                    "mem_available_mb_after": round(mem.get("MemAvailable", 0)), "python": platform.python_version(),
                    "python_loop_cpu_s": speed,
                    "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(),
        "lab": {"container_hosts": containers, "used": names, "up": lab_timings(),
                "host_memory_mb": {n: round(v, 1) if v else None for n, v in host_mb.items()},
                "container_hosts_that_fit_by_memory": fit},
        "sizes": args.sizes,
        "areas": args.areas,
        "wan": {"rtts_ms": args.rtts, "size": args.wan_size, "how": "a relay on this machine (iptables nat OUTPUT "
                "REDIRECT of SSH to the lab's container hosts) holding every byte half a round trip each way, and "
                "one round trip at connect: this kernel has no netem"} if args.rtts else None,
        "round_trips": {f"{t}/{sc}": round_trips(rows, t, sc) for t in args.tools
                        for sc in ("noop_apply", "drift_check")} if args.rtts else None,
        "repeat": args.repeat,
        "reset": RESET_TO_STOCK,
        "counting": None if args.no_count else
        "server-side: sshd LogLevel DEBUG1 (channel requests: exec, subsystem; connections) and sftp-server "
        "-l INFO (files opened for writing or reading), from each host's journal between the run's start and end",
        "rows": rows,
        "targets": checks,
        "dockguard_after_ansible": final,
        "runs": [{k: v for k, v in r.items() if k != "log"} for r in runs],
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(table(rows))
    print()
    for c in checks:
        verdict = "PASS" if c["pass"] else "SKIP" if c["pass"] is None else "FAIL"
        print(f"{verdict}  {c['target']}: {c['value']}")
    if final is not None:
        changed = final.get("changed")
        if changed is None:
            said = "an error: " + final.get("error", "")
        else:
            said = "; ".join(f"{op} on {', '.join(h)}" for op, h in changed.items()) or "nothing"
        print(f"INFO  dockguard applied after the playbook's last run changed: {said}")
    if fit:
        print(f"INFO  a lab container host holds up to {max(known):.0f} MiB resident (its cgroup, page cache aside); "
              f"{mem['MemAvailable']:.0f} MiB are available: about {fit} container hosts fit by memory "
              f"(the 2 CPUs are the tighter limit)")  # fmt: skip
    lost = [f"{r['size']}/{r['scenario']}/{t}" for r in rows for t in TOOLS if r.get(t, {}).get("journal_suppressed")]
    if lost:
        print(f"WARN  journald suppressed sshd lines (rate limit): the command counts of {', '.join(lost)} are low")
    if error:
        print(f"ERROR the benchmark stopped early (logs kept in {work}): {error}")
    print(f"\nwrote {out}")
    return 1 if error or any(c["pass"] is False for c in checks) else 0


def python_speed() -> float:
    """The CPU seconds of a 10-million-step Python loop on this machine (before any run): the
    figures of two machines, or of one machine on two days, compare only through it."""
    t, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return round(time.process_time() - t, 2)


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("pyinfra", "ansible-core"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    sys.exit(main())
