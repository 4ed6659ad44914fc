"""Mutual TLS for dockerd's TCP socket, the hosts' side (CIS 2.7, files 3.9-3.14).

Each host makes its own server key (openssl on the host, 0400 root:root): the key
never leaves the host and is never printed. The host sends a CSR; the operator's
machine (dockguard/pki.py, the CA) signs it with the host's names and addresses as
SANs and uploads the certificate (public) as 0444. Expiry is checked on every run; a
certificate that expires within ``docker_tls_renew_days``, names other hosts, or was
signed by another CA is reissued (dockerd is then restarted safely, as for any config
change). During ``pki rotate-ca`` the hosts' CA file is a bundle of both CAs.

In pull mode (the host checks itself, dockguard/identity.py) the CA's key is not on the
machine that runs the deploy: a server certificate that is still valid needs none, one that
must be (re)issued is reported for the operator (drift, with what to run), and the CA file is
checked against the public certificates pull mode was installed with, never replaced there.
"""

from __future__ import annotations

import shlex
from io import BytesIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from dockguard import compat, identity, pki
from dockguard.registry import CA_CERT, SERVER_CERT, SERVER_KEY, TLS_DIR  # noqa: E402, F401 - names of this area

from . import Context, drift

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


FILES = ("tls.TlsFiles", TlsFiles, {})


@operation()
def server_key():
    """The host makes its own private key: 0400 root:root, never uploaded or printed."""
    live = Context.of().read(FILES)  # read again once an operation ran here
    if live["key"]:
        host.noop("the server key exists")
        return
    yield StringCommand(
        f"umask 077 && mkdir -p {TLS_DIR} && chmod 755 {TLS_DIR} && "
        f"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {SERVER_KEY}.new 2>/dev/null && "
        f"chown root:root {SERVER_KEY}.new && chmod 400 {SERVER_KEY}.new && mv {SERVER_KEY}.new {SERVER_KEY}"
    )


@operation()
def ca_certificate(directory: str, operator_only: str | None = None):
    """The CA certificate(s) (public) the daemon verifies clients with, 0444: during stages 1-2
    of a pki.rotation, the old and the new CA. ``operator_only`` (pull mode: the host's name):
    a CA file that differs is reported for the operator, never replaced on the host (it may be
    newer than this host's copy, after a rotation)."""
    ca_pem = pki.trusted_pem(Path(directory)).decode()
    live = Context.of().read(FILES)  # read again once an operation ran here
    if live["ca"] == ca_pem:
        host.noop("the CA certificate is current")
        return
    if operator_only:
        why = "missing" if live["ca"] is None else "not the dockguard CA's certificate(s) pull mode was installed with"
        drift("2.7", f"{CA_CERT} is {why}: {identity.operator_fix(operator_only)}, or dockguard pull install "
                     "after a CA rotation", CA_OP)  # fmt: skip
        host.noop(f"the CA certificate differs; pull mode leaves it to the operator ({why})")
        return
    yield FunctionCommand(_upload_public, (ca_pem.encode(), CA_CERT, _connector_args()), {})


def _connector_args() -> dict[str, Any]:
    return compat.connector_arguments()


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
def server_certificate(
    directory: str, cn: str, dns: list[str], ips: list[str], days: int, renew_days: int, operator_only: bool = False
):
    """A certificate for the host's own key, signed on the operator's machine. ``operator_only``
    (pull mode): the CA's key is not here; a certificate that must be (re)issued is reported,
    with what the operator runs, and this host's other areas go on."""
    live = Context.of().read(FILES)  # read again once an operation ran here
    ca_pem = pki.issuing_ca_pem(Path(directory))
    problem = pki.cert_problem(live["cert"], ca_pem, dns, ips, renew_days)
    if problem is None and not live["key_matches"]:
        problem = "the server certificate does not match the server key"
    if problem is None:
        host.noop("the server certificate is valid")
        return
    if operator_only:
        drift("2.7", f"{problem}: the server certificate must be re-issued by the operator: "
                     f"{identity.operator_fix(cn)}", CERT_OP)  # fmt: skip
        host.noop(f"the server certificate must be re-issued by the operator ({problem})")
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
    cert = pki.sign_server_csr(Path(directory), ("\n".join(out.stdout_lines) + "\n").encode(), cn, dns, ips, days)
    return _upload_public(state, host, cert, SERVER_CERT, conn)


CA_OP = "CIS 2.7/3.9-3.10: CA certificate"
CERT_OP = "CIS 2.7/3.11-3.12: server certificate signed by the dockguard CA"


def configure(cfg: dict[str, Any]) -> list:
    """The host's TLS files; returns the operations whose change needs a dockerd restart."""
    directory = str(pki.pki_dir(cfg))
    name, pull = identity.name(), identity.pull(cfg)
    dns, ips = pki.subject_names(name, host.data.dict(), list(cfg["docker_tls_san"]))
    server_key(name="CIS 2.7/3.13-3.14: dockerd server key made on the host")
    if not (pki.ca_dir(Path(directory)) / "ca.pem").exists():  # a dry run before the first real one
        if pull:
            drift("2.7", f"pull mode has no copy of the dockguard CA's certificate in {directory}: run dockguard "
                         f"pull install for {name} again")  # fmt: skip
        else:
            drift("2.7", f"there is no dockguard CA in {directory} yet (a run without --dry makes it)")
        return []
    ca = ca_certificate(name=CA_OP, directory=directory, operator_only=name if pull else None)
    cert = server_certificate(
        name=CERT_OP,
        directory=directory,
        cn=name,
        dns=dns,
        ips=ips,
        days=cfg["docker_tls_days"],
        renew_days=cfg["docker_tls_renew_days"],
        operator_only=pull,
    )
    return [ca, cert]
