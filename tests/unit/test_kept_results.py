"""Results a fleet's hosts repeat are kept (settings, dockerd's command line, audit watches):
each kept answer is the one computed afresh, and a caller's copy never changes the kept one."""

import copy

from dockguard.operations import audit, dockerd

from dockguard import settings
from tests.unit.test_dockerd import DROPINS, host_files


def test_command_line_kept_per_files_is_the_fresh_one_and_a_copy():
    cases = [
        host_files(default='DOCKER_OPTS="-H tcp://0.0.0.0:2375 --dns 10.0.0.53"\n'),
        host_files({f"{DROPINS}/zzzz-late.conf": "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd://\n"}),
        host_files(),
    ]
    for live in cases:
        fresh = dockerd._command_line(live)
        kept = dockerd.command_line(live)
        assert kept == fresh and dockerd.command_line(copy.deepcopy(live)) == fresh
        kept[0].clear()
        kept[1].append("a caller's line")
        assert dockerd.command_line(live) == fresh
    # Other content, another answer: the environment file's flags are read, not the kept ones.
    other = host_files(default='DOCKER_OPTS="--dns 10.0.0.54"\n')
    assert [w.text for w in dockerd.command_line(other)[0]][-1] == "10.0.0.54"


def test_settings_copies_are_deep_and_problems_kept_per_settings():
    data = {"docker_daemon_extra": {"dns": ["10.0.0.53"]}, "docker_tls_san": ["a.example"]}
    one, two = settings.resolve(data), settings.resolve(data)
    one["docker_daemon_extra"]["dns"].append("changed")
    one["docker_default_ulimits"]["nofile"]["soft"] = 1
    assert two["docker_daemon_extra"] == {"dns": ["10.0.0.53"]} and data["docker_daemon_extra"]["dns"] == ["10.0.0.53"]
    assert settings.resolve({})["docker_default_ulimits"]["nofile"]["soft"] == 65536
    bad = {"docker_log_level": "info\n", "ssh_hostname": "10.0.0.1"}
    first = settings.problems(bad)
    assert first == settings._problems(bad) and first and "control characters" in first[0]
    first.append("a caller's line")
    assert settings.problems(dict(bad, ssh_hostname="10.0.0.2")) == settings._problems(bad)  # other keys: same
    assert settings.problems({"docker_log_level": "debug"}) == settings._problems({"docker_log_level": "debug"})


def test_control_characters_found_as_before():
    for value in ("ok", "tab\there", "nl\n", "del\x7f", "esc\x1b[0m", "\x00", "é ü", "\x85"):
        before = any(ord(c) < 32 or ord(c) == 127 for c in value)
        assert (settings._CONTROL.search(value) is not None) == before, value


def test_watchable_as_before():
    for path in ("/var/lib/docker", "/a b", "/a\tb", "/a\u00a0b", "/a\u2028b", "/a\x1cb", "/caf\u00e9", "/x\udcff"):
        before = audit.safe.plain(path) and not any(c.isspace() for c in path)
        assert audit.watchable(path) == before, repr(path)
