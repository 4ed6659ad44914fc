"""The operator's command line: drift checks, compliance reports, their schedule, and the CA.

    dockguard drift INVENTORY [--json] [--fix] [--limit HOST|GROUP|GLOB]
    dockguard report INVENTORY [--out reports]
    dockguard install-timer INVENTORY [--fix] [--user OPERATOR] [--on-calendar hourly] [--dest DIR]
    dockguard cron-line INVENTORY [--fix] [--user OPERATOR] [--schedule '*/30 * * * *']
    dockguard pki status|client|rotate-ca|migrate ...
    dockguard pull install|status|remove INVENTORY [--limit ...]    (pull mode: dockguard/pull.py)

`drift` runs the deploy in dry-run mode (pyinfra --dry: facts are read, nothing
changes, nothing is written on this machine) and reports, per host, every control
that would change: its CIS ID, the operation, and why. It never says clean unless
every host it was asked for was checked. With --fix it applies the deploy and reports
what was corrected. Runs never overlap (a lock in a directory only you can write).
Nothing here reads or prints private keys (the CA key is read only to sign).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import CHECKOUT, CIS_SUITE, DEPLOY_FILE, ROOT, TEMPLATES, compat, controls, fleet, pki, systemd

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
# How a unit or a cron line runs dockguard: this Python, the package (installed, or this checkout).
COMMAND = [sys.executable, "-m", "dockguard"]
_CIS = re.compile(r"^CIS ([0-9][0-9./x-]*):")
# OS baseline operations are named by the Lynis tests they answer ("SSH-7408: ...", "ACCT-9622/9626: ...").
_LYNIS = re.compile(r"^([A-Z]{3,4}-[0-9]{4}(?:[/, ]+(?:[A-Z]{3,4}-)?[0-9]{4})*):")
# Operations gated by `_if` show up as "conditional" in a dry run whatever the host's state;
# their controls report drift through notes instead (see operations.drift()).
EXIT_CLEAN, EXIT_UNCHECKED, EXIT_DRIFT, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 64, 75
# The exit codes of `drift` and `report` (also in --help and docs/operator-guide.md; a unit test keeps them equal).
EXIT_CODES = [
    (EXIT_CLEAN, "clean: every host was checked and nothing differs (report: every control passes or is N/A)"),
    (EXIT_UNCHECKED, "not every host was checked: no host matched, pyinfra failed, its output was unreadable, "
                     "a host was unreachable or left no notes, the CA is unusable (--fix: not every host is in line)"),
    (EXIT_DRIFT, "drift found (report: a control fails on a host)"),
    (EXIT_USAGE, "usage error: a bad option or argument, a missing inventory"),
    (EXIT_BUSY, "another run is in progress (it holds the lock): not a result, never clean"),
]  # fmt: skip


def exit_table_markdown() -> str:
    rows = ["| exit | meaning |", "|---|---|"] + [f"| {code} | {text} |" for code, text in EXIT_CODES]
    return "\n".join(rows)


def exit_table_text() -> str:
    return "exit codes (drift, report):\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)


def cis_of(op_name: str) -> str:
    m = _CIS.match(op_name)
    if m:
        return m.group(1)
    if op_name.startswith("dockerd:"):
        return "2.x"
    m = _LYNIS.match(op_name)
    if m:
        return m.group(1)
    return "-"


def drift_items(notes: list[dict], plan: list[dict], name: str) -> list[dict[str, Any]]:
    """One host's drift: what the controls noted (with their reasons), then every other
    operation the dry run would change on it."""
    items = [{"cis": n["cis"], "operation": n.get("operation"), "reason": n["reason"]} for n in notes]
    named = {n.get("operation") for n in notes}
    for op in plan:
        if name not in op["hosts_with_change"] or op["name"] in named:
            continue
        cis = cis_of(op["name"])
        items.append({"cis": cis, "operation": op["name"], "reason": "differs from what dockguard sets"})
    return items


def _passphrase_fds(env: dict[str, str]) -> tuple[int, ...]:
    """Hand the CA key's passphrase (read here once from DOCKGUARD_CA_PASSPHRASE_FD) to pyinfra
    on a fresh pipe, never in its environment."""
    if not os.environ.get(pki.PASSPHRASE_FD_ENV):
        return ()
    secret = pki.passphrase() or b""
    r, w = os.pipe()
    os.write(w, secret)
    os.close(w)
    env[pki.PASSPHRASE_FD_ENV] = str(r)
    return (r,)


def run_pyinfra(inventory: str, *args: str, drift_dir: str | None = None) -> tuple[int, dict | None, str]:
    env = dict(os.environ, PYINFRA_PROGRESS="off")
    if drift_dir:
        env["DOCKGUARD_DRIFT_DIR"] = drift_dir
        env["DOCKGUARD_DRY"] = "1"
    fds = _passphrase_fds(env)
    try:
        r = subprocess.run(
            [PYINFRA, "--json", *args, inventory, str(DEPLOY_FILE)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=3600,
            pass_fds=fds,
        )
    finally:
        for fd in fds:
            os.close(fd)
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return r.returncode, out, r.stderr


_host_errors = compat.host_errors  # pyinfra prints per-host errors only on stderr


def _run_errors(rc: int, stderr: str) -> list[str]:
    """A failed pyinfra run: its exit code and its own error message (the lines after
    '--> pyinfra error:'), without colours; nothing when it exited 0."""
    if rc == 0:
        return []
    return [f"pyinfra exited {rc}", *_pyinfra_error(stderr)]


def _pyinfra_error(stderr: str) -> list[str]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    at = text.find("pyinfra error:")
    if at < 0:
        return []
    lines = text[at:].splitlines()
    out = [lines[0].strip()]
    out += [line.strip() for line in lines[1:] if line.startswith("  ") and line.strip()]
    return out[:20]


def select_hosts(inventory, limit: list[str]) -> tuple[list[str], list[str]]:
    """(host names --limit selects, the --limit patterns that match nothing), as pyinfra selects:
    a group name, else a glob over host names."""
    from pyinfra.api.exceptions import NoGroupError

    names = [h.name for h in inventory]
    if not limit:
        return names, []
    chosen, unmatched = set(), []
    for pattern in limit:
        try:
            hosts = [h.name for h in inventory.get_group(pattern)]
        except NoGroupError:
            hosts = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if not hosts:
            unmatched.append(pattern)
        chosen.update(hosts)
    return [n for n in names if n in chosen], unmatched


def _why(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # pyinfra's own wrappers can fail to print
        text = ""
    cause = e.__cause__ or e.__context__
    if not text and cause is not None:
        return _why(cause)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _result(inventory: str, hosts: dict, errors: list[str], rc: int | None = None) -> dict[str, Any]:
    if errors or any(h["status"] in ("unchecked", "failed") for h in hosts.values()):
        code = EXIT_UNCHECKED
    elif any(h["status"] == "drift" for h in hosts.values()):
        code = EXIT_DRIFT
    else:
        code = EXIT_CLEAN
    return {"inventory": inventory, "errors": errors, "hosts": hosts, "exit_code": code, "pyinfra_exit_code": rc}


def read_host_files(directory: str, problem, value=lambda data: data) -> tuple[dict[str, Any], list[str]]:
    """The JSON files a run left in ``directory``, one per host: {its "host": value(its data)},
    and, for a file that cannot be read, ``problem(file, error)``."""
    found, errors = {}, []
    for f in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(f.read_text())
            found[data["host"]] = value(data)
        except (ValueError, KeyError, TypeError) as e:
            errors.append(problem(f, e))
    return found, errors


def _read_notes(notes_dir: str) -> tuple[dict[str, list], list[str]]:
    return read_host_files(
        notes_dir,
        lambda f, e: f"the drift notes {f.name} could not be read ({e}): that host counts as unchecked",
        lambda data: list(data["notes"]),
    )


def check(inventory: str, limit: list[str]) -> dict[str, Any]:
    """The drift of every host of the inventory (or of --limit), from a dry run. Clean only when
    every selected host was checked and pyinfra succeeded."""
    try:
        names, unmatched = select_hosts(fleet.load(inventory), limit)
    except Exception as e:  # an inventory that does not load: nothing was checked
        return _result(inventory, {}, [f"the inventory could not be loaded: {_why(e)}"])
    errors = [f"--limit {p!r} matches no host or group of the inventory" for p in unmatched]
    if not names:
        errors.append("no host to check: " + ("--limit matches no host" if limit else "the inventory has no hosts"))
    if errors:
        return _result(inventory, {}, errors)
    args = ["--dry"] + [a for name in limit for a in ("--limit", name)]
    with tempfile.TemporaryDirectory(prefix="dockguard-drift-") as notes_dir:
        rc, out, stderr = run_pyinfra(inventory, *args, drift_dir=notes_dir)
        notes, errors = _read_notes(notes_dir)
    plan = out.get("plan") if isinstance(out, dict) else None
    errors += _run_errors(rc, stderr)
    if not isinstance(plan, list):
        errors.append("pyinfra's JSON output could not be read: the planned changes are unknown")
        plan = None
    hosts: dict[str, Any] = {}
    for name in names:
        if name not in notes:
            errors_of = _host_errors(stderr, name) or [
                "the host was not checked (unreachable, or the run stopped before it): see pyinfra's output"
            ]
            hosts[name] = {"status": "unchecked", "errors": errors_of, "drift": []}
        elif plan is None:
            drifted = drift_items(notes[name], [], name)
            unknown = [] if drifted else ["its planned changes are unknown (pyinfra's output)"]
            hosts[name] = {"status": "drift" if drifted else "unchecked", "drift": drifted, "errors": unknown}
        else:
            drifted = drift_items(notes[name], plan, name)
            hosts[name] = {"status": "drift" if drifted else "clean", "errors": [], "drift": drifted}
    return _result(inventory, hosts, errors, rc)


def fix(inventory: str, limit: list[str], before: dict[str, Any]) -> dict[str, Any]:
    """Apply the deploy; report, per host, the operations that changed something."""
    args = ["-y"] + [a for name in limit for a in ("--limit", name)]
    rc, out, stderr = run_pyinfra(inventory, *args)
    results = out.get("results") if isinstance(out, dict) else None
    errors = list(before["errors"])
    errors += _run_errors(rc, stderr)
    if not isinstance(results, dict):
        errors.append("pyinfra's JSON output could not be read: what was corrected is unknown")
        results = None
    failed = set((results or {}).get("failed_hosts", []))
    fixed: dict[str, Any] = {}
    for name, h in before["hosts"].items():
        if h["status"] == "unchecked":
            fixed[name] = {"status": "unchecked", "errors": h["errors"], "corrected": []}
            continue
        changed = [op["name"] for op in (results or {}).get("operations", []) if name in op["success"]]
        # What the check found, for the operations that changed; then any other change.
        corrected = [d for d in h["drift"] if d["operation"] in changed]
        corrected += [
            {"cis": cis_of(op), "operation": op, "reason": "changed"}
            for op in changed
            if op not in {d["operation"] for d in corrected}
        ]
        if name in failed or results is None:
            fixed[name] = {"status": "failed", "errors": _host_errors(stderr, name) or ["see pyinfra's output"],
                           "corrected": corrected}  # fmt: skip
        else:
            fixed[name] = {"status": "corrected" if corrected else "clean", "errors": [], "corrected": corrected}
    result = _result(inventory, fixed, errors, rc)
    if result["exit_code"] == EXIT_DRIFT:  # --fix: a host is in line or the run failed
        result["exit_code"] = EXIT_CLEAN
    return result


def text_report(result: dict[str, Any], fixing: bool) -> str:
    lines = [f"dockguard {'drift fix' if fixing else 'drift check'}: {result['inventory']}"]
    lines += [f"error: {e}" for e in result.get("errors", [])]
    for name, h in sorted(result["hosts"].items()):
        if h["status"] in ("unchecked", "failed"):
            lines.append(f"{name}: {h['status'].upper()}")
            lines += [f"    {e}" for e in h["errors"]]
        if fixing:
            if h["status"] in ("corrected", "clean"):
                lines.append(f"{name}: {h['status']}")
            lines += [
                f"    CIS {c['cis']:<12} corrected: {c['operation']}: {c['reason']}" for c in h.get("corrected", [])
            ]
        elif h["status"] != "unchecked":
            lines.append(f"{name}: {'DRIFT' if h['drift'] else 'clean'}")
            for d in h["drift"]:
                what = f"{d['operation']}: " if d["operation"] else ""
                lines.append(f"    CIS {d['cis']:<12} {what}{d['reason']}")
    lines.append(f"exit {result['exit_code']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the lock


class LockError(Exception):
    """The lock cannot be taken safely (its directory is not private to this user)."""


def state_dir() -> Path:
    """dockguard's state on the operator's machine ($XDG_STATE_HOME/dockguard, 0700): the same for a
    run by hand and for the timer (which runs as the same user), so the two never overlap."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dockguard"


