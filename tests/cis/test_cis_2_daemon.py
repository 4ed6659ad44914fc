"""CIS Docker Benchmark 1.6.0, section 2: Docker daemon configuration."""

import json
import re


def dockerd_args(host):
    return host.check_output("ps -o args= -C dockerd")


def test_cis_2_2_icc_disabled(host, cfg, unless_opted_out, daemon_json):
    unless_opted_out("docker_icc", False, "2.2")
    assert daemon_json["icc"] is False
    opts = json.loads(host.check_output("docker network inspect bridge --format '{{json .Options}}'"))
    assert opts["com.docker.network.bridge.enable_icc"] == "false"


def test_cis_2_3_log_level_info(host, cfg, unless_opted_out, daemon_json, docker_info):
    assert daemon_json["log-level"] == cfg["docker_log_level"] == "info"
    assert docker_info["Debug"] is False
    assert not re.search(r"(-l|--log-level)[ =](?!info)", dockerd_args(host))


def test_cis_2_13_log_rotation(host, cfg, unless_opted_out, daemon_json, docker_info):
    assert docker_info["LoggingDriver"] == cfg["docker_log_driver"]
    if cfg["docker_log_driver"] in ("json-file", "local"):
        assert daemon_json["log-opts"] == {
            "max-size": cfg["docker_log_max_size"],
            "max-file": str(cfg["docker_log_max_file"]),
        }


def test_cis_2_14_no_new_privileges(host, cfg, unless_opted_out, daemon_json, test_image):
    unless_opted_out("docker_no_new_privileges", True, "2.14")
    assert daemon_json["no-new-privileges"] is True
    # Effective: a container started without options runs with NoNewPrivs set.
    status = host.check_output(f"docker run --rm {test_image} grep NoNewPrivs /proc/self/status")
    assert status.split() == ["NoNewPrivs:", "1"]


def test_cis_2_15_live_restore_enabled(host, cfg, unless_opted_out, daemon_json, docker_info):
    unless_opted_out("docker_live_restore", True, "2.15")
    assert daemon_json["live-restore"] is True
    assert docker_info["LiveRestoreEnabled"] is True


def test_cis_2_16_userland_proxy_disabled(host, cfg, unless_opted_out, daemon_json, test_image):
    unless_opted_out("docker_userland_proxy", False, "2.16")
    assert daemon_json["userland-proxy"] is False
    # Effective: publishing a port starts no docker-proxy process.
    cid = host.check_output(f"docker run -d --rm -p 127.0.0.1::80 {test_image} sleep 30")
    try:
        assert host.run("pgrep -x docker-proxy").rc == 1, "docker-proxy runs for a published port"
    finally:
        host.run(f"docker rm -f {cid}")
