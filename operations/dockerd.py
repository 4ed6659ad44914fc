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

import json
import shlex
from typing import Any

import gevent
from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import DeployError, FactProcessError
from pyinfra.context import ctx_host

from . import PerHost, content, drift, platform, settings, tls, userns

DAEMON_JSON = "/etc/docker/daemon.json"
DROPIN_DIR = "/etc/systemd/system/docker.service.d"
DROPIN = f"{DROPIN_DIR}/dockguard.conf"
SECCOMP_PROFILE = "/etc/docker/seccomp/dockguard.json"
STATE_DIR = "/var/lib/dockguard"
APPLIED = f"{STATE_DIR}/dockerd.applied"  # digest of the config files dockerd last started healthy with
KNOWN_GOOD = f"{STATE_DIR}/known-good"  # copies of those files, restored when a restart fails
# Every file whose change needs a dockerd restart; their digest is APPLIED.
CONFIG_FILES = (DAEMON_JSON, DROPIN, SECCOMP_PROFILE, tls.CA_CERT, tls.SERVER_CERT)
# The digest of the config files: the fact reads it, a healthy restart records it.
CONFIG_DIGEST = f"cat {' '.join(CONFIG_FILES)} 2>/dev/null | sha256sum | cut -d' ' -f1"
HEALTH_TIMEOUT = 60
RESTART_OP = "dockerd: restart when the config changed or the daemon does not match it"
DAEMON_JSON_OP = "CIS 2.x: /etc/docker/daemon.json content"

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


def exec_start(vendor_exec_start: str, cfg: dict[str, Any]) -> str:
    """The ExecStart of the drop-in: the vendor unit's command line, with the TCP
    listener added beside its -H fd://. Listeners live only here, never in daemon.json."""
    argv = shlex.split(vendor_exec_start)
    kept: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-H", "--host") and i + 1 < len(argv) and argv[i + 1].startswith("tcp://"):
            i += 2  # a TCP listener from elsewhere: dockguard owns those
            continue
        if a.startswith(("--host=tcp://", "-H=tcp://", "-Htcp://")):
            i += 1
            continue
        kept.append(a)
        i += 1
    if cfg["docker_tcp_listen"]:
        at = kept.index("fd://") + 1 if "fd://" in kept else 1
        kept[at:at] = ["-H", f"tcp://{cfg['docker_tcp_listen']}"]
    return " ".join(f'"{a}"' if any(c.isspace() for c in a) else a for a in kept)


def flag_conflicts(command_lines: dict[str, str], conf: dict[str, Any]) -> list[str]:
    """Options set both as dockerd flags (unit, /etc/default/docker, /etc/sysconfig/docker)
    and in daemon.json: dockerd refuses to start with such a pair."""
    out = []
    for source, line in command_lines.items():
        try:
            argv = shlex.split(line)
        except ValueError:
            argv = line.split()
        for arg in argv:
            if not arg.startswith("-") or arg in ("-H", "--host"):
                continue
            flag = arg.split("=", 1)[0]
            key = _FLAG_KEYS.get(flag, flag.lstrip("-"))
            if key in conf:
                out.append(f"{source} sets {flag}, which daemon.json sets as {key!r}")
    return out


# --------------------------------------------------------------------------- facts


