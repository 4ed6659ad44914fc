"""Settings that reach a unit file, a shell or /etc/group: refused unless plain."""

import pytest

from dockguard import settings


@pytest.mark.parametrize(
    "value", ["0.0.0.0:2376", "[::1]:2376", "[::]:2376", "[fe80::1%eth0]:2376", "[fe80::1%25]:2376"]
)
def test_listen_accepts_addresses_and_a_bracketed_ipv6_scope_id(value):
    assert settings.problems({"docker_tcp_listen": value}) == []


@pytest.mark.parametrize(
    "value,message",
    [
        ("[fe80::1%$(reboot)]:2376", "without whitespace, control characters, quotes, '$'"),
        ("[fe80::1%eth0 -H tcp://0.0.0.0:2375]:2376", "without whitespace"),
        ("0.0.0.0:2376\n", "must not contain control characters"),
        ("[fe80::1%e'th]:2376", "quotes"),
        ("[fe80::1%a\\b]:2376", "backslashes"),
        ("fe80::1%eth0:2376", "written '[fe80::1%eth0]:2376'"),
        ("[fe80::1%averyveryverylongname]:2376", "written '[fe80::1%eth0]:2376'"),
        ("[10.0.0.1%eth0]:2376", "only an IPv6 address has a scope id"),
    ],
)
def test_listen_refuses_what_a_unit_file_or_shell_could_misread(value, message):
    (problem,) = settings.problems({"docker_tcp_listen": value})
    assert problem.startswith("docker_tcp_listen: ") and message in problem


@pytest.mark.parametrize("name", ["line\nbreak", "nul\0", "esc\x1b"])
def test_group_members_refuse_control_characters(name):
    (problem,) = settings.problems({"docker_group_members": ["deploy", name]})
    assert problem.startswith("docker_group_members: ") and "must not contain control characters" in problem


@pytest.mark.parametrize("name", ["a:b", "a,b"])
def test_group_members_refuse_names_etc_group_cannot_hold(name):
    assert settings.problems({"docker_group_members": ["deploy", name]}) == [
        f"docker_group_members: {name!r} cannot be a member name in /etc/group "
        "(no newline, NUL, ',', ':' or control characters)"
    ]


def test_group_members_accept_names_with_spaces_or_a_leading_dash():
    assert settings.problems({"docker_group_members": ["john smith", "-dash", "jos\u00e9"]}) == []
