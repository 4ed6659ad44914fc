"""CIS Docker Benchmark 1.6.0, 5.1 and 5.2: containers confined by the host's
mandatory access control, AppArmor (Debian/Ubuntu) or SELinux (RHEL family).

The host's platform is read with dockguard's own fact command, so the suite
decides per host exactly as the deploy does. Checks on AppArmor's kernel state
are skipped, with the reason, on a container host (the kernel belongs to the
machine that runs it); the file and package checks still run there.
"""

import json

import pytest
from dockguard.operations import mac, platform

PROFILE = mac.PROFILE


@pytest.fixture(scope="module")
def plat(host):
    fact = platform.HostPlatform()
    return fact.process(host.check_output(fact.command()).splitlines())


@pytest.fixture(scope="module")
def kind(plat, cfg):
    return platform.mac(plat, cfg)


@pytest.fixture
def apparmor(plat, kind):
    if kind != "apparmor":
        pytest.skip(f"CIS 5.1: AppArmor is not this host's MAC system ({plat['name']}: {kind or 'not managed'})")


@pytest.fixture
def apparmor_kernel(plat, apparmor):
    if plat["container"]:
        pytest.skip(f"CIS 5.1: a container host ({plat['container']}): AppArmor belongs to the outer kernel")


@pytest.fixture
def selinux(plat, kind):
    if kind != "selinux":
        pytest.skip(f"CIS 5.2: SELinux is not this host's MAC system ({plat['name']}: {kind or 'not managed'})")


def profiles(host):
    return json.loads(host.check_output("aa-status --json"))["profiles"]


def confinement(host, image, *opts):
    """What a fresh container reports as its own confinement (/proc/self/attr/current)."""
    return host.check_output(f"docker run --rm {' '.join(opts)} {image} cat /proc/self/attr/current").strip()


def test_cis_5_1_apparmor_and_utilities_installed(host, apparmor):
    for name in ("apparmor", "apparmor-utils"):
        assert host.package(name).is_installed, f"{name} is not installed"


def test_cis_5_1_apparmor_enabled_in_the_kernel(host, plat, apparmor_kernel):
    assert plat["apparmor"]["kernel"] == "Y", (
        f"AppArmor is not enabled: boot with `{platform.APPARMOR_KERNEL_PARAMETERS}` (kernel: {plat['cmdline']})"
    )
    assert host.run("aa-status --enabled").rc == 0


def test_cis_5_1_dockguard_profile_file(host, apparmor):
    f = host.file(mac.PROFILE_FILE)
    assert f.exists and f.user == "root" and f.group == "root"
    assert f.mode & ~0o644 == 0, f"{mac.PROFILE_FILE} has mode {oct(f.mode)}"
    assert f"profile {PROFILE} " in f.content_string


def test_cis_5_1_docker_default_loaded_in_enforce_mode(host, apparmor_kernel):
    assert profiles(host).get("docker-default") == "enforce"
    assert "name=apparmor" in host.check_output("docker info --format '{{json .SecurityOptions}}'")


def test_cis_5_1_dockguard_profile_loaded_in_enforce_mode(host, apparmor_kernel):
    assert profiles(host).get(PROFILE) == "enforce", f"aa-status: {PROFILE} is not in enforce mode"


def test_cis_5_1_containers_run_confined_by_docker_default(host, apparmor_kernel, test_image):
    assert confinement(host, test_image) == "docker-default (enforce)"


def test_cis_5_1_container_opting_in_is_confined_by_dockguard_profile(host, apparmor_kernel, test_image):
    opt = f"--security-opt apparmor={PROFILE}"
    assert confinement(host, test_image, opt) == f"{PROFILE} (enforce)"
    # What docker-default allows and dockguard-default denies: a raw socket (ping).
    ping = "ping -c1 -W2 127.0.0.1"
    assert host.run(f"docker run --rm {test_image} {ping}").rc == 0
    denied = host.run(f"docker run --rm {opt} {test_image} {ping}")
    assert denied.rc != 0 and "Permission denied" in denied.stderr + denied.stdout


def test_cis_5_1_no_running_container_is_unconfined(host, apparmor_kernel):
    ids = host.check_output("docker ps -q").split()
    if not ids:
        pytest.skip("CIS 5.1: no running container to check")
    out = host.check_output(f"docker inspect --format '{{{{.Name}}}} {{{{.AppArmorProfile}}}}' {' '.join(ids)}")
    unconfined = [line for line in out.splitlines() if line.split(" ", 1)[1] in ("", "unconfined")]
    assert not unconfined, f"containers without an AppArmor profile: {unconfined}"


def test_cis_5_2_selinux_enforcing(host, selinux):
    assert host.check_output("getenforce").strip() == "Enforcing"
    assert host.run("grep -qx 'SELINUX=enforcing' /etc/selinux/config").rc == 0


def test_cis_5_2_container_selinux_installed(host, plat, selinux):
    name = "container-selinux" if plat["pkg"] == "dnf" else "selinux-policy-default"
    assert host.package(name).is_installed


def test_cis_5_2_docker_labels_containers(host, selinux, daemon_json):
    assert daemon_json.get("selinux-enabled") is True
    assert "name=selinux" in host.check_output("docker info --format '{{json .SecurityOptions}}'")