class DockerdState(FactBase):
    """The daemon as it runs and as systemd starts it, in one command: unit state,
    the vendor and effective ExecStart, flags from /etc/default/docker and
    /etc/sysconfig/docker, the digest of the config files it was started with,
    and what ``docker info`` and the default bridge report."""

    def command(self) -> str:
        return (
            # One systemctl for the unit's state, files and main process.
            "unit=$(systemctl show -p ActiveState -p UnitFileState -p FragmentPath -p MainPID -p ExecStart "
            "docker.service 2>/dev/null); "
            'v() { echo "$unit" | sed -n "s/^$1=//p" | head -n1; }; '
            "echo active=$(v ActiveState); echo enabled=$(v UnitFileState); frag=$(v FragmentPath); "
            '[ -n "$frag" ] && [ -f "$frag" ] && echo vendor_exec=$(grep -m1 "^ExecStart=." "$frag" | cut -d= -f2-); '
            "echo exec=$(v ExecStart); "
            "[ -f /etc/default/docker ] && echo default_opts=$(. /etc/default/docker 2>/dev/null; echo $DOCKER_OPTS); "
            "[ -f /etc/sysconfig/docker ] && "
            "echo sysconfig_opts=$(. /etc/sysconfig/docker 2>/dev/null; echo $OPTIONS); "
            f"echo config_digest=$({CONFIG_DIGEST}); "
            f"[ -f {APPLIED} ] && echo applied_digest=$(cat {APPLIED}); "
            f"[ -f {KNOWN_GOOD}/manifest ] && echo known_good=yes; "
            "command -v dockerd >/dev/null 2>&1 && echo dockerd=$(command -v dockerd); "
            "pid=$(v MainPID); "
            '[ "${pid:-0}" -gt 0 ] && awk \'/^Max (open files|processes)/ {print "limit_" $2 "=" $(NF-1)}\' '
            "/proc/$pid/limits 2>/dev/null; "
            'if [ "$(v ActiveState)" = active ]; then '
            "echo info=$(timeout 30 docker info --format '{{json .}}' 2>/dev/null); "
            "echo bridge=$(timeout 30 docker network inspect bridge --format '{{json .Options}}' 2>/dev/null); "
            "fi; true"
        )

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        raw = dict(line.split("=", 1) for line in output if "=" in line)
        state: dict[str, Any] = {
            "active": raw.get("active", "") or "unknown",
            "enabled": raw.get("enabled", "") or "unknown",
            "vendor_exec": raw.get("vendor_exec") or None,
            "exec": _exec_argv(raw.get("exec", "")),
            "default_opts": raw.get("default_opts") or None,
            "sysconfig_opts": raw.get("sysconfig_opts") or None,
            "config_digest": raw.get("config_digest") or None,
            "applied_digest": raw.get("applied_digest") or None,
            "known_good": raw.get("known_good") == "yes",
            "dockerd": raw.get("dockerd") or None,
            # dockerd's own hard limits: a container's default ulimit cannot exceed them.
            "hard_limits": {
                name: (-1 if raw[key] == "unlimited" else int(raw[key]))
                for name, key in (("nofile", "limit_open"), ("nproc", "limit_processes"))
                if raw.get(key)
            },
            "server_version": None,
            "live_restore": None,
            "logging_driver": None,
            "security_options": [],
            "swarm": None,
            "containers": None,
            "running": None,
            "images": None,
            "root_dir": None,
            "bridge_icc": None,
        }
        try:
            info = json.loads(raw["info"]) if raw.get("info") else {}
            bridge = json.loads(raw["bridge"]) if raw.get("bridge") else {}
        except json.JSONDecodeError as e:
            raise FactProcessError(f"docker info / network inspect printed invalid JSON: {e}") from e
        if info.get("ServerVersion"):
            state.update(
                server_version=info["ServerVersion"],
                live_restore=info.get("LiveRestoreEnabled"),
                logging_driver=info.get("LoggingDriver"),
                security_options=info.get("SecurityOptions") or [],
                swarm=(info.get("Swarm") or {}).get("LocalNodeState"),
                containers=info.get("Containers"),
                running=info.get("ContainersRunning"),
                images=info.get("Images"),
                root_dir=info.get("DockerRootDir"),
            )
        if isinstance(bridge, dict) and "com.docker.network.bridge.enable_icc" in bridge:
            state["bridge_icc"] = bridge["com.docker.network.bridge.enable_icc"] == "true"
        return state


def _exec_argv(value: str) -> str | None:
    """`systemctl show -p ExecStart` prints '{ path=... ; argv[]=ARGS ; ... }': keep ARGS."""
    if "argv[]=" not in value:
        return value or None
    return value.split("argv[]=", 1)[1].split(" ;", 1)[0].strip()


def userns_on(live: dict[str, Any]) -> bool:
    return any(o.startswith("name=userns") for o in live.get("security_options") or [])


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
    if live["server_version"] is None:
        reasons.append("docker info did not answer")
        return reasons
    if live["bridge_icc"] is not None and live["bridge_icc"] != cfg["docker_icc"]:
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


def preflight_problems(live: dict[str, Any], cfg: dict[str, Any], plat: dict[str, Any] | None = None) -> list[str]:
    """What would make applying this host's settings break or hide something: refused
    before any host is touched."""
    plat = plat or {}
    present = bool(live) and live.get("dockerd") is not None
    if plat:
        out = platform.problems(plat, cfg, dockerd_present=present)
        if out or not present:
            return out
    elif not present:
        return ["dockerd is not installed (install docker.io or docker-ce first)"]
    out = []
    conf = daemon_config(cfg, selinux_labels(plat, cfg))
    lines = {}
    if live.get("vendor_exec"):
        lines["docker.service ExecStart"] = live["vendor_exec"]
    if live.get("default_opts"):
        lines["DOCKER_OPTS in /etc/default/docker"] = live["default_opts"]
    if live.get("sysconfig_opts"):
        lines["OPTIONS in /etc/sysconfig/docker"] = live["sysconfig_opts"]
    out += flag_conflicts(lines, conf)
    for name, limit in sorted(cfg["docker_default_ulimits"].items()):
        have = (live.get("hard_limits") or {}).get(name)
        if have is not None and have != -1 and (limit["hard"] == -1 or limit["hard"] > have):
            out.append(
                f"docker_default_ulimits: {name} hard limit {limit['hard']} is above dockerd's own hard limit "
                f"{have} on this host: every container start would fail"
            )
    if cfg["docker_live_restore"] and live.get("swarm") in ("active", "pending"):
        out.append("docker_live_restore: this host is a Swarm node; live-restore cannot be used with Swarm mode")
    if (
        live.get("server_version")
        and userns_on(live) != bool(cfg["docker_userns_remap"])
        and not cfg["docker_userns_allow_hiding"]
    ):
        hidden = []
        if live.get("containers"):
            hidden.append(f"{live['containers']} containers ({live.get('running') or 0} running)")
        if live.get("images"):
            hidden.append(f"{live['images']} images")
        if hidden:
            turn = "on" if cfg["docker_userns_remap"] else "off"
            out.append(
                f"docker_userns_remap: turning userns-remap {turn} moves dockerd to another storage root: "
                f"{' and '.join(hidden)} in {live.get('root_dir')} would disappear from view (running "
                "containers would be stopped); set docker_userns_allow_hiding: True for this host to accept that"
            )
    return out


