"""dockguard control areas. Each module holds its facts beside its operations."""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, operation

from dockguard import ROOT, TEMPLATES  # noqa: F401 - for the areas


def warn(message: str) -> None:
    """A line for the operator, shown at any verbosity, prefixed with the current host."""
    from pyinfra import host, logger

    logger.warning(f"{host.print_prefix}{message}")


def say(message: str) -> None:
    """An informational line for the operator, prefixed with the current host."""
    from pyinfra import host, logger

    logger.info(f"{host.print_prefix}{message}")


class NotNeeded:
    """What an operation call gives instead of the operation where the host does not need it:
    decided at prepare time from what this run read of the host, exactly as the operation's
    body (or its ``_if``) would decide when it executes. Nothing is registered with pyinfra,
    so a host in line costs no operation there (pyinfra's work per operation and host is most
    of the operator's CPU in a run that changes nothing), and none is listed as "No changes".
    It changed nothing."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def did_change(self) -> bool:
        return False

    def did_not_change(self) -> bool:
        return True

    def did_succeed(self) -> bool:
        return True

    def did_error(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NotNeeded({self.name!r})"


def when(needed: bool, op, **kwargs):
    """``op(**kwargs)`` where ``needed``; else NotNeeded (the operation would do nothing)."""
    return op(**kwargs) if needed else NotNeeded(kwargs.get("name"))


def registered(op) -> bool:
    """Whether ``op`` is an operation of this run (not NotNeeded): it may change the host."""
    return not isinstance(op, NotNeeded)


@operation()
def failed(why: str):
    """Fail the current host at this place in the run, saying why (the areas before it have
    run; the other hosts go on)."""
    yield StringCommand(f"echo {shlex.quote('dockguard: ' + why)} >&2; exit 1")


class Context:
    """Everything dockguard knows about one host in one run, in one place: its settings,
    the facts read for every area (``fact``), what an area keeps for a later one
    (``scratch``), the operations that changed something so far (``changed``), and its
    drift notes. ``refresh`` forgets the facts and scratch (Docker was installed in this
    run: read it again); the notes and settings stay.

    A fact is read once and kept while it still describes the host: until an operation of
    this host executes a command (compat.host_changes). The preflight reads every fact a
    run needs in one command per host (operations/prefetch.py) and hands them in with
    ``remember``; an operation that reads one while it executes gets that reading when
    nothing ran on the host before it, and a fresh one otherwise."""

    _hosts: dict[str, Context] = {}

    def __init__(self, name: str, cfg: dict) -> None:
        self.name = name
        self.cfg = cfg
        self.facts: dict[str, object] = {}
        self.read_at: dict[str, int] = {}  # key: compat.host_changes when the fact was read
        self.scratch: dict[str, dict] = {}
        self.changed: list = []
        self.notes: list[dict[str, str | None]] = []

    @classmethod
    def of(cls, h=None) -> Context:
        """The context of host ``h`` (by default the current host), made with that host's
        resolved settings on first use."""
        if h is None:
            from pyinfra import host as h
        name = h.name
        if name not in cls._hosts:
            from dockguard import settings

            data = h.data.dict() if hasattr(h.data, "dict") else dict(h.data or {})
            cls._hosts[name] = cls(name, settings.resolve(data))
        return cls._hosts[name]

    def fact(self, key: str, fact_cls, **kwargs):
        """Fact ``fact_cls(**kwargs)`` of the current host, under ``key``: the reading kept
        (the preflight's, or an earlier one) while nothing has run on the host since; else
        read now, and kept."""
        from pyinfra import host

        from dockguard import compat

        now = compat.host_changes(host)
        if key not in self.facts or self.read_at.get(key, 0) != now:
            self.facts[key] = host.get_fact(fact_cls, **kwargs)
            self.read_at[key] = now
        return self.facts[key]

    def read(self, request: tuple):
        """``fact`` of a prefetch request ``(key, fact class, kwargs)``: the same tuple an area
        names in its ``reads`` (operations/prefetch.py), so the two cannot drift apart."""
        key, fact_cls, kwargs = request
        return self.fact(key, fact_cls, **kwargs)

    def kept(self, key: str):
        """The reading kept under ``key`` while it still describes the host, else None."""
        from pyinfra import host

        from dockguard import compat

        if key in self.facts and self.read_at.get(key, 0) == compat.host_changes(host):
            return self.facts[key]
        return None

    def remember(self, key: str, value) -> None:
        """Hand in a reading made before this host's run executed anything (the preflight)."""
        self.facts[key] = value
        self.read_at[key] = 0

    def area(self, name: str) -> dict:
        """An area's own per-host scratch space."""
        return self.scratch.setdefault(name, {})

    def enabled(self, area: str) -> bool:
        return area not in self.cfg.get("dockguard_disabled_areas", ())

    def refresh(self) -> None:
        self.facts.clear()
        self.read_at.clear()
        self.scratch.clear()


def drift(cis: str, reason: str, operation: str | None = None) -> None:
    """Record that control ``cis`` is out of line on the current host, and why
    (``operation``: the name of the operation that will correct it, if known).
    `dockguard drift` runs the deploy in dry-run mode with DOCKGUARD_DRIFT_DIR set and
    reads one file per host that was fully checked (see ``checked``)."""
    notes = Context.of().notes
    note = {"cis": cis, "reason": reason, "operation": operation}
    if note not in notes:  # an operation body may be evaluated more than once
        notes.append(note)


def checked() -> None:
    """Last step of the deploy: this host was fully checked; write its drift notes."""
    import json
    import os

    from pyinfra import host

    directory = os.environ.get("DOCKGUARD_DRIFT_DIR")
    if directory:
        with open(os.path.join(directory, f"{host.name}.json"), "w") as f:
            json.dump({"host": host.name, "notes": Context.of().notes}, f)


class PerHost:
    """One fact of the current host's Context (see Context.fact): ``get`` reads it on first
    use, ``set`` hands in the preflight's reading."""

    def __init__(self, fact) -> None:
        self.fact = fact
        self.key = f"{fact.__module__}.{fact.__name__}"

    def set(self, h, value: dict) -> None:
        """Hand in host ``h``'s reading (the preflight reads every host before any is prepared)."""
        Context.of(h).remember(self.key, value)

    def get(self) -> dict:
        return Context.of().fact(self.key, self.fact)

    def request(self) -> tuple:
        """This fact as a prefetch request (operations/prefetch.py)."""
        return (self.key, self.fact, {})
