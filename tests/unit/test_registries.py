"""Registries trusted over TLS (operations/registries.py): the schema, the fact, the client
certificate signed by the dockguard CA, and credentials files made private."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dockguard.operations import registries

from dockguard import pki, settings


def test_the_schema_refuses_a_bad_registry_before_any_host(tmp_path):
    ca = tmp_path / "ca.pem"
    pki.ensure_ca(tmp_path / "pki", dry=False)
    ca.write_bytes(pki.issuing_ca_pem(tmp_path / "pki"))
    assert settings.problems({"docker_registries": [{"address": "registry.lab:5000", "ca": str(ca)}]}) == []
    cases = [
        ([{"address": "http://registry"}], "[0].address: 'http://registry' is not HOST[:PORT]"),
        ([{"address": "r:5000", "ca": str(tmp_path / "nope.pem")}], "[0].ca: "),
        ([{"address": "r:5000", "ca": str(tmp_path)}], "[0].ca: "),
        ([{"address": "r:5000"}], "[0]: names neither a ca nor client_certificate"),
        ([{"address": "r:5000", "client_certificate": "yes"}], "[0].client_certificate: True or False"),
        ([{"address": "r:5000", "client_certificate": True}] * 2, "[1].address: 'r:5000' is listed twice"),
        ([{"address": "r:5000", "user": "x"}], "[0]: a mapping of address, ca, client_certificate"),
    ]
    (tmp_path / "not.pem").write_text("hello")
    cases.append(([{"address": "r:5000", "ca": str(tmp_path / "not.pem")}], "[0].ca: "))
    for value, problem in cases:
        found = settings.problems({"docker_registries": value})
        assert found and found[0].startswith(f"docker_registries: {problem}"), (value, found)


def test_the_fact_reads_certificates_keys_and_loose_credentials():
    out = registries.RegistryFiles().process([
        "=== registry.lab:5000", "--- cert", "-----BEGIN CERTIFICATE-----", "AAAA", "-----END CERTIFICATE-----",
        "--- key", "abc", "abc",
        "=== other:443",
        "=== credentials", "644 /root/.docker/config.json", "600 /home/ann/.docker/config.json",
    ])  # fmt: skip
    assert out["registry.lab:5000"] == {
        "cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "key": True, "key_matches": True,
    }  # fmt: skip
    assert out["other:443"] == {"cert": None, "key": False, "key_matches": False}
    assert out["_credentials"] == [{"path": "/root/.docker/config.json", "mode": "644"},
                                   {"path": "/home/ann/.docker/config.json", "mode": "600"}]  # fmt: skip
    with pytest.raises(Exception, match="unexpected"):
        registries.RegistryFiles().process(["stray"])


def test_a_client_certificate_is_clientauth_only_and_renewed_in_time(tmp_path):
    pki.ensure_ca(tmp_path, dry=False)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
           "dh1")])).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))  # fmt: skip
    pem = pki.sign_client_csr(tmp_path, csr, "dockguard registry client dh1", 90)
    cert = x509.load_pem_x509_certificate(pem)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = pki.issuing_ca_pem(tmp_path)
    assert pki.client_cert_problem(pem.decode(), ca, 30) is None
    assert pki.client_cert_problem(pem.decode(), ca, 95).startswith("the client certificate expires in")
    assert pki.client_cert_problem(None, ca, 30) == "no client certificate"
    other = tmp_path / "other"
    pki.ensure_ca(other, dry=False)
    assert "not issued by the dockguard CA" in pki.client_cert_problem(pem.decode(), pki.issuing_ca_pem(other), 30)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=91)
