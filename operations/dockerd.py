"""dockerd (CIS Docker Benchmark 1.6.0, section 2): daemon.json and the daemon's live state.

Facts live beside the operations that use them. The daemon is restarted only
when daemon.json changed in this run, or when the running daemon does not
match the file (an interrupted earlier run, a hand-made change, a stopped
daemon): see ``restart_reasons``.
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import FactProcessError
from pyinfra.operations import files

from . import TEMPLATES

DAEMON_JSON = "/etc/docker/daemon.json"
APPLIED = "/var/lib/dockguard/dockerd.applied"  # sha256 of daemon.json dockerd was last started with
HEALTH_TIMEOUT = 60


def daemon_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The daemon.json content for one host's settings."""
    conf: dict[str, Any] = {
        "icc": cfg["docker_icc"],
        "log-level": cfg["docker_log_level"],
        "no-new-privileges": cfg["docker_no_new_privileges"],
        "live-restore": cfg["docker_live_restore"],
        "userland-proxy": cfg["docker_userland_proxy"],
        "log-driver": cfg["docker_log_driver"],
    }
    if cfg["docker_log_driver"] in ("json-file", "local"):
        # dockerd rejects non-string log-opts values.
        conf["log-opts"] = {
            "max-size": cfg["docker_log_max_size"],
            "max-file": str(cfg["docker_log_max_file"]),
        }
    return conf


def render_daemon_json(cfg: dict[str, Any]) -> str:
    return json.dumps(daemon_config(cfg), indent=2, sort_keys=True)


class DockerdState(FactBase):
    """The daemon as it runs: unit state, the config it was started with, and
    what ``docker info`` and the default bridge report. One command."""

    def command(self) -> str:
        return (
            "echo active=$(systemctl is-active docker.service 2>/dev/null); "
            "echo enabled=$(systemctl is-enabled docker.service 2>/dev/null); "
            f"[ -f {DAEMON_JSON} ] && echo config_sha=$(sha256sum < {DAEMON_JSON} | cut -d' ' -f1); "
            f"[ -f {APPLIED} ] && echo applied_sha=$(cat {APPLIED}); "
            "if command -v docker >/dev/null 2>&1 && systemctl -q is-active docker.service; then "
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
            "config_sha": raw.get("config_sha") or None,
            "applied_sha": raw.get("applied_sha") or None,
            "server_version": None,
            "live_restore": None,
            "logging_driver": None,
            "security_options": [],
            "bridge_icc": None,
        }
        try:
            info = json.loads(raw["info"]) if raw.get("info") else {}
            bridge = json.loads(raw["bridge"]) if raw.get("bridge") else {}
        except json.JSONDecodeError as e:
            raise FactProcessError(f"docker info / network inspect printed invalid JSON: {e}") from e
        if info.get("ServerVersion"):
            state["server_version"] = info["ServerVersion"]
            state["live_restore"] = info.get("LiveRestoreEnabled")
            state["logging_driver"] = info.get("LoggingDriver")
            state["security_options"] = info.get("SecurityOptions") or []
        if isinstance(bridge, dict) and "com.docker.network.bridge.enable_icc" in bridge:
            state["bridge_icc"] = bridge["com.docker.network.bridge.enable_icc"] == "true"
        return state


def restart_reasons(live: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Why the running daemon does not match what this host should run (empty: it does).

    The file itself is compared by the template operation; this compares the
    *running* daemon, so a run interrupted between writing daemon.json and the
    restart is healed by the next run."""
    if not live:
        return ["dockerd state unknown"]
    if live["active"] != "active":
        return [f"dockerd is {live['active']}"]
    reasons = []
    if live["config_sha"] != live["applied_sha"]:
        reasons.append("daemon.json differs from the one dockerd was last started with")
    if live["server_version"] is None:
        reasons.append("docker info did not answer")
        return reasons
    if live["bridge_icc"] is not None and live["bridge_icc"] != cfg["docker_icc"]:
        reasons.append(f"default bridge runs with enable_icc={str(live['bridge_icc']).lower()}")
    if live["live_restore"] != cfg["docker_live_restore"]:
        reasons.append(f"dockerd runs with live-restore={str(live['live_restore']).lower()}")
    if live["logging_driver"] != cfg["docker_log_driver"]:
        reasons.append(f"dockerd runs with log-driver={live['logging_driver']}")
    return reasons


@operation()
def restart(reasons: list[str] | None = None):
    """Restart dockerd, wait until it answers, and record the config it runs with.

    Gate it with ``_if``: the operation itself always restarts."""
    if reasons:
        logger.info(f"{host.print_prefix}dockerd restart: {'; '.join(reasons)}")
    yield StringCommand(
        "systemctl reset-failed docker.service >/dev/null 2>&1; "
        "systemctl restart docker.service || exit 1; "
        f"i=0; until docker info >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge {HEALTH_TIMEOUT} ]; then "
        f"echo 'dockguard: dockerd did not answer {HEALTH_TIMEOUT}s after restart' >&2; exit 1; fi; "
        "sleep 1; done; "
        f"mkdir -p {APPLIED.rsplit('/', 1)[0]} && sha256sum < {DAEMON_JSON} | cut -d' ' -f1 > {APPLIED}"
    )


@operation()
def enabled(live: dict[str, Any]):
    """docker.service starts at boot."""
    if live.get("enabled") == "enabled":
        host.noop("docker.service is enabled")
        return
    yield "systemctl enable docker.service"


def configure(cfg: dict[str, Any]) -> None:
    """CIS 2.2, 2.3, 2.13, 2.14, 2.15, 2.16: daemon.json, then restart only if needed."""
    live = host.get_fact(DockerdState)
    stale = restart_reasons(live, cfg)
    content = files.template(
        name="CIS 2.x: /etc/docker/daemon.json content",
        src=str(TEMPLATES / "etc/docker/daemon.json.j2"),
        dest=DAEMON_JSON,
        daemon_json=render_daemon_json(cfg),
    )
    enabled(name="dockerd: docker.service enabled", live=live)
    restart(
        name="dockerd: restart when the config changed or the daemon does not match it",
        reasons=stale or ["daemon.json changed"],
        _if=lambda: content.did_change() or bool(stale),
    )