def default_lock() -> str:
    return str(state_dir() / "drift.lock")


def private_dir(path: Path) -> None:
    """Make ``path`` (0700) or check it: a real directory, owned by this user, that nobody else
    can write. Anything else could let another user take the lock first."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise LockError(f"{path} is not a directory (a symlink?): the lock must live in a directory only you can write")
    if st.st_uid != os.geteuid():
        raise LockError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): another user could "
                        "hold the lock")  # fmt: skip
    if st.st_mode & 0o022:
        raise LockError(f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}): another user could "
                        "hold the lock; chmod 700 it")  # fmt: skip


@contextlib.contextmanager
def lock(path: str):
    """One drift run at a time; yields False when another run holds the lock."""
    private_dir(Path(path).parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise LockError(f"{path} belongs to another user")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _check_pki_env(inventory: str) -> str | None:
    """Under the timer, DOCKGUARD_PKI_DIR names the CA the unit was installed for: refuse to run
    against another one (a run as another user would look for, or make, a CA in its own home)."""
    expected = os.environ.get("DOCKGUARD_PKI_DIR")
    if not expected:
        return None
    try:
        dirs = {str(pki.pki_dir(cfg)) for cfg in fleet.host_settings(fleet.load(inventory)).values()}
    except Exception as e:
        return f"the inventory could not be loaded: {_why(e)}"
    wrong = sorted(d for d in dirs if d != expected)
    if wrong:
        return f"the inventory's CA directory is {', '.join(wrong)}, but this run was installed for {expected}"
    return None


def cmd_drift(args) -> int:
    try:
        with lock(args.lock) as held:
            if not held:
                print(f"dockguard: another run is in progress (it holds {args.lock}); exit {EXIT_BUSY}",
                      file=sys.stderr)  # fmt: skip
                return EXIT_BUSY
            wrong_ca = _check_pki_env(args.inventory)
            if wrong_ca:
                result = _result(args.inventory, {}, [wrong_ca])
            else:
                result = check(args.inventory, args.limit)
                if args.fix and result["exit_code"] != EXIT_CLEAN and not result["errors"]:
                    result = fix(args.inventory, args.limit, result)
    except (LockError, OSError) as e:
        result = _result(args.inventory, {}, [f"the lock could not be taken: {e}"])
    numbered(result, args.cis)
    print(json.dumps(result, indent=2) if args.json else text_report(result, args.fix))
    return result["exit_code"]


def numbered(result: dict[str, Any], version: str) -> None:
    """Show every CIS ID of a drift result in ``version``'s numbering (operations carry
    1.6.0's, kept as "cis_1.6.0")."""
    result["cis_numbering"] = controls.BENCHMARK[version]
    for h in result["hosts"].values():
        for item in [*h.get("drift", []), *h.get("corrected", [])]:
            item.setdefault("cis_1.6.0", item["cis"])
            item["cis"] = controls.renumber(item["cis_1.6.0"], version)


