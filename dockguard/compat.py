"""Every use of pyinfra's internals, in one place: a pyinfra upgrade touches this
module only (config.py pins pyinfra >=3.10,<3.11; tests/unit/test_compat.py checks
each internal is still there).

The speed-up. pyinfra orders operations by the line numbers of the deploy code that
called them, read from the call stack at every operation call with ``inspect.stack()``.
That builds the source context of every frame (it reads source files and scans
``sys.modules`` for each frame): about 8 ms of CPU per operation call, most of the
controller's work in a no-op run (160 calls for 10 hosts: 1.3 s). The same line
numbers come straight from the frames, as ``inspect.getframeinfo`` computes them,
without the source context. ``install_speedups()`` replaces
``get_operation_order_from_stack`` where pyinfra 3.10 calls it, only if it is there
with the signature it replaces, and says once when it is not;
tests/unit/test_speedups.py checks the two give the same list for the same stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import re
import sys
import types
import typing

import pyinfra
from pyinfra.api import util as _util

_operation = importlib.import_module("pyinfra.api.operation")
_original = getattr(_util, "get_operation_order_from_stack", None)
_position = getattr(inspect, "_get_code_position", None)  # Python 3.11+


_lines: dict = {}


def _lineno(frame) -> int:
    """The line inspect.getframeinfo(frame) reports (the start of the current instruction).
    Kept per (code, instruction): finding it scans the code's position table from its start,
    and every host's operations are called from the same few hundred places."""
    if _position is not None:
        at = (frame.f_code, frame.f_lasti)
        line = _lines.get(at)
        if line is None:
            line = _lines[at] = _position(frame.f_code, frame.f_lasti)[0] or 0
        if line:
            return line
    return frame.f_lineno


def get_operation_order_from_stack(state, _start=None) -> list[int]:
    frames = []
    frame = _start or sys._getframe(1)  # from the caller, as inspect.stack() in pyinfra's own function
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    i = 0
    state = real_host(state)  # the context proxy's State, looked up once (not once per frame)
    deploy_filename = state.current_deploy_filename
    if deploy_filename:
        for i, f in enumerate(frames):  # noqa: B007 - the index is used after the loop
            if f.f_code.co_filename == deploy_filename:
                break
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    for f in frames[i:]:
        if f.f_code.co_filename.startswith(_util.PYINFRA_INSTALL_DIR):
            continue
        line_numbers.append(_lineno(f))
    return line_numbers


def _speedup_problem() -> str | None:
    """Why the operation-order speed-up cannot be installed on this pyinfra (None: it can)."""
    # Ours already installed (install_early_speedups ran) counts as in place, not as moved.
    if _original is None or getattr(_operation, "get_operation_order_from_stack", None) not in (
        _original,
        get_operation_order_from_stack,
    ):
        return "pyinfra.api.operation no longer calls util.get_operation_order_from_stack"
    try:
        params = list(inspect.signature(_original).parameters)
    except (TypeError, ValueError):
        return "its signature cannot be read"
    if params[:1] != ["state"]:
        return f"its signature changed to {params}"
    return None


# The second speed-up: pyinfra 3.10's all_global_arguments() evaluates the type hints of its
# argument classes (typing.get_type_hints) on every call, and pop_global_arguments calls it for
# every operation of every host (and FactBase for every fact class): about 0.5 ms of CPU each
# time, for a list that never changes. The same list, computed once (a copy each call).
_arguments = importlib.import_module("pyinfra.api.arguments")
_facts = importlib.import_module("pyinfra.api.facts")
_original_args = getattr(_arguments, "all_global_arguments", None)
_args_cache: list = []


def all_global_arguments() -> list:
    if not _args_cache:
        _args_cache.extend(_original_args())
    return list(_args_cache)


def _arguments_problem() -> str | None:
    if _original_args is None or getattr(_facts, "all_global_arguments", None) is not _original_args:
        return "pyinfra.api.arguments.all_global_arguments is not where it was"
    if "all_global_arguments()" not in inspect.getsource(_arguments.pop_global_arguments):
        return "pop_global_arguments no longer calls all_global_arguments"
    return None


