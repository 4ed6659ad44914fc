"""Pull mode's operator side and its run on the host (dockguard/pull.py): the wheelhouse for each
host's Python, what a host gets (and never: the CA's key), its units, a run's result, `pull status`
with `dockguard drift`'s exit codes, and the command line's refusals before any host is touched."""

import base64
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from dockguard import cli, fleet, metrics, pki, pull, settings, systemd

HAVE_ANALYZE = shutil.which("systemd-analyze") is not None
PROBE = {"path": "/usr/bin/python3", "implementation": "cpython", "version": "3.11", "machine": "x86_64",
         "libc": "glibc", "libc_version": "2.36"}  # fmt: skip


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A wheel cache of the test's own (never the operator's state directory)."""
    monkeypatch.setenv("DOCKGUARD_PULL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DOCKGUARD_PKI_DIR", raising=False)
    return tmp_path / "cache"


# --------------------------------------------------------------------------- the host's Python and platform


def test_the_target_is_what_the_host_reports():
    t = pull.target_of("dh1", PROBE)
    assert (t.python, t.machine, t.glibc, t.key) == ("3.11", "x86_64", "2.36", "cp311-x86_64-glibc2.36")
    t13 = pull.target_of("dh2", PROBE | {"version": "3.13", "libc_version": "2.41"})
    assert t13.key == "cp313-x86_64-glibc2.41"


@pytest.mark.parametrize(
    "probe, message",
    [
        (None, "dh1: python3 is not installed: pull mode runs dockguard with the host's own python3"),
        (PROBE | {"version": "3.10"}, "dh1: python3 is 3.10: dockguard needs Python 3.11 or newer"),
        (PROBE | {"implementation": "pypy"}, "dh1: python3 is pypy, not CPython"),
        (PROBE | {"libc": None, "libc_version": None}, "dh1: the host's C library is unknown"),
        (PROBE | {"libc_version": "2.12"}, "dh1: glibc 2.12 is older than manylinux2014's 2.17"),
        (PROBE | {"machine": "x86_64; rm -rf /"}, "dh1: unexpected machine type"),
    ],
)
def test_a_host_dockguard_cannot_run_on_is_named_with_the_reason(probe, message):
    with pytest.raises(pull.PullError) as e:
        pull.target_of("dh1", probe)
    assert str(e.value).startswith(message)


def test_platform_tags_cover_every_manylinux_the_hosts_glibc_runs():
    tags = pull.platform_tags(pull.Target("3.11", "x86_64", "2.36"))
    assert tags[0] == "manylinux_2_36_x86_64"  # newest first
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags and not any(t.startswith("linux_") for t in tags)
    arm = pull.platform_tags(pull.Target("3.13", "aarch64", "2.41"))
    assert "manylinux_2_41_aarch64" in arm and all(t.endswith("_aarch64") for t in arm)


def test_the_download_asks_for_the_hosts_python_binary_wheels_only():
    t = pull.Target("3.13", "x86_64", "2.41")
    cmd = pull.download_command(t, ["pyinfra>=3.10,<3.11", "jinja2>=3.1,<4"], "/c/pins.txt", "/c/wheels")
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd and "--no-binary" not in " ".join(cmd)
    pairs = list(zip(cmd, cmd[1:], strict=False))
    assert ("--python-version", "3.13") in pairs and ("--implementation", "cp") in pairs
    assert {b for a, b in pairs if a == "--abi"} == {"cp313", "abi3", "none"}
    assert {b for a, b in pairs if a == "--platform"} == set(pull.platform_tags(t))
    assert ("--constraint", "/c/pins.txt") in pairs and ("--dest", "/c/wheels") in pairs
    assert cmd[-3:] == ["pyinfra>=3.10,<3.11", "jinja2>=3.1,<4", f"pip=={importlib.metadata.version('pip')}"]


def test_the_hosts_get_the_versions_this_machine_runs():
    pins = pull.constraints()
    for name in ("pyinfra", "cryptography", "gevent", "Jinja2"):
        assert f"{name}=={importlib.metadata.version(name)}".lower() in {p.lower() for p in pins}
    assert not any(p.lower().startswith("dockguard==") for p in pins)
    reqs = pull.requirements()
    assert any(r.startswith("pyinfra") for r in reqs) and not any(r.startswith("pytest") for r in reqs)


def _fake_pip(monkeypatch, wheels=("pip-26.3-py3-none-any.whl", "pyinfra-3.10.0-py3-none-any.whl"), rc=0):
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[3] == "download" and rc == 0:
            dest = Path(cmd[cmd.index("--dest") + 1])
            for w in wheels:
                (dest / w).write_bytes(w.encode())
        return subprocess.CompletedProcess(cmd, rc, "", "ERROR: No matching distribution found for gevent==26.9.0\n")

    monkeypatch.setattr(pull.subprocess, "run", run)
    return calls


def test_a_wheelhouse_is_downloaded_once_per_python_and_platform(monkeypatch, cache):
    calls = _fake_pip(monkeypatch)
    t11, t13 = pull.Target("3.11", "x86_64", "2.36"), pull.Target("3.13", "x86_64", "2.41")
    first = pull.wheelhouse(t11)
    assert pull.wheelhouse(t11) == first and len(calls) == 1  # cached
    assert sorted(p.name for p in first.glob("*.whl")) == [
        "pip-26.3-py3-none-any.whl",
        "pyinfra-3.10.0-py3-none-any.whl",
    ]
    assert pull.wheelhouse(t13) != first and len(calls) == 2
    assert (cache.stat().st_mode & 0o077) == 0  # the operator's own, private


def test_a_failed_download_says_why_and_leaves_no_cache(monkeypatch, cache):
    _fake_pip(monkeypatch, rc=1)
    with pytest.raises(pull.PullError) as e:
        pull.wheelhouse(pull.Target("3.13", "x86_64", "2.41"))
    assert "pip could not download wheels for Python 3.13 (x86_64, glibc 2.41)" in str(e.value)
    assert "No matching distribution found for gevent==26.9.0" in str(e.value)
    assert list((cache / "wheelhouses").iterdir()) == []


def test_old_cache_entries_are_pruned(monkeypatch, cache):
    _fake_pip(monkeypatch)
    t = pull.Target("3.11", "x86_64", "2.36")
    made = []
    for i in range(pull.KEEP + 2):
        monkeypatch.setattr(pull, "pip_version", lambda i=i: f"26.{i}")  # a new key each time
        made.append(pull.wheelhouse(t))
        os.utime(made[-1], (time.time() + i, time.time() + i))
    assert sorted(p.name for p in (cache / "wheelhouses").iterdir()) == sorted(p.name for p in made[-pull.KEEP :])


# --------------------------------------------------------------------------- a wheel of this dockguard


def _entries(version="0.2.0", code=b"x = 1\n"):
    return {
        "dockguard/__init__.py": code,
        "dockguard/templates/etc/a.j2": b"{{ a }}\n",
        f"dockguard-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: dockguard\nVersion: {version}\n".encode(),
        f"dockguard-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }


def test_the_same_code_makes_the_same_wheel_byte_for_byte(tmp_path):
    a, b = tmp_path / "a.whl", tmp_path / "b.whl"
    pull.write_wheel(a, _entries())
    pull.write_wheel(b, dict(reversed(list(_entries().items()))))
    assert a.read_bytes() == b.read_bytes()
    pull.write_wheel(b, _entries(code=b"x = 2\n"))
    assert a.read_bytes() != b.read_bytes()
    with zipfile.ZipFile(a) as z:
        names = z.namelist()
        record = list(csv.reader(io.StringIO(z.read("dockguard-0.2.0.dist-info/RECORD").decode())))
        assert names[-1] == "dockguard-0.2.0.dist-info/RECORD" and names[0].startswith("dockguard/")
        for name, digest, size in record[:-1]:  # RECORD's hashes are the files' (pip checks them)
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={want}", len(data))
        assert record[-1] == ["dockguard-0.2.0.dist-info/RECORD", "", ""]


def test_the_checkout_wheel_is_built_from_a_copy_of_what_setuptools_packages(monkeypatch, cache):
    sources = pull._source_files(pull.CHECKOUT)
    assert {"pyproject.toml", "dockguard/pull.py", "operations/tls.py", "tests/cis/conftest.py",
            "templates/etc/systemd/system/dockguard-pull.service.j2"} <= set(sources)  # fmt: skip
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in sources)
    builds = []
    monkeypatch.setattr(pull, "_build_checkout", lambda s: builds.append(s) or _entries())
    wheel = pull.dockguard_wheel()
    assert wheel.name == "dockguard-0.2.0-py3-none-any.whl" and builds == [sources]
    assert pull.dockguard_wheel() == wheel and len(builds) == 1  # the same sources: cached


def test_the_wheel_set_has_pip_and_dockguard_and_a_digest_of_both(monkeypatch, tmp_path):
    _fake_pip(monkeypatch)
    monkeypatch.setattr(pull, "_build_checkout", lambda s: _entries())
    t = pull.Target("3.11", "x86_64", "2.36")
    wheels, digest = pull.wheel_set(t)
    assert [w["name"] for w in wheels] == ["pip-26.3-py3-none-any.whl", "pyinfra-3.10.0-py3-none-any.whl",
                                           "dockguard-0.2.0-py3-none-any.whl"]  # fmt: skip
    assert all(w["sha256"] == hashlib.sha256(Path(w["path"]).read_bytes()).hexdigest() for w in wheels)
    assert pull.wheel_set(t)[1] == digest
    assert pull.wheels_digest(pull.Target("3.13", "x86_64", "2.36"), wheels) != digest
    assert pull.wheels_digest(t, list(reversed(wheels))) == digest
    changed = [dict(wheels[0], sha256="0" * 64), *wheels[1:]]
    assert pull.wheels_digest(t, changed) != digest


# --------------------------------------------------------------------------- what a host gets


def _inventory(tmp_path, text: str, name: str = "site.py") -> str:
    path = tmp_path / name  # (pyinfra caches an inventory file's code by its name)
    path.write_text(text)
    return str(path)


def test_a_hosts_own_inventory_carries_its_settings_not_how_it_is_reached(tmp_path):
    inv = fleet.load(_inventory(tmp_path, (
        "web = [('dh1', {'ssh_hostname': '10.0.0.11', 'ssh_user': 'root', 'ssh_key': '/home/op/.ssh/id', "
        "'ssh_password': 'secret', '_sudo': True, 'docker_icc': False, 'kernel_sysctl': {'kernel.kptr_restrict': 2}, "
        "'winrm_password': 'token-of-another-deploy'})]\n"
    )))  # fmt: skip
    files = pull.prepare(inv, ["dh1"], pull.Options())["dh1"]
    text, mode = files[pull.INVENTORY]
    assert mode == "600" and "secret" not in text and "/home/op/.ssh/id" not in text and "_sudo" not in text
    assert "winrm_password" not in text and "token-of-another-deploy" not in text  # only dockguard's settings
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "inventory.py").write_text(text)
    own = fleet.load(tmp_path / "host" / "inventory.py")
    assert [h.name for h in own] == ["@local"]
    cfg = fleet.host_settings(own)["@local"]
    assert (cfg["dockguard_host_name"], cfg["dockguard_pki_dir"], cfg["lynis_reports_dir"]) == (
        "dh1",
        pull.PKI,
        pull.LYNIS,
    )
    assert (cfg["docker_icc"], cfg["kernel_sysctl"]) == (False, {"kernel.kptr_restrict": 2})
    assert own.get_host("@local").data.get("ssh_hostname") == "10.0.0.11"  # its certificate names it
    assert files[pull.CONFIG][1] == "600" and json.loads(files[pull.CONFIG][0])["host"] == "dh1"
    assert {p: m for p, (_, m) in files.items() if p in pull.UNITS} == {p: "644" for p in pull.UNITS}


def test_the_same_inventory_gives_the_same_files(tmp_path):
    """A second install compares digests: nothing in a host's files may change from run to run."""
    path = _inventory(tmp_path, "web = [('dh1', {'docker_icc': False, 'ssh_hostname': 'a'})]\n")
    one = pull.prepare(fleet.load(path), ["dh1"], pull.Options(fix=True))
    two = pull.prepare(fleet.load(path), ["dh1"], pull.Options(fix=True))
    assert one == two


