"""dockguard-authz's cost: latency per Docker API call without and with the plugin, and the
plugin's peak memory, on one lab host (default: the first Debian 13 container host).

    .venv/bin/python bench/authz.py [--host dh2] [--calls 1000] [--out bench/authz.json]

For each state (plugin off, then on: dockguard applies the host with and without
docker_authz_policy), a Python client on the host itself sends CALLS requests of each kind
straight to /var/run/docker.sock (no docker CLI start-up in the figure) and times each:
``inspect`` (GET /containers/ID/json) and ``create`` (POST /containers/create, then the
container is removed, not timed). It prints the median and p99 of each, the difference the
plugin makes, and the plugin's peak resident memory (VmHWM). The host is left as it was found
(plugin off). Figures go to --out as JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path("/var/lib/dockguard-lab")
CLIENT = r"""
import http.client, json, socket, statistics, sys, time
calls = int(sys.argv[1])
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/var/run/docker.sock")
c = C("docker")
def call(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status >= 300: raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None
target = call("POST", "/containers/create", {"Image": "keep:me", "Cmd": ["true"]})["Id"]
out = {}
for kind in ("inspect", "create"):
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        if kind == "inspect":
            call("GET", f"/containers/{target}/json")
            times.append(time.perf_counter() - t)
        else:
            cid = call("POST", "/containers/create", {"Image": "keep:me", "Cmd": ["true"]})["Id"]
            times.append(time.perf_counter() - t)
            call("DELETE", f"/containers/{cid}?force=1")
    times.sort()
    out[kind] = {"median_ms": round(statistics.median(times) * 1000, 3),
                 "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 3)}
call("DELETE", f"/containers/{target}?force=1")
print(json.dumps(out))
"""


def ssh(host: str, command: str, stdin: str | None = None) -> str:
    r = subprocess.run(["ssh", "-F", str(STATE / "ssh" / "config"), host, command], input=stdin,
                       capture_output=True, text=True, timeout=3600)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"{host}: `{command[:80]}` exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def apply(host: str, policy: bool) -> None:
    inventory = ROOT / f"inventory/bench_authz_{host}.py"
    extra = {host: {"docker_authz_policy": {}}} if policy else {}
    inventory.write_text(
        "import json\nexec(open('inventory/lab.py').read())\n"
        f"_extra = json.loads({json.dumps(json.dumps(extra))})\n"
        "lab_containers = [(n, {**d, **_extra.get(n, {})}) for n, d in lab_containers]\n"
        "lab = [h[0] for h in lab_containers + lab_vms]\n"
    )
    try:
        r = subprocess.run([str(ROOT / ".venv/bin/pyinfra"), "-y", "--limit", host, str(inventory.relative_to(ROOT)),
                            "deploy.py"], cwd=ROOT, capture_output=True, text=True, timeout=1800)  # fmt: skip
    finally:
        inventory.unlink()
    if r.returncode != 0:
        raise SystemExit(f"apply ({'with' if policy else 'without'} the policy) failed: {r.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--out", default=str(ROOT / "bench/authz.json"))
    args = p.parse_args(argv)
    hosts = json.loads((STATE / "hosts.json").read_text())["hosts"]
    host = args.host or next(
        (n for n, h in sorted(hosts.items()) if h["kind"] == "container" and h.get("suite") == "trixie"), None
    )
    if not host:
        raise SystemExit("no Debian 13 container host in the lab: make lab-up N=2")
    ssh(host, "docker image inspect keep:me >/dev/null 2>&1 || docker import /opt/dockguard-lab/busybox.tar keep:me")
    result: dict = {"host": host, "calls": args.calls}
    for state, policy in (("without", False), ("with", True)):
        apply(host, policy)
        result[state] = json.loads(ssh(host, f"python3 - {args.calls}", stdin=CLIENT))
        if policy:
            pid = ssh(host, "systemctl show -p MainPID --value dockguard-authz.service").strip()
            hwm = ssh(host, f"sed -n 's/^VmHWM:[[:space:]]*//p' /proc/{pid}/status").strip()
            result["plugin_peak_rss_kib"] = int(hwm.split()[0])
    apply(host, False)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"dockguard-authz on {host}, {args.calls} calls of each kind straight to docker.sock:")
    print(f"{'call':<8} {'without (median / p99 ms)':>28} {'with (median / p99 ms)':>26} {'added median ms':>16}")
    for kind in ("inspect", "create"):
        a, b = result["without"][kind], result["with"][kind]
        print(f"{kind:<8} {a['median_ms']:>14.2f} / {a['p99_ms']:>8.2f} {b['median_ms']:>14.2f} / {b['p99_ms']:>8.2f} "
              f"{b['median_ms'] - a['median_ms']:>16.2f}")  # fmt: skip
    print(f"plugin peak memory (VmHWM): {result['plugin_peak_rss_kib'] / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