def report_exit(pytest_rc: int, junit: Path) -> tuple[int, str]:
    """(exit code, why) of `report`, from the CIS suite's exit code and its JUnit XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as e:
        return EXIT_UNCHECKED, f"the CIS suite left no readable JUnit XML ({e}); pytest exited {pytest_rc}"
    cases = list(root.iter("testcase"))
    errors = [c for c in cases if c.find("error") is not None]
    failures = [c for c in cases if c.find("failure") is not None]
    if not cases:
        return EXIT_UNCHECKED, "the CIS suite ran no test (no host in the inventory?)"
    if errors:
        return EXIT_UNCHECKED, f"{len(errors)} tests could not check their host (unreachable, a fixture failed)"
    if pytest_rc not in (0, 1):
        return EXIT_UNCHECKED, f"the CIS suite stopped (pytest exited {pytest_rc})"
    if failures or pytest_rc == 1:
        return EXIT_DRIFT, f"{len(failures)} CIS tests failed"
    return EXIT_CLEAN, "every CIS test passed or was skipped with a reason"


def cmd_apply(args) -> int:
    """pyinfra -y INVENTORY <the packaged deploy>: what `pyinfra inventory/site.py deploy.py`
    does in a checkout, from anywhere dockguard is installed. pyinfra's exit code."""
    cmd = [PYINFRA, "-y", *[a for name in args.limit for a in ("--limit", name)], *args.pyinfra_args,
           args.inventory, str(DEPLOY_FILE)]  # fmt: skip
    return subprocess.run(cmd, cwd=Path(args.inventory).parent if CHECKOUT is None else ROOT).returncode


