"""dockerd (CIS Docker Benchmark 1.6.0, section 2): daemon.json, the systemd drop-in
that owns the listening sockets, and restarts that never leave dockerd down.

Facts live beside the operations that use them. The daemon is restarted only
when one of its configuration files changed in this run, or when the running
daemon does not match them (an interrupted earlier run, a hand-made change, a
stopped daemon): see ``restart_reasons``. A restart keeps the last configuration
that answered a health check; if the new one does not come up healthy, the old
one is put back, dockerd is started again, and only that host fails, with the
option dockerd rejected.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import DeployError, FactProcessError

from dockguard import compat, identity, pki, registry, settings, systemd

from . import Context, PerHost, content, drift, hostlock, platform, prefetch, safe, say, tls, userns, warn, when

DAEMON_JSON = registry.DAEMON_JSON
DEFAULTS_FILE = "/etc/default/docker"
SYSCONFIG_FILE = "/etc/sysconfig/docker"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
# dockguard's drop-in sorts after the drop-ins people write ("override.conf", "99-x.conf",
# "zz-override.conf"), so its ExecStart= is the one systemd runs; the name it had before.
DROPIN = registry.DROPIN
LEGACY_DROPIN = registry.LEGACY_DROPIN
SECCOMP_PROFILE = registry.SECCOMP_PROFILE
STATE_DIR = "/var/lib/dockguard"
APPLIED = f"{STATE_DIR}/dockerd.applied"  # digest of the config files dockerd last started healthy with
KNOWN_GOOD = f"{STATE_DIR}/known-good"  # copies of those files, restored when a restart fails
# Every file whose change needs a dockerd restart; their digest is APPLIED.
CONFIG_FILES = registry.rollback_set()
# The digest of the config files: the fact reads it, a healthy restart records it.
CONFIG_DIGEST = f"cat {' '.join(CONFIG_FILES)} 2>/dev/null | sha256sum | cut -d' ' -f1"
HEALTH_TIMEOUT = 60
INFO_TIMEOUT = 10  # seconds a live daemon has to answer `docker info` before it counts as hung
# The known-good manifest is whole: its first and last lines are these (a copy cut short
# is never used to delete anything).
_MANIFEST_HEAD, _MANIFEST_END = "dockguard-known-good 1", "end"
_MANIFEST_OK = (
    f'[ "$(head -n1 {KNOWN_GOOD}/manifest)" = "{_MANIFEST_HEAD}" ] && '
    f'[ "$(tail -n1 {KNOWN_GOOD}/manifest)" = "{_MANIFEST_END}" ]'
)
RESTART_OP = "dockerd: restart when the config changed or the daemon does not match it"
DAEMON_JSON_OP = "CIS 2.x: /etc/docker/daemon.json content"
DROPIN_OP = "CIS 2.7: docker.service drop-in owns the listening sockets"

# Flags of dockerd whose daemon.json key has another name.
_FLAG_KEYS = {
    "-H": "hosts", "--host": "hosts", "-D": "debug", "-l": "log-level", "-G": "group", "-g": "data-root",
    "--graph": "data-root", "-s": "storage-driver", "-p": "pidfile", "-b": "bridge",
    "--insecure-registry": "insecure-registries", "--authorization-plugin": "authorization-plugins",
    "--default-ulimit": "default-ulimits", "--log-opt": "log-opts", "--storage-opt": "storage-opts",
    "--registry-mirror": "registry-mirrors", "--add-runtime": "runtimes", "--label": "labels",
    "--dns": "dns", "--dns-opt": "dns-opts", "--dns-search": "dns-search",
}  # fmt: skip


# --------------------------------------------------------------------------- rendering


def daemon_config(cfg: dict[str, Any], selinux: bool = False) -> dict[str, Any]:
    """The daemon.json content for one host's settings (``selinux``: SELinux is this
    host's MAC system, CIS 5.2: containers get SELinux labels)."""
    conf: dict[str, Any] = {
        "icc": cfg["docker_icc"],
        "log-level": cfg["docker_log_level"],
        "iptables": cfg["docker_iptables"],
        "insecure-registries": list(cfg["docker_insecure_registries"]),
        "default-ulimits": {
            name: {"Name": name, "Soft": lim["soft"], "Hard": lim["hard"]}
            for name, lim in sorted(cfg["docker_default_ulimits"].items())
        },
        "no-new-privileges": cfg["docker_no_new_privileges"],
        "live-restore": cfg["docker_live_restore"],
        "userland-proxy": cfg["docker_userland_proxy"],
        "log-driver": cfg["docker_log_driver"],
        "experimental": cfg["docker_experimental"],
    }
    log_opts = dict(cfg["docker_log_opts"])
    if cfg["docker_log_driver"] in ("json-file", "local"):
        # dockerd rejects non-string log-opts values.
        log_opts.update({"max-size": cfg["docker_log_max_size"], "max-file": str(cfg["docker_log_max_file"])})
    if log_opts:
        conf["log-opts"] = log_opts
    if cfg["docker_storage_driver"]:
        conf["storage-driver"] = cfg["docker_storage_driver"]
    if cfg["docker_userns_remap"]:
        conf["userns-remap"] = cfg["docker_userns_remap"]
    if cfg["docker_cgroup_parent"]:
        conf["cgroup-parent"] = cfg["docker_cgroup_parent"]
    if cfg["docker_authorization_plugins"]:
        conf["authorization-plugins"] = list(cfg["docker_authorization_plugins"])
    if cfg["docker_seccomp_profile"]:
        profile = cfg["docker_seccomp_profile"]
        conf["seccomp-profile"] = SECCOMP_PROFILE if profile == "dockguard" else profile
    if selinux:
        conf["selinux-enabled"] = True
    if cfg["docker_tcp_listen"]:
        # TLS material in daemon.json; the TCP listener itself in the drop-in (-H).
        conf.update(
            {
                "tls": True,
                "tlsverify": True,
                "tlscacert": tls.CA_CERT,
                "tlscert": tls.SERVER_CERT,
                "tlskey": tls.SERVER_KEY,
            }
        )
    conf.update(cfg["docker_daemon_extra"])
    return conf


def render_daemon_json(cfg: dict[str, Any], selinux: bool = False) -> str:
    return json.dumps(daemon_config(cfg, selinux), indent=2, sort_keys=True)


# Flags that take no value (``--icc``, ``--icc=false``); every other flag takes the next word
# unless written ``--flag=value``.
_BOOL_FLAGS = {
    "--icc", "--iptables", "--ip6tables", "--ip-forward", "--ip-masq", "--live-restore", "--no-new-privileges",
    "--userland-proxy", "--selinux-enabled", "--experimental", "-D", "--debug", "--tls", "--tlsverify", "--ipv6",
    "--raw-logs", "--init", "--rootless", "--validate", "-v", "--version", "-h", "--help",
}  # fmt: skip
_TLS_FLAGS = {"--tls", "--tlsverify", "--tlscacert", "--tlscert", "--tlskey"}


@dataclass(frozen=True)
class Word:
    """One argument of dockerd's command line and where it comes from (a unit file's line,
    or an EnvironmentFile= variable); ``raw``: a $VARIABLE dockguard could not read, kept
    as systemd will expand it."""

    text: str
    source: str
    raw: bool = False


@dataclass(frozen=True)
class Option:
    flag: str
    value: str | None  # None: a flag without a value (or `--flag` of a boolean)
    words: tuple[Word, ...]

    @property
    def source(self) -> str:
        return self.words[0].source

    @property
    def key(self) -> str:
        return _FLAG_KEYS.get(self.flag, self.flag.lstrip("-"))


_command_lines: dict = {}


def command_line(live: dict[str, Any]) -> tuple[list[Word], list[str]]:
    """dockerd's command line as systemd would start it without dockguard's drop-in: the
    vendor unit and every other drop-in, in systemd's order, with the variables of
    /etc/default/docker and /etc/sysconfig/docker expanded. Also what stops dockguard
    from owning it: a drop-in sorting after dockguard's that sets ExecStart=.

    Kept per content of the unit files and environment files it reads (several checks of a
    host ask for it, and a fleet's hosts mostly have the same files)."""
    of = (live.get("fragment"), live.get("dropins"), live.get("files"))
    words, problems = settings.kept(_command_lines, of, lambda: _command_line(live), limit=256)
    return list(words), list(problems)


