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
