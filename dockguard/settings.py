"""dockguard settings: one schema, validated in one place before any host is touched.

Every setting is host/group data (``inventory/group_data/all.py`` holds the
defaults). ``for_host`` validates every host of the inventory at once on its
first call and raises one error that lists every problem, naming the host and
the setting, so a typo, a wrong type or an unsafe combination never reaches a
host. The table of settings in docs/settings.md is generated from ``SCHEMA`` (``make docs``).
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import os
import posixpath
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import DeployError

# Host-data keys under these prefixes belong to dockguard: an unknown one is an error.
PREFIXES = ("dockguard_", "docker_", "lynis_", "sshd_", "kernel_", "accounts_", "os_packages_", "firewall_")

_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
# Ulimit names dockerd accepts (github.com/docker/go-units ulimit.go).
ULIMITS = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
NoneType = type(None)


@dataclass(frozen=True)
class Setting:
    name: str
    type: type | tuple[type, ...]
    default: Any
    cis: str
    doc: str
    breaks: str = ""
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int in Python; never accept one for the other.
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join(_type_name(t) for t in types)
            return f"expected {want}, got {_type_name(type(value))} {value!r}"
        if value is None:
            return None
        bad = _bad_text(value)
        if bad:
            return bad
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.check:
            return self.check(value)
        return None


def _type_name(t: type) -> str:
    names = {bool: "a boolean", int: "an integer", str: "a string", list: "a list", dict: "a mapping"}
    return names.get(t, "None" if t is NoneType else t.__name__)


# --------------------------------------------------------------------------- checks


def _size(value: str) -> str | None:
    if not _SIZE.match(value):
        return f"must be a size like '10m' (a number and k, m or g), got {value!r}"
    return None


def _positive(value: int) -> str | None:
    return None if value >= 1 else f"must be at least 1, got {value}"


def _strings(value: list) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or not v]
    return f"must be a list of non-empty strings, got {bad[0]!r} in it" if bad else None


def _string_map(value: dict) -> str | None:
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            return f"keys and values must be strings (dockerd rejects others), got {k!r}: {v!r}"
    return None


def _storage_driver(value: str) -> str | None:
    if value == "aufs":
        return "aufs is deprecated and not allowed (CIS 2.6): use overlay2"
    if value == "devicemapper":
        return "devicemapper is deprecated and not allowed (CIS 1.8.0 2.7; Engine 25 removed it): use overlay2"
    return None


def _listen(value: str) -> str | None:
    # It reaches dockerd's -H flag in a unit file and a shell: nothing but an address and a port.
    if re.search(r"[\s'\"`$\\;]", value) or not value.isprintable():
        return (
            "must be ADDRESS:PORT without whitespace, control characters, quotes, '$', ';' or backslashes "
            f"(e.g. '0.0.0.0:2376' or '[fe80::1%eth0]:2376'), got {value!r}"
        )
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return f"must be ADDRESS:PORT such as '0.0.0.0:2376', got {value!r}"
    bracketed = host.startswith("[") and host.endswith("]")
    address, _, scope = (host[1:-1] if bracketed else host).partition("%")
    if "%" in host and not (bracketed and re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", scope)):
        return f"an IPv6 address with a scope id is written '[fe80::1%eth0]:2376' (an interface name), got {value!r}"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"must be an IP address and a port such as '0.0.0.0:2376', got {value!r}"
    if scope and ip.version != 6:
        return f"only an IPv6 address has a scope id, got {value!r}"
    if (ip.version == 6) != bracketed:
        return f"an IPv6 address goes in brackets ('[::]:2376'), an IPv4 address does not, got {value!r}"
    return None


def _member_names(value: list) -> str | None:
    """docker_group_members: user names as /etc/group holds them (gpasswd, getent); NSS (LDAP)
    may supply names with blanks or shell syntax, which dockguard quotes wherever they go."""
    problem = _strings(value)
    if problem:
        return problem
    for name in value:
        if any(c in name for c in "\n\0,:") or not name.isprintable():
            return f"{name!r} cannot be a member name in /etc/group (no newline, NUL, ',', ':' or control characters)"
    return None
    return None


def _ulimits(value: dict) -> str | None:
    for name, limit in value.items():
        if name not in ULIMITS:
            return f"unknown ulimit {name!r} (known: {', '.join(ULIMITS)})"
        if not isinstance(limit, dict) or set(limit) != {"soft", "hard"}:
            return f"{name} must be a mapping with exactly 'soft' and 'hard', got {limit!r}"
        soft, hard = limit["soft"], limit["hard"]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= -1 for x in (soft, hard)):
            return f"{name}: soft and hard must be integers (-1 for unlimited), got {limit!r}"
        if hard != -1 and (soft == -1 or soft > hard):
            return f"{name}: soft limit {soft} is above the hard limit {hard}"
    return None


def _userns(value: str) -> str | None:
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$", value):
        return f"must be 'default' or USER[:GROUP], got {value!r}"
    if "root" in value.split(":") or value in ("0", "0:0"):
        return (
            f"{value!r} maps the containers' root to the host's root, which is no remapping at all (CIS 2.9); "
            "use 'default' or an unprivileged user"
        )
    return None


def _seccomp(value: str) -> str | None:
    if value != "dockguard" and not value.startswith("/"):
        return f"must be 'dockguard' (the shipped profile) or an absolute path on the host, got {value!r}"
    return _host_path(value) if value != "dockguard" else None


def _cgroup_parent(value: str) -> str | None:
    if not re.match(r"^[A-Za-z0-9_./-]+$", value):
        return f"must be a cgroup path or a systemd slice, got {value!r}"
    if ".." in value.split("/"):
        return f"must not climb out of the cgroup tree with '..', got {value!r}"
    return None


def _extra(value: dict) -> str | None:
    bad_key = next((k for k in value if not isinstance(k, str)), None)
    if bad_key is not None:
        return f"keys must be strings (daemon.json is JSON), got {bad_key!r}"
    unserialisable = _json_problem(value)
    if unserialisable:
        return unserialisable
    managed = sorted(set(value) & MANAGED_KEYS)
    if managed:
        return f"{', '.join(managed)} {'is' if len(managed) == 1 else 'are'} managed by dockguard settings; set those"
    if "hosts" in value:
        return "'hosts' conflicts with the -H flags of docker.service; use docker_tcp_listen"
    tls_keys = sorted(k for k in value if k.lower().startswith("tls"))
    if tls_keys:
        return f"{', '.join(tls_keys)}: TLS of the daemon socket is set by docker_tcp_listen and the dockguard CA"
    opts = value.get("storage-opts") or []
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        return f"storage-opts must be a list of strings, got {opts!r}"
    if any(o.strip().lower().startswith("dm.basesize") for o in opts):
        return "dm.basesize changes the base device size (CIS 2.11)"
    return None


# --------------------------------------------------------------------------- stricter values (issue 12)
# Every string a setting carries, wherever it ends up (daemon.json, a unit, a command line, a
# certificate), is checked for what it is: an address, a CIDR, a DNS name, a path, a user name.

CA_DAYS = 3650  # the dockguard CA's validity (dockguard/pki.py): no certificate it signs can outlive it
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# daemon.json keys that change who or what runs as root, or who reaches the daemon: refused in
# docker_daemon_extra unless named in docker_daemon_extra_trust (a separate, explicit opt-in).
TRUST_KEYS = ("containerd", "data-root", "default-runtime", "exec-root", "group", "init-path", "runtimes")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bad_text(value: Any, where: str = "") -> str | None:
    """Control characters (a trailing newline too) or spaces around a string, anywhere in a value."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            return f"{where}must not contain control characters (a newline, a tab), got {value!r}"
        if value != value.strip():
            return f"{where}must not start or end with spaces, got {value!r}"
    elif isinstance(value, Mapping):
        for k, v in value.items():
            bad = _bad_text(k, where) or _bad_text(v, where)
            if bad:
                return bad
    elif isinstance(value, (list, tuple)):
        for v in value:
            bad = _bad_text(v, where)
            if bad:
                return bad
    return None