def test_the_ca_key_never_leaves_the_operator(tmp_path):
    operator = tmp_path / "pki"
    pki.ensure_ca(operator, dry=False)
    path = _inventory(
        tmp_path, f"web = [('dh1', {{'docker_tcp_listen': '0.0.0.0:2376', 'dockguard_pki_dir': '{operator}'}})]\n"
    )
    files = pull.prepare(fleet.load(path), ["dh1"], pull.Options())["dh1"]
    assert f"{pull.PKI}/ca/current/ca.pem" in files
    assert files[f"{pull.PKI}/ca/current/ca.pem"][0] == (pki.ca_dir(operator) / "ca.pem").read_text()
    assert not any("key" in Path(p).name for p in files)
    assert not any("PRIVATE KEY" in text for text, _ in files.values())
    # During a rotation the host also gets the new CA's certificate and the stage (its trust is both).
    pki.rotation_begin(operator)
    files = pull.prepare(fleet.load(path), ["dh1"], pull.Options())["dh1"]
    assert {f"{pull.PKI}/ca/next/ca.pem", f"{pull.PKI}/ca/rotation.json"} <= set(files)
    assert not any("PRIVATE KEY" in text for text, _ in files.values())


def test_registry_cas_are_copied_and_the_host_reads_its_copies(tmp_path):
    operator = tmp_path / "pki"
    pki.ensure_ca(operator, dry=False)
    ca = tmp_path / "registry-ca.pem"
    ca.write_bytes(pki.issuing_ca_pem(operator))
    path = _inventory(
        tmp_path, f"web = [('dh1', {{'docker_registries': [{{'address': 'registry.lab:5000', 'ca': '{ca}'}}]}})]\n"
    )
    files = pull.prepare(fleet.load(path), ["dh1"], pull.Options())["dh1"]
    copy = f"{pull.REGISTRIES}/0-registry.lab_5000.crt"
    assert files[copy] == (ca.read_text(), "644")
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "inventory.py").write_text(files[pull.INVENTORY][0])
    own = fleet.load(tmp_path / "host" / "inventory.py").get_host("@local").data.dict()
    assert own["docker_registries"] == [{"address": "registry.lab:5000", "ca": copy}]
    assert str(ca) not in files[pull.INVENTORY][0]


