#!/usr/bin/env python3
"""dockguard's Vagrant lab, run end to end on this machine: the project's Vagrantfile,
unchanged, under vagrant-libvirt with QEMU emulation.

    vagrantlab.py boxes              build (cached) and add the boxes of the Debian machines
    vagrantlab.py test [MACHINE...]  boxes, libvirt, `vagrant up`, the README's Vagrant commands,
                                     `vagrant destroy -f`, teardown (default machine: debian12)
    vagrantlab.py leftovers          what a run left behind (a daemon, namespace, bridge, mount)

Boxes are built from Debian's archive only, under the names of the public boxes
(debian/bookworm64), so the Vagrantfile stays what a user runs at home. The guests have no
route out: the packages a deploy installs (docker.io, auditd, AppArmor's tools, Lynis) lie in
the box's apt cache, so dockguard's own install steps run for real, from there.

Network rule: libvirt, its bridges, dnsmasq and the guests live in a network namespace made
here (``dgl-vagrant``), and in a mount namespace of their own in which libvirt's state
(/etc/libvirt, /var/lib/libvirt, /run/libvirt) is a directory of this run, and /dev/kvm is
hidden (on this kind of machine KVM hangs its guests, and libvirt would re-probe QEMU on every
define). vagrant, pyinfra and the CIS suite run in the same namespaces. When the run ends the
namespaces go, and with them every bridge, daemon and pool; `leftovers` checks.

Run as root; stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labctl  # noqa: E402  the local lab's cache, mirror, test image and process helpers

ROOT = Path(__file__).resolve().parents[1]
CACHE, MIRROR = labctl.CACHE, labctl.MIRROR
STATE = Path(os.environ.get("DOCKGUARD_VAGRANT_STATE", "/var/lib/dockguard-lab/vagrant"))
NETNS = "dgl-vagrant"
INSECURE_KEY = Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys/vagrant.pub")

# machine of the Vagrantfile -> (Debian suite, box name)
BOXES = {"debian12": ("bookworm", "debian/bookworm64"), "debian13": ("trixie", "debian/trixie64")}
BASE = [
    "systemd-sysv", "udev", "dbus", "linux-image-amd64", "grub-pc-bin", "grub2-common", "initramfs-tools",
    "openssh-server", "sudo", "iproute2", "ca-certificates", "procps", "kmod", "less", "python3",
    "busybox-static",
    # the OS baseline's packages installed, not only cached: see labctl.VM_PREINSTALLED
    *labctl.BASELINE_DEBS,
]  # fmt: skip
# What the deploy installs on a box without Docker (docker_install) and without the host
# controls' tools: kept as .deb files in the box's apt cache (the guests have no network).
# The OS baseline's packages too (labctl.BASELINE_DEBS), with the -security suite in the sources.
OFFLINE = {"bookworm": ["docker.io", "auditd", "apparmor", "apparmor-utils", "lynis", *labctl.BASELINE_DEBS],
           "trixie": ["docker.io", "docker-cli", "auditd", "apparmor", "apparmor-utils", "lynis",
                      *labctl.BASELINE_DEBS]}  # fmt: skip
DISK_GB = 8
NETWORK = """\
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
"""
HOSTKEYS_UNIT = """\
[Unit]
Description=dockguard box: SSH host keys made at first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
# Settings of this lab, not of the project: VAGRANT_HOME's Vagrantfile is merged under the
# project's, so the project's Vagrantfile stays as a user at home runs it.
HOME_VAGRANTFILE = """\
# dockguard's Vagrant lab on this machine (lab/vagrantlab.py): QEMU emulation, no display.
# (No serial console to a file: vagrant-libvirt 0.11.2 fails to merge `serial` from this
# Vagrantfile with a project Vagrantfile that sets none.)
Vagrant.configure("2") do |config|
  config.vm.boot_timeout = 900
  config.vm.provider "libvirt" do |lv|
    lv.driver = "qemu"
    lv.cpu_mode = "custom"
    lv.cpu_model = "qemu64"
    lv.graphics_type = "none"
    lv.video_type = "none"
  end
end
"""
QEMU_CONF = """\
# dockguard's Vagrant lab: no KVM, no namespaces or security driver of libvirt's own
namespaces = [ ]
security_driver = "none"
user = "root"
group = "root"
dynamic_ownership = 0
"""


