"""OS packages (Lynis PKGS-7388, PKGS-7420, DEB-*, ACCT-*, FINT-*): the security
repository, unattended security upgrades, audit and maintenance tools, and AIDE,
on a Docker host.

* PKGS-7388: where no APT source names ``<codename>-security``, a deb822 source
  for it is added beside the host's own (sources.list.d/dockguard-security.sources).
* PKGS-7420: unattended-upgrades, on. An upgrade of docker.io/docker-ce,
  containerd or runc restarts dockerd: without ``docker_live_restore`` that stops
  every container, so those packages are held back from unattended upgrades
  (Package-Blacklist); with live-restore they are upgraded like the rest.
* os_packages_tools: installed in one apt command. needrestart only *lists* what
  needs a restart (Ubuntu's default restarts services itself: docker, containerd,
  sshd in the middle of an unattended upgrade). fail2ban guards sshd from the
  journal (Debian 12 has no auth.log without rsyslog, and a jail without its log
  does not start), banning with iptables (dockerd's dependency; Debian 13's default
  ban action needs nft, which a Docker host rarely has) in INPUT, which Docker
  leaves alone. sysstat collects (its debconf-managed ENABLED and its timers).
  acct runs where the kernel lets it: a container host without CAP_SYS_PACCT
  cannot account processes; there it is said so and the unit disabled, so the
  host is not left with a failed unit (``systemctl is-system-running``: degraded).
  rkhunter gets its property database once.
* FINT-4350/4402: AIDE with SHA-512 and without Docker's and containerd's data
  (walking /var/lib/docker's layers takes hours and changes with every pull); its
  first database is built once, in the background (a transient systemd unit),
  because ``aide --init`` takes minutes.

Configuration files are written before the packages are installed, so a package
starts with them (fail2ban) or finds them as it would write them itself
(20auto-upgrades, ucf-managed by unattended-upgrades, preseeded to the same
content). The tools are apt-only: on the RHEL family only AIDE is installed and
the rest is said and left alone.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError

from . import Context, content, drift, hostlock, packages, platform, say, warn

SECURITY_SOURCES = "/etc/apt/sources.list.d/dockguard-security.sources"
AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"
UNATTENDED = "/etc/apt/apt.conf.d/52dockguard-unattended"
NEEDRESTART = "/etc/needrestart/conf.d/dockguard.conf"
FAIL2BAN = "/etc/fail2ban/jail.d/dockguard.local"
AIDE_EXCLUDES = "/etc/aide/aide.conf.d/99_dockguard"
AIDE_CONF = {"apt": "/etc/aide/aide.conf", "dnf": "/etc/aide.conf"}
AIDE_DB = {"apt": "/var/lib/aide/aide.db", "dnf": "/var/lib/aide/aide.db.gz"}
AIDE_UNIT = "dockguard-aide-init.service"
RKHUNTER_DB = "/var/lib/rkhunter/db/rkhunter.dat"
SYSSTAT_DEFAULT = "/etc/default/sysstat"
DEBSUMS_DEFAULT = "/etc/default/debsums"
DEBSUMS_OP = "PKGS-7370: debsums checks installed files every week"
SYSSTAT_TIMERS = ("sysstat-collect.timer", "sysstat-summary.timer")
UNITS = ("sysstat-collect.timer", "sysstat.service", "acct.service", "fail2ban.service", AIDE_UNIT)
# Packages whose upgrade restarts dockerd (held back without live-restore).
DOCKER_RESTARTING = ("docker.io", "docker-ce", "containerd", "containerd.io", "runc")
# Paths AIDE leaves out (Docker's and containerd's state, logs that grow all the time).
AIDE_EXCLUDED = (
    "/var/lib/docker", "/var/lib/containerd", "/run/docker", "/run/containerd", "/var/log/journal",
    "/var/log/sysstat", "/var/log/account",
)  # fmt: skip
# Every package this area asks dpkg or rpm about.
KNOWN = (
    "unattended-upgrades", "needrestart", "debsums", "apt-listchanges", "apt-listbugs", "libpam-tmpdir",
    "acct", "sysstat", "rsyslog", "rkhunter", "fail2ban", "python3-systemd", "aide", "aide-common",
)  # fmt: skip
SECURITY_URI = {
    "debian": ("http://deb.debian.org/debian-security", "main", "/usr/share/keyrings/debian-archive-keyring.gpg"),
    "ubuntu": ("http://security.ubuntu.com/ubuntu", "main restricted universe",
               "/usr/share/keyrings/ubuntu-archive-keyring.gpg"),
}  # fmt: skip
UBUNTU_PORTS = "http://ports.ubuntu.com/ubuntu-ports"  # Ubuntu's security updates beyond amd64/i386

SECURITY_OP = "PKGS-7388: the distribution's security repository in APT sources"
UNATTENDED_OP = "PKGS-7420: unattended-upgrades installed"
TOOLS_OP = "DEB-0280/0811/0831/0880, PKGS-7370, ACCT-9622/9626, HRDN-7230: audit and maintenance tools installed"
SYSSTAT_OP = "ACCT-9626: sysstat collects activity data"
ACCT_OP = "ACCT-9622: process accounting on"
RKHUNTER_OP = "HRDN-7230: rkhunter property database built"
AIDE_OP = "FINT-4350: AIDE installed"
AIDE_SHA_OP = "FINT-4402: AIDE checksums are SHA-512"
AIDE_INIT_OP = "FINT-4350: AIDE database built (once, in the background)"

FILES = (SECURITY_SOURCES, AUTO_UPGRADES, UNATTENDED, NEEDRESTART, FAIL2BAN, AIDE_EXCLUDES)
_FLAGS = ("security", "sysstat_default", "aide_checksums", "aide_version", "arch", "debsums_cron")
_FREE = ("sysstat_default", "aide_checksums", "aide_version", "debsums_cron")  # only compared, never sent to a shell
_FILES = ("aide_db", "rkhunter_db")
_WORD = re.compile(r"^[A-Za-z0-9._:+~-]*$")


class OsPackagesState(FactBase):
    """{"installed": [names of KNOWN installed], "security": whether an APT source names
    <codename>-security, "arch", "sysstat_default": ENABLED in /etc/default/sysstat (None:
    no file), "aide_checksums": the Checksums group of aide.conf (None: none),
    "aide_version": installed or candidate (None: unknown), "aide_db", "rkhunter_db":
    bool, "units": {unit: {"active", "enabled"}}}. Output cut short (no ``end=``) or a
    line it does not know is a FactProcessError."""

    def command(self, codename: str | None = None) -> str:
        """``codename``: the release's (None: VERSION_CODENAME of /etc/os-release, as
        platform.HostPlatform reads it, for the preflight's batch, which reads both at once)."""
        names = " ".join(KNOWN)
        if codename is None:
            suite = (
                '"^[^#]*[[:space:]]$(. /etc/os-release 2>/dev/null; printf %s "$VERSION_CODENAME" | tr -cd a-z0-9)'
                '-security([[:space:]]|$)"'
            )
        else:
            suite = shlex.quote(f"^[^#]*[[:space:]]{codename}-security([[:space:]]|$)")
        units = " ".join(UNITS)
        return (
            "if command -v dpkg-query >/dev/null 2>&1; then "
            f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {names} 2>/dev/null "
            '| awk \'$NF == "installed" {print "installed=" $1}\'; '
            "echo arch=$(dpkg --print-architecture); "
            "if grep -Eqs -- "
            + suite
            + " /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; "
            "then echo security=yes; else echo security=no; fi; "
            "v=$(dpkg-query -W -f='${Version}' aide 2>/dev/null); "
            "[ -n \"$v\" ] || v=$(apt-cache policy aide 2>/dev/null | sed -n 's/^ *Candidate: *//p'); "
            'echo "aide_version=$v"; '
            "elif command -v rpm >/dev/null 2>&1; then "
            f"rpm -q --qf 'installed=%{{NAME}}\\n' {names} 2>/dev/null | grep '^installed='; "
            "echo security=no; echo arch=$(uname -m); "
            "echo aide_version=$(rpm -q --qf '%{VERSION}' aide 2>/dev/null | grep -v 'not installed'); fi; "
            f"[ -f {SYSSTAT_DEFAULT} ] && echo sysstat_default=$(sed -n 's/^ENABLED=//p' {SYSSTAT_DEFAULT} "
            "| tr -d '\"' | tail -n 1); "
            f"[ -f {DEBSUMS_DEFAULT} ] && echo debsums_cron=$(sed -n 's/^CRON_CHECK=//p' {DEBSUMS_DEFAULT} "
            "| tr -d '\"' | tail -n 1); "
            "for c in /etc/aide/aide.conf /etc/aide.conf; do [ -f $c ] && "
            "echo aide_checksums=$(sed -n 's/^[[:space:]]*Checksums[[:space:]]*=[[:space:]]*//p' $c | tail -n 1) "
            "&& break; done; "
            # One systemctl for every unit (blocks in the order asked): UnitFileState is what
            # is-enabled says, empty where there is no unit file.
            f"systemctl show -p ActiveState -p UnitFileState {units} 2>/dev/null | awk -v names={shlex.quote(units)} "
            + shlex.quote(
                'BEGIN { n = split(names, u, " "); i = 1 } '
                'function out() { if (i <= n && seen) print "unit=" u[i] " " (a == "" ? "unknown" : a) '
                '" " (e == "" ? "none" : e); i++; a = ""; e = ""; seen = 0 } '
                "/^$/ { out(); next } /^ActiveState=/ { a = substr($0, 13); seen = 1 } "
                "/^UnitFileState=/ { e = substr($0, 15); seen = 1 } END { out() }"
            )
            + "; "
            # The databases after the units: a build that ends between the two reads is then seen
            # with its file (read before its unit, the file could be missing and the unit done).
            f"for f in aide_db:{AIDE_DB['apt']} aide_db:{AIDE_DB['dnf']} rkhunter_db:{RKHUNTER_DB}; do "
            '[ -f "${f#*:}" ] && echo "${f%%:*}=yes"; done; '
            "echo end=ok"
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"installed": [], "units": {}, "aide_db": False, "rkhunter_db": False}
        raw: dict[str, str] = {}
        ended = False
        for line in output:
            key, sep, value = line.strip().partition("=")
            if not line.strip():
                continue
            if not sep or ended:
                raise FactProcessError(f"OS packages state: unexpected output {line[:80]!r}")
            if key == "installed" and value in KNOWN:
                out["installed"].append(value)
            elif key in _FLAGS and (key in _FREE or _WORD.match(value)) and value.isprintable():
                raw[key] = value
            elif key in _FILES and value == "yes":
                out[key] = True
            elif key == "unit":
                parts = value.split(" ")
                if len(parts) != 3 or parts[0] not in UNITS or not all(_WORD.match(p) for p in parts):
                    raise FactProcessError(f"OS packages state: unexpected unit line {line[:80]!r}")
                out["units"][parts[0]] = {"active": parts[1], "enabled": parts[2]}
            elif key == "end" and value == "ok":
                ended = True
            else:
                raise FactProcessError(f"OS packages state: unexpected output {line[:80]!r}")
        if not ended:
            raise FactProcessError("OS packages state: output was cut short (no end=ok)")
        out["installed"] = sorted(set(out["installed"]))
        out["security"] = raw.get("security") == "yes"
        out["arch"] = raw.get("arch") or None
        out["sysstat_default"] = raw.get("sysstat_default") if "sysstat_default" in raw else None
        out["aide_checksums"] = raw.get("aide_checksums") or None
        out["aide_version"] = raw.get("aide_version") or None
        out["debsums_cron"] = raw.get("debsums_cron") or None
        return out