# --------------------------------------------------------------------------- preflight

# DockerdState of every host, read once by the preflight before any host is
# prepared (nothing has changed yet, so it is still what configure() needs).
_live = PerHost(DockerdState)


def _read_state(h) -> tuple[dict[str, Any], dict[str, Any]]:
    with ctx_host.use(h):
        return h.get_fact(DockerdState), h.get_fact(platform.HostPlatform)


def preflight(hosts: list) -> None:
    """Runs once, before any host is prepared: read every host's dockerd state (in
    parallel), refuse settings that would break dockerd or hide containers, and make
    the CA on the operator's machine if any host listens on TCP."""
    greenlets = {h: gevent.spawn(_read_state, h) for h in hosts}
    gevent.joinall(list(greenlets.values()))
    lines, listening = [], []
    for h, g in sorted(greenlets.items(), key=lambda kv: kv[0].name):
        if g.exception is not None:
            raise g.exception
        live, plat = g.value
        _live.set(h.name, live)
        platform.remember(h.name, plat)
        cfg = settings.resolve(h.data.dict())
        lines += [f"  {h.name}: {p}" for p in preflight_problems(live, cfg, plat)]
        if cfg["docker_tcp_listen"]:
            listening.append(cfg)
    if lines:
        raise DeployError("dockguard refuses to run (nothing was changed on any host):\n" + "\n".join(lines))
    if listening:
        tls.ensure_ca(tls.pki_dir(listening[0]))


live_state = _live.get  # this host's DockerdState as the preflight read it
forget = _live.forget


# --------------------------------------------------------------------------- operations


@operation()
def keep_known_good(live: dict[str, Any]):
    """The first time dockguard touches a host, keep its current dockerd config
    files (or their absence) as the one to roll back to."""
    if live.get("known_good"):
        host.noop("a known-good dockerd configuration is kept")
        return
    yield StringCommand(_snapshot_script())


def _snapshot_script() -> str:
    """Copy every config file that exists (and list which did) into KNOWN_GOOD."""
    new = f"{KNOWN_GOOD}.new"
    return (
        f"rm -rf {new} && mkdir -p -m 700 {new} && : > {new}/manifest && i=0 && "
        f"for f in {' '.join(CONFIG_FILES)}; do "
        f'if [ -f "$f" ]; then cp -p "$f" {new}/$i && echo $i >> {new}/manifest || exit 1; fi; i=$((i+1)); done && '
        f"rm -rf {KNOWN_GOOD} && mv {new} {KNOWN_GOOD}"
    )


def _restore_script() -> str:
    """Put every config file back as kept (or remove it if it did not exist then)."""
    return (
        f"i=0; for f in {' '.join(CONFIG_FILES)}; do "
        f'if grep -qx $i {KNOWN_GOOD}/manifest; then cp -p {KNOWN_GOOD}/$i "$f"; else rm -f "$f"; fi; '
        "i=$((i+1)); done"
    )


def _wait(condition: str, seconds: int) -> str:
    """Shell: retry ``condition`` once a second, for at most ``seconds``."""
    return f"i=0; until {condition}; do i=$((i+1)); [ $i -ge {seconds} ] && break; sleep 1; done"


def health_script(cfg: dict[str, Any]) -> str:
    """Succeeds once `docker info` answers and shows the expected security state."""
    checks = [f'echo "$info" | grep -q "live={str(cfg["docker_live_restore"]).lower()}"']
    if cfg["docker_userns_remap"]:
        checks.append('echo "$info" | grep -q "name=userns"')
    else:
        checks.append('! echo "$info" | grep -q "name=userns"')
    answered = (
        "info=$(docker info --format '{{json .SecurityOptions}} live={{.LiveRestoreEnabled}}' 2>/dev/null) "
        '&& [ -n "$info" ]'
    )
    return _wait(answered, HEALTH_TIMEOUT) + "; " + " && ".join(checks)


