"""The local lab (the embedded default target): whatever `make lab-up` started.

Groups: lab_containers (dh1..dhN, systemd-nspawn hosts), lab_vms (vm1, QEMU, AppArmor)
and lab_selinux_vms (vm2, QEMU, SELinux; only with `make lab-up SELINUX=1`). Each host's
Debian release is its ``lab_suite`` (bookworm, trixie). With DOCKGUARD_LAB_HOSTS=dh1,dh2 set
(a lane of the end-to-end suite, lab/e2e_lanes.py), only those hosts.
"""

import json
import os
import sys
from pathlib import Path

_STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))


def _hosts(kind):
    try:
        hosts = json.loads((_STATE / "hosts.json").read_text())["hosts"]
    except (OSError, ValueError, KeyError):
        hosts = {}
    only = os.environ.get("DOCKGUARD_LAB_HOSTS")
    if only is not None:
        hosts = {n: h for n, h in hosts.items() if n in only.split(",")}
    return [
        (
            name,
            {
                "ssh_hostname": h["address"],
                "ssh_port": h["port"],
                "ssh_user": "root",
                "ssh_key": str(_STATE / "ssh" / "id_ed25519"),
                "ssh_known_hosts_file": str(_STATE / "ssh" / "known_hosts"),
                "ssh_strict_host_key_checking": "yes",
                "ssh_allow_agent": False,
                "ssh_look_for_keys": False,
                "lab_kind": h["kind"],
                "lab_suite": h.get("suite", "bookworm"),
            },
        )
        for name, h in sorted(hosts.items())
        if h["kind"] == kind
    ]


lab_containers = _hosts("container")
lab_vms = _hosts("vm")
lab_selinux_vms = _hosts("vm-selinux")  # only with `make lab-up SELINUX=1`

if not lab_containers and not lab_vms and not lab_selinux_vms:
    print("inventory/lab.py: no lab hosts are running; start them with `make lab-up`", file=sys.stderr)