def _command_line(live: dict[str, Any]) -> tuple[list[Word], list[str]]:
    dropins = {p: t for p, t in (live.get("dropins") or {}).items() if posixpath.basename(p) != "zzz-dockguard.conf"}
    dropins.pop(LEGACY_DROPIN, None)
    lines = systemd.service_lines(live.get("fragment"), dropins)
    problems = [
        f"{line.where} sorts after dockguard's drop-in and sets ExecStart=: dockguard cannot own dockerd's "
        "listeners (CIS 2.7); rename or remove that drop-in"
        for line in lines
        if line.key == "ExecStart"
        and line.value
        and posixpath.basename(line.path) > posixpath.basename(DROPIN)
        and line.path != (live.get("fragment") or ("",))[0]
    ]
    start = systemd.exec_start(lines)
    if start is None:
        return [], problems
    files = live.get("files") or {}
    env: dict[str, tuple[str, str]] = {}
    for path in systemd.environment_files(lines):
        if path in files:
            for key, (value, number) in systemd.parse_env_file(path, files[path]).items():
                env[key] = (value, f"{key} in {path} line {number}")
    words: list[Word] = []
    for w in systemd.split_words(start.value.lstrip("@-:+!")):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", w)
        name = m and (m.group(1) or m.group(2))
        if name and name in env:
            value, source = env[name]
            words += [Word(x, source) for x in (value.split() if m.group(1) else [value])]
        elif name or "$" in w.replace("$$", ""):
            words.append(Word(w, start.where, raw=True))
        else:
            words.append(Word(systemd.unescape_percent(w.replace("$$", "$")), start.where))
    return words, problems


def options(words: list[Word]) -> list[Option]:
    """The flags of a command line (the program itself and positional words left out)."""
    out: list[Option] = []
    i = 1
    while i < len(words):
        w = words[i]
        text = w.text
        if w.raw or not text.startswith("-"):
            i += 1
            continue
        if "=" in text:
            flag, value = text.split("=", 1)
            out.append(Option(flag, value, (w,)))
        elif text.startswith("-H") and len(text) > 2:
            out.append(Option("-H", text[2:], (w,)))
        elif text in _BOOL_FLAGS or i + 1 >= len(words):
            out.append(Option(text, None, (w,)))
        else:
            out.append(Option(text, words[i + 1].text, (w, words[i + 1])))
            i += 1
        i += 1
    return out


def _tcp(address: str) -> bool:
    return address.startswith(("tcp://", "http://", "https://")) or re.fullmatch(r"[^/]*:[0-9]+", address) is not None


def daemon_json_listeners(live: dict[str, Any]) -> list[str]:
    """CIS 2.7: TCP listeners the host's daemon.json opens with ``hosts`` (dockguard's
    daemon.json has none: listeners live only in its drop-in)."""
    current = _current_daemon_json(live)
    if not isinstance(current, dict):
        return []
    return [f"{DAEMON_JSON} (hosts) opens {h}" for h in current.get("hosts") or [] if isinstance(h, str) and _tcp(h)]


def _current_daemon_json(live: dict[str, Any]) -> dict[str, Any] | str | None:
    """daemon.json as it is on the host: a dict, None (no file) or why it cannot be read."""
    text = (live.get("files") or {}).get(DAEMON_JSON)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return f"{DAEMON_JSON} is not valid JSON ({e.msg} at line {e.lineno})"
    return data if isinstance(data, dict) else f"{DAEMON_JSON} is not a JSON object"


