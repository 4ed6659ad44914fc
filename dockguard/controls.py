"""The CIS Docker Benchmark controls dockguard reports on: the host controls
(sections 1-3) and the host side of 5.1/5.2 (AppArmor, SELinux), with their IDs in
1.6.0 and in 1.8.0.

1.8.0 inserts 2.7 "Ensure devicemapper storage driver is not used" and moves 1.6.0's
2.7-2.18 to 2.8-2.19; sections 1, 3 and 5 keep their numbers. That mapping is inferred
from the published titles of 1.7.0 and 1.8.0 (their full texts are not public): every
1.8.0 ID here says so (``MAPPING``).

``cis`` is the 1.6.0 ID: the key every operation name ("CIS 2.7: ...") and test name
(test_cis_2_7_...) carries, because third-party checkers and existing reports use it.
``cis18`` is the 1.8.0 ID; ``shown(c, "1.8")`` what a report prints.

Each control: its ID, title, and how dockguard handles it:
  auto    remediated automatically (and verified)
  choice  needs an operator decision, made with a setting (a safe default where one exists)
  report  verified and reported only; dockguard changes nothing for it
  manual  out of dockguard's scope; the report says why

``test`` is the prefix of the testinfra test that verifies it (tests/cis), or None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VERSIONS = ("1.6", "1.8")
DEFAULT_VERSION = "1.8"
BENCHMARK = {"1.6": "CIS Docker Benchmark 1.6.0", "1.8": "CIS Docker Benchmark 1.8.0"}
MAPPING = (
    "1.8.0 IDs are inferred from the published titles of 1.7.0 and 1.8.0 (the full texts are not public): "
    "1.8.0 inserts 2.7 (devicemapper) and moves 1.6.0's 2.7-2.18 to 2.8-2.19"
)
# A section-2 ID inside a 1.6.0 ID or group ("2.7", "2.7/2.8", "1.1.3-1.1.18" has none).
_SECTION2 = re.compile(r"(?<![0-9.])2\.([0-9]+)(?![0-9.])")


def renumber(cis16: str, version: str = DEFAULT_VERSION) -> str:
    """A 1.6.0 ID (or a group of them: "3.1/3.2", "2.7, 2.9") in ``version``'s numbering."""
    if version == "1.6" or not cis16:
        return cis16
    if version != "1.8":
        raise ValueError(f"unknown CIS Docker Benchmark version {version!r} (one of {', '.join(VERSIONS)})")
    return _SECTION2.sub(lambda m: f"2.{int(m[1]) + 1}" if 7 <= int(m[1]) <= 18 else m[0], cis16)


@dataclass(frozen=True)
class Control:
    cis: str  # the 1.6.0 ID; "" for a control 1.6.0 does not have
    title: str
    kind: str
    test: str | None
    note: str = ""
    cis18: str = field(default="")  # the 1.8.0 ID (from ``cis`` unless given)

    def __post_init__(self):
        if not self.cis18:
            object.__setattr__(self, "cis18", renumber(self.cis, "1.8"))

    @property
    def test18(self) -> str | None:
        """The test's name in 1.8.0's numbering: test_cis18_2_8_... where the ID moved, else ``test``."""
        if not self.test or self.test.startswith("test_cis18_") or self.cis18 == self.cis:
            return self.test
        return "test_cis18_" + re.sub(r"[./]", "_", self.cis18) + "_"

    @property
    def key(self) -> str:
        """Unique across both numberings: the 1.6.0 ID, or "1.8.0 2.7" for a 1.8.0-only control."""
        return self.cis or f"1.8.0 {self.cis18}"


def shown(c: Control, version: str = DEFAULT_VERSION) -> str:
    """The ID a report prints for ``c`` in ``version``'s numbering ("-" where it has none)."""
    return (c.cis18 if version == "1.8" else c.cis) or "-"


