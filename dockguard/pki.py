"""The dockguard CA on the operator's machine (CIS 2.7): it never leaves that machine.

Layout (every pair is written atomically, under a lock)::

    PKI/ca/current/{ca.pem,ca-key.pem}   the CA (the key optionally encrypted)
    PKI/ca/next/{ca.pem,ca-key.pem}      the new CA during ``pki rotate-ca``
    PKI/ca/rotation.json                 the rotation's stage (resumable)
    PKI/client/{ca.pem,cert.pem,key.pem} the operator's client: DOCKER_CERT_PATH

The CA is made once, when nothing of it exists. A missing half (certificate or
key), or client credentials without their CA, is an error with instructions:
never a new CA. A dry run (``--dry``, the drift check) writes nothing here.
``pki rotate-ca`` moves to a new CA in three stages, each deployed to every host:
1 the hosts trust the old and the new CA; 2 server and client certificates are
reissued by the new CA; 3 the hosts trust only the new CA (then the old CA is retired).
The hosts' side (their keys, CSRs and certificates) is operations/tls.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyinfra.api.exceptions import DeployError

from .settings import CA_DAYS

CLIENT_DAYS = 30
CA_WARN_DAYS = 180  # say so on every run when the CA expires within this many days
CLIENT_WARN_DAYS = 7  # ... and the operator's client certificate within this many (never renewed silently)
PASSPHRASE_ENV, PASSPHRASE_FD_ENV = "DOCKGUARD_CA_PASSPHRASE", "DOCKGUARD_CA_PASSPHRASE_FD"
STAGES = {
    1: "every host trusts the old and the new CA",
    2: "server and client certificates are reissued by the new CA",
    3: "every host trusts only the new CA",
}

# --------------------------------------------------------------------------- operator side


class CaError(DeployError):
    """The operator's CA is missing, half missing, expired or unreadable: never replaced silently."""


def pki_dir(cfg: dict[str, Any]) -> Path:
    return Path(os.path.expanduser(cfg["dockguard_pki_dir"]))


def ca_dir(directory: Path) -> Path:
    return directory / "ca" / "current"


def next_dir(directory: Path) -> Path:
    return directory / "ca" / "next"


def client_dir(directory: Path) -> Path:
    return directory / "client"


def _rotation_file(directory: Path) -> Path:
    return directory / "ca" / "rotation.json"


def dry_run() -> bool:
    """True in a pyinfra run that will not execute (``--dry``, or ``--json`` without ``-y``),
    and in ``dockguard drift``'s check: nothing may be written on the operator's machine then."""
    if os.environ.get("DOCKGUARD_DRY") == "1":
        return True
    argv = sys.argv[1:] if Path(sys.argv[0]).name.startswith("pyinfra") else []
    return "--dry" in argv or ("--json" in argv and not {"-y", "--yes"} & set(argv))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_passphrase_cache: list[bytes | None] = []


def passphrase() -> bytes | None:
    """The CA key's passphrase: DOCKGUARD_CA_PASSPHRASE, or read once from the file
    descriptor named by DOCKGUARD_CA_PASSPHRASE_FD; None when neither is set."""
    if not _passphrase_cache:
        value: bytes | None = None
        if os.environ.get(PASSPHRASE_FD_ENV):
            fd = int(os.environ[PASSPHRASE_FD_ENV])
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            os.close(fd)
            value = b"".join(chunks).rstrip(b"\r\n")
        elif os.environ.get(PASSPHRASE_ENV):
            value = os.environ[PASSPHRASE_ENV].encode()
        _passphrase_cache.append(value or None)
    return _passphrase_cache[0]


def _key_bytes(key, encrypt: bool) -> bytes:
    secret = passphrase() if encrypt else None
    algorithm = serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)