def exec_start(live: dict[str, Any], cfg: dict[str, Any], conf: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The argv of dockguard's drop-in, and what it leaves out of the command line systemd
    would otherwise run (with the file and line each came from): every TCP listener and
    TLS flag (dockguard owns those: CIS 2.7; TLS lives in daemon.json) and every flag that
    daemon.json also sets for a control dockguard manages (dockerd refuses to start with
    both). Variables dockguard could read are written out, so the drop-in holds the
    whole command line."""
    words, _ = command_line(live)
    if not words:
        words = [Word(w, "default") for w in ("/usr/sbin/dockerd", "-H", "fd://")]
    keep: list[str] = [words[0].text]
    dropped: list[str] = []
    opts = {id(w): o for o in options(words) for w in o.words}
    seen = set()
    for w in words[1:]:
        o = opts.get(id(w))
        if o is None:
            keep.append(w.text)
            continue
        if id(o) in seen:
            continue
        seen.add(id(o))
        text = " ".join(x.text for x in o.words)
        if o.flag in ("-H", "--host") and o.value and _tcp(o.value):
            dropped.append(f"CIS 2.7: {o.source} opens {o.value}: dockguard's drop-in runs dockerd without it")
        elif o.flag in _TLS_FLAGS:
            dropped.append(f"CIS 2.7: {o.source} sets {text}: dockguard's drop-in leaves TLS to daemon.json")
        elif o.key in conf and o.key in settings.MANAGED_KEYS:
            dropped.append(
                f"CIS 2.x: {o.source} sets {text}, which daemon.json sets as {o.key!r}: "
                "dockguard's drop-in runs dockerd without the flag"
            )
        else:
            keep += [x.text for x in o.words]
    if cfg["docker_tcp_listen"]:
        at = keep.index("fd://") + 1 if "fd://" in keep else 1
        keep[at:at] = ["-H", f"tcp://{cfg['docker_tcp_listen']}"]
    return keep, dropped


def render_exec_start(argv: list[str], live: dict[str, Any]) -> str:
    """The ExecStart= value: each argument quoted for systemd, but a $VARIABLE dockguard
    could not read kept for systemd to expand."""
    raw = {w.text for w in command_line(live)[0] if w.raw}
    return " ".join(a if a in raw else systemd.quote_arg(a) for a in argv)


def flag_conflicts(live: dict[str, Any], conf: dict[str, Any]) -> list[str]:
    """Flags on dockerd's command line for daemon.json keys dockguard does not manage
    (docker_daemon_extra): dockerd refuses to start with both, and the operator's
    extra key is not dockguard's to drop."""
    out = []
    for o in options(command_line(live)[0]):
        if o.flag in ("-H", "--host") or o.flag in _TLS_FLAGS:
            continue
        if o.key in conf and o.key not in settings.MANAGED_KEYS:
            out.append(f"{o.source} sets {o.flag}, which daemon.json sets as {o.key!r} (docker_daemon_extra)")
    return out


# --------------------------------------------------------------------------- facts

# The fact hands every value over as base64 (one `key=...` line each), so no byte of a
# file, of `docker info` or of a process name can break its parsing: dash's echo
# expands backslashes, and dockerd's own warnings span several lines.
_B64 = "| base64 -w0; echo"


def _dropin_globs() -> str:
    return " ".join(f'"{d}"/docker.service.d/*.conf' for d in systemd.DROPIN_DIRS)


# The daemon's API over its socket, in perl without modules (perl -e costs 0.002 s of CPU, the
# docker CLI 0.025 s per call; IO::Socket or Socket would cost 0.013 s to load). ARGV: the
# daemon's pid, its unit's ActiveState, the timeout. Prints records "KEY LENGTH\n" + bytes:
# "listeners" (pid > 0: the TCP sockets the pid listens on, "4|6 HEXADDR PORT" lines, from
# /proc: its fds' socket inodes in its own network namespace's tables), and for an active
# unit "info_rc" (0, 1: no answer or not 200, 124: timed out), "info" (the raw HTTP
# response), then, when it answered, "containers" (only when it listens on TCP: published
# ports are not API listeners) and "bridge". Exits 0 when /info answered 200.
# AF_UNIX is 1 on Linux; SOCK_STREAM is 1, but 2 on MIPS (tried second).
_API_PERL = (
    "my ($pid, $act, $t) = @ARGV; my @l; my $rc = 1; "
    'sub out { print "$_[0] ", length($_[1]), "\\n", $_[1] } '
    "sub get { my $r = q{}; my $ok = eval { local $SIG{ALRM} = sub { die qq{timeout\\n} }; alarm $t; "
    "my $u = pack(q{S a108}, 1, q{/var/run/docker.sock}); my $s; "
    "(socket($s, 1, 1, 0) && connect($s, $u)) || (socket($s, 1, 2, 0) && connect($s, $u)) || die qq{connect\\n}; "
    "syswrite($s, qq{GET $_[0] HTTP/1.0\\r\\nHost: docker\\r\\nUser-Agent: dockguard\\r\\n\\r\\n}); "
    "1 while sysread($s, $r, 65536, length $r); alarm 0; 1 }; "
    "return (!$ok ? ($@ eq qq{timeout\\n} ? 124 : 1) : $r =~ m{\\AHTTP/1\\.[01] 200 } ? 0 : 1, $r) } "
    "if ($pid > 0) { my %i; if (opendir(my $d, qq{/proc/$pid/fd})) { for (readdir $d) { "
    "my $x = readlink(qq{/proc/$pid/fd/$_}); $i{$1} = 1 if defined $x && $x =~ /^socket:\\[(\\d+)\\]$/ } } "
    "for my $v (4, 6) { open(my $f, q{<}, qq{/proc/$pid/net/tcp} . ($v == 6 ? 6 : q{})) or next; "
    "while (<$f>) { my @c = split; next unless @c > 9 && $c[3] eq q{0A} && $i{$c[9]}; "
    "my ($h, $p) = split /:/, $c[1]; "
    "push @l, qq{$v } . unpack(q{H*}, pack(q{L*}, map { hex } $h =~ /(.{8})/g)) . q{ } . hex($p) . qq{\\n} } } "
    "out(q{listeners}, join q{}, @l) } "
    "if ($act eq q{active}) { my ($c, $r) = get(q{/info}); $rc = $c; out(q{info_rc}, $c); out(q{info}, $r); "
    "if (!$c) { out(q{containers}, (get(q{/containers/json}))[1]) if @l; "
    "out(q{bridge}, (get(q{/networks/bridge}))[1]) } } "
    "exit($rc ? 1 : 0)"
)

# The daemon's listening sockets and API by the docker CLI and ss (a host without perl).
_API_CLI = (
    f'[ "${{pid:-0}}" -gt 0 ] && {{ l=$(ss -ltnpH 2>/dev/null | grep "pid=$pid,"); '
    f"b listen; printf '%s' \"$l\" {_B64}; }}; "
    'if [ "$act" = active ]; then '
    f"info=$(timeout {INFO_TIMEOUT} docker info --format '{{{{json .}}}}' 2>/dev/null); echo info_rc=$?; "
    f"b info; printf '%s' \"$info\" {_B64}; "
    # Ports containers publish: with userland-proxy off, dockerd itself holds them open (asked
    # only when dockerd listens on a TCP port: they tell a published port from an API listener).
    f'[ -n "$info" ] && [ -n "$l" ] && {{ b published; timeout {INFO_TIMEOUT} docker ps --format '
    f"'{{{{.Ports}}}}' 2>/dev/null {_B64}; }}; "
    f'[ -n "$info" ] && {{ b bridge; timeout {INFO_TIMEOUT} docker network inspect bridge '
    f"--format '{{{{json .}}}}' 2>/dev/null {_B64}; }}; fi; "
)

# perl's records as one base64 value (raw inside the preflight's batch: safe.encoded), its exit status in $arc.
_API_BY_PERL = (
    safe.encoded("api=", f'perl -e \'{_API_PERL}\' "${{pid:-0}}" "$act" {INFO_TIMEOUT} 2>/dev/null', status="arc")
    + '; [ "$arc" = 0 ] && info=yes; '
)


# CONFIG_DIGEST without its `cut` (the fact's shell takes the digest's field itself).
_DIGEST_SUM = CONFIG_DIGEST.removesuffix(" | cut -d' ' -f1")


def _state_command(api: str = "auto") -> str:
    files = " ".join((DEFAULTS_FILE, SYSCONFIG_FILE, DAEMON_JSON))
    if api == "cli":
        daemon = _API_CLI
    elif api == "perl":
        daemon = _API_BY_PERL
    else:
        daemon = f"if command -v perl >/dev/null 2>&1; then {_API_BY_PERL}else {_API_CLI}fi; "
    return (
        "b() { printf '%s=' \"$1\"; }; l=; info=; act=; frag=; pid=; "
        f"unit=$({systemd.show(*DockerdState.systemd_show)}); "
        # The unit's properties, one line each (systemd writes no newline into a value); the
        # shell keeps the first of each it needs.
        "o=$IFS; IFS='\n'; set -f; for x in $unit; do printf 'unitprop=%s\\n' \"$x\"; case $x in "
        "ActiveState=*) act=${act:-${x#*=}};; FragmentPath=*) frag=${frag:-${x#*=}};; "
        "MainPID=*) pid=${pid:-${x#*=}};; esac; done; set +f; IFS=$o; "
        "case $pid in *[!0-9]*) pid=0;; esac; "
        # The unit's file, its drop-ins and the daemon's files in one base64 (not two per file):
        # their names, then their sizes, then their bytes (parse_files).
        'set --; [ -n "$frag" ] && [ -f "$frag" ] && set -- "$frag"; '
        f'for x in {_dropin_globs()} {files}; do [ -f "$x" ] && set -- "$@" "$x"; done; '
        "[ $# -gt 0 ] && { "
        + safe.encoded(
            "files=",
            "{ printf '%s\\0' \"$@\"; printf '\\0'; stat -L -c %s -- \"$@\"; printf '\\0'; "
            'cat -- "$@"; } 2>/dev/null',
        )
        + "; }; "
        f'd=$({_DIGEST_SUM}); echo "config_digest=${{d%% *}}"; '
        f'[ -f {APPLIED} ] && {{ d=; IFS= read -r d < {APPLIED}; echo "applied_digest=$d"; }}; '
        # The known-good manifest's first and last lines, read by the shell.
        f'[ -f {KNOWN_GOOD}/manifest ] && {{ {{ h=; IFS= read -r h; t=$h; while IFS= read -r x || [ -n "$x" ]; '
        f"do t=$x; x=; done; }} < {KNOWN_GOOD}/manifest; "
        f'[ "$h" = "{_MANIFEST_HEAD}" ] && [ "$t" = "{_MANIFEST_END}" ] && echo known_good=yes '
        "|| echo known_good=corrupt; }; "
        # dockerd and docker as `command -v` finds them (a path with a newline is none).
         + safe.which("dockerd docker", "case $p in *'\n'*) p=;; esac; echo \"${b}_bin=$p\"") + "; "
        "[ -w /etc/docker ] || [ ! -e /etc/docker ] && echo etc_writable=yes; "
        # The kernel's limits tables (text it writes), a line each.
        "{ while IFS= read -r x; do printf 'pid1_limit=%s\\n' \"$x\"; done < /proc/1/limits; } 2>/dev/null; "
        'c=; while read -r k v; do [ "$k" = CapEff: ] && { c=$v; break; }; done < /proc/1/status; '
        'echo "pid1_caps=$c"; '
        'if [ "${pid:-0}" -gt 0 ]; then '
        "while IFS= read -r x; do printf 'limit=%s\\n' \"$x\"; done < /proc/$pid/limits; "
        "b cmdline; base64 -w0 < /proc/$pid/cmdline; echo; "
        # The process state: the field after the command name (which may hold ") ").
        "st=; read -r st < /proc/$pid/stat; st=${st##*) }; "
        'echo "pstate=${st%% *}"; fi 2>/dev/null; '
        + daemon
        + f'[ -z "$info" ] && command -v dockerd >/dev/null 2>&1 && {{ b version; '
        f"timeout {INFO_TIMEOUT} dockerd --version 2>/dev/null {_B64}; }}; "
        # No answer, and dockguard's authorization plugin installed: how it is (every call waits for it).
        '[ -z "$info" ] && [ -f /etc/systemd/system/dockguard-authz.socket ] && { b authz; '
        "{ systemctl is-active dockguard-authz.socket dockguard-authz.service | tr '\\n' ' '; "
        "journalctl -u dockguard-authz.service -n 1 -o cat --no-pager 2>/dev/null; } | head -c 400 "
        f"{_B64}; }}; true"
    )


class DockerdState(FactBase):
    """The daemon as systemd will start it and as it runs, in one command: the unit's
    state, its vendor file and every drop-in, /etc/default/docker, /etc/sysconfig/docker
    and daemon.json as bytes; the digest of the config files it was started with; the
    live process (command line, limits, listening sockets); what the daemon's API says
    (``docker info``, the default bridge, published ports), each bounded in time (a hung
    daemon answers nothing).

    The API is read over its socket by ``perl`` where the host has it (perl-base is essential
    on Debian and Ubuntu): the docker CLI costs a host about 0.025 s of CPU per call to start,
    three calls a run. Without perl the CLI is asked, and ``ss`` for the listening sockets.
    Both ways hand over the same answers (``parse_state``)."""

    # The unit and properties it reads with `systemctl show` (a batch reads them for all its facts at once).
    systemd_show = (["docker.service"], ["ActiveState", "UnitFileState", "LoadState", "FragmentPath", "MainPID",
                                         "LimitNOFILE", "LimitNPROC"])  # fmt: skip

    def command(self, api: str = "auto") -> str:
        """``api``: "auto" (perl where the host has it, else the CLI), "cli" or "perl" (tests)."""
        return _state_command(api)

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        try:
            return parse_state(output)
        except FactProcessError as e:
            _fact_errors[host.name] = str(e)  # for the one line that refuses this host
            raise


def _b64(value: str, what: str) -> str:
    """Decode one base64 field of the fact; any other bytes are a clear error for this host."""
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FactProcessError(f"dockerd state: {what}: truncated or not base64 ({e})") from None
    return data.decode("utf-8", errors="replace")


def parse_state(output: list[str]) -> dict[str, Any]:
    """The raw fact output, decoded and parsed (see DockerdState). Invalid JSON from a
    daemon that answered is kept as an error string, not an exception: the guards then
    decide from the disk."""
    if not output:
        raise FactProcessError("dockerd state: the command printed nothing")
    raw: dict[str, str] = {}
    api: dict[str, bytes] | None = None  # the daemon's answers read by perl (DockerdState)
    many: dict[str, list[str]] = {"unitprop": [], "pid1_limit": [], "limit": []}  # a line per value
    blob: list[tuple[str, str]] = []
    for line in output:
        key, eq, value = line.partition("=")
        if not eq:
            raise FactProcessError(f"dockerd state: unexpected line {line[:120]!r}")
        if key in many:
            many[key].append(value)
        elif key == "files":
            blob = _files(value)
        elif key in ("dockerd_bin", "docker_bin"):
            raw["dockerd" if key == "dockerd_bin" else "cli"] = value
        elif key in ("cmdline", "listen", "info", "bridge", "version", "published", "authz"):
            raw[key] = _b64(value, key)
        elif key == "api":
            api = _api_records(value)
        else:
            raw[key] = value
    raw.update(pid1_limits="\n".join(many["pid1_limit"]), limits="\n".join(many["limit"]))
    unit = dict(line.split("=", 1) for line in many["unitprop"] if "=" in line)
    unit_file = unit.get("FragmentPath")
    fragment = None
    files: dict[str, str] = {}
    dropins: dict[str, str] = {}
    for path, text in blob:
        if path == unit_file and fragment is None:
            fragment = [path, text]
        elif path.endswith(".conf") and "/docker.service.d/" in path:
            dropins[path] = text
        else:
            files[path] = text
    published: set[str] = set()
    if api is None:
        listeners = _ss_listeners(raw.get("listen") or "")
        published = _published(raw.get("published") or "")
    else:
        listeners = _proc_listeners(api.get("listeners", b""))
        if "info_rc" in api:
            raw["info_rc"] = api["info_rc"].decode("ascii", errors="replace")
        for key in ("info", "bridge", "containers"):
            body = _http_body(api[key]) if key in api else None
            if body is not None:
                raw[key] = body.decode("utf-8", errors="replace")
        published = _published_api(raw.pop("containers", ""))
    state: dict[str, Any] = {
        "active": unit.get("ActiveState") or "unknown",
        "enabled": unit.get("UnitFileState") or "unknown",
        "load": unit.get("LoadState") or "unknown",
        "main_pid": int(unit["MainPID"]) if unit.get("MainPID", "").isdigit() else 0,
        "fragment": fragment,
        "dropins": dropins,
        "files": files,
        "config_digest": raw.get("config_digest") or None,
        "applied_digest": re.sub(r"[^0-9a-f]", "", raw.get("applied_digest", "")[:64]) or None,
        "known_good": raw.get("known_good") == "yes",
        "known_good_corrupt": raw.get("known_good") == "corrupt",
        "dockerd": raw.get("dockerd") or None,
        "docker_cli": raw.get("cli") or None,
        "etc_writable": raw.get("etc_writable") == "yes",
        "process_state": (raw.get("pstate") or "").strip() or None,
        "cmdline": [a for a in (raw.get("cmdline") or "").split("\0") if a],
        "live_listeners": [a for a in listeners if tcp_port(a) not in published],
        "hard_limits": _hard_limits(raw.get("limits"), unit, raw.get("pid1_limits"), raw.get("pid1_caps") or ""),
        "info_rc": int(raw["info_rc"]) if raw.get("info_rc", "").isdigit() else None,
        "info_error": None,
        "authz": " ".join((raw.get("authz") or "").split()) or None,
        "server_version": None,
        "engine_version": _engine_version(raw.get("version") or ""),
        "live_restore": None,
        "logging_driver": None,
        "security_options": [],
        "swarm": None,
        "containers": None,
        "running": None,
        "images": None,
        "root_dir": None,
        "bridge_icc": None,
        "bridge_containers": None,
        "warnings": [],
    }
    info: Any = {}
    if raw.get("info"):
        try:
            info = json.loads(raw["info"])
        except json.JSONDecodeError as e:
            state["info_error"] = f"docker info printed invalid JSON ({e})"
    if isinstance(info, dict) and info.get("ServerVersion"):
        state.update(
            server_version=info["ServerVersion"],
            engine_version=info["ServerVersion"],
            live_restore=info.get("LiveRestoreEnabled"),
            logging_driver=info.get("LoggingDriver"),
            security_options=info.get("SecurityOptions") or [],
            swarm=(info.get("Swarm") or {}).get("LocalNodeState"),
            containers=info.get("Containers"),
            running=info.get("ContainersRunning"),
            images=info.get("Images"),
            root_dir=info.get("DockerRootDir"),
            warnings=info.get("Warnings") or [],
        )
    try:
        bridge = json.loads(raw["bridge"]) if raw.get("bridge") else {}
    except json.JSONDecodeError:
        bridge = {}
    if isinstance(bridge, dict) and isinstance(bridge.get("Options"), dict):  # the whole network
        containers = bridge.get("Containers")
        state["bridge_containers"] = len(containers) if isinstance(containers, dict) else 0
        bridge = bridge["Options"]
    if isinstance(bridge, dict) and "com.docker.network.bridge.enable_icc" in bridge:
        state["bridge_icc"] = bridge["com.docker.network.bridge.enable_icc"] == "true"
    return state


def _engine_version(text: str) -> str | None:
    """ "Docker version 20.10.24+dfsg1, build 297e128" -> "20.10.24+dfsg1"."""
    m = re.search(r"version ([0-9][^ ,]*)", text)
    return m.group(1) if m else None


def _published(text: str) -> set[str]:
    """Host ports containers publish (`docker ps --format {{.Ports}}`: "0.0.0.0:8080-8081->80-81/tcp, ...")."""
    out: set[str] = set()
    for m in re.finditer(r":([0-9]+)(?:-([0-9]+))?->[0-9-]+/tcp", text):
        first, last = int(m[1]), int(m[2] or m[1])
        out.update(str(p) for p in range(first, min(last, 65535) + 1))
    return out


def _files(value: str) -> list[tuple[str, str]]:
    """[(path, text)] from the fact's one base64 of files: their names (each ended by a NUL),
    a NUL, their sizes (stat, one a line), a NUL, their bytes one after another. A file that
    changed between its stat and its read does not add up: an error, and the fact is read again."""
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FactProcessError(f"dockerd state: files: truncated or not base64 ({e})") from None
    names, sep, rest = data.partition(b"\0\0")
    sizes, sep2, body = rest.partition(b"\0")
    paths = names.split(b"\0")
    lengths = [int(n) for n in sizes.split() if n.isdigit()]
    if (
        not sep
        or not sep2
        or len(lengths) != len(paths)
        or len(sizes.split()) != len(paths)
        or sum(lengths) != len(body)
    ):
        raise FactProcessError(
            "dockerd state: files: names, sizes and bytes do not add up (a file changed while read?)"
        )
    out, at = [], 0
    for path, size in zip(paths, lengths, strict=True):
        out.append((path.decode("utf-8", errors="replace"), body[at : at + size].decode("utf-8", errors="replace")))
        at += size
    return out


def _api_records(value: str) -> dict[str, bytes]:
    """perl's records ("KEY LENGTH\\n" + that many bytes each, base64 as a whole), by key."""
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FactProcessError(f"dockerd state: api: truncated or not base64 ({e})") from None
    out: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        head, nl, _ = data[at : at + 64].partition(b"\n")
        key, _, size = head.partition(b" ")
        if (
            not nl
            or not re.fullmatch(rb"[a-z_]+", key)
            or not size.isdigit()
            or at + len(head) + 1 + int(size) > len(data)
        ):
            raise FactProcessError(f"dockerd state: api: record cut short or garbled at byte {at}")
        start = at + len(head) + 1
        out[key.decode()] = data[start : start + int(size)]
        at = start + int(size)
    return out


def _http_body(response: bytes) -> bytes | None:
    """The body of an HTTP response from the daemon's socket when it is 200 OK (None otherwise);
    a chunked body is joined (the request is HTTP/1.0, which the daemon answers unchunked)."""
    head, sep, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not sep or not re.match(rb"HTTP/1\.[01] 200 ", lines[0] + b" "):
        return None
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(b":") for h in lines[1:])}
    if headers.get(b"transfer-encoding") != b"chunked":
        return body
    out, at = b"", 0
    while True:
        size_line, nl, _ = body[at : at + 32].partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return None
        if not nl or size == 0:
            return out if nl else None
        start = at + len(size_line) + 2
        out += body[start : start + size]
        at = start + size + 2


