"""The OS baseline around Docker, by the Lynis tests each control answers (the compliance
report's second table). Each test reads the effective state: what sshd, the kernel, PAM,
dpkg and iptables use, not only dockguard's files."""

import pytest
from dockguard.operations import kernel, os_packages


def test_lynis_ssh_7408_sshd_uses_dockguards_values(host, cfg):
    if host.run("command -v sshd || test -x /usr/sbin/sshd").rc != 0:
        pytest.skip("no sshd on this host: none of it exists on this host")
    effective = {}
    for line in host.check_output("mkdir -p /run/sshd; sshd -T").splitlines():
        key, _, value = line.partition(" ")
        effective.setdefault(key, value.lower())
    want = {
        "maxsessions": str(cfg["sshd_max_sessions"]),
        "maxauthtries": str(cfg["sshd_max_auth_tries"]),
        "allowtcpforwarding": cfg["sshd_allow_tcp_forwarding"],
        "permitrootlogin": cfg["sshd_permit_root_login"].replace("prohibit-password", "without-password"),
        "x11forwarding": "no", "allowagentforwarding": "no", "permitemptypasswords": "no", "loglevel": "verbose",
        "clientalivecountmax": "2", "tcpkeepalive": "no", "permituserenvironment": "no", "ignorerhosts": "yes",
    }  # fmt: skip
    assert {k: effective.get(k) for k in want} == want
    assert "sftp" in effective.get("subsystem", "")  # pyinfra uploads over SFTP


def test_lynis_krnl_6000_forwarding_left_on_for_docker(host):
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "1"


def test_lynis_krnl_6000_sysctl_keys_in_the_running_kernel(host, cfg):
    keys = kernel.wanted(cfg)
    conf = host.file(kernel.SYSCTL_FILE)
    assert conf.exists, f"{kernel.SYSCTL_FILE} is missing"
    for key, value in keys.items():
        assert f"{key} = {value}" in conf.content_string, f"{key} not in {kernel.SYSCTL_FILE}"
    outer, wrong = [], []
    for key, value in keys.items():
        path = kernel.proc_path(key)
        r = host.run(f"cat {path}")
        if r.rc != 0:
            continue  # not in this kernel (named by the deploy)
        if kernel.normal(r.stdout) != kernel.normal(value):
            (outer if host.run(f"test -w {path}").rc != 0 else wrong).append(f"{key}={r.stdout.strip()}")
    assert not wrong, f"writable keys not at dockguard's values: {wrong}"
    if outer:
        virt = host.run("systemd-detect-virt --container").stdout.strip()
        assert virt and virt != "none", (
            f"read-only keys not at dockguard's values on a host with its own kernel: {outer}"
        )
        pytest.skip(f"a container host ({virt}): its own keys are set; these belong to the outer kernel: "
                    + ", ".join(outer))  # fmt: skip


def test_lynis_usb_1000_modules_blacklisted(host, cfg):
    config = host.check_output("modprobe -c 2>/dev/null | grep -E '^(install|blacklist) ' || true")
    for module in cfg["kernel_blacklist_modules"]:
        name = module.replace("-", "_")
        assert f"install {name} /bin/false" in config, f"{module} may still load"


def test_lynis_auth_9286_login_defs(host, cfg):
    defs = {}
    for line in host.file("/etc/login.defs").content_string.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            defs[parts[0]] = parts[1]
    assert defs.get("PASS_MAX_DAYS") == str(cfg["accounts_pass_max_days"])
    assert defs.get("PASS_MIN_DAYS") == str(cfg["accounts_pass_min_days"])
    assert defs.get("UMASK") == cfg["accounts_umask"]
    assert defs.get("SHA_CRYPT_MIN_ROUNDS") == str(cfg["accounts_sha_crypt_rounds"])


def test_lynis_auth_9262_pam_password_quality(host):
    if host.system_info.distribution not in ("debian", "ubuntu"):
        assert "pam_pwquality" in host.check_output("cat /etc/pam.d/system-auth /etc/pam.d/password-auth")
        return
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string


def test_lynis_krnl_5820_no_core_dumps(host, cfg):
    if not cfg["accounts_no_core_dumps"]:
        pytest.skip("accounts_no_core_dumps is off for this host (an operator decision)")
    assert host.check_output("ulimit -Hc") == "0"  # this SSH session is a new PAM session
    assert "Storage=none" in host.file("/etc/systemd/coredump.conf.d/dockguard.conf").content_string