ARGUMENTS_PROBLEM = _arguments_problem()


_said = False
# Checked when dockguard is imported: a pyinfra that moved the function is known before any run.
SPEEDUP_PROBLEM = _speedup_problem()


# The third speed-up: pop_global_arguments looks every global argument (_sudo, _env, ...: 33)
# up in host.data for every operation of every host. A key no data layer has, nearly all of
# them, walks all of HostData's layers each time, merging every group's data into a new dict
# on the way: about 10 ms of CPU per host per run, a third of the controller's work per host.
# A host's data becomes a HostData that answers "absent" for such a key at once, when the key
# is in none of the inventory's layers (override, host, groups, global: read once per host,
# as pyinfra's inventory does not change them during a run) nor in the layers that can change
# during a run (host.data.X = ..., and an @deploy's data defaults), which are read each time.
# Any key some layer has is looked up by pyinfra's own code.
_host_module = importlib.import_module("pyinfra.api.host")
_HostData = getattr(_host_module, "HostData", None)


def _data_problem() -> str | None:
    if _HostData is None or not callable(getattr(_HostData, "__getattr__", None)):
        return "pyinfra.api.host.HostData is not what it was"
    if "getattr(host.data, key" not in inspect.getsource(_arguments.pop_global_arguments):
        return "pop_global_arguments no longer reads host.data"
    return None


DATA_PROBLEM = _data_problem()


class _FastHostData(_HostData or object):
    def __getattr__(self, key: str):
        if key in _global_keys():
            static = self.__dict__.get("_dg_static_keys")
            if static is None:
                static = self.__dict__["_dg_static_keys"] = _static_keys(self)
            live = self.host.get_deploy_data()
            if key not in static and key not in self.override_datas and key not in live:
                raise AttributeError(f"Host `{self.host}` has no data `{key}`")
        return _HostData.__getattr__(self, key)


_keys: set[str] = set()
_fast_inventory = None


def _global_keys() -> set[str]:
    if not _keys:
        _keys.update(key for key, _ in all_global_arguments())
    return _keys


def _static_keys(data) -> frozenset:
    """The keys of the inventory's layers of a HostData: (its own overrides, inventory override
    data, host data, groups' data, global data, the deploy's data defaults)."""
    keys: set = set()
    for layer in data.datas[1:-1]:
        keys.update(layer() if callable(layer) else layer)
    return frozenset(keys)


def fast_host_data(h) -> bool:
    """Give host ``h`` the fast HostData (once); False where its data is not the shape it knows."""
    data = getattr(real_host(h), "data", None)
    if DATA_PROBLEM is not None or data is None:
        return False
    if type(data) is _FastHostData:
        return True
    datas = data.__dict__.get("datas")
    shaped = (type(data) is _HostData and isinstance(datas, tuple) and len(datas) == 6
              and datas[0] is data.__dict__.get("override_datas")
              and datas[-1] == getattr(data.__dict__.get("host"), "get_deploy_data", None))  # fmt: skip
    if shaped:
        object.__setattr__(data, "__class__", _FastHostData)  # HostData.__setattr__ sets data
    return shaped


# The fourth speed-up: pop_global_arguments itself, about 0.35 ms of CPU per operation call (a
# third of pyinfra's work per operation of a no-op run): for each of the 33 global arguments it
# goes through the ``host`` and ``state`` context proxies, looks the key up in host.data (an
# AttributeError raised and caught for nearly every key) and type-checks with typeguard every
# value that is not the default (an operation's ``name``, ``_if``). ``pop_global_arguments``
# below is pyinfra 3.10's function step for step, with the same result: the proxies resolved
# once per call, a key in none of a fast HostData's layers found absent without the exception,
# and a type check that passed kept for a str, bool, int, float or None value (typeguard's
# answer for those depends on the value and the type only). It replaces pyinfra's only where
# pyinfra's source is the one it was written from (its digest, below), and says once otherwise.
_POP_SOURCE_SHA256 = "a12a311539ff5068152b1c9c4578d77a8a893239a570f912768050a623069faf"
_original_pop = getattr(_arguments, "pop_global_arguments", None)
_pop_users = [importlib.import_module(f"pyinfra.api.{m}") for m in ("operation", "facts", "deploy")]
_type_ok: set = set()
_SCALARS = (str, bool, int, float, type(None))


