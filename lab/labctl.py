#!/usr/bin/env python3
"""dockguard lab: real systemd-booted Debian 12 and Debian 13 Docker hosts on this machine.

Two kinds of host, both reached over SSH:

* container hosts ``dh1..dhN``: a cached debootstrap root filesystem, booted from an
  overlay copy with ``systemd-nspawn --boot`` inside its own network namespace,
  joined to this machine by a veth pair; sshd listens on 10.213.N.2.
* the VM host ``vm1``: the same root filesystem plus Debian's kernel, made into an
  ext4 disk image and booted with QEMU; sshd is forwarded to 127.0.0.1:2201.

Each host runs one Debian release (``--suites bookworm,trixie``: container host N gets the
Nth, round robin; ``--vm-suite``), each built from its own cached root filesystem.

Everything is built from Debian's archive only. Run as root; stdlib only so it
works before the project's virtualenv exists.

    labctl.py up [--containers N] [--suites bookworm,trixie] [--vm [--vm-suite trixie]]
    labctl.py status
    labctl.py down
    labctl.py operator-up | operator-run [--user U] -- CMD | operator-down

The operator machine (operator-up) is this machine itself with systemd as PID 1: its own root
filesystem booted as a throw-away systemd-nspawn container in this machine's network, for tests
of what dockguard installs on the operator's machine (the drift timer) when this machine has no
systemd of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("DOCKGUARD_LAB_CACHE", "/var/cache/dockguard-lab"))
STATE = Path(os.environ.get("DOCKGUARD_LAB_STATE", "/var/lib/dockguard-lab"))
MIRROR = os.environ.get("DOCKGUARD_LAB_MIRROR", "http://deb.debian.org/debian")
# Debian releases the lab builds hosts of: suite -> arguments for the container hosts' systemd.
# Debian 13's systemd (257) refuses to boot on a cgroup v1 hierarchy unless told to; this machine's
# kernel gives an nspawn container no other (its VM host, with its own kernel, runs cgroup v2).
SUITES = {
    "bookworm": [],
    "trixie": ["SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"],
}
# What `apt install docker.io` brings on each release beyond PACKAGES (Debian 13 packages the
# docker client apart, as docker-cli, a Recommends of docker.io; debootstrap takes no Recommends).
SUITE_PACKAGES = {"bookworm": [], "trixie": ["docker-cli"]}
DEFAULT_SUITES = "bookworm,trixie"
DEFAULT_VM_SUITE = "trixie"
SUBNET = "10.213"
VM_SSH_PORT = 2201
PREFIX = "dgl"  # prefix of every netns, veth and cgroup this lab makes

PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "sudo",
    "iproute2", "docker.io", "iptables", "auditd", "lynis", "apparmor",
    "apparmor-utils", "busybox-static", "ca-certificates", "procps", "kmod",
    "less", "iputils-ping",
]  # fmt: skip
VM_PACKAGES = ["linux-image-amd64", "initramfs-tools"]
# Kept in the hosts' apt cache: a test removes docker.io and has dockguard install it
# again (docker_install); the hosts have no network, so apt must find the package here.
# (and the release's SUITE_PACKAGES: docker-cli, which a test removes too)
KEEP_DEBS = ["docker.io"]
# The OS baseline installs these (operations/accounts.py, operations/os_packages.py): the
# image carries their .debs (and their dependencies') in its apt cache, not the packages,
# so dockguard's installs run as on any host, from the cache. Downloaded with the
# release's -security suite in the sources, as on a stock Debian host.
BASELINE_DEBS = [
    "libpam-pwquality", "unattended-upgrades", "needrestart", "debsums", "apt-listchanges",
    "acct", "sysstat", "rsyslog", "rkhunter", "fail2ban", "python3-systemd", "aide", "aide-common",
]  # fmt: skip
# Kept in the container hosts' apt cache for pull mode's end-to-end test (tests/e2e/test_78_pull.py),
# which installs Debian's node_exporter on a host to serve dockguard's metrics.
TEST_DEBS = ["prometheus-node-exporter"]
# The VM image comes with them installed (not configured): under its software emulation their
# maintainer scripts take long (aide-common's alone registers 215 rule files with ucf one by
# one, about 15 minutes), which make test cannot afford. The container hosts install them
# with dockguard, from their apt cache; dockguard configures them everywhere.
VM_PREINSTALLED = BASELINE_DEBS
SECURITY_MIRROR = os.environ.get("DOCKGUARD_LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEEP_LIST = "var/lib/dockguard-lab/keep-debs"  # names of the .debs the apt cache keeps
# The SELinux VM (opt-in, `make lab-up SELINUX=1`): Debian's own SELinux policy, the
# file system labelled when the image is built, booted permissive.
SELINUX_PACKAGES = ["selinux-basics", "selinux-policy-default", "policycoreutils", "selinux-utils"]
SELINUX_SEED_DROPIN = """\
[Service]
# Files the seed unit copies get the labels the policy wants (sshd reads them).
ExecStartPost=/sbin/restorecon -R /etc/ssh /root/.ssh
"""
# name -> (SSH port, kernel security parameters, state kind)
VMS = {
    "vm1": (VM_SSH_PORT, "apparmor=1 security=apparmor audit=1", "vm"),
    "vm2": (VM_SSH_PORT + 1, "selinux=1 security=selinux enforcing=0 audit=1", "vm-selinux"),
}
# Every cgroup hierarchy of this machine (v1 controllers, name=systemd and the
# cgroup2 "unified" one): each host gets its own cgroup in each. Sharing one (the
# unified root) lets two hosts' systemd remove each other's unit cgroups at boot.
CGROUP_HIERARCHIES = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"]

CGROUP_UNIT = """\
[Unit]
Description=dockguard lab: make the cgroup v1 controllers writable for dockerd
ConditionVirtualization=container
DefaultDependencies=no
Before=containerd.service docker.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$c"; done'

[Install]
WantedBy=multi-user.target
"""

# The kernel refuses audit control from a container: say so to systemd, as a
# distribution does for units that cannot run there, so the host boots clean.
AUDITD_DROPIN = """\
[Unit]
ConditionVirtualization=!container
"""
# auditd's units: Debian 13 (auditd 4) loads the rules in a unit of their own.
AUDIT_UNITS = ("auditd.service", "audit-rules.service")

SSHD_CONF = """\
# dockguard lab
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""