@pytest.mark.parametrize(
    "hosts, problem",
    [
        (
            "[('dh1', {'docker_tcp_listen': '0.0.0.0:2376', 'dockguard_pki_dir': '/nonexistent/pki'})]",
            "dh1: docker_tcp_listen: there is no dockguard CA in /nonexistent/pki yet: run dockguard apply for it first",
        ),
        (
            "[('dh1', {'docker_registries': [{'address': 'r:5000', 'client_certificate': True}], "
            "'dockguard_pki_dir': '/nonexistent/pki'})]",
            "dh1: docker_registries: there is no dockguard CA in /nonexistent/pki yet",
        ),
        ("[('dh1', {'ssh_hostname': object()})]", "dh1: ssh_hostname: Object of type object is not JSON serializable"),
        ("[('@local', {})]", "@local: pull mode is installed on hosts the inventory reaches by their own name"),
        ("[('dh 1', {})]", "dh 1: its settings as the host would read them: dockguard_host_name: must be an inventory"),
    ],
)
def test_what_cannot_go_to_a_host_is_refused_naming_host_and_setting(tmp_path, hosts, problem):
    path = _inventory(tmp_path, f"web = {hosts}\n")
    inv = fleet.load(path)
    with pytest.raises(pull.PullError) as e:
        pull.prepare(inv, [h.name for h in inv], pull.Options())
    assert str(e.value).startswith("pull mode cannot be installed (nothing was changed on any host):\n  ")
    assert problem in str(e.value)


