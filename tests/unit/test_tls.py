"""The operator-side PKI: CA, client certificate, signing a host's CSR, and the
decision to (re)issue a server certificate."""

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from operations import tls


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    tls.ensure_ca(d)
    return d


def _csr(key, cn="ignored", san="evil.example"):
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def test_ca_directory_and_private_keys_are_private(pki):
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    for name in ("ca-key.pem", "key.pem"):
        assert stat.S_IMODE((pki / name).stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    client = x509.load_pem_x509_certificate((pki / "cert.pem").read_bytes())
    client.verify_directly_issued_by(ca)


def test_ensure_ca_is_idempotent_and_tightens_the_directory(pki):
    before = {p.name: p.read_bytes() for p in pki.iterdir()}
    pki.chmod(0o755)
    tls.ensure_ca(pki)
    assert {p.name: p.read_bytes() for p in pki.iterdir()} == before
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700


def test_a_csr_gets_the_inventory_names_not_its_own(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tls.sign_server_csr(pki, _csr(key), "dh1", ["dh1", "localhost"], ["10.213.1.2", "127.0.0.1"], 365)
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["dh1", "localhost"]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    ca = (pki / "ca.pem").read_bytes()
    assert tls.cert_problem(pem.decode(), ca, ["dh1", "localhost"], ["10.213.1.2", "127.0.0.1"], 30) is None


def test_cert_problems(pki, tmp_path):
    ca = (pki / "ca.pem").read_bytes()
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
    tls.ensure_ca(other)
    assert tls.cert_problem(good, (other / "ca.pem").read_bytes(), ["dh1"], ["127.0.0.1"], 30) == (
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


def test_client_certificate_is_renewed_before_it_expires(pki):
    ca_key, ca = tls._load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    old = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=300))
        .not_valid_after(now + dt.timedelta(days=5))
        .sign(ca_key, hashes.SHA256())
    )
    (pki / "cert.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    tls.ensure_ca(pki)
    renewed = x509.load_pem_x509_certificate((pki / "cert.pem").read_bytes())
    assert renewed.not_valid_after_utc > now + dt.timedelta(days=300)