def log(msg: str) -> None:
    print(f"vagrant-lab: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str] | str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, shell=isinstance(cmd, str), **kw)


def box_dir(machine: str) -> Path:
    suite, name = BOXES[machine]
    # any change to how a box is built makes a new one
    source = "".join(inspect.getsource(f) for f in (build_box, _customise, labctl._make_test_image, _disk))
    recipe = labctl._key(suite, MIRROR, *BASE, *OFFLINE[suite], NETWORK, HOSTKEYS_UNIT, str(DISK_GB), source)
    return CACHE / f"box-{machine}-{recipe}"


def build_box(machine: str) -> Path:
    """The box file (package.box) of one machine, built once and cached."""
    out = box_dir(machine)
    box = out / "package.box"
    if box.exists():
        return box
    suite, name = BOXES[machine]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    tree = out / "root"
    log(f"building {name} from Debian {suite} (debootstrap, kernel, GRUB; a few minutes)")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE)}", suite, str(tree), MIRROR],
        stdout=subprocess.DEVNULL)  # fmt: skip
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    (tree / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {suite} main\ndeb {labctl.SECURITY_MIRROR} {suite}-security main\n"
    )
    run(["chroot", str(tree), "apt-get", "update", "-qq"], env=env)
    run(["chroot", str(tree), "apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends",
         *OFFLINE[suite]], env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    _customise(tree)
    labctl._make_test_image(tree)  # the busybox image the CIS suite's container checks import
    disk = out / "disk.raw"
    _disk(tree, disk)
    shutil.rmtree(tree)
    run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(out / "box.img")])
    disk.unlink()
    (out / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2",
                                                   "virtual_size": DISK_GB}))  # fmt: skip
    (out / "Vagrantfile").write_text('Vagrant.configure("2") do |config|\nend\n')
    run(["tar", "-C", str(out), "-cf", str(out / "package.box.tmp"), "metadata.json", "box.img", "Vagrantfile"])
    (out / "box.img").unlink()
    (out / "package.box.tmp").rename(box)
    log(f"{name} built in {time.monotonic() - t0:.0f}s ({box.stat().st_size >> 20} MiB)")
    return box


def _customise(tree: Path) -> None:
    key = next(iter(INSECURE_KEY), None)
    if key is None:
        raise SystemExit("vagrant-lab: Vagrant's insecure public key not found: apt-get install vagrant")
    run(["chroot", str(tree), "useradd", "-m", "-s", "/bin/bash", "vagrant"])
    ssh = tree / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(key.read_text())
    (ssh / "authorized_keys").chmod(0o600)
    run(["chroot", str(tree), "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"])
    sudoers = tree / "etc/sudoers.d/vagrant"
    sudoers.write_text("vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n")
    sudoers.chmod(0o440)
    for k in (tree / "etc/ssh").glob("ssh_host_*"):
        k.unlink()
    (tree / "etc/systemd/system/dockguard-box-hostkeys.service").write_text(HOSTKEYS_UNIT)
    (tree / "etc/systemd/network/10-box.network").write_text(NETWORK)
    wants = tree / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit, target in (
        ("systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"),
        ("dockguard-box-hostkeys.service", "/etc/systemd/system/dockguard-box-hostkeys.service"),
    ):
        (wants / unit).unlink(missing_ok=True)
        (wants / unit).symlink_to(target)
    (tree / "etc/systemd/system/systemd-networkd-wait-online.service").unlink(missing_ok=True)
    (tree / "etc/systemd/system/systemd-networkd-wait-online.service").symlink_to("/dev/null")
    (tree / "etc/fstab").write_text("LABEL=dgbox / ext4 rw,errors=remount-ro 0 1\n")
    (tree / "etc/hostname").write_text("debian\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 debian\n")
    (tree / "etc/machine-id").write_text("")
    grub = tree / "boot/grub"
    grub.mkdir(parents=True, exist_ok=True)
    (grub / "grub.cfg").write_text(
        "set timeout=0\nsearch --no-floppy --label dgbox --set=root\n"
        "linux /vmlinuz root=LABEL=dgbox ro console=ttyS0 net.ifnames=0\ninitrd /initrd.img\nboot\n"
    )


