"""The distribution as the host describes it (/etc/os-release is the host's to write):
read whatever its bytes, refused by the preflight when a value that reaches APT sources
and commands is not a plain name."""

import base64
import json
import subprocess
from pathlib import Path

import pytest
from dockguard.operations import packages, platform, safe
from pyinfra.api.exceptions import FactProcessError

from dockguard import settings

FACTS = Path(__file__).parent / "facts" / "platform.HostPlatform"


def os_line(*values: bytes) -> str:
    return "os=" + base64.b64encode(b"".join(v + b"\0" for v in values)).decode()


def read(*values: bytes) -> dict:
    return platform.HostPlatform().process([os_line(*values), "pkg=apt"])


def test_os_release_values_with_newlines_and_key_lookalikes_stay_in_their_field():
    plat = read(b"debian", b"12", b"bookworm\npkg=dnf", b"Debian $(reboot) \\n", b"")
    assert plat["codename"] == "bookworm\npkg=dnf"
    assert plat["pkg"] == "apt"
    assert plat["name"] == "Debian $(reboot) \\n"


def test_the_fact_reads_os_release_as_written_under_sh(tmp_path):
    """The fact's own command under sh against an os-release with quotes, a backslash and a newline."""
    osr = tmp_path / "os-release"
    osr.write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\'De\\bian "12"\n x\'\n')
    cmd = platform.HostPlatform().command().replace("/etc/os-release", str(osr))
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.splitlines()
    plat = platform.HostPlatform().process(out)
    assert (plat["id"], plat["version"], plat["codename"]) == ("debian", "12", "bookworm")
    assert plat["name"] == 'De\\bian "12"\n x'


@pytest.mark.parametrize(
    "line,message",
    [
        (os_line(b"debian", b"12"), "expected 5 values, got 2"),
        ("os=ZGVi!", "not base64"),
        (os_line(b"debian", b"12", b"book\xffworm", b"", b""), r"codename: not UTF-8: b'book\\xffworm'"),
    ],
)
def test_garbled_os_release_output_is_an_error_of_this_host(line, message):
    with pytest.raises(FactProcessError, match=message):
        platform.HostPlatform().process([line])


@pytest.mark.parametrize("codename", ["bookworm\npkg=dnf", "noble stable; reboot", "$(id)", "Noble", "a" * 33, "-x"])
def test_preflight_refuses_a_codename_that_is_not_a_plain_name(codename):
    plat = {**read(b"ubuntu", b"24.04", b"noble", b"Ubuntu", b"debian"), "codename": codename}
    problems = platform.problems(plat, settings.defaults(), dockerd_present=True)
    assert problems == [
        f"os-release VERSION_CODENAME {safe.shown(codename)} is not a plain name (lowercase letters, digits and '-'); "
        "dockguard puts it in APT sources and commands: fix /etc/os-release"
    ]
    assert "\n" not in problems[0]


def test_plain_codenames_and_none_pass():
    for codename in ("bookworm", "noble", "jammy", ""):
        plat = {**read(b"ubuntu", b"24.04", b"noble", b"Ubuntu", b"debian"), "codename": codename}
        assert platform.problems(plat, settings.defaults(), dockerd_present=True) == []


def test_docker_ce_sources_line_quotes_what_the_host_supplied():
    cmd = packages.docker_ce_repo({"pkg": "apt", "id": "ubuntu", "codename": "it's $(x)"})
    assert "'it'\"'\"'s $(x)'" in cmd
    assert "echo" not in cmd


def test_fixture_os_release_values_are_their_encoding():
    for path in sorted(FACTS.glob("*.json")):
        data = json.loads(path.read_text())
        values = [data["_os_release"][k].encode() for k in platform.OS_RELEASE]
        assert os_line(*values) in data["output"], path.name
