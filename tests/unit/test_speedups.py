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
