"""The preflight's batch (operations/prefetch.py): every fact's command in one remote
command, each part framed so no output can pass for another's, and a part that failed
left for its area to read on its own. The batch's shell runs here, in a real sh."""

from __future__ import annotations

import subprocess

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
    "printf 'dgbfeed-1 Zm9v\\ndgbfeed-end\\n'",  # looks like a frame
    "printf '00000000-0000-4000-8000-000000000000 1\\n'",  # looks like this frame's markers (not its nonce)
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
    assert got["k4"] == ["00000000-0000-4000-8000-000000000000 1"]
    assert got["k5"] == ["\ufffd\x00bin"]
    assert got["k8"] == ["", ""] and got["k9"] == ["default"]
    assert "k6" not in got and "k7" not in got  # exit 3 / rejected: the area reads them itself
    assert "needs" not in got  # a fact that needs a command checked first is never batched


def test_a_batch_cut_short_or_garbled_hands_in_nothing():
    """Output cut anywhere (the connection dropped) or not base64: no part is handed in, every
    fact is read again on its own."""
    whole = run(prefetch.Batch.compose(NASTY, "dgbfeed"))
    assert len(whole) == 1 and len(prefetch.Batch().process(whole)) == len(NASTY)
    blob = whole[0]
    for cut in (0, 4, 8, len(blob) // 2, len(blob) - 8, len(blob) - 4, len(blob) - 1):
        assert prefetch.Batch().process([blob[:cut]]) == [], cut
    assert prefetch.Batch().process(["not base64!"]) == []
    assert prefetch.Batch().process([]) == []


def test_the_frames_nonce_is_drawn_on_the_host_and_never_in_the_command():
    script = prefetch.Batch.compose(["echo a"], "dgbfeed")
    first, second = run(script), run(script)
    assert first != second  # a new nonce each run
    assert prefetch.Batch().process(first) == prefetch.Batch().process(second) == [(0, ["a"])]
    assert "/proc/sys/kernel/random/uuid" in script


FAKE_SYSTEMCTL = """#!/bin/sh
# `systemctl show -p Id -p PROPS... UNITS...`, as systemd prints it (a block per unit, an empty line
# between; within a block a service's own properties before the unit's Id); each call logged
echo "$*" >> "$CALLS"
props=; units=
while [ $# -gt 0 ]; do case $1 in show) ;; -p) props="$props $2"; shift;; *) units="$units $1";; esac; shift; done
first=1
for u in $units; do
  [ $first = 1 ] || echo; first=0
  echo "MainPID=0"
  for p in $props; do case $p in
    Id) ;; ActiveState) echo "ActiveState=active";; UnitFileState) echo "UnitFileState=enabled";;
    FragmentPath) [ "$u" = docker.socket ] && echo "FragmentPath=" || echo "FragmentPath=/etc/passwd";;
    *) echo "$p=";; esac; done
  echo "Id=$u"
done
"""


def test_the_batch_reads_systemd_once_for_every_part_with_the_same_readings(tmp_path, monkeypatch):
    """Facts that read units (their ``systemd_show``) share one systemctl in a batch, and read the
    same as each with a systemctl of its own."""
    from dockguard.operations import audit, authz, hostpaths

    (tmp_path / "systemctl").write_text(FAKE_SYSTEMCTL)
    (tmp_path / "auditctl").write_text(
        '#!/bin/sh\n[ "$1" = -s ] && echo "enabled 1" || echo "-w /etc/docker -k docker"\n'
    )
    for tool in ("systemctl", "auditctl"):
        (tmp_path / tool).chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("CALLS", str(calls))
    requests = [("audit", audit.AuditState, {}), ("authz", authz.AuthzState, {"engine": False}),
                ("paths", hostpaths.DockerHostPaths, {})]  # fmt: skip
    alone = {key: cls().process(run(cls().command(**kw))) for key, cls, kw in requests}
    assert len(calls.read_text().splitlines()) == 3
    calls.write_text("")
    batched = prefetch.read(FakeHost(), requests)
    assert batched == alone
    assert alone["authz"]["socket"] == "active" and alone["authz"]["socket_enabled"]
    assert alone["audit"]["active"] == "active" and alone["audit"]["runtime_unit"] == "enabled"
    assert alone["audit"]["rules"] == ["-w /etc/docker -k docker"] and alone["audit"]["audit_enabled"] == "1"
    assert alone["paths"]["units"] == {"docker.service": "/etc/passwd", "containerd.service": "/etc/passwd"}
    assert calls.read_text().splitlines() == [
        "show -p Id -p ActiveState -p UnitFileState -p FragmentPath auditd.service dockguard-audit-runtime.service "
        "dockguard-authz.socket dockguard-authz.service docker.service docker.socket containerd.service"
    ]


def test_a_shared_reading_that_does_not_add_up_is_not_used(tmp_path, monkeypatch):
    """systemctl printing fewer blocks than units asked: no part uses the shared reading, each
    reads its own."""
    from dockguard.operations import authz

    (tmp_path / "systemctl").write_text(FAKE_SYSTEMCTL.replace("for u in $units; do", "for u in ${units%% *}; do"))
    (tmp_path / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    script = prefetch.Batch.compose([authz.AuthzState().command(engine=False)], "dgbfeed",
                                    (["dockguard-authz.socket", "dockguard-authz.service"], ["ActiveState"]))  # fmt: skip
    run(script)
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # the shared one, then the part's own


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


def test_a_fact_whose_units_are_not_in_the_shared_reading_reads_its_own(tmp_path, monkeypatch):
    """A part reading a unit the batch did not read (a fact that names no ``systemd_show``)
    runs its own systemctl, never prints an empty block."""
    from dockguard.operations import authz

    (tmp_path / "systemctl").write_text(FAKE_SYSTEMCTL)
    (tmp_path / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    script = prefetch.Batch.compose([authz.AuthzState().command(engine=False)], "dgbfeed",
                                    (["docker.service"], ["ActiveState"]))  # fmt: skip
    (part,) = prefetch.Batch().process(run(script))
    assert authz.AuthzState().process(part[1])["socket"] == "active"
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # the shared one, then the part's own


def test_a_stream_inside_the_batch_goes_out_raw_and_reads_as_it_does_alone():
    """safe.stream without its base64 process inside a batch: the fact gets the very line its
    command gives alone, whatever the fields hold (NUL, newlines, bytes that are not UTF-8, the
    closing word, a nonce that is not this batch's); a stream cut short is still rejected."""
    from dockguard.operations import safe

    fields = [
        "printf 'a\\0b\\0';",
        "printf '\\377\\n\\n\\0x\\0';",
        "printf 'raw-end\\n00000000-0000-4000-8000-000000000000 raw-end\\n\\0';",
        "printf 'subids=raw:\\0\\n\\0raw:x=\\n\\0';",
        ": ;",
    ]
    commands = [safe.stream("subids", f) for f in fields] + [safe.stream("subids", "printf 'a\\0'; exit 0;")]
    parts = prefetch.Batch().process(run(prefetch.Batch.compose(commands, "dgbraw")))
    batch_script = prefetch.Batch.compose(commands, "dgbraw")
    assert batch_script.count("base64") == len(commands) + 1  # in each stream's other branch, and the frame's
    for command, part in zip(commands[:-1], parts, strict=False):
        alone = run(command)
        assert part == (0, alone), command
        assert alone[0].startswith("subids:") and safe.fields(alone, "subids", "t") is not None
    # Cut short (the subshell exits before the end field and the nonce line): raw, and rejected.
    status, cut = parts[-1]
    assert cut[0] == "\0raw:subids:"
    try:
        safe.fields(cut, "subids", "t")
        raise AssertionError("a stream cut short was accepted")
    except FactProcessError:
        pass


def test_the_batch_runs_no_base64_for_its_streams(tmp_path):
    """The streams' fields reach the batch's frame without a process of their own: one base64 runs."""
    from dockguard.operations import safe

    log = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "base64").write_text(f'#!/bin/sh\necho x >> {log}\nexec /usr/bin/base64 "$@"\n')
    (fake / "base64").chmod(0o755)
    commands = [safe.stream(t, "printf 'a\\0';") for t in ("one", "two", "three")]
    script = prefetch.Batch.compose(commands, "dgbcount")
    out = subprocess.run(["sh", "-c", script], capture_output=True, env={"PATH": f"{fake}:/usr/bin:/bin"}).stdout
    parts = prefetch.Batch().process(out.decode().splitlines())
    assert [p[1][0].split(":")[0] for p in parts] == ["one", "two", "three"]
    assert log.read_text().count("x") == 1


def test_raw_runs_between_lines_read_as_their_base64_alone():
    """safe.encoded values among a part's other lines (as DockerdState prints them), each
    turned back into LABEL + base64 in place; an opening line inside a value is only bytes."""
    from dockguard.operations import safe

    command = (
        "echo first=1; "
        + safe.encoded("files=", "printf 'a\\n\\0raw:x=\\nb'")
        + "; echo middle=2; "
        + safe.encoded("empty=", ":")
        + "; "
        + safe.encoded("api=", "printf '\\377'")
        + "; echo last=3"
    )
    (part,) = prefetch.Batch().process(run(prefetch.Batch.compose([command], "dgbvals")))
    assert part == (0, run(command))
    assert part[1] == ["first=1", "files=YQoAcmF3Ong9CmI=", "middle=2", "empty=", "api=/w==", "last=3"]