def test_every_hosts_problem_is_said_at_once(tmp_path):
    path = _inventory(
        tmp_path, "web = [('dh1', {'ssh_hostname': object()}), ('dh2', {}), ('dh3', {'ssh_hostname': {1, 2}})]\n"
    )
    inv = fleet.load(path)
    with pytest.raises(pull.PullError) as e:
        pull.prepare(inv, ["dh1", "dh2", "dh3"], pull.Options())
    lines = str(e.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == ["dh1", "dh3"]


def test_dockguard_host_name_is_validated_and_only_for_a_hosts_own_inventory():
    assert settings.problems({"dockguard_host_name": "dh1.example.org"}) == []
    for bad in ("", "dh 1", "dh1/x", 'dh"1', "@local", "a\nb"):
        found = settings.problems({"dockguard_host_name": bad})
        assert found and found[0].startswith("dockguard_host_name: "), bad
    from types import SimpleNamespace

    def host(name, **data):
        return SimpleNamespace(name=name, data=SimpleNamespace(dict=lambda: data))

    settings.validate_hosts([host("@local", dockguard_host_name="dh1")])
    with pytest.raises(Exception) as e:
        settings.validate_hosts([host("dh1", dockguard_host_name="dh2")])
    assert "dh1: dockguard_host_name: only a host's own inventory in pull mode (@local) carries it" in str(e.value)
    with pytest.raises(pull.PullError) as e:
        pull.host_files("dh1", {"dockguard_host_name": "dh2"}, pull.Options())
    assert "dh1: dockguard_host_name: only a host's own inventory in pull mode carries it" in str(e.value)


# --------------------------------------------------------------------------- the units


def test_unit_values_are_quoted_for_systemd(tmp_path):
    opts = pull.Options(fix=True, on_calendar="*-*-* 00/2:00", textfile_dir='/srv/node exporter/100% "$HOME"')
    units = pull.render_units("dh1", opts)
    service = units[pull.SERVICE].splitlines()
    exec_start = next(line for line in service if line.startswith("ExecStart="))
    assert systemd.unquote_args(exec_start.removeprefix("ExecStart=")) == [
        f"{pull.VENV}/bin/python", "-I", "-m", "dockguard", "pull", "run", pull.INVENTORY, "--json-out", pull.LAST,
        "--textfile-dir", '/srv/node exporter/100% "$HOME"', "--lock", pull.LOCK, "--cis", "1.8", "--fix",
    ]  # fmt: skip
    assert f"WorkingDirectory={pull.STATE}" in service and "UMask=0022" in service and "Type=oneshot" in service
    assert "OnCalendar=*-*-* 00/2:00" in units[pull.TIMER].splitlines()
    assert "--fix" not in pull.render_units("dh1", pull.Options())[pull.SERVICE]


@pytest.mark.parametrize("bad", ["hourly\nExecStartPre=/bin/evil", "hourly\x00"])
def test_control_characters_never_reach_a_unit(bad):
    with pytest.raises(cli.UnitError):
        pull.render_units("dh1", pull.Options(on_calendar=bad))


@pytest.mark.parametrize("bad", ["relative/dir", "/srv/../etc", "/srv//x", "/srv/x\n", "/"])
def test_a_bad_textfile_dir_is_refused(bad):
    with pytest.raises(pull.PullError):
        pull.check_textfile_dir(bad)


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed (make deps)")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    units = pull.render_units("dh1", pull.Options(fix=True))
    # The venv's python exists only on the host: verify against this machine's.
    units[pull.SERVICE] = units[pull.SERVICE].replace(f'"{pull.VENV}/bin/python"', f'"{sys.executable}"')
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / pull.SERVICE), str(tmp_path / pull.TIMER)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "dockguard-pull" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- a run on the host

