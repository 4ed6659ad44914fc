"""Under make test a skip is a failure unless ALLOWED_SKIPS (tests/conftest.py) allows it."""

import subprocess
import sys
import textwrap
from pathlib import Path


def run(tmp_path, env_value: str) -> subprocess.CompletedProcess:
    tests = tmp_path / "tests"
    (tests / "e2e").mkdir(parents=True)
    (tests / "conftest.py").write_text(Path("tests/conftest.py").read_text())
    (tests / "e2e" / "test_65_selinux.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_quietly_skipped():
                pytest.skip("the lab is not running")

            def test_selinux_vm():
                pytest.skip("needs the lab's SELinux VM, which make test does not boot")
            """
        )
    )
    env = {"PATH": "/usr/bin:/bin", "DOCKGUARD_NO_SKIPS": env_value}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "tests/e2e/test_65_selinux.py"], cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip


def test_a_skip_not_on_the_allowlist_fails_under_make_test(tmp_path):
    r = run(tmp_path, "1")
    assert r.returncode == 1, r.stdout
    assert "1 failed, 1 skipped" in r.stdout
    assert "no entry of ALLOWED_SKIPS (tests/conftest.py) allows it: the lab is not running" in r.stdout


def test_skips_are_plain_skips_by_hand(tmp_path):
    r = run(tmp_path, "0")
    assert r.returncode == 0 and "2 skipped" in r.stdout, r.stdout
