"""Mutual TLS for dockerd's TCP socket (CIS 2.7, files 3.9-3.14).

* The CA lives on the operator's machine (``dockguard_pki_dir``, mode 0700) and
  never leaves it; it is made once per run, before any host is prepared.
* Each host makes its own server key (openssl on the host, 0400 root:root): the
  key never leaves the host and is never printed. The host sends a CSR; the
  operator's machine signs it with the host's names and addresses as SANs and
  uploads the certificate (public) as 0444.
* The operator's client certificate (``cert.pem``/``key.pem`` beside ``ca.pem``,
  so ``DOCKER_CERT_PATH`` can point at the directory) is made on the operator's
  machine and stays there.
* Expiry is checked on every run; a certificate that expires within
  ``docker_tls_renew_days``, names other hosts, or was signed by another CA is
  reissued (dockerd is then restarted safely, as for any config change).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shlex
import stat
from io import BytesIO
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation
from pyinfra.api.arguments import ConnectorArguments
from pyinfra.api.exceptions import FactProcessError

from . import drift

TLS_DIR = "/etc/docker/tls"
CA_CERT = f"{TLS_DIR}/ca.pem"
SERVER_CERT = f"{TLS_DIR}/server-cert.pem"
SERVER_KEY = f"{TLS_DIR}/server-key.pem"
CA_DAYS = 3650
CLIENT_DAYS = 365

# --------------------------------------------------------------------------- operator side


def pki_dir(cfg: dict[str, Any]) -> Path:
    return Path(os.path.expanduser(cfg["dockguard_pki_dir"]))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, key) -> None:
    """Write a private key that is never readable by anyone else, not even briefly."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_ca(directory: Path) -> None:
    """Make the CA and the operator's client certificate if missing (or the client
    certificate expiring within 30 days). Idempotent; run once per deploy."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(directory.stat().st_mode) != 0o700:
        os.chmod(directory, 0o700)
    ca_key_path, ca_path = directory / "ca-key.pem", directory / "ca.pem"
    if not ca_key_path.exists() or not ca_path.exists():
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockguard CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(ca_key_path, key)
        ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    client = directory / "cert.pem"
    if not client.exists() or _days_left(x509.load_pem_x509_certificate(client.read_bytes())) < 30:
        key = _new_key()
        cert = _sign(directory, key.public_key(), "dockguard operator", [], [], CLIENT_DAYS, client=True)
        _write_private(directory / "key.pem", key)
        client.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_ca(directory: Path):
    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    return key, cert


def _sign(directory: Path, public_key, cn: str, dns: list[str], ips: list[str], days: int, client: bool):
    ca_key, ca_cert = _load_ca(directory)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
    )
    if dns or ips:
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def sign_server_csr(directory: Path, csr_pem: bytes, cn: str, dns: list[str], ips: list[str], days: int) -> bytes:
    """Sign a host's CSR. Only its public key is used: names come from the inventory."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the host's certificate request has an invalid signature")
    cert = _sign(directory, csr.public_key(), cn, dns, ips, days, client=False)
    return cert.public_bytes(serialization.Encoding.PEM)


def _days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - _now()).total_seconds() / 86400


