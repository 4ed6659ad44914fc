"""dockguard control areas. Each module holds its facts beside its operations."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def warn(message: str) -> None:
    """A line for the operator, shown at any verbosity, prefixed with the current host."""
    from pyinfra import host, logger

    logger.warning(f"{host.print_prefix}{message}")


def say(message: str) -> None:
    """An informational line for the operator, prefixed with the current host."""
    from pyinfra import host, logger

    logger.info(f"{host.print_prefix}{message}")


# Drift notes: what a control found out of line on this host, and why, recorded while
# operations are prepared. `dockguard drift` runs the deploy in dry-run mode with
# DOCKGUARD_DRIFT_DIR set and reads one file per host that was fully checked.
_drift: dict[str, list[dict[str, str]]] = {}


def drift(cis: str, reason: str, operation: str | None = None) -> None:
    """Record that control ``cis`` is out of line on the current host, and why
    (``operation``: the name of the operation that will correct it, if known)."""
    from pyinfra import host

    notes = _drift.setdefault(host.name, [])
    note = {"cis": cis, "reason": reason, "operation": operation}
    if note not in notes:  # an operation body may be evaluated more than once
        notes.append(note)


def checked() -> None:
    """Last line of deploy.py: this host was fully checked; write its drift notes."""
    import json
    import os

    from pyinfra import host

    directory = os.environ.get("DOCKGUARD_DRIFT_DIR")
    if directory:
        with open(os.path.join(directory, f"{host.name}.json"), "w") as f:
            json.dump({"host": host.name, "notes": _drift.get(host.name, [])}, f)


class PerHost:
    """A fact read once per host and run, on first use (or handed in by the preflight),
    then kept for every area of that host; ``forget`` makes the next use read it again
    (Docker was installed in this run)."""

    def __init__(self, fact) -> None:
        self.fact = fact
        self.values: dict[str, dict] = {}

    def set(self, name: str, value: dict) -> None:
        self.values[name] = value

    def get(self) -> dict:
        from pyinfra import host

        if host.name not in self.values:
            self.values[host.name] = host.get_fact(self.fact)
        return self.values[host.name]

    def forget(self) -> None:
        from pyinfra import host

        self.values.pop(host.name, None)