def _proc_listeners(text: bytes) -> list[str]:
    """Addresses dockerd listens on, from perl's "4|6 HEXADDR PORT" lines (the address's bytes
    in network order, as /proc/net/tcp holds them): "0.0.0.0:2376", "[::1]:2376"."""
    out = []
    for line in text.decode("ascii", errors="replace").splitlines():
        family, _, rest = line.partition(" ")
        addr, _, port = rest.partition(" ")
        try:
            ip = ipaddress.ip_address(bytes.fromhex(addr))
        except ValueError:
            raise FactProcessError(f"dockerd state: unexpected listener {line[:80]!r}") from None
        if not port.isdigit() or family != str(ip.version):
            raise FactProcessError(f"dockerd state: unexpected listener {line[:80]!r}")
        out.append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
    return out


def _published_api(text: str) -> set[str]:
    """Host TCP ports containers publish, from the API's container list (GET /containers/json)."""
    try:
        containers = json.loads(text) if text else []
    except json.JSONDecodeError:
        return set()
    out: set[str] = set()
    for ct in containers if isinstance(containers, list) else []:
        for port in (ct.get("Ports") or []) if isinstance(ct, dict) else []:
            if isinstance(port, dict) and port.get("Type") == "tcp" and isinstance(port.get("PublicPort"), int):
                out.add(str(port["PublicPort"]))
    return out


