"""The container audit (dockguard.containers): each CIS 4/5 check on containers shaped as
`docker inspect` gives them, the disk fallback's shape, the exit codes and the outputs."""

import xml.etree.ElementTree as ET

from dockguard.operations.containers import from_disk

from dockguard import containers


def inspect(name="web", image="nginx:1", **hc):
    """A container as `docker inspect` shows it, hardened unless ``hc`` says otherwise."""
    host_config = {
        "Privileged": False, "CapAdd": None, "CapDrop": ["ALL"], "NetworkMode": "appnet", "Memory": 268435456,
        "CpuShares": 512, "ReadonlyRootfs": True, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
        "PidMode": "", "IpcMode": "private", "UTSMode": "", "UsernsMode": "", "Devices": [], "CgroupParent": "",
        "SecurityOpt": ["no-new-privileges"], "PidsLimit": 100,
        "PortBindings": {"8080/tcp": [{"HostIp": "10.0.0.5", "HostPort": "8080"}]},
    }  # fmt: skip
    mounts = hc.pop("Mounts", [])
    host_config.update(hc)
    return {
        "Id": "0123456789abcdef" * 4, "Name": f"/{name}", "Image": "sha256:" + "ab" * 32,
        "Config": {"Image": image, "User": "app", "Healthcheck": {"Test": ["CMD", "true"]}},
        "State": {"Running": True}, "HostConfig": host_config, "AppArmorProfile": "docker-default",
        "Mounts": mounts, "NetworkSettings": {"Ports": {}},
    }  # fmt: skip