def _source_sha256(f) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(f).encode()).hexdigest()
    except (OSError, TypeError):
        return None


def _pop_problem() -> str | None:
    if _original_pop is None or any(getattr(m, "pop_global_arguments", None) is not _original_pop for m in _pop_users):
        return "pyinfra.api.arguments.pop_global_arguments is not where it was"
    if _source_sha256(_original_pop) != _POP_SOURCE_SHA256:
        return "pyinfra's pop_global_arguments is not the one dockguard's copy was written from"
    return None


POP_PROBLEM = _pop_problem()


def pop_global_arguments(state, host, kwargs):
    ctx_config = _arguments.ctx_config
    config = ctx_config.get() if ctx_config.isset() else real_host(state).config
    h = real_host(host)
    meta_kwargs = h.current_deploy_kwargs or {}
    data = h.data
    fast = type(data) is _FastHostData
    if fast:
        static = data.__dict__.get("_dg_static_keys")
        if static is None:
            static = data.__dict__["_dg_static_keys"] = _static_keys(data)
        live, overrides = h.get_deploy_data(), data.override_datas
    sentinel = _arguments.default_sentinel
    arguments: dict = {}
    found_keys: list[str] = []
    for key, type_, meta in _argument_metas():
        default = meta.default(config)
        if fast and key not in static and key not in overrides and key not in live:
            host_default = sentinel
        else:
            host_default = getattr(data, key, sentinel)
        if host_default is not sentinel:
            default = host_default
        if key in kwargs:
            found_keys.append(key)
            value = kwargs.pop(key)
        else:
            value = meta_kwargs.get(key, default)
        if meta.handler:
            value = meta.handler(config, value)
        if value != default:
            checked = _checked_as(key, value)
            if checked is None or checked not in _type_ok:
                _arguments.raise_if_bad_type(value, type_, _arguments.ArgumentTypeError, f"Invalid argument `{key}`:")
                if checked is not None:
                    _type_ok.add(checked)
        arguments[key] = value
    return arguments, found_keys


def _checked_as(key: str, value):
    """What makes typeguard's verdict on ``value`` for ``key`` the same as for an earlier value
    (None: nothing, check it): a scalar's type and value; a plain function's or bound method's
    code, number of defaults and keyword-only defaults (all a callable's check looks at: whether
    it can be called without arguments), and a list's elements so described. An ``_if=`` is a
    new lambda for every host, from the same few places of the deploy code."""
    t = type(value)
    if t in _SCALARS:
        return (key, t, value)
    if t is types.FunctionType or t is types.MethodType:
        f = value.__func__ if t is types.MethodType else value
        if type(f) is not types.FunctionType or "__signature__" in f.__dict__ or "__wrapped__" in f.__dict__:
            return None
        return (key, t, f.__code__, len(f.__defaults__ or ()), tuple(f.__kwdefaults__ or ()))
    if t is list:
        parts = tuple(_checked_as(key, v) for v in value)
        return None if None in parts else (key, list, parts)
    return None


_metas: list = []


def _argument_metas() -> list:
    if not _metas:
        _metas.extend((key, type_, _arguments.all_argument_meta[key]) for key, type_ in all_global_arguments())
    return _metas


# The fifth: with -y, pyinfra checks an operation's arguments with inspect.signature(func).bind
# for every call, building the function's Signature anew each time (0.07 ms). The Signature of
# a function, kept per function: the same object inspect builds, for functions that never change.
_signature = inspect.signature
_signatures: dict = {}


def signature(func):
    sig = _signatures.get(func)
    if sig is None:
        sig = _signatures[func] = _signature(func)
    return sig


SIGNATURE_PROBLEM = None
if getattr(_operation, "signature", None) is not _signature:
    SIGNATURE_PROBLEM = "pyinfra.api.operation no longer uses inspect.signature"


