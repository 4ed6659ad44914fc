"""The container audit: every container on a host (running or not) against the CIS Docker
Benchmark 1.6.0 checks of sections 4 and 5 that ``docker inspect`` and the host can answer.

Workloads are the operator's business: these are findings with a severity, never drift
that ``--fix`` touches. Each (container, check) is PASS, FAIL (a finding) or N/A, always
with its reason. 4.5 (content trust) is a documented exception: Docker retired it.

    from dockguard import containers
    containers.audit(fact)           # the ContainerAudit fact of one host -> [result]
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Check:
    cis: str
    title: str
    severity: str


CHECKS: tuple[Check, ...] = (
    Check("4.1", "a user for the container (not root)", "medium"),
    Check("4.6", "HEALTHCHECK in the image", "low"),
    Check("5.1", "AppArmor profile (not unconfined)", "high"),
    Check("5.2", "SELinux security options", "medium"),
    Check("5.3", "no capabilities added", "high"),
    Check("5.4", "not privileged", "high"),
    Check("5.5", "no sensitive host directory mounted", "high"),
    Check("5.7", "no privileged host port", "medium"),
    Check("5.9", "host network namespace not shared", "high"),
    Check("5.10", "memory limited", "medium"),
    Check("5.11", "CPU priority set", "low"),
    Check("5.12", "root filesystem read-only", "medium"),
    Check("5.13", "ports bound to one host interface", "medium"),
    Check("5.14", "restart policy on-failure, at most 5", "low"),
    Check("5.15", "host PID namespace not shared", "high"),
    Check("5.16", "host IPC namespace not shared", "high"),
    Check("5.17", "no host device", "high"),
    Check("5.19", "no shared mount propagation", "medium"),
    Check("5.20", "host UTS namespace not shared", "medium"),
    Check("5.21", "seccomp not unconfined", "high"),
    Check("5.24", "default cgroup parent", "low"),
    Check("5.25", "no new privileges", "medium"),
    Check("5.26", "health check", "low"),
    Check("5.28", "PID limit", "medium"),
    Check("5.29", "not on the default bridge", "low"),
    Check("5.30", "host user namespace not shared", "high"),
    Check("5.31", "Docker socket not mounted", "high"),
)
BY_CIS = {c.cis: c for c in CHECKS}
EXCEPTIONS = {
    "4.5": "content trust: Docker retired Docker Content Trust (notary.docker.io shuts down on 2026-12-08); "
    "verify images with Sigstore/cosign or Notation instead (docs/containers.md)",
}
# CIS 5.5: host directories a container must not mount (the directory or anything under it).
SENSITIVE = ("/", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sys", "/usr", "/var/lib/docker")
SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
           "/var/run/containerd/containerd.sock")  # fmt: skip
# Capabilities that amount to root on the host: a finding of the highest severity whoever adds them.
ROOTLIKE = {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_BOOT"}


def _caps(values) -> list[str]:
    return sorted({str(v).upper().removeprefix("CAP_") for v in values or []})


def _opts(container: dict) -> list[str]:
    return [str(o) for o in (container.get("HostConfig") or {}).get("SecurityOpt") or []]


def _opt(container: dict, name: str) -> str | None:
    """A --security-opt value ("seccomp=unconfined" or the old "seccomp:unconfined")."""
    for o in _opts(container):
        for sep in ("=", ":"):
            if o.startswith(name + sep):
                return o[len(name) + 1 :]
        if o == name:
            return "true"
    return None


def _binds(container: dict) -> list[dict]:
    return [m for m in container.get("Mounts") or [] if m.get("Type") == "bind"]


def _host_ports(container: dict) -> list[tuple[str, str, str]]:
    """[(container port, host IP, host port)] the container publishes (configured or bound)."""
    out = []
    hc = (container.get("HostConfig") or {}).get("PortBindings") or {}
    live = (container.get("NetworkSettings") or {}).get("Ports") or {}
    for ports in (hc, live):
        for cport, binds in ports.items():
            for b in binds or []:
                item = (cport, b.get("HostIp") or "", str(b.get("HostPort") or ""))
                if item not in out:
                    out.append(item)
    return out


def _user(container: dict) -> str:
    return str((container.get("Config") or {}).get("User") or "")


def _root_user(user: str) -> bool:
    name = user.split(":", 1)[0]
    return name in ("", "root", "0")


def _healthcheck(config: dict | None) -> bool:
    test = ((config or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def _check(c: Check, container: dict, image: dict | None, host: dict) -> tuple[str, str]:
    """(status, reason) of one check for one container."""
    hc = container.get("HostConfig") or {}
    cis = c.cis
    if cis == "4.1":
        user = _user(container)
        if _root_user(user):
            where = "the image sets no USER" if not user else f"it runs as {user!r}"
            return "FAIL", f"runs as root ({where})"
        return "PASS", f"runs as {user!r}"
    if cis == "4.6":
        if image is None:
            return "N/A", "its image could not be read"
        if _healthcheck(image.get("Config") or {}):
            return "PASS", ""
        name = (container.get("Config") or {}).get("Image") or image.get("Id", "")[:19]
        return "FAIL", f"image {name} has no HEALTHCHECK"
    if cis == "5.1":
        if not host.get("apparmor"):
            return "N/A", "dockerd applies no AppArmor profiles on this host (AppArmor not enabled)"
        profile = container.get("AppArmorProfile") or ""
        if hc.get("Privileged") and not profile:
            return "FAIL", "privileged: no AppArmor profile applies"
        if profile in ("", "unconfined") or _opt(container, "apparmor") == "unconfined":
            return "FAIL", f"AppArmor profile is {profile or 'none'}"
        return "PASS", f"profile {profile}"
    if cis == "5.2":
        if not host.get("selinux"):
            return "N/A", "dockerd applies no SELinux labels on this host (SELinux not enabled)"
        if _opt(container, "label") in ("disable", "disabled") or not container.get("ProcessLabel"):
            return "FAIL", "no SELinux label (label=disable, or none applied)"
        return "PASS", container.get("ProcessLabel", "")
    if cis == "5.3":
        added = _caps(hc.get("CapAdd"))
        if added:
            return "FAIL", "capabilities added: " + ", ".join(added)
        return "PASS", "dropped: " + (", ".join(_caps(hc.get("CapDrop"))) or "none")
    if cis == "5.4":
        return ("FAIL", "runs --privileged") if hc.get("Privileged") else ("PASS", "")
    if cis == "5.5":
        bad = []
        for m in _binds(container):
            src = posixpath.normpath(m.get("Source") or "")
            if src in SOCKETS:
                continue  # 5.31
            if any(src == top or (top != "/" and src.startswith(top + "/")) for top in SENSITIVE):
                bad.append(f"{src} ({'read-write' if m.get('RW') else 'read-only'})")
        return ("FAIL", "host directories mounted: " + ", ".join(bad)) if bad else ("PASS", "")
    if cis == "5.7":
        low = sorted({hp for _, _, hp in _host_ports(container) if hp.isdigit() and 0 < int(hp) < 1024}, key=int)
        return ("FAIL", "host ports below 1024: " + ", ".join(low)) if low else ("PASS", "")
    if cis == "5.9":
        return ("FAIL", "--network host") if hc.get("NetworkMode") == "host" else ("PASS", "")
    if cis == "5.10":
        return ("FAIL", "no memory limit") if not hc.get("Memory") else ("PASS", f"{hc['Memory']} bytes")
    if cis == "5.11":
        shares = hc.get("CpuShares") or 0
        if shares in (0, 1024) and not hc.get("NanoCpus") and not hc.get("CpuQuota"):
            return "FAIL", "no CPU shares or limit (the default 1024)"
        return "PASS", f"cpu shares {shares}" if shares else "CPU limited"
    if cis == "5.12":
        return ("PASS", "") if hc.get("ReadonlyRootfs") else ("FAIL", "root filesystem is writable")
    if cis == "5.13":
        wide = sorted({f"{hp}->{cp}" for cp, ip, hp in _host_ports(container) if ip in ("", "0.0.0.0", "::")})
        return ("FAIL", "published on every interface: " + ", ".join(wide)) if wide else ("PASS", "")
    if cis == "5.14":
        policy = hc.get("RestartPolicy") or {}
        name, count = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
        if name in ("always", "unless-stopped"):
            return "FAIL", f"restart policy {name}"
        if name == "on-failure" and not 0 < count <= 5:
            return "FAIL", f"on-failure with {count or 'unlimited'} retries"
        return "PASS", f"restart policy {name}" + (f":{count}" if name == "on-failure" else "")
    if cis == "5.15":
        return ("FAIL", "--pid host") if hc.get("PidMode") == "host" else ("PASS", "")
    if cis == "5.16":
        return ("FAIL", "--ipc host") if hc.get("IpcMode") == "host" else ("PASS", "")
    if cis == "5.17":
        devices = [d.get("PathOnHost", "") for d in hc.get("Devices") or []]
        return ("FAIL", "host devices: " + ", ".join(devices)) if devices else ("PASS", "")
    if cis == "5.19":
        shared = [m.get("Destination", "") for m in container.get("Mounts") or []
                  if m.get("Propagation") in ("shared", "rshared")]  # fmt: skip
        return ("FAIL", "shared propagation: " + ", ".join(shared)) if shared else ("PASS", "")
    if cis == "5.20":
        return ("FAIL", "--uts host") if hc.get("UTSMode") == "host" else ("PASS", "")
    if cis == "5.21":
        if _opt(container, "seccomp") == "unconfined":
            return "FAIL", "seccomp=unconfined"
        if hc.get("Privileged"):
            return "FAIL", "privileged: no seccomp profile applies"
        return "PASS", ""
    if cis == "5.24":
        parent = hc.get("CgroupParent") or ""
        return ("FAIL", f"cgroup parent {parent}") if parent else ("PASS", "")
    if cis == "5.25":
        own = _opt(container, "no-new-privileges")
        if own is not None:
            return ("PASS", "set on the container") if own == "true" else ("FAIL", "no-new-privileges=false")
        daemon = host.get("daemon_json")
        if isinstance(daemon, dict) and daemon.get("no-new-privileges") is True:
            return "PASS", "the daemon's default (daemon.json)"
        return "FAIL", "not set on the container nor as the daemon's default"
    if cis == "5.26":
        config = container.get("Config") or {}
        if _healthcheck(config):
            return "PASS", ""
        return "FAIL", "no health check (neither the container nor its image)"
    if cis == "5.28":
        limit = hc.get("PidsLimit")
        return ("PASS", f"at most {limit} processes") if limit and limit > 0 else ("FAIL", "no PID limit")
    if cis == "5.29":
        mode = hc.get("NetworkMode") or "default"
        return ("FAIL", "on the default bridge (docker0)") if mode in ("default", "bridge") else ("PASS", mode)
    if cis == "5.30":
        return ("FAIL", "--userns host") if hc.get("UsernsMode") == "host" else ("PASS", "")
    if cis == "5.31":
        socks = [posixpath.normpath(m.get("Source") or "") for m in _binds(container)]
        socks = [s for s in socks if s in SOCKETS]
        return ("FAIL", "mounts " + ", ".join(socks)) if socks else ("PASS", "")
    raise KeyError(cis)


def audit(fact: dict[str, Any]) -> list[dict[str, Any]]:
    """[{container, id, image, running, results: [{cis, title, severity, status, reason}]}] for
    one host's ContainerAudit fact."""
    security = fact.get("security")
    if security is not None:  # what the daemon applies (docker info), else what the kernel has
        mac = {m: any(f"name={m}" in str(o) for o in security) for m in ("apparmor", "selinux")}
    else:
        mac = {m: bool(fact.get(m)) for m in ("apparmor", "selinux")}
    host = {**mac, "daemon_json": fact.get("daemon_json")}
    out = []
    for ct in fact.get("containers") or []:
        image = (fact.get("images") or {}).get(ct.get("Image", ""))
        results = []
        for c in CHECKS:
            status, reason = _check(c, ct, image, host)
            results.append({"cis": c.cis, "title": c.title, "severity": c.severity, "status": status,
                            "reason": reason})  # fmt: skip
        out.append({
            "container": (ct.get("Name") or "").lstrip("/") or ct.get("Id", "")[:12],
            "id": ct.get("Id", "")[:12],
            "image": (ct.get("Config") or {}).get("Image") or ct.get("Image", ""),
            "running": bool((ct.get("State") or {}).get("Running")),
            "results": results,
        })  # fmt: skip
    return sorted(out, key=lambda c: c["container"])


