"""CIS Docker Benchmark 1.6.0, section 3: Docker daemon configuration files.

Each file is checked where it exists (dockguard enforces it only there); the TLS
files are required where dockerd listens on TCP.
"""

import pytest


def owned_and_within(host, path, loosest, required=True, exact=False):
    """Owned by root:root, and '<loosest> or stricter': no permission bit beyond it
    (a 622 file is not stricter than 644, though 622 < 644); ``exact``: that mode itself."""
    r = host.run(f"stat -c '%U:%G %a' {path}")
    if r.rc != 0:
        if required:
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} does not exist on this host")
    owner, mode = r.stdout.split()
    assert owner == "root:root"
    if exact:
        assert int(mode, 8) == loosest, f"{path} has mode {mode}, must be {loosest:o}"
    assert int(mode, 8) & ~loosest & 0o7777 == 0, f"{path} has mode {mode}, allowed at most {loosest:o}"


def test_cis_3_5_3_6_etc_docker_owner_and_mode(host):
    owned_and_within(host, "/etc/docker", 0o755)


def test_cis_3_9_3_10_tls_ca_owner_and_mode(host, cfg):
    owned_and_within(host, "/etc/docker/tls/ca.pem", 0o444, required=bool(cfg["docker_tcp_listen"]))


def test_cis_3_11_3_12_tls_cert_owner_and_mode(host, cfg):
    owned_and_within(host, "/etc/docker/tls/server-cert.pem", 0o444, required=bool(cfg["docker_tcp_listen"]))


def test_cis_3_13_3_14_tls_key_owner_and_mode(host, cfg):
    owned_and_within(host, "/etc/docker/tls/server-key.pem", 0o400, required=bool(cfg["docker_tcp_listen"]), exact=True)


def test_cis_3_17_3_18_daemon_json_owner_and_mode(host):
    owned_and_within(host, "/etc/docker/daemon.json", 0o644)


def unit_path(host, unit):
    return host.run(f"systemctl show -p FragmentPath --value {unit}").stdout.strip()


def test_cis_3_1_3_2_docker_service_owner_and_mode(host):
    owned_and_within(host, unit_path(host, "docker.service"), 0o644)


def test_cis_3_3_3_4_docker_socket_owner_and_mode(host):
    owned_and_within(host, unit_path(host, "docker.socket"), 0o644)


def test_cis_3_7_3_8_registry_certificates_owner_and_mode(host):
    certs = host.run("find /etc/docker/certs.d -mindepth 1 -type f 2>/dev/null").stdout.split()
    if not certs:
        pytest.skip("no registry certificates in /etc/docker/certs.d")
    for cert in certs:
        owned_and_within(host, cert, 0o444)


def test_cis_3_15_3_16_docker_sock_owner_and_mode(host):
    r = host.run("stat -L -c '%U:%G %a' /var/run/docker.sock")
    owner, mode = r.stdout.split()
    assert owner == "root:docker"
    assert int(mode, 8) & ~0o660 == 0
    # Set where it comes from too: docker.socket re-creates the socket at every start.
    show = host.check_output("systemctl show docker.socket -p SocketMode -p SocketUser -p SocketGroup")
    assert sorted(show.splitlines()) == ["SocketGroup=docker", "SocketMode=0660", "SocketUser=root"]


def test_cis_3_19_3_20_etc_default_docker_owner_and_mode(host):
    owned_and_within(host, "/etc/default/docker", 0o644, required=False)


def test_cis_3_21_3_22_etc_sysconfig_docker_owner_and_mode(host):
    owned_and_within(host, "/etc/sysconfig/docker", 0o644, required=False)


def test_cis_3_23_3_24_containerd_sock_owner_and_mode(host):
    owned_and_within(host, "/run/containerd/containerd.sock", 0o660)
