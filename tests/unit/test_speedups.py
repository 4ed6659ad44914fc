"""dockguard/compat.py gives pyinfra the same operation order as pyinfra's own code."""

from types import SimpleNamespace

from dockguard import compat as speedups


def _nested(state, depth, out):
    if depth:
        return _nested(state, depth - 1, out)
    # Both called from this very frame and line, as pyinfra's operation wrapper calls its function.
    out += [speedups._original(state), speedups.get_operation_order_from_stack(state)]
    return out


def _multi_line_call(state, out):
    return _nested(
        state,
        2,
        out,
    )


def test_same_line_numbers_as_pyinfra(monkeypatch):
    for is_cli in (False, True):
        monkeypatch.setattr(speedups.pyinfra, "is_cli", is_cli)
        for deploy_file in (None, __file__):
            state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
            original, fast = _multi_line_call(state, [])
            assert fast == original
            assert len(fast) > 3


def test_installed_where_pyinfra_calls_it():
    speedups.install_speedups()
    assert speedups._operation.get_operation_order_from_stack is speedups.get_operation_order_from_stack


def test_global_arguments_are_pyinfras_own_list_read_once():
    assert speedups.ARGUMENTS_PROBLEM is None
    first = speedups.all_global_arguments()
    assert first == speedups._original_args()
    first.append(("x", int))  # a caller's copy: the kept list is not changed
    assert speedups.all_global_arguments() == speedups._original_args()
    speedups.install_speedups()
    import pyinfra.api.arguments as arguments
    import pyinfra.api.facts as facts

    assert arguments.all_global_arguments is speedups.all_global_arguments
    assert facts.all_global_arguments is speedups.all_global_arguments


def test_host_data_answers_as_pyinfras_own(monkeypatch):
    """The fast HostData gives every global argument the value (or absence) pyinfra's own
    lookup gives: from group data, host data, --data overrides, a value set during the
    deploy, and an @deploy's data defaults."""
    from pyinfra.api import Config, Inventory, State

    inventory = Inventory(
        (["h1", ("h2", {"_sudo_user": "ops", "docker_icc": False})], {"_shell_executable": "bash"}),
        override_data={"_timeout": 30},
        web=(["h1"], {"_sudo": True, "_env": {"A": "1"}}),
    )
    State(inventory, Config())
    assert speedups.DATA_PROBLEM is None
    sentinel = object()
    keys = [key for key, _ in speedups.all_global_arguments()] + ["docker_icc", "not_there"]

    def answers():
        return {h.name: {k: getattr(h.data, k, sentinel) for k in keys} for h in inventory}

    before = answers()
    speedups.install_speedups(inventory)
    assert all(type(h.data) is speedups._FastHostData for h in inventory)
    assert answers() == before
    assert before["h1"]["_sudo"] is True and before["h2"]["_sudo_user"] == "ops"
    assert before["h1"]["_timeout"] == 30 and before["h1"]["_shell_executable"] == "bash"
    assert before["h1"]["_sudo_password"] is sentinel  # in no layer
    h1 = inventory.get_host("h1")
    h1.data._sudo_password = "x"  # set during the deploy: found
    assert h1.data._sudo_password == "x"
    monkeypatch.setattr(h1, "current_deploy_data", {"_su_user": "deployer"})  # an @deploy's defaults
    assert h1.data._su_user == "deployer"


def _state_with_hosts():
    from pyinfra.api import Config, Inventory, State

    inventory = Inventory(
        (["h1", ("h2", {"_sudo_user": "ops", "_env": {"B": "2"}})], {"_shell_executable": "bash"}),
        override_data={"_timeout": 30},
        web=(["h1"], {"_sudo": True, "_env": {"A": "1"}}),
    )
    return inventory, State(inventory, Config(SUDO_PASSWORD="pw"))


def _pop(fn, state, h, kwargs):
    from pyinfra.context import ctx_host, ctx_state

    kwargs = dict(kwargs)
    with ctx_state.use(state), ctx_host.use(h):
        try:
            arguments, found = fn(state, h, kwargs)
        except Exception as e:  # noqa: BLE001 - the two must fail alike
            return ("raised", type(e), str(e))
    return arguments, found, kwargs