@contextlib.contextmanager
def pki_lock(directory: Path):
    """One writer of the PKI directory at a time (flock on PKI/.lock)."""
    _private_dir(directory)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_set(path: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Replace the set of files at ``path`` (a key with its certificates) in one step: they are
    written, synced, into a new hidden directory, and the symlink ``path`` is switched to it with
    a rename, so a reader sees either the old set or the new one, never half of each."""
    parent = path.parent
    _private_dir(parent)
    target = parent / f".{path.name}.{secrets.token_hex(6)}"
    target.mkdir(mode=0o700)
    for name, (data, mode) in files.items():
        fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    link = parent / f".{path.name}.link-{secrets.token_hex(6)}"
    os.symlink(target.name, link)
    old = os.readlink(path) if path.is_symlink() else None
    if path.exists() and not path.is_symlink():  # a real directory (never made by this function)
        raise CaError(f"{path} is a directory, not a dockguard-managed set; move it away first")
    os.replace(link, path)
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    if old and old != target.name:
        shutil.rmtree(parent / old, ignore_errors=True)


def remove_set(path: Path) -> None:
    if path.is_symlink():
        old = os.readlink(path)
        path.unlink()
        shutil.rmtree(path.parent / old, ignore_errors=True)


def _new_ca(common_name: str) -> tuple[bytes, bytes]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
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
    return _pem(cert), _key_bytes(key, encrypt=True)


def _ca_set(cert_pem: bytes, key_pem: bytes) -> dict[str, tuple[bytes, int]]:
    return {"ca.pem": (cert_pem, 0o644), "ca-key.pem": (key_pem, 0o600)}


def _missing_half(directory: Path) -> str | None:
    """Why the PKI directory cannot be used as it is (a lost half), or None."""
    cur = ca_dir(directory)
    cert, key = (cur / "ca.pem").exists(), (cur / "ca-key.pem").exists()
    restore = (
        "restore it from your backup; if the CA is really lost, move the directory away and run again to "
        "make a new CA (every TLS host then gets new certificates and old client certificates stop working)"
    )
    if cert and not key:
        return f"the CA key {cur / 'ca-key.pem'} is missing but its certificate is there: {restore}"
    if key and not cert:
        return f"the CA certificate {cur / 'ca.pem'} is missing but its key is there: {restore}"
    if not cert and (client_dir(directory).exists() or next_dir(directory).exists()):
        return (
            f"the CA in {cur} is missing but client credentials made by it remain in {client_dir(directory)}: {restore}"
        )
    return None


def _legacy(directory: Path) -> bool:
    return any((directory / n).exists() for n in ("ca.pem", "ca-key.pem"))


def migrate(directory: Path) -> bool:
    """Move a CA of the old flat layout (the CA key beside the client credentials) into ca/ and
    client/. Returns whether anything moved."""
    if not _legacy(directory):
        return False
    with pki_lock(directory):
        old_cert, old_key = directory / "ca.pem", directory / "ca-key.pem"
        if not (old_cert.exists() and old_key.exists()):
            raise CaError(f"{directory} holds only half of a CA of the old layout ({old_cert}, {old_key})")
        if ca_dir(directory).exists():
            raise CaError(f"{directory} holds a CA in both the old and the new layout; keep one")
        write_set(ca_dir(directory), _ca_set(old_cert.read_bytes(), old_key.read_bytes()))
        files = {"ca.pem": (old_cert.read_bytes(), 0o644)}
        if (directory / "cert.pem").exists() and (directory / "key.pem").exists():
            files |= {"cert.pem": ((directory / "cert.pem").read_bytes(), 0o644),
                      "key.pem": ((directory / "key.pem").read_bytes(), 0o600)}  # fmt: skip
            write_set(client_dir(directory), files)
        for name in ("ca.pem", "ca-key.pem", "cert.pem", "key.pem"):
            (directory / name).unlink(missing_ok=True)
    return True


def ensure_ca(directory: Path, dry: bool | None = None) -> bool:
    """Make the CA and the operator's client credentials when nothing of them exists (never in a
    dry run); refuse a half CA; say when the CA or the client certificate expires soon. Returns
    whether the CA exists. Runs once per deploy (the preflight)."""
    dry = dry_run() if dry is None else dry
    if _legacy(directory):
        if dry:
            raise CaError(
                f"the CA in {directory} uses the old layout (its key beside the client credentials): move it with "
                f"`dockguard pki migrate --dir {directory}` (a run without --dry also does)"
            )
        migrate(directory)
    problem = _missing_half(directory)
    if problem:
        raise CaError(problem)
    if not (ca_dir(directory) / "ca.pem").exists():
        if dry:
            return False
        with pki_lock(directory):
            if not (ca_dir(directory) / "ca.pem").exists():
                write_set(ca_dir(directory), _ca_set(*_new_ca("dockguard CA")))
                issue_client(directory, CLIENT_DAYS, locked=True)
    if not dry:
        _private_dir(directory)
    for line in expiry_warnings(directory):
        _say(line)
    return True


def _say(line: str) -> None:
    from pyinfra import logger

    logger.warning(f"dockguard: {line}")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path.exists() else []


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def rotation(directory: Path) -> dict[str, Any] | None:
    f = _rotation_file(directory)
    return json.loads(f.read_text()) if f.exists() else None


def _set_rotation(directory: Path, state: dict[str, Any] | None) -> None:
    f = _rotation_file(directory)
    if state is None:
        f.unlink(missing_ok=True)
        return
    tmp = f.with_name(f".rotation.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, f)


def issuing_dir(directory: Path) -> Path:
    """The CA that signs new certificates: the new one from stage 2 of a rotation on."""
    r = rotation(directory)
    return next_dir(directory) if r and r["stage"] >= 2 else ca_dir(directory)


def trusted_pem(directory: Path) -> bytes:
    """The CA certificates hosts and clients trust: both during stages 1-2 of a rotation."""
    r = rotation(directory)
    current, new = (ca_dir(directory) / "ca.pem").read_bytes(), None
    if r:
        new = (next_dir(directory) / "ca.pem").read_bytes()
    if r and r["stage"] == 3:
        return new
    return current + (new or b"")


def issuing_ca_pem(directory: Path) -> bytes:
    return (issuing_dir(directory) / "ca.pem").read_bytes()


def _load_ca(directory: Path, which: Path | None = None):
    which = which or issuing_dir(directory)
    data = (which / "ca-key.pem").read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase())
    except TypeError as e:
        if b"ENCRYPTED" in data:
            raise CaError(
                f"the CA key {which / 'ca-key.pem'} is encrypted: give its passphrase in {PASSPHRASE_ENV}, "
                f"or on a file descriptor named by {PASSPHRASE_FD_ENV}"
            ) from e
        raise CaError(f"the CA key {which / 'ca-key.pem'} is not encrypted, but a passphrase was given") from e
    except ValueError as e:
        raise CaError(f"the CA key {which / 'ca-key.pem'} could not be read (wrong passphrase?)") from e
    cert = _cert(which / "ca.pem")
    if _days_left(cert) <= 0:
        raise CaError(f"the CA {which / 'ca.pem'} has expired: move to a new one with `dockguard pki rotate-ca`")
    return key, cert


def _sign(directory: Path, public_key, cn: str, dns: list[str], ips: list[str], days: int, client: bool):
    ca_key, ca_cert = _load_ca(directory)
    not_after = min(_now() + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
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


def issue_client(directory: Path, days: int = CLIENT_DAYS, locked: bool = False) -> x509.Certificate:
    """New client credentials for the operator (PKI/client: ca.pem, cert.pem, key.pem), signed by
    the issuing CA, written in one step."""
    with contextlib.nullcontext() if locked else pki_lock(directory):
        key = _new_key()
        cert = _sign(directory, key.public_key(), "dockguard operator", [], [], days, client=True)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_set(
            client_dir(directory),
            {"ca.pem": (trusted_pem(directory), 0o644), "cert.pem": (_pem(cert), 0o644), "key.pem": (key_pem, 0o600)},
        )
        return cert


def _client_trust(directory: Path) -> None:
    """Point the client's ca.pem at what the hosts' certificates are signed by now (the cert and
    key are kept)."""
    c = client_dir(directory)
    files = {"ca.pem": (trusted_pem(directory), 0o644), "cert.pem": ((c / "cert.pem").read_bytes(), 0o644),
             "key.pem": ((c / "key.pem").read_bytes(), 0o600)}  # fmt: skip
    write_set(c, files)


def sign_server_csr(directory: Path, csr_pem: bytes, cn: str, dns: list[str], ips: list[str], days: int) -> bytes:
    """Sign a host's CSR. Only its public key is used: names come from the inventory."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the host's certificate request has an invalid signature")
    cert = _sign(directory, csr.public_key(), cn, dns, ips, days, client=False)
    return _pem(cert)