def _disk(tree: Path, disk: Path) -> None:
    """One MBR partition at 1 MiB holding an ext4 made from ``tree`` (mkfs.ext4 -d, at an offset:
    no loop device, which this kernel would not scan for partitions), and GRUB before it."""
    size = DISK_GB << 30
    with open(disk, "wb") as f:
        f.truncate(size)
    run(["sfdisk", "-q", str(disk)], input=b"label: dos\nstart=2048, type=83, bootable\n")
    run(["mkfs.ext4", "-q", "-F", "-L", "dgbox", "-E", "offset=1048576", "-d", str(tree), str(disk),
         f"{(size >> 10) - 1024}k"], stdout=subprocess.DEVNULL)  # fmt: skip
    lib = Path("/usr/lib/grub/i386-pc")
    core = disk.with_name("core.img")
    modules = ["biosdisk", "part_msdos", "ext2", "search", "search_label", "linux", "normal", "configfile", "echo"]
    run(["grub-mkimage", "-O", "i386-pc", "-o", str(core), "-p", "(hd0,msdos1)/boot/grub", *modules])
    with open(disk, "r+b") as f:
        f.write((lib / "boot.img").read_bytes()[:440])
        f.seek(512)
        data = core.read_bytes()
        if len(data) > 2047 * 512:
            raise SystemExit("vagrant-lab: GRUB's core.img does not fit before the partition")
        f.write(data)
    core.unlink()


# --------------------------------------------------------------------------- the run


def vagrant_home() -> Path:
    return STATE / "home"


def add_boxes(machines: list[str]) -> None:
    home = vagrant_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "Vagrantfile").write_text(HOME_VAGRANTFILE)
    env = dict(os.environ, VAGRANT_HOME=str(home))
    for machine in machines:
        box = build_box(machine)
        name = BOXES[machine][1]
        marker = home / f".dockguard-{machine}"
        if marker.exists() and marker.read_text() == box_dir(machine).name:
            continue
        run(["vagrant", "box", "add", "--force", "--name", name, str(box)], env=env, stdout=subprocess.DEVNULL)
        marker.write_text(box_dir(machine).name)


def inside(script: str) -> list[str]:
    """argv: ``script`` (sh) in the lab's network namespace, in a mount namespace whose libvirt
    state is this run's and where /dev/kvm is hidden."""
    mounts = STATE / "ns"
    return ["ip", "netns", "exec", NETNS, "unshare", "--mount", "--propagation", "private", "sh", "-ec",
            f"for d in etc/libvirt var/lib/libvirt run/libvirt var/cache/libvirt var/log/libvirt; do "
            f"mkdir -p {mounts}/$d /$d; mount --bind {mounts}/$d /$d; done; "
            f"if [ -e /dev/kvm ]; then : > {mounts}/kvm; mount --bind {mounts}/kvm /dev/kvm; fi; "
            + script]  # fmt: skip