def test_pop_global_arguments_gives_what_pyinfras_own_gives(monkeypatch):
    """The fast pop_global_arguments returns pyinfra's own arguments, found keys and leftover
    keyword arguments for every host and call: defaults from the config, host and group data,
    --data overrides, a value set during the deploy, an @deploy's kwargs and data, an
    operation's own arguments, and a bad type refused with pyinfra's own error."""
    assert speedups.POP_PROBLEM is None and speedups.SIGNATURE_PROBLEM is None
    inventory, state = _state_with_hosts()
    speedups.install_speedups(inventory)
    operation = speedups._operation
    assert operation.pop_global_arguments is speedups.pop_global_arguments
    calls = [
        {},
        {"name": "CIS 2.1: x", "path": "/etc/x"},
        {"name": "y", "_sudo": False, "_env": {"C": "3"}, "_if": lambda: True, "_ignore_errors": True},
        {"_timeout": 5, "_retries": 2, "_success_exit_codes": [0, 1]},
        {"_sudo": "yes"},  # not a bool: pyinfra refuses it
        {"_retries": "many"},
        # _if: a callable without arguments (its verdict kept per code object), or a list of them;
        # a callable that needs an argument is refused, also after one from other code passed.
        {"_if": lambda: False},
        {"_if": lambda x: x},
        {"_if": [lambda: True, lambda: False]},
        {"_if": [lambda: True, lambda x: x]},
        {"_if": lambda x=1: x},
        {"_if": "not callable"},
    ]
    h1 = inventory.get_host("h1")
    for step in range(3):
        if step == 1:
            h1.data._sudo_password = "set during the deploy"
        if step == 2:
            monkeypatch.setattr(h1, "current_deploy_kwargs", {"_sudo_user": "deployer", "_chdir": "/tmp"})
            monkeypatch.setattr(h1, "current_deploy_data", {"_su_user": "su-er"})
        for h in inventory:
            for kwargs in calls:
                for _ in range(2):  # the second time from the kept type checks
                    mine = _pop(speedups.pop_global_arguments, state, h, kwargs)
                    theirs = _pop(speedups._original_pop, state, h, kwargs)
                    assert mine == theirs, (h.name, kwargs, step)
    assert _pop(speedups.pop_global_arguments, state, h1, {"_sudo": "yes"})[0] == "raised"
    assert _pop(speedups.pop_global_arguments, state, h1, {})[0]["_su_user"] == "su-er"


def test_signature_is_inspects_own_kept_per_function():
    import inspect

    operation = speedups._operation

    def op(a, b=1, *, c):
        pass

    speedups.install_speedups()
    assert operation.signature is speedups.signature
    assert speedups.signature(op) == inspect.signature(op)
    assert speedups.signature(op) is speedups.signature(op)


def test_make_hash_kept_per_order_is_pyinfras_own():
    assert speedups.MAKE_HASH_PROBLEM is None
    for obj in ([1, 2, 3], [7], [], [1, True], [True], ["a", 1], [[1, 2], 3], [1.0]):
        assert speedups.make_hash(list(obj)) == speedups._original_make_hash(list(obj))
        assert speedups.make_hash(list(obj)) == speedups._original_make_hash(list(obj))  # kept
    assert speedups.make_hash([1]) != speedups.make_hash([True])  # pyinfra: a bool is a constant