def findings(containers: list[dict[str, Any]], at_least: str = "low") -> list[dict[str, Any]]:
    """The FAILs of severity ``at_least`` or worse, flat: [{container, cis, severity, reason}]."""
    worst = SEVERITIES[: SEVERITIES.index(at_least) + 1]
    return [
        {"container": ct["container"], **r}
        for ct in containers
        for r in ct["results"]
        if r["status"] == "FAIL" and r["severity"] in worst
    ]


# --------------------------------------------------------------------------- the fleet


def run(inventory: str, limit: list[str]) -> dict[str, Any]:
    """Audit every container of every host of ``inventory`` (or of ``limit``): pyinfra runs
    containers_deploy.py (one fact per host, nothing changed). A host whose audit did not come
    back is ``unchecked``, never clean."""
    import os
    import subprocess
    import tempfile

    from . import PACKAGE, ROOT, cli, fleet

    try:
        names, unmatched = cli.select_hosts(fleet.load(inventory), limit)
    except Exception as e:  # an inventory that does not load: nothing was checked
        return {"inventory": inventory, "errors": [f"the inventory could not be loaded: {cli._why(e)}"], "hosts": {}}
    errors = [f"--limit {p!r} matches no host or group of the inventory" for p in unmatched]
    if not names:
        errors.append("no host to check: " + ("--limit matches no host" if limit else "the inventory has no hosts"))
    if errors:
        return {"inventory": inventory, "errors": errors, "hosts": {}}
    with tempfile.TemporaryDirectory(prefix="dockguard-containers-") as out_dir:
        env = dict(os.environ, PYINFRA_PROGRESS="off", DOCKGUARD_CONTAINERS_DIR=out_dir)
        cmd = [cli.PYINFRA, "-y", *[a for n in limit for a in ("--limit", n)], inventory,
               str(PACKAGE / "containers_deploy.py")]  # fmt: skip
        r = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=3600)  # fmt: skip
        found, unreadable = cli.read_host_files(
            out_dir, lambda f, e: f"the audit of {f.stem} could not be read ({e}): that host counts as unchecked"
        )
        errors += unreadable
    hosts: dict[str, Any] = {}
    for name in names:
        if name in found:
            hosts[name] = {"status": "checked", "source": found[name]["source"], "errors": [],
                           "containers": found[name]["containers"]}  # fmt: skip
        else:
            why = cli._host_errors(r.stderr, name) or ["the host was not checked (unreachable?): see pyinfra's output"]
            hosts[name] = {"status": "unchecked", "source": None, "errors": why, "containers": []}
    return {"inventory": inventory, "errors": errors, "hosts": hosts}


