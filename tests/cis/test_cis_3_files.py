"""CIS Docker Benchmark 1.6.0, section 3: Docker daemon configuration files."""


def owned_and_within(host, path, loosest):
    """Owned by root:root, and '<loosest> or stricter': no permission bit beyond it
    (a 622 file is not stricter than 644, though 622 < 644)."""
    f = host.file(path)
    assert f.exists, f"{path} is missing"
    assert (f.user, f.group) == ("root", "root")
    assert f.mode & ~loosest & 0o7777 == 0, f"{path} has mode {f.mode:o}, allowed at most {loosest:o}"


def test_cis_3_5_3_6_etc_docker_owner_and_mode(host):
    owned_and_within(host, "/etc/docker", 0o755)


def test_cis_3_17_3_18_daemon_json_owner_and_mode(host):
    owned_and_within(host, "/etc/docker/daemon.json", 0o644)