def _ss_listeners(text: str) -> list[str]:
    """Addresses dockerd itself listens on (`ss -ltnpH` lines of its pid; ss's "*", a dual-stack
    socket on every address, as "[::]", as _proc_listeners shows it)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append("[::]" + parts[3][1:] if parts[3].startswith("*:") else parts[3])
    return out


def _limits(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        m = re.match(r"Max (open files|processes)\s+\S+\s+(\S+)", line)
        if m:
            out["nofile" if m.group(1) == "open files" else "nproc"] = (
                -1 if m.group(2) == "unlimited" else int(m.group(2))
            )
    return out


CAP_SYS_RESOURCE = 24


def _hard_limits(live: str | None, unit: dict[str, str], pid1: str | None, pid1_caps: str = "") -> dict[str, int]:
    """dockerd's own hard limits: a container's default ulimit cannot exceed them. From the
    running process; for a stopped daemon, from its unit (LimitNOFILE=, LimitNPROC=), capped
    by PID 1's own limits where PID 1 cannot raise them (no CAP_SYS_RESOURCE: a container)."""
    if live:
        return _limits(live)
    try:
        can_raise = bool(int(pid1_caps, 16) >> CAP_SYS_RESOURCE & 1)
    except ValueError:
        can_raise = True
    cap = {} if can_raise else _limits(pid1)
    out = {}
    for name, prop in (("nofile", "LimitNOFILE"), ("nproc", "LimitNPROC")):
        value = unit.get(prop, "")
        have = -1 if value == "infinity" else int(value) if value.isdigit() else None
        top = cap.get(name)
        if have is None or top is not None and top != -1 and (have == -1 or have > top):
            have = top
        if have is not None:
            out[name] = have
    return out


def userns_on(live: dict[str, Any]) -> bool:
    return any(o.startswith("name=userns") for o in live.get("security_options") or [])


# UnitFileState values under which systemd starts the unit at boot (or on demand).
_STARTS = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias", "linked", "linked-runtime")