def sign_client_csr(directory: Path, csr_pem: bytes, cn: str, days: int) -> bytes:
    """Sign a host's CSR for a client certificate (a registry's mutual TLS): clientAuth only,
    no names but the CN. Only the request's public key is used."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the host's certificate request has an invalid signature")
    return _pem(_sign(directory, csr.public_key(), cn, [], [], days, client=True))


def client_cert_problem(cert_pem: str | None, ca_pem: bytes, renew_days: int) -> str | None:
    """Why a host's client certificate must be (re)issued, or None."""
    if not cert_pem:
        return "no client certificate"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (InvalidSignature, ValueError, TypeError):
        return "the client certificate does not parse or was not issued by the dockguard CA"
    left = _days_left(cert)
    if left < renew_days:
        return f"the client certificate expires in {left:.0f} days (renewed {renew_days} days before)"
    return None


# --------------------------------------------------------------------------- status and rotation


def _describe(cert: x509.Certificate) -> str:
    left = _days_left(cert)
    when = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    return f"expires {when} ({'EXPIRED' if left <= 0 else f'{left:.0f} days left'}), sha256 {fingerprint(cert)}"


def status(directory: Path) -> tuple[list[str], list[str]]:
    """(lines to show, problems) for ``pki status``."""
    lines, problems = [f"PKI directory: {directory}"], []
    if _legacy(directory):
        problems.append(f"old layout (CA key beside the client credentials): `dockguard pki migrate --dir {directory}`")
        return lines, problems
    half = _missing_half(directory)
    if half:
        return lines, [half]
    cur = ca_dir(directory)
    if not (cur / "ca.pem").exists():
        return lines + ["CA: none yet (the first run with a TLS host makes it)"], problems
    ca = _cert(cur / "ca.pem")
    encrypted = b"ENCRYPTED" in (cur / "ca-key.pem").read_bytes()
    lines.append(f"CA: {cur / 'ca.pem'}: {_describe(ca)}; key {'encrypted' if encrypted else 'not encrypted'}")
    if _days_left(ca) <= 0:
        problems.append("the CA has expired: `dockguard pki rotate-ca INVENTORY`")
    elif _days_left(ca) < CA_WARN_DAYS:
        problems.append(f"the CA expires within {CA_WARN_DAYS} days: `dockguard pki rotate-ca INVENTORY`")
    r = rotation(directory)
    cas = {fingerprint(ca): "the current CA"}
    if r:
        new = _cert(next_dir(directory) / "ca.pem")
        cas[fingerprint(new)] = "the new CA"
        lines.append(f"new CA: {next_dir(directory) / 'ca.pem'}: {_describe(new)}")
        done = "deployed to every host" if r["deployed"] else "not yet deployed to every host"
        lines.append(f"rotation: stage {r['stage']} of 3 ({STAGES[r['stage']]}): {done}; "
                     "`dockguard pki rotate-ca INVENTORY` resumes it")  # fmt: skip
    else:
        lines.append("rotation: none")
    c = client_dir(directory)
    if not (c / "cert.pem").exists():
        problems.append(f"no client certificate in {c}: `dockguard pki client --dir {directory}`")
        return lines, problems
    client = _cert(c / "cert.pem")
    issuer = next((name for fp, name in cas.items() if _issued_by(client, directory, fp)), None)
    lines.append(f"client: {c} (DOCKER_CERT_PATH): {_describe(client)}; issued by {issuer or 'an UNKNOWN CA'}")
    if issuer is None:
        problems.append(f"the client certificate in {c} was not issued by the dockguard CA")
    if _days_left(client) <= 0:
        problems.append(f"the client certificate has expired: `dockguard pki client --dir {directory}`")
    elif _days_left(client) < CLIENT_WARN_DAYS:
        problems.append(f"the client certificate expires in {_days_left(client):.0f} days: "
                        f"`dockguard pki client --dir {directory}`")  # fmt: skip
    return lines, problems