SEED_UNIT = """\
[Unit]
Description=dockguard lab: per-boot SSH keys from the seed disk
ConditionVirtualization=!container
Requires=dev-vdb.device
After=dev-vdb.device local-fs.target
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -ec 'mkdir -p /run/dgseed; mount -o ro /dev/vdb /run/dgseed; \
  install -m 600 /run/dgseed/ssh/ssh_host_ed25519_key /etc/ssh/; \
  install -m 644 /run/dgseed/ssh/ssh_host_ed25519_key.pub /etc/ssh/; \
  install -d -m 700 /root/.ssh; install -m 600 /run/dgseed/authorized_keys /root/.ssh/; \
  umount /run/dgseed'

[Install]
WantedBy=multi-user.target
"""

VM_NETWORK = """\
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
"""


# Kernel limits every container host draws on: they are this machine's kernel's, shared by all
# the hosts. sysctl -> (what this machine keeps for itself, what each host adds). A booted host
# hardened with the OS baseline holds (`labctl.py usage`): 10 inotify instances (systemd,
# journald, udev, dbus, logind, sshd, dockerd; at the kernel's default of 128 the lab stopped at
# about 14 hosts with "Too many open files"), 40 inotify watches, 40 tasks (dockerd's and
# containerd's threads count), 400 open files and 65 MiB resident. Each figure here has room
# for the containers and commands the tests and runs start.
KERNEL_LIMITS = {
    "fs.inotify.max_user_instances": (64, 16),
    "fs.inotify.max_user_watches": (8192, 1024),
    "kernel.pid_max": (8192, 256),
    "kernel.threads-max": (8192, 256),
    "fs.file-max": (65536, 2048),
}
# A container host's resident memory when booted and hardened (65 MiB, its cgroup's rss and
# shmem; its page cache the kernel takes back), with room to spare for containers and runs;
# the lab refuses what would leave this machine less than MEMORY_SPARE_MB.
MEMORY_PER_HOST_MB = 160
MEMORY_SPARE_MB = 2048
BOOT_WAVE = 16  # container hosts booted at once
MAX_CONTAINERS = 250  # 10.213.N.0/24 per host; the memory check below is the real bound


def limit_needs(n: int) -> dict[str, int]:
    """The value each of KERNEL_LIMITS needs for ``n`` container hosts."""
    return {key: base + per_host * n for key, (base, per_host) in KERNEL_LIMITS.items()}


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> int | None:
    try:
        return int(_sysctl_path(key).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check_kernel_limits(n: int, raise_them: bool = True) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Make sure this machine's kernel limits fit ``n`` container hosts: raise those that are too
    low where this machine lets us ({key: (old, new)}, to put back at `down`); the lines
    that refuse, each with the exact sysctl to run, for those it does not."""
    raised, refused = {}, []
    for key, need in limit_needs(n).items():
        now = read_sysctl(key)
        if now is not None and now >= need:
            continue
        if now is not None and raise_them:
            with contextlib.suppress(OSError):
                _sysctl_path(key).write_text(f"{need}\n")
            if read_sysctl(key) == need:
                raised[key] = (now, need)
                continue
        have = "unreadable" if now is None else str(now)
        refused.append(f"{key} is {have}, {n} container hosts need {need}: run `sysctl -w {key}={need}` "
                       f"(as root, on this machine), then make lab-up again")  # fmt: skip
    return raised, refused


def check_memory(n: int) -> list[str]:
    """A line that refuses ``n`` container hosts this machine's free memory cannot hold."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) // 1024
    except (OSError, KeyError, ValueError):
        return []
    need = n * MEMORY_PER_HOST_MB + MEMORY_SPARE_MB
    if n and available < need:
        return [
            f"{n} container hosts need about {need} MiB of free memory ({MEMORY_PER_HOST_MB} MiB each, "
            f"{MEMORY_SPARE_MB} MiB to spare); {available} MiB are available: ask for fewer hosts"
        ]
    return []


def host_usage(h: dict) -> dict[str, float]:
    """What one container host holds of the shared limits now: inotify instances and watches,
    tasks (processes and threads), open files, and memory (MiB: resident, and page cache, which
    the kernel takes back when it needs it), from its cgroups."""
    usage = {"inotify_instances": 0, "inotify_watches": 0, "tasks": 0, "open_files": 0, "rss_mb": 0.0,
             "page_cache_mb": 0.0}  # fmt: skip
    cgroups = {Path(c).parent.parent.name: Path(c) for c in h.get("cgroups", [])}
    pids: set[str] = set()
    if "pids" in cgroups:  # every process of the host, in whatever sub-cgroup its systemd made
        for f in cgroups["pids"].rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(f.read_text().split())
        with contextlib.suppress(OSError, ValueError):
            usage["tasks"] = int((cgroups["pids"] / "pids.current").read_text())
    if "memory" in cgroups:  # resident memory (and shared memory) the kernel cannot take back; page cache it can
        with contextlib.suppress(OSError, ValueError):
            stat = dict(line.split() for line in (cgroups["memory"] / "memory.stat").read_text().splitlines())
            usage["rss_mb"] = round((int(stat["total_rss"]) + int(stat["total_shmem"])) / 2**20, 1)
            usage["page_cache_mb"] = round(int(stat["total_cache"]) / 2**20, 1)
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            usage["open_files"] += 1
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    usage["inotify_instances"] += 1
                    usage["inotify_watches"] += Path(f"/proc/{pid}/fdinfo/{fd}").read_text().count("inotify wd:")
    return usage


def cmd_usage(args) -> int:
    """Each container host's share of the kernel limits the lab checks (KERNEL_LIMITS), and memory."""
    state = load_state()
    rows = {n: host_usage(h) for n, h in sorted(state["hosts"].items()) if h["kind"] == "container"}
    if not rows:
        print("lab: no container hosts")
        return 1
    keys = list(next(iter(rows.values())))
    print("host   " + "  ".join(f"{k:>17}" for k in keys))
    for name, u in rows.items():
        print(f"{name:6} " + "  ".join(f"{u[k]:>17g}" for k in keys))
    print("max    " + "  ".join(f"{max(u[k] for u in rows.values()):>17g}" for k in keys))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def restore_kernel_limits(raised: dict[str, list[int]]) -> None:
    """Put back what `up` raised, where nobody changed it since."""
    for key, (old, new) in raised.items():
        if read_sysctl(key) == new:
            with contextlib.suppress(OSError):
                _sysctl_path(key).write_text(f"{old}\n")
                log(f"{key} back to {old}")


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str] | str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, text=True, **kw)