def test_print_prefix_and_noop_as_pyinfras_own(caplog):
    import logging

    from pyinfra.api import Config, Inventory, State

    assert speedups.PREFIX_PROBLEM is None
    inventory = Inventory((["h1", "a-much-longer-host-name"], {}))
    State(inventory, Config())
    for h in inventory:
        for nested in (None, "op-hash"):
            h.nested_executing_op_hash = nested
            assert speedups._print_prefix(h) == speedups._original_prefix(h)
            assert speedups._print_prefix(h) == speedups._original_prefix(h)  # kept
        h.nested_executing_op_hash = None
    styled = speedups._output._format_text
    try:
        speedups._output._format_text = lambda text, *a, **k: f"<{text}>"  # another styling: not the kept one
        h1 = inventory.get_host("h1")
        assert speedups._print_prefix(h1) == speedups._original_prefix(h1) and "<h1>" in speedups._print_prefix(h1)
    finally:
        speedups._output._format_text = styled
    h1 = inventory.get_host("h1")
    logger = logging.getLogger("pyinfra")
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        speedups._noop(h1, "nothing to do")
        assert "nothing to do" not in caplog.text  # pyinfra logs it at debug: not shown, not built
        h1.state.print_noop_info = True
        speedups._noop(h1, "shown with -v")
        assert "noop: shown with -v" in caplog.text
        h1.state.print_noop_info = False
    with caplog.at_level(logging.DEBUG, logger="pyinfra"):
        assert logger.isEnabledFor(logging.DEBUG)
        speedups._noop(h1, "shown at debug")
        assert "noop: shown at debug" in caplog.text


def test_connector_type_hints_kept_per_class():
    import typing

    from pyinfra.connectors.ssh import ConnectorData

    speedups.install_early_speedups()
    assert speedups._connector_base.get_type_hints is speedups._connector_type_hints
    hints = speedups._connector_type_hints(ConnectorData)
    assert hints == typing.get_type_hints(ConnectorData)
    hints.clear()  # a caller's copy
    assert speedups._connector_type_hints(ConnectorData) == typing.get_type_hints(ConnectorData)


class _Transport:
    def __init__(self, sock, active=True):
        self.sock, self._active = sock, active

    def is_active(self):
        return self._active


def _ssh_host(transport):
    from types import SimpleNamespace

    return SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))


def test_idle_transports_poll_less_often_and_nothing_else_is_touched():
    import socket

    polling, blocking = socket.socketpair()
    closed, spare = socket.socketpair()
    try:
        polling.settimeout(0.1)  # paramiko's own
        hosts = [
            _ssh_host(_Transport(polling)),
            _ssh_host(_Transport(blocking)),  # a blocking socket: someone else's choice
            _ssh_host(_Transport(closed, active=False)),
            _ssh_host(None),  # not connected
            object(),  # another connector
        ]
        closed.settimeout(0.1)
        assert speedups.quiet_transports(hosts) == 1
        assert polling.gettimeout() == speedups.TRANSPORT_POLL_S
        assert blocking.gettimeout() is None and closed.gettimeout() == 0.1
    finally:
        for s in (polling, blocking, closed, spare):
            s.close()


def test_early_speedups_from_config_py():
    """config.py (read by pyinfra before it connects) installs them; each keeps paramiko's and
    logging's answers: the MAC comparison gives the same verdicts."""
    import hmac
    import logging
    from pathlib import Path

    import paramiko
    from paramiko import util

    from dockguard import ROOT

    exec(compile(Path(ROOT, "config.py").read_text(), "config.py", "exec"), {"__file__": "config.py"})
    assert paramiko.Transport._active_check_timeout == speedups.TRANSPORT_POLL_S
    assert util.constant_time_bytes_eq is hmac.compare_digest
    assert not logging.logThreads and not logging.logProcesses
    pairs = [(b"", b""), (b"abc", b"abc"), (b"abc", b"abd"), (b"abc", b"ab"), (bytes(32), bytes(32))]
    for a, b in pairs:
        assert util.constant_time_bytes_eq(a, b) == (len(a) == len(b) and a == b)
    assert speedups.install_early_speedups()  # again: harmless


def _orders(calls):
    return [f(state) for f, state in calls]  # each from this very line, as pyinfra's wrapper calls it


def test_same_order_through_the_state_proxy(monkeypatch):
    from pyinfra.context import ctx_state

    monkeypatch.setattr(speedups.pyinfra, "is_cli", True)
    from types import SimpleNamespace

    real = SimpleNamespace(current_deploy_filename=__file__, current_op_file_number=3)
    with ctx_state.use(real):
        from pyinfra import state

        calls = [(speedups.get_operation_order_from_stack, state), (speedups.get_operation_order_from_stack, real)]
        proxy, direct, theirs = _orders([*calls, (speedups._original, real)])
    assert proxy == direct == theirs and proxy[0] == 3