def _run_with_progress(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    """Run pytest verbosely, printing one progress line per finished test ("[12/86] PASSED
    test_cis_2_2_... dh1"), so a long report never sits silent; return its output."""
    total = 0
    listing = subprocess.run([*cmd, "--collect-only", "-q"], cwd=cwd, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)  # fmt: skip
    total = sum(1 for line in listing.stdout.splitlines() if "::" in line)
    print(f"{what}: {total} checks", file=sys.stderr, flush=True)
    lines, done = [], 0
    proc = subprocess.Popen([*cmd, "-v", "-p", "no:randomly"], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", line)
        if m:
            done += 1
            test = m.group(1).split("::")[-1]
            print(f"  [{done}/{total}] {m.group(2):7} {test}", file=sys.stderr, flush=True)
    proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def cmd_report(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "cis.xml"
    junit.unlink(missing_ok=True)  # never report on a previous run's results
    r = _run_with_progress(
        [sys.executable, "-m", "pytest", str(CIS_SUITE), "--inventory", args.inventory, "-p", "no:cacheprovider",
         f"--junitxml={junit.resolve()}", f"--cis={args.cis}"],
        ROOT, "dockguard report: the CIS suite",
    )  # fmt: skip
    code, why = report_exit(r.returncode, junit)
    if code != EXIT_UNCHECKED:
        from . import containers, report

        report.main([str(junit), "--cis", args.cis, "--json", str(out / "compliance.json"),
                     "--markdown", str(out / "compliance.md")])  # fmt: skip
        # The containers section: findings about workloads (they do not change the exit code; a
        # host whose containers could not be read does: it was not checked).
        audit = containers.run(args.inventory, [])
        section = containers.markdown(audit)
        print("\n" + section)
        (out / "containers.xml").write_text(containers.junit(audit) + "\n")
        with open(out / "compliance.md", "a") as f:
            f.write("\n" + section + "\n")
        data = json.loads((out / "compliance.json").read_text())
        data["containers"] = {**audit, "exceptions": containers.EXCEPTIONS}
        (out / "compliance.json").write_text(json.dumps(data, indent=2))
        if containers.exit_code(audit) == EXIT_UNCHECKED:
            code, why = EXIT_UNCHECKED, "the containers of a host could not be read (see the containers section)"
        print(f"\nreports: {junit}, {out / 'containers.xml'}, {out / 'compliance.md'}, {out / 'compliance.json'}")
    else:
        print(r.stdout[-3000:] + r.stderr[-3000:], file=sys.stderr)
    print(f"{why}\nexit {code}")
    return code


def cmd_audit_containers(args) -> int:
    from . import containers

    result = containers.run(args.inventory, args.limit)
    code = containers.exit_code(result, args.fail_on)
    if args.junit:
        Path(args.junit).write_text(containers.junit(result) + "\n")
    if args.json:
        print(json.dumps({**result, "exceptions": containers.EXCEPTIONS, "exit_code": code}, indent=2))
    else:
        print(containers.text(result, args.fail_on))
    return code


# --------------------------------------------------------------------------- the schedule


class UnitError(ValueError):
    """A value that cannot be placed in a systemd unit safely."""


def _no_control(value: str, what: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnitError(f"{what} contains a control character (a newline?): {value!r}")
    return value


def unit_word(value: str, what: str = "a value", exec_line: bool = True) -> str:
    """One word of a unit setting that systemd splits into words (ExecStart=, Environment=,
    ReadWritePaths=): in double quotes, with \\ and " escaped and % doubled (specifiers); on an
    ExecStart= line $ is doubled too (systemd expands variables only there)."""
    return systemd.quote_arg(_no_control(value, what), variables=exec_line, always=True)


def unit_text(value: str, what: str = "a value") -> str:
    """Free text (Description=): % doubled, no control characters."""
    return _no_control(value, what).replace("%", "%%")


def unit_path(value: str, what: str) -> str:
    """A single absolute path (WorkingDirectory=): no control characters, no spaces around it."""
    _no_control(value, what)
    if not value.startswith("/") or value != value.strip():
        raise UnitError(f"{what} must be an absolute path without spaces around it: {value!r}")
    return value.replace("%", "%%")


_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def check_calendar(expression: str) -> str:
    """--on-calendar, as systemd itself reads it (systemd-analyze calendar)."""
    _no_control(expression, "--on-calendar")
    if not shutil.which("systemd-analyze"):
        raise UnitError("systemd-analyze is not installed: cannot check --on-calendar")
    r = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True, text=True)
    if r.returncode != 0:
        raise UnitError(f"--on-calendar {expression!r} is not a systemd calendar expression: {r.stderr.strip()}")
    return expression


def operator_user(requested: str | None) -> tuple[str, Path]:
    """(user name, home) the scheduled run runs as: --user, else whoever ran sudo, else the
    invoking user. Root only when asked for by name."""
    name = requested or os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
    if not _USER.match(name):
        raise UnitError(f"--user {name!r} is not a user name")
    try:
        entry = pwd.getpwnam(name)
    except KeyError as e:
        raise UnitError(f"there is no user {name!r} on this machine") from e
    if entry.pw_uid == 0 and requested != name:
        raise UnitError(
            "the scheduled run would run as root, whose home holds no CA of yours: run install-timer with sudo "
            "from your own account, or name the operator with --user (--user root to really run it as root)"
        )
    return name, Path(entry.pw_dir)


def _expand_for(path: str, home: Path) -> Path:
    return home / path[2:] if path.startswith("~/") else (home if path == "~" else Path(path))


def unit_values(inventory: str, user: str, home: Path) -> dict[str, Any]:
    """The absolute paths the units name: the inventory's CA directory as ``user`` sees it, the
    state directory (lock) and the reports directory (the only writable paths)."""
    cfgs = fleet.host_settings(fleet.load(inventory))
    pki_dirs = {cfg["dockguard_pki_dir"] for cfg in cfgs.values()} or {"~/.dockguard/pki"}
    if len(pki_dirs) > 1:
        raise UnitError(f"the inventory's hosts use more than one CA directory: {sorted(pki_dirs)}")
    pki = _expand_for(pki_dirs.pop(), home)
    # Lynis saves its reports here (the only other writable paths), for the hosts that run it.
    reports = {_expand_for(cfg["lynis_reports_dir"], home) for cfg in cfgs.values() if cfg["lynis_enabled"]}
    reports = {p if p.is_absolute() else ROOT / p for p in reports}
    state = home / ".local" / "state" / "dockguard"
    under_home = [p for p in (ROOT, Path(inventory), pki, state, *reports) if str(p).startswith(("/home/", "/root/"))]
    return {
        "pki": pki,
        "state": state,
        "reports": sorted(reports),
        "tls": any(cfg["docker_tcp_listen"] for cfg in cfgs.values()),
        "protect_home": "read-only" if under_home or str(home).startswith(("/home", "/root")) else "yes",
    }


def _under_tmp(*paths) -> list[str]:
    """What the service needs that lives under /tmp or /var/tmp (the project, this Python, the
    inventory, the CA): PrivateTmp= would hide it, so the unit goes without that one setting."""
    needed = [ROOT, Path(sys.executable).resolve(), *[Path(p) for p in paths]]
    return [str(p) for p in needed if str(p).startswith(("/tmp/", "/var/tmp/"))]


def render_units(inventory: str, fix_: bool, on_calendar: str, user: str = "dockguard",
                 home: str = "/home/dockguard", values: dict[str, Any] | None = None) -> dict[str, str]:  # fmt: skip
    import jinja2

    home_path = Path(home)
    v = values or {
        "pki": home_path / ".dockguard/pki",
        "state": home_path / ".local/state/dockguard",
        "reports": [ROOT / "reports/lynis"],
        "protect_home": "read-only",
    }
    if not _USER.match(user):
        raise UnitError(f"--user {user!r} is not a user name")
    lock_path = str(v["state"] / "drift.lock")
    argv = [*COMMAND, "drift", inventory, "--lock", lock_path] + (["--fix"] if fix_ else [])
    # Without PrivateTmp (see _under_tmp) /tmp is read-only under ProtectSystem=strict: temporary
    # files go to a runtime directory of the service's own.
    private_tmp = "no" if _under_tmp(inventory, v["pki"], *v["reports"]) else "yes"
    data = {
        "description": unit_text(f"dockguard drift check of {inventory}", "the inventory path"),
        "calendar_description": unit_text(on_calendar, "--on-calendar"),
        "on_calendar": _no_control(on_calendar, "--on-calendar"),
        "fix": fix_,
        "user": user,
        "working_directory": unit_path(str(ROOT), "the project directory"),
        "exec_start": " ".join(unit_word(a, "the command line") for a in argv),
        "environment": " ".join(
            unit_word(f"{k}={val}", "the environment", exec_line=False)
            for k, val in (
                ("HOME", home),
                ("XDG_STATE_HOME", str(v["state"].parent)),
                ("DOCKGUARD_PKI_DIR", str(v["pki"])),
                ("PYINFRA_PROGRESS", "off"),
                *([("TMPDIR", "/run/dockguard-drift")] if private_tmp == "no" else []),
            )  # fmt: skip
        ),
        "read_write_paths": " ".join(
            unit_word(str(p), "a writable path", exec_line=False) for p in [v["state"], *v["reports"]]
        ),
        "protect_home": v["protect_home"],
        "private_tmp": private_tmp,
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)
    return {
        name: env.get_template(f"etc/systemd/system/{name}.j2").render(**data)
        for name in ("dockguard-drift.service", "dockguard-drift.timer")
    }


def security_score(service_path: Path) -> str | None:
    """systemd-analyze security's overall exposure of the service file (offline), e.g. '1.9 OK'."""
    if not shutil.which("systemd-analyze"):
        return None
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(service_path)],
                       capture_output=True, text=True)  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+ \S+)", re.sub(r"\x1b\[[0-9;]*m", "", r.stdout))
    return m.group(1) if m else None


def verify_units(directory: Path) -> None:
    if not shutil.which("systemd-analyze"):
        return
    paths = [str(directory / n) for n in ("dockguard-drift.timer", "dockguard-drift.service")]
    r = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True)
    problems = [line for line in r.stderr.splitlines() if "dockguard-drift" in line]
    if r.returncode != 0 or problems:
        raise UnitError("systemd-analyze verify refused the units:\n" + (r.stderr.strip() or r.stdout.strip()))


