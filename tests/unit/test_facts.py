"""Fact fixtures (pyinfra-testing): command output in, parsed fact out.
One directory per fact under facts/, named <module>.<FactClass>."""

from pathlib import Path

from pyinfra_testing.facts import make_fact_tests

BASE = Path(__file__).parent / "facts"

for _path in sorted(d.name for d in BASE.iterdir() if d.is_dir()):
    locals()[_path] = make_fact_tests("dockguard.operations", _path, BASE / _path)