NOTES = [{"cis": "3.15/3.16", "reason": "/var/run/docker.sock is root:docker 666, wants root:docker 660 or stricter",
          "operation": "CIS 3.x: owner and mode of Docker files, sockets, units and certificates"}]  # fmt: skip
PLAN = [{"name": "CIS 2.x: /etc/docker/daemon.json content", "hosts_with_change": ["dh1", "@local"],
         "hosts_with_conditional_change": []}]  # fmt: skip


def fake_pyinfra(monkeypatch, runs):
    """cli.run_pyinfra, one scripted run after another: (rc, {host: notes} or None for a run that
    leaves no notes, plan, results)."""
    runs = list(runs)
    calls = []

    def run(inventory, *args, drift_dir=None):
        calls.append(args)
        rc, notes, plan, results = runs.pop(0)
        for name, n in (notes or {}).items():
            if drift_dir:
                Path(drift_dir, f"{name}.json").write_text(json.dumps({"host": name, "notes": n}))
        return rc, {"plan": plan, "results": results}, ""

    monkeypatch.setattr(cli, "run_pyinfra", run)
    return calls


@pytest.fixture
def own(tmp_path):
    """A host's own inventory as pull install writes it, and the paths its unit hands the run."""
    inv = fleet.load(_inventory(tmp_path, "web = [('dh1', {'ssh_hostname': '10.0.0.11'})]\n"))
    files = pull.prepare(inv, ["dh1"], pull.Options())["dh1"]
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "inventory.py").write_text(files[pull.INVENTORY][0])
    (etc / "pull.json").write_text(files[pull.CONFIG][0])
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    text = tmp_path / "textfile"
    text.mkdir()
    return {"inventory": str(etc / "inventory.py"), "json": str(state / "last.json"), "text": str(text),
            "lock": str(state / "run.lock")}  # fmt: skip


def _run(own, fix=False):
    return pull.run(own["inventory"], fix, own["json"], own["text"], own["lock"])


def _last(own) -> dict:
    return json.loads(Path(own["json"]).read_text())


def test_a_drifted_host_writes_its_drift_under_its_inventory_name(own, monkeypatch, capsys):
    fake_pyinfra(monkeypatch, [(0, {"@local": NOTES}, PLAN, None)])
    assert _run(own) == 2
    rec = _last(own)
    assert (rec["host"], rec["mode"], rec["checked"], rec["success"], rec["exit_code"]) == (
        "dh1",
        "check",
        True,
        True,
        2,
    )
    assert list(rec["result"]["hosts"]) == ["dh1"]
    assert [d["cis_1.6.0"] for d in rec["result"]["hosts"]["dh1"]["drift"]] == ["3.15/3.16", "2.x"]
    assert rec["finished_unix"] >= rec["finished_unix"] - rec["duration_seconds"] > 0
    prom = (Path(own["text"]) / metrics.PROM_FILE).read_text()
    assert 'dockguard_control_drift{cis="3.15/3.16",title="/var/run/docker.sock owner and mode"} 1' in prom
    assert "dockguard_drifted_controls 2\n" in prom and "dockguard_host_checked 1\n" in prom
    assert (Path(own["text"]) / metrics.PROM_FILE).stat().st_mode & 0o777 == 0o644
    assert Path(own["json"]).stat().st_mode & 0o777 == 0o600
    assert "dh1: DRIFT" in capsys.readouterr().out


def test_fix_corrects_then_checks_again(own, monkeypatch):
    """The result is the host's state after the run: what could not be corrected stays drift."""
    results = {"operations": [{"name": NOTES[0]["operation"], "success": ["@local"]}], "failed_hosts": []}
    calls = fake_pyinfra(monkeypatch, [(0, {"@local": NOTES}, PLAN, None), (0, None, [], results),
                                       (0, {"@local": []}, [], None)])  # fmt: skip
    assert _run(own, fix=True) == 0
    assert [c[0] for c in calls] == ["--dry", "-y", "--dry"]
    rec = _last(own)
    assert (rec["mode"], rec["success"], rec["result"]["hosts"]["dh1"]["status"]) == ("fix", True, "clean")
    assert rec["fix"]["hosts"]["dh1"]["status"] == "corrected"
    prom = (Path(own["text"]) / metrics.PROM_FILE).read_text()
    assert "dockguard_drifted_controls 0\n" in prom and "dockguard_corrected_controls 1\n" in prom