def _writable_by(path: Path, entry) -> bool:
    st = path.stat()
    if st.st_uid == entry.pw_uid:
        return bool(st.st_mode & 0o200)
    groups = {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem} | {entry.pw_gid}
    return bool(st.st_mode & 0o020) if st.st_gid in groups else bool(st.st_mode & 0o002)


def cmd_install_timer(args) -> int:
    try:
        check_calendar(args.on_calendar)
        user, home = operator_user(args.user)
        values = unit_values(args.inventory, user, home)
        units = render_units(args.inventory, args.fix, args.on_calendar, user, str(home), values)
        if values["tls"] and not (pki.ca_dir(values["pki"]) / "ca.pem").exists():
            raise UnitError(
                f"the inventory has TLS hosts but {user} has no CA in {values['pki']}: the scheduled run never makes "
                "one; run a deploy as that user first (or migrate the CA there)"
            )
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in units.items():
                (Path(tmp) / name).write_text(text)
            verify_units(Path(tmp))
            score = security_score(Path(tmp) / "dockguard-drift.service")
    except UnitError as e:
        print(f"dockguard install-timer: {e}", file=sys.stderr)
        return EXIT_UNCHECKED
    entry = pwd.getpwnam(user)
    for d in [values["state"], *values["reports"]]:  # the only writable paths must exist for the sandbox
        if not d.exists():
            made = [p for p in [d, *d.parents] if not p.exists()]  # every directory this creates
            d.mkdir(mode=0o700, parents=True)
            if os.geteuid() == 0:  # made here for the operator (an existing directory is left as it is)
                for p in made:
                    os.chown(p, entry.pw_uid, entry.pw_gid)
        elif not _writable_by(d, entry):
            print(f"dockguard install-timer: warning: {user} cannot write {d}", file=sys.stderr)
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (dest / name).write_text(text)
        print(f"wrote {dest / name}")
    print(f"runs as {user}; CA {values['pki']}; systemd-analyze security: {score or 'not measured'}")
    if args.dest == "/etc/systemd/system" and not args.no_enable:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", "dockguard-drift.timer"], check=True)
        print("enabled dockguard-drift.timer (journalctl -u dockguard-drift.service)")
    return 0


