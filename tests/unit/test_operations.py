"""Operation fixtures (pyinfra-testing): facts in, commands out.
One directory per operation under operations/, named <module>.<operation>."""

from pathlib import Path

from pyinfra_testing.operations import make_operation_tests

BASE = Path(__file__).parent / "operations"

for _path in sorted(d.name for d in BASE.iterdir() if d.is_dir()):
    locals()[_path] = make_operation_tests("dockguard.operations", _path, BASE / _path)