def test_a_fix_that_fails_is_a_failed_run_never_clean(own, monkeypatch):
    results = {"operations": [], "failed_hosts": ["@local"]}
    fake_pyinfra(monkeypatch, [(0, {"@local": NOTES}, PLAN, None), (1, None, [], results),
                               (0, {"@local": NOTES}, PLAN, None)])  # fmt: skip
    assert _run(own, fix=True) == 1
    rec = _last(own)
    assert (rec["checked"], rec["success"], rec["exit_code"]) == (True, False, 1)
    assert "dockguard_last_run_success 0\n" in (Path(own["text"]) / metrics.PROM_FILE).read_text()


def test_a_run_that_did_not_check_the_host_never_looks_clean(own, monkeypatch):
    fake_pyinfra(monkeypatch, [(1, None, None, None)])
    assert _run(own) == 1
    rec = _last(own)
    assert (rec["checked"], rec["success"], rec["result"]["hosts"]["dh1"]["status"]) == (False, False, "unchecked")
    prom = (Path(own["text"]) / metrics.PROM_FILE).read_text()
    values = [line.rsplit(" ", 1)[1] for line in prom.splitlines() if line.startswith("dockguard_control_drift{")]
    assert values and set(values) == {"NaN"}
    assert "dockguard_drifted_controls NaN\n" in prom and "dockguard_host_checked 0\n" in prom


