"""dockguard-authz (dockguard/authz_plugin.py): the decisions on requests shaped as dockerd
forwards them, exceptions, the bypass guard, and the server itself on a real Unix socket
(the failure mode when the policy cannot be read)."""

import base64
import http.client
import json
import socket
import threading

import pytest

from dockguard import authz_plugin as az

POLICY = az.policy_defaults({})


def body(**hc):
    image = hc.pop("Image", "keep:me")
    user = hc.pop("User", "")
    labels = hc.pop("Labels", {})
    return base64.b64encode(json.dumps({"Image": image, "User": user, "Labels": labels, "HostConfig": hc}).encode())


def create(policy=POLICY, **hc):
    return az.decide(policy, "/v1.41/containers/create?name=x", "POST", body(**hc).decode())


def test_a_plain_container_is_allowed_and_other_calls_are_not_looked_at():
    assert create() == (True, "")
    assert az.decide(POLICY, "/v1.41/containers/json", "GET", None) == (True, "")
    assert az.decide(POLICY, "/v1.41/images/create?fromImage=x", "POST", None) == (True, "")


@pytest.mark.parametrize(
    ("hc", "rule"),
    [
        ({"Privileged": True}, "rule privileged: --privileged (or exec --privileged)"),
        ({"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]},
         "rule host_path: host path /var/run/docker.sock mounted (listed: /var/run/docker.sock)"),
        ({"Mounts": [{"Type": "bind", "Source": "/etc/ssl", "Target": "/x"}]},
         "rule host_path: host path /etc/ssl mounted (listed: /etc)"),
        ({"PidMode": "host"}, "rule host_pid: --pid host"),
        ({"NetworkMode": "host"}, "rule host_network: --network host"),
        ({"IpcMode": "host"}, "rule host_ipc: --ipc host"),
        ({"UTSMode": "host"}, "rule host_uts: --uts host"),
        ({"CapAdd": ["SYS_ADMIN", "CHOWN"]}, "rule capability: --cap-add SYS_ADMIN"),
        ({"CapAdd": ["cap_sys_module"]}, "rule capability: --cap-add SYS_MODULE"),
        ({"SecurityOpt": ["seccomp=unconfined"]}, "rule seccomp_unconfined: --security-opt seccomp=unconfined"),
        ({"SecurityOpt": ["apparmor:unconfined"]}, "rule apparmor_unconfined: --security-opt apparmor=unconfined"),
    ],
)  # fmt: skip
def test_the_default_rules_deny_with_the_rule_and_the_way_to_an_exception(hc, rule):
    allow, msg = create(**hc)
    assert not allow
    assert msg == f"dockguard-authz: denied (image keep:me): {rule}; {az.EXCEPTION_HINT}"


def test_named_volumes_and_unlisted_paths_are_allowed():
    assert create(Binds=["data:/var/lib/data", "/srv/app:/app:ro"], CapAdd=["NET_BIND_SERVICE"])[0]
    assert create(Mounts=[{"Type": "volume", "Source": "etcvol", "Target": "/etc"}])[0]
    # "/" is listed for itself only: every other path is under it.
    assert create(Binds=["/srv:/srv"])[0] and not create(Binds=["/:/host"])[0]
    assert not create(Binds=["/etc/../etc/shadow:/x"])[0]


def test_the_optional_rules():
    strict = az.policy_defaults({"rules": [*az.DEFAULT_RULES, "no_memory_limit", "root_user", "writable_rootfs",
                                           "all_interfaces"]})  # fmt: skip
    allow, msg = create(strict, PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
    assert not allow
    assert "rule no_memory_limit" in msg and "rule root_user: no --user" in msg and "rule writable_rootfs" in msg
    assert "rule all_interfaces: 80/tcp published on every interface" in msg
    ok = create(strict, User="1000:1000", Memory=64 << 20, ReadonlyRootfs=True,
                PortBindings={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]})  # fmt: skip
    assert ok == (True, "")


def test_exceptions_by_image_and_label_waive_only_their_rules():
    policy = az.policy_defaults({"exceptions": [
        {"image": "registry.lab/ci/*", "rules": ["privileged"]},
        {"label": "dockguard.authz/exception=monitoring", "rules": ["host_pid", "host_network"]},
    ]})  # fmt: skip
    assert create(policy, Image="registry.lab/ci/runner:3", Privileged=True) == (True, "")
    allow, msg = create(policy, Image="registry.lab/ci/runner:3", Privileged=True, PidMode="host")
    assert not allow and "rule host_pid" in msg and "privileged" not in msg
    assert create(policy, Labels={"dockguard.authz/exception": "monitoring"}, PidMode="host", NetworkMode="host")[0]
    assert not create(policy, Labels={"dockguard.authz/exception": "other"}, PidMode="host")[0]


def test_exec_update_and_requests_without_a_body():
    exec_body = base64.b64encode(json.dumps({"Cmd": ["sh"], "Privileged": True}).encode()).decode()
    allow, msg = az.decide(POLICY, "/v1.41/containers/abc/exec", "POST", exec_body)
    assert not allow and "rule privileged: exec --privileged" in msg
    # CVE-2024-41110 / CVE-2026-34040: the body arrives empty.
    allow, msg = az.decide(POLICY, "/v1.41/containers/create", "POST", "")
    assert not allow and "without a body is refused" in msg
    assert not az.decide(POLICY, "/containers/create", "POST", None)[0]
    with pytest.raises(ValueError, match="not JSON"):
        az.decide(POLICY, "/v1.41/containers/create", "POST", base64.b64encode(b"{nope").decode())


def _post(path: str, sock_path: str, data: dict) -> dict:
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(sock_path)

    c = Conn("localhost")
    c.request("POST", path, json.dumps(data), {"Content-Type": "application/json"})
    return json.loads(c.getresponse().read())


@pytest.mark.parametrize("mode", ["deny", "allow"])
def test_the_server_answers_and_its_failure_mode_applies_when_the_policy_is_unreadable(tmp_path, mode):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"rules": ["privileged"]}))
    path = str(tmp_path / "authz.sock")
    server = az.serve(str(policy), mode, path=path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _post("/Plugin.Activate", path, {}) == {"Implements": ["authz"]}
        req = {"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create", "RequestBody": body(Privileged=True)
               .decode()}  # fmt: skip
        answer = _post("/AuthZPlugin.AuthZReq", path, req)
        assert answer["Allow"] is False and "rule privileged" in answer["Msg"]
        policy.write_text("{ broken")
        broken = _post("/AuthZPlugin.AuthZReq", path, req)
        if mode == "deny":
            assert broken["Allow"] is False and "cannot decide" in broken["Msg"] and "cannot be read" in broken["Msg"]
        else:
            assert broken == {"Allow": True, "Msg": ""}
        policy.write_text(json.dumps({"rules": []}))  # read again when it changes
        assert _post("/AuthZPlugin.AuthZReq", path, req)["Allow"] is True
    finally:
        server.shutdown()
        server.server_close()


def test_the_areas_probe_asks_the_plugin_what_dockerd_asks_first(tmp_path):
    """operations/authz.py checks the plugin answers before dockerd restarts with it."""
    import subprocess
    import sys

    from dockguard.operations import authz

    (tmp_path / "policy.json").write_text("{}")
    path = str(tmp_path / "authz.sock")
    server = az.serve(str(tmp_path / "policy.json"), "deny", path=path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert subprocess.run([sys.executable, "-c", authz.PROBE, path], timeout=30).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert subprocess.run([sys.executable, "-c", authz.PROBE, path], capture_output=True, timeout=30).returncode != 0