# ----------------------------------------------------------------------------- helpers


def _locked(*steps: str) -> StringCommand:
    return StringCommand(hostlock.prefix() + " && ".join(steps))


def _unit(live: dict[str, Any], name: str) -> dict[str, str]:
    return live.get("units", {}).get(name) or {"active": "unknown", "enabled": "none"}


def missing(live: dict[str, Any], names: list[str] | tuple[str, ...]) -> list[str]:
    have = set(live.get("installed", []))
    out: list[str] = []
    for n in names:
        if n not in have and n not in out:
            out.append(n)
    return out


def tool_packages(tools: list[str]) -> list[str]:
    """The packages ``os_packages_tools`` stands for (fail2ban reads the journal: python3-systemd)."""
    out = list(tools)
    if "fail2ban" in out:
        out.append("python3-systemd")
    return out


def security_source(plat: dict[str, Any], arch: str | None) -> str | None:
    """The deb822 source of this host's security suite (None: not an apt distribution we know)."""
    entry = SECURITY_URI.get(plat.get("id") or "")
    if not entry or plat.get("pkg") != "apt" or not plat.get("codename"):
        return None
    uri, components, keyring = entry
    if plat.get("id") == "ubuntu" and arch not in (None, "amd64", "i386"):
        uri = UBUNTU_PORTS
    return content.render(
        "etc/apt/sources.list.d/dockguard-security.sources.j2",
        uri=uri,
        codename=plat["codename"],
        components=components,
        keyring=keyring,
    )


