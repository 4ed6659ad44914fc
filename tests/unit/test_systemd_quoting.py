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


def files_blob(*files: tuple[bytes, bytes], sizes: list[int] | None = None) -> str:
    """The fact's one base64 of files: names (each ended by NUL), NUL, sizes, NUL, bytes."""
    sizes = [len(c) for _, c in files] if sizes is None else sizes
    data = b"".join(n + b"\0" for n, _ in files) + b"\0" + b"".join(b"%d\n" % n for n in sizes) + b"\0"
    return "files=" + base64.b64encode(data + b"".join(c for _, c in files)).decode()


@pytest.mark.parametrize(
    "output, message",
    [
        ([], "dockerd state: the command printed nothing"),
        (["cmdline=not*base64"], "dockerd state: cmdline: truncated or not base64"),
        (["unitprop" + b64("ActiveState=active")], "dockerd state: unexpected line"),
        (["files=not*base64"], "dockerd state: files: truncated or not base64"),
        ([files_blob((b"/etc/docker/daemon.json", b"{}"), sizes=[5])], "dockerd state: files: .*do not add up"),
        ([files_blob((b"/etc/docker/daemon.json", b"{}"), sizes=[])], "dockerd state: files: .*do not add up"),
        (["api=not*base64"], "dockerd state: api: truncated or not base64"),
        (["api=" + b64("info 99\n{}")], "dockerd state: api: record cut short"),
        (["api=" + b64("listeners 10\n4 zz 2375\n")], "dockerd state: unexpected listener"),
    ],
)
def test_output_that_cannot_be_trusted_is_a_clear_error(output, message):
    with pytest.raises(FactProcessError, match=message):
        parse_state(output)


def test_files_of_any_bytes_and_names_arrive_whole():
    """A file's bytes (not UTF-8, NUL, no final newline) and a hostile drop-in name (a newline,
    a space) do not break the fact; the fragment is the file named by the unit's FragmentPath."""
    state = parse_state([
        "unitprop=ActiveState=inactive", "unitprop=FragmentPath=/lib/systemd/system/docker.service",
        files_blob((b"/lib/systemd/system/docker.service", b"[Service]\nExecStart=/usr/bin/dockerd\n"),
                   (b"/etc/systemd/system/docker.service.d/a\nb c.conf", b"[Service]\x00\n"),
                   (b"/etc/default/docker", b"DOCKER_OPTS=\xff\xfe")),
    ])  # fmt: skip
    assert state["fragment"] == ["/lib/systemd/system/docker.service", "[Service]\nExecStart=/usr/bin/dockerd\n"]
    assert state["dropins"] == {"/etc/systemd/system/docker.service.d/a\nb c.conf": "[Service]\x00\n"}
    assert state["files"]["/etc/default/docker"] == "DOCKER_OPTS=\ufffd\ufffd"


def api(*records: tuple[str, bytes]) -> str:
    return "api=" + base64.b64encode(b"".join(k.encode() + b" %d\n" % len(v) + v for k, v in records)).decode()


def http(body: bytes, status: str = "200 OK", chunked: bool = False) -> bytes:
    if chunked:
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:3], body[3:]) if p) + b"0\r\n\r\n"
        return b"HTTP/1.1 " + status.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    return b"HTTP/1.0 " + status.encode() + b"\r\nContent-Type: application/json\r\n\r\n" + body


INFO = b'{"ServerVersion":"26.1.5","LiveRestoreEnabled":true,"SecurityOptions":["name=userns"]}'


@pytest.mark.parametrize("chunked", [False, True])
def test_the_api_read_by_perl_gives_what_the_cli_gives(chunked):
    """The same daemon read both ways: perl's records (raw HTTP, /proc listeners) and the CLI's
    lines (docker info, ss) parse to the same state."""
    bridge = b'{"Options":{"com.docker.network.bridge.enable_icc":"false"},"Containers":{"x":{}}}'
    containers = b'[{"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},' \
                 b'{"PrivatePort":53,"PublicPort":5353,"Type":"udp"}]}]'  # fmt: skip
    listeners = b"4 7f000001 2375\n6 00000000000000000000000000000000 2377\n4 00000000 8080\n"
    by_perl = parse_state(["unitprop=ActiveState=active", "unitprop=MainPID=7", api(
        ("listeners", listeners), ("info_rc", b"0"), ("info", http(INFO, chunked=chunked)),
        ("containers", http(containers, chunked=chunked)), ("bridge", http(bridge)))])  # fmt: skip
    ss = ("LISTEN 0 4096 127.0.0.1:2375 0.0.0.0:* users:((\"dockerd\",pid=7,fd=3))\n"
          "LISTEN 0 4096 *:2377 *:* users:((\"dockerd\",pid=7,fd=7))\n"
          "LISTEN 0 4096 0.0.0.0:8080 0.0.0.0:* users:((\"dockerd\",pid=7,fd=9))")  # fmt: skip
    by_cli = parse_state(["unitprop=ActiveState=active", "unitprop=MainPID=7", f"listen={b64(ss)}", "info_rc=0",
                          f"info={b64(INFO.decode())}", f"published={b64('0.0.0.0:8080->80/tcp, 5353->53/udp')}",
                          f"bridge={b64(bridge.decode())}"])  # fmt: skip
    assert by_perl == by_cli
    assert by_perl["live_listeners"] == ["127.0.0.1:2375", "[::]:2377"]  # 8080 is a published port
    assert (by_perl["server_version"], by_perl["bridge_icc"], by_perl["bridge_containers"]) == ("26.1.5", False, 1)


@pytest.mark.parametrize("status, rc", [("500 Internal Server Error", b"1"), ("403 Forbidden", b"1")])
def test_a_daemon_that_refuses_info_is_no_answer(status, rc):
    state = parse_state(["unitprop=ActiveState=active", api(("info_rc", rc), ("info", http(INFO, status)))])
    assert state["info_rc"] == 1 and state["server_version"] is None


def test_a_hung_daemon_is_a_timeout_both_ways():
    by_perl = parse_state(["unitprop=ActiveState=active", api(("info_rc", b"124"), ("info", b""))])
    by_cli = parse_state(["unitprop=ActiveState=active", "info_rc=124", f"info={b64('')}"])
    assert by_perl == by_cli and by_perl["info_rc"] == 124


def test_docker_info_that_is_not_json_is_kept_as_a_reason_not_a_crash():
    state = parse_state(["unitprop=ActiveState=active", "info_rc=0", f"info={b64('{not json')}"])
    assert state["server_version"] is None
    assert state["info_error"].startswith("docker info printed invalid JSON")