def cmd_test(machines: list[str]) -> int:
    missing = [t for t in ("vagrant", "libvirtd", "virtlogd", "dnsmasq", "qemu-system-x86_64", "sfdisk",
                           "grub-mkimage", "debootstrap") if not shutil.which(t)]  # fmt: skip
    if missing:
        raise SystemExit(f"vagrant-lab: missing {missing}: run `make vagrant-deps` first")
    if STATE.joinpath("ns").exists() or NETNS in run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        cmd_down()
    t0 = time.monotonic()
    add_boxes(machines)
    t_boxes = time.monotonic() - t0
    ns = STATE / "ns"
    (ns / "etc/libvirt").mkdir(parents=True)
    for f in Path("/etc/libvirt").iterdir():  # the packaged configuration, then ours for QEMU
        if f.is_file():
            shutil.copy2(f, ns / "etc/libvirt" / f.name)
    (ns / "etc/libvirt/qemu.conf").write_text(QEMU_CONF)
    run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    env = {
        "VAGRANT_HOME": str(vagrant_home()),
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "PYINFRA": str(ROOT / ".venv/bin/pyinfra"),
        "PY": str(ROOT / ".venv/bin/python"),
        "DOCKGUARD": str(ROOT / ".venv/bin/dockguard"),
        "MACHINES": " ".join(machines),
        "REPORTS": str(ROOT / "reports" / "vagrant"),
    }
    script = (ROOT / "lab" / "vagrant-test.sh").read_text()
    log(f"boxes ready in {t_boxes:.0f}s; starting libvirt in {NETNS} and `vagrant up {' '.join(machines)}`")
    try:
        r = subprocess.run(inside(script), cwd=ROOT, env=dict(os.environ, **env))
    finally:
        cmd_down()
    left = leftovers()
    for line in left:
        log(f"left behind: {line}")
    log(f"vagrant lab: {'passed' if r.returncode == 0 and not left else 'FAILED'} in {time.monotonic() - t0:.0f}s")
    return r.returncode or (1 if left else 0)


def _pids(pattern: str) -> list[int]:
    out = run(["pgrep", "-f", pattern], check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def _netns_pids() -> list[int]:
    """Every process in the lab's network namespace, from /proc (a process that exits while it is
    read is skipped, where `ip netns pids` can give up)."""
    try:
        inode = os.stat(f"/run/netns/{NETNS}").st_ino
    except FileNotFoundError:
        return []
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(d / "ns/net").st_ino == inode:
                    pids.append(int(d.name))
    return pids


def cmd_down() -> None:
    """Stop every process in the lab's network namespace (libvirtd, virtlogd, dnsmasq, the guests'
    QEMU: nothing else lives there), wait until each is gone, then remove the namespace, libvirt's
    state of this run and Vagrant's machine directory."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        pids = _netns_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(labctl._alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.5)
    run(["ip", "netns", "delete", NETNS], check=False, stderr=subprocess.DEVNULL)
    shutil.rmtree(STATE / "ns", ignore_errors=True)
    shutil.rmtree(ROOT / ".vagrant", ignore_errors=True)


def leftovers() -> list[str]:
    found = []
    if NETNS in run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        found.append(f"netns {NETNS}")
    for pattern in ("libvirtd", "virtlogd", "dnsmasq", "qemu-system-x86_64 -name guest="):
        found += [f"process {p} ({pattern})" for p in _pids(pattern) if labctl._alive(p)]  # a zombie is gone
    links = run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
              if line.split(":")[1].strip().startswith(("virbr", "vnet"))]  # fmt: skip
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if str(STATE) in line.split()[4]:
            found.append(f"mount {line.split()[4]}")
    if (STATE / "ns").exists():
        found.append(f"directory {STATE / 'ns'} (libvirt's state: pools, volumes, networks)")
    if (ROOT / ".vagrant").exists():
        found.append(f"directory {ROOT / '.vagrant'}")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vagrantlab")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boxes")
    b.add_argument("machines", nargs="*", default=["debian12"])
    t = sub.add_parser("test")
    t.add_argument("machines", nargs="*", default=["debian12"])
    sub.add_parser("down")
    sub.add_parser("leftovers")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("vagrant-lab: run as root (namespaces, libvirt, debootstrap)")
    for m in getattr(args, "machines", []):
        if m not in BOXES:
            raise SystemExit(f"vagrant-lab: {m!r}: boxes can be built here for {', '.join(BOXES)} only")
    if args.cmd == "boxes":
        add_boxes(args.machines)
    elif args.cmd == "test":
        return cmd_test(args.machines)
    elif args.cmd == "down":
        cmd_down()
    elif args.cmd == "leftovers":
        left = leftovers()
        for line in left:
            print(line)
        return 1 if left else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
