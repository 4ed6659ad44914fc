"""The Vagrant lab (the Vagrantfile in the project root): whatever `vagrant up` started.

    vagrant up
    pyinfra -y inventory/vagrant.py deploy.py

Groups: `debian_family` (debian12, ubuntu2404) and `rhel_family` (rocky9), so that
`inventory/group_data/<family>.py` and `--limit rhel_family` work; every host is also in
`vagrant` (this file's name). Only running machines are hosts; with no Vagrant or no running
machine this says why on stderr and has no hosts.

Connection: `vagrant status --machine-readable`, then `vagrant ssh-config` for the running
machines, both in the Vagrantfile's directory. Each host gets Vagrant's address, port, user
(`vagrant`) and the key Vagrant made for that machine, and `_sudo` (the boxes give `vagrant`
passwordless sudo; dockguard needs root).

Host keys: `vagrant ssh-config` turns checking off (`StrictHostKeyChecking no`,
`UserKnownHostsFile /dev/null`); this inventory does not. Each machine's key is kept in a
known_hosts file of its own, `.vagrant/machines/<name>/<provider>/dockguard_known_hosts`,
with `ssh_strict_host_key_checking = "accept-new"`: the first connection after `vagrant up`
records the key the new VM generated on its first boot (it cannot be known before, and only
this same local channel could fetch it), and every later connection, by pyinfra or by the CIS
suite (OpenSSH reads the same file), verifies it and refuses a changed key. Vagrant empties
that directory on `vagrant destroy`, so a re-created VM starts with a fresh file instead of a
key mismatch; and one file per machine means that VMs which trade forwarded ports between
boots (VirtualBox hands out 127.0.0.1:2222, 2200, 2201, ... in boot order) are never checked
against each other's keys.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# The Vagrantfile's directory (the project root). pyinfra runs this file with __file__ set.
VAGRANT_ROOT = Path(__file__).resolve().parent.parent
KNOWN_HOSTS_NAME = "dockguard_known_hosts"

# The machines of the Vagrantfile (tests/unit/test_vagrant.py checks, with Vagrant itself,
# that the two agree): distribution family (a group), box, private address, and the host
# data dockguard needs there. The boxes have no Docker: dockguard installs it, from the
# distribution on Debian and Ubuntu and from Docker's own repository on Rocky, whose
# repositories ship no Docker engine. The private address goes into the host's TLS
# certificate (used with docker_tcp_listen), since ssh_hostname is Vagrant's port forward.
MACHINES = {
    "debian12": {
        "family": "debian_family",
        "box": "debian/bookworm64",
        "ip": "192.168.56.12",
        # The OS baseline's promise on a VM host, as the deploy's own gate: a run that leaves
        # Lynis's hardening index below 85 fails (measured: 62 before dockguard, 88 after).
        # CI's run (lab/vagrant-test.sh) sets DOCKGUARD_LYNIS_BASELINE=0: only the gate's audit, one
        # emulated Lynis run (about 9 minutes) instead of two; the stock figure was measured once.
        "data": {
            "docker_install": True,
            "docker_source": "distribution",
            "lynis_min_hardening_index": 85,
            "lynis_baseline": os.environ.get("DOCKGUARD_LYNIS_BASELINE", "1") != "0",
        },
    },
    "ubuntu2404": {
        "family": "debian_family",
        "box": "cloud-image/ubuntu-24.04",
        "ip": "192.168.56.24",
        "data": {"docker_install": True, "docker_source": "distribution"},
    },
    "rocky9": {
        "family": "rhel_family",
        "box": "rockylinux/9",
        "ip": "192.168.56.9",
        "data": {"docker_install": True, "docker_source": "docker-ce"},
    },
}

# ssh-config options that pyinfra's host data cannot carry: a host that needs one is left out
# (a remote libvirt host, config.ssh.config). Underscored: pyinfra takes any public module-level
# list or tuple of strings for a group of hosts.
_UNSUPPORTED = ("proxycommand", "proxyjump", "include")


def parse_status(text: str) -> dict[str, dict[str, str]]:
    """`vagrant status --machine-readable` output: {machine: {"state": ..., "provider": ...}}.

    Lines are `timestamp,target,type,data`; Vagrant writes commas in data as %!(VAGRANT_COMMA).
    """
    machines: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split(",", 3)
        if len(parts) < 4 or not parts[1]:
            continue
        _, target, kind, data = parts
        data = data.replace("%!(VAGRANT_COMMA)", ",")
        if kind == "state":
            machines.setdefault(target, {})["state"] = data
        elif kind == "provider-name":
            machines.setdefault(target, {})["provider"] = data
    return machines


def status_error(text: str) -> str | None:
    """The message of Vagrant's `error-exit` line in machine-readable output, if any."""
    for line in text.splitlines():
        parts = line.strip().split(",", 4)
        if len(parts) == 5 and parts[2] == "error-exit":
            message = parts[4].replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n")
            return message.strip().splitlines()[0]
    return None