def aide_nonrecursive(version: str | None) -> bool:
    """AIDE 0.19 has non-recursive negative rules (``-``): excluded trees are not walked."""
    m = re.match(r"^(?:\d+:)?(\d+)\.(\d+)", version or "")
    return bool(m) and (int(m[1]), int(m[2])) >= (0, 19)


def aide_excludes(version: str | None) -> str:
    if aide_nonrecursive(version):
        return content.render("etc/aide/aide.conf.d/99_dockguard.j2", excluded=AIDE_EXCLUDED, rule="-", suffix="$")
    return content.render("etc/aide/aide.conf.d/99_dockguard.j2", excluded=AIDE_EXCLUDED, rule="!", suffix="(/|$)")


def _preseed(lines: list[str]) -> str:
    return "printf '%s\\n' " + " ".join(shlex.quote(x) for x in lines) + " | debconf-set-selections"


# ----------------------------------------------------------------------------- operations


@operation()
def security_repo(plat: dict[str, Any], live: dict[str, Any], text: str | None, digest: str | None):
    """Add the security suite's source where no APT source names it, then refresh the lists."""
    if plat.get("pkg") != "apt" or text is None:
        host.noop("no APT security repository to check on this distribution")
        return
    if live.get("security"):
        host.noop(f"an APT source names {plat['codename']}-security")
        return
    drift("PKGS-7388", f"no APT source names {plat['codename']}-security", SECURITY_OP)
    yield from content.atomic_write(SECURITY_SOURCES, text.encode(), digest)
    yield StringCommand("DEBIAN_FRONTEND=noninteractive apt-get update -q")


