"""dockguard defaults for every host. Override per group (group_data/<group>.py)
or per host in the inventory. Every setting is documented in dockguard/settings.py
and in docs/settings.md; an unknown docker_*/dockguard_* key, a wrong type or an
unsafe combination stops the run before any host is touched."""

# CIS 2.2: no inter-container communication on the default bridge
docker_icc = False
# CIS 2.3
docker_log_level = "info"
# CIS 2.4: dockerd keeps managing iptables
docker_iptables = True
# CIS 2.5: no registries without TLS verification
docker_insecure_registries = []
# CIS 2.6: None lets dockerd choose (overlay2); aufs is refused
docker_storage_driver = None
# CIS 2.7: a TCP listener ("0.0.0.0:2376") always comes with mutual TLS
docker_tcp_listen = None
docker_tls_verify = True
docker_tls_san = []
docker_tls_days = 365
docker_tls_renew_days = 30
dockguard_pki_dir = "~/.dockguard/pki"
dockguard_host_name = None  # pull mode only: `dockguard pull install` sets it on the host
# CIS 2.8
docker_default_ulimits = {"nofile": {"soft": 65536, "hard": 65536}, "nproc": {"soft": 8192, "hard": 16384}}
# CIS 2.9: user namespace remapping; refused where it would hide containers/images
docker_userns_remap = "default"
docker_userns_allow_hiding = False
docker_start_stopped = False  # a dockerd stopped and disabled (or masked) on purpose stays stopped
dockguard_lock_wait = 60  # seconds to wait for another dockguard run on the same host
# CIS 2.10
docker_cgroup_parent = None
# CIS 2.12
docker_authorization_plugins = []
# CIS 2.12: dockguard-authz, an authorization plugin with a policy (None: not installed). {} takes
# the default rules; see docs/containers.md.
docker_authz_policy = None
docker_authz_failure_mode = "deny"
# CIS 3.7/3.8: private registries trusted over TLS (their CA, and a client certificate for mutual TLS)
docker_registries = []
# CIS 2.13: container logs and their rotation
docker_log_driver = "json-file"
docker_log_max_size = "10m"
docker_log_max_file = 3
docker_log_opts = {}
# CIS 2.14: containers cannot gain privileges via setuid binaries
docker_no_new_privileges = True
# CIS 2.15: containers survive a dockerd restart (not with Swarm mode)
docker_live_restore = True
# CIS 2.16
docker_userland_proxy = False
# CIS 2.17: None keeps Docker's built-in default seccomp profile
docker_seccomp_profile = None
# CIS 2.18
docker_experimental = False
# daemon.json keys dockguard does not model (dockerd validates them; rejected ones roll back)
docker_daemon_extra = {}
# keys of docker_daemon_extra that change the trust boundary (runtimes, ...): an explicit opt-in
docker_daemon_extra_trust = []
# CIS 1.1.2: who may be in the docker group; others are reported (removed with enforce)
docker_group_members = []
docker_group_enforce = False
# CIS 1.2.1: Lynis audit, its report saved per host, and an optional gate
lynis_enabled = True
lynis_baseline = True
lynis_min_hardening_index = None
lynis_reports_dir = "reports/lynis"
# Installing Docker where it is missing (off: such a host is refused), and from where
dockguard_disabled_areas = []  # control areas left alone (lynis, mac, dockerd, files, audit, docker_group,
# sshd, kernel, os_packages, accounts, firewall)
docker_install = False
docker_source = "distribution"
# CIS 5.1/5.2: AppArmor on Debian/Ubuntu, SELinux on the RHEL family ("auto")
dockguard_mac = "auto"
dockguard_allow_reboot = False

# The OS baseline around Docker (named by the Lynis tests they answer; docs/settings.md).
# SSH-7408: sshd drop-in, checked with sshd -t
sshd_max_sessions = 4
sshd_allow_tcp_forwarding = "no"
sshd_max_auth_tries = 3
sshd_permit_root_login = "prohibit-password"
# KRNL-6000 and module blacklist
kernel_sysctl = {}
kernel_blacklist_modules = [
    "cramfs",
    "freevxfs",
    "jffs2",
    "hfs",
    "hfsplus",
    "udf",
    "dccp",
    "rds",
    "tipc",
    "usb-storage",
    "firewire-core",
    "firewire-ohci",
    "firewire-sbp2",
]
# logins and accounts
accounts_pass_max_days = 365
accounts_pass_min_days = 1
accounts_umask = "027"
accounts_sha_crypt_rounds = 65536
accounts_shell_timeout = 900
accounts_banner = (
    "Authorised access only. This system is monitored and activity is recorded; unauthorised use "
    "is prohibited and may be reported to law enforcement."
)
accounts_restrict_compilers = True
accounts_no_core_dumps = True
# packages: security repository, upgrades, audit tools, AIDE
os_packages_security_repo = True
os_packages_unattended_upgrades = True
os_packages_tools = [
    "needrestart",
    "debsums",
    "apt-listchanges",
    "acct",
    "sysstat",
    "rsyslog",
    "rkhunter",
    "fail2ban",
]
os_packages_aide = True
os_packages_fail2ban_ignoreip = []
# FIRE-4508: INPUT policy (off: it cuts unlisted services) and published ports in DOCKER-USER
firewall_input_drop = False
firewall_ssh_sources = ["0.0.0.0/0", "::/0"]
firewall_input_allow = {}
firewall_published_ports = {}
