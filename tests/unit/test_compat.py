"""Every pyinfra internal dockguard uses is still there, as compat.py expects it: a pyinfra
upgrade that moves one fails here, not in a run."""

import importlib
import inspect

from dockguard import compat


def test_the_speedup_applies_to_this_pyinfra():
    assert compat._speedup_problem() is None and compat.SPEEDUP_PROBLEM is None


def test_the_speedup_still_applies_once_installed():
    # Any test that ran a deploy has installed it already; the check must not then call it moved.
    operation = importlib.import_module("pyinfra.api.operation")
    compat.install_speedups()
    assert operation.get_operation_order_from_stack is compat.get_operation_order_from_stack
    assert compat._speedup_problem() is None


def test_internals_are_present():
    operation = importlib.import_module("pyinfra.api.operation")
    assert hasattr(operation, "get_operation_order_from_stack")
    from pyinfra.api.arguments import ConnectorArguments
    from pyinfra.api.state import State
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_cli.inventory import make_inventory

    assert "_sudo" in ConnectorArguments.__annotations__
    assert callable(make_inventory) and hasattr(ctx_host, "use") and hasattr(ctx_state, "use")
    from pyinfra.api.host import Host

    assert "self.loop_position" in inspect.getsource(Host)  # compat.at_position adds to it
    source = inspect.getsource(State)
    assert callable(State.fail_hosts)
    assert "self.active_hosts" in source and "self.failed_hosts" in source


def test_real_host_unwraps_the_context_proxy():
    from pyinfra import host
    from pyinfra.context import ctx_host

    marker = object()
    with ctx_host.use(marker):
        assert compat.real_host(host) is marker
    assert compat.real_host(marker) is marker


def test_host_errors_come_from_its_log_lines():
    stderr = "    [dh1] Connected\n    [dh2] Error: could not connect\n    [dh1] dockguard: this host is refused, x\n"
    assert compat.host_errors(stderr, "dh2") == ["Error: could not connect"]
    assert compat.host_errors(stderr, "dh1") == ["dockguard: this host is refused, x"]
