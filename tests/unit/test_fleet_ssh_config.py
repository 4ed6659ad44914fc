"""The SSH config written for the CIS suite: inventory values never become directives."""

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockguard.fleet import UnsafeValue, ssh_config, ssh_value


class Data(dict):
    def get(self, key, default=None):
        return super().get(key, default)


def inv(name="dh1", **data):
    return [SimpleNamespace(name=name, data=Data(data))]


def test_plain_values():
    assert ssh_config(inv(ssh_hostname="10.213.1.2", ssh_port=22, ssh_user="root")) == (
        "Host dh1\n  HostName 10.213.1.2\n  Port 22\n  User root\n  BatchMode yes\n  ConnectTimeout 10\n"
    )


def test_a_key_path_with_a_space_is_quoted():
    out = ssh_config(inv(ssh_key="/keys/my key"))
    assert '  IdentityFile "/keys/my key"' in out


@pytest.mark.parametrize(
    "data, message",
    [
        ({"ssh_hostname": "h\n  ProxyCommand touch /tmp/pwned"}, "dh1: ssh_hostname: "),
        ({"ssh_user": 'root"'}, "dh1: ssh_user: "),
        ({"ssh_key": "/k\x00"}, "dh1: ssh_key: "),
        ({"ssh_strict_host_key_checking": "no\nProxyCommand x"}, "dh1: ssh_strict_host_key_checking: "),
    ],
)
def test_values_that_would_add_a_directive_are_refused(data, message):
    with pytest.raises(UnsafeValue, match=message):
        ssh_config(inv(**data))


@pytest.mark.parametrize("name", ["a b", "*", "web?", "!x", "a,b", "x\ny"])
def test_host_names_that_are_patterns_are_refused(name):
    with pytest.raises(UnsafeValue):
        ssh_config(inv(name=name))


@given(st.text(min_size=1))
def test_no_value_ever_spans_two_lines(text):
    try:
        out = ssh_value("h", "k", text)
    except UnsafeValue:
        return
    assert "\n" not in out and "\r" not in out
    assert out == text or out == f'"{text}"'
