"""Host-controlled bytes in and out (operations/safe.py): every value a fact reads
survives whole, every value a command carries stays one shell word, byte for byte."""

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from dockguard.operations import docker_group, safe
from hypothesis import given, settings
from hypothesis import strategies as st
from pyinfra.api.exceptions import FactProcessError

from tests.unit.streams import encode

FACTS = Path(__file__).parent / "facts"
HOSTILE = [
    "alice bob", "-rf", "--help", "a;reboot", "$(reboot)", "`id`", "it's", 'say "hi"', "back\\slash", "\\n",
    "tab\there", "bell\a", "esc\x1b[31mred", "del\x7f", "ünïcödé", "名前", "\udcff\udcfe", "x\udcc3", "*", "~root", "100%", "%s\x01%d", "it's\x01", "\\x01\x01", "",
]  # fmt: skip
# Any text that can be one word of a command: no NUL, no trailing newline (safe.quotable).
WORDS = st.text(st.characters(blacklist_characters="\0"), max_size=40).filter(safe.quotable)
# Names as safe.name gives them: any bytes but NUL.
NAMED = st.binary(max_size=40).filter(lambda b: b"\0" not in b and not b.endswith(b"\n")).map(safe.name)


def sh(script: str) -> bytes:
    """``script``'s output under dash (Debian's /bin/sh) or sh."""
    shell = "dash" if subprocess.run(["which", "dash"], capture_output=True).returncode == 0 else "sh"
    return subprocess.run([shell, "-c", script], capture_output=True, check=True).stdout


@pytest.mark.parametrize("value", [v for v in HOSTILE if v])
def test_arg_is_one_word_that_the_shell_gives_back_byte_for_byte(value):
    assert sh(f"printf '%s' {safe.arg(value)}") == safe.raw(value)


def test_arg_keeps_an_empty_value_one_word():
    assert shlex.split(f"x {safe.arg('')} y") == ["x", "", "y"]


@given(WORDS)
def test_arg_of_printable_text_parses_back_to_exactly_that_word(value):
    if safe.plain(value):
        assert shlex.split(f"gpasswd -d {safe.arg(value)} docker") == ["gpasswd", "-d", value, "docker"]


@given(st.lists(NAMED, min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_arg_of_any_bytes_reaches_the_program_as_one_argument(values):
    words = " ".join(safe.arg(v) for v in values)
    out = sh(f"for a in {words}; do printf '%s\\0' \"$a\"; done")
    assert out.split(b"\0")[:-1] == [safe.raw(v) for v in values]


@given(st.text(max_size=60) | st.binary(max_size=60))
def test_shown_never_carries_a_control_character_or_an_undecodable_byte(value):
    out = safe.shown(value)
    assert out.isprintable()
    out.encode("utf-8")


def test_shown_leaves_plain_names_alone_and_escapes_the_rest():
    assert safe.shown("alice") == "alice"
    assert safe.shown("esc\x1b[31m") == "'esc\\x1b[31m'"
    assert safe.shown("a b") == "'a b'"
    assert safe.shown("x\udcff") == "b'x\\xff'"
    assert safe.shown(b"\xff") == "b'\\xff'"


@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\0" not in b), max_size=8))
def test_fields_round_trip_any_bytes(values):
    line = encode("t", [[safe.name(v) for v in values]])
    assert safe.fields([line], "t", "test") == values


@given(
    st.lists(
        st.binary(min_size=1, max_size=30).filter(lambda b: b"\0" not in b and b != safe.END), min_size=1, max_size=5
    )
)
def test_a_stream_cut_anywhere_is_an_error_not_a_shorter_value(values):
    """(A value that is itself the end marker, cut right after it, would pass: the one case
    a fixed marker cannot tell; it needs a transport cut at exactly that byte.)"""
    line = encode("t", [[safe.name(v) for v in values]])
    for cut in range(len("t:"), len(line)):
        with pytest.raises(FactProcessError, match="test"):
            safe.fields([line[:cut]], "t", "test")


@pytest.mark.parametrize(
    "output,message",
    [
        ([], "no output"),
        (["t:", "t:"], "2 lines"),
        (["other:ZW5k"], "expected 't:BASE64'"),
        (["t:not base64!"], "not base64"),
        (["t:"], "cut short"),  # base64 missing on the host: only the tag was printed
        ([encode("t", [["a"]], end=False)], "cut short"),
    ],
)
def test_fields_refuse_garbled_output_naming_the_purpose(output, message):
    with pytest.raises(FactProcessError, match=f"purpose of it: .*{message}"):
        safe.fields(output, "t", "purpose of it")


def test_stream_runs_under_dash_and_decodes():
    cmd = safe.stream("t", "printf '%s\\0' 'a b' \"$(printf 'x\\nq\\\\n')\";")
    assert safe.fields(sh(cmd).decode().splitlines(), "t", "test") == [b"a b", b"x\nq\\n"]


def test_text_refuses_bytes_that_are_not_utf8():
    assert safe.text(b"bookworm", "os-release") == "bookworm"
    with pytest.raises(FactProcessError, match=r"os-release: not UTF-8: b'\\xff'"):
        safe.text(b"\xff", "os-release")


# --------------------------------------------------------------------------- facts, end to end


@given(st.lists(NAMED.filter(lambda n: n and not docker_group.unremovable(n)), max_size=5))
@settings(max_examples=30, deadline=None)
def test_docker_group_members_survive_any_bytes_through_the_real_command(names):
    """The fact's own command under dash, with getent replaced by a function printing the entry."""
    entry = b"docker:x:999:" + b",".join(safe.raw(n) for n in names)
    fake = f"getent() {{ printf '%s\\n' {safe.arg(safe.name(entry))}; }}; "
    out = sh(fake + docker_group.DockerGroupMembers().command()).decode().splitlines()
    assert docker_group.DockerGroupMembers().process(out) == sorted(names)


def test_docker_group_members_fact_reports_getent_failure_and_garbage():
    fact = docker_group.DockerGroupMembers()
    with pytest.raises(FactProcessError, match=r"docker group members .*getent failed \(exit 1\)"):
        fact.process([encode("group", [["rc", "1"]])])
    with pytest.raises(FactProcessError, match="not a group entry"):
        fact.process([encode("group", [["rc", "0"], ["entry", "docker:x"]])])
    with pytest.raises(FactProcessError, match="unexpected fields"):
        fact.process([encode("group", [["rc", "0"], ["rc", "2"]])])


def test_every_stream_fixture_output_is_the_encoding_of_its_fields():
    """Fixtures keep their fields readable (_fields); the output must be exactly their encoding."""
    checked = 0
    for path in sorted(FACTS.glob("*/*.json")):
        data = json.loads(path.read_text())
        if "_fields" in data:
            tag = data["output"][0].partition(":")[0]
            assert data["output"] == [encode(tag, data["_fields"])], path.name
            checked += 1
    assert checked
