"""Mutual TLS on dockerd's TCP socket, from the operator's machine (CIS 2.7, 3.9-3.14)."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

PORT = 2376


def tls_get(address: str, pki, client_cert: bool) -> dict:
    """GET /version with the operator's client credentials (PKI/client, DOCKER_CERT_PATH)."""
    client = pki / "client"
    ctx = ssl.create_default_context(cafile=str(client / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(client / "cert.pem"), str(client / "key.pem"))
    conn = http.client.HTTPSConnection(address, PORT, context=ctx, timeout=15)
    try:
        conn.request("GET", "/version")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def serial(lab, name) -> str:
    return lab.ssh(name, "openssl x509 -in /etc/docker/tls/server-cert.pem -noout -serial").strip()


@pytest.fixture(scope="module")
def tls_host(lab, tmp_path_factory):
    host = lab.of_kind("container")[0]
    pki = tmp_path_factory.mktemp("operator") / "pki"
    data = {"docker_tcp_listen": f"0.0.0.0:{PORT}", "dockguard_pki_dir": str(pki)}
    return host, pki, data


def test_a_dry_run_makes_no_ca(lab, tls_host):
    """The drift check (pyinfra --dry) before the first real run: the TLS host drifts, and nothing
    is written on the operator's machine, not even the CA directory."""
    host, pki, data = tls_host
    r = lab.apply("--dry", limit=host, hosts={host: data})
    assert r.rc == 0, r.stderr[-3000:]
    assert not pki.exists()


def test_tcp_socket_with_mutual_tls(lab, tls_host):
    host, pki, data = tls_host
    r = lab.apply(limit=host, hosts={host: data})
    assert r.rc == 0, r.stderr[-3000:]
    assert (pki.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in (pki / "client").iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert "ca-key.pem" in {p.name for p in (pki / "ca" / "current").iterdir()}
    again = lab.apply(limit=host, hosts={host: data})
    assert again.totals["success"] == 0, again.out["results"]["operations"]

    address = lab.hosts[host]["address"]
    assert tls_get(address, pki, client_cert=True)["ApiVersion"]
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls_get(address, pki, client_cert=False)
    docker = shutil.which("docker")
    if docker:  # the Docker CLI, where the operator's machine has it
        out = subprocess.run(
            [docker, "-H", f"tcp://{address}:{PORT}", "--tlsverify", "version", "--format", "{{.Server.Version}}"],
            env={"DOCKER_CERT_PATH": str(pki / "client"), "HOME": str(pki.parent)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and out.stdout.strip(), out.stderr


def test_cis_suite_checks_the_tls_socket(lab, tls_host, tmp_path):
    host, _, data = tls_host
    rc, out, results = lab.cis(tmp_path / "cis.xml", hosts={host: data}, keyword=f"{host} and (2_7 or 3_)")
    assert rc == 0, out[-5000:]
    assert results[f"test_cis18_2_8_tcp_socket_requires_client_certificates[ssh://{host}]"] == "passed"
    assert results[f"test_cis_3_13_3_14_tls_key_owner_and_mode[ssh://{host}]"] == "passed"


def test_keys_stay_where_they_belong(lab, tls_host):
    host, pki, data = tls_host
    modes = lab.ssh(host, "stat -c '%n %a %U:%G' /etc/docker/tls/*").splitlines()
    assert sorted(modes) == [
        "/etc/docker/tls/ca.pem 444 root:root",
        "/etc/docker/tls/server-cert.pem 444 root:root",
        "/etc/docker/tls/server-key.pem 400 root:root",
    ]
    server_key = lab.ssh(host, "cat /etc/docker/tls/server-key.pem")
    assert "PRIVATE KEY" in server_key
    body = server_key.strip().splitlines()[1]
    for f in pki.rglob("*.pem"):  # the host's key never reached the operator's machine
        assert body not in f.read_text()
    assert "ca-key" not in lab.ssh(host, "ls -a /etc/docker/tls /tmp /root")  # nor the CA key the host
    run = lab.apply(limit=host, hosts={host: data})
    assert "PRIVATE KEY" not in run.stderr + json.dumps(run.out)


def test_certificate_is_renewed_before_it_expires(lab, tls_host):
    host, pki, data = tls_host
    old = serial(lab, host)
    # A certificate with 365 days left, when the host wants 400 days' margin: renewed now.
    renew = data | {"docker_tls_days": 500, "docker_tls_renew_days": 400}
    r = lab.apply(limit=host, hosts={host: renew})
    assert r.rc == 0, r.stderr[-3000:]
    assert "CIS 2.7/3.11-3.12: server certificate signed by the dockguard CA" in r.changed_ops(host)
    assert "dockerd: restart when the config changed or the daemon does not match it" in r.changed_ops(host)
    assert serial(lab, host) != old
    assert tls_get(lab.hosts[host]["address"], pki, client_cert=True)["ApiVersion"]
    assert lab.apply(limit=host, hosts={host: renew}).totals["success"] == 0


def test_a_lost_half_of_the_ca_stops_the_run_and_makes_no_new_ca(lab, tls_host, tmp_path):
    host, pki, data = tls_host
    key = pki / "ca" / "current" / "ca-key.pem"
    kept = tmp_path / "ca-key.pem"
    kept.write_bytes(key.read_bytes())
    before = (pki / "ca" / "current" / "ca.pem").read_bytes()
    key.unlink()
    try:
        r = lab.apply(limit=host, hosts={host: data})
        assert r.rc != 0
        assert "is missing but its certificate is there" in r.stderr
        assert (pki / "ca" / "current" / "ca.pem").read_bytes() == before
        assert not key.exists()
    finally:
        key.write_bytes(kept.read_bytes())
        key.chmod(0o600)
    assert lab.apply(limit=host, hosts={host: data}).rc == 0


def test_tcp_socket_closed_again(lab, tls_host):
    host, pki, _ = tls_host
    r = lab.apply(limit=host)
    assert r.rc == 0, r.stderr[-3000:]
    assert "tcp://" not in lab.ssh(host, "ps -o args= -C dockerd")
    with pytest.raises(OSError):
        tls_get(lab.hosts[host]["address"], pki, client_cert=True)
