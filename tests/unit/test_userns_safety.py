"""/etc/subuid and /etc/subgid read whatever their bytes, and appended atomically."""

import os
import subprocess

import pytest
from dockguard.operations import userns
from pyinfra.api.exceptions import FactProcessError

from tests.unit.streams import encode


@pytest.mark.parametrize(
    "fields,message",
    [
        ([["subuid", "al\udcffice:1:2\n", "subgid", ""]], r"/etc/subuid: not UTF-8"),
        ([["subuid", "alice:1:2:3\n", "subgid", ""]], "/etc/subuid: unexpected line 'alice:1:2:3'"),
        ([["subuid", "a", "b", "subgid", ""]], "a NUL byte"),
    ],
)
def test_unreadable_subid_files_are_an_error_of_this_host(fields, message):
    with pytest.raises(FactProcessError, match=message):
        userns.SubIds().process([encode("subids", fields)])


def test_append_is_atomic_keeps_mode_and_adds_a_missing_last_newline(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536")
    path.chmod(0o600)
    subprocess.run(["sh", "-c", userns.append_command(str(path), "dockremap:165536:65536")], check=True)
    assert path.read_text() == "alice:100000:65536\ndockremap:165536:65536\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["subuid"]  # the temporary file was renamed over it