CONTROLS = [
    Control("1.1.1", "Separate partition for /var/lib/docker", "report", "test_cis_1_1_1_"),
    Control("1.1.2", "Only trusted users in the docker group", "choice", "test_cis_1_1_2_",
            "docker_group_members; removal with docker_group_enforce"),
    Control("1.1.3", "Audit the Docker daemon binaries", "auto", "test_cis_1_1_3_"),
    Control("1.1.4", "Audit /run/containerd", "auto", "test_cis_1_1_4_"),
    Control("1.1.5", "Audit /var/lib/docker", "auto", "test_cis_1_1_5_"),
    Control("1.1.6", "Audit /etc/docker", "auto", "test_cis_1_1_6_"),
    Control("1.1.7", "Audit docker.service", "auto", "test_cis_1_1_7_"),
    Control("1.1.8", "Audit containerd.sock", "auto", "test_cis_1_1_8_"),
    Control("1.1.9", "Audit docker.socket (1.7.0+: docker.sock)", "auto", "test_cis_1_1_9_"),
    Control("1.1.10", "Audit /etc/default/docker", "auto", "test_cis_1_1_10_"),
    Control("1.1.11", "Audit /etc/docker/daemon.json", "auto", "test_cis_1_1_11_"),
    Control("1.1.12", "Audit /etc/containerd/config.toml", "auto", "test_cis_1_1_12_"),
    Control("1.1.13", "Audit /etc/sysconfig/docker", "auto", "test_cis_1_1_13_"),
    Control("1.1.14", "Audit /usr/bin/containerd", "auto", "test_cis_1_1_14_"),
    Control("1.1.15", "Audit containerd-shim", "auto", "test_cis_1_1_15_"),
    Control("1.1.16", "Audit containerd-shim-runc-v1", "auto", "test_cis_1_1_16_"),
    Control("1.1.17", "Audit containerd-shim-runc-v2", "auto", "test_cis_1_1_17_"),
    Control("1.1.18", "Audit runc", "auto", "test_cis_1_1_18_"),
    Control("1.2.1", "The host is hardened (Lynis)", "report", "test_cis_1_2_1_",
            "index reported; lynis_min_hardening_index gates"),
    Control("1.2.2", "Docker is up to date", "manual", None,
            "package updates are the distribution's job; Lynis reports pending ones"),
    Control("2.1", "Run the daemon as a non-root user (rootless)", "manual", None,
            "a different installation of Docker, not a setting of the system daemon"),
    Control("2.2", "Inter-container communication off on the default bridge", "auto", "test_cis_2_2_"),
    Control("2.3", "Log level info", "auto", "test_cis_2_3_"),
    Control("2.4", "Docker manages iptables", "auto", "test_cis_2_4_"),
    Control("2.5", "No insecure registries", "auto", "test_cis_2_5_"),
    Control("2.6", "No aufs storage driver", "auto", "test_cis_2_6_"),
    Control("", "No devicemapper storage driver (1.8.0 only)", "report", "test_cis18_2_7_",
            "refused as a setting; a daemon on devicemapper is reported, never switched (that hides its images)",
            cis18="2.7"),
    Control("2.7", "TLS authentication on the TCP socket", "auto", "test_cis_2_7_"),
    Control("2.8", "Default ulimits", "auto", "test_cis_2_8_"),
    Control("2.9", "User namespace remapping", "choice", "test_cis_2_9_",
            "on by default; refused where it would hide containers"),
    Control("2.10", "Default cgroup parent confirmed", "choice", "test_cis_2_10_"),
    Control("2.11", "Base device size not changed", "auto", "test_cis_2_11_"),
    Control("2.12", "Authorization plugin for client commands", "choice", "test_cis_2_12_",
            "docker_authz_policy (auto: dockguard-authz), docker_authorization_plugins"),
    Control("2.13", "Centralised and rotated logging", "choice", "test_cis_2_13_",
            "docker_log_driver, docker_log_opts"),
    Control("2.14", "Containers cannot gain new privileges", "auto", "test_cis_2_14_"),
    Control("2.15", "Live restore", "auto", "test_cis_2_15_"),
    Control("2.16", "Userland proxy off", "auto", "test_cis_2_16_"),
    Control("2.17", "Daemon-wide seccomp profile", "choice", "test_cis_2_17_", "docker_seccomp_profile"),
    Control("2.18", "Experimental features off", "auto", "test_cis_2_18_"),
    Control("3.1/3.2", "docker.service owner and mode", "auto", "test_cis_3_1_3_2_"),
    Control("3.3/3.4", "docker.socket owner and mode", "auto", "test_cis_3_3_3_4_"),
    Control("3.5/3.6", "/etc/docker owner and mode", "auto", "test_cis_3_5_3_6_"),
    Control("3.7/3.8", "Registry certificates owner and mode", "auto", "test_cis_3_7_3_8_"),
    Control("3.9/3.10", "TLS CA certificate owner and mode", "auto", "test_cis_3_9_3_10_"),
    Control("3.11/3.12", "Server certificate owner and mode", "auto", "test_cis_3_11_3_12_"),
    Control("3.13/3.14", "Server key owner and mode", "auto", "test_cis_3_13_3_14_"),
    Control("3.15/3.16", "/var/run/docker.sock owner and mode", "auto", "test_cis_3_15_3_16_"),
    Control("3.17/3.18", "/etc/docker/daemon.json owner and mode", "auto", "test_cis_3_17_3_18_"),
    Control("3.19/3.20", "/etc/default/docker owner and mode", "auto", "test_cis_3_19_3_20_"),
    Control("3.21/3.22", "/etc/sysconfig/docker owner and mode", "auto", "test_cis_3_21_3_22_"),
    Control("3.23/3.24", "containerd socket owner and mode", "auto", "test_cis_3_23_3_24_"),
    Control("5.1", "AppArmor confines containers (Debian/Ubuntu)", "auto", "test_cis_5_1_",
            "docker-default verified; dockguard-default shipped, loaded, opt-in per container"),
    Control("5.2", "SELinux confines containers (RHEL family)", "auto", "test_cis_5_2_",
            "enforcing; a disabled host is rebooted only with dockguard_allow_reboot"),
]  # fmt: skip