def test_a_run_that_crashes_still_writes_a_failed_result(own, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("pyinfra vanished")

    monkeypatch.setattr(cli, "run_pyinfra", boom)
    assert _run(own) == 1
    rec = _last(own)
    assert rec["errors"] == ["the run stopped: RuntimeError: pyinfra vanished"] and not rec["checked"]


def test_a_run_while_another_holds_the_lock_writes_nothing(own, monkeypatch):
    import fcntl

    calls = fake_pyinfra(monkeypatch, [])
    with open(own["lock"], "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert _run(own) == cli.EXIT_BUSY
    assert calls == [] and not Path(own["json"]).exists()


def test_without_node_exporter_the_json_is_still_written(own, monkeypatch, capsys):
    fake_pyinfra(monkeypatch, [(0, {"@local": []}, [], None)])
    shutil.rmtree(own["text"])
    assert _run(own) == 0
    assert _last(own)["checked"] is True
    assert "does not exist (is prometheus-node-exporter installed?): no metrics written" in capsys.readouterr().err


def test_an_unreadable_inventory_still_names_the_host_from_pull_json(own, monkeypatch):
    Path(own["inventory"]).write_text("raise RuntimeError('broken')\n")
    fake_pyinfra(monkeypatch, [])
    assert _run(own) == 1
    rec = _last(own)
    assert rec["host"] == "dh1" and not rec["checked"]


# --------------------------------------------------------------------------- pull status


def _read(rec: dict | None, now: float | None = None, timer: str = "active") -> dict:
    return {"host": (rec or {}).get("host", "dh1"), "present": rec is not None, "now": int(now or time.time()), "timer": timer,
            "text": json.dumps(rec) if rec is not None else None}  # fmt: skip


def _record(status="drift", drift=None, host_name="dh1", **kw) -> dict:
    host = {"status": status, "errors": [] if status != "unchecked" else ["Could not connect"],
            "drift": NOTES if drift is None and status == "drift" else drift or []}  # fmt: skip
    result = {"inventory": pull.INVENTORY, "errors": [], "hosts": {"@local": host},
              "exit_code": {"clean": 0, "drift": 2}.get(status, 1)}  # fmt: skip
    t = kw.pop("finished", time.time() - 60)
    return pull.record(host_name, kw.pop("fix", False), "1.8", t - 5, t, result, kw.pop("fixed", None), [])


def test_status_reports_the_last_result_as_the_drift_table():
    entry = pull.host_status("dh1", _read(_record()), 7200)
    assert entry["status"] == "drift" and entry["drift"] == NOTES and entry["errors"] == []
    assert entry["last_run"]["mode"] == "check" and 55 <= entry["last_run"]["age_seconds"] <= 65
    assert pull.host_status("dh1", _read(_record("clean")), 7200)["status"] == "clean"


@pytest.mark.parametrize(
    "read, why",
    [
        (_read(None, timer="inactive"), "pull mode has no result here (/var/lib/dockguard/pull/last.json does not exist)"),
        (_read(None) | {"present": True, "text": "{not json"}, "its last result /var/lib/dockguard/pull/last.json could not be read (JSONDecodeError"),
        (_read(None) | {"present": True, "text": "[]"}, "could not be read (ValueError: not a pull-mode result of format 1)"),
        (_read(_record() | {"host": "dh2"}), "could not be read (ValueError: it is the result of 'dh2', not of 'dh1')"),
        (_read(_record(finished=time.time() - 3 * 3600)), "older than --max-age 2 h: is dockguard-pull.timer running? (it is active)"),
        (_read(_record(finished=time.time() + 3600)), "in the host's future: its clock?"),
        (_read(_record("unchecked")), "Could not connect"),
    ],
)  # fmt: skip
def test_status_is_unchecked_never_clean_when_the_result_cannot_stand_for_a_check(read, why):
    entry = pull.host_status("dh1", read, 7200)
    assert entry["status"] == "unchecked" and entry["drift"] == []
    assert any(why in e for e in entry["errors"]), entry["errors"]


def test_a_failed_correction_is_a_failed_host():
    fixed = {"inventory": pull.INVENTORY, "errors": [], "exit_code": 1,
             "hosts": {"@local": {"status": "failed", "errors": ["dockerd did not come back"], "corrected": []}}}  # fmt: skip
    entry = pull.host_status("dh1", _read(_record(fix=True, fixed=fixed)), 7200)
    assert entry["status"] == "failed" and entry["errors"] == ["dockerd did not come back"]


def _fake_status_deploy(monkeypatch, found: dict, rc=0, stderr=""):
    def run_deploy(inventory, action, limit, opts, env=None):
        assert action == "status"
        for name, read in found.items():
            Path(env["DOCKGUARD_PULL_STATUS_DIR"], f"{name}.json").write_text(json.dumps(read | {"host": name}))
        return rc, None, stderr

    monkeypatch.setattr(pull, "run_deploy", run_deploy)


def test_status_exit_codes_are_those_of_dockguard_drift(tmp_path, monkeypatch):
    path = _inventory(tmp_path, "web = [('dh1', {}), ('dh2', {})]\n")
    clean, clean2 = _record("clean"), _record("clean", host_name="dh2")
    _fake_status_deploy(monkeypatch, {"dh1": _read(clean), "dh2": _read(clean2)})
    r = pull.status(path, [], 7200, "1.8")
    assert r["exit_code"] == 0 and {h["status"] for h in r["hosts"].values()} == {"clean"}
    _fake_status_deploy(monkeypatch, {"dh1": _read(_record()), "dh2": _read(clean2)})
    assert pull.status(path, [], 7200, "1.8")["exit_code"] == 2
    _fake_status_deploy(
        monkeypatch, {"dh1": _read(_record())}, rc=1, stderr="    [dh2] Could not connect (timed out)\n"
    )
    r = pull.status(path, [], 7200, "1.8")
    assert r["exit_code"] == 1 and r["hosts"]["dh2"] == {"status": "unchecked", "errors": ["Could not connect (timed out)"],
                                                         "drift": [], "last_run": None}  # fmt: skip
    r = pull.status(path, ["dh9"], 7200, "1.8")
    assert r["exit_code"] == 1 and r["errors"][0] == "--limit 'dh9' matches no host or group of the inventory"


def test_push_and_pull_report_a_drifted_host_the_same_way(tmp_path, monkeypatch, own):
    """`dockguard drift` over SSH and `pull status` of the host's own run: the same drift, in the
    same numbering, for the same notes and plan."""
    path = _inventory(tmp_path, "web = [('dh1', {})]\n")
    fake_pyinfra(monkeypatch, [(0, {"dh1": NOTES}, PLAN, None)])
    push = cli.check(path, [])
    cli.numbered(push, "1.8")
    fake_pyinfra(monkeypatch, [(0, {"@local": NOTES}, PLAN, None)])
    _run(own)
    rec = json.loads(Path(own["json"]).read_text())
    _fake_status_deploy(monkeypatch, {"dh1": _read(rec)})
    pulled = pull.status(path, [], 7200, "1.8")
    assert pulled["exit_code"] == push["exit_code"] == 2
    assert pulled["hosts"]["dh1"]["status"] == push["hosts"]["dh1"]["status"] == "drift"
    assert pulled["hosts"]["dh1"]["drift"] == push["hosts"]["dh1"]["drift"]
    assert cli.text_report(pulled, False).splitlines()[1:] == cli.text_report(push, False).splitlines()[1:]
    assert pull.status(path, [], 7200, "1.6")["hosts"]["dh1"]["drift"] == [
        d | {"cis": d["cis_1.6.0"]} for d in push["hosts"]["dh1"]["drift"]
    ]


def test_max_age_durations():
    assert [pull.parse_age(v) for v in ("90s", "45m", "2h", "1d", "600")] == [90, 2700, 7200, 86400, 600]
    for bad in ("0h", "2 hours", "-1h", ""):
        with pytest.raises(pull.PullError):
            pull.parse_age(bad)


# --------------------------------------------------------------------------- install and remove from the command line


def test_install_refuses_bad_input_before_any_host_is_touched(tmp_path, monkeypatch, capsys):
    deployed = []
    monkeypatch.setattr(pull, "run_deploy", lambda *a, **k: deployed.append(a))
    path = _inventory(tmp_path, "web = [('dh1', {'docker_icc': 'maybe'}), ('dh2', {'docker_icc': True})]\n")
    assert cli.main(["pull", "install", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dockguard pull install: pull mode cannot be installed (nothing was changed on any host):")
    assert "\n  dh1: docker_icc: expected a boolean, got a string 'maybe'" in err
    path = _inventory(tmp_path, "web = [('dh1', {}), ('dh2', {'ssh_hostname': object()})]\n", "site2.py")
    assert cli.main(["pull", "install", path]) == 1
    assert "dh2: ssh_hostname: Object of type object is not JSON serializable" in capsys.readouterr().err
    assert cli.main(["pull", "install", path, "--limit", "dh9"]) == 1
    assert "--limit 'dh9' matches no host or group" in capsys.readouterr().err
    assert cli.main(["pull", "install", path, "--limit", "dh1", "--textfile-dir", "tmp"]) == cli.EXIT_USAGE
    assert deployed == []
    assert cli.main(["pull", "status", path, "--max-age", "soon"]) == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as e:
        cli.main(["pull", "install"])
    assert e.value.code == cli.EXIT_USAGE


def test_install_runs_the_pull_deploy_and_reports_each_host(tmp_path, monkeypatch, capsys):
    seen = {}

    def run_deploy(inventory, action, limit, opts, env=None):
        seen.update(action=action, limit=limit, opts=opts)
        ops = [{"name": "dockguard pull: venv", "success": ["dh1"], "error": []},
               {"name": "dockguard pull: timer", "success": [], "error": ["dh2"]}]  # fmt: skip
        results = {"operations": ops, "failed_hosts": ["dh2"], "totals": {"success": 1}}
        return 1, {"results": results}, "    [dh2] dockguard: python3 is 3.9: dockguard needs Python 3.11 or newer\n"

    monkeypatch.setattr(pull, "run_deploy", run_deploy)
    path = _inventory(tmp_path, "web = [('dh1', {}), ('dh2', {}), ('dh3', {})]\n")
    if HAVE_ANALYZE:
        assert cli.main(["pull", "install", path, "--fix", "--limit", "web", "--on-calendar", "daily"]) == 1
    else:
        monkeypatch.setattr(cli, "check_calendar", lambda v: v)
        assert cli.main(["pull", "install", path, "--fix", "--limit", "web", "--on-calendar", "daily"]) == 1
    assert seen == {"action": "install", "limit": ["web"], "opts": pull.Options(fix=True, on_calendar="daily")}
    out = capsys.readouterr().out.splitlines()
    assert "dh1: changed" in out and "    changed: dockguard pull: venv" in out
    assert "dh2: FAILED" in out and "    dockguard: python3 is 3.9: dockguard needs Python 3.11 or newer" in out
    assert "dh3: unchanged" in out and out[-1] == "exit 1"


def test_a_second_install_that_changes_nothing_is_exit_0(tmp_path, monkeypatch, capsys):
    results = {"operations": [{"name": "dockguard pull: venv", "success": [], "error": [], "no_change": ["dh1"]}],
               "failed_hosts": [], "totals": {"success": 0}}  # fmt: skip
    monkeypatch.setattr(pull, "run_deploy", lambda *a, **k: (0, {"results": results}, ""))
    monkeypatch.setattr(cli, "check_calendar", lambda v: v)
    path = _inventory(tmp_path, "web = [('dh1', {})]\n")
    assert cli.main(["pull", "install", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hosts"]["dh1"] == {"status": "unchanged", "changed": [], "errors": []}
    assert report["totals"] == {"success": 0}
    assert cli.main(["pull", "remove", path]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["dh1: unchanged", "exit 0"]


def test_the_deploy_gets_its_options_through_the_environment():
    opts = pull.Options(fix=True, on_calendar="daily", textfile_dir="/srv/t", cis="1.6")
    os.environ[pull.Options.ENV] = opts.to_env()
    try:
        assert pull.Options.from_env() == opts
    finally:
        del os.environ[pull.Options.ENV]
    assert pull.Options.from_env() == pull.Options()


def test_a_result_that_cannot_be_written_fails_the_run_and_leaves_no_older_one(own, monkeypatch, capsys):
    """A clean result from an earlier run must not stand for a run that found drift but could not
    write it (a full /var): the old files go, `pull status` says there is no result, the run fails."""
    fake_pyinfra(monkeypatch, [(0, {"@local": []}, [], None)])
    assert _run(own) == 0 and Path(own["json"]).exists()
    real = pull.metrics.write_atomic

    def full_disk(path, data, mode):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pull.metrics, "write_atomic", full_disk)
    fake_pyinfra(monkeypatch, [(0, {"@local": NOTES}, PLAN, None)])
    assert _run(own) == cli.EXIT_UNCHECKED
    assert not Path(own["json"]).exists()
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(pull.metrics, "write_atomic", real)
