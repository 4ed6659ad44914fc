"""Pull mode's facts and operations (dockguard/pull_ops.py) in the fixture style (pyinfra-testing:
facts in, commands out; tests/unit/pull/{facts,operations}/<module>.<name>/), and the hosts' side
of the CA in pull mode: no key there, so a certificate that must be (re)issued is reported for the
operator, never signed, and no CA is ever made on the host."""

from pathlib import Path

import pytest
from dockguard.operations import Context, dockerd, registries, tls
from pyinfra.api.exceptions import FactProcessError
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.facts import make_fact_tests
from pyinfra_testing.operations import make_operation_tests
from pyinfra_testing.util import FakeState, create_host

from dockguard import identity, pki, pull_ops

BASE = Path(__file__).parent / "pull"

for _path in sorted(d.name for d in (BASE / "facts").iterdir() if d.is_dir()):
    locals()[f"facts_{_path}"] = make_fact_tests("dockguard", _path, BASE / "facts" / _path)
for _path in sorted(d.name for d in (BASE / "operations").iterdir() if d.is_dir()):
    locals()[f"operations_{_path}"] = make_operation_tests("dockguard", _path, BASE / "operations" / _path)


@pytest.mark.parametrize(
    "fact, output, message",
    [
        (pull_ops.PullState(), ["venvs !!notbase64"], "pull mode state: venvs: not base64"),
        (pull_ops.PullState(), ["dir 755 /opt/dockguard-pull"], "unexpected dir line"),
        (pull_ops.PullState(), ["file abc 600 0:0 relative/path"], "unexpected file line"),
        (pull_ops.PullState(), ["python /usr/bin/python3 what"], "unexpected python3 probe"),
        (pull_ops.PullState(), ["Welcome to the host!"], "unexpected line 'Welcome to the host!'"),
        (pull_ops.PullResult(), ["now 1", "timer active", "last ###"], "last.json: not base64"),
        (pull_ops.PullResult(), ["timer active", "last -"], "the host's clock was not read"),
        (pull_ops.PullResult(), ["now 1", "motd: hello"], "unexpected line"),
    ],
)
def test_output_that_cannot_be_trusted_fails_that_host_alone(fact, output, message):
    """FactProcessError: pyinfra fails that host alone (any other exception would stop every host)."""
    with pytest.raises(FactProcessError, match=message):
        fact.process(output)


# --------------------------------------------------------------------------- the CA's key stays with the operator


@pytest.fixture
def host_pki(tmp_path):
    """A CA made on 'the operator's machine', and the host's copy pull install makes of it: its
    public certificate only, in pki's layout."""
    operator = tmp_path / "operator"
    pki.ensure_ca(operator, dry=False)
    host = tmp_path / "host"
    (host / "ca" / "current").mkdir(parents=True)
    (host / "ca" / "current" / "ca.pem").write_bytes((pki.ca_dir(operator) / "ca.pem").read_bytes())
    return operator, host


def _on_host(facts: dict, name: str = "@local", data: dict | None = None):
    state = FakeState()
    h = create_host(state, facts=facts, data=data or {})
    h.name = name  # (create_host reuses its name argument for the facts)
    return state, h


def _run(op, facts: dict, data: dict | None = None, **kwargs):
    """The commands ``op`` yields and the drift notes it records, on a fake host named @local."""
    Context._hosts.pop("@local", None)
    state, h = _on_host(facts, data=data)
    with ctx_state.use(state), ctx_host.use(h):
        commands = list(op._inner(**kwargs))
        return commands, Context.of().notes, h.noop_description


def _server_cert(operator: Path, dns: list[str], ips: list[str], days: int) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockerd")]))
        .sign(key, hashes.SHA256())
    )
    return pki.sign_server_csr(operator, csr.public_bytes(serialization.Encoding.PEM), "dh1", dns, ips, days).decode()


