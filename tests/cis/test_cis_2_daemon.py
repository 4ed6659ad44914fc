"""CIS Docker Benchmark 1.6.0, section 2: Docker daemon configuration.

Each test checks the effective state (docker info, the running dockerd, a real
container) as well as daemon.json. A control the operator turned off for a host
is skipped with the reason, never passed.
"""

import json
import re

import pytest


def dockerd_args(host):
    return host.check_output("ps -o args= -C dockerd")


def test_cis_2_2_icc_disabled(host, cfg, unless_opted_out, daemon_json):
    unless_opted_out("docker_icc", False, "2.2")
    assert daemon_json["icc"] is False
    opts = json.loads(host.check_output("docker network inspect bridge --format '{{json .Options}}'"))
    assert opts["com.docker.network.bridge.enable_icc"] == "false"


def test_cis_2_3_log_level_info(host, cfg, daemon_json, docker_info):
    assert daemon_json["log-level"] == cfg["docker_log_level"] == "info"
    assert docker_info["Debug"] is False
    assert not re.search(r"(-l|--log-level)[ =](?!info)", dockerd_args(host))


def test_cis_2_4_iptables_managed(host, cfg, unless_opted_out, daemon_json):
    unless_opted_out("docker_iptables", True, "2.4")
    assert daemon_json["iptables"] is True
    assert "--iptables=false" not in dockerd_args(host)
    # dockerd made its NAT chain: it manages iptables.
    assert host.run("iptables -t nat -n -L DOCKER").rc == 0


def test_cis_2_5_no_insecure_registries(host, cfg, unless_opted_out, daemon_json, docker_info):
    unless_opted_out("docker_insecure_registries", [], "2.5")
    assert daemon_json["insecure-registries"] == []
    registry = docker_info["RegistryConfig"]
    # dockerd always treats 127.0.0.0/8 as insecure; nothing else may be.
    assert registry["InsecureRegistryCIDRs"] in ([], ["127.0.0.0/8"]), registry["InsecureRegistryCIDRs"]
    assert all(index["Secure"] for index in registry["IndexConfigs"].values())


def test_cis_2_6_no_aufs(docker_info, daemon_json):
    assert docker_info["Driver"] != "aufs"
    assert daemon_json.get("storage-driver") != "aufs"


def test_cis18_2_7_no_devicemapper(docker_info, daemon_json):
    """CIS 1.8.0 2.7 (no 1.6.0 ID): devicemapper was removed in Engine 25; an older daemon on it is reported."""
    assert docker_info["Driver"] != "devicemapper"
    assert daemon_json.get("storage-driver") != "devicemapper"


def test_cis_2_7_tcp_socket_requires_client_certificates(host, cfg, daemon_json):
    # Listeners live in the unit's command line only (never "hosts" in daemon.json, which
    # dockerd refuses next to -H fd://): check the unit's effective ExecStart.
    assert "hosts" not in daemon_json
    effective = host.check_output("systemctl show -p ExecStart --value docker.service")
    assert "-H fd://" in effective
    assert ("tcp://" in effective) == bool(cfg["docker_tcp_listen"])
    args = dockerd_args(host)
    listening = re.findall(r"tcp://([0-9.:\[\]a-f]+)", args)
    if not cfg["docker_tcp_listen"]:
        assert not listening, f"dockerd listens on TCP without dockguard having set it up: {listening}"
        return
    assert listening == [cfg["docker_tcp_listen"]]
    assert daemon_json["tlsverify"] is True
    port = cfg["docker_tcp_listen"].rsplit(":", 1)[1]
    # Effective: a client without a certificate gets no answer, only a TLS alert (with TLS 1.3
    # the alert comes after the handshake, so send a request and read what comes back).
    hello = host.run(
        f"printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | timeout 10 openssl s_client -quiet -connect 127.0.0.1:{port} "
        "-CAfile /etc/docker/tls/ca.pem -servername localhost 2>&1; true"
    )
    assert "HTTP/1" not in hello.stdout, hello.stdout[-500:]
    assert re.search(r"alert|certificate required|handshake failure", hello.stdout, re.I), hello.stdout[-500:]