# The sixth: pyinfra hashes each operation's order (a list of line numbers, the same for every
# host) with make_hash, a SHA-1 per element and one of their concatenation: 0.2 ms per operation
# call. The hash of an order of plain ints is kept; anything else goes to pyinfra's make_hash.
_original_make_hash = getattr(_operation, "make_hash", None)
_MAKE_HASH_SOURCE_SHA256 = "185d87fda0b505b859d99a19451cb86982e696798afe80dc723ac59f2bffd8a7"
_hashes: dict = {}


def make_hash(obj):
    if type(obj) is list and all(type(x) is int for x in obj):
        key = tuple(obj)
        found = _hashes.get(key)
        if found is None:
            found = _hashes[key] = _original_make_hash(obj)
        return found
    return _original_make_hash(obj)


MAKE_HASH_PROBLEM = None
if (
    _original_make_hash is not getattr(_util, "make_hash", None)
    or _source_sha256(_original_make_hash) != _MAKE_HASH_SOURCE_SHA256
):
    MAKE_HASH_PROBLEM = "pyinfra's make_hash is not the one dockguard keeps results of"


# paramiko's transport thread (a greenlet under pyinfra) reads its socket with a 0.1 s timeout
# (Transport._active_check_timeout), to look every 0.1 s whether it should stop. Each look is
# a gevent timer, a raised socket.timeout and a loop: 10 a second per connected host, all run
# long, about 0.05 ms of the operator's CPU each (at 100 hosts, 4.7 ms per host of a no-op run).
# The look finds nothing to do: a closed connection ends the read at once (EOF), a closing
# transport closes the socket under it, and pyinfra sets no keepalive (the one timed task a
# look runs). 2 s keeps it, twenty times less often.
TRANSPORT_POLL_S = 2.0


def quiet_transports(hosts) -> int:
    """Make the idle SSH connections of ``hosts`` poll every TRANSPORT_POLL_S; how many."""
    n = 0
    for h in hosts:
        client = getattr(getattr(real_host(h), "connector", None), "client", None)
        get = getattr(client, "get_transport", None)
        transport = get() if callable(get) else None
        sock = getattr(transport, "sock", None)
        active = getattr(transport, "is_active", None)
        if not callable(active) or not active() or not callable(getattr(sock, "gettimeout", None)):
            continue
        timeout = sock.gettimeout()  # None: a blocking socket (someone else's choice), left alone
        if timeout is not None and timeout < TRANSPORT_POLL_S:
            sock.settimeout(TRANSPORT_POLL_S)
            n += 1
    return n