@operation()
def install(plat: dict[str, Any], names: list[str], preseed: list[str] | None = None):
    """Install ``names`` (those missing, as the area's fact read them) in one command,
    after preseeding debconf with ``preseed`` (lines of debconf-set-selections)."""
    if not names:
        host.noop("installed")
        return
    steps = [_preseed(preseed)] if preseed and plat.get("pkg") == "apt" else []
    steps.append(packages.install_command(plat, names))
    yield _locked(*steps)


@operation()
def sysstat(live: dict[str, Any]):
    """ENABLED="true" in /etc/default/sysstat (debconf reads it back from there) and its
    timers enabled and running, as the package's postinst does for a "yes"."""
    timer = _unit(live, "sysstat-collect.timer")
    if live.get("sysstat_default") == "true" and timer["enabled"] == "enabled" and timer["active"] == "active":
        host.noop("sysstat collects")
        return
    drift("ACCT-9626", "sysstat does not collect activity data", SYSSTAT_OP)
    yield _locked(
        f"sed -i 's/^ENABLED=.*/ENABLED=\"true\"/' {SYSSTAT_DEFAULT}",
        f"systemctl enable --now {' '.join(SYSSTAT_TIMERS)}",
        "systemctl enable --now sysstat.service",
    )


@operation()
def debsums_cron(live: dict[str, Any]):
    """CRON_CHECK in /etc/default/debsums: the package's weekly check of installed files
    against their checksums (Debian ships it "never")."""
    if live.get("debsums_cron") in ("daily", "weekly", "monthly"):
        host.noop(f"debsums checks {live['debsums_cron']}")
        return
    drift("PKGS-7370", "debsums never checks installed files", DEBSUMS_OP)
    yield _locked(
        f"if grep -q '^CRON_CHECK=' {DEBSUMS_DEFAULT}; then sed -i 's/^CRON_CHECK=.*/CRON_CHECK=weekly/' "
        f"{DEBSUMS_DEFAULT}; else echo CRON_CHECK=weekly >> {DEBSUMS_DEFAULT}; fi"
    )


CONTAINER_PACCT = (
    "process accounting cannot run in this container host (accton needs CAP_SYS_PACCT, which a "
    "container is not given by default): acct.service is disabled here; it runs on a VM or real host"
)