@dataclass(frozen=True)
class OsControl:
    """A control of the OS baseline around Docker, named by the Lynis tests it answers
    (the compliance report's second table): its area (dockguard_disabled_areas) and test."""

    lynis: str
    title: str
    area: str
    test: str
    note: str = ""

    @property
    def key(self) -> str:
        return f"Lynis {self.lynis}"

    @property
    def test18(self) -> str:
        return self.test


OS_CONTROLS = [
    OsControl("SSH-7408", "sshd uses dockguard's hardened values", "sshd", "test_lynis_ssh_7408_",
              "sshd_max_sessions, sshd_max_auth_tries, sshd_allow_tcp_forwarding, sshd_permit_root_login"),
    OsControl("KRNL-6000", "Hardening sysctl keys (forwarding left on for Docker)", "kernel", "test_lynis_krnl_6000_",
              "a container host's kernel is its outer machine's: keys it cannot write are named"),
    OsControl("USB-1000/STRG-1846", "USB storage, FireWire and unused modules blacklisted", "kernel",
              "test_lynis_usb_1000_", "kernel_blacklist_modules; modules Docker needs are refused"),
    OsControl("AUTH-9230/9286/9328", "login.defs: hashing rounds, password ageing, umask", "accounts",
              "test_lynis_auth_9286_"),
    OsControl("AUTH-9262", "PAM password quality", "accounts", "test_lynis_auth_9262_"),
    OsControl("KRNL-5820", "No core dumps", "accounts", "test_lynis_krnl_5820_"),
    OsControl("SHLL-6220", "Idle shells time out", "accounts", "test_lynis_shll_6220_"),
    OsControl("BANN-7126/7130", "Legal banners", "accounts", "test_lynis_bann_7126_"),
    OsControl("HRDN-7222", "Compilers for root only", "accounts", "test_lynis_hrdn_7222_"),
    OsControl("PKGS-7388", "The security repository in APT sources", "os_packages", "test_lynis_pkgs_7388_"),
    OsControl("PKGS-7420", "Unattended security upgrades", "os_packages", "test_lynis_pkgs_7420_",
              "docker.io upgrades restart dockerd: held back unless live-restore keeps containers up"),
    OsControl("DEB-0280/0811/0831/0880, PKGS-7370, ACCT-9622/9626, LOGG-2130, HRDN-7230",
              "Audit and maintenance tools installed and running", "os_packages", "test_lynis_tools_"),
    OsControl("FINT-4350/4402", "AIDE with SHA-512, Docker's data left out, a baseline database", "os_packages",
              "test_lynis_fint_4350_"),
    OsControl("FIRE-4508", "INPUT drops all but SSH, dockerd's TLS port and the allowlist", "firewall",
              "test_lynis_fire_4508_", "firewall_input_drop (off by default: it cuts unlisted services)"),
    OsControl("-", "Published container ports restricted in DOCKER-USER", "firewall", "test_firewall_docker_user_",
              "firewall_published_ports; a published port bypasses INPUT"),
]  # fmt: skip

BY_ID = {c.key: c for c in [*CONTROLS, *OS_CONTROLS]}


def for_test(test_name: str) -> Control | OsControl | None:
    """The control a testinfra test verifies (by its name's prefix)."""
    base = test_name.split("[", 1)[0]
    best, best_len = None, 0
    for c in [*CONTROLS, *OS_CONTROLS]:
        for prefix in {c.test, c.test18} - {None}:
            if base.startswith(prefix) and len(prefix) > best_len:
                best, best_len = c, len(prefix)
    return best


def test_name(name: str, version: str = DEFAULT_VERSION) -> str:
    """A CIS test's name (test_cis_2_7_..., 1.6.0's IDs) as shown in ``version``'s numbering."""
    c = for_test(name)
    if version == "1.6" or c is None or isinstance(c, OsControl):
        return name
    if not c.test or not name.startswith(c.test) or c.test18 == c.test:
        return name
    return c.test18 + name[len(c.test) :]
