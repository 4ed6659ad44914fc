"""One dockguard run at a time per host.

Every command that changes a host starts with :func:`prefix`. The first one of a run
takes an exclusive ``flock`` on ``/run/dockguard.lock`` (waiting at most
``dockguard_lock_wait`` seconds; then it fails this host, naming who holds the lock)
and hands the lock to a small holder process that lives as long as this run's SSH
connection (the nearest ``sshd`` above the command; for a local run, the process that
started it). Later commands of the same run find their own run id in
``/run/dockguard.owner`` and go on. So the lock spans keep-known-good, the writes, the
restart, its health check and any rollback, as one critical section; it is released
when the run ends or its connection dies, never left behind. A run with nothing to
change runs no command, and takes no lock.
"""

from __future__ import annotations

import os
import socket
import uuid

LOCK = "/run/dockguard.lock"
OWNER = "/run/dockguard.owner"
MAX_HOLD = 3600  # a holder never outlives this many seconds, whatever happens to its run
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later

# This controller process's run (fixed by the unit tests through the environment).
RUN_ID = "".join(c for c in os.environ.get("DOCKGUARD_RUN_ID", "") if c in "0123456789abcdef") or uuid.uuid4().hex
_WHO = (os.environ.get("DOCKGUARD_RUN_WHO") or f"{os.environ.get('USER') or 'unknown'}@{socket.gethostname()}")[:80]
_SAFE_WHO = "".join(c if c.isalnum() or c in "@._-" else "_" for c in _WHO)


DEFAULT_WAIT = 60


def prefix(wait: int | None = None) -> str:
    """Shell that holds this host's dockguard lock for this run (or exits 75 naming the
    run that holds it after ``wait`` seconds, by default the host's dockguard_lock_wait);
    put it before any changing command."""
    if wait is None:
        from pyinfra import host

        wait = host.data.get("dockguard_lock_wait", DEFAULT_WAIT)
    return (
        "dg_lock() { "
        f'set -- $(cat {OWNER} 2>/dev/null); [ "$1" = {RUN_ID} ] && [ -n "$2" ] && kill -0 "$2" 2>/dev/null '
        "&& return 0; "
        f"exec 9>>{LOCK} || return 1; "
        f"if ! flock -w {int(wait)} 9; then "
        f"echo \"dockguard: another dockguard run holds this host's lock {LOCK} "
        f'($(cut -d" " -f3- {OWNER} 2>/dev/null)); gave up after {int(wait)} s" >&2; return {EXIT_LOCKED}; fi; '
        # The process whose life is this run's: the nearest ancestor that is not a shell or sudo.
        'c=$$; while [ "$c" -gt 1 ]; do case "$(cat /proc/$c/comm 2>/dev/null)" in '
        "sh|dash|bash|sudo|su|doas|env|timeout|flock) c=$(sed 's/.*) //' /proc/$c/stat | cut -d' ' -f2);; "
        "*) break;; esac; done; "
        f"setsid sh -c 'i=0; while kill -0 '\"$c\"' 2>/dev/null && [ $i -lt {MAX_HOLD} ]; do sleep 1; "
        "i=$((i+1)); done' </dev/null >/dev/null 2>&1 & "
        f'printf "%s %s since %s by %s\\n" {RUN_ID} $! "$(date -u +%Y-%m-%dT%H:%M:%SZ)" {_SAFE_WHO} > {OWNER}; '
        "exec 9>&-; }; "
        "dg_lock || exit $?; "
    )