def test_lynis_shll_6220_idle_shells_time_out(host, cfg):
    if not cfg["accounts_shell_timeout"]:
        pytest.skip("accounts_shell_timeout is 0 for this host (an operator decision)")
    assert host.check_output("bash -lic 'echo $TMOUT' 2>/dev/null") == str(cfg["accounts_shell_timeout"])


def test_lynis_bann_7126_legal_banners(host, cfg):
    for path in ("/etc/issue", "/etc/issue.net"):
        assert host.file(path).content_string.strip() == cfg["accounts_banner"].strip(), path


def test_lynis_hrdn_7222_compilers_for_root_only(host, cfg):
    if not cfg["accounts_restrict_compilers"]:
        pytest.skip("accounts_restrict_compilers is off for this host (an operator decision)")
    found = host.run(
        "for c in as cc gcc g++ c++ clang clang++ tcc; do p=$(command -v $c) && readlink -f $p; done | sort -u"
    ).stdout.split()
    loose = [p for p in found if host.file(p).mode & 0o007]
    assert not loose, f"compilers others may run: {loose}"


def test_lynis_pkgs_7388_security_repository(host):
    if host.system_info.distribution not in ("debian", "ubuntu"):
        pytest.skip("the security repository check is about APT sources: none of it exists on this host")
    codename = host.system_info.codename
    sources = host.check_output("cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true")
    assert f"{codename}-security" in sources


def test_lynis_pkgs_7420_unattended_security_upgrades(host, cfg):
    assert host.package("unattended-upgrades").is_installed
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    held = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    # Without live-restore an upgrade of dockerd would stop every container: held back.
    assert ("docker.io" in held) == (not cfg["docker_live_restore"])


def test_lynis_tools_installed_and_running(host, cfg):
    tools = cfg["os_packages_tools"]
    missing = [p for p in os_packages.tool_packages(tools) if not host.package(p).is_installed]
    assert not missing, f"not installed: {missing}"
    if "fail2ban" in tools:
        assert host.run("fail2ban-client status sshd").rc == 0, "fail2ban has no sshd jail"
    if "rsyslog" in tools:
        assert host.service("rsyslog").is_running
    if "needrestart" in tools:
        assert "$nrconf{restart} = 'l'" in host.file("/etc/needrestart/conf.d/dockguard.conf").content_string


def test_lynis_fint_4350_aide_leaves_out_docker_and_has_a_database(host, cfg, request):
    if not cfg["os_packages_aide"]:
        pytest.skip("os_packages_aide is off for this host (an operator decision)")
    assert host.package("aide").is_installed
    rules = host.check_output("cat /etc/aide/aide.conf.d/99_dockguard")
    assert "/var/lib/docker" in rules and "/var/lib/containerd" in rules
    assert host.run("grep -qiE '^Checksums *= *sha512' /etc/aide/aide.conf").rc == 0
    if host.file("/var/lib/aide/aide.db").exists:
        return
    state = host.run("systemctl is-active dockguard-aide-init.service").stdout.strip()
    assert state in ("active", "activating"), f"no AIDE database and its first build is {state}"
    request.node.user_properties.append(("dockguard_note", "the first AIDE database is being built"))


def test_lynis_fire_4508_input_drops_all_but_ssh_and_the_allowlist(host, cfg):
    if not cfg["firewall_input_drop"]:
        pytest.skip("firewall_input_drop is off for this host (an operator decision)")
    rules = host.check_output("iptables -S INPUT").splitlines()
    assert rules[0] == "-P INPUT DROP" and "-A INPUT -j DGD-INPUT" in rules
    chain = host.check_output("iptables -S DGD-INPUT")
    assert "--dport 22 -j ACCEPT" in chain
    assert host.service("dockguard-firewall").is_enabled


def test_firewall_docker_user_restricts_published_ports(host, cfg):
    assert "-A DOCKER-USER -j DGD-PUB" in host.check_output("iptables -S DOCKER-USER")
    chain = host.check_output("iptables -S DGD-PUB")
    for key in cfg["firewall_published_ports"]:
        port = key.partition("/")[2]
        assert f"--ctorigdstport {port} --ctdir ORIGINAL -j DROP" in chain, key
