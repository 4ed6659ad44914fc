"""The os_packages area: what its fact refuses, and the content it renders."""

import pytest
from dockguard.operations import content, os_packages
from pyinfra.api.exceptions import FactProcessError

GOOD = ["arch=amd64", "security=no", "unit=acct.service inactive none", "end=ok"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (GOOD[:-1], "cut short"),  # no end marker
        (["installed=acct", "garbage"], "unexpected output"),
        (["security=yes", "end=ok", "arch=amd64"], "unexpected output"),  # after the end
        (["unit=acct.service inactive", "end=ok"], "unexpected unit line"),
        (["unit=evil.service active enabled", "end=ok"], "unexpected unit line"),
        (["arch=amd64; rm -rf /", "end=ok"], "unexpected output"),
        ([], "cut short"),
    ],
)
def test_garbled_output_is_a_fact_error(output, message):
    with pytest.raises(FactProcessError, match=message):
        os_packages.OsPackagesState().process(output)


def test_a_package_it_did_not_ask_about_is_garbled_output():
    with pytest.raises(FactProcessError, match="unexpected output"):
        os_packages.OsPackagesState().process(["installed=acct", "installed=nginx", *GOOD])


def test_codename_is_quoted_in_the_command():
    assert "'^[^#]*[[:space:]]trixie-security([[:space:]]|$)'" in os_packages.OsPackagesState().command("trixie")


@pytest.mark.parametrize(
    ("live_restore", "held"),
    [(False, True), (True, False)],
)
def test_docker_packages_held_back_only_without_live_restore(live_restore, held):
    text = content.render(
        "etc/apt/apt.conf.d/52dockguard-unattended.j2", live_restore=live_restore, held=os_packages.DOCKER_RESTARTING
    )
    assert ("Package-Blacklist" in text) is held
    for name in os_packages.DOCKER_RESTARTING:
        assert (f'"{name}";' in text) is held


def test_auto_upgrades_is_what_unattended_upgrades_writes():
    """The postinst writes the same content with ucf (preseeded "true"): no prompt, no conflict."""
    assert content.render("etc/apt/apt.conf.d/20auto-upgrades.j2") == (
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    )


def test_needrestart_only_lists():
    assert "$nrconf{restart} = 'l';" in content.render("etc/needrestart/conf.d/dockguard.conf.j2")


def test_fail2ban_jail():
    text = content.render("etc/fail2ban/jail.d/dockguard.local.j2", ignoreip=["127.0.0.1/8", "::1", "10.0.0.0/8"])
    assert "[sshd]\nenabled = true\n" in text
    assert "\nbackend = systemd\n" in text
    assert "\nignoreip = 127.0.0.1/8 ::1 10.0.0.0/8\n" in text
    assert "\nbanaction = iptables-multiport\n" in text


def test_fail2ban_brings_python3_systemd():
    assert os_packages.tool_packages(["fail2ban"]) == ["fail2ban", "python3-systemd"]
    assert os_packages.tool_packages(["acct"]) == ["acct"]


@pytest.mark.parametrize(
    ("version", "rule"),
    [
        ("0.18.3-1+deb12u4", "!/var/lib/docker(/|$)"),
        ("0.19.1-2+deb13u6", "-/var/lib/docker$"),
        (None, "!/var/lib/docker(/|$)"),
    ],
)
def test_aide_excludes_docker_per_version(version, rule):
    lines = os_packages.aide_excludes(version).splitlines()
    assert rule in lines
    assert all(line.startswith(("#", rule[0])) for line in lines)


@pytest.mark.parametrize(
    ("plat", "arch", "uri", "suite"),
    [
        (
            {"id": "debian", "codename": "trixie", "pkg": "apt"},
            "amd64",
            "http://deb.debian.org/debian-security",
            "trixie-security",
        ),
        (
            {"id": "ubuntu", "codename": "noble", "pkg": "apt"},
            "amd64",
            "http://security.ubuntu.com/ubuntu",
            "noble-security",
        ),
        (
            {"id": "ubuntu", "codename": "noble", "pkg": "apt"},
            "arm64",
            "http://ports.ubuntu.com/ubuntu-ports",
            "noble-security",
        ),
    ],
)
def test_security_source(plat, arch, uri, suite):
    text = os_packages.security_source(plat, arch)
    assert f"\nURIs: {uri}\n" in text
    assert f"\nSuites: {suite}\n" in text


def test_no_security_source_off_apt():
    assert os_packages.security_source({"id": "rocky", "codename": "", "pkg": "dnf"}, "x86_64") is None


def test_missing_keeps_order_once():
    assert os_packages.missing({"installed": ["acct"]}, ["acct", "sysstat", "sysstat", "aide"]) == ["sysstat", "aide"]


def test_the_databases_are_read_after_the_units():
    """A build that ends between the two reads: read first, the file would be missing and the unit
    done ("AIDE has no database", and a second build); read after, the file is there."""
    for codename in (None, "trixie"):
        cmd = os_packages.OsPackagesState().command(codename)
        assert cmd.index("systemctl show -p ActiveState") < cmd.index(f"aide_db:{os_packages.AIDE_DB['apt']}")
