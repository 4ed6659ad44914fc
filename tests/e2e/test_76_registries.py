"""A private registry trusted over TLS, end to end: Debian's registry (docker-registry,
distribution 2.8) on this machine serves TLS with a CA of its own, demands a client
certificate from dockguard's CA and a password; the host dockguard configured pulls from it,
the host it did not configure cannot even log in. Applied twice."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockguard import pki

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

CACHE = Path("/var/cache/dockguard-lab/registry")
NAME, PORT, USER, PASSWORD = "registry.dglab", 5000, "dg", "e2e-registry-password"
ADDRESS = f"{NAME}:{PORT}"
CERTS = f"/etc/docker/certs.d/{ADDRESS}"

HARDEN_KIND = "container"  # its tests use the container hosts only (conftest.hardened_lab)


def _binary() -> Path:
    """Debian's docker-registry binary, from its .deb (downloaded once; nothing is installed on
    this machine, so no service of its own starts here)."""
    binary = CACHE / "root/usr/bin/docker-registry"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        get = ["apt-get", "download", "-q", "docker-registry"]
        if subprocess.run(get, cwd=CACHE, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(get, cwd=CACHE, check=True, capture_output=True)
        deb = sorted(CACHE.glob("docker-registry_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE / "root")], check=True)
    return binary


def _cert(subject: str, key, issuer_key=None, issuer=None, san: list | None = None, ca: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))  # fmt: skip
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


@pytest.fixture(scope="module")
def registry(hardened_lab, tmp_path_factory):
    lab = hardened_lab
    configured, other = lab.of_kind("container")[:2]
    gateway = str(ipaddress.ip_address(lab.hosts[configured]["address"]) - 1)  # this machine's end of its veth
    d = tmp_path_factory.mktemp("registry")
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("dglab registry CA", ca_key, ca=True)
    srv = _cert(NAME, srv_key, ca_key, ca, san=[x509.DNSName(NAME)])
    (d / "ca.pem").write_bytes(_pem(ca))
    (d / "server.pem").write_bytes(_pem(srv))
    (d / "server.key").write_bytes(_pem(srv_key))
    (d / "server.key").chmod(0o600)
    # Clients must show a certificate of dockguard's CA (the one the lab's deploy uses).
    (d / "clients.pem").write_bytes(pki.issuing_ca_pem(Path("~/.dockguard/pki").expanduser()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through the C library (distribution's htpasswd accepts $2b$)

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
    (d / "htpasswd").write_text(f"{USER}:{hashed}\n")
    (d / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n"
        f"http:\n  addr: {gateway}:{PORT}\n  tls:\n    certificate: {d}/server.pem\n    key: {d}/server.key\n"
        f"    clientcas:\n      - {d}/clients.pem\n"
        f"auth:\n  htpasswd:\n    realm: dglab\n    path: {d}/htpasswd\n"
    )
    with open(d / "registry.log", "w") as log:
        proc = subprocess.Popen([str(_binary()), "serve", str(d / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((gateway, PORT), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (d / "registry.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the registry did not listen within 30 s"
                time.sleep(0.3)
        for h in (configured, other):
            lab.ssh(h, f"sed -i '/ {NAME}$/d' /etc/hosts && echo '{gateway} {NAME}' >> /etc/hosts")
            lab.ssh(h, "docker image inspect keep:me >/dev/null 2>&1 || "
                       "docker import /opt/dockguard-lab/busybox.tar keep:me")  # fmt: skip
        yield {"ca": str(d / "ca.pem"), "configured": configured, "other": other}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for h in (configured, other):
            lab.ssh(h, f"sed -i '/ {NAME}$/d' /etc/hosts; docker logout {ADDRESS} >/dev/null 2>&1; "
                       f"docker rmi {ADDRESS}/keep:me >/dev/null 2>&1; rm -rf '{CERTS}'; true")  # fmt: skip


def login(lab, host: str) -> tuple[int, str]:
    out = lab.ssh(host, f"printf %s {PASSWORD} | docker login {ADDRESS} -u {USER} --password-stdin 2>&1; "
                        "echo rc=$?", check=False)  # fmt: skip
    text, _, rc = out.rstrip("\n").rpartition("rc=")
    return int(rc), text


def test_a_configured_host_pulls_over_mutual_tls_and_another_cannot(hardened_lab, registry, tmp_path):
    lab = hardened_lab
    host, other = registry["configured"], registry["other"]
    data = {host: {"docker_registries": [{"address": ADDRESS, "ca": registry["ca"], "client_certificate": True}]}}
    r = lab.apply(limit=host, hosts=data)
    assert r.rc == 0, r.stderr[-3000:]
    again = lab.apply(limit=host, hosts=data)
    assert again.rc == 0 and again.totals["success"] == 0, again.changed_ops(host)
    modes = lab.ssh(host, f"stat -c '%a %U:%G %n' {CERTS}/ca.crt {CERTS}/client.cert {CERTS}/client.key")
    assert modes.split("\n")[:3] == [f"444 root:root {CERTS}/ca.crt", f"444 root:root {CERTS}/client.cert",
                                     f"400 root:root {CERTS}/client.key"], modes  # fmt: skip
    # The configured host: TLS verified both ways, then the password; push, forget, pull.
    rc, out = login(lab, host)
    assert rc == 0, out
    lab.ssh(host, f"docker tag keep:me {ADDRESS}/keep:me && docker push -q {ADDRESS}/keep:me >/dev/null && "
                  f"docker rmi {ADDRESS}/keep:me >/dev/null")  # fmt: skip
    lab.ssh(host, f"docker pull -q {ADDRESS}/keep:me >/dev/null")
    # The other host does not trust the registry's CA (and has no client certificate).
    rc, out = login(lab, other)
    assert rc != 0 and ("x509" in out or "certificate" in out), out
    # The credentials `docker login` wrote, made readable by others: the next run makes them 0600.
    lab.ssh(host, "chmod 644 /root/.docker/config.json")
    fixed = lab.apply(limit=host, hosts=data)
    assert fixed.rc == 0 and "CIS 3.7/3.8: registry credentials readable by their owner only" in fixed.changed_ops(
        host
    ), fixed.changed_ops(host)  # fmt: skip
    assert lab.ssh(host, "stat -c %a /root/.docker/config.json").strip() == "600"
    # The CIS suite checks certs.d's owner and mode on both hosts.
    _, _, results = lab.cis(tmp_path / "cis.xml", hosts=data, keyword="3_7 or 3_8")
    mine = {k: v for k, v in results.items() if k.endswith(f"[ssh://{host}]")}
    assert mine and set(mine.values()) == {"passed"}, results