def quiet(cmd: list[str] | str) -> bool:
    """Run a clean-up command that may legitimately fail; say whether it worked."""
    shell = isinstance(cmd, str)
    return subprocess.run(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


# --------------------------------------------------------------------------- cache


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def rootfs_dir(suite: str) -> Path:
    """The debootstrap result of one release, keyed by what goes into it; customised in place."""
    parts = (suite, MIRROR, *PACKAGES, *SUITE_PACKAGES[suite], "keep", *keep_debs(suite))
    return CACHE / f"rootfs-{_key(*parts, 'baseline', SECURITY_MIRROR, *BASELINE_DEBS, 'test', *TEST_DEBS)}"


def keep_debs(suite: str) -> list[str]:
    return KEEP_DEBS + SUITE_PACKAGES[suite]


def _custom_key() -> str:
    return _key(CGROUP_UNIT, AUDITD_DROPIN, *AUDIT_UNITS, SSHD_CONF)


def vm_dir(suite: str, selinux: bool = False) -> Path:
    extra = ["selinux", *SELINUX_PACKAGES, SELINUX_SEED_DROPIN] if selinux else []
    parts = (rootfs_dir(suite).name, _custom_key(), *VM_PACKAGES, *VM_PREINSTALLED, SEED_UNIT, VM_NETWORK, *extra)
    return CACHE / f"vm-{_key(*parts)}"


def ensure_tools() -> None:
    missing = [t for t in ("debootstrap", "systemd-nspawn", "ip", "ssh-keygen") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"lab: missing tools {missing}: run `make deps` (apt packages) first")


def build_rootfs(suite: str) -> Path:
    root = rootfs_dir(suite)
    if not (root / ".dockguard-complete").exists():
        ensure_tools()
        tmp = root.with_name(root.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"building the {suite} root filesystem {root.name} with debootstrap (about a minute)")
        t0 = time.monotonic()
        include = ",".join(PACKAGES + SUITE_PACKAGES[suite])
        run(["debootstrap", "--variant=minbase", f"--include={include}", suite, str(tmp), MIRROR],
            stdout=subprocess.DEVNULL)  # fmt: skip
        _make_test_image(tmp)
        _clean_apt_cache(tmp, keep_debs(suite))
        _download_baseline(tmp, suite)
        (tmp / ".dockguard-complete").write_text(time.strftime("%F %T\n"))
        tmp.rename(root)
        log(f"root filesystem built in {time.monotonic() - t0:.0f}s")
    marker = root / ".dockguard-custom"
    if not marker.exists() or marker.read_text() != _custom_key():
        _customise(root)
        marker.write_text(_custom_key())
    return root


def _download_baseline(root: Path, suite: str) -> None:
    """The release's -security suite in the sources, and the OS baseline's .debs in the apt
    cache (with docker.io's and the client's again: -security may hold newer ones)."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {suite} main\ndeb {SECURITY_MIRROR} {suite}-security main\n"
    )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["chroot", str(root), "apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    run(["chroot", str(root), "apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends",
         *BASELINE_DEBS, *TEST_DEBS, *keep_debs(suite)], env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    names = sorted({d.name.split("_", 1)[0] for d in (root / "var/cache/apt/archives").glob("*.deb")})
    (root / KEEP_LIST).parent.mkdir(parents=True, exist_ok=True)
    (root / KEEP_LIST).write_text("\n".join(names) + "\n")


def _clean_apt_cache(root: Path, debs: list[str]) -> None:
    """apt-get clean, keeping the packages ``debs`` (and those the image's KEEP_LIST names)."""
    archives = root / "var/cache/apt/archives"
    keep = root / "var/cache/dockguard-keep"
    keep.mkdir(parents=True, exist_ok=True)
    listed = (root / KEEP_LIST).read_text().split() if (root / KEEP_LIST).exists() else []
    for name in [*debs, *listed]:
        for deb in archives.glob(f"{name}_*.deb"):
            deb.rename(keep / deb.name)
    run(["chroot", str(root), "apt-get", "clean"])
    for deb in keep.iterdir():
        deb.rename(archives / deb.name)
    keep.rmdir()


def _customise(root: Path) -> None:
    """Lab-wide files; each write is a plain overwrite, so this can run again."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # host keys are made per host
        key.unlink()
    (root / "etc/ssh/sshd_config.d/dockguard-lab.conf").write_text(SSHD_CONF)
    (root / "etc/systemd/system/dockguard-lab-cgroups.service").write_text(CGROUP_UNIT)
    for unit in AUDIT_UNITS:
        dropin = root / f"etc/systemd/system/{unit}.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "dockguard-lab.conf").write_text(AUDITD_DROPIN)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "dockguard-lab-cgroups.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/dockguard-lab-cgroups.service")
    (root / "etc/machine-id").write_text("")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)


def _make_test_image(root: Path) -> None:
    """A tiny container image for tests: no registry is reachable, so tests
    `docker import` this busybox root (/opt/dockguard-lab/busybox.tar)."""
    img = root / "opt/dockguard-lab/busybox"
    (img / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "bin/busybox", img / "bin/busybox")
    for applet in run([str(img / "bin/busybox"), "--list"], capture=True).stdout.split():
        if applet != "busybox":
            (img / "bin" / applet).symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev"):
        (img / d).mkdir(exist_ok=True)
    run(["tar", "-C", str(img), "-cf", str(root / "opt/dockguard-lab/busybox.tar"), "."])
    shutil.rmtree(img)


def build_vm_image(suite: str, selinux: bool = False) -> Path:
    out = vm_dir(suite, selinux)
    if (out / ".dockguard-complete").exists():
        return out
    root = build_rootfs(suite)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    vroot = out / "root"
    log(f"building the {suite} VM image: rootfs + Debian kernel (a few minutes)")
    t0 = time.monotonic()
    run(["cp", "-a", f"{root}/.", str(vroot)])
    (vroot / ".dockguard-complete").unlink()
    (vroot / ".dockguard-custom").unlink()
    mounts = []
    try:
        for src, dst, opts in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--bind"]),
        ):
            run(["mount", *opts, src, str(vroot / dst)])
            mounts.append(vroot / dst)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["chroot", str(vroot), "apt-get", "update", "-qq"], env=env)
        packages = VM_PACKAGES + VM_PREINSTALLED + (SELINUX_PACKAGES if selinux else [])
        run(["chroot", str(vroot), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        _clean_apt_cache(vroot, keep_debs(suite))
        if selinux:
            _selinux_image(vroot)
    finally:
        for m in reversed(mounts):
            quiet(["umount", "-l", str(m)])
    (vroot / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (vroot / "etc/hostname").write_text("vm1\n")
    (vroot / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 vm1\n")
    (vroot / "etc/systemd/network/10-lab.network").write_text(VM_NETWORK)
    (vroot / "etc/systemd/system/dockguard-lab-seed.service").write_text(SEED_UNIT)
    wants = vroot / "etc/systemd/system/multi-user.target.wants"
    for unit, target in (
        ("systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"),
        ("dockguard-lab-seed.service", "/etc/systemd/system/dockguard-lab-seed.service"),
    ):
        link = wants / unit
        if not link.exists():
            link.symlink_to(target)
    kernels = sorted((vroot / "boot").glob("vmlinuz-*"))
    initrds = sorted((vroot / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise SystemExit("lab: kernel or initrd missing after installing linux-image-amd64")
    shutil.copy2(kernels[-1], out / "vmlinuz")
    shutil.copy2(initrds[-1], out / "initrd.img")
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(vroot), str(out / "disk.raw"), "4G"])
    shutil.rmtree(vroot)
    (out / ".dockguard-complete").write_text(time.strftime("%F %T\n"))
    log(f"VM image built in {time.monotonic() - t0:.0f}s")
    return out


# --------------------------------------------------------------------------- state


def state_file() -> Path:
    return STATE / "hosts.json"


def load_state() -> dict:
    try:
        return json.loads(state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"hosts": {}}


def save_state(state: dict) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    tmp = state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(state_file())
    write_ssh_config(state)


def lab_key() -> Path:
    key = STATE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockguard-lab", "-f", str(key)])
    return key


def known_hosts() -> Path:
    return STATE / "ssh" / "known_hosts"


def write_ssh_config(state: dict) -> None:
    """An ssh_config for the lab: used by testinfra and by people exploring."""
    lines = []
    for name, h in sorted(state["hosts"].items()):
        lines += [
            f"Host {name}",
            f"  HostName {h['address']}",
            f"  Port {h['port']}",
            "  User root",
            f"  IdentityFile {lab_key()}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {known_hosts()}",
            "  StrictHostKeyChecking yes",
            "  ControlMaster auto",
            f"  ControlPath {STATE}/ssh/cm-%r@%h:%p",
            "  ControlPersist 60s",
            "",
        ]
    (STATE / "ssh" / "config").write_text("\n".join(lines))


def update_known_hosts(state: dict) -> None:
    lines = []
    for h in state["hosts"].values():
        host = h["address"] if h["port"] == 22 else f"[{h['address']}]:{h['port']}"
        lines.append(f"{host} {h['host_key']}")
    known_hosts().write_text("\n".join(sorted(lines)) + "\n")


def make_host_key(dest_etc_ssh: Path) -> str:
    dest_etc_ssh.mkdir(parents=True, exist_ok=True)
    key = dest_etc_ssh / "ssh_host_ed25519_key"
    for f in (key, key.with_suffix(".pub")):
        if f.exists():
            f.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)])
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def ssh_argv(h: dict) -> list[str]:
    return [
        "ssh", "-i", str(lab_key()), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts()}", "-o", "StrictHostKeyChecking=yes",
        "-o", "ConnectTimeout=3", "-p", str(h["port"]), f"root@{h['address']}",
    ]  # fmt: skip


def wait_ready(name: str, h: dict, timeout: float) -> None:
    """Wait until sshd answers and systemd reports 'running'; record how long it took."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        r = subprocess.run(
            ssh_argv(h) + ["systemctl is-system-running --wait 2>/dev/null || true"],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        last = (r.stdout.strip() or r.stderr.strip()).splitlines()[-1:] or [""]
        last = last[0]
        if r.returncode == 0 and last == "running":
            h["ready_after"] = round(time.time() - h["started"], 1)
            return
        if r.returncode == 0 and last == "degraded":
            diag = "systemctl --failed --no-legend --plain; journalctl -b -p warning --no-pager | tail -n 20"
            failed = subprocess.run(
                ssh_argv(h) + [diag],
                stdout=subprocess.PIPE, text=True,
            ).stdout  # fmt: skip
            raise SystemExit(f"lab: {name} booted degraded; failed units:\n{failed}")
        time.sleep(0.5)
    raise SystemExit(f"lab: {name} not ready after {timeout:.0f}s (last: {last!r})")


# --------------------------------------------------------------------------- container hosts


def cg_path(ctrl: str, name: str | None = None) -> Path:
    base = Path("/sys/fs/cgroup") / ctrl / PREFIX
    return base / name if name else base


def cgroup_controllers() -> list[str]:
    return [c for c in CGROUP_HIERARCHIES if (Path("/sys/fs/cgroup") / c).is_dir()]


def start_container(n: int, state: dict, suite: str) -> None:
    name = f"dh{n}"
    root = build_rootfs(suite)
    hdir = STATE / name
    if hdir.exists():
        raise SystemExit(f"lab: {hdir} exists; run `make lab-down` first")
    upper, work, merged = hdir / "upper", hdir / "work", hdir / "root"
    for d in (upper, work, merged, hdir / "docker", hdir / "containerd"):
        d.mkdir(parents=True)
    # Per-host files live in the overlay's upper layer.
    etc = upper / "etc"
    etc.mkdir()
    (etc / "hostname").write_text(f"{name}\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
    host_key = make_host_key(etc / "ssh")
    (upper / "root/.ssh").mkdir(parents=True, mode=0o700)
    auth = upper / "root/.ssh/authorized_keys"
    auth.write_text(lab_key().with_suffix(".pub").read_text())
    auth.chmod(0o600)
    run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={root},upperdir={upper},workdir={work}", str(merged)])

    ns, veth_host = f"{PREFIX}-{name}", f"{PREFIX}{n}h"
    addr_host, addr = f"{SUBNET}.{n}.1", f"{SUBNET}.{n}.2"
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth_host, "type", "veth", "peer", "name", f"{PREFIX}{n}c"])
    run(["ip", "link", "set", f"{PREFIX}{n}c", "netns", ns])
    run(["ip", "-n", ns, "link", "set", f"{PREFIX}{n}c", "name", "eth0"])
    run(["ip", "addr", "add", f"{addr_host}/24", "dev", veth_host])
    run(["ip", "link", "set", veth_host, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", addr_host])

    # Our own cgroup under every v1 controller, so the host's systemd and
    # dockerd get a subtree of their own; the nspawn process joins it first.
    cgroups = []
    for ctrl in cgroup_controllers():
        p = cg_path(ctrl, name)
        p.mkdir(parents=True, exist_ok=True)
        if ctrl == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                (cg_path(ctrl) / f).write_text((Path("/sys/fs/cgroup/cpuset") / f).read_text())
                (p / f).write_text((Path("/sys/fs/cgroup/cpuset") / f).read_text())
        cgroups.append(str(p))

    console = hdir / "console.log"
    join = "; ".join(f"echo $$ > {c}/cgroup.procs" for c in cgroups)
    nspawn = (
        f"{join}; exec systemd-nspawn --boot --register=no --keep-unit --network-namespace-path=/run/netns/{ns} "
        f"--capability=all --system-call-filter='add_key keyctl bpf' --machine={name} "
        f"--hostname={name} -D {merged} --bind={hdir}/docker:/var/lib/docker "
        f"--bind={hdir}/containerd:/var/lib/containerd --console=read-only --resolv-conf=off "
        f"--timezone=off --link-journal=no {' '.join(SUITES[suite])}"
    )
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network", SYSTEMD_NSPAWN_TMPFS_TMP="0")
    with open(console, "w") as out:
        proc = subprocess.Popen(["sh", "-c", nspawn], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
    state["hosts"][name] = {
        "kind": "container", "address": addr, "port": 22, "pid": proc.pid, "netns": ns,
        "veth": veth_host, "cgroups": cgroups, "dir": str(hdir), "host_key": host_key,
        "started": time.time(), "suite": suite,
    }  # fmt: skip
    save_state(state)


def stop_container(name: str, h: dict) -> None:
    pid = h.get("pid")
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)  # nspawn --boot: orderly shutdown of the host
        _wait_gone(pid, 20)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    # Anything left in the host's cgroups (dockerd shims, stuck processes).
    for cg in h.get("cgroups", []):
        _kill_cgroup(Path(cg))
    hdir = Path(h["dir"])
    _umount_below(hdir)
    for cg in sorted(h.get("cgroups", []), key=len, reverse=True):
        _rmdir_cgroup(Path(cg))
    quiet(["ip", "netns", "delete", h["netns"]])
    quiet(["ip", "link", "delete", h["veth"]])
    shutil.rmtree(hdir, ignore_errors=True)


# --------------------------------------------------------------------------- VM host


def _selinux_image(vroot: Path) -> None:
    """Booted permissive, labelled now (mkfs.ext4 -d copies the labels into the image):
    a first boot would otherwise relabel and reboot."""
    config = vroot / "etc/selinux/config"
    text = config.read_text() if config.exists() else ""
    lines = [line for line in text.splitlines() if not line.startswith(("SELINUX=", "SELINUXTYPE="))]
    config.write_text("\n".join([*lines, "SELINUX=permissive", "SELINUXTYPE=default"]) + "\n")
    dropin = vroot / "etc/systemd/system/dockguard-lab-seed.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "selinux.conf").write_text(SELINUX_SEED_DROPIN)
    contexts = "/etc/selinux/default/contexts/files/file_contexts"
    run(["chroot", str(vroot), "setfiles", "-F", "-e", "/proc", "-e", "/sys", "-e", "/dev", contexts, "/"],
        stdout=subprocess.DEVNULL)  # fmt: skip


def start_vm(state: dict, name: str, suite: str) -> None:
    port, security, kind = VMS[name]
    img = build_vm_image(suite, selinux=kind == "vm-selinux")
    if not shutil.which("qemu-system-x86_64"):
        raise SystemExit("lab: qemu-system-x86_64 missing: run `make deps` first")
    hdir = STATE / name
    if hdir.exists():
        raise SystemExit(f"lab: {hdir} exists; run `make lab-down` first")
    hdir.mkdir(parents=True)
    disk = hdir / "disk.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(img / "disk.raw"), "-F", "raw", str(disk)])
    # Per-boot SSH keys reach the guest on a tiny read-only seed disk (an ext4
    # made with mkfs.ext4 -d), copied into place by SEED_UNIT before sshd starts.
    seed = hdir / "seed"
    host_key = make_host_key(seed / "ssh")
    shutil.copy2(lab_key().with_suffix(".pub"), seed / "authorized_keys")
    seed_img = str(hdir / "seed.img")
    run(["mkfs.ext4", "-q", "-F", "-L", "dgseed", "-d", str(seed), seed_img, "4M"], stdout=subprocess.DEVNULL)
    accel = ["-accel", "kvm", "-accel", "tcg,thread=multi"] if _kvm_usable() else ["-accel", "tcg,thread=multi"]
    cmd = [
        "qemu-system-x86_64", *accel, "-cpu", "max", "-m", "1024", "-smp", "2",
        "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
        "-append", f"root=/dev/vda rw console=ttyS0 {security} quiet",
        "-drive", f"file={disk},if=virtio,format=qcow2",
        "-drive", f"file={seed_img},if=virtio,format=raw,readonly=on",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=n0",
        "-display", "none", "-serial", f"file:{hdir / 'console.log'}", "-monitor", "none",
        "-pidfile", str(hdir / "qemu.pid"), "-daemonize",
    ]  # fmt: skip
    run(cmd)
    pid = int((hdir / "qemu.pid").read_text())
    state["hosts"][name] = {
        "kind": kind, "address": "127.0.0.1", "port": port, "pid": pid, "dir": str(hdir),
        "host_key": host_key, "started": time.time(), "suite": suite,
    }  # fmt: skip
    save_state(state)


def stop_vm(name: str, h: dict) -> None:
    pid = h.get("pid")
    if pid and _alive(pid):
        # Orderly poweroff over SSH first; QEMU exits when the guest powers off.
        quiet(ssh_argv(h) + ["systemctl poweroff"])
        _wait_gone(pid, 30)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    shutil.rmtree(h["dir"], ignore_errors=True)


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return os.environ.get("DOCKGUARD_LAB_KVM", "0") == "1"


# --------------------------------------------------------------------------- operator machine

# This machine's own root filesystem booted with systemd as PID 1 (`operator-up`), for tests that
# need systemctl and journalctl on the operator's machine when this machine has no systemd (a
# container or a sandbox). It is a throw-away overlay (the upper layer on a tmpfs) booted with
# systemd-nspawn in this machine's network namespace: it reaches the lab's hosts at the addresses
# this machine does, and sees /work, the checkout and its virtualenv at the same paths. Whatever
# is done inside (users, their homes, units in /etc/systemd/system) is gone with `operator-down`.
OPERATOR_DIR = Path(os.environ.get("DOCKGUARD_OPERATOR_DIR", "/run/dockguard-operator"))
OPERATOR_NAME = "dgop"  # machine name, host name and the cgroup it gets in every hierarchy
PROJECT = Path(__file__).resolve().parents[1]


def operator_cgroups() -> list[Path]:
    return [Path("/sys/fs/cgroup") / c / OPERATOR_NAME for c in cgroup_controllers()]


def operator_state() -> dict | None:
    try:
        return json.loads((OPERATOR_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return None


def _mount_point(path: Path) -> Path:
    p = path
    while not os.path.ismount(p):
        p = p.parent
    return p


def _enabled_units() -> list[str]:
    """Every unit this machine's /etc enables (wants/requires symlinks, e.g. postgresql.service,
    apt-daily.timer, getty@tty1.service): none of them is for the operator machine, which shares
    this machine's network and must not start a second sshd, database or timer there."""
    base = Path("/etc/systemd/system")
    units = {p.name for pattern in ("*.wants/*", "*.requires/*", "*.upholds/*") for p in base.glob(pattern)}
    return sorted(u for u in units if "." in u)


def _leader(nspawn_pid: int) -> int | None:
    """The container's PID 1 (systemd): nspawn's child."""
    for children in Path(f"/proc/{nspawn_pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                return int(pid)
    return None


def operator_argv(leader: int, user: str | None = None, cwd: str | None = None) -> list[str]:
    """The command line prefix that runs a command inside the operator machine (as root, or as
    ``user`` with runuser; in ``cwd``, a path inside it)."""
    argv = ["nsenter", "-t", str(leader), "-a", "--"]
    if user:
        argv += ["runuser", "-u", user, "--"]
    if cwd:
        argv += ["env", "-C", cwd]
    return argv


def _prepare_operator_root(merged: Path) -> list[str]:
    """Files of the operator machine, written into the overlay's upper layer before it boots."""
    notes = []
    system = merged / "etc/systemd/system"
    system.mkdir(parents=True, exist_ok=True)
    masked = _enabled_units()
    for unit in masked:
        link = system / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    notes.append(f"masked what this machine enables: {' '.join(masked) or 'nothing'}")
    (merged / "etc/hostname").write_text(f"{OPERATOR_NAME}\n")
    # systemd-tmpfiles empties /tmp at boot ("D /tmp"): keep this machine's /tmp as it is there
    # (the checkout and its virtualenv may live in it, as a CI clone does).
    tmpfiles = merged / "etc/tmpfiles.d"
    tmpfiles.mkdir(parents=True, exist_ok=True)
    (tmpfiles / "tmp.conf").write_text("d /tmp 1777 root root -\nd /var/tmp 1777 root root -\n")
    notes.append("/tmp and /var/tmp kept as they are (not emptied at boot)")
    # The checkout's virtualenv must run for the operator user too: its interpreter may live in a
    # home no one else can enter (pyenv under /root, mode 0700). Traversable (o+x, not readable)
    # in the throw-away overlay only.
    python = (PROJECT / ".venv/bin/python").resolve()
    if python.exists():
        for d in reversed(python.parents):
            inside = merged / d.relative_to("/")
            mode = inside.stat().st_mode & 0o7777
            if not mode & 0o001 and _mount_point(d) == Path("/"):
                inside.chmod(mode | 0o001)
                notes.append(f"{d}: o+x inside (the virtualenv's interpreter is {python})")
    return notes


def _operator_binds() -> list[str]:
    """What the overlay of / does not show (a separate file system) but the operator machine
    needs at the same path: the checkout and its virtualenv's interpreter, bound read-only."""
    need = [PROJECT, (PROJECT / ".venv").resolve(), (PROJECT / ".venv/bin/python").resolve()]
    mounts = {_mount_point(p) for p in need if p.exists()} - {Path("/")}
    return [f"--bind-ro={m}" for m in sorted(mounts)]


def operator_up(timeout: float = 60) -> dict:
    if not shutil.which("systemd-nspawn") or not shutil.which("nsenter"):
        raise SystemExit("lab: systemd-nspawn and nsenter are needed: run `make deps` first")
    if OPERATOR_DIR.exists() and (os.path.ismount(OPERATOR_DIR) or any(OPERATOR_DIR.iterdir())):
        raise SystemExit(f"lab: {OPERATOR_DIR} is in use: run `labctl.py operator-down` first")
    t0 = time.monotonic()
    OPERATOR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=4g", "dgop-tmpfs", str(OPERATOR_DIR)])
        upper, work, merged = OPERATOR_DIR / "upper", OPERATOR_DIR / "work", OPERATOR_DIR / "root"
        for d in (upper, work, merged):
            d.mkdir()
        run(["mount", "-t", "overlay", "dgop-overlay", "-o", f"lowerdir=/,upperdir={upper},workdir={work}",
             str(merged)])  # fmt: skip
        notes = _prepare_operator_root(merged)
        # A cgroup of its own in every hierarchy, as the lab's hosts have (its systemd manages it).
        cgroups = []
        for p in operator_cgroups():
            p.mkdir(exist_ok=True)
            if p.parent.name == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (p / f).write_text((p.parent / f).read_text())
            cgroups.append(str(p))
        join = "; ".join(f"echo $$ > {c}/cgroup.procs" for c in cgroups)
        nspawn = (
            f"{join}; exec systemd-nspawn --boot --register=no --keep-unit -D {merged} --machine={OPERATOR_NAME} "
            f"--hostname={OPERATOR_NAME} --console=read-only --resolv-conf=off --timezone=off --link-journal=no "
            + " ".join(_operator_binds())
        )
        st = merged.stat()
        state = {"dir": str(OPERATOR_DIR), "root": str(merged), "cgroups": cgroups, "notes": notes,
                 "image_lock": f"/run/systemd/nspawn/locks/inode-{st.st_dev}:{st.st_ino}"}  # fmt: skip
        with open(OPERATOR_DIR / "console.log", "w") as out:
            # No tmpfs on /tmp: the checkout and its virtualenv may live there (a CI clone).
            env = dict(os.environ, SYSTEMD_NSPAWN_TMPFS_TMP="0")
            proc = subprocess.Popen(["sh", "-c", nspawn], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)  # fmt: skip
        state["pid"] = proc.pid
        (OPERATOR_DIR / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        last = ""
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"lab: systemd-nspawn exited {proc.returncode}; see {OPERATOR_DIR}/console.log")
            leader = _leader(proc.pid)
            if leader:
                r = subprocess.run(operator_argv(leader) + ["systemctl", "is-system-running"],
                                   capture_output=True, text=True, timeout=30)  # fmt: skip
                last = r.stdout.strip()
                if last in ("running", "degraded"):
                    state["leader"] = leader
                    break
            time.sleep(0.3)
        else:
            raise SystemExit(f"lab: the operator machine is not up after {timeout:.0f}s (last: {last!r})")
        state["status"] = last
        if last == "degraded":
            failed = subprocess.run(operator_argv(leader) + ["systemctl", "--failed", "--no-legend", "--plain"],
                                    capture_output=True, text=True).stdout  # fmt: skip
            state["notes"].append(f"booted degraded; failed units: {' '.join(failed.split()) or '?'}")
        state["ready_after"] = round(time.monotonic() - t0, 1)
        (OPERATOR_DIR / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    except BaseException:
        log(f"operator-up failed; tearing down (console log kept in {STATE / 'last-failure'})")
        console = OPERATOR_DIR / "console.log"
        if console.exists():
            (STATE / "last-failure").mkdir(parents=True, exist_ok=True)
            shutil.copy2(console, STATE / "last-failure" / "operator.console.log")
        operator_down()
        raise
    return state


def operator_down() -> None:
    state = operator_state() or {}
    pids = [state["pid"]] if state.get("pid") else []
    # also an nspawn that never reached the state file
    out = run(["ps", "-eo", "pid=,args="], capture=True, check=False).stdout
    pids += [int(line.split()[0]) for line in out.splitlines()
             if "systemd-nspawn" in line and f"-D {OPERATOR_DIR}/root" in line]  # fmt: skip
    for pid in dict.fromkeys(pids):
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)  # nspawn --boot: an orderly poweroff of the container
            _wait_gone(pid, 20)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
    for cg in operator_cgroups():
        _kill_cgroup(cg)
    _umount_below(OPERATOR_DIR)
    for cg in operator_cgroups():
        _rmdir_cgroup(cg)
    if OPERATOR_DIR.exists() and not os.path.ismount(OPERATOR_DIR):
        shutil.rmtree(OPERATOR_DIR, ignore_errors=True)
    # what systemd-nspawn leaves in a /run that is no tmpfs (as on this kind of machine)
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{OPERATOR_NAME}", ignore_errors=True)
    if state.get("image_lock"):
        Path(state["image_lock"]).unlink(missing_ok=True)


def operator_leftovers() -> list[str]:
    found = []
    if OPERATOR_DIR.exists():
        found.append(f"directory {OPERATOR_DIR}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4]
        if mnt == str(OPERATOR_DIR) or mnt.startswith(f"{OPERATOR_DIR}/"):
            found.append(f"mount {mnt}")
    found += [f"cgroup {cg}" for cg in operator_cgroups() if cg.exists()]
    out = run(["ps", "-eo", "pid,args"], capture=True, check=False).stdout
    found += [f"process {line.strip()}" for line in out.splitlines() if "nspawn" in line and str(OPERATOR_DIR) in line]
    if Path(f"/run/systemd/nspawn/propagate/{OPERATOR_NAME}").exists():
        found.append(f"directory /run/systemd/nspawn/propagate/{OPERATOR_NAME}")
    return found


# --------------------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.2)


def _kill_cgroup(cg: Path) -> None:
    for _ in range(20):
        pids = []
        for procs in cg.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in procs.read_text().split()]
        if not pids:
            return
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.2)


def _rmdir_cgroup(cg: Path) -> None:
    if not cg.exists():
        return
    for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        quiet(["rmdir", str(d)])
    quiet(["rmdir", str(cg)])


def _umount_below(path: Path) -> None:
    prefix = str(path)
    for _ in range(5):
        targets = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                targets.append(mnt)
        if not targets:
            return
        for t in sorted(targets, key=len, reverse=True):
            quiet(["umount", "-l", t])


# --------------------------------------------------------------------------- commands


def cmd_up(args) -> None:
    ensure_tools()
    lab_key()
    state = load_state()
    if state["hosts"]:
        raise SystemExit("lab: a lab is already up (`make lab-status`); run `make lab-down` first")
    t0 = time.monotonic()
    suites = [s for s in args.suites.split(",") if s] if args.containers else []
    vms = [("vm1", args.vm_suite)] * bool(args.vm) + [("vm2", "bookworm")] * bool(args.selinux_vm)
    images = [rootfs_dir(s) for s in suites] + [vm_dir(s, name == "vm2") for name, s in vms]
    cold = any(not (d / ".dockguard-complete").exists() for d in images)
    for s in dict.fromkeys(suites):
        build_rootfs(s)
    for name, s in vms:
        build_vm_image(s, selinux=name == "vm2")
    t_build = time.monotonic() - t0
    (STATE / "ssh").mkdir(parents=True, exist_ok=True)
    raised, refused = check_kernel_limits(args.containers)
    refused += check_memory(args.containers)
    if refused:
        restore_kernel_limits(raised)
        raise SystemExit("lab: this machine cannot hold the lab asked for:\n  " + "\n  ".join(refused))
    for key, (old, new) in raised.items():
        log(f"{key} raised from {old} to {new} for {args.containers} container hosts (put back at lab-down)")
    state["raised_limits"] = raised
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the hosts' nspawn and systemd start from this process's limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    save_state(state)
    try:
        # Containers first, and ready, before the VM: QEMU under emulation takes
        # both cores while it boots, which slows a container's boot past systemd's
        # timeouts.
        # In waves: a hundred systemds booting at once on two cores would pass their own timeouts.
        for first in range(1, args.containers + 1, BOOT_WAVE):
            wave = range(first, min(first + BOOT_WAVE, args.containers + 1))
            for n in wave:
                start_container(n, state, suites[(n - 1) % len(suites)])
            update_known_hosts(state)
            save_state(state)
            for n in wave:
                wait_ready(f"dh{n}", state["hosts"][f"dh{n}"], 60)
        for name, suite in vms:
            start_vm(state, name, suite)
            update_known_hosts(state)
            save_state(state)
            wait_ready(name, state["hosts"][name], 400)
    except BaseException:
        keep = STATE / "last-failure"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for name, h in state["hosts"].items():
            console = Path(h["dir"]) / "console.log"
            if console.exists():
                shutil.copy2(console, keep / f"{name}.console.log")
        log(f"lab-up failed; tearing down what was started (console logs kept in {keep})")
        cmd_down(args)
        raise
    total = time.monotonic() - t0
    for name, h in sorted(state["hosts"].items()):
        where = f"{h['kind']}, {h['suite']}, ssh {h['address']}:{h['port']}"
        log(f"{name}: ready ({where}) {h['ready_after']}s after start")
    log(f"lab up in {total:.1f}s ({'cold: built cache' if cold else 'cached'}, build {t_build:.1f}s)")
    state["timings"] = {"total": round(total, 1), "build": round(t_build, 1), "cold": cold}
    save_state(state)


def cmd_status(args) -> int:
    state = load_state()
    if not state["hosts"]:
        print("lab: no hosts")
        return 0
    bad = 0
    for name, h in sorted(state["hosts"].items()):
        alive = _alive(h["pid"])
        status = "down"
        if alive:
            r = subprocess.run(ssh_argv(h) + ["systemctl is-system-running"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, timeout=30)  # fmt: skip
            status = r.stdout.strip() or "no ssh"
        bad += status != "running"
        print(f"{name:5} {h['kind']:9} {h.get('suite', '?'):9} {h['address']}:{h['port']:<5} {status}")
    return 1 if bad else 0


def cmd_down(args) -> None:
    state = load_state()
    for name, h in sorted(state["hosts"].items()):
        log(f"stopping {name}")
        if h["kind"].startswith("vm"):
            stop_vm(name, h)
        else:
            stop_container(name, h)
    # Leftovers from a crashed run that never reached the state file.
    for ctrl in cgroup_controllers():
        base = cg_path(ctrl)
        if base.exists():
            _kill_cgroup(base)
            _rmdir_cgroup(base)
    for d in STATE.glob("dh*") if STATE.exists() else []:
        _umount_below(d)
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(STATE / "vm1", ignore_errors=True)
    out = run(["ip", "netns", "list"], capture=True, check=False).stdout
    for line in out.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(f"{PREFIX}-"):
            quiet(["ip", "netns", "delete", ns])
    out = run(["ip", "-o", "link", "show"], capture=True, check=False).stdout
    for line in out.splitlines():
        dev = line.split(":")[1].strip().split("@")[0]
        if dev.startswith(PREFIX):
            quiet(["ip", "link", "delete", dev])
    for cm in (STATE / "ssh").glob("cm-*") if (STATE / "ssh").exists() else []:
        cm.unlink(missing_ok=True)
    restore_kernel_limits(state.get("raised_limits", {}))
    save_state({"hosts": {}})
    if operator_leftovers():  # an operator machine a test left up (it needs the lab's hosts)
        log("stopping the operator machine")
        operator_down()


def cmd_leftovers(args) -> int:
    """Print anything the lab made that is still around (used by tests)."""
    found = []
    out = run(["ip", "netns", "list"], capture=True, check=False).stdout
    found += [f"netns {line.split()[0]}" for line in out.splitlines() if line.startswith(f"{PREFIX}-")]
    out = run(["ip", "-o", "link", "show"], capture=True, check=False).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in out.splitlines()
              if line.split(":")[1].strip().startswith(PREFIX)]  # fmt: skip
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4]
        if mnt.startswith(str(STATE) + "/"):
            found.append(f"mount {mnt}")
    for ctrl in cgroup_controllers():
        if cg_path(ctrl).exists():
            found.append(f"cgroup {cg_path(ctrl)}")
    out = run(["ps", "-eo", "pid,args"], capture=True, check=False).stdout
    found += [f"process {line.strip()}" for line in out.splitlines()
              if str(STATE) in line and ("nspawn" in line or "qemu" in line)]  # fmt: skip
    found += operator_leftovers()
    for f in found:
        print(f)
    return 1 if found else 0


def cmd_operator_up(args) -> None:
    state = operator_up(args.timeout)
    for note in state["notes"]:
        log(f"operator: {note}")
    log(
        f"operator machine {OPERATOR_NAME} {state['status']} {state['ready_after']}s after start "
        f"(systemd pid {state['leader']} on this machine); run commands in it with `labctl.py operator-run "
        f"[--user U] [--cwd DIR] -- CMD` or `nsenter -t {state['leader']} -a -- CMD`"
    )
    if args.json:
        print(json.dumps(state, indent=2))


def cmd_operator_run(args) -> int:
    state = operator_state()
    if not state or not state.get("leader") or not _alive(state["leader"]):
        raise SystemExit("lab: the operator machine is not up: run `labctl.py operator-up` first")
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise SystemExit("lab: operator-run needs a command")
    return subprocess.run(operator_argv(state["leader"], args.user, args.cwd) + cmd).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="labctl")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("--containers", "-n", type=int, default=2)
    up.add_argument(
        "--suites",
        default=DEFAULT_SUITES,
        help=f"Debian releases of the container hosts, round robin (default {DEFAULT_SUITES})",
    )
    up.add_argument("--vm", action="store_true")
    up.add_argument(
        "--vm-suite",
        default=DEFAULT_VM_SUITE,
        choices=sorted(SUITES),
        help=f"Debian release of the VM host vm1 (default {DEFAULT_VM_SUITE})",
    )
    up.add_argument("--selinux-vm", action="store_true", help="also vm2: Debian with SELinux, booted permissive")
    sub.add_parser("status")
    usage = sub.add_parser("usage", help="each container host's inotify instances and watches, tasks, open "
                           "files and memory")  # fmt: skip
    usage.add_argument("--json", action="store_true")
    sub.add_parser("down")
    sub.add_parser("leftovers")
    build = sub.add_parser("build")
    build.add_argument("--suites", default=",".join(SUITES))
    op_up = sub.add_parser("operator-up", help="boot this machine's root file system (a throw-away overlay) "
                           "with systemd as PID 1, in this machine's network")  # fmt: skip
    op_up.add_argument("--timeout", type=float, default=60, help="seconds to wait for its systemd (default 60)")
    op_up.add_argument("--json", action="store_true", help="print its state (leader pid, root) as JSON")
    sub.add_parser("operator-down", help="stop the operator machine; nothing of it stays")
    op_run = sub.add_parser("operator-run", help="run a command inside the operator machine")
    op_run.add_argument("--user", help="as this user (runuser), not root")
    op_run.add_argument("--cwd", help="in this directory (a path inside it)")
    op_run.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("lab: run as root (it makes namespaces, mounts and cgroups)")
    if args.cmd == "up":
        if not 0 <= args.containers <= MAX_CONTAINERS:
            raise SystemExit(f"lab: --containers must be between 0 and {MAX_CONTAINERS}")
        unknown = [s for s in args.suites.split(",") if s not in SUITES]
        if unknown or (args.containers and not args.suites.strip(",")):
            raise SystemExit(
                f"lab: --suites: unknown release {unknown or args.suites!r} (the lab builds {', '.join(SUITES)})"
            )
        cmd_up(args)
    elif args.cmd == "status":
        return cmd_status(args)
    elif args.cmd == "usage":
        return cmd_usage(args)
    elif args.cmd == "down":
        cmd_down(args)
    elif args.cmd == "leftovers":
        return cmd_leftovers(args)
    elif args.cmd == "operator-up":
        cmd_operator_up(args)
    elif args.cmd == "operator-down":
        operator_down()
    elif args.cmd == "operator-run":
        return cmd_operator_run(args)
    elif args.cmd == "build":
        for s in args.suites.split(","):
            build_rootfs(s)
            build_vm_image(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