def exit_code(result: dict[str, Any], fail_on: str = "low") -> int:
    """0: every host checked, no finding of ``fail_on`` or worse; 2: findings; 1: a host (or
    the inventory) was not checked (dockguard's exit codes)."""
    if result["errors"] or any(h["status"] != "checked" for h in result["hosts"].values()):
        return 1
    if any(findings(h["containers"], fail_on) for h in result["hosts"].values()):
        return 2
    return 0


def text(result: dict[str, Any], fail_on: str = "low") -> str:
    lines = [f"dockguard container audit (CIS 4, 5): {result['inventory']}"]
    lines += [f"error: {e}" for e in result["errors"]]
    for name, h in sorted(result["hosts"].items()):
        if h["status"] != "checked":
            lines.append(f"{name}: UNCHECKED")
            lines += [f"    {e}" for e in h["errors"]]
            continue
        source = " (read from the disk: the daemon did not answer)" if h["source"] == "disk" else ""
        found = findings(h["containers"], fail_on)
        lines.append(f"{name}: {len(h['containers'])} containers, {len(found)} findings{source}")
        for ct in h["containers"]:
            fails = [r for r in ct["results"] if r["status"] == "FAIL" and r["severity"] in
                     SEVERITIES[: SEVERITIES.index(fail_on) + 1]]  # fmt: skip
            state = "running" if ct["running"] else "stopped"
            lines.append(f"  {ct['container']} ({ct['image']}, {state}): {len(fails) or 'no'} findings")
            lines += [f"    CIS {r['cis']:<5} {r['severity']:<6} {r['title']}: {r['reason']}" for r in fails]
    lines.append("not audited: CIS " + "; ".join(f"{k} ({v})" for k, v in EXCEPTIONS.items()))
    lines.append(f"exit {exit_code(result, fail_on)}")
    return "\n".join(lines)