@operation()
def acct(live: dict[str, Any], container: str | None):
    """acct.service enabled and running. In a container host the kernel may refuse it
    (no CAP_SYS_PACCT): then it is disabled, its failure cleared, and that is said."""
    unit = _unit(live, "acct.service")
    if unit["active"] == "active" and unit["enabled"] == "enabled":
        host.noop("process accounting is on")
        return
    if container and "acct" in live.get("installed", []) and unit["enabled"] in ("disabled", "masked"):
        say(f"ACCT-9622: {CONTAINER_PACCT}")
        host.noop("process accounting cannot run in this container")
        return
    drift("ACCT-9622", f"acct.service is {unit['active']}", ACCT_OP)
    start = "systemctl enable acct.service >/dev/null 2>&1 && systemctl restart acct.service"
    if not container:
        yield _locked(start)
        return
    say(f"ACCT-9622: in a container host ({container}) acct.service may not start; if not, it is disabled")
    yield _locked(
        f"{{ {start} 2>/dev/null || {{ systemctl disable acct.service >/dev/null 2>&1; "
        "systemctl reset-failed acct.service 2>/dev/null; "
        f"echo {shlex.quote('dockguard: ACCT-9622: ' + CONTAINER_PACCT)} >&2; }}; }}"
    )


@operation()
def rkhunter(live: dict[str, Any]):
    """rkhunter's file property database, once (the postinst of a fresh install builds it)."""
    if live.get("rkhunter_db"):
        host.noop("rkhunter has its property database")
        return
    yield _locked(f"if [ ! -f {RKHUNTER_DB} ]; then rkhunter --propupd --nocolors >/dev/null; fi")


@operation()
def aide_sha512(plat: dict[str, Any], live: dict[str, Any]):
    """aide.conf's Checksums group is sha512 (Lynis FINT-4402 reads aide.conf itself;
    Debian's default ``H`` is every hash, which Lynis does not recognise)."""
    checksums = live.get("aide_checksums")
    if plat.get("pkg") != "apt":
        host.noop("the RHEL family's aide.conf selects its own checksums (sha512)")
        return
    if checksums == "sha512":
        host.noop("AIDE checksums are sha512")
        return
    drift("FINT-4402", f"AIDE Checksums = {checksums or 'none'}", AIDE_SHA_OP)
    conf = AIDE_CONF["apt"]
    yield _locked(
        f"sed -i 's/^[[:space:]]*Checksums[[:space:]]*=.*/Checksums = sha512/' {conf}",
        f"grep -q '^Checksums = sha512$' {conf}",
    )


def aide_init_command(plat: dict[str, Any]) -> str:
    """Shell: build the first AIDE database in a transient unit (minutes; not waited for)."""
    if plat.get("pkg") == "apt":
        build = "/usr/sbin/aideinit -y -f"
    else:
        db = AIDE_DB["dnf"]
        build = f"sh -c 'aide --init && mv -f /var/lib/aide/aide.db.new.gz {db}'"
    return (
        f"systemctl reset-failed {AIDE_UNIT} >/dev/null 2>&1; "
        f"systemd-run --unit={AIDE_UNIT} --no-block --description='dockguard: first AIDE database' "
        f"-p Nice=19 -p IOSchedulingClass=idle {build}"
    )


@operation()
def aide_init(plat: dict[str, Any], live: dict[str, Any]):
    """The first AIDE database, built once in the background, where there is none and
    the build is not already running."""
    unit = _unit(live, AIDE_UNIT)
    if live.get("aide_db"):
        host.noop("AIDE has its database")
        return
    if unit["active"] in ("active", "activating"):
        host.noop("the first AIDE database is being built")
        return
    if unit["active"] == "failed":
        warn(f"FINT-4350: the last build of AIDE's database failed (journalctl -u {AIDE_UNIT}); building it again")
    drift("FINT-4350", "AIDE has no database", AIDE_INIT_OP)
    yield _locked(aide_init_command(plat))


# ----------------------------------------------------------------------------- the area


def _installed(ctx: Context, **kwargs):
    """``install``, remembered in this host's Context for the areas after this one."""
    op = install(**kwargs)
    ctx.area("os_packages").setdefault("installs", []).append(op)
    return op


STATE_KEY = "os_packages.OsPackagesState"


def reads(ctx: Context) -> list:
    """The facts configure reads (operations/prefetch.py)."""
    return [(STATE_KEY, OsPackagesState, {"codename": None})]


