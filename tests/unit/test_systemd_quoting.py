"""systemd's formats as dockguard reads and writes them: an ExecStart= argument quoted
for systemd comes back exactly (any text: %, $, quotes, backslashes, control characters,
IPv6 scope ids); drop-in order and masking; EnvironmentFile= parsing; and the dockerd
state fact's refusal of output it cannot trust."""

import base64

import pytest
from dockguard.operations.dockerd import parse_state
from hypothesis import given
from hypothesis import strategies as st
from pyinfra.api.exceptions import FactProcessError

from dockguard import systemd

NO_NUL = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)))


@given(st.lists(NO_NUL, min_size=1, max_size=6))
def test_any_arguments_survive_a_unit_file(argv):
    assert systemd.unquote_args(systemd.join_args(argv)) == argv


@given(NO_NUL)
def test_a_quoted_argument_never_expands_a_variable_or_specifier(arg):
    quoted = systemd.quote_arg(arg)
    # Outside of the doubled forms, no bare % or $ is left for systemd to expand.
    assert "%" not in quoted.replace("%%", "")
    assert "$" not in quoted.replace("$$", "")
    assert "\n" not in quoted


@pytest.mark.parametrize(
    "arg, quoted",
    [
        ("tcp://[fe80::1%eth0]:2376", '"tcp://[fe80::1%%eth0]:2376"'),
        ("/srv/docker data", '"/srv/docker data"'),
        ('a"b\\c$HOME', '"a\\"b\\\\c$$HOME"'),
        ("", '""'),
    ],
)
def test_quoting_examples(arg, quoted):
    assert systemd.quote_arg(arg) == quoted


def test_nul_cannot_be_an_argument():
    with pytest.raises(ValueError):
        systemd.quote_arg("a\0b")


def test_dropins_sort_by_name_and_etc_masks_lib():
    paths = [
        "/lib/systemd/system/docker.service.d/10-vendor.conf",
        "/etc/systemd/system/docker.service.d/zz-override.conf",
        "/etc/systemd/system/docker.service.d/10-vendor.conf",
        "/run/systemd/system/docker.service.d/50-run.conf",
        "/etc/systemd/system/docker.service.d/zzz-dockguard.conf",
    ]
    assert systemd.dropin_order(paths) == [
        "/etc/systemd/system/docker.service.d/10-vendor.conf",
        "/run/systemd/system/docker.service.d/50-run.conf",
        "/etc/systemd/system/docker.service.d/zz-override.conf",
        "/etc/systemd/system/docker.service.d/zzz-dockguard.conf",
    ]


def test_environment_file_is_parsed_not_run():
    text = "# c\nexport A=\"x y\"\nB='$(touch /tmp/x)'\nnot a line\nC=plain\n"
    assert systemd.parse_env_file("/etc/default/docker", text) == {
        "A": ("x y", 2),
        "B": ("$(touch /tmp/x)", 3),
        "C": ("plain", 5),
    }


def test_exec_start_resets_and_continuation_lines():
    lines = systemd.service_lines(
        ["/lib/x.service", "[Service]\nExecStart=/a \\\n  -b\n"],
        {"/etc/systemd/system/x.service.d/o.conf": "[Service]\nExecStart=\nExecStart=/c -d\n"},
    )
    start = systemd.exec_start(lines)
    assert (start.value, start.where) == ("/c -d", "/etc/systemd/system/x.service.d/o.conf line 3")
    assert systemd.exec_start(lines[:1]).value == "/a -b"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "output, message",
    [
        ([], "dockerd state: the command printed nothing"),
        (["unit=not*base64"], "dockerd state: unit: truncated or not base64"),
        (["unit" + b64("ActiveState=active")], "dockerd state: unexpected line"),
        ([f"file={b64('/etc/docker/daemon.json')}"], "dockerd state: truncated file line"),
    ],
)
def test_output_that_cannot_be_trusted_is_a_clear_error(output, message):
    with pytest.raises(FactProcessError, match=message.replace("(", r"\(")):
        parse_state(output)


def test_docker_info_that_is_not_json_is_kept_as_a_reason_not_a_crash():
    state = parse_state([f"unit={b64('ActiveState=active')}", "info_rc=0", f"info={b64('{not json')}"])
    assert state["server_version"] is None
    assert state["info_error"].startswith("docker info printed invalid JSON")


def test_non_utf8_bytes_in_a_file_do_not_break_the_fact():
    raw = base64.b64encode(b"DOCKER_OPTS=\xff\xfe\n").decode()
    state = parse_state([f"unit={b64('ActiveState=inactive')}", f"file={b64('/etc/default/docker')}:{raw}"])
    assert state["files"]["/etc/default/docker"].startswith("DOCKER_OPTS=")