def test_cis_2_8_default_ulimits(host, cfg, daemon_json, test_image):
    limits = cfg["docker_default_ulimits"]
    assert {k: {"soft": v["Soft"], "hard": v["Hard"]} for k, v in daemon_json["default-ulimits"].items()} == limits
    if "nofile" in limits:
        out = host.check_output(f"docker run --rm {test_image} sh -c 'ulimit -n; ulimit -Hn'")
        assert out.split() == [str(limits["nofile"]["soft"]), str(limits["nofile"]["hard"])]


def test_cis_2_9_userns_remap(host, cfg, unless_opted_out, docker_info, test_image):
    unless_opted_out("docker_userns_remap", "default", "2.9")
    assert any(o.startswith("name=userns") for o in docker_info["SecurityOptions"])
    # Effective: root in a container is an unprivileged id on the host.
    inside, outside, _count = host.check_output(f"docker run --rm {test_image} cat /proc/self/uid_map").split()
    assert inside == "0" and int(outside) >= 65536
    remap = host.check_output("grep '^dockremap:' /etc/subuid").split(":")
    assert int(remap[1]) == int(outside)


def test_cis_2_10_cgroup_parent_as_configured(cfg, daemon_json):
    assert daemon_json.get("cgroup-parent") == cfg["docker_cgroup_parent"]


def test_cis_2_11_base_device_size_unchanged(host, daemon_json):
    assert not any("dm.basesize" in o for o in daemon_json.get("storage-opts", []))
    assert "dm.basesize" not in dockerd_args(host)


def test_cis_2_12_authorization_plugins(host, cfg, docker_info, record_property):
    if not cfg["docker_authorization_plugins"]:
        pytest.skip(
            "CIS 2.12: no authorization plugin is configured (docker_authorization_plugins or "
            "docker_authz_policy): an operator decision"
        )
    assert set(cfg["docker_authorization_plugins"]) <= set(docker_info["Plugins"].get("Authorization") or [])
    if cfg["docker_authz_policy"] is None:
        return
    from dockguard.operations import authz

    from dockguard import authz_plugin

    # The policy is a control only where the engine has no known authorization bypass.
    state = authz.AuthzState().process(host.run(authz.AuthzState().command()).stdout.splitlines())
    bypass = authz.unfixed(state)
    assert not bypass, (
        f"the dockguard-authz policy is not a control on {state['package'] or 'dockerd'} {state['version']}: "
        + "; ".join(f"{c} unfixed ({authz.BYPASSES[c][0]})" for c in bypass)
    )
    # It decides: a container its rules forbid is refused by the plugin, not created.
    rules = authz_plugin.policy_defaults(cfg["docker_authz_policy"])["rules"]
    if "privileged" in rules:
        out = host.run("docker create --pull never --privileged dockguard-authz-probe:none true")
        assert out.rc != 0 and "authorization denied by plugin dockguard-authz" in out.stderr, out.stderr
    record_property("dockguard_note", "auto: dockguard-authz enforces docker_authz_policy")


def test_cis_2_13_log_rotation(host, cfg, daemon_json, docker_info):
    assert docker_info["LoggingDriver"] == cfg["docker_log_driver"]
    if cfg["docker_log_driver"] in ("json-file", "local"):
        assert daemon_json["log-opts"]["max-size"] == cfg["docker_log_max_size"]
        assert daemon_json["log-opts"]["max-file"] == str(cfg["docker_log_max_file"])


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


def test_cis_2_17_seccomp_confines_containers(host, cfg, daemon_json, test_image):
    if cfg["docker_seccomp_profile"]:
        assert daemon_json["seccomp-profile"]
    else:
        assert "seccomp-profile" not in daemon_json  # Docker's built-in default profile
    # Effective: a container runs under a seccomp filter, and no running container is unconfined.
    mode = host.check_output(f"docker run --rm {test_image} grep Seccomp: /proc/self/status")
    assert mode.split() == ["Seccomp:", "2"]
    unconfined = host.check_output(
        "docker ps -q | xargs -r docker inspect --format '{{.Name}} {{json .HostConfig.SecurityOpt}}' "
        "| grep 'seccomp[=:]unconfined' || true"
    )
    assert unconfined == ""


def test_cis_2_18_experimental_disabled(daemon_json, docker_info):
    assert daemon_json["experimental"] is False
    assert docker_info["ExperimentalBuild"] is False