def left_stopped(live: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """Why dockguard leaves a stopped dockerd stopped (None: it may start it). A daemon
    the operator stopped *and* disabled (or masked) stays stopped unless
    docker_start_stopped says otherwise; a stopped but enabled one (maintenance, a crash)
    is started, as it would be at the next boot."""
    if not live or live.get("active") in ("active", "activating", "reloading"):
        return None
    if live.get("load") == "masked" or live.get("enabled") == "masked":
        state = "masked"
    elif live.get("enabled") not in _STARTS:
        state = f"stopped and {live.get('enabled')}"
    else:
        return None
    if cfg["docker_start_stopped"]:
        return None
    return (
        f"dockerd is {state}: left as the operator set it (its files are hardened for the next start; "
        "set docker_start_stopped: True to have dockguard start and verify it)"
    )


def tcp_port(address: str) -> str:
    return address.rsplit(":", 1)[-1]


def restart_reasons(live: dict[str, Any], cfg: dict[str, Any], selinux: bool = False) -> list[str]:
    """Why the running daemon does not match what this host should run (empty: it does).

    The files themselves are compared by their template operations; this compares
    the *running* daemon, so a run interrupted between writing a file and the
    restart is healed by the next run."""
    if not live:
        return ["dockerd state unknown"]
    if live["active"] != "active":
        return [f"dockerd is {live['active']}"]
    reasons = []
    if live["config_digest"] != live["applied_digest"]:
        reasons.append("its configuration files differ from the ones dockerd last started healthy with")
    wanted = tcp_port(cfg["docker_tcp_listen"]) if cfg["docker_tcp_listen"] else None
    for address in live.get("live_listeners") or []:
        if tcp_port(address) != wanted:
            reasons.append(f"CIS 2.7: dockerd listens on TCP {address}, which dockguard does not configure")
    if live["server_version"] is None:
        reasons.append(live.get("info_error") or "docker info did not answer")
        return reasons
    if live["bridge_icc"] is not None and live["bridge_icc"] != cfg["docker_icc"] and not bridge_kept(live, cfg):
        reasons.append(f"default bridge runs with enable_icc={str(live['bridge_icc']).lower()}")
    if live["live_restore"] != cfg["docker_live_restore"]:
        reasons.append(f"dockerd runs with live-restore={str(live['live_restore']).lower()}")
    if live["logging_driver"] != cfg["docker_log_driver"]:
        reasons.append(f"dockerd runs with log-driver={live['logging_driver']}")
    if userns_on(live) != bool(cfg["docker_userns_remap"]):
        reasons.append(f"dockerd runs with userns-remap {'on' if userns_on(live) else 'off'}")
    if selinux and "name=selinux" not in (live.get("security_options") or []):
        reasons.append("dockerd runs without SELinux labelling of containers")
    return reasons


def bridge_kept(live: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """CIS 2.2 cannot reach the default bridge yet: dockerd restores a network that has running
    containers on it as it was (live-restore), so a restart leaves its enable_icc as it is until
    they stop. Restarting again would change nothing, on every run: say so instead."""
    icc = live.get("bridge_icc")
    if icc is None or icc == cfg["docker_icc"] or not live.get("live_restore"):
        return None
    attached = live.get("bridge_containers") or 0
    if attached == 0:
        return None
    return (
        f"the default bridge keeps enable_icc={str(icc).lower()} while {attached} container(s) on it run: dockerd "
        "restores it as it was (live-restore), so restarting again would change nothing; once they have stopped, "
        "the next run restarts dockerd and the bridge gets icc; until then containers on it can reach each other"
    )


def selinux_labels(plat: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """daemon.json turns SELinux labelling on: SELinux is the MAC system dockguard manages here."""
    return platform.mac(plat, cfg) == "selinux"


def apparmor_profile_missing(plat: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """CIS 5.1: dockerd loads docker-default when it starts on a kernel with AppArmor;
    one that runs without it was started before AppArmor was (and is restarted)."""
    from . import mac

    return (
        platform.mac(plat, cfg) == "apparmor"
        and plat["apparmor"]["profiles_readable"]
        and mac.apparmor_problem(plat) is None
        and "docker-default" not in plat["apparmor"]["profiles"]
    )


CLIENT_MISSING = (
    "dockerd is installed but the docker client is not (Debian 13 ships it as docker-cli, which docker.io only "
    "recommends): dockguard asks the daemon through it; install docker-cli (docker-ce-cli from Docker's "
    "repository), or set docker_install: True to let dockguard install it"
)


def client_present(live: dict[str, Any]) -> bool:
    """Whether the docker client is installed (a fact recorded before this field existed: assumed)."""
    return "docker_cli" not in live or bool(live["docker_cli"])


def hung(live: dict[str, Any]) -> str | None:
    """A daemon systemd calls active that does not answer: dockguard neither restarts it
    (a stopped process may be under a debugger) nor trusts what it cannot ask."""
    if live.get("active") != "active" or live.get("server_version"):
        return None
    stopped = live.get("process_state") in ("T", "t")
    if not stopped and live.get("info_rc") != 124:
        return None
    why = "is stopped (SIGSTOP or a debugger)" if stopped else f"did not answer docker info within {INFO_TIMEOUT} s"
    conf = _current_daemon_json(live)
    plugins = conf.get("authorization-plugins") if isinstance(conf, dict) else None
    hint = ""
    if not stopped and isinstance(plugins, list) and plugins:
        # dockerd asks its authorization plugins about every call, and retries one that does not answer.
        names = ", ".join(str(p) for p in plugins)
        start = "systemctl start dockguard-authz.socket" if "dockguard-authz" in plugins else "start it"
        hint = f" (every call waits for its authorization plugins, {names}: if one is down, {start})"
        if live.get("authz"):  # socket and service states, then the plugin's last journal line
            hint = (
                f" (every call waits for its authorization plugins, {names}; dockguard-authz socket and "
                f"plugin: {safe.shown(live['authz'])[1:-1]}: start its socket, or mend what its journal says)"
            )
    return (
        f"dockerd (pid {live.get('main_pid')}) {why}{hint}: dockguard does not restart a daemon it cannot ask; "
        "find out why (systemctl status docker), then run again"
    )


def _root_of(conf: Any, words: list[Word]) -> tuple[str, bool] | None:
    """(data root, userns-remap on) from a daemon.json and a command line; None: unknown."""
    if not isinstance(conf, dict) and conf is not None:
        return None
    conf = conf or {}
    root, userns = conf.get("data-root") or conf.get("graph") or "/var/lib/docker", bool(conf.get("userns-remap"))
    for o in options(words):
        if o.key == "data-root" and o.value:
            root = o.value
        if o.key == "userns-remap":
            userns = bool(o.value)
    return str(root).rstrip("/") or "/", userns


class DockerStorage(FactBase):
    """What dockerd keeps on disk, counted without asking it: per storage root (the data
    root and each userns-remapped ``<uid>.<gid>`` root in it) its containers, those that
    were running, and its images; and whether the node is in a Swarm."""

    def command(self, root: str) -> str:
        r = shlex.quote(root)
        return (
            f'r={r}; for d in "$r" "$r"/[0-9]*.[0-9]*; do [ -d "$d" ] || continue; '
            "printf 'root='; printf '%s' \"$d\" | base64 -w0; "
            "printf ' %s' $(find \"$d/containers\" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) "
            '$(grep -l \'"Running":true\' "$d"/containers/*/config.v2.json 2>/dev/null | wc -l) '
            "$(find \"$d/image\" -path '*/imagedb/content/sha256/*' -type f 2>/dev/null | wc -l); echo; done; "
            '[ -f "$r/swarm/docker-state.json" ] && echo swarm=yes; true'
        )

    @staticmethod
    def default() -> dict:
        return {"roots": {}, "swarm": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"roots": {}, "swarm": False}
        for line in output:
            if line == "swarm=yes":
                out["swarm"] = True
                continue
            parts = line.split(" ")
            if not line.startswith("root=") or len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
                raise FactProcessError(f"docker storage: unexpected line {line[:120]!r}")
            path = _b64(parts[0][5:], "storage root")
            out["roots"][path] = {"containers": int(parts[1]), "running": int(parts[2]), "images": int(parts[3])}
        return out


def _hidden_text(counts: dict[str, int]) -> str:
    hidden = []
    if counts.get("containers"):
        hidden.append(f"{counts['containers']} containers ({counts.get('running') or 0} running)")
    if counts.get("images"):
        hidden.append(f"{counts['images']} images")
    return " and ".join(hidden)


def hiding_problems(live: dict[str, Any], cfg: dict[str, Any], conf: dict[str, Any], disk: dict | None) -> list[str]:
    """Turning userns-remap on or off (or moving data-root) moves dockerd to another
    storage root, and what the old one holds disappears from view. Counted by the live
    daemon when it answers, else from the disk (``disk``: DockerStorage)."""
    if cfg["docker_userns_allow_hiding"]:
        return []
    words = exec_start_words(live, cfg, conf)
    target = _root_of(conf, words)
    turn = "on" if cfg["docker_userns_remap"] else "off"
    what = f"docker_userns_remap: turning userns-remap {turn}"
    tail = (
        " would disappear from view (running containers would be stopped); set docker_userns_allow_hiding: True "
        "for this host to accept that"
    )
    if live.get("server_version"):
        root_dir = str(live.get("root_dir") or "/var/lib/docker")
        current = (posixpath.dirname(root_dir) if userns_on(live) else root_dir, userns_on(live))
        if target is None or current == target:
            return []
        if current[0] != target[0]:
            what = f"data-root: moving dockerd from {current[0]} to {target[0]}"
        text = _hidden_text(live)
        return [f"{what} moves dockerd to another storage root: {text} in {live.get('root_dir')}{tail}"] if text else []
    if disk is None or target is None:
        return []
    current = _root_of(_current_daemon_json(live), command_line(live)[0])
    roots = disk.get("roots") or {}

    def is_target(path: str) -> bool:
        remapped = posixpath.dirname(path) == target[0] and re.fullmatch(r"[0-9]+\.[0-9]+", posixpath.basename(path))
        return bool(remapped) if target[1] else path == target[0]

    if current is not None:
        if current == target:
            return []
        if current[0] != target[0]:
            what = f"data-root: moving dockerd from {current[0]} to {target[0]}"
        found = {p: c for p, c in roots.items() if _hidden_text(c) and not is_target(p)
                 and (posixpath.dirname(p) == current[0] if current[1] else p == current[0])}  # fmt: skip
        why = f"dockerd is {live.get('active')}: counted from the disk"
    else:
        found = {p: c for p, c in roots.items() if _hidden_text(c) and not is_target(p)}
        why = f"{_current_daemon_json(live)}, so the storage root dockerd used is unknown: counted from the disk"
    return [f"{what} moves dockerd to another storage root: {_hidden_text(c)} in {p}{tail} ({why})"
            for p, c in sorted(found.items())]  # fmt: skip


def exec_start_words(live: dict[str, Any], cfg: dict[str, Any], conf: dict[str, Any]) -> list[Word]:
    return [Word(a, "dockguard") for a in exec_start(live, cfg, conf)[0]]


def preflight_problems(
    live: dict[str, Any], cfg: dict[str, Any], plat: dict[str, Any] | None = None, disk: dict | None = None
) -> list[str]:
    """What would make applying this host's settings break or hide something: this host is
    refused before anything on it is touched (``disk``: DockerStorage, read when the
    daemon cannot answer)."""
    plat = plat or {}
    present = bool(live) and live.get("dockerd") is not None
    if plat:
        out = platform.problems(plat, cfg, dockerd_present=present)
        if out or not present:
            return out
    elif not present:
        return ["dockerd is not installed (install docker.io or docker-ce first)"]
    out = []
    if not client_present(live) and not cfg["docker_install"]:
        return [CLIENT_MISSING]
    stuck = hung(live)
    if stuck:
        return [stuck]
    conf = daemon_config(cfg, selinux_labels(plat, cfg))
    out += command_line(live)[1]
    out += flag_conflicts(live, conf)
    for name, limit in sorted(cfg["docker_default_ulimits"].items()):
        have = (live.get("hard_limits") or {}).get(name)
        if have is not None and have != -1 and (limit["hard"] == -1 or limit["hard"] > have):
            out.append(
                f"docker_default_ulimits: {name} hard limit {limit['hard']} is above dockerd's own hard limit "
                f"{have} on this host: every container start would fail"
            )
    swarm = live.get("swarm") in ("active", "pending") or (not live.get("server_version") and (disk or {}).get("swarm"))
    if cfg["docker_live_restore"] and swarm:
        how = "" if live.get("server_version") else f" ({DOCKER_ROOT_HINT})"
        out.append(f"docker_live_restore: this host is a Swarm node{how}; live-restore cannot be used with Swarm mode")
    out += hiding_problems(live, cfg, conf, disk)
    return out


DOCKER_ROOT_HINT = "swarm/docker-state.json in its data root"


def needs_disk(live: dict[str, Any]) -> str | None:
    """The data root to count from the disk when the live daemon cannot answer."""
    if not live or live.get("server_version") or not live.get("dockerd"):
        return None
    root = _root_of(_current_daemon_json(live), command_line(live)[0])
    return root[0] if root else "/var/lib/docker"


# --------------------------------------------------------------------------- preflight

# DockerdState of every host, read once by the preflight before any host is
# prepared (nothing has changed yet, so it is still what configure() needs).
_live = PerHost(DockerdState)


def reads(ctx: Context) -> list:
    """The facts this area reads besides the preflight's (operations/prefetch.py)."""
    out = []
    if ctx.cfg["docker_userns_remap"] == "default":
        out.append(userns.SUBIDS)
    if ctx.cfg["docker_tcp_listen"]:
        out.append(tls.FILES)
    return out


Reads = Callable[[Context], list]


def _read_state(h, reads: Reads | None = None) -> tuple[dict[str, Any], dict[str, Any], dict | None]:
    """Host ``h``'s dockerd state, platform and (where the daemon cannot answer) storage, and
    every fact ``reads`` names for it, in one remote command (operations/prefetch.py)."""
    with compat.on_host(h):
        ctx = Context.of(h)
        wanted = [_live.request(), platform.request(), *(reads(ctx) if reads else [])]
        got = prefetch.read(h, wanted)
        live = got.pop(_live.key, None)
        plat = got.pop(platform.KEY, None)
        if live is None:
            live = h.get_fact(DockerdState)
        if plat is None:
            plat = h.get_fact(platform.HostPlatform)
        for key, value in got.items():
            ctx.remember(key, value)
        root = needs_disk(live) if live else None
        disk = h.get_fact(DockerStorage, root=root) if root else None
        return live, plat, disk


# Hosts the preflight refused or could not read: they fail alone, the others go on.
_refused: set[str] = set()
_fact_errors: dict[str, str] = {}


def refuse(h, why: str) -> None:
    """Fail host ``h`` alone, with one line naming it and the cause (every other host goes on)."""

    h = compat.real_host(h)
    logger.error(f"{h.print_prefix}dockguard: this host is refused, nothing was changed on it: {why}")
    _refused.add(h.name)
    if not compat.fail_host(h):  # the last host: pyinfra would stop with a bare "No hosts remaining!"
        raise DeployError(f"dockguard: no host left to harden: {h.name} was refused: {why}")


def refused(h) -> bool:
    return compat.real_host(h).name in _refused or compat.is_failed(h)


def preflight(hosts: list, reads: Reads | None = None) -> None:
    """Runs once, before any host is prepared: read every host's dockerd state (in
    parallel), refuse a host whose settings would break dockerd or hide containers (that
    host alone fails, with the reason; the others go on), and make the CA on the
    operator's machine if any host listens on TCP (never in pull mode, where the host checks
    itself and only the CA's public certificates are there: dockguard/identity.py)."""
    from pyinfra import state

    greenlets = {h: gevent.spawn(_read_state, h, reads) for h in hosts}
    gevent.joinall(list(greenlets.values()))
    listening, bad = [], []
    for h, g in sorted(greenlets.items(), key=lambda kv: kv[0].name):
        if g.exception is not None:
            bad.append((h, f"could not read its state: {type(g.exception).__name__}: {g.exception}"))
            continue
        live, plat, disk = g.value
        if h in state.failed_hosts or not live or not plat:
            bad.append((h, f"could not read its state: {_fact_errors.get(h.name, 'see the fact error above')}"))
            continue
        _live.set(h, live)
        platform.remember(h, plat)
        cfg = settings.resolve(h.data.dict())
        problems = preflight_problems(live, cfg, plat, disk)
        if problems:
            bad.append((h, "; ".join(problems)))
        elif identity.pull(cfg):
            continue  # pull mode: the CA (and its key) stays on the operator's machine, never made here
        elif cfg["docker_tcp_listen"] or any(r.get("client_certificate") for r in cfg["docker_registries"]):
            listening.append(cfg)  # the CA signs its server or registry client certificate
    for h, why in bad:
        refuse(h, why)
    if listening:
        pki.ensure_ca(pki.pki_dir(listening[0]))


live_state = _live.get  # this host's DockerdState as the preflight read it


# --------------------------------------------------------------------------- operations


@operation()
def keep_known_good(live: dict[str, Any]):
    """The first time dockguard touches a host, keep its current dockerd config
    files (or their absence) as the one to roll back to."""
    if live.get("known_good"):
        host.noop("a known-good dockerd configuration is kept")
        return
    yield StringCommand(hostlock.prefix() + _snapshot_script())


def _snapshot_script() -> str:
    """Copy every config file that exists (and list which did) into KNOWN_GOOD; the
    manifest is whole only with its first and last lines, and replaces the old copy in
    one rename."""
    new = f"{KNOWN_GOOD}.new"
    return (
        f"rm -rf {new} && mkdir -p -m 700 {new} && echo '{_MANIFEST_HEAD}' > {new}/manifest && i=0 && "
        f"for f in {' '.join(CONFIG_FILES)}; do "
        f'if [ -f "$f" ]; then cp -p "$f" {new}/$i && echo $i >> {new}/manifest || exit 1; fi; i=$((i+1)); done && '
        f"echo {_MANIFEST_END} >> {new}/manifest && sync {new}/* && "
        f"rm -rf {KNOWN_GOOD}.old && {{ [ ! -d {KNOWN_GOOD} ] || mv {KNOWN_GOOD} {KNOWN_GOOD}.old; }} && "
        f"mv {new} {KNOWN_GOOD} && rm -rf {KNOWN_GOOD}.old"
    )


def _restore_script() -> str:
    """Put every config file back as kept (or remove it if it did not exist then), only
    from a whole manifest: a missing or cut-short one restores and deletes nothing (so
    certificates and keys are never removed on the word of a broken copy). Sets
    ``restored`` to yes or no."""
    return (
        f"if {_MANIFEST_OK}; then restored=yes; i=0; for f in {' '.join(CONFIG_FILES)}; do "
        f'if grep -qx $i {KNOWN_GOOD}/manifest; then cp -p {KNOWN_GOOD}/$i "$f"; else rm -f "$f"; fi; '
        "i=$((i+1)); done; else restored=no; fi"
    )


def _wait(condition: str, seconds: int) -> str:
    """Shell: retry ``condition`` once a second, for at most ``seconds``."""
    return f"i=0; until {condition}; do i=$((i+1)); [ $i -ge {seconds} ] && break; sleep 1; done"


def _listen_address(listen: str) -> str:
    """Where a local client reaches a TCP listener: the wildcard addresses become loopback."""
    addr, _, port = listen.rpartition(":")
    addr = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(addr, addr)
    return f"{addr}:{port}"


def health_script(cfg: dict[str, Any], apparmor: bool = False, keep_running: bool = False) -> str:
    """Succeeds once `docker info` answers and shows the expected security state, every
    container that ran before the restart still runs (``keep_running``: live-restore, and
    the storage root does not move), the docker-default AppArmor profile is loaded
    (``apparmor``), and a TCP listener completes a TLS handshake with dockguard's CA and
    demands a client certificate. Sets ``why`` to the first check that failed."""
    checks = [(f'echo "$info" | grep -q "live={str(cfg["docker_live_restore"]).lower()}"',
               f"live-restore is not {str(cfg['docker_live_restore']).lower()}")]  # fmt: skip
    if cfg["docker_userns_remap"]:
        checks.append(('echo "$info" | grep -q "name=userns"', "userns-remap is not on"))
    else:
        checks.append(('! echo "$info" | grep -q "name=userns"', "userns-remap is not off"))
    if keep_running:
        checks.append(
            (
                'after=$(docker ps -q --no-trunc 2>/dev/null); gone=""; for c in $before; do '
                'echo "$after" | grep -qx "$c" || gone="$gone ${c%${c#????????????}}"; done; [ -z "$gone" ]',
                "containers that ran before the restart no longer run:$gone",
            )
        )
    for plugin in cfg["docker_authorization_plugins"]:  # every call went through it: it is in use
        checks.append(
            (
                "docker info --format '{{json .Plugins.Authorization}}' | grep -qF " + shlex.quote(json.dumps(plugin)),
                f"the authorization plugin {plugin} is not in use",
            )
        )
    if apparmor:
        checks.append(
            (
                "grep -q '^docker-default ' /sys/kernel/security/apparmor/profiles",
                "the docker-default AppArmor profile is not loaded",
            )
        )
    if cfg["docker_tcp_listen"]:
        target = shlex.quote(_listen_address(cfg["docker_tcp_listen"]))
        verified = 'echo "$tls" | grep -q "Verify return code: 0"'
        handshake = f"tls=$(timeout 10 openssl s_client -connect {target} -CAfile {tls.CA_CERT} 2>&1 </dev/null); "
        tls_ok = (
            _wait(handshake + verified, 15) + f'; {verified} && echo "$tls" | grep -q "Acceptable client certificate"'
        )
        checks.append((tls_ok, f"the TLS listener {cfg['docker_tcp_listen']} does not verify with the CA or demand "
                               "a client certificate"))  # fmt: skip
    answered = (
        "info=$(docker info --format '{{json .SecurityOptions}} live={{.LiveRestoreEnabled}}' 2>/dev/null) "
        '&& [ -n "$info" ]'
    )
    steps = " && ".join(f"{{ {cmd}; }} || {{ why={shlex.quote(why)}; false; }}" for cmd, why in checks)
    return _wait(answered, HEALTH_TIMEOUT) + "; why='docker info did not answer'; [ -n \"$info\" ] && " + steps


@operation()
def restart(
    cfg: dict[str, Any],
    reasons: list[str] | None = None,
    validate: bool = False,
    apparmor: bool = False,
    keep_running: bool = False,
):
    """Restart dockerd safely; gate it with ``_if`` (the operation itself always restarts).

    Under the host lock: validate (``dockerd --validate`` where the engine has it),
    restart, health-check (see :func:`health_script`). Healthy: keep these files as
    known-good and record their digest. Not healthy: restore the known-good files, start
    dockerd again, check that the restored daemon answers, and fail this host saying
    why and whether the restored daemon is healthy."""
    if reasons:
        logger.info(f"{host.print_prefix}dockerd restart: {'; '.join(reasons)}")
    restore = (
        f"{_restore_script()}; systemctl daemon-reload; systemctl reset-failed docker.service >/dev/null 2>&1; "
        "systemctl restart docker.service >/dev/null 2>&1; "
        f"{_wait('docker info >/dev/null 2>&1', HEALTH_TIMEOUT)}; "
        'if [ $restored = yes ]; then was="the previous configuration was restored"; '
        'else was="no whole known-good copy was found, so nothing was restored or deleted"; fi; '
        'if docker info >/dev/null 2>&1; then now="dockerd is active and answers"; '
        'else now="dockerd is NOT healthy ($(systemctl is-active docker.service))"; fi; '
    )
    # The daemon's own words on why it failed. journald may not have read dockerd's last
    # lines yet when systemctl returns, and the old daemon's shutdown logs "error" lines of
    # its own: wait up to 5 s for a line that names the configuration, else take any error.
    journal = 'journalctl -u docker.service --since "@$t0" --no-pager -o cat 2>/dev/null'
    fail = (
        'reason=""; i=0; while [ $i -lt 10 ]; do '
        f"reason=$({journal} | grep -m1 -iE 'unable to configure|directives|failed to start daemon|"
        "authorization plugin' | cut -c1-400); "
        '[ -n "$reason" ] && break; i=$((i+1)); sleep 0.5; done; '
        f"[ -n \"$reason\" ] || reason=$({journal} | grep -iE 'invalid|unknown|level=(error|fatal)' "
        "| tail -n1 | cut -c1-400); "
        + restore
        + 'echo "dockguard: dockerd did not come up healthy with the new configuration: ${why}${reason:+ ($reason)}'
        '; $was and $now" >&2; exit 1'
    )
    validate_cmd = (
        f'if ! out=$(dockerd --validate --config-file {DAEMON_JSON} 2>&1); then reason="$out"; '
        f"{_restore_script()}; "
        'echo "dockguard: dockerd --validate rejected the new configuration: $reason; the previous '
        'configuration was restored, dockerd was not restarted" >&2; exit 1; fi; '
        if validate
        else ""
    )
    # live-restore only protects containers if the daemon being stopped already has it:
    # turn it on by a reload (SIGHUP reloads live-restore) before restarting.
    live_restore_first = (
        "if [ \"$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)\" = false ]; then "
        "systemctl reload docker.service; "
        + _wait("[ \"$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)\" = true ]", 15)
        + "; fi; "
        if cfg["docker_live_restore"]
        else ""
    )
    yield StringCommand(
        hostlock.prefix()
        + "t0=$(date +%s); "
        + validate_cmd
        + "before=$(timeout 10 docker ps -q --no-trunc 2>/dev/null); "
        + "systemctl daemon-reload && "
        + live_restore_first
        + "systemctl reset-failed docker.service >/dev/null 2>&1; "
        "if systemctl restart docker.service && { " + health_script(cfg, apparmor, keep_running) + "; }; then "
        f"{_snapshot_script()} && {CONFIG_DIGEST} > {APPLIED}; "
        f"else {fail}; fi"
    )


@operation()
def enabled(live: dict[str, Any]):
    """docker.service starts at boot."""
    if live.get("enabled") == "enabled":
        host.noop("docker.service is enabled")
        return
    yield StringCommand(hostlock.prefix() + ("systemctl unmask docker.service; " if live.get(
        "enabled") == "masked" else "") + "systemctl enable docker.service")  # fmt: skip


@operation()
def legacy_dropin(present: bool):
    """The drop-in under the name dockguard used before (it sorted before other people's)."""
    if not present:
        host.noop("no drop-in under dockguard's old name")
        return
    yield StringCommand(hostlock.prefix() + f"rm -f {LEGACY_DROPIN}")


def supports_validate(live: dict[str, Any]) -> bool:
    """`dockerd --validate` exists from engine 23.0 (Debian 12's docker.io is 20.10)."""
    version = live.get("server_version") or live.get("engine_version") or ""
    try:
        return int(version.split(".")[0]) >= 23
    except ValueError:
        return False


def _dropped_keys(live: dict[str, Any], conf: dict[str, Any]) -> list[str]:
    current = _current_daemon_json(live)
    return sorted(k for k in current if k not in conf) if isinstance(current, dict) else []


def configure(ctx: Context) -> list:
    """CIS 2.2-2.18: daemon.json and the drop-in, then restart only if needed.
    Returns the operations that may change the host."""
    cfg = ctx.cfg
    live = live_state()
    plat = platform.current()
    selinux = selinux_labels(plat, cfg)
    conf = daemon_config(cfg, selinux)
    stopped = left_stopped(live, cfg)
    # Only a daemon on a host whose SELinux runs can report labelling in docker info.
    stale = restart_reasons(live, cfg, selinux and plat["selinux"]["mode"] in ("enforcing", "permissive"))
    if live.get("active") == "active" and apparmor_profile_missing(plat, cfg):
        stale.append("AppArmor is enabled but dockerd has not loaded its docker-default profile")
    kept = bridge_kept(live, cfg) if live.get("config_digest") == live.get("applied_digest") else None
    if kept:
        warn(f"CIS 2.2: {kept}")
        drift("2.2", kept)
    if stopped:
        warn(stopped)
        drift("2.x", stopped)
        stale = []
    elif stale:
        drift("2.x", "; ".join(stale), operation=RESTART_OP)
    keep = when(not live.get("known_good"), keep_known_good,
                name="dockerd: keep the current configuration to roll back to", live=live)  # fmt: skip
    changed = []
    if cfg["docker_userns_remap"] == "default":
        changed.append(userns.configure(cfg))
    if cfg["docker_tcp_listen"]:
        changed += tls.configure(cfg)
    argv, dropped = exec_start(live, cfg, conf)
    daemon_json = content.render("etc/docker/daemon.json.j2", daemon_json=render_daemon_json(cfg, selinux))
    dropin = content.render("etc/systemd/system/docker.service.d/dockguard.conf.j2",
                            exec_start=render_exec_start(argv, live))  # fmt: skip
    specs = {DAEMON_JSON: (daemon_json, "644"), DROPIN: (dropin, "644")}
    names = {DAEMON_JSON: DAEMON_JSON_OP, DROPIN: DROPIN_OP}
    if cfg["docker_seccomp_profile"] == "dockguard":
        specs = {SECCOMP_PROFILE: (content.render("etc/docker/seccomp/dockguard.json.j2"), "644"), **specs}
        names[SECCOMP_PROFILE] = "CIS 2.17: hardened seccomp profile"
    now = content.digests([*specs, LEGACY_DROPIN])
    if now.get(DROPIN) != content.sha256(dropin):
        for line in dropped:
            say(line)
            drift(line.split(":", 1)[0].removeprefix("CIS "), line.split(": ", 1)[1], DROPIN_OP)
    elif dropped:
        say("left in place and overridden by dockguard's drop-in: " + "; ".join(x.split(": ", 1)[1] for x in dropped))
    if now.get(DAEMON_JSON) != content.sha256(daemon_json):
        current = _current_daemon_json(live)
        if isinstance(current, str):
            drift("2.x", f"{current}: dockerd would not start with it", DAEMON_JSON_OP)
        for line in daemon_json_listeners(live):
            say(f"CIS 2.7: {line}: dockguard's daemon.json has no hosts")
            drift("2.7", f"{line}: dockguard's daemon.json has no hosts", DAEMON_JSON_OP)
        removed = _dropped_keys(live, conf)
        if removed:
            note = (
                f"{DAEMON_JSON} has keys dockguard does not set, which it replaces: {', '.join(removed)} "
                "(a copy is kept in /var/lib/dockguard/known-good; add them to docker_daemon_extra to keep them)"
            )
            warn(note)
            drift("2.x", note, DAEMON_JSON_OP)
    if not live.get("etc_writable") and any(now.get(p) != content.sha256(t) for p, (t, _) in specs.items()):
        raise HostRefused("/etc/docker is read-only (a read-only mount?): dockguard cannot write daemon.json; "
                          "make it writable, then run again")  # fmt: skip
    changed += content.files(specs, names)
    legacy = now.get(LEGACY_DROPIN) is not None
    changed.append(when(legacy, legacy_dropin, name="dockerd: drop-in under dockguard's old name removed",
                        present=legacy))  # fmt: skip
    if stopped:
        return [keep, *changed]
    enable = when(live.get("enabled") != "enabled", enabled, name="dockerd: docker.service enabled", live=live)
    from . import mac

    keep_running = bool(cfg["docker_live_restore"]) and not hiding_moves(live, cfg, conf)
    restarted = restart(
        name=RESTART_OP,
        cfg=cfg,
        reasons=stale or ["configuration changed"],
        validate=supports_validate(live),
        apparmor=platform.mac(plat, cfg) == "apparmor"
        and bool(plat["apparmor"]["profiles_readable"])
        and mac.apparmor_problem(plat) is None,
        keep_running=keep_running,
        _if=lambda: bool(stale) or any(op.did_change() for op in changed),
    )
    return [keep, *changed, enable, restarted]


def hiding_moves(live: dict[str, Any], cfg: dict[str, Any], conf: dict[str, Any]) -> bool:
    """The storage root changes with this run (allowed by docker_userns_allow_hiding): the
    containers of the old root are then not expected to run after the restart."""
    return bool(hiding_problems(live, cfg | {"docker_userns_allow_hiding": False}, conf, None)) or (
        live.get("server_version") is not None and userns_on(live) != bool(cfg["docker_userns_remap"])
    )


class HostRefused(Exception):
    """This host cannot be hardened as it is (deploy.py fails it alone, with this reason)."""
