"""The operator-side PKI: CA, client certificate, signing a host's CSR, and the
decision to (re)issue a server certificate."""

import datetime as dt
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockguard import pki as tls  # the CA on the operator's machine


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    assert tls.ensure_ca(d, dry=False) is True
    return d


def _ca(d):
    return d / "ca" / "current"


def _client(d):
    return d / "client"


def _csr(key, cn="ignored", san="evil.example"):
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def _files(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and not p.name.startswith(".lock"))


def test_ca_key_and_client_credentials_live_apart(pki):
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    assert sorted(p.name for p in _client(pki).iterdir()) == ["ca.pem", "cert.pem", "key.pem"]  # DOCKER_CERT_PATH
    assert sorted(p.name for p in _ca(pki).iterdir()) == ["ca-key.pem", "ca.pem"]
    for key in (_ca(pki) / "ca-key.pem", _client(pki) / "key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((_ca(pki) / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    client = x509.load_pem_x509_certificate((_client(pki) / "cert.pem").read_bytes())
    client.verify_directly_issued_by(ca)
    left = (client.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert 28 <= left <= 30  # short-lived by default


def test_ensure_ca_is_idempotent_and_tightens_the_directory(pki):
    before = {p: (pki / p).read_bytes() for p in _files(pki)}
    pki.chmod(0o755)
    tls.ensure_ca(pki, dry=False)
    assert {p: (pki / p).read_bytes() for p in _files(pki)} == before
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700


def test_a_dry_run_writes_nothing(tmp_path):
    d = tmp_path / "pki"
    assert tls.ensure_ca(d, dry=True) is False
    assert not d.exists()


def test_dry_run_is_read_from_pyinfras_command_line(monkeypatch):
    monkeypatch.delenv("DOCKGUARD_DRY", raising=False)
    monkeypatch.setattr("sys.argv", ["/venv/bin/pyinfra", "--json", "--dry", "inv.py", "deploy.py"])
    assert tls.dry_run() is True
    monkeypatch.setattr("sys.argv", ["/venv/bin/pyinfra", "--json", "inv.py", "deploy.py"])
    assert tls.dry_run() is True  # --json without -y only prints the plan
    monkeypatch.setattr("sys.argv", ["/venv/bin/pyinfra", "-y", "--json", "inv.py", "deploy.py"])
    assert tls.dry_run() is False
    monkeypatch.setenv("DOCKGUARD_DRY", "1")
    assert tls.dry_run() is True


@pytest.mark.parametrize("lost", ["ca-key.pem", "ca.pem"])
def test_a_missing_half_of_the_ca_is_an_error_never_a_new_ca(pki, lost):
    (_ca(pki) / lost).unlink()
    before = {p: (pki / p).read_bytes() for p in _files(pki)}
    with pytest.raises(tls.CaError) as e:
        tls.ensure_ca(pki, dry=False)
    assert "is missing but its" in str(e.value) and "restore it from your backup" in str(e.value)
    assert {p: (pki / p).read_bytes() for p in _files(pki)} == before


def test_client_credentials_without_their_ca_are_an_error(pki):
    tls.remove_set(_ca(pki))
    with pytest.raises(tls.CaError) as e:
        tls.ensure_ca(pki, dry=False)
    assert "client credentials made by it remain" in str(e.value)


def test_the_old_flat_layout_is_moved_not_replaced(tmp_path):
    d = tmp_path / "pki"
    tls.ensure_ca(d, dry=False)
    ca, key = (_ca(d) / "ca.pem").read_bytes(), (_ca(d) / "ca-key.pem").read_bytes()
    cert, ckey = (_client(d) / "cert.pem").read_bytes(), (_client(d) / "key.pem").read_bytes()
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    for name, data in {"ca.pem": ca, "ca-key.pem": key, "cert.pem": cert, "key.pem": ckey}.items():
        (old / name).write_bytes(data)
    with pytest.raises(tls.CaError) as e:
        tls.ensure_ca(old, dry=True)
    assert "pki migrate" in str(e.value)
    tls.ensure_ca(old, dry=False)
    assert (_ca(old) / "ca-key.pem").read_bytes() == key
    assert (_client(old) / "cert.pem").read_bytes() == cert
    assert not (old / "ca-key.pem").exists()


def test_write_set_switches_a_pair_in_one_step(tmp_path):
    target = tmp_path / "set"
    tls.write_set(target, {"a": (b"1", 0o600), "b": (b"2", 0o644)})
    first = target.resolve()
    tls.write_set(target, {"a": (b"3", 0o600), "b": (b"4", 0o644)})
    assert target.is_symlink() and (target / "a").read_bytes() == b"3" and (target / "b").read_bytes() == b"4"
    assert not first.exists()  # the old set is gone
    assert stat.S_IMODE((target / "a").stat().st_mode) == 0o600


def test_an_encrypted_ca_key_needs_its_passphrase(tmp_path, monkeypatch):
    monkeypatch.setattr(tls, "_passphrase_cache", [b"s3cret"])
    d = tmp_path / "pki"
    tls.ensure_ca(d, dry=False)
    assert b"ENCRYPTED" in (_ca(d) / "ca-key.pem").read_bytes()
    monkeypatch.setattr(tls, "_passphrase_cache", [None])
    with pytest.raises(tls.CaError) as e:
        tls.issue_client(d)
    assert str(e.value) == (
        f"the CA key {_ca(d) / 'ca-key.pem'} is encrypted: give its passphrase in DOCKGUARD_CA_PASSPHRASE, "
        "or on a file descriptor named by DOCKGUARD_CA_PASSPHRASE_FD"
    )


def test_the_passphrase_can_come_from_a_file_descriptor(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"from-fd\n")
    r = os.open(secret, os.O_RDONLY)  # as `3<secret dockguard ...` hands it over
    monkeypatch.setenv("DOCKGUARD_CA_PASSPHRASE_FD", str(r))
    monkeypatch.setattr(tls, "_passphrase_cache", [])
    assert tls.passphrase() == b"from-fd"
    assert tls.passphrase() == b"from-fd"  # read once


def test_pki_client_issues_short_lived_credentials(pki):
    cert = tls.issue_client(pki, days=7)
    assert 6 <= (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days <= 7
    assert x509.load_pem_x509_certificate((_client(pki) / "cert.pem").read_bytes()).serial_number == cert.serial_number


def test_status_shows_ca_and_client_expiry(pki):
    lines, problems = tls.status(pki)
    assert problems == []
    assert lines[1].startswith(f"CA: {_ca(pki) / 'ca.pem'}: expires ")
    assert "key not encrypted" in lines[1]
    assert lines[2] == "rotation: none"
    assert lines[3].startswith(f"client: {_client(pki)} (DOCKER_CERT_PATH): expires ")
    assert lines[3].endswith("issued by the current CA")


def test_status_warns_before_the_client_certificate_expires(pki):
    tls.issue_client(pki, days=3)
    _, problems = tls.status(pki)
    assert len(problems) == 1 and problems[0].startswith("the client certificate expires in ")


def test_status_flags_a_client_certificate_from_another_ca(pki, tmp_path):
    other = tmp_path / "other"
    tls.ensure_ca(other, dry=False)
    tls.write_set(
        _client(pki), {n: ((_client(other) / n).read_bytes(), 0o600) for n in ("ca.pem", "cert.pem", "key.pem")}
    )
    _, problems = tls.status(pki)
    assert problems == [f"the client certificate in {_client(pki)} was not issued by the dockguard CA"]


def test_rotation_in_three_stages(pki):
    old = (_ca(pki) / "ca.pem").read_bytes()
    r = tls.rotation_begin(pki)
    assert r["stage"] == 1 and not r["deployed"]
    new = (pki / "ca" / "next" / "ca.pem").read_bytes()
    assert tls.trusted_pem(pki) == old + new  # hosts and the client trust both
    assert (_client(pki) / "ca.pem").read_bytes() == old + new
    assert tls.issuing_ca_pem(pki) == old
    with pytest.raises(tls.CaError):
        tls.rotation_advance(pki)  # stage 1 has not reached every host
    assert "stage 1 of 3" in tls.status(pki)[0][-2]
    tls.rotation_deployed(pki)
    assert tls.rotation_advance(pki)["stage"] == 2
    assert tls.issuing_ca_pem(pki) == new
    client = x509.load_pem_x509_certificate((_client(pki) / "cert.pem").read_bytes())
    client.verify_directly_issued_by(x509.load_pem_x509_certificate(new))
    tls.rotation_deployed(pki)
    assert tls.rotation_advance(pki)["stage"] == 3
    assert tls.trusted_pem(pki) == new
    assert (_client(pki) / "ca.pem").read_bytes() == new
    tls.rotation_deployed(pki)
    assert tls.rotation_advance(pki) is None
    assert (_ca(pki) / "ca.pem").read_bytes() == new
    assert not (pki / "ca" / "next").exists() and tls.rotation(pki) is None
    assert tls.status(pki)[1] == []
    retired = list((pki / "ca" / "retired").iterdir())
    assert [p.read_bytes() for p in retired] == [old]  # only the certificate: the old key is gone


def test_an_interrupted_rotation_resumes_where_it_stopped(pki):
    tls.rotation_begin(pki)
    new = (pki / "ca" / "next" / "ca.pem").read_bytes()
    again = tls.rotation_begin(pki)  # a second start resumes, never makes another new CA
    assert again["stage"] == 1
    assert (pki / "ca" / "next" / "ca.pem").read_bytes() == new


def test_a_csr_gets_the_inventory_names_not_its_own(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tls.sign_server_csr(pki, _csr(key), "dh1", ["dh1", "localhost"], ["10.213.1.2", "127.0.0.1"], 365)
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["dh1", "localhost"]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    ca = (_ca(pki) / "ca.pem").read_bytes()
    assert tls.cert_problem(pem.decode(), ca, ["dh1", "localhost"], ["10.213.1.2", "127.0.0.1"], 30) is None


def test_cert_problems(pki, tmp_path):
    ca = (_ca(pki) / "ca.pem").read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    good = tls.sign_server_csr(pki, _csr(key), "dh1", ["dh1"], ["127.0.0.1"], 365).decode()
    assert tls.cert_problem(None, ca, ["dh1"], ["127.0.0.1"], 30) == "no server certificate"
    assert tls.cert_problem(good, ca, ["dh2"], ["127.0.0.1"], 30) == (
        "the server certificate names ['dh1', '127.0.0.1'], not ['dh2', '127.0.0.1']"
    )
    assert tls.cert_problem(good, ca, ["dh1"], ["127.0.0.1"], 400).startswith("the server certificate expires in 36")
    short = tls.sign_server_csr(pki, _csr(key), "dh1", ["dh1"], ["127.0.0.1"], 10).decode()
    assert tls.cert_problem(short, ca, ["dh1"], ["127.0.0.1"], 30) == (
        "the server certificate expires in 10 days (renewed 30 days before)"
    )
    other = tmp_path / "other"
    tls.ensure_ca(other, dry=False)
    assert tls.cert_problem(good, (_ca(other) / "ca.pem").read_bytes(), ["dh1"], ["127.0.0.1"], 30) == (
        "the server certificate was not issued by the dockguard CA"
    )


def test_forged_csr_is_refused(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = bytearray(_csr(key))
    body = pem.index(b"\n") + 40
    pem[body] = ord("A") if pem[body] != ord("A") else ord("B")
    with pytest.raises(ValueError):
        tls.sign_server_csr(pki, bytes(pem), "dh1", ["dh1"], [], 365)


def test_subject_names_split_dns_and_addresses():
    assert tls.subject_names("dh1", {"ssh_hostname": "10.213.1.2"}, ["docker.example", "192.0.2.7"]) == (
        ["dh1", "docker.example", "localhost"],
        ["10.213.1.2", "127.0.0.1", "192.0.2.7"],
    )