def cron_line(inventory: str, fix_: bool, schedule: str, user: str = "root") -> str:
    if any(ord(c) < 32 for c in schedule) or len(schedule.split()) != 5:
        raise UnitError(f"--schedule must be five cron fields, got {schedule!r}")
    if not _USER.match(user):
        raise UnitError(f"--user {user!r} is not a user name")
    cmd = f"{shlex.join(COMMAND)} drift {shlex.quote(_no_control(inventory, 'the inventory'))}"
    cmd += " --fix" if fix_ else ""
    return f"{schedule} {user} {cmd.replace('%', chr(92) + '%')} </dev/null 2>&1 | logger -t dockguard-drift"


def cmd_cron_line(args) -> int:
    try:
        user, _ = operator_user(args.user)
        print(cron_line(args.inventory, args.fix, args.schedule, user))
    except UnitError as e:
        print(f"dockguard cron-line: {e}", file=sys.stderr)
        return EXIT_UNCHECKED
    return 0


# --------------------------------------------------------------------------- pki


def _pki_from(args) -> Path:
    if getattr(args, "inventory", None):
        cfgs = fleet.host_settings(fleet.load(args.inventory))
        dirs = {str(pki.pki_dir(cfg)) for cfg in cfgs.values()}
        if len(dirs) != 1:
            raise pki.CaError(f"the inventory's hosts use {len(dirs)} CA directories: {sorted(dirs)}")
        return Path(dirs.pop())
    return Path(os.path.expanduser(args.dir))