def quiet_logging() -> None:
    """The Python logging HOWTO's own optimisation: pyinfra logs a line per host and operation
    ("No changes"), and each record looks up the current thread, process and caller, which
    nothing of pyinfra's output shows (its formatter prints the message alone)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


# The seventh: pyinfra logs a line per host and operation, each starting with the host's prefix
# ("[dh1] "), which Host.print_prefix styles anew each time (three click.style calls); and
# Host.noop builds its debug line for every no-op even when debug lines are off. The prefix
# is kept per host name, padding, nesting and styling function; noop builds its line only
# when it is shown.
_Host = importlib.import_module("pyinfra.api.host").Host
_output = importlib.import_module("pyinfra.api.output")
_original_prefix = getattr(getattr(_Host, "print_prefix", None), "fget", None)
_original_noop = getattr(_Host, "noop", None)
_PREFIX_SOURCE_SHA256 = "8c9c91bebdedff5d763f15a80163a5652c116c29e1012fd283f608aed63c6230"
_NOOP_SOURCE_SHA256 = "3b96a62492f798b994c6b91f2009142da144e53fc21547c96db5851d0de49400"
_prefixes: dict = {}


def _print_prefix(self) -> str:
    key = (self.name, self.print_prefix_padding, bool(self.nested_executing_op_hash), _output._format_text)
    found = _prefixes.get(key)
    if found is None:
        found = _prefixes[key] = _original_prefix(self)
    return found


def _noop(self, description: str) -> None:
    if self.state.print_noop_info or pyinfra.logger.isEnabledFor(logging.DEBUG):
        _original_noop(self, description)


PREFIX_PROBLEM = None
if (
    _source_sha256(_original_prefix) != _PREFIX_SOURCE_SHA256
    or _source_sha256(_original_noop) != _NOOP_SOURCE_SHA256
    or not callable(getattr(_output, "_format_text", None))
):
    PREFIX_PROBLEM = "pyinfra's Host.print_prefix or Host.noop is not the one dockguard's copy was written from"


# The eighth: pyinfra reads each host's connector data by evaluating the type hints of the
# connector's data class (typing.get_type_hints) for every host it connects to: 0.3 ms each.
# The hints of a class, kept per class (a copy each call, as typing gives a new dict).
_connector_base = importlib.import_module("pyinfra.connectors.base")
_hints: dict = {}


def _connector_type_hints(cls, *args, **kwargs):
    if args or kwargs or not isinstance(cls, type):
        return typing.get_type_hints(cls, *args, **kwargs)
    found = _hints.get(cls)
    if found is None:
        found = _hints[cls] = typing.get_type_hints(cls)
    return dict(found)


CONNECTOR_HINTS_PROBLEM = None
if getattr(_connector_base, "get_type_hints", None) is not typing.get_type_hints:
    CONNECTOR_HINTS_PROBLEM = "pyinfra.connectors.base no longer uses typing.get_type_hints"


def install_early_speedups() -> list[str]:
    """The speed-ups that must be in place before pyinfra connects (config.py runs this: pyinfra
    reads it before the inventory). What it changed, for tests.

    - paramiko's transports poll every TRANSPORT_POLL_S from their start (quiet_transports
      does it at the deploy for a run that did not read config.py);
    - paramiko compares each packet's MAC with the standard library's constant-time C
      comparison, ``hmac.compare_digest``, instead of its own Python loop over the bytes
      (same answer, constant time as well: 0.16 instead of 10 microseconds per 32-byte MAC);
    - quiet_logging()."""
    done = []
    if ARGUMENTS_PROBLEM is None:  # the fact classes imported from here on are made faster too
        _arguments.all_global_arguments = _facts.all_global_arguments = all_global_arguments
        done.append("global arguments")
    if CONNECTOR_HINTS_PROBLEM is None:
        _connector_base.get_type_hints = _connector_type_hints
        done.append("connector hints")
    try:
        import paramiko
        from paramiko import util as paramiko_util
    except ImportError:  # not the SSH connector's dependency any more: nothing to speed up
        return done
    transport = getattr(paramiko, "Transport", None)
    poll = getattr(transport, "_active_check_timeout", None)
    if isinstance(poll, (int, float)) and poll < TRANSPORT_POLL_S:
        transport._active_check_timeout = TRANSPORT_POLL_S
        done.append("transport poll")
    if callable(getattr(paramiko_util, "constant_time_bytes_eq", None)):
        paramiko_util.constant_time_bytes_eq = hmac.compare_digest
        done.append("mac compare")
    quiet_logging()
    done.append("logging")
    return done


def install_speedups(hosts=()) -> bool:
    """Give pyinfra the faster operation order (the same order), and ``hosts`` (the inventory)
    the fast HostData; say once, on stderr, when this pyinfra does not have the function it
    replaces, and run at pyinfra's speed."""
    global _said, _fast_inventory
    inventory = real_host(hosts)
    if inventory is not _fast_inventory:  # every host of it at once (the preflight reads them all)
        for h in inventory:
            fast_host_data(h)
        quiet_transports(inventory)
        quiet_logging()
        _fast_inventory = inventory
    if getattr(_operation, "get_operation_order_from_stack", None) is get_operation_order_from_stack:
        return True  # installed by an earlier host's deploy
    if ARGUMENTS_PROBLEM is None:
        _arguments.all_global_arguments = _facts.all_global_arguments = all_global_arguments
    if POP_PROBLEM is None and ARGUMENTS_PROBLEM is None and DATA_PROBLEM is None:
        for m in _pop_users:
            m.pop_global_arguments = pop_global_arguments
    if SIGNATURE_PROBLEM is None:
        _operation.signature = signature
    if MAKE_HASH_PROBLEM is None:
        _operation.make_hash = make_hash
    if PREFIX_PROBLEM is None:
        _Host.print_prefix = property(_print_prefix)
        _Host.noop = _noop
    problems = [p for p in (POP_PROBLEM, SIGNATURE_PROBLEM, MAKE_HASH_PROBLEM, PREFIX_PROBLEM) if p]
    if SPEEDUP_PROBLEM is None:
        _operation.get_operation_order_from_stack = get_operation_order_from_stack
    else:
        problems.insert(0, SPEEDUP_PROBLEM)
    if problems and not _said:
        _said = True
        print(f"dockguard: a speed-up is off ({'; '.join(problems)}): runs are correct, only slower",
              file=sys.stderr)  # fmt: skip
    return SPEEDUP_PROBLEM is None