def _issued_by(cert: x509.Certificate, directory: Path, fp: str) -> bool:
    for d in (ca_dir(directory), next_dir(directory)):
        if (d / "ca.pem").exists():
            ca = _cert(d / "ca.pem")
            if fingerprint(ca) == fp:
                try:
                    cert.verify_directly_issued_by(ca)
                    return True
                except (InvalidSignature, ValueError, TypeError):
                    return False
    return False


def expiry_warnings(directory: Path) -> list[str]:
    lines, problems = status(directory)
    return problems


def rotation_begin(directory: Path) -> dict[str, Any]:
    """Stage 1: a new CA beside the old one; the client trusts both."""
    with pki_lock(directory):
        r = rotation(directory)
        if r:
            return r
        if not (ca_dir(directory) / "ca.pem").exists():
            raise CaError(f"no CA in {ca_dir(directory)} to rotate")
        _load_ca(directory, ca_dir(directory))  # the passphrase works before anything changes
        if not (next_dir(directory) / "ca.pem").exists():
            write_set(next_dir(directory), _ca_set(*_new_ca(f"dockguard CA {_now():%Y-%m-%d}")))
        r = {"stage": 1, "deployed": False, "started": _now().isoformat(timespec="seconds")}
        _set_rotation(directory, r)
        if (client_dir(directory) / "cert.pem").exists():
            _client_trust(directory)
        return r


