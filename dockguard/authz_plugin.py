#!/usr/bin/python3
"""dockguard-authz: a Docker authorization plugin (CIS 2.12) that refuses containers the policy
forbids. Python's standard library only: dockguard installs this file on the host as it is.

    /usr/bin/python3 dockguard-authz.py /etc/docker/dockguard-authz.json deny|allow

systemd hands it the listening socket (dockguard-authz.socket, /run/docker/plugins/
dockguard-authz.sock; LISTEN_FDS). dockerd POSTs every API request to /AuthZPlugin.AuthZReq
before it runs it; this plugin looks at container creation, updates and exec, and answers
{"Allow": false, "Msg": why} where the policy forbids the request. The policy (JSON, written
by dockguard from the inventory's docker_authz_policy) is read again when its file changes.

Where it cannot decide (the policy file unreadable or invalid, a body it cannot parse, an
error of its own) it answers as its failure mode (the second argument, from the unit, never
from the policy file it may fail to read) says: "deny" (the default) or "allow", logging a
warning each time. A creation request without a body is always denied:
an engine with CVE-2024-41110 or CVE-2026-34040 forwards an empty body for requests that
carry one, and an empty body is what those bypasses look like.

What it cannot see: BuildKit's gRPC (/grpc, /session: builds run what they like), exec and
attach after their first request, and bodies that are not JSON (dockerd forwards none).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

NAME = "dockguard-authz"
RULES = {
    "privileged": "--privileged (or exec --privileged)",
    "host_path": "a listed host path mounted",
    "host_pid": "--pid host",
    "host_network": "--network host",
    "host_ipc": "--ipc host",
    "host_uts": "--uts host",
    "capability": "a listed capability added",
    "seccomp_unconfined": "--security-opt seccomp=unconfined",
    "apparmor_unconfined": "--security-opt apparmor=unconfined",
    "no_memory_limit": "no memory limit (--memory)",
    "root_user": "running as root (--user, or the image's USER)",
    "writable_rootfs": "a writable root filesystem (--read-only)",
    "all_interfaces": "a port published on every interface (-p PORT:PORT without an address)",
}
DEFAULT_RULES = ("privileged", "host_path", "host_pid", "host_network", "host_ipc", "host_uts", "capability",
                 "seccomp_unconfined", "apparmor_unconfined")  # fmt: skip
DEFAULT_HOST_PATHS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/var/run/containerd",
                      "/run/docker/plugins", "/", "/etc", "/proc", "/sys", "/boot", "/dev", "/root",
                      "/var/lib/docker")  # fmt: skip
DEFAULT_CAPABILITIES = ("ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYS_BOOT", "DAC_READ_SEARCH",
                        "NET_ADMIN", "BPF", "PERFMON", "SYS_TIME")  # fmt: skip
_CREATE = re.compile(r"^(/v[0-9.]+)?/containers/create(\?.*)?$")
_UPDATE = re.compile(r"^(/v[0-9.]+)?/containers/[^/]+/update(\?.*)?$")
_EXEC = re.compile(r"^(/v[0-9.]+)?/containers/[^/]+/exec(\?.*)?$")
EXCEPTION_HINT = (
    "for an exception, add this image or a label of the container to docker_authz_policy's exceptions "
    "in the inventory (docs/containers.md)"
)


def policy_defaults(policy: dict) -> dict:
    """The policy with every default filled in."""

    def given(key, default):
        value = policy.get(key)
        return list(default if value is None else value)

    return {
        "rules": given("rules", DEFAULT_RULES),
        "host_paths": given("host_paths", DEFAULT_HOST_PATHS),
        "capabilities": [str(c).upper().removeprefix("CAP_") for c in given("capabilities", DEFAULT_CAPABILITIES)],
        "exceptions": given("exceptions", []),
    }


def _norm(path: str) -> str:
    path = "/" + path.strip("/") if path else "/"
    return os.path.normpath(path)


def _under(path: str, top: str) -> bool:
    path, top = _norm(path), _norm(top)
    return path == top if top == "/" else path == top or path.startswith(top + "/")


def _mount_sources(hc: dict) -> list[str]:
    out = []
    for bind in hc.get("Binds") or []:
        src = str(bind).split(":", 1)[0]
        if src.startswith("/"):  # a named volume has no leading slash
            out.append(src)
    for m in hc.get("Mounts") or []:
        if (m.get("Type") or "volume") == "bind" and m.get("Source"):
            out.append(str(m["Source"]))
    return out


def _opt(hc: dict, name: str) -> str | None:
    for o in hc.get("SecurityOpt") or []:
        o = str(o)
        for sep in ("=", ":"):
            if o.startswith(name + sep):
                return o[len(name) + 1 :]
    return None


def violations(policy: dict, body: dict, kind: str = "create") -> list[tuple[str, str]]:
    """[(rule, what)] the request breaks (kind: create, update or exec)."""
    rules = set(policy["rules"])
    out: list[tuple[str, str]] = []
    if kind == "exec":
        if "privileged" in rules and body.get("Privileged"):
            out.append(("privileged", "exec --privileged"))
        if "root_user" in rules and str(body.get("User") or "").split(":")[0] in ("root", "0"):
            out.append(("root_user", "exec --user root"))
        return out
    if kind == "update":
        if "no_memory_limit" in rules and "Memory" in body and (body.get("Memory") or 0) < 0:
            out.append(("no_memory_limit", "update removes the memory limit"))
        return out
    hc = body.get("HostConfig") or {}
    if "privileged" in rules and hc.get("Privileged"):
        out.append(("privileged", RULES["privileged"]))
    if "host_path" in rules:
        for src in _mount_sources(hc):
            hit = next((p for p in policy["host_paths"] if _under(src, p)), None)
            if hit:
                out.append(("host_path", f"host path {src} mounted (listed: {hit})"))
    for rule, key in (("host_pid", "PidMode"), ("host_network", "NetworkMode"), ("host_ipc", "IpcMode"),
                      ("host_uts", "UTSMode")):  # fmt: skip
        if rule in rules and hc.get(key) == "host":
            out.append((rule, RULES[rule]))
    if "capability" in rules:
        added = {str(c).upper().removeprefix("CAP_") for c in hc.get("CapAdd") or []}
        bad = sorted(added & set(policy["capabilities"]))
        if bad:
            out.append(("capability", "--cap-add " + ", ".join(bad)))
    if "seccomp_unconfined" in rules and _opt(hc, "seccomp") == "unconfined":
        out.append(("seccomp_unconfined", RULES["seccomp_unconfined"]))
    if "apparmor_unconfined" in rules and _opt(hc, "apparmor") == "unconfined":
        out.append(("apparmor_unconfined", RULES["apparmor_unconfined"]))
    if "no_memory_limit" in rules and not hc.get("Memory"):
        out.append(("no_memory_limit", RULES["no_memory_limit"]))
    if "root_user" in rules:
        user = str(body.get("User") or "").split(":")[0]
        if user in ("", "root", "0"):
            # An empty --user runs as the image's USER, which this request does not show: the
            # policy asks for an explicit non-root user.
            out.append(("root_user", "running as root" if user else "no --user (the image's USER is not checked)"))
    if "writable_rootfs" in rules and not hc.get("ReadonlyRootfs"):
        out.append(("writable_rootfs", RULES["writable_rootfs"]))
    if "all_interfaces" in rules:
        for port, binds in (hc.get("PortBindings") or {}).items():
            for b in binds or []:
                if (b or {}).get("HostIp") in (None, "", "0.0.0.0", "::"):
                    out.append(("all_interfaces", f"{port} published on every interface"))
        if hc.get("PublishAllPorts"):
            out.append(("all_interfaces", "-P publishes every exposed port on every interface"))
    return out


def excepted(policy: dict, body: dict) -> list[dict]:
    """The exceptions that match this creation request (by image name or digest, glob, or label)."""
    image = str(body.get("Image") or "")
    labels = body.get("Labels") or {}
    out = []
    for exc in policy["exceptions"]:
        if exc.get("image") and not fnmatch.fnmatchcase(image, exc["image"]):
            continue
        if exc.get("label"):
            key, _, value = str(exc["label"]).partition("=")
            if key not in labels or (value and str(labels[key]) != value):
                continue
        out.append(exc)
    return out


def decide(policy: dict, uri: str, method: str, body_b64: str | None) -> tuple[bool, str]:
    """(allow, message) for one request."""
    path = uri.split("?", 1)[0]
    kind = ("create" if _CREATE.match(path) else "update" if _UPDATE.match(path)
            else "exec" if _EXEC.match(path) else None)  # fmt: skip
    if method != "POST" or kind is None:
        return True, ""
    if not body_b64:
        return False, f"{NAME}: a container {kind} request without a body is refused (authorization bypasses send none)"
    try:
        body = json.loads(base64.b64decode(body_b64))
    except ValueError as e:
        raise ValueError(f"the request body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise ValueError("the request body is not a JSON object")
    broken = violations(policy, body, kind)
    if not broken:
        return True, ""
    if kind == "create":
        waived: set[str] = set()
        for exc in excepted(policy, body):
            waived |= set(exc.get("rules") or RULES)
        broken = [(r, w) for r, w in broken if r not in waived]
        if not broken:
            return True, ""
    what = "; ".join(f"rule {r}: {w}" for r, w in broken)
    image = f" (image {body.get('Image')})" if body.get("Image") else ""
    return False, f"{NAME}: denied{image}: {what}; {EXCEPTION_HINT}"


class Policy:
    """The policy file, read again when it changes; an unreadable one is remembered as an error."""

    def __init__(self, path: str, failure_mode: str = "deny") -> None:
        self.path = path
        self.lock = threading.Lock()
        self.stamp: tuple | None = None
        self.policy: dict | None = None
        self.error: str | None = None
        self.failure_mode = failure_mode

    def get(self) -> dict:
        with self.lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                if stamp != self.stamp:
                    with open(self.path, encoding="utf-8") as f:
                        raw = json.load(f)
                    if not isinstance(raw, dict):
                        raise ValueError("the policy is not a JSON object")
                    self.policy, self.error, self.stamp = policy_defaults(raw), None, stamp
            except (OSError, ValueError) as e:
                self.policy, self.error, self.stamp = None, f"the policy {self.path} cannot be read ({e})", None
            if self.policy is None:
                raise ValueError(self.error)
            return self.policy


class Handler(BaseHTTPRequestHandler):
    server_version = NAME
    protocol_version = "HTTP/1.1"  # keep-alive: dockerd reuses its connection
    policy: Policy

    def log_message(self, fmt, *args):  # the journal gets decisions and warnings only
        pass

    def _answer(self, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/Plugin.Activate":
            return self._answer({"Implements": ["authz"]})
        if self.path == "/AuthZPlugin.AuthZRes":
            return self._answer({"Allow": True})
        if self.path != "/AuthZPlugin.AuthZReq":
            self.send_error(404)
            return None
        try:
            req = json.loads(raw or b"{}")
            policy = self.policy.get()
            allow, msg = decide(policy, str(req.get("RequestUri") or ""), str(req.get("RequestMethod") or ""),
                                req.get("RequestBody"))  # fmt: skip
        except Exception as e:  # noqa: BLE001 - every failure is answered as the failure mode says
            mode = self.policy.failure_mode
            print(f"{NAME}: warning: cannot decide ({e}): failure_mode {mode}", file=sys.stderr, flush=True)
            allow = mode == "allow"
            msg = "" if allow else f"{NAME}: cannot decide ({e}); failure_mode deny refuses the request"
        if not allow:
            print(msg, file=sys.stderr, flush=True)
        return self._answer({"Allow": allow, "Msg": msg})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(policy_path: str, failure_mode: str = "deny", sock: socket.socket | None = None,
          path: str | None = None) -> Server:  # fmt: skip
    """The server on systemd's socket (LISTEN_FDS), or ``sock``, or a new socket at ``path``."""
    handler = type("BoundHandler", (Handler,), {"policy": Policy(policy_path, failure_mode)})
    if sock is None and path is None:
        if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
            raise SystemExit(f"{NAME}: start me from dockguard-authz.socket (no LISTEN_FDS for this process)")
        sock = socket.socket(fileno=3)
    server = Server(path or "", handler, bind_and_activate=sock is None)
    if sock is not None:
        server.socket.close()
        server.socket = sock
    return server


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("deny", "allow"):
        print(f"usage: {argv[0]} POLICY.json deny|allow", file=sys.stderr)
        return 64
    server = serve(argv[1], argv[2])
    print(f"{NAME}: serving with the policy {argv[1]}, failure mode {argv[2]}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