# --------------------------------------------------------------------------- the other internals
# Every other use of something pyinfra does not document as API, in one place.


def real_host(h):
    """pyinfra's ``host`` is a context proxy; the Host object it stands for."""
    get = getattr(h, "_get_module", None)
    return get() if get is not None else h


@contextlib.contextmanager
def on_host(h):
    """Facts and operations of ``h`` outside pyinfra's own per-host loop (the preflight)."""
    from pyinfra.context import ctx_host

    with ctx_host.use(real_host(h)):
        yield


@contextlib.contextmanager
def at_position(h, n: int):
    """Operations of ``h`` called inside get ``n`` added to their order, as pyinfra's
    ``host.loop`` adds an item's index: an operation called from one line for several items
    is then told apart by ``n`` (a stable number for the item), not by how many calls from
    that line came before it on this host (which differs between hosts that skip some)."""
    h = real_host(h)
    h.loop_position.append(n)
    try:
        yield
    finally:
        h.loop_position.pop()


def fail_host(h) -> bool:
    """Fail ``h`` alone, as pyinfra does for a failed fact. False (and nothing failed): it
    is the last active host, where pyinfra would stop with a bare "No hosts remaining!"."""
    from pyinfra import state

    h = real_host(h)
    if state.active_hosts <= {h}:
        return False
    state.fail_hosts({h})
    return True


def is_failed(h) -> bool:
    from pyinfra import state

    return real_host(h) in state.failed_hosts


def host_changes(h) -> int:
    """How many operations of host ``h`` have executed commands in this run so far (0 before
    the run executes anything, or outside a run). A fact read before that number moved still
    describes the host (see operations.Context.fact)."""
    from pyinfra import state

    ops = getattr(state, "ops", None)
    if not isinstance(ops, dict):
        return 0
    datas = ops.get(real_host(h)) or {}
    return sum(1 for d in datas.values() if getattr(getattr(d, "operation_meta", None), "executed", False))


def connector_arguments() -> dict:
    """The connector arguments (``_sudo`` and the like, from the inventory) of the current
    operation: a FunctionCommand's own host calls do not get them otherwise."""
    from pyinfra import host
    from pyinfra.api.arguments import ConnectorArguments

    keys = set(getattr(ConnectorArguments, "__annotations__", {}))
    return {k: v for k, v in (getattr(host, "current_op_global_arguments", None) or {}).items() if k in keys}


def load_inventory(path: str | os.PathLike, cwd: str | os.PathLike):
    """The pyinfra Inventory of an inventory file, with its group_data applied, outside a run."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    with ctx_state.use(State()):
        return make_inventory(str(path), cwd=str(cwd))


def host_errors(stderr: str, name: str) -> list[str]:
    """What pyinfra said went wrong with one host (connection, sudo, a fact, a refusal): pyinfra
    has no API for it, only its log lines on stderr, prefixed ``[HOST]``."""
    out = []
    for line in stderr.splitlines():
        text = line.strip()
        if text.startswith(f"[{name}]") and re.search(r"error|could not|failed|password|refused|timed out", text, re.I):
            out.append(re.sub(r"\x1b\[[0-9;]*m", "", text[len(name) + 2 :].strip()))
    if re.search(r"invalid dockguard settings|dockguard refuses to run", stderr):
        block = stderr[stderr.index("pyinfra error") :] if "pyinfra error" in stderr else stderr
        out += [line.strip() for line in block.splitlines() if line.strip().startswith(f"{name}:")]
    return out