IMAGE = {"Id": "sha256:" + "ab" * 32, "Config": {"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}}}


def fact(*cts, **kw):
    return {"source": "daemon", "containers": list(cts), "images": {IMAGE["Id"]: IMAGE}, "apparmor": True,
            "selinux": False, "daemon_json": {"no-new-privileges": True}, **kw}  # fmt: skip


def failing(result):
    return {r["cis"]: r["reason"] for r in result["results"] if r["status"] == "FAIL"}


def test_a_hardened_container_has_no_findings():
    (ct,) = containers.audit(fact(inspect()))
    assert failing(ct) == {}
    assert {r["cis"]: r["status"] for r in ct["results"]}["5.2"] == "N/A"  # no SELinux on this host
    assert ct["container"] == "web" and ct["image"] == "nginx:1" and ct["running"] is True


def test_a_privileged_container_with_the_socket_mounted():
    ct = inspect(
        "ci-runner", Privileged=True, CapAdd=["SYS_ADMIN"], ReadonlyRootfs=False, Memory=0, PidsLimit=None,
        SecurityOpt=["seccomp=unconfined", "no-new-privileges=false"],
        Mounts=[{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": True},
                {"Type": "bind", "Source": "/etc", "Destination": "/host/etc", "RW": False,
                 "Propagation": "rshared"}],
        Devices=[{"PathOnHost": "/dev/kmsg"}],
    )  # fmt: skip
    ct["AppArmorProfile"] = ""
    (result,) = containers.audit(fact(ct))
    assert failing(result) == {
        "5.1": "privileged: no AppArmor profile applies",
        "5.3": "capabilities added: SYS_ADMIN",
        "5.4": "runs --privileged",
        "5.5": "host directories mounted: /etc (read-only)",
        "5.10": "no memory limit",
        "5.12": "root filesystem is writable",
        "5.17": "host devices: /dev/kmsg",
        "5.19": "shared propagation: /host/etc",
        "5.21": "seccomp=unconfined",
        "5.25": "no-new-privileges=false",
        "5.28": "no PID limit",
        "5.31": "mounts /var/run/docker.sock",
    }


def test_host_namespaces_ports_and_defaults():
    ct = inspect(
        "edge", NetworkMode="host", PidMode="host", IpcMode="host", UTSMode="host", UsernsMode="host",
        CpuShares=0, RestartPolicy={"Name": "always", "MaximumRetryCount": 0}, CgroupParent="/custom",
        SecurityOpt=[], PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "80"}],
                                      "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}]},
    )  # fmt: skip
    ct["Config"]["User"] = ""
    ct["Config"]["Healthcheck"] = None
    image = {"Id": IMAGE["Id"], "Config": {"User": ""}}
    (result,) = containers.audit(fact(ct, images={IMAGE["Id"]: image}, daemon_json={}))
    assert failing(result) == {
        "4.1": "runs as root (the image sets no USER)",
        "4.6": "image nginx:1 has no HEALTHCHECK",
        "5.7": "host ports below 1024: 80",
        "5.9": "--network host",
        "5.11": "no CPU shares or limit (the default 1024)",
        "5.13": "published on every interface: 80->80/tcp, 8443->443/tcp",
        "5.14": "restart policy always",
        "5.15": "--pid host",
        "5.16": "--ipc host",
        "5.20": "--uts host",
        "5.24": "cgroup parent /custom",
        "5.25": "not set on the container nor as the daemon's default",
        "5.26": "no health check (neither the container nor its image)",
        "5.30": "--userns host",
    }


def test_the_default_bridge_and_the_daemons_no_new_privileges_default():
    ct = inspect(NetworkMode="default", SecurityOpt=[])
    (result,) = containers.audit(fact(ct))
    assert failing(result) == {"5.29": "on the default bridge (docker0)"}
    assert {r["cis"]: r["reason"] for r in result["results"]}["5.25"] == "the daemon's default (daemon.json)"
    # An unreadable daemon.json: the default is unknown, so the container is a finding.
    (unknown,) = containers.audit(fact(ct, daemon_json=None))
    assert "5.25" in failing(unknown)


def test_without_apparmor_or_an_image_the_checks_say_so():
    (result,) = containers.audit(fact(inspect(), apparmor=False, images={}))
    statuses = {r["cis"]: (r["status"], r["reason"]) for r in result["results"]}
    assert statuses["5.1"] == ("N/A", "dockerd applies no AppArmor profiles on this host (AppArmor not enabled)")
    # The daemon's own word wins over the kernel's: docker info lists the options it applies.
    (daemon,) = containers.audit(fact(inspect(), apparmor=True, security=["name=seccomp,profile=builtin"]))
    assert {r["cis"]: r["status"] for r in daemon["results"]}["5.1"] == "N/A"
    assert statuses["4.6"] == ("N/A", "its image could not be read")


def test_the_disk_shape_is_audited_like_inspect():
    """config.v2.json and hostconfig.json (the daemon did not answer) give the same findings."""
    config = {"ID": "f" * 64, "Name": "/db", "Image": IMAGE["Id"], "Config": {"Image": "postgres:16", "User": ""},
              "State": {"Running": True}, "AppArmorProfile": "docker-default",
              "MountPoints": {"/var/run/docker.sock": {"Type": "bind", "Source": "/var/run/docker.sock",
                                                       "Destination": "/var/run/docker.sock", "RW": True}}}  # fmt: skip
    hostconfig = {"Privileged": True, "NetworkMode": "bridge", "Memory": 0}
    ct = from_disk(config, hostconfig)
    (result,) = containers.audit(fact(ct))
    assert result["container"] == "db" and result["image"] == "postgres:16"
    assert {"4.1", "5.4", "5.10", "5.29", "5.31"} <= set(failing(result))


def test_exit_codes_text_junit_and_markdown():
    bad = inspect("bad", Privileged=True)
    result = {
        "inventory": "inv.py", "errors": [],
        "hosts": {
            "dh1": {"status": "checked", "source": "daemon", "errors": [], "containers": containers.audit(fact(bad))},
            "dh2": {"status": "checked", "source": "disk", "errors": [], "containers": containers.audit(fact())},
        },
    }  # fmt: skip
    assert containers.exit_code(result) == 2
    assert containers.exit_code(result, "high") == 2
    low_only = {**result, "hosts": {"dh1": {**result["hosts"]["dh1"], "containers": containers.audit(
        fact(inspect("lowly", NetworkMode="default")))}}}  # fmt: skip
    assert containers.exit_code(low_only, "medium") == 0 and containers.exit_code(low_only) == 2
    text = containers.text(result)
    assert "dh1: 1 containers, 2 findings" in text and "    CIS 5.4   high   not privileged: runs --privileged" in text
    assert "dh2: 0 containers, 0 findings (read from the disk: the daemon did not answer)" in text
    assert "not audited: CIS 4.5 (content trust: Docker retired" in text
    unchecked = {**result, "hosts": {**result["hosts"], "dh3": {"status": "unchecked", "source": None,
                                                                "errors": ["ssh: timed out"], "containers": []}}}  # fmt: skip
    assert containers.exit_code(unchecked) == 1
    assert "dh3: UNCHECKED\n    ssh: timed out" in containers.text(unchecked)
    root = ET.fromstring(containers.junit(unchecked))
    cases = list(root.iter("testcase"))
    assert len(cases) == len(containers.CHECKS) + 1
    assert [c.find("error").get("message") for c in cases if c.find("error") is not None] == ["ssh: timed out"]
    assert len([c for c in cases if c.find("failure") is not None]) == 2
    md = containers.markdown(unchecked)
    assert "| bad | nginx:1 | 5.4 | high | not privileged | runs --privileged |" in md
    assert "- **dh2**: no containers" in md and "- **dh3**: UNCHECKED: ssh: timed out" in md


def test_the_disk_gives_the_daemons_findings_on_a_recorded_host():
    """The same host recorded with dockerd answering and with it stopped (facts/
    containers.ContainerAudit): the audit finds the same things either way."""
    import json
    from pathlib import Path

    base = Path(__file__).parent / "facts/containers.ContainerAudit"
    daemon = json.loads((base / "daemon_one_container.json").read_text())["fact"]
    disk = json.loads((base / "daemon_stopped_read_from_disk.json").read_text())["fact"]
    assert (daemon["source"], disk["source"]) == ("daemon", "disk")

    def fails(fact):
        return {c["container"]: {r["cis"]: r["status"] for r in c["results"]} for c in containers.audit(fact)}

    assert fails(daemon) == fails(disk)
    assert {k for k, v in fails(daemon)["fx-priv"].items() if v == "FAIL"} >= {"5.4", "5.30", "5.31"}


def test_output_cut_short_or_not_base64_fails_that_host_only():
    import pytest
    from dockguard.operations.containers import ContainerAudit
    from pyinfra.api.exceptions import FactProcessError

    with pytest.raises(FactProcessError, match="cut short"):
        ContainerAudit().process(["source=daemon", "containers=W10="])
    with pytest.raises(FactProcessError, match="not base64"):
        ContainerAudit().process(["source=daemon", "containers=%%%", "end=1"])
    with pytest.raises(FactProcessError, match="names no source"):
        ContainerAudit().process(["end=1"])
    assert ContainerAudit().process(["source=none", "end=1"])["containers"] == []