def configure(ctx: Context) -> list:
    """PKGS-7388, PKGS-7420, the audit tools, FINT-4350/4402 (see the module docstring)."""
    cfg = ctx.cfg
    plat = platform.current()
    apt = plat.get("pkg") == "apt"
    live = ctx.fact(STATE_KEY, OsPackagesState, codename=plat.get("codename") or "none")
    content.digests(list(FILES))  # every file of this area in one read
    ops: list = []
    ctx.area("os_packages")["installs"] = []

    if cfg["os_packages_security_repo"]:
        text = security_source(plat, live.get("arch")) if apt else None
        digest = content.digests([SECURITY_SOURCES])[SECURITY_SOURCES] if text else None
        ops.append(security_repo(name=SECURITY_OP, plat=plat, live=live, text=text, digest=digest))

    if cfg["os_packages_unattended_upgrades"]:
        if apt:
            ops += content.files(
                {
                    AUTO_UPGRADES: (content.render("etc/apt/apt.conf.d/20auto-upgrades.j2"), "644"),
                    UNATTENDED: (
                        content.render(
                            "etc/apt/apt.conf.d/52dockguard-unattended.j2",
                            live_restore=cfg["docker_live_restore"],
                            held=DOCKER_RESTARTING,
                        ),
                        "644",
                    ),
                },
                {
                    AUTO_UPGRADES: "PKGS-7420: APT updates its lists and upgrades every day",
                    UNATTENDED: "PKGS-7420: unattended upgrades and dockerd restarts",
                },
            )
            ops.append(
                _installed(
                    ctx,
                    name=UNATTENDED_OP,
                    plat=plat,
                    names=missing(live, ["unattended-upgrades"]),
                    preseed=["unattended-upgrades unattended-upgrades/enable_auto_updates boolean true"],
                )
            )
        else:
            say("PKGS-7420: unattended upgrades are set up on apt hosts only (dnf-automatic is not managed here)")

    tools = list(cfg["os_packages_tools"])
    if tools and apt:
        ops += _tools(ctx, plat, live, tools)
    elif tools:
        say(f"os_packages_tools ({', '.join(tools)}) are Debian/Ubuntu packages: left alone on {plat.get('name')}")

    if cfg["os_packages_aide"]:
        ops += _aide(ctx, plat, live)
    # For the areas after this one (accounts: compilers these packages bring).
    return ops


def _tools(ctx: Context, plat: dict[str, Any], live: dict[str, Any], tools: list[str]) -> list:
    specs, names = {}, {}
    if "needrestart" in tools:
        specs[NEEDRESTART] = (content.render("etc/needrestart/conf.d/dockguard.conf.j2"), "644")
        names[NEEDRESTART] = "DEB-0831: needrestart lists, never restarts (docker, sshd)"
    if "fail2ban" in tools:
        ignore = ["127.0.0.1/8", "::1", *ctx.cfg["os_packages_fail2ban_ignoreip"]]
        specs[FAIL2BAN] = (content.render("etc/fail2ban/jail.d/dockguard.local.j2", ignoreip=ignore), "644")
        names[FAIL2BAN] = "DEB-0880: fail2ban guards sshd (journal, iptables)"
    ops = content.files(specs, names) if specs else []
    preseed = ["sysstat sysstat/enable boolean true"] if "sysstat" in tools else []
    ops.append(_installed(ctx, name=TOOLS_OP, plat=plat, names=missing(live, tool_packages(tools)), preseed=preseed))
    if "sysstat" in tools:
        ops.append(sysstat(name=SYSSTAT_OP, live=live))
    if "acct" in tools:
        ops.append(acct(name=ACCT_OP, live=live, container=plat.get("container")))
    if "rkhunter" in tools:
        ops.append(rkhunter(name=RKHUNTER_OP, live=live))
    if "debsums" in tools:
        ops.append(debsums_cron(name=DEBSUMS_OP, live=live))
    return ops


def _aide(ctx: Context, plat: dict[str, Any], live: dict[str, Any]) -> list:
    apt = plat.get("pkg") == "apt"
    ops: list = []
    if apt:
        ops += content.files(
            {AIDE_EXCLUDES: (aide_excludes(live.get("aide_version")), "644")},
            {AIDE_EXCLUDES: "FINT-4350: AIDE leaves out Docker's and containerd's data"},
        )
    names = ["aide", "aide-common"] if apt else ["aide"]
    ops.append(_installed(ctx, name=AIDE_OP, plat=plat, names=missing(live, names)))
    ops.append(aide_sha512(name=AIDE_SHA_OP, plat=plat, live=live))
    ops.append(aide_init(name=AIDE_INIT_OP, plat=plat, live=live))
    return ops
