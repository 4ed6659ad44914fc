"""Private registries trusted over TLS (CIS 3.7/3.8), from ``docker_registries``.

* Each registry's CA (a PEM file on the operator's machine) goes to
  /etc/docker/certs.d/ADDRESS/ca.crt, root:root 0444: docker then verifies that registry
  with it (never `insecure-registries`, CIS 2.5).
* With ``client_certificate``, the host makes its own key there (client.key, 0400, never
  uploaded or printed), sends a CSR, and the dockguard CA (the operator's, as for dockerd's
  server certificate) signs a clientAuth certificate: client.cert, 0444. It is renewed
  ``docker_tls_renew_days`` before it expires, or when another CA signed it.
* Registry credentials are `docker login`'s business (dockguard never carries a password):
  a docker config.json that holds credentials (root's and each home's) and that others may
  read is made 0600, and reported.
The owner and mode of everything under certs.d is also checked by the files area (3.7/3.8).
In pull mode (the host checks itself, dockguard/identity.py) the CA's key is not there: a client
certificate that must be (re)issued is reported for the operator, never signed on the host.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from dockguard import identity, pki
from dockguard.registry import CERTS_D

from . import Context, content, drift, hostlock, tls

CIS = "3.7/3.8"


def directory(address: str) -> str:
    return f"{CERTS_D}/{address}"


class RegistryFiles(FactBase):
    """{address: {"cert": PEM | None, "key": bool, "key_matches": bool}, "_credentials":
    [{"path", "mode"}] (docker config.json files that hold credentials)}."""

    def command(self, addresses: list[str]) -> str:
        parts = []
        for a in addresses:
            d = shlex.quote(directory(a))
            parts.append(
                f"echo {shlex.quote('=== ' + a)}; "
                f"[ -f {d}/client.cert ] && {{ echo '--- cert'; cat {d}/client.cert; }}; "
                f"if [ -f {d}/client.key ]; then echo '--- key'; "
                f"openssl pkey -in {d}/client.key -pubout 2>/dev/null | sha256sum | cut -d' ' -f1; "
                f"[ -f {d}/client.cert ] && openssl x509 -in {d}/client.cert -noout -pubkey 2>/dev/null "
                "| sha256sum | cut -d' ' -f1; fi; "
            )
        parts.append(
            "echo '=== credentials'; for f in /root/.docker/config.json /home/*/.docker/config.json; do "
            '[ -f "$f" ] && grep -q \'"auth"\' "$f" && stat -c \'%a %n\' "$f"; done; true'
        )
        return "".join(parts)

    @staticmethod
    def default() -> dict:
        return {"_credentials": []}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"_credentials": []}
        current: dict[str, Any] | None = None
        section = None
        for line in output:
            if line.startswith("=== "):
                section = None
                current = None if line == "=== credentials" else {"cert": [], "key": None}
                if current is not None:
                    out[line[4:]] = current
                else:
                    section = "credentials"
            elif section == "credentials":
                mode, _, path = line.partition(" ")
                if not mode.isdigit() or not path:
                    raise FactProcessError(f"unexpected credentials line {line!r}")
                out["_credentials"].append({"path": path, "mode": mode})
            elif current is not None and line in ("--- cert", "--- key"):
                section = line[4:]
                if section == "key":
                    current["key"] = []
            elif current is None or section is None:
                raise FactProcessError(f"unexpected registry fact output {line!r}")
            else:
                current[section].append(line)
        for address, cur in list(out.items()):
            if address == "_credentials":
                continue
            key = cur["key"]
            out[address] = {
                "cert": "\n".join(cur["cert"]) + "\n" if cur["cert"] else None,
                "key": key is not None,
                "key_matches": key is not None and len(key) == 2 and key[0] == key[1],
            }
        return out


@operation()
def client_key(address: str, present: bool):
    """The host makes its own client key for this registry: 0400 root:root, never uploaded."""
    if present:
        host.noop(f"the client key for {address} exists")
        return
    d = shlex.quote(directory(address))
    yield StringCommand(
        hostlock.prefix() + f"umask 077 && mkdir -p {d} && chmod 755 {d} && "
        f"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {d}/client.key.new 2>/dev/null && "
        f"chown root:root {d}/client.key.new && chmod 400 {d}/client.key.new && "
        f"mv {d}/client.key.new {d}/client.key"
    )


@operation()
def client_certificate(
    address: str, live: dict[str, Any], pki_dir: str, days: int, renew_days: int, operator_only: str | None = None
):
    """A clientAuth certificate for the host's key, signed by the dockguard CA on this machine.
    ``operator_only`` (pull mode: the host's name): the CA's key is not here; a certificate that
    must be (re)issued is reported, with what the operator runs."""
    ca_pem = pki.issuing_ca_pem(Path(pki_dir))
    problem = pki.client_cert_problem(live.get("cert"), ca_pem, renew_days)
    if problem is None and not live.get("key_matches"):
        problem = "the client certificate does not match the client key"
    if problem is None:
        host.noop(f"the client certificate for {address} is valid")
        return
    if operator_only:
        drift(CIS, f"{address}: {problem}: the client certificate must be re-issued by the operator: "
                   f"{identity.operator_fix(operator_only)}")  # fmt: skip
        host.noop(f"the client certificate for {address} must be re-issued by the operator ({problem})")
        return
    drift(CIS, f"{address}: {problem}")
    yield FunctionCommand(_issue, (address, pki_dir, days, problem, tls._connector_args()), {})


def _issue(state, host, address, pki_dir, days, reason, conn=None) -> bool:
    conn = conn or {}
    host.log(f"issuing a client certificate for {address}: {reason}")
    d = shlex.quote(directory(address))
    name = identity.name(host)
    ok, out = host.run_shell_command(
        StringCommand(f"openssl req -new -key {d}/client.key -subj {shlex.quote('/CN=' + name[:60])}"), **conn
    )
    if not ok:
        host.log_styled("could not make a certificate request", fg="red")
        return False
    csr = ("\n".join(out.stdout_lines) + "\n").encode()
    cert = pki.sign_client_csr(Path(pki_dir), csr, f"dockguard registry client {name}"[:64], days)
    return tls._upload_public(state, host, cert, posixpath.join(directory(address), "client.cert"), conn)


@operation()
def credentials_private(files: list[dict[str, str]]):
    """docker config.json files holding credentials that others may read: made 0600."""
    loose = [f["path"] for f in files if int(f["mode"], 8) & 0o077]
    if not loose:
        host.noop("registry credentials are readable by their owner only")
        return
    for path in loose:
        drift(CIS, f"{path} holds registry credentials and others may read it")
    yield StringCommand("chmod 600 " + " ".join(shlex.quote(p) for p in loose))


def _request(ctx: Context) -> tuple:
    addresses = [r["address"] for r in ctx.cfg["docker_registries"]]
    return ("registries.RegistryFiles", RegistryFiles, {"addresses": addresses})


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [_request(ctx)]


def configure(ctx: Context) -> list:
    cfg = ctx.cfg
    registries = cfg["docker_registries"]
    live = ctx.read(_request(ctx))
    ops = []
    cas = {}
    for reg in registries:
        if reg.get("ca"):
            text = Path(reg["ca"]).expanduser().read_text()
            cas[posixpath.join(directory(reg["address"]), "ca.crt")] = (text, "444")
    if cas:
        ops += content.files(cas, {path: f"CIS {CIS}: {path} (the registry's CA)" for path in cas})
    for reg in registries:
        if not reg.get("client_certificate"):
            continue
        address = reg["address"]
        state = live.get(address, {"cert": None, "key": False, "key_matches": False})
        ops.append(client_key(name=f"CIS {CIS}: {address}: client key made on the host", address=address,
                              present=state["key"]))  # fmt: skip
        if not (pki.ca_dir(pki.pki_dir(cfg)) / "ca.pem").exists():
            if identity.pull(cfg):
                drift(CIS, f"pull mode has no copy of the dockguard CA's certificate in {pki.pki_dir(cfg)}: run "
                           f"dockguard pull install for {identity.name()} again")  # fmt: skip
            else:
                drift(CIS, f"there is no dockguard CA in {pki.pki_dir(cfg)} yet (a run without --dry makes it)")
            continue
        ops.append(
            client_certificate(
                name=f"CIS {CIS}: {address}: client certificate signed by the dockguard CA",
                address=address,
                live=state,
                pki_dir=str(pki.pki_dir(cfg)),
                days=cfg["docker_tls_days"],
                renew_days=cfg["docker_tls_renew_days"],
                operator_only=identity.name() if identity.pull(cfg) else None,
            )
        )
    ops.append(credentials_private(name=f"CIS {CIS}: registry credentials readable by their owner only",
                                   files=live["_credentials"]))  # fmt: skip
    return ops
