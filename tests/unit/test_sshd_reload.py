"""sshd's reload waits until sshd listens again (operations/sshd.reload_and_wait), run for real:
a fake systemctl whose "sshd" is a process listening on a TCP socket of this machine, and whose
reload closes it and listens again a moment later, as sshd's re-exec does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dockguard.operations import sshd

LISTENER = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); time.sleep(120)"
FAKE = """#!/bin/sh
# systemctl show -p MainPID --value UNIT | systemctl try-reload-or-restart UNIT
case "$1" in
  show) cat "$STATE/pid" 2>/dev/null || echo 0 ;;
  try-reload-or-restart)
    kill "$(cat "$STATE/pid")" 2>/dev/null
    if [ "$RELISTEN" = yes ]; then
      (sleep 1; sh -c 'echo $$ > "$STATE/pid.new" && mv "$STATE/pid.new" "$STATE/pid" && exec "$PY" -c "$LISTENER"') \\
        >/dev/null 2>&1 &
    fi ;;
esac
"""


@pytest.fixture
def host(tmp_path):
    """(run, state): run(relisten, listening_before) runs reload_and_wait's shell; returns (rc, stderr, seconds)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "systemctl").write_text(FAKE)
    (bin_ / "systemctl").chmod(0o755)
    procs = []

    def run(relisten: bool, listening_before: bool = True):
        env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "STATE": str(tmp_path), "PY": sys.executable,
               "LISTENER": LISTENER, "RELISTEN": "yes" if relisten else "no"}  # fmt: skip
        if listening_before:
            p = subprocess.Popen([sys.executable, "-c", LISTENER])
            procs.append(p)
            (tmp_path / "pid").write_text(f"{p.pid}\n")
            deadline = time.monotonic() + 10
            while not _listening(p.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        started = time.monotonic()
        r = subprocess.run(["sh", "-c", sshd.reload_and_wait("ssh") + "echo reloaded"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        return r.returncode, r.stdout + r.stderr, time.monotonic() - started

    yield run
    for p in procs:
        p.kill()
    pid = (tmp_path / "pid").read_text().strip() if (tmp_path / "pid").exists() else ""
    if pid.isdigit() and int(pid) > 0:
        subprocess.run(["kill", pid], capture_output=True)


def _listening(pid: int) -> bool:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile: the interpreter is still starting
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                return True
    return False


def test_the_reload_returns_once_sshd_listens_on_new_sockets(host):
    rc, out, took = host(relisten=True)
    assert rc == 0, out
    assert out.strip() == "reloaded"
    assert took >= 1.0, f"returned after {took:.2f} s, before the new listener (1 s after the reload)"


def test_nothing_is_waited_for_where_sshd_held_no_listening_socket(host):
    rc, out, took = host(relisten=False, listening_before=False)  # socket activation: systemd holds it
    assert rc == 0, out
    assert took < 5


def test_a_daemon_that_never_listens_again_fails_the_host_saying_so(host, monkeypatch):
    monkeypatch.setattr(sshd, "RELISTEN_POLLS", 5)
    rc, out, _ = host(relisten=False)
    assert rc == 1
    assert "sshd did not listen again within 1 s of its reload" in out
    assert "reloaded" not in out
