"""Audit watches (audit.py) for paths the host controls: a path auditctl cannot take
as one word is left out and reported; every path stays literal in the shell."""

import subprocess

from dockguard.operations import audit, content, safe
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


def test_a_watch_in_a_directory_made_at_runtime_is_loaded_by_the_runtime_unit():
    """/run/containerd/containerd.sock's directory does not exist when the boot loads the rules
    file: auditctl would refuse it and stop there (found on a Debian 13 VM after a reboot:
    audit-rules.service failed, auditd did not start). It goes to the runtime unit; watches
    whose directory exists at boot (/run itself, /var/run a link to it) stay in the file."""
    watched = [
        "/etc/docker", "/run/containerd", "/run/containerd/containerd.sock", "/var/run/docker.sock",
        "/run/docker/$(x)/sock",
    ]  # fmt: skip
    boot, runtime = audit.split_rules(watched)
    assert runtime == ["-w /run/containerd/containerd.sock -p wa -k docker"]
    assert boot == [
        "-w /etc/docker -p wa -k docker",
        "-w /run/containerd -p wa -k docker",
        "-w /var/run/docker.sock -p wa -k docker",
        # not plain enough for an ExecStart line: stays in the rules file
        "-w /run/docker/$(x)/sock -p wa -k docker",
    ]
    unit = content.render(audit.RUNTIME_TEMPLATE, rules=runtime)
    assert "ExecStart=-/sbin/auditctl -w /run/containerd/containerd.sock -p wa -k docker\n" in unit
    assert "After=auditd.service audit-rules.service containerd.service\nPartOf=containerd.service\n" in unit
    assert "WantedBy=containerd.service docker.service\n" in unit
    empty = content.render(audit.RUNTIME_TEMPLATE, rules=[])
    assert "ExecStart=/bin/true\n" in empty and "auditctl" not in empty.split("[Service]")[1]


def test_the_load_adds_the_runtime_watches_after_the_rules_file():
    """augenrules --load may begin with -D (delete every rule): the runtime watch is added after
    it, only where the kernel's list lacks it, and then verified with the others."""
    rule = "-w /run/containerd/containerd.sock -p wa -k docker"
    live = {"available": True, "installed": "yes", "rules": []}
    state = FakeState()
    with ctx_state.use(state), ctx_host.use(create_host(state, facts={})):
        (cmd,) = list(audit.loaded._inner(wanted=[rule], runtime=[rule], live=live))
    stub = (
        'L=""; augenrules() { L="$L load"; }; '
        'auditctl() { if [ "$1" = -l ]; then [ -n "$ADDED" ] && printf "%s\\n" "$ADDED"; '
        'else L="$L add:$*"; ADDED="$*"; fi; }; '
    )
    done = subprocess.run(["sh", "-c", stub + str(cmd) + '; echo "$L"'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["load", "add:-w", "/run/containerd/containerd.sock", "-p", "wa", "-k", "docker"]