def parse_ssh_config(text: str) -> dict[str, dict[str, list[str]]]:
    """`vagrant ssh-config` output: {Host name: {lowercased option: [values, in order]}}.

    A Host line starts a block (blank lines between blocks carry no meaning); a value may be
    double-quoted (Vagrant quotes an IdentityFile path with spaces).
    """
    hosts: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.lower(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key == "host":
            current = hosts.setdefault(value, {})
        elif current is not None:
            current.setdefault(key, []).append(value)
    return hosts


def ssh_data(options: dict[str, list[str]]) -> dict:
    """pyinfra connection data of one parsed ssh-config block (ValueError when it cannot be)."""
    unsupported = [o for o in _UNSUPPORTED if o in options]
    if unsupported:
        raise ValueError(f"needs {', '.join(unsupported)}, which this inventory does not support")
    for required in ("hostname", "port", "user", "identityfile"):
        if required not in options:
            raise ValueError(f"no {required} in `vagrant ssh-config`")
    return {
        "ssh_hostname": options["hostname"][0],
        "ssh_port": int(options["port"][0]),
        "ssh_user": options["user"][0],
        # Vagrant lists the machine's own key first (the insecure key only if it kept it).
        "ssh_key": options["identityfile"][0],
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }


def known_hosts_file(name: str, provider: str) -> Path:
    """This machine's known_hosts, in its Vagrant data directory (emptied by `vagrant destroy`)."""
    dotfile = Path(os.environ.get("VAGRANT_DOTFILE_PATH", ".vagrant"))
    return VAGRANT_ROOT / dotfile / "machines" / name / provider / KNOWN_HOSTS_NAME


def make_host(name: str, options: dict[str, list[str]], known_hosts: Path) -> tuple[str, dict]:
    """(name, pyinfra host data) of a machine of MACHINES from its parsed ssh-config block."""
    machine = MACHINES[name]
    data = ssh_data(options) | {
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "accept-new",
        "_sudo": True,
        "docker_tls_san": [machine["ip"]],
    }
    return name, data | machine["data"]


def by_family(hosts: list[tuple[str, dict]]) -> dict[str, list[tuple[str, dict]]]:
    """The hosts in their distribution-family groups (every family of MACHINES, maybe empty)."""
    groups: dict[str, list[tuple[str, dict]]] = {m["family"]: [] for m in MACHINES.values()}
    for name, data in hosts:
        groups[MACHINES[name]["family"]].append((name, data))
    return groups


def _vagrant(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["vagrant", *args],
        cwd=VAGRANT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _say(message: str) -> None:
    print(f"inventory/vagrant.py: {message}", file=sys.stderr)


def running_hosts() -> list[tuple[str, dict]]:
    """(name, host data) of every running machine of MACHINES; says on stderr why one is missing."""
    if shutil.which("vagrant") is None:
        _say("vagrant is not installed (apt-get install vagrant), so there are no hosts")
        return []
    status = _vagrant("status", "--machine-readable")
    machines = parse_status(status.stdout)
    if status.returncode != 0 or not machines:
        reason = status_error(status.stdout) or status.stderr.strip() or f"exit status {status.returncode}"
        _say(f"`vagrant status` failed, so there are no hosts: {reason}")
        return []
    running = {n: m["provider"] for n, m in machines.items() if m.get("state") == "running" and "provider" in m}
    for name in sorted(set(running) - set(MACHINES)):
        _say(f"{name} is running but not in MACHINES of inventory/vagrant.py; left out")
    targets = [n for n in MACHINES if n in running]
    if not targets:
        states = ", ".join(f"{n}: {machines.get(n, {}).get('state', 'not defined')}" for n in MACHINES)
        _say(f"no Vagrant machine is running ({states}); start them with `vagrant up`")
        return []
    config = _vagrant("ssh-config", *targets)
    blocks = parse_ssh_config(config.stdout)
    if config.returncode != 0:
        _say(f"`vagrant ssh-config {shlex.join(targets)}` failed: {config.stderr.strip()}")
    hosts = []
    for name in targets:
        if name not in blocks:
            _say(f"{name}: no SSH configuration from Vagrant; left out")
            continue
        known_hosts = known_hosts_file(name, running[name])
        try:
            hosts.append(make_host(name, blocks[name], known_hosts))
        except ValueError as e:
            _say(f"{name}: {e}; left out")
            continue
        # An empty file rather than none: pyinfra warns about a known_hosts it cannot read.
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        known_hosts.touch(mode=0o600, exist_ok=True)
    return hosts


_groups = by_family(running_hosts())
debian_family = _groups["debian_family"]
rhel_family = _groups["rhel_family"]
