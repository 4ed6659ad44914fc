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