def cmd_pki(args) -> int:
    try:
        directory = _pki_from(args)
        if args.pki_cmd == "status":
            lines, problems = pki.status(directory)
            print("\n".join(lines + [f"PROBLEM: {p}" for p in problems]))
            return EXIT_UNCHECKED if problems else EXIT_CLEAN
        if args.pki_cmd == "client":
            if not (pki.ca_dir(directory) / "ca.pem").exists():
                raise pki.CaError(pki._missing_half(directory) or f"no CA in {pki.ca_dir(directory)} yet")
            cert = pki.issue_client(directory, args.days)
            print(f"client certificate in {pki.client_dir(directory)} (DOCKER_CERT_PATH), "
                  f"valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")  # fmt: skip
            return 0
        if args.pki_cmd == "migrate":
            print("moved to ca/ and client/" if pki.migrate(directory) else "nothing to move")
            return 0
        cfgs = fleet.host_settings(fleet.load(args.inventory))
        tls_hosts = sorted(name for name, cfg in cfgs.items() if cfg["docker_tcp_listen"])
        return rotate_ca(args.inventory, directory, args.one_stage, args.client_days,
                         deploy=lambda inv: _deploy(inv, tls_hosts))  # fmt: skip
    except pki.CaError as e:
        print(f"dockguard pki: {e}", file=sys.stderr)
        return EXIT_UNCHECKED


def _deploy(inventory: str, hosts: list[str]) -> int:
    """The deploy on the TLS hosts (the only ones a rotation concerns); 0 only when every one succeeded."""
    if not hosts:
        return 0
    env = dict(os.environ)
    fds = _passphrase_fds(env)
    limit = [a for name in hosts for a in ("--limit", name)]
    try:
        return subprocess.run([PYINFRA, "-y", *limit, inventory, str(DEPLOY_FILE)], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, pass_fds=fds).returncode  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)


def rotate_ca(inventory: str, directory: Path, one_stage: bool, client_days: int, deploy) -> int:
    """A new CA in three stages, each deployed to every host before the next; resumes an
    interrupted rotation where it stopped (its stage is kept in PKI/ca/rotation.json)."""
    r = pki.rotation(directory) or pki.rotation_begin(directory)
    while r is not None:
        print(f"rotate-ca: stage {r['stage']} of 3: {pki.STAGES[r['stage']]}")
        if not r["deployed"]:
            rc = deploy(inventory)
            if rc != 0:
                print(f"rotate-ca: stage {r['stage']} did not reach every host (pyinfra exited {rc}); fix that and run "
                      "`dockguard pki rotate-ca` again: it resumes here", file=sys.stderr)  # fmt: skip
                return EXIT_UNCHECKED
            pki.rotation_deployed(directory)
        if one_stage and r["stage"] < 3:
            pki.rotation_advance(directory, client_days)
            print("rotate-ca: stopped after one stage (--one-stage); run it again for the next")
            return 0
        r = pki.rotation_advance(directory, client_days)
    print(f"rotate-ca: done; the CA is now {pki.ca_dir(directory) / 'ca.pem'}")
    return 0


