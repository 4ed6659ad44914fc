"""The preflight's batch (operations/prefetch.py): every fact's command in one remote
command, each part framed so no output can pass for another's, and a part that failed
left for its area to read on its own. The batch's shell runs here, in a real sh."""

from __future__ import annotations

import subprocess

import pytest
from dockguard.operations import Context, PerHost, prefetch
from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError


def run(command: str) -> list[str]:
    """The command's stdout lines, as pyinfra's connectors hand them to a fact."""
    out = subprocess.run(["sh", "-c", command], capture_output=True).stdout
    lines = [line.decode("utf-8", "replace") for line in out.split(b"\n")]
    return lines[:-1] if lines[-1] == "" else lines  # a last line without its newline is a line


class Lines(FactBase):
    def command(self, text: str) -> str:
        return text

    @staticmethod
    def default() -> list:
        return ["default"]

    def process(self, output: list[str]) -> list[str]:
        if output and output[0] == "reject":
            raise FactProcessError("rejected")
        return output


class Needs(FactBase):
    command = "echo x"

    def requires_command(self) -> str:
        return "lynis"

    def process(self, output):
        return output


class FakeHost:
    name = "h"

    def __init__(self):
        self.asked = []

    def get_fact(self, cls, _ignore_errors=False, **kwargs):
        self.asked.append(cls)
        assert _ignore_errors and list(kwargs) == ["batch"]  # a failed batch fails nothing; no script in the log
        assert len(kwargs["batch"]) < 20
        return cls().process(run(cls().command(**kwargs)))


NASTY = [
    "printf 'a\\nb\\n'",  # ordinary lines
    "printf 'no final newline'",
    "printf ''",  # no output: the fact's default
    "printf 'dgbfeed-1 Zm9v\\ndgbfeed-end\\n'",  # looks like the frame
    "printf '\\377\\000bin\\n'",  # not UTF-8, a NUL
    "echo partial; exit 3",  # failed: read again by its area
    "echo reject",  # the fact rejects it
    "printf '\\n\\n'",  # empty lines are lines
    "# a comment to the end of the line",
]


def test_each_part_arrives_as_its_own_command_would_give_it():
    commands = NASTY
    parts = prefetch.Batch().process(run(prefetch.Batch.compose(commands, "dgbfeed")))
    assert len(parts) == len(commands)
    for command, part in zip(commands, parts, strict=True):
        rc = subprocess.run(["sh", "-c", command], capture_output=True).returncode
        assert part == (rc, run(command)), command


def test_read_hands_in_what_succeeded_and_leaves_the_rest():
    h = FakeHost()
    requests = [(f"k{i}", Lines, {"text": c}) for i, c in enumerate(NASTY)] + [("needs", Needs, {})]
    got = prefetch.read(h, requests)
    assert h.asked == [prefetch.Batch]  # one command for all
    assert prefetch.Batch._scripts == {}  # nothing kept after the batch
    assert got["k0"] == ["a", "b"] and got["k1"] == ["no final newline"]
    assert got["k2"] == ["default"]  # no output: the fact's default, as pyinfra gives it
    assert got["k3"] == ["dgbfeed-1 Zm9v", "dgbfeed-end"]
    assert got["k4"] == ["\ufffd\x00bin"]
    assert got["k7"] == ["", ""] and got["k8"] == ["default"]
    assert "k5" not in got and "k6" not in got  # exit 3 / rejected: the area reads them itself
    assert "needs" not in got  # a fact that needs a command checked first is never batched


@pytest.mark.parametrize(
    "lines",
    [[], ["x-begin"], ["x-begin", "x-0 Zm9v"], ["garbage"], ["x-begin", "x-0 !!!", "x-end"]],
)
def test_a_batch_cut_short_or_garbled_hands_in_nothing_usable(lines):
    parts = prefetch.Batch().process(lines)
    assert all(p is None for p in parts)


def test_a_reading_is_kept_until_an_operation_runs_on_the_host(monkeypatch):
    from types import SimpleNamespace

    import pyinfra

    from dockguard import compat

    changes = [0]
    monkeypatch.setattr(compat, "host_changes", lambda h: changes[0])
    h = SimpleNamespace(name="h1", data={}, get_fact=lambda cls, **kw: "read now")
    monkeypatch.setattr(pyinfra, "host", h)
    ctx = Context.of(h)
    ctx.remember("k", "preflight")
    assert ctx.fact("k", Lines, text="x") == "preflight" and ctx.kept("k") == "preflight"
    changes[0] = 1  # an operation of this host executed a command
    assert ctx.kept("k") is None
    assert ctx.fact("k", Lines, text="x") == "read now"
    assert ctx.kept("k") == "read now"


def test_every_area_fact_is_in_the_preflights_batch():
    """The facts the areas read with default settings all have a batchable command, under the
    keys the areas read them by."""
    from types import SimpleNamespace

    from dockguard.operations import dockerd, hostpaths, platform

    from dockguard import deploy

    class Data(dict):
        def dict(self):
            return dict(self)

    ctx = Context.of(SimpleNamespace(name="h2", data=Data(docker_tcp_listen="0.0.0.0:2376")))
    requests = [dockerd._live.request(), platform.request(), *deploy.reads(ctx)]
    keys = [k for k, _, _ in requests]
    assert len(keys) == len(set(keys))
    for key, cls, kwargs in requests:
        assert prefetch.command_of(cls, kwargs), key
    assert {
        PerHost(hostpaths.DockerHostPaths).key, "tls.TlsFiles", "userns.SubIds", "content.Digests",
        "authz.AuthzState.units", "audit.AuditState", "docker_group.DockerGroupMembers", "sshd.SshdState",
        "os_packages.OsPackagesState", "firewall.FirewallState", "lynis.LynisReport",
    } <= set(keys)  # fmt: skip


def test_a_batch_that_failed_as_a_whole_hands_in_nothing(monkeypatch):
    """pyinfra gives an ignored failed fact its default: every area then reads its own fact."""
    h = FakeHost()
    monkeypatch.setattr(h, "get_fact", lambda cls, **kw: cls.default())
    assert prefetch.read(h, [("k0", Lines, {"text": "echo a"})]) == {}