def _json_problem(value: Any) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        return f"must be plain JSON data (strings, numbers, booleans, lists, mappings) for daemon.json: {e}"
    return None


def dns_name(value: str) -> bool:
    """A host name (RFC 1123): dot-separated labels, no wildcard, no spaces, at most 253 characters."""
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_DNS_LABEL.match(label) for label in name.split("."))


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _tls_sans(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    for v in value:
        if not (_ip(v) or dns_name(v)):
            return f"{v!r} is not a DNS name or an IP address (no wildcards, spaces or URLs in a certificate)"
    return None


def _registries(value: list) -> str | None:
    """HOST[:PORT] (a DNS name or an address) or a CIDR no wider than /24 (IPv4) or /120 (IPv6)."""
    bad = _strings(value)
    if bad:
        return bad
    for v in value:
        if "/" in v:
            try:
                net = ipaddress.ip_network(v, strict=True)
            except ValueError:
                return f"{v!r} is neither HOST[:PORT] nor a CIDR such as '10.1.2.0/24'"
            widest = 24 if net.version == 4 else 120
            if net.prefixlen < widest:
                return (
                    f"{v!r} would skip TLS verification for {net.num_addresses} addresses (CIS 2.5); "
                    f"name the registries, or a CIDR of at most /{widest}"
                )
            continue
        host, _, port = v.rpartition(":") if re.search(r":[0-9]+$", v) else (v, "", "")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if port and not 0 < int(port) < 65536:
            return f"{v!r}: port {port} is out of range"
        if not (_ip(host) or dns_name(host)):
            return f"{v!r} is neither HOST[:PORT] nor a CIDR such as '10.1.2.0/24'"
    return None


def _tls_days(value: int) -> str | None:
    if value < 1:
        return f"must be at least 1, got {value}"
    if value > CA_DAYS:
        return f"{value} days is beyond the life of the dockguard CA ({CA_DAYS} days)"
    return None


def _host_path(value: str) -> str | None:
    if not value.startswith("/") or posixpath.normpath(value) != value or "//" in value:
        return f"must be a normalised absolute path (no '..', '.' or '//'), got {value!r}"
    return None


def _operator_dir(value: str) -> str | None:
    """A directory on the operator's machine: absolute, or under the running user's home (~/)."""
    if not value.strip():
        return "must not be empty"
    if value.startswith("~") and not value.startswith("~/"):
        return f"must be absolute or under your own home ('~/...'), not another user's ({value!r})"
    return None


def _pki(value: str) -> str | None:
    bad = _operator_dir(value)
    if bad:
        return bad
    if not value.startswith(("/", "~/")):
        return f"must be absolute or under '~/': a relative CA directory depends on where a run starts, got {value!r}"
    return None


def _host_name(value: str) -> str | None:
    """An inventory host name as pull mode carries it (certificate names, file contents, metric labels)."""
    if not value or len(value) > 253 or any(c.isspace() or c in "\"'\\/" for c in value) or value == "@local":
        return f"must be an inventory host name (no blanks, quotes, slashes, backslashes; not '@local'), got {value!r}"
    return None


# The only host a run may carry dockguard_host_name for: pyinfra's local connector (pull mode).
PULL_HOST = "@local"


# --------------------------------------------------------------------------- OS baseline checks

# Kernel modules Docker, its networking and Swarm load on demand: never blacklisted.
DOCKER_MODULES = re.compile(
    r"^(overlay|br_netfilter|bridge|veth|vxlan|macvlan|ipvlan|dummy|llc|stp|tun|xfrm_user|xfrm_algo|"
    r"nf_.*|nft_.*|xt_.*|x_tables|ip_tables|ip6_tables|iptable_.*|ip6table_.*|ip_vs.*|ip_set.*|"
    r"nfnetlink.*|esp4|esp6|ah4|ah6|sctp|libcrc32c|crc32c.*|ipv6|udp_tunnel|ip6_udp_tunnel|"
    r"ext4|xfs|btrfs|zfs|fuse|autofs4|squashfs|loop|dm_.*)$"
)
# sysctl keys Docker needs at these values: refused at any other value in kernel_sysctl.
DOCKER_SYSCTLS = {
    "net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1",
    "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
}  # fmt: skip
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")
_PORT_KEY = re.compile(r"^(tcp|udp)/([0-9]{1,5})$")


def _modules(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    for v in value:
        if not re.fullmatch(r"[a-z0-9_-]{1,56}", v):
            return f"{v!r} is not a kernel module name"
        if DOCKER_MODULES.match(v.replace("-", "_")):
            return f"{v!r} is a module Docker or its networking loads on demand: blacklisting it breaks containers"
    return None


def _sysctls(value: dict) -> str | None:
    for k, v in value.items():
        if not isinstance(k, str) or not _SYSCTL_KEY.match(k):
            return f"{k!r} is not a sysctl key (dotted, letters, digits, '_' and '-')"
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not re.fullmatch(r"-?[0-9]+( -?[0-9]+)*", str(v)):
            return f"{k}: the value must be an integer (or integers separated by spaces), got {v!r}"
        if k in DOCKER_SYSCTLS and str(v) != DOCKER_SYSCTLS[k]:
            return f"{k}: Docker needs {DOCKER_SYSCTLS[k]} (container networking stops otherwise), got {v!r}"
        if k == "kernel.modules_disabled" and str(v) != "0":
            return "kernel.modules_disabled: dockerd loads kernel modules on demand (overlay, br_netfilter, ...)"
    return None


def _cidr_list(v: Any, where: str) -> str | None:
    if not isinstance(v, list) or not v:
        return f"{where}: a non-empty list of addresses or networks (CIDR), got {v!r}"
    for c in v:
        # Digits, hex, '.', ':' and '/' only: no IPv6 scope id ("%eth0"), which Python accepts with
        # any text after it, and which would reach iptables-restore and fail2ban's file as written.
        if not isinstance(c, str) or not re.fullmatch(r"[0-9A-Fa-f.:/]+", c):
            return f"{where}: {c!r} is not an address or network (CIDR, without a scope id)"
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError:
            return f"{where}: {c!r} is not an address or network (CIDR)"
    return None


def _port_sources(value: dict) -> str | None:
    for k, v in value.items():
        m = _PORT_KEY.match(k) if isinstance(k, str) else None
        if not m or not 0 < int(m[2]) < 65536:
            return f"{k!r} must be 'tcp/PORT' or 'udp/PORT'"
        bad = _cidr_list(v, k)
        if bad:
            return bad
    return None


def _cidrs(value: list) -> str | None:
    return _cidr_list(value, "sources") if value else None


def _banner(value: str) -> str | None:
    # agetty expands backslash escapes in /etc/issue; keep the text literal.
    if "\\" in value or not all(c.isprintable() or c == "\n" for c in value):
        return "printable text and newlines only (no backslashes: agetty expands them in /etc/issue)"
    return None


OS_TOOLS = (
    "needrestart", "debsums", "apt-listchanges", "apt-listbugs", "libpam-tmpdir", "acct", "sysstat",
    "rsyslog", "rkhunter", "fail2ban",
)  # fmt: skip


def _tools(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    unknown = [v for v in value if v not in OS_TOOLS]
    return f"unknown tool {unknown[0]!r} (one of {', '.join(OS_TOOLS)})" if unknown else None


AUTHZ_PLUGIN = "dockguard-authz"  # the plugin docker_authz_policy installs

# The control areas of dockguard/deploy.py, by the names dockguard_disabled_areas takes.
AREAS = (
    "lynis", "mac", "authz", "dockerd", "registries", "files", "audit", "docker_group",
    "sshd", "kernel", "os_packages", "accounts", "firewall",
)  # fmt: skip


def _areas(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    unknown = [v for v in value if v not in AREAS]
    if unknown:
        return f"unknown area {unknown[0]!r} (areas: {', '.join(AREAS)})"
    return None


def _plugin_names(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    for v in value:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*(:[A-Za-z0-9_.-]+)?$", v):
            return f"{v!r} is not a plugin name (NAME, or REPOSITORY/NAME:TAG)"
    return None


_AUTHZ_KEYS = ("rules", "host_paths", "capabilities", "exceptions")


def _authz_policy(value: dict | None) -> str | None:
    """docker_authz_policy: the dockguard-authz policy (see dockguard/authz_plugin.py)."""
    from . import authz_plugin as az

    if value is None:
        return None
    unknown = [k for k in value if k not in _AUTHZ_KEYS]
    if unknown:
        return f"unknown key {unknown[0]!r} (keys: {', '.join(_AUTHZ_KEYS)})"
    for key in ("rules", "host_paths", "capabilities"):
        if key in value and (not isinstance(value[key], list) or _strings(value[key])):
            return f"{key}: a list of strings"
    bad = [r for r in value.get("rules", []) if r not in az.RULES]
    if bad:
        return f"rules: unknown rule {bad[0]!r} (rules: {', '.join(az.RULES)})"
    for path in value.get("host_paths", []):
        if not path.startswith("/") or _bad_text(path):
            return f"host_paths: {path!r} is not an absolute path of plain characters"
    for cap in value.get("capabilities", []):
        if not re.fullmatch(r"(CAP_)?[A-Za-z_]+", cap):
            return f"capabilities: {cap!r} is not a capability name"
    exceptions = value.get("exceptions", [])
    if not isinstance(exceptions, list):
        return "exceptions: a list of {'image': GLOB, 'label': 'KEY[=VALUE]', 'rules': [RULE, ...]}"
    for i, exc in enumerate(exceptions):
        if not isinstance(exc, dict) or not (set(exc) <= {"image", "label", "rules"}):
            return f"exceptions[{i}]: a mapping of image, label and rules"
        if not exc.get("image") and not exc.get("label"):
            return f"exceptions[{i}]: needs an image (name, digest or glob) or a label (KEY or KEY=VALUE)"
        for key in ("image", "label"):
            if key in exc and (not isinstance(exc[key], str) or _bad_text(exc[key]) or not exc[key].strip()):
                return f"exceptions[{i}].{key}: a non-empty string of plain characters"
        rules = exc.get("rules", [])
        if not isinstance(rules, list) or [r for r in rules if r not in az.RULES]:
            return f"exceptions[{i}].rules: a list of rule names ({', '.join(az.RULES)})"
    return None


_REGISTRY_KEYS = ("address", "ca", "client_certificate")


def _trusted_registries(value: list) -> str | None:
    """docker_registries: [{'address': HOST:PORT, 'ca': PEM file on the operator's machine,
    'client_certificate': bool}]."""
    from cryptography import x509

    seen = set()
    for i, reg in enumerate(value):
        if not isinstance(reg, dict) or not set(reg) <= set(_REGISTRY_KEYS) or "address" not in reg:
            return f"[{i}]: a mapping of {', '.join(_REGISTRY_KEYS)} (address required)"
        address = reg["address"]
        if not isinstance(address, str) or "/" in address or _registries([address]):
            return f"[{i}].address: {address!r} is not HOST[:PORT] (the name docker pulls with)"
        if address in seen:
            return f"[{i}].address: {address!r} is listed twice"
        seen.add(address)
        if not isinstance(reg.get("client_certificate", False), bool):
            return f"[{i}].client_certificate: True or False"
        ca = reg.get("ca")
        if ca is None:
            if not reg.get("client_certificate"):
                return f"[{i}]: names neither a ca nor client_certificate: there is nothing to configure"
            continue
        bad = _operator_dir(ca) if isinstance(ca, str) else "a path"
        if bad:
            return f"[{i}].ca: {bad}"
        path = os.path.expanduser(ca)
        try:
            with open(path, "rb") as f:
                x509.load_pem_x509_certificates(f.read())
        except OSError as e:
            return f"[{i}].ca: {ca!r} cannot be read on this machine ({e.strerror})"
        except ValueError:
            return f"[{i}].ca: {ca!r} holds no PEM certificate"
    return None


def _log_opts(value: dict) -> str | None:
    bad = _string_map(value)
    if bad:
        return bad
    managed = sorted(set(value) & {"max-size", "max-file"})
    if managed:
        return f"{', '.join(managed)}: set by docker_log_max_size and docker_log_max_file"
    return None


def _trust_keys(value: list) -> str | None:
    bad = _strings(value)
    if bad:
        return bad
    unknown = [v for v in value if v not in TRUST_KEYS]
    if unknown:
        return f"{unknown[0]!r} is not a key that needs this opt-in (those are: {', '.join(TRUST_KEYS)})"
    return None


def _storage(value: str) -> str | None:
    bad = _storage_driver(value)
    if bad:
        return bad
    if value not in STORAGE_DRIVERS:
        return f"must be one of {', '.join(STORAGE_DRIVERS)} (or None: dockerd chooses), got {value!r}"
    return None


STORAGE_DRIVERS = ("overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs")


# --------------------------------------------------------------------------- schema

SCHEMA: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "docker_icc", bool, False, "2.2",
            "Inter-container communication on the default bridge network.",
            breaks="containers on the default bridge can no longer reach each other; "
            "put containers that must talk on a user-defined network (its own enable_icc)",
        ),
        Setting(
            "docker_log_level", str, "info", "2.3", "dockerd's log level.",
            choices=("debug", "info", "warn", "error", "fatal"),
        ),
        Setting(
            "docker_iptables", bool, True, "2.4",
            "dockerd manages the iptables rules of container networking.",
            breaks="off: published ports and container egress need hand-made firewall rules",
        ),
        Setting(
            "docker_insecure_registries", list, [], "2.5",
            "Registries reached without TLS verification (CIS: none): HOST[:PORT], or a CIDR of at most "
            "/24 (IPv4) or /120 (IPv6).", check=_registries,
        ),
        Setting(
            "docker_storage_driver", (str, NoneType), None, "2.6",
            "Storage driver; None lets dockerd choose (overlay2). aufs is refused.",
            breaks="changing it hides existing images and containers", check=_storage,
        ),
        Setting(
            "docker_tcp_listen", (str, NoneType), None, "2.7",
            "Also listen on TCP (ADDRESS:PORT, e.g. '0.0.0.0:2376'), always with mutual TLS: "
            "a server certificate signed by the dockguard CA, client certificates required.",
            check=_listen,
        ),
        Setting(
            "docker_tls_verify", bool, True, "2.7",
            "Require a client certificate on the TCP socket. Cannot be turned off while dockerd listens on TCP.",
        ),
        Setting(
            "docker_tls_san", list, [], "2.7",
            "More names or addresses for a host's server certificate (its inventory name, "
            "ssh_hostname, localhost and 127.0.0.1 are always in it): DNS names or addresses, no wildcards.",
            check=_tls_sans,
        ),
        Setting(
            "docker_tls_days", int, 365, "2.7",
            "Validity of a host's server certificate, in days (at most the CA's 3650).", check=_tls_days,
        ),
        Setting(
            "docker_tls_renew_days", int, 30, "2.7",
            "Renew a server certificate when it expires within this many days (checked every run).",
            check=_positive,
        ),
        Setting(
            "dockguard_pki_dir", str, "~/.dockguard/pki", "2.7",
            "The CA on the operator's machine (mode 0700, never uploaded): the CA in ca/, the operator's "
            "client credentials in client/ (DOCKER_CERT_PATH). Absolute or under ~/; the same for every host "
            "of a run.", check=_pki,
        ),
        Setting(
            "dockguard_host_name", (str, NoneType), None, "-",
            "Pull mode only, set by `dockguard pull install` in a host's own inventory (never by hand): the "
            "host's name in the operator's inventory, its identity where pyinfra names it '@local' (certificate "
            "names, drift results, metrics). Such a run is the host checking itself: the CA's key is not there, "
            "so a certificate that must be (re)issued is reported for the operator, never signed or made there.",
            check=_host_name,
        ),
        Setting(
            "docker_default_ulimits", dict,
            {"nofile": {"soft": 65536, "hard": 65536}, "nproc": {"soft": 8192, "hard": 16384}}, "2.8",
            "Default ulimits of containers (name: {soft, hard}).",
            breaks="nproc counts every process of a (remapped) uid across all containers", check=_ulimits,
        ),
        Setting(
            "docker_userns_remap", (str, NoneType), "default", "2.9",
            "User namespace remapping: 'default' (the dockremap user, ranges in /etc/subuid and "
            "/etc/subgid managed by dockguard), USER[:GROUP], or None for off.",
            breaks="images and containers made before it are hidden (a new storage root); --privileged "
            "and --net=host need --userns=host per container; bind mounts see remapped owners",
            check=_userns,
        ),
        Setting(
            "docker_userns_allow_hiding", bool, False, "2.9",
            "Allow turning userns-remap on for a host that has images or containers, which then "
            "disappear from view (not deleted) until it is turned off again.",
        ),
        Setting(
            "docker_start_stopped", bool, False, "-",
            "Start (and verify) a dockerd that the operator stopped and disabled or masked. Off: such a "
            "daemon is left stopped, its files are hardened for its next start, and every run says so.",
        ),
        Setting(
            "dockguard_lock_wait", int, 60, "-",
            "Seconds a run waits for another dockguard run on the same host (the host lock) before it "
            "fails that host.", check=_positive,
        ),
        Setting(
            "docker_cgroup_parent", (str, NoneType), None, "2.10",
            "Parent cgroup of containers; None keeps the default.", check=_cgroup_parent,
        ),
        Setting(
            "docker_authorization_plugins", list, [], "2.12",
            "Authorization plugins that vet every client command (must be installed on the host).",
            breaks="engines older than 23.0.15/25.0.6/26.1.5/27.1.1 have an authz bypass (CVE-2024-41110)",
            check=_plugin_names,
        ),
        Setting(
            "docker_authz_policy", (dict, NoneType), None, "2.12",
            "dockguard-authz, an authorization plugin dockguard installs, and its policy: None (off), or "
            "{'rules': [...], 'host_paths': [...], 'capabilities': [...], 'exceptions': [{'image': GLOB, "
            "'label': 'KEY=VALUE', 'rules': [...]}]}; {} takes the default rules (privileged, host paths, "
            "host namespaces, root-like capabilities, seccomp/AppArmor unconfined). See docs/containers.md.",
            breaks="containers the policy forbids cannot be created (exceptions by image or label); an engine "
            "without the fixes of CVE-2024-41110 and CVE-2026-34040 can be bypassed (reported, CIS 2.12 fails)",
            check=_authz_policy,
        ),
        Setting(
            "docker_authz_failure_mode", str, "deny", "2.12",
            "What dockguard-authz answers when it cannot decide (its policy file unreadable, a body it cannot "
            "parse): deny, or allow (warned on every run). While its socket is stopped dockerd refuses every call.",
            choices=("deny", "allow"),
        ),
        Setting(
            "docker_registries", list, [], "3.7/3.8",
            "Private registries trusted over TLS: [{'address': 'HOST:PORT', 'ca': 'PEM file on this machine', "
            "'client_certificate': True}]. The CA goes to /etc/docker/certs.d/ADDRESS/ca.crt; for mutual TLS the "
            "host makes its own key there and the dockguard CA signs its client certificate (the registry must "
            "trust that CA for clients). Credentials stay with `docker login`; dockguard keeps its files 0600.",
            check=_trusted_registries,
        ),
        Setting(
            "docker_log_driver", str, "json-file", "2.13",
            "Default logging driver of containers; journald or syslog for central logging.",
            choices=("json-file", "local", "journald", "syslog"),
        ),
        Setting(
            "docker_log_max_size", str, "10m", "2.13",
            "Rotate a container's log at this size (json-file, local).", check=_size,
        ),
        Setting(
            "docker_log_max_file", int, 3, "2.13",
            "Rotated log files kept per container (json-file, local).", check=_positive,
        ),
        Setting(
            "docker_log_opts", dict, {}, "2.13",
            "More log-opts for the driver, e.g. {'syslog-address': 'udp://logs:514'} (strings).",
            check=_log_opts,
        ),
        Setting(
            "docker_no_new_privileges", bool, True, "2.14",
            "Containers cannot gain privileges through setuid/setgid binaries.",
            breaks="sudo and other setuid programs inside containers; opt a container out "
            "with --security-opt no-new-privileges=false",
        ),
        Setting(
            "docker_live_restore", bool, True, "2.15",
            "Running containers survive a dockerd restart.",
            breaks="cannot be used with Swarm mode (a swarm node is refused)",
        ),
        Setting(
            "docker_userland_proxy", bool, False, "2.16",
            "Use docker-proxy for published ports (off: iptables hairpin NAT only).",
            breaks="relies on net.ipv4.conf.*.route_localnet for published ports on 127.0.0.1",
        ),
        Setting(
            "docker_seccomp_profile", (str, NoneType), None, "2.17",
            "Daemon-wide seccomp profile: None for Docker's built-in default, 'dockguard' for the "
            "hardened profile shipped in templates/, or an absolute path on the host.",
            breaks="'dockguard' refuses more system calls than Docker's default (see the template)",
            check=_seccomp,
        ),
        Setting(
            "docker_experimental", bool, False, "2.18", "Experimental daemon features.",
        ),
        Setting(
            "docker_group_members", list, [], "1.1.2",
            "Users allowed in the docker group (root-equivalent). Every other member is reported.",
            check=_member_names,
        ),
        Setting(
            "docker_group_enforce", bool, False, "1.1.2",
            "Remove docker group members that are not in docker_group_members (off: report only).",
            breaks="removed users lose access to the Docker socket at their next login",
        ),
        Setting(
            "lynis_enabled", bool, True, "1.2.1",
            "Install Lynis, run it with dockguard's profile when the host changed (or has no report), "
            "parse its report and save it on the operator's machine.",
        ),
        Setting(
            "lynis_baseline", bool, True, "1.2.1",
            "Audit a host that has no Lynis report yet before hardening it, so that the run shows its "
            "index before and after (off: only after; saves one audit, about 9 minutes on an emulated VM).",
        ),
        Setting(
            "lynis_min_hardening_index", (int, NoneType), None, "1.2.1",
            "Fail a host whose Lynis hardening index is below this (None: report only).",
            check=lambda v: None if 0 <= v <= 100 else f"must be between 0 and 100, got {v}",
        ),
        Setting(
            "lynis_reports_dir", str, "reports/lynis", "1.2.1",
            "Where each host's Lynis report is saved on the operator's machine (relative to the "
            "project directory, or absolute).", check=_operator_dir,
        ),
        # ------------------------------------------------------------------ OS baseline (Lynis)
        Setting(
            "sshd_max_sessions", int, 4, "SSH-7408",
            "sshd MaxSessions (sessions per connection). Lynis wants 2; `docker -H ssh://` and compose "
            "over SSH open several sessions on one connection.",
            breaks="2 makes compose over ssh:// fail its parallel operations",
            check=lambda v: None if 1 <= v <= 64 else f"must be between 1 and 64, got {v}",
        ),
        Setting(
            "sshd_allow_tcp_forwarding", str, "no", "SSH-7408",
            "sshd AllowTcpForwarding. 'local' lets `ssh -L` reach a container port published on 127.0.0.1.",
            breaks="'no' refuses ssh -L tunnels (to a container port, a database)",
            choices=("no", "local", "remote", "yes"),
        ),
        Setting(
            "sshd_max_auth_tries", int, 3, "SSH-7408",
            "sshd MaxAuthTries: keys offered per connection before sshd refuses it.",
            breaks="an SSH agent that offers more keys than this before the right one is refused "
            "(use IdentitiesOnly/IdentityFile in the operator's ssh config)",
            check=lambda v: None if 1 <= v <= 20 else f"must be between 1 and 20, got {v}",
        ),
        Setting(
            "sshd_permit_root_login", str, "prohibit-password", "SSH-7408",
            "sshd PermitRootLogin (keys only by default; 'yes' is not offered).",
            breaks="'no' locks out an operator who logs in as root: give them a sudo user first",
            choices=("prohibit-password", "forced-commands-only", "no"),
        ),
        Setting(
            "kernel_sysctl", dict, {}, "KRNL-6000",
            "More sysctl keys for dockguard's sysctl.d file, or other values for its keys. Keys Docker "
            "needs (forwarding, bridge-nf-call-*) are refused at other values, and so is kernel.modules_disabled.",
            check=_sysctls,
        ),
        Setting(
            "kernel_blacklist_modules", list,
            ["cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf", "dccp", "rds", "tipc",
             "usb-storage", "firewire-core", "firewire-ohci", "firewire-sbp2"],
            "USB-1000/STRG-1846/NETW-3200",
            "Kernel modules that may not load (modprobe.d install /bin/false). Modules Docker needs are refused.",
            breaks="a USB disk or a FireWire device no longer mounts", check=_modules,
        ),
        Setting(
            "accounts_pass_max_days", int, 365, "AUTH-9286",
            "login.defs PASS_MAX_DAYS for accounts created from now on.", check=_positive,
        ),
        Setting("accounts_pass_min_days", int, 1, "AUTH-9286", "login.defs PASS_MIN_DAYS.", check=_positive),
        Setting(
            "accounts_umask", str, "027", "AUTH-9328", "login.defs UMASK (of login sessions).",
            choices=("027", "077"),
        ),
        Setting(
            "accounts_sha_crypt_rounds", int, 65536, "AUTH-9230",
            "login.defs SHA_CRYPT_MIN_ROUNDS and SHA_CRYPT_MAX_ROUNDS (chpasswd, newusers).",
            check=lambda v: None if 5000 <= v <= 999999999 else f"must be 5000 or more, got {v}",
        ),
        Setting(
            "accounts_shell_timeout", int, 900, "SHLL-6220",
            "Seconds an idle interactive shell lives (TMOUT, read-only); 0: no timeout.",
            breaks="an idle interactive session is logged out", check=lambda v: None if v >= 0 else "must be 0 or more",
        ),
        Setting(
            "accounts_banner", str,
            "Authorised access only. This system is monitored and activity is recorded; unauthorised use "
            "is prohibited and may be reported to law enforcement.",
            "BANN-7126/7130", "The legal banner in /etc/issue and /etc/issue.net.", check=_banner,
        ),
        Setting(
            "accounts_restrict_compilers", bool, True, "HRDN-7222",
            "Compilers and assemblers present on the host run for root only (0750, kept across upgrades "
            "with dpkg-statoverride).", breaks="users other than root cannot compile on the host",
        ),
        Setting(
            "accounts_no_core_dumps", bool, True, "KRNL-5820",
            "No core dumps (limits.d hard core 0, systemd-coredump Storage=none).",
        ),
        Setting(
            "os_packages_security_repo", bool, True, "PKGS-7388",
            "The distribution's security repository in APT sources (added beside the host's own "
            "sources where it is missing).",
        ),
        Setting(
            "os_packages_unattended_upgrades", bool, True, "PKGS-7420",
            "Unattended security upgrades. A docker.io/containerd upgrade restarts dockerd: with "
            "docker_live_restore containers keep running; without it those packages are held back.",
        ),
        Setting(
            "os_packages_tools", list,
            ["needrestart", "debsums", "apt-listchanges", "acct", "sysstat", "rsyslog", "rkhunter", "fail2ban"],
            "DEB-0280/0811/0831/0880, PKGS-7370, ACCT-9622/9626, LOGG-2130, HRDN-7230",
            "Audit and maintenance tools installed and configured (needrestart only lists what needs a "
            "restart; fail2ban guards sshd). Opt-in, off by default: apt-listbugs asks bugs.debian.org at "
            "every install and stops apt on a host that cannot reach it; libpam-tmpdir gives every session "
            "its own TMPDIR (/tmp/user/UID, mode 0700), and pyinfra uploading as a login user then copying "
            "with sudo looks for root's and fails (so do other tools that switch users).",
            check=_tools,
        ),
        Setting(
            "os_packages_aide", bool, True, "FINT-4350/4402",
            "AIDE file integrity with SHA-512, Docker's and containerd's data directories excluded; its "
            "first database is built once, in the background (it takes minutes).",
        ),
        Setting(
            "os_packages_fail2ban_ignoreip", list, [], "DEB-0880",
            "Addresses or networks fail2ban never bans (the operator's, a bastion's).", check=_cidrs,
        ),
        Setting(
            "firewall_input_drop", bool, False, "FIRE-4508",
            "The host's INPUT policy drops everything except loopback, replies, ICMP, SSH (from "
            "firewall_ssh_sources), dockerd's TLS port and firewall_input_allow. Off by default: it cuts "
            "every other service the host offers until it is listed.",
            breaks="services not in firewall_input_allow stop being reachable from the network",
        ),
        Setting(
            "firewall_ssh_sources", list, ["0.0.0.0/0", "::/0"], "FIRE-4508",
            "Who may reach sshd when firewall_input_drop is on.", check=_cidrs,
        ),
        Setting(
            "firewall_input_allow", dict, {}, "FIRE-4508",
            "More ports the host serves when firewall_input_drop is on: {'tcp/9100': ['10.0.0.0/8']}.",
            check=_port_sources,
        ),
        Setting(
            "firewall_published_ports", dict, {}, "-",
            "Published container ports restricted in DOCKER-USER (a published port bypasses INPUT): "
            "{'tcp/8080': ['10.0.0.0/8']} lets only those sources reach host port 8080. Ports not listed "
            "stay as Docker publishes them.",
            breaks="sources not listed are refused on that port", check=_port_sources,
        ),
        Setting(
            "dockguard_disabled_areas", list, [], "-",
            "Control areas dockguard leaves alone on this host (lynis, mac, dockerd, files, audit, "
            "docker_group, sshd, kernel, os_packages, accounts, firewall): "
            "nothing of that area is checked or changed, and its CIS tests report it skipped "
            "as an operator decision. Like dev-sec's per-role switches.", check=_areas,
        ),
        Setting(
            "docker_install", bool, False, "-",
            "Install Docker where dockerd is missing (from docker_source), then harden it in the same run. "
            "Off: a host without Docker is refused before anything changes.",
        ),
        Setting(
            "docker_source", str, "distribution", "-",
            "Where Docker comes from when dockguard installs it: 'distribution' (docker.io on "
            "Debian/Ubuntu) or 'docker-ce' (Docker's own repository; the only choice on the RHEL family, "
            "whose repositories ship no Docker engine). An installed engine is never swapped.",
            choices=("distribution", "docker-ce"),
        ),
        Setting(
            "dockguard_mac", str, "auto", "5.1/5.2",
            "Mandatory access control for containers: 'auto' (AppArmor on Debian/Ubuntu, SELinux on "
            "the RHEL family), 'apparmor', 'selinux', or 'off' (not managed; reported as skipped).",
            breaks="SELinux enforcing denies container access to host files not labelled for containers "
            "(mount with :z or :Z); containers that opt in to dockguard-default lose raw sockets and mounts",
            choices=("auto", "apparmor", "selinux", "off"),
        ),
        Setting(
            "dockguard_allow_reboot", bool, False, "5.2",
            "Reboot a host whose SELinux is disabled, after scheduling the full relabel that enabling it "
            "needs (it can take long). Off: the host is prepared and the reboot is left to the operator.",
            breaks="a reboot stops every container on the host for the length of the relabel",
        ),
        Setting(
            "docker_daemon_extra", dict, {}, "-",
            "More daemon.json keys that dockguard does not model; dockerd validates them and a "
            "rejected key is rolled back. Keys dockguard manages are refused here, and so are keys that "
            "change the trust boundary (runtimes, default-runtime, ...) unless docker_daemon_extra_trust "
            "names them.", check=_extra,
        ),
        Setting(
            "docker_daemon_extra_trust", list, [], "-",
            "The docker_daemon_extra keys that may change the trust boundary (an explicit opt-in): any of "
            + ", ".join(TRUST_KEYS) + ".",
            breaks="a runtime or init binary named there runs as root for every container", check=_trust_keys,
        ),
    ]
}  # fmt: skip

# daemon.json keys written from the settings above (docker_daemon_extra may not set them).
MANAGED_KEYS = {
    "icc", "log-level", "iptables", "insecure-registries", "storage-driver", "tlsverify", "tls",
    "tlscacert", "tlscert", "tlskey", "default-ulimits", "userns-remap", "cgroup-parent",
    "authorization-plugins", "log-driver", "log-opts", "no-new-privileges", "live-restore",
    "userland-proxy", "seccomp-profile", "experimental", "selinux-enabled",
}  # fmt: skip


def _copy(value: Any) -> Any:
    """A value of its own for each host: a deep copy, except of a value nothing can change.
    Lists and dicts of plain values (what settings are) are copied here, several times faster
    than copy.deepcopy; anything else goes to copy.deepcopy."""
    t = type(value)
    if t in _ATOMIC:
        return value
    if t is list:
        return [_copy(v) for v in value]
    if t is dict and all(type(k) in _ATOMIC for k in value):
        return {k: _copy(v) for k, v in value.items()}
    return copy.deepcopy(value)


_ATOMIC = frozenset((type(None), bool, int, float, str))


def defaults() -> dict[str, Any]:
    return {name: _copy(s.default) for name, s in SCHEMA.items()}


def frozen(value: Any) -> Any:
    """A hashable key standing for a plain value (str, numbers, None, lists, tuples and dicts of
    them) that equals another's only when the two values are the same, types included (True
    and 1, 0.0 and -0.0 are told apart). TypeError for anything else."""
    t = type(value)
    if t is str:
        return value
    if t is dict:
        return (dict, tuple(sorted((k, frozen(v)) for k, v in value.items())))
    if t is list or t is tuple:
        return (t, tuple(frozen(v) for v in value))
    if t is float:
        return (float, repr(value))
    if t in (bool, int, type(None), bytes):
        return (t, value)
    raise TypeError(f"not a plain value: {t.__name__}")


def kept(store: dict, of: Any, compute: Callable[[], Any], limit: int = 1024) -> Any:
    """``compute()``, kept in ``store`` per ``of`` (a plain value: its ``frozen`` key), for work a
    fleet's hosts repeat on the same input; computed every time when ``of`` is not plain. The
    store is emptied when it holds ``limit`` results."""
    try:
        key = frozen(of)
    except TypeError:
        return compute()
    found = store.get(key)
    if found is None:
        if len(store) >= limit:
            store.clear()
        found = store[key] = compute()
    return found


_problems_of: dict = {}


def problems(data: Mapping[str, Any]) -> list[str]:
    """Every problem with one host's data, as 'setting: message' lines. Kept per settings (the
    keys with a dockguard prefix: all it reads), which most hosts of a fleet share."""
    ours = {k: v for k, v in data.items() if k.startswith(PREFIXES)}
    return list(kept(_problems_of, ours, lambda: _problems(data)))


def _problems(data: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(data):
        if key.startswith(PREFIXES) and key not in SCHEMA:
            hint = difflib.get_close_matches(key, list(SCHEMA), n=1, cutoff=0.8)
            out.append(f"{key}: unknown setting" + (f" (did you mean {hint[0]}?)" if hint else ""))
    for name, setting in SCHEMA.items():
        if name in data:
            msg = setting.problem(data[name])
            if msg:
                out.append(f"{name}: {msg}")
    if not out:
        out += _combination_problems(resolve(data))
    return out


def _combination_problems(cfg: dict[str, Any]) -> list[str]:
    out = []
    if cfg["docker_tcp_listen"] and not cfg["docker_tls_verify"]:
        out.append(
            f"docker_tcp_listen: dockerd would listen on TCP {cfg['docker_tcp_listen']} without verifying "
            "client certificates: anyone who reaches the port is root on the host (CIS 2.7); "
            "set docker_tls_verify: True"
        )
    out += _trust_problems(cfg)
    if cfg["docker_tls_renew_days"] >= cfg["docker_tls_days"]:
        out.append(
            f"docker_tls_renew_days: {cfg['docker_tls_renew_days']} is not below docker_tls_days "
            f"{cfg['docker_tls_days']}: every run would renew the certificate"
        )
    return out


def _trust_problems(cfg: dict[str, Any]) -> list[str]:
    """docker_daemon_extra keys that change the trust boundary, without the named opt-in."""
    wanted = sorted(set(cfg["docker_daemon_extra"]) & set(TRUST_KEYS) - set(cfg["docker_daemon_extra_trust"]))
    if not wanted:
        return []
    return [
        f"docker_daemon_extra: {', '.join(wanted)} would change what runs as root or who reaches the daemon; "
        f"allow it explicitly with docker_daemon_extra_trust: {wanted!r}"
    ]


def resolve(data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings for one host: defaults, overlaid with its data."""
    values = defaults()
    values.update({k: _copy(v) for k, v in data.items() if k in SCHEMA})
    if values["docker_authz_policy"] is not None and AUTHZ_PLUGIN not in values["docker_authorization_plugins"]:
        values["docker_authorization_plugins"] = [*values["docker_authorization_plugins"], AUTHZ_PLUGIN]
    return values


def validate_hosts(hosts, one_run: bool = True) -> None:
    """Validate every host's data; raise one DeployError listing every problem.
    ``one_run``: the hosts are deployed together, so they must share one CA."""
    datas = [(h, h.data.dict()) for h in hosts]  # each host's data merged once (a dozen layers, copied)
    lines = [f"  {h.name}: {p}" for h, data in datas for p in problems(data)]
    lines += [
        f"  {h.name}: dockguard_host_name: only a host's own inventory in pull mode ({PULL_HOST}) carries it "
        "(`dockguard pull install` writes it); a host reached over SSH is named by the inventory"
        for h, data in datas
        if h.name != PULL_HOST and data.get("dockguard_host_name") is not None
    ]
    pki_dirs = {resolve(data)["dockguard_pki_dir"] for _, data in datas}
    if one_run and len(pki_dirs) > 1:
        lines.append(f"  dockguard_pki_dir: every host of a run uses one CA, got {sorted(pki_dirs)}")
    if lines:
        raise DeployError("invalid dockguard settings (nothing was changed on any host):\n" + "\n".join(lines))


_done: set[int] = set()
_lock = threading.Lock()  # deploy.py runs for every host at once (greenlets)


def for_host(host, inventory, preflight: Callable[[list], None] | None = None) -> dict[str, Any]:
    """Called at the top of deploy.py for each host. The first call validates the
    whole inventory's settings and runs ``preflight`` (checks of every host's live
    state, one-time operator-side work such as the CA) before any operation runs."""
    with _lock:
        if id(inventory) not in _done:
            hosts = list(inventory.get_active_hosts())
            validate_hosts(hosts)
            if preflight:
                preflight(hosts)
            _done.add(id(inventory))
    return resolve(host.data.dict())


def markdown_table() -> str:
    """The table of settings in docs/settings.md, generated from SCHEMA (tests keep them equal)."""
    rows = ["| setting | default | CIS | what it does | what it breaks |", "|---|---|---|---|---|"]
    for s in SCHEMA.values():
        cells = [f"`{s.name}`", f"`{s.default!r}`", s.cis, s.doc, s.breaks]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
