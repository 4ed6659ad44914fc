"""Audit watches (audit.py) for paths the host controls: a path auditctl cannot take
as one word is left out and reported; every path stays literal in the shell."""

import subprocess

from dockguard.operations import audit, safe
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

PATHS = {
    "bins": {"dockerd": "/opt/docker bin/dockerd", "runc": "/usr/sbin/runc", "docker": "/opt/esc\x1b[2J/docker"},
    "units": {"docker.service": "/lib/systemd/system/docker.service", "docker.socket": "/etc/x\udcff/docker.socket"},
    "stat": {},
}


def test_paths_auditctl_cannot_take_are_left_out_of_the_rules():
    watched = audit.watched_paths(PATHS)
    assert audit.unwatchable(watched) == [
        "/etc/x\udcff/docker.socket",
        "/opt/docker bin/dockerd",
        "/opt/esc\x1b[2J/docker",
    ]
    assert audit.rule_lines(watched) == [
        "-w /etc/docker/daemon.json -p wa -k docker",
        "-w /lib/systemd/system/docker.service -p wa -k docker",
        "-w /usr/bin/docker -p wa -k docker",  # Docker's own paths of the binaries found elsewhere
        "-w /usr/bin/dockerd -p wa -k docker",
        "-w /usr/bin/runc -p wa -k docker",
        "-w /usr/sbin/runc -p wa -k docker",
    ]
    assert [safe.shown(p) for p in audit.unwatchable(watched)] == [
        "b'/etc/x\\xff/docker.socket'", "'/opt/docker bin/dockerd'", "'/opt/esc\\x1b[2J/docker'"
    ]  # fmt: skip


def test_the_verification_script_keeps_hostile_rules_literal():
    """The load-and-verify script under sh, with augenrules and auditctl stubbed: a rule in the
    kernel's list is found, a missing one is named literally (nothing in it is expanded)."""
    present = "-w /opt/a'b/$(echo X)/dockerd -p wa -k docker"
    missing = "-w /opt/`echo Y`/$HOME/back\\nslash/runc -p wa -k docker"
    live = {"available": True, "installed": "yes", "rules": [present]}
    state = FakeState()
    with ctx_state.use(state), ctx_host.use(create_host(state, facts={})):
        (cmd,) = list(audit.loaded._inner(wanted=[present, missing], live=live))
    stub = f"augenrules() {{ :; }}; auditctl() {{ printf '%s\\n' {safe.arg(present)}; }}; "
    done = subprocess.run(["sh", "-c", stub + str(cmd)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == f"dockguard: audit rules not in the kernel after loading:; {missing}\n"