def junit(result: dict[str, Any]) -> str:
    """JUnit XML: a suite per host, a case per container and check (a finding fails it; N/A is
    skipped with its reason; an unchecked host is one case in error)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="dockguard container audit")
    for name, h in sorted(result["hosts"].items()):
        suite = ET.SubElement(root, "testsuite", name=f"containers[{name}]")
        cases = 0
        if h["status"] != "checked":
            case = ET.SubElement(suite, "testcase", classname=f"containers.{name}", name="audit")
            ET.SubElement(case, "error", message="; ".join(h["errors"])[:500])
            cases = 1
        for ct in h["containers"]:
            for r in ct["results"]:
                case = ET.SubElement(suite, "testcase", classname=f"containers.{name}.{ct['container']}",
                                     name=f"cis_{r['cis']} {r['title']} [{ct['container']}@{name}]")  # fmt: skip
                if r["status"] == "FAIL":
                    ET.SubElement(case, "failure", message=f"{r['severity']}: {r['reason']}")
                elif r["status"] == "N/A":
                    ET.SubElement(case, "skipped", message=r["reason"])
                cases += 1
        suite.set("tests", str(cases))
    return ET.tostring(root, encoding="unicode")


def markdown(result: dict[str, Any]) -> str:
    """The report's containers section: per host, per container, each finding with its reason."""
    lines = ["Containers (CIS sections 4 and 5: findings about workloads, never changed by dockguard):", ""]
    lines += [f"- error: {e}" for e in result["errors"]]
    for name, h in sorted(result["hosts"].items()):
        if h["status"] != "checked":
            lines.append(f"- **{name}**: UNCHECKED: {'; '.join(h['errors'])}")
            continue
        if not h["containers"]:
            lines.append(f"- **{name}**: no containers")
            continue
        lines += [
            "",
            f"**{name}**" + (" (read from the disk: the daemon did not answer)" if h["source"] == "disk" else ""),
            "",  # fmt: skip
            "| container | image | CIS | severity | check | finding |",
            "|---|---|---|---|---|---|",
        ]
        for ct in h["containers"]:
            fails = [r for r in ct["results"] if r["status"] == "FAIL"]
            if not fails:
                lines.append(f"| {ct['container']} | {ct['image']} | | | | no findings |")
            for r in fails:
                reason = r["reason"].replace("|", "\\|")
                lines.append(f"| {ct['container']} | {ct['image']} | {r['cis']} | {r['severity']} | {r['title']} "
                             f"| {reason} |")  # fmt: skip
    lines += ["", "Not audited: " + "; ".join(f"CIS {k}: {v}" for k, v in EXCEPTIONS.items())]
    return "\n".join(lines)
