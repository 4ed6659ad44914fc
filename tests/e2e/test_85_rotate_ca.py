"""`pki rotate-ca` on the lab with TLS on every container host (issue 12): before, during and
after the rotation a client with the operator's current credentials (PKI/client) reaches every
host; at the end a client with a certificate of the old CA is refused."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]
DOCKGUARD = str(Path(sys.executable).with_name("dockguard"))  # the checkout's venv (make venv)
PORT = 2376


def get_version(address: str, cafile: Path, cert: Path, key: Path) -> dict:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection(address, PORT, context=ctx, timeout=15)
    try:
        conn.request("GET", "/version")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def reaches_every_host(lab, hosts, client: Path) -> None:
    for name in hosts:
        version = get_version(lab.hosts[name]["address"], client / "ca.pem", client / "cert.pem", client / "key.pem")
        assert version["ApiVersion"], name


def bundle_size(lab, name: str) -> int:
    return int(lab.ssh(name, "grep -c 'BEGIN CERTIFICATE' /etc/docker/tls/ca.pem").strip())


@pytest.fixture(scope="module")
def rotation(lab, tmp_path_factory):
    hosts = lab.of_kind("container")
    pki = tmp_path_factory.mktemp("operator") / "pki"
    data = {n: {"docker_tcp_listen": f"0.0.0.0:{PORT}", "dockguard_pki_dir": str(pki)} for n in hosts}
    r = lab.apply(limit=hosts, hosts=data)
    assert r.rc == 0, r.stderr[-3000:]
    # The inventory `pki rotate-ca` deploys with: inventory/lab.py plus the TLS data (as Lab.inventory
    # writes it, under a name of its own so that lab.apply's file does not collide with it).
    path = ROOT / "inventory/e2e_rotate_ca.py"
    path.write_text(
        "import json\n"
        "exec(open('inventory/lab.py').read())\n"
        f"_extra = json.loads({json.dumps(json.dumps(data))})\n"
        "lab_containers = [(n, {**d, **_extra.get(n, {})}) for n, d in lab_containers]\n"
        "lab_vms = []  # one CA per run: only the TLS hosts, all with the test's CA directory\n"
        "lab = [h[0] for h in lab_containers]  # the group of group_data/lab.py\n"
    )
    try:
        yield {"hosts": hosts, "pki": pki, "inventory": str(path), "data": data}
    finally:
        path.unlink()
        for name in hosts:  # TCP listeners closed again
            lab.apply(limit=name)


def rotate_one_stage(rotation) -> None:
    r = subprocess.run([DOCKGUARD, "pki", "rotate-ca", rotation["inventory"], "--one-stage"], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PRIVATE KEY" not in r.stdout + r.stderr


def status(rotation) -> str:
    r = subprocess.run([DOCKGUARD, "pki", "status", "--dir", str(rotation["pki"])], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    return r.stdout


def test_rotate_ca_in_stages_every_host_reachable_throughout(lab, rotation, tmp_path):
    pki, hosts = rotation["pki"], rotation["hosts"]
    client = pki / "client"
    old_client = tmp_path / "old-client"
    old_client.mkdir(mode=0o700)
    for name in ("ca.pem", "cert.pem", "key.pem"):  # credentials of the old CA, kept for the end
        (old_client / name).write_bytes((client / name).read_bytes())
    old_ca = (pki / "ca" / "current" / "ca.pem").read_bytes()
    reaches_every_host(lab, hosts, client)  # before
    assert "rotation: none" in status(rotation)

    rotate_one_stage(rotation)  # stage 1 deployed: both CAs trusted; stage 2 is next
    assert all(bundle_size(lab, n) == 2 for n in hosts)
    reaches_every_host(lab, hosts, client)
    reaches_every_host(lab, hosts, old_client)  # the old credentials still work during the rotation
    assert "rotation: stage 2 of 3" in status(rotation)

    rotate_one_stage(rotation)  # stage 2 deployed: certificates from the new CA
    new_ca = (pki / "ca" / "next" / "ca.pem").read_bytes()
    for name in hosts:  # every server certificate is the new CA's now
        cert = x509.load_pem_x509_certificate(lab.ssh(name, "cat /etc/docker/tls/server-cert.pem").encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new_ca))
    reaches_every_host(lab, hosts, client)
    assert "rotation: stage 3 of 3" in status(rotation)

    rotate_one_stage(rotation)  # stage 3 deployed: only the new CA; the rotation is done
    assert all(bundle_size(lab, n) == 1 for n in hosts)
    assert (pki / "ca" / "current" / "ca.pem").read_bytes() == new_ca != old_ca
    assert not (pki / "ca" / "next").exists()
    assert "rotation: none" in status(rotation)
    reaches_every_host(lab, hosts, client)  # after

    # A client with the old CA's certificate (verifying the server with the new CA, so that the
    # refusal is the server's) is refused by every host.
    for name in hosts:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            get_version(lab.hosts[name]["address"], client / "ca.pem", old_client / "cert.pem", old_client / "key.pem")


def test_after_the_rotation_a_deploy_changes_nothing(lab, rotation):
    r = lab.apply(limit=rotation["hosts"], hosts=rotation["data"])
    assert r.rc == 0, r.stderr[-3000:]
    assert r.totals["success"] == 0, r.out["results"]["operations"]