def test_a_certificate_to_reissue_is_reported_for_the_operator_never_signed_on_the_host(host_pki):
    operator, host = host_pki
    dns, ips = ["dh1", "localhost"], ["10.0.0.11", "127.0.0.1"]
    expiring = _server_cert(operator, dns, ips, days=10)  # inside the renewal window of 30 days
    live = {"ca": None, "cert": expiring, "key": True, "key_matches": True}
    commands, notes, noop = _run(tls.server_certificate, {"tls.TlsFiles": live}, directory=str(host), cn="dh1",
                                 dns=dns, ips=ips, days=365, renew_days=30, operator_only=True)  # fmt: skip
    assert commands == []  # nothing to sign with: the other areas go on
    assert noop.startswith("the server certificate must be re-issued by the operator (the server certificate expires")
    assert len(notes) == 1 and notes[0]["cis"] == "2.7" and notes[0]["operation"] == tls.CERT_OP
    assert notes[0]["reason"].endswith(
        ": the server certificate must be re-issued by the operator: run dockguard apply for dh1 "
        "(pull mode never holds the CA's key)"
    )
    assert not (host / "ca" / "current" / "ca-key.pem").exists()


def test_a_valid_certificate_needs_no_ca_key(host_pki):
    operator, host = host_pki
    dns, ips = ["dh1", "localhost"], ["127.0.0.1"]
    live = {"ca": None, "cert": _server_cert(operator, dns, ips, days=200), "key": True, "key_matches": True}
    commands, notes, noop = _run(tls.server_certificate, {"tls.TlsFiles": live}, directory=str(host), cn="dh1",
                                 dns=dns, ips=ips, days=365, renew_days=30, operator_only=True)  # fmt: skip
    assert (commands, notes, noop) == ([], [], "the server certificate is valid")


def test_push_mode_still_signs(host_pki):
    operator, _ = host_pki
    live = {"ca": None, "cert": None, "key": True, "key_matches": False}
    commands, notes, _ = _run(tls.server_certificate, {"tls.TlsFiles": live}, directory=str(operator), cn="dh1",
                              dns=["dh1"], ips=["127.0.0.1"], days=365, renew_days=30)  # fmt: skip
    assert [c.function.__name__ for c in commands] == ["_issue"]
    assert notes == [{"cis": "2.7", "reason": "no server certificate", "operation": None}]


def test_a_ca_file_that_differs_is_left_to_the_operator_in_pull_mode(host_pki):
    """It may be newer than the host's copy (a rotation since the install): never replaced there."""
    operator, host = host_pki
    other = operator.parent / "other"
    pki.ensure_ca(other, dry=False)
    live = {"ca": (pki.ca_dir(other) / "ca.pem").read_text(), "cert": None, "key": True, "key_matches": False}
    commands, notes, _ = _run(tls.ca_certificate, {"tls.TlsFiles": live}, directory=str(host), operator_only="dh1")
    assert commands == []
    assert notes[0]["cis"] == "2.7" and notes[0]["operation"] == tls.CA_OP
    assert (
        "not the dockguard CA's certificate(s) pull mode was installed with: run dockguard apply for dh1"
        in (notes[0]["reason"])
    )
    commands, _, _ = _run(tls.ca_certificate, {"tls.TlsFiles": live}, directory=str(host))
    assert [c.function.__name__ for c in commands] == ["_upload_public"]  # push mode replaces it


def test_a_registry_client_certificate_is_reported_for_the_operator(host_pki):
    _, host = host_pki
    live = {"cert": None, "key": True, "key_matches": False}
    commands, notes, _ = _run(registries.client_certificate, {}, address="registry.lab:5000", live=live,
                              pki_dir=str(host), days=90, renew_days=30, operator_only="dh1")  # fmt: skip
    assert commands == []
    assert notes == [{"cis": "3.7/3.8", "operation": None, "reason": "registry.lab:5000: no client certificate: the "
                      "client certificate must be re-issued by the operator: run dockguard apply for dh1 (pull mode "
                      "never holds the CA's key)"}]  # fmt: skip