def rotation_deployed(directory: Path) -> None:
    with pki_lock(directory):
        r = rotation(directory)
        _set_rotation(directory, r | {"deployed": True})


def rotation_advance(directory: Path, client_days: int = CLIENT_DAYS) -> dict[str, Any] | None:
    """From a deployed stage to the next (2: the client is reissued by the new CA; 3: the client
    trusts only the new CA); after stage 3 the new CA becomes the CA and the old one is retired."""
    with pki_lock(directory):
        r = rotation(directory)
        if not r or not r["deployed"]:
            raise CaError("the current stage of the rotation has not reached every host yet")
        if r["stage"] == 3:
            old = _cert(ca_dir(directory) / "ca.pem")
            retired = directory / "ca" / "retired"
            _private_dir(retired)
            (retired / f"{fingerprint(old)}.pem").write_bytes(_pem(old))  # the certificate only: the key is gone
            nxt = next_dir(directory)
            write_set(ca_dir(directory), _ca_set((nxt / "ca.pem").read_bytes(), (nxt / "ca-key.pem").read_bytes()))
            _set_rotation(directory, None)
            remove_set(nxt)
            _client_trust(directory)
            return None
        r = r | {"stage": r["stage"] + 1, "deployed": False}
        _set_rotation(directory, r)
        if r["stage"] == 2:
            issue_client(directory, client_days, locked=True)
        else:
            _client_trust(directory)
        return r


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