# --------------------------------------------------------------------------- command line


class Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (EX_USAGE): 2 means drift found."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser() -> Parser:
    p = Parser(prog="dockguard", description=__doc__, epilog=exit_table_text(),
               formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drift", help="report (and with --fix correct) drift per host and CIS control",
                       epilog=exit_table_text(), formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    d.add_argument("inventory")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--fix", action="store_true", help="apply the deploy and report what was corrected")
    d.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    d.add_argument("--lock", default=default_lock(), help="lock file (in a directory only you can write)")
    d.add_argument(
        "--cis",
        choices=controls.VERSIONS,
        default=controls.DEFAULT_VERSION,
        help="CIS Docker Benchmark numbering of the IDs shown (default %(default)s)",
    )
    a = sub.add_parser("apply", help="harden the inventory's hosts (pyinfra -y INVENTORY with dockguard's deploy)")
    a.add_argument("inventory")
    a.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    a.epilog = "More pyinfra options go after --, e.g. dockguard apply site.py -- --json"
    r = sub.add_parser("report", help="run the CIS suite; write JUnit XML, Markdown and JSON",
                       epilog=exit_table_text(), formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    r.add_argument("inventory")
    r.add_argument("--out", default=str(ROOT / "reports"))
    r.add_argument(
        "--cis",
        choices=controls.VERSIONS,
        default=controls.DEFAULT_VERSION,
        help="CIS Docker Benchmark numbering of the IDs and test names shown (default %(default)s)",
    )
    ac = sub.add_parser("audit-containers", help="audit every container against CIS sections 4 and 5 (read only)",
                        epilog="exit 0: no finding of --fail-on or worse; 2: findings; 1: a host was not checked",
                        formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    ac.add_argument("inventory")
    ac.add_argument("--limit", action="append", default=[], help="only this host, group or glob (repeatable)")
    ac.add_argument("--json", action="store_true", help="machine-readable output")
    ac.add_argument("--junit", help="also write JUnit XML here")
    ac.add_argument("--fail-on", choices=("high", "medium", "low"), default="low",
                    help="the least severity that counts for the exit code (default %(default)s)")  # fmt: skip
    t = sub.add_parser("install-timer", help="install a systemd service and timer that run the drift check")
    t.add_argument("inventory")
    t.add_argument("--fix", action="store_true")
    t.add_argument("--user", help="the operator the check runs as (default: who ran sudo, or you)")
    t.add_argument("--on-calendar", default="hourly")
    t.add_argument("--dest", default="/etc/systemd/system")
    t.add_argument("--no-enable", action="store_true")
    c = sub.add_parser("cron-line", help="print a cron line (for machines without systemd)")
    c.add_argument("inventory")
    c.add_argument("--fix", action="store_true")
    c.add_argument("--user", help="the operator the check runs as (default: who ran sudo, or you)")
    c.add_argument("--schedule", default="*/30 * * * *")
    k = sub.add_parser("pki", help="the CA on this machine: status, client certificates, rotation")
    ksub = k.add_subparsers(dest="pki_cmd", required=True)
    for name, text in (("status", "CA and client expiry, rotation stage"),
                       ("client", "issue a short-lived client certificate (PKI/client)"),
                       ("migrate", "move a CA of the old flat layout to ca/ and client/")):  # fmt: skip
        x = ksub.add_parser(name, help=text)
        x.add_argument("--dir", default="~/.dockguard/pki", help="the PKI directory (dockguard_pki_dir)")
        x.add_argument("--inventory", help="take the PKI directory from this inventory instead")
        if name == "client":
            x.add_argument("--days", type=int, default=pki.CLIENT_DAYS, help="validity in days (default 30)")
    x = ksub.add_parser("rotate-ca", help="move every TLS host to a new CA, in three deployed stages (resumable)")
    x.add_argument("inventory")
    x.add_argument("--one-stage", action="store_true", help="stop after one stage")
    x.add_argument("--client-days", type=int, default=pki.CLIENT_DAYS)
    from . import pull

    pull.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # `dockguard apply INVENTORY -- PYINFRA OPTIONS`
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    args = p.parse_args(argv)
    if extra and args.cmd != "apply":
        p.error("only `dockguard apply` passes options after -- (to pyinfra)")
    args.pyinfra_args = extra
    if getattr(args, "inventory", None):
        args.inventory = str(Path(args.inventory).resolve())
        if not Path(args.inventory).is_file():
            p.error(f"no such inventory: {args.inventory}")
    if getattr(args, "days", 1) < 1 or getattr(args, "client_days", 1) < 1:
        p.error("--days must be at least 1")
    from . import pull

    return {"apply": cmd_apply, "drift": cmd_drift, "report": cmd_report, "install-timer": cmd_install_timer,
            "cron-line": cmd_cron_line, "pki": cmd_pki, "pull": pull.cmd_pull,
            "audit-containers": cmd_audit_containers}[args.cmd](args)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