def test_the_host_is_named_by_its_inventory_name_in_pull_mode(host_pki):
    _, host = host_pki
    state, h = _on_host({}, data={"dockguard_host_name": "dh1", "ssh_hostname": "10.0.0.11"})
    with ctx_state.use(state), ctx_host.use(h):
        assert identity.name() == "dh1"
    state, h = _on_host({}, name="dh2", data={})
    with ctx_state.use(state), ctx_host.use(h):
        assert identity.name() == "dh2"
    assert identity.pull({"dockguard_host_name": "dh1"}) and not identity.pull({"dockguard_host_name": None})


def test_the_preflight_never_makes_a_ca_in_pull_mode(monkeypatch, tmp_path):
    """A TLS host checking itself: the preflight (which makes the CA for push runs) leaves pki alone."""
    from types import SimpleNamespace

    made = []
    monkeypatch.setattr(pki, "ensure_ca", lambda *a, **k: made.append(a))
    monkeypatch.setattr(dockerd, "_read_state", lambda h, reads=None: ({"dockerd": "x"}, {"family": "debian"}, None))
    monkeypatch.setattr(dockerd, "preflight_problems", lambda *a: [])
    monkeypatch.setattr(dockerd._live, "set", lambda h, v: None)
    monkeypatch.setattr(dockerd.platform, "remember", lambda h, v: None)

    class Host:
        def __init__(self, name, **data):
            self.name, self.data = name, SimpleNamespace(dict=lambda: data)

    host = Host

    pulled = host("@local", docker_tcp_listen="0.0.0.0:2376", dockguard_host_name="dh1",
                  dockguard_pki_dir=str(tmp_path / "host"))  # fmt: skip
    pushed = host("dh2", docker_tcp_listen="0.0.0.0:2376", dockguard_pki_dir=str(tmp_path / "operator"))
    state = SimpleNamespace(failed_hosts=set())
    with ctx_state.use(state):
        dockerd.preflight([pulled])
        assert made == []
        dockerd.preflight([pushed])
        assert made == [(tmp_path / "operator",)]


def _install_with(monkeypatch, config: str | None, textfile_dir: str) -> list:
    """pull_ops.install with the host's reading given and every operation recorded, not run."""
    from types import SimpleNamespace

    from dockguard import pull, pull_ops

    calls = []
    live = {"python": {"path": "/usr/bin/python3"}, "dirs": {}, "files": {}, "found": [], "timer": {},
            "config": config}  # fmt: skip
    fake = SimpleNamespace(name="h", data=SimpleNamespace(dict=lambda: {}), get_fact=lambda *a, **k: live)
    monkeypatch.setattr(pull_ops, "host", fake)
    monkeypatch.setattr(pull, "host_files", lambda *a: {u: ("x", "644") for u in pull.UNITS})
    monkeypatch.setattr(pull, "target_of", lambda *a: SimpleNamespace(python="3.11"))
    monkeypatch.setattr(pull, "wheel_set", lambda t: ([], "digest"))
    for op in ("directories", "venv", "files", "stale", "timer"):
        monkeypatch.setattr(pull_ops, op, lambda _op=op, **kw: calls.append((_op, kw)))
    pull_ops.install(pull.Options(textfile_dir=textfile_dir))
    return calls


def test_an_install_to_another_textfile_directory_removes_the_old_metrics_file(monkeypatch):
    """node_exporter must not go on serving the old file (frozen metrics) after the move."""
    import json as _json

    moved = _install_with(monkeypatch, _json.dumps({"textfile_dir": "/srv/old"}), "/srv/new")
    assert dict(moved)["stale"]["paths"] == ["/srv/old/dockguard.prom"]
    same = _install_with(monkeypatch, _json.dumps({"textfile_dir": "/srv/new"}), "/srv/new")
    assert dict(same)["stale"]["paths"] == []
    unreadable = _install_with(monkeypatch, "{not json", "/srv/new")
    assert dict(unreadable)["stale"]["paths"] == []