@operation()
def restart(cfg: dict[str, Any], reasons: list[str] | None = None, validate: bool = False):
    """Restart dockerd safely; gate it with ``_if`` (the operation itself always restarts).

    Validate (``dockerd --validate`` where the engine has it), restart, health-check.
    Healthy: keep these files as known-good and record their digest. Not healthy:
    restore the known-good files, start dockerd again, and fail this host with the
    option dockerd rejected."""
    if reasons:
        logger.info(f"{host.print_prefix}dockerd restart: {'; '.join(reasons)}")
    fail = (
        'reason=$(journalctl -u docker.service --since "@$t0" --no-pager -o cat 2>/dev/null '
        "| grep -m1 -iE 'unable to configure|directives|invalid|unknown|failed to start daemon|error' "
        "| cut -c1-400); "
        f"{_restore_script()}; systemctl daemon-reload; systemctl reset-failed docker.service >/dev/null 2>&1; "
        "systemctl restart docker.service >/dev/null 2>&1; "
        f"{_wait('docker info >/dev/null 2>&1', HEALTH_TIMEOUT)}; "
        'echo "dockguard: dockerd did not come up healthy with the new configuration'
        "${reason:+: $reason}; the previous configuration was restored and dockerd is $(systemctl is-active "
        'docker.service)" >&2; exit 1'
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
        "t0=$(date +%s); "
        + validate_cmd
        + "systemctl daemon-reload && "
        + live_restore_first
        + "systemctl reset-failed docker.service >/dev/null 2>&1; "
        "if systemctl restart docker.service && { " + health_script(cfg) + "; }; then "
        f"{_snapshot_script()} && {CONFIG_DIGEST} > {APPLIED}; "
        f"else {fail}; fi"
    )


@operation()
def enabled(live: dict[str, Any]):
    """docker.service starts at boot."""
    if live.get("enabled") == "enabled":
        host.noop("docker.service is enabled")
        return
    yield "systemctl enable docker.service"


def supports_validate(live: dict[str, Any]) -> bool:
    """`dockerd --validate` exists from engine 23.0 (Debian 12's docker.io is 20.10)."""
    version = live.get("server_version") or ""
    try:
        return int(version.split(".")[0]) >= 23
    except ValueError:
        return False


def configure(cfg: dict[str, Any]) -> list:
    """CIS 2.2-2.18: daemon.json and the drop-in, then restart only if needed.
    Returns the operations that may change the host."""
    live = live_state()
    plat = platform.current()
    selinux = selinux_labels(plat, cfg)
    # Only a daemon on a host whose SELinux runs can report labelling in docker info.
    stale = restart_reasons(live, cfg, selinux and plat["selinux"]["mode"] in ("enforcing", "permissive"))
    if live.get("active") == "active" and apparmor_profile_missing(plat, cfg):
        stale.append("AppArmor is enabled but dockerd has not loaded its docker-default profile")
    if stale:
        drift("2.x", "; ".join(stale), operation=RESTART_OP)
    keep = keep_known_good(name="dockerd: keep the current configuration to roll back to", live=live)
    changed = []
    if cfg["docker_userns_remap"] == "default":
        changed.append(userns.configure(cfg))
    if cfg["docker_tcp_listen"]:
        changed += tls.configure(cfg)
    specs = {
        DAEMON_JSON: (content.render("etc/docker/daemon.json.j2", daemon_json=render_daemon_json(cfg, selinux)), "644"),
        DROPIN: (
            content.render(
                "etc/systemd/system/docker.service.d/dockguard.conf.j2",
                exec_start=exec_start(live.get("vendor_exec") or "/usr/sbin/dockerd -H fd://", cfg),
            ),
            "644",
        ),
    }
    names = {DAEMON_JSON: DAEMON_JSON_OP, DROPIN: "CIS 2.7: docker.service drop-in owns the listening sockets"}
    if cfg["docker_seccomp_profile"] == "dockguard":
        specs = {SECCOMP_PROFILE: (content.render("etc/docker/seccomp/dockguard.json.j2"), "644"), **specs}
        names[SECCOMP_PROFILE] = "CIS 2.17: hardened seccomp profile"
    changed += content.files(specs, names)
    enable = enabled(name="dockerd: docker.service enabled", live=live)
    restarted = restart(
        name=RESTART_OP,
        cfg=cfg,
        reasons=stale or ["configuration changed"],
        validate=supports_validate(live),
        _if=lambda: bool(stale) or any(op.did_change() for op in changed),
    )
    return [keep, *changed, enable, restarted]