def subject_names(name: str, data: dict[str, Any], extra: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a host's server certificate must carry."""
    dns, ips = [], ["127.0.0.1"]
    for candidate in [name, data.get("ssh_hostname") or "", "localhost", *extra]:
        if not candidate:
            continue
        try:
            ips.append(str(ipaddress.ip_address(candidate)))
        except ValueError:
            dns.append(candidate)
    return sorted(set(dns)), sorted(set(ips))


def cert_problem(cert_pem: str | None, ca_pem: bytes, dns: list[str], ips: list[str], renew_days: int) -> str | None:
    """Why a host's server certificate must be (re)issued, or None."""
    if not cert_pem:
        return "no server certificate"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return "the server certificate does not parse"
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return "the server certificate was not issued by the dockguard CA"
    left = _days_left(cert)
    if left < renew_days:
        return f"the server certificate expires in {left:.0f} days (renewed {renew_days} days before)"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have_dns = sorted(san.get_values_for_type(x509.DNSName))
        have_ips = sorted(str(i) for i in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        have_dns, have_ips = [], []
    if (have_dns, have_ips) != (dns, ips):
        return f"the server certificate names {have_dns + have_ips}, not {dns + ips}"
    return None


# --------------------------------------------------------------------------- host side


class TlsFiles(FactBase):
    """The public TLS files of dockerd, and whether the server key exists and matches
    the certificate (compared by public-key digest; the key itself is never read out)."""

    def command(self) -> str:
        return (
            f"[ -f {CA_CERT} ] && {{ echo '--- ca'; cat {CA_CERT}; }}; "
            f"[ -f {SERVER_CERT} ] && {{ echo '--- cert'; cat {SERVER_CERT}; }}; "
            f"if [ -f {SERVER_KEY} ]; then echo '--- key'; "
            f"openssl pkey -in {SERVER_KEY} -pubout 2>/dev/null | sha256sum | cut -d' ' -f1; "
            f"[ -f {SERVER_CERT} ] && openssl x509 -in {SERVER_CERT} -noout -pubkey 2>/dev/null "
            "| sha256sum | cut -d' ' -f1; fi; true"
        )

    @staticmethod
    def default() -> dict:
        return {"ca": None, "cert": None, "key": False, "key_matches": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        parts: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line.startswith("--- "):
                current = line[4:].strip()
                if current not in ("ca", "cert", "key"):
                    raise FactProcessError(f"unexpected TLS fact section {current!r}")
                parts[current] = []
            elif current is None:
                raise FactProcessError(f"unexpected TLS fact output {line!r}")
            else:
                parts[current].append(line)
        key = parts.get("key", [])
        return {
            "ca": "\n".join(parts["ca"]) + "\n" if "ca" in parts else None,
            "cert": "\n".join(parts["cert"]) + "\n" if "cert" in parts else None,
            "key": "key" in parts,
            "key_matches": len(key) == 2 and key[0] == key[1],
        }


@operation()
def server_key():
    """The host makes its own private key: 0400 root:root, never uploaded or printed."""
    live = host.get_fact(TlsFiles)
    if live["key"]:
        host.noop("the server key exists")
        return
    yield StringCommand(
        f"umask 077 && mkdir -p {TLS_DIR} && chmod 755 {TLS_DIR} && "
        f"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {SERVER_KEY}.new 2>/dev/null && "
        f"chown root:root {SERVER_KEY}.new && chmod 400 {SERVER_KEY}.new && mv {SERVER_KEY}.new {SERVER_KEY}"
    )


@operation()
def ca_certificate(directory: str):
    """The CA certificate (public) the daemon verifies clients with, 0444."""
    ca_pem = (Path(directory) / "ca.pem").read_text()
    live = host.get_fact(TlsFiles)
    if live["ca"] == ca_pem:
        host.noop("the CA certificate is current")
        return
    yield FunctionCommand(_upload_public, (ca_pem.encode(), CA_CERT, _connector_args()), {})


def _connector_args() -> dict[str, Any]:
    """The connector arguments of the current operation (``_sudo`` and the like, from
    the inventory): a FunctionCommand's own host calls do not get them otherwise."""
    keys = set(ConnectorArguments.__annotations__)
    return {k: v for k, v in (host.current_op_global_arguments or {}).items() if k in keys}


def _upload_public(state, host, data: bytes, dest: str, conn: dict[str, Any] | None = None) -> bool:
    """Upload a public file (certificate) and make it 0444 root:root. (Under sudo
    pyinfra uploads through a temporary file: acceptable for a certificate only.)"""
    conn = conn or {}
    tmp = f"{dest}.new"
    if not host.put_file(BytesIO(data), tmp, **conn):
        return False
    ok, _ = host.run_shell_command(
        StringCommand(f"chown root:root {tmp} && chmod 444 {tmp} && mv {tmp} {shlex.quote(dest)}"), **conn
    )
    return ok


@operation()
def server_certificate(directory: str, cn: str, dns: list[str], ips: list[str], days: int, renew_days: int):
    """A certificate for the host's own key, signed on the operator's machine."""
    live = host.get_fact(TlsFiles)
    ca_pem = (Path(directory) / "ca.pem").read_bytes()
    problem = cert_problem(live["cert"], ca_pem, dns, ips, renew_days)
    if problem is None and not live["key_matches"]:
        problem = "the server certificate does not match the server key"
    if problem is None:
        host.noop("the server certificate is valid")
        return
    drift("2.7", problem)
    yield FunctionCommand(_issue, (directory, cn, dns, ips, days, problem, _connector_args()), {})


def _issue(state, host, directory, cn, dns, ips, days, reason, conn=None) -> bool:
    """Ask the host for a CSR of its key, sign it here, upload the certificate."""
    conn = conn or {}
    host.log(f"issuing a server certificate: {reason}")
    ok, out = host.run_shell_command(StringCommand(f"openssl req -new -key {SERVER_KEY} -subj /CN=dockerd"), **conn)
    if not ok:
        host.log_styled("could not make a certificate request", fg="red")
        return False
    cert = sign_server_csr(Path(directory), ("\n".join(out.stdout_lines) + "\n").encode(), cn, dns, ips, days)
    return _upload_public(state, host, cert, SERVER_CERT, conn)


def configure(cfg: dict[str, Any]) -> list:
    """The host's TLS files; returns the operations whose change needs a dockerd restart."""
    directory = str(pki_dir(cfg))
    dns, ips = subject_names(host.name, host.data.dict(), list(cfg["docker_tls_san"]))
    server_key(name="CIS 2.7/3.13-3.14: dockerd server key made on the host")
    ca = ca_certificate(name="CIS 2.7/3.9-3.10: CA certificate", directory=directory)
    cert = server_certificate(
        name="CIS 2.7/3.11-3.12: server certificate signed by the dockguard CA",
        directory=directory,
        cn=host.name,
        dns=dns,
        ips=ips,
        days=cfg["docker_tls_days"],
        renew_days=cfg["docker_tls_renew_days"],
    )
    return [ca, cert]
