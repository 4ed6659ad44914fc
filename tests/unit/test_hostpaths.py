"""Docker paths read without following links (hostpaths.DockerHostPaths) and fixed
without following them (docker_files.permissions): any bytes in a path, a symbolic
link reported, never chowned or chmodded through."""

import shlex
import subprocess

from dockguard.operations import docker_files, hostpaths, safe
from dockguard.operations.docker_files import PathRule


def sh(script: str) -> bytes:
    return subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout


def test_hostpaths_command_reads_spaces_newlines_bytes_and_links_without_following(tmp_path):
    certs = tmp_path / "certs.d"
    reg = certs / "reg a:5000"
    reg.mkdir(parents=True)
    (reg / "ca.crt").write_text("x")
    (reg / "new\nline\\n.crt").write_text("x")
    (reg / "client.key").symlink_to("/etc/shadow")
    (certs / "bad\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_text("x")
    cmd = hostpaths.DockerHostPaths().command().replace("/etc/docker/certs.d", str(certs))
    fact = hostpaths.DockerHostPaths().process(sh(cmd).decode().splitlines())
    assert sorted(fact["certs"]) == sorted(
        [str(reg), f"{reg}/ca.crt", f"{reg}/new\nline\\n.crt", f"{reg}/client.key", f"{certs}/bad\udcff"]
    )
    link = fact["stat"][f"{reg}/client.key"]
    assert (link["type"], link["target"]) == ("symbolic link", "/etc/shadow")
    assert fact["stat"][f"{reg}/new\nline\\n.crt"]["type"] == "regular file"


CERT = "/etc/docker/certs.d/reg a:5000/it's $(id).crt"


def test_fixes_quote_the_path_change_a_link_itself_and_guard_chmod():
    rule = PathRule("3.7/3.8", CERT, "root", "root", "444")
    cmds = docker_files.fixes(rule, {"mode": "664", "user": "bob", "group": "root", "type": "regular file"})
    q = shlex.quote(CERT)
    assert cmds == [f"chown -h root:root {q}", f"[ ! -L {q} ] && chmod 444 {q}"]
    assert shlex.split(cmds[0]) == ["chown", "-h", "root:root", CERT]


def test_no_fix_through_a_symbolic_link_it_is_reported_instead():
    paths = {
        "certs": ["/etc/docker/certs.d/r", "/etc/docker/certs.d/r/ca.crt"],
        "stat": {
            "/etc/docker/certs.d/r": {"mode": "755", "user": "root", "group": "root", "type": "directory"},
            "/etc/docker/certs.d/r/ca.crt": {
                "mode": "777", "user": "bob", "group": "bob", "type": "symbolic link", "target": "/etc/shadow",
            },
        },
    }  # fmt: skip
    assert docker_files.violations(paths) == []
    assert [(r.cis, why) for r, why in docker_files.refused(paths)] == [
        (
            "3.7/3.8",
            "/etc/docker/certs.d/r/ca.crt is a symbolic link to /etc/shadow; dockguard does not follow links: "
            "replace it with a file or remove it",
        )
    ]


def test_a_path_no_shell_word_can_carry_is_reported_not_fixed():
    path = "/etc/docker/certs.d/ends-in-newline\n"
    paths = {"certs": [path], "stat": {path: {"mode": "666", "user": "root", "group": "root", "type": "regular file"}}}
    assert docker_files.violations(paths) == []
    assert [why for _, why in docker_files.refused(paths)] == [
        "'/etc/docker/certs.d/ends-in-newline\\n': dockguard cannot name this path safely in a command "
        "(it ends in a newline): rename it"
    ]


def test_the_guarded_chmod_runs_for_a_file_and_stops_at_a_link(tmp_path):
    target = tmp_path / "target"
    target.write_text("x")
    target.chmod(0o644)
    name = tmp_path / "it's a $(x) file"
    name.write_text("x")
    name.chmod(0o666)
    link = tmp_path / "link"
    link.symlink_to(target)
    for path in (name, link):
        rule = PathRule("x", str(path), "root", "root", "600")
        (cmd,) = docker_files.fixes(rule, {"mode": "666", "user": "root", "group": "root", "type": "regular file"})
        subprocess.run(["sh", "-c", cmd], capture_output=True)
    assert oct(name.stat().st_mode & 0o777) == "0o600"
    assert oct(target.stat().st_mode & 0o777) == "0o644"  # not changed through the link


def test_not_utf8_path_is_written_as_its_bytes():
    path = "/etc/docker/certs.d/r\udcff/ca.crt"
    (cmd,) = docker_files.fixes(
        PathRule("3.7/3.8", path, "root", "root", "444"), {"mode": "444", "user": "x", "group": "root", "type": "f"}
    )
    assert cmd == f"chown -h root:root {safe.arg(path)}"
    assert sh(f"printf '%s' {safe.arg(path)}") == safe.raw(path)
