"""Mandatory access control for containers (CIS Docker Benchmark 1.6.0, 5.1 and 5.2):
AppArmor on Debian/Ubuntu, SELinux on the RHEL family (``dockguard_mac``).

AppArmor
* apparmor and apparmor-utils installed. A kernel booted without AppArmor is
  reported with the exact kernel parameters to add (never silently skipped).
* Docker's own docker-default profile must be loaded: dockerd loads it when it
  starts on a kernel with AppArmor, so a daemon that has not is restarted (see
  dockerd.restart_reasons).
* dockguard-default, a stricter profile (templates/etc/apparmor.d/), is written to
  /etc/apparmor.d (loaded at every boot from there) and loaded with
  ``apparmor_parser -r`` only when the file changed or the kernel does not hold it
  in enforce mode; the load is verified with ``aa-status``. Containers opt in with
  ``--security-opt apparmor=dockguard-default``.
* A container host cannot load profiles (the kernel refuses it from a container):
  it says so, keeps the file, and goes on.

SELinux
* container-selinux installed; ``"selinux-enabled": true`` in daemon.json (dockerd.py).
* Permissive is made enforcing (``setenforce 1`` and /etc/selinux/config).
  Disabled cannot be fixed live: enabling needs a full relabel and a reboot. The
  config is set to enforcing, the relabel scheduled (/.autorelabel), and the host
  rebooted only with ``dockguard_allow_reboot``; otherwise the run says so, every
  time, until the operator reboots.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.operations import server

from . import Context, content, drift, packages, platform, registered, say, warn, when

PROFILE = "dockguard-default"
PROFILE_FILE = platform.APPARMOR_PROFILE_FILE
PROFILE_OP = "CIS 5.1: dockguard-default AppArmor profile"
LOAD_OP = "CIS 5.1: dockguard-default loaded in enforce mode (aa-status)"
ENFORCING_OP = "CIS 5.2: SELinux enforcing"
SELINUX_CONFIG = "/etc/selinux/config"
REBOOT_HINT = (
    "add `{params}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot "
    "(with the apparmor package installed)"
)


def apparmor_problem(plat: dict[str, Any]) -> str | None:
    """Why AppArmor profiles cannot be loaded on this host now (None: they can)."""
    aa = plat["apparmor"]
    if plat.get("container"):
        return (
            f"this host is a container ({plat['container']}): AppArmor profiles are loaded by the kernel of "
            "the machine that runs it, not from inside; the profile file is installed for a VM or real host"
        )
    if aa["kernel"] != "Y":
        state = "is not in this kernel" if aa["kernel"] == "absent" else "is disabled in the running kernel"
        return f"AppArmor {state}: " + REBOOT_HINT.format(params=platform.APPARMOR_KERNEL_PARAMETERS)
    return None


def enforced(plat: dict[str, Any], profile: str) -> bool:
    return plat["apparmor"]["profiles"].get(profile) == "enforce"


@operation()
def apparmor_loaded(profile: str, path: str):
    """Load (or replace) the profile and verify it is in enforce mode; gate with ``_if``."""
    yield StringCommand(
        f"apparmor_parser -r {path} && "
        f'aa-status --json | grep -q \'"{profile}": "enforce"\' || '
        f"{{ echo 'dockguard: {profile} is not in enforce mode after apparmor_parser -r {path}' >&2; exit 1; }}"
    )


APPARMOR_PACKAGES = ("apparmor", "apparmor-utils")


def apparmor(cfg: dict[str, Any], plat: dict[str, Any]) -> list:
    missing = [p for p in APPARMOR_PACKAGES if p not in plat["packages"]]
    inst = packages.ensure(
        name="CIS 5.1: AppArmor and its utilities installed",
        present=not missing,
        plat=plat,
        apt=" ".join(missing) or "apparmor",
        dnf="",
    )
    text = content.render("etc/apparmor.d/dockguard-default.j2", name=PROFILE)
    (profile,) = content.files({PROFILE_FILE: (text, "644")}, {PROFILE_FILE: PROFILE_OP})
    problem = apparmor_problem(plat)
    if problem:
        if plat.get("container"):
            say(f"CIS 5.1: {problem}")
        else:
            warn(f"CIS 5.1: {problem}")
            drift("5.1", problem)
        return [inst, profile]
    stale = not enforced(plat, PROFILE)
    if stale:
        mode = plat["apparmor"]["profiles"].get(PROFILE)
        drift("5.1", f"{PROFILE} is {'in ' + mode + ' mode' if mode else 'not loaded'}", operation=LOAD_OP)
    load = when(stale or registered(profile), apparmor_loaded, name=LOAD_OP, profile=PROFILE, path=PROFILE_FILE,
                _if=lambda: stale or profile.did_change())  # fmt: skip
    return [inst, profile, load]


def selinux_commands(plat: dict[str, Any]) -> list[str]:
    """Shell commands that make SELinux enforcing, now (permissive) and at boot (config)."""
    se = plat["selinux"]
    cmds = []
    if se["config"] != "enforcing":
        cmds.append(
            f"if grep -q '^SELINUX=' {SELINUX_CONFIG}; then sed -i 's/^SELINUX=.*/SELINUX=enforcing/' "
            f"{SELINUX_CONFIG}; else echo SELINUX=enforcing >> {SELINUX_CONFIG}; fi"
        )
    if se["mode"] == "permissive":
        cmds.append("setenforce 1")
    elif se["mode"] in (None, "disabled") and not se["relabel_pending"]:
        cmds.append("touch /.autorelabel")
    return cmds


@operation()
def selinux_enforcing(plat: dict[str, Any]):
    """SELinux enforcing now where it runs, and at the next boot everywhere."""
    cmds = selinux_commands(plat)
    if not cmds:
        host.noop("SELinux is enforcing" if plat["selinux"]["mode"] == "enforcing" else "SELinux enforcing at boot")
        return
    yield StringCommand(" && ".join(cmds))


def selinux(cfg: dict[str, Any], plat: dict[str, Any]) -> list:
    se = plat["selinux"]
    policy = "container-selinux" if plat.get("pkg") == "dnf" else "selinux-policy-default"
    inst = packages.ensure(
        name="CIS 5.2: container-selinux installed",
        present=policy in plat["packages"],
        plat=plat,
        apt="selinux-policy-default",
        dnf="container-selinux",
    )
    if se["mode"] != "enforcing":
        drift("5.2", f"SELinux is {se['mode'] or 'not running'}", operation=ENFORCING_OP)
    mode = selinux_enforcing(name=ENFORCING_OP, plat=plat)
    ops = [inst, mode]
    if se["mode"] in (None, "disabled"):
        message = (
            "SELinux is disabled: it is set to enforcing at the next boot, which first relabels every file "
            "(this can take long)"
        )
        if "selinux=0" in plat.get("cmdline", "").split():
            warn(f"CIS 5.2: {message}, but the kernel command line has selinux=0: remove it first (no reboot)")
        elif cfg["dockguard_allow_reboot"]:
            warn(f"CIS 5.2: {message}; rebooting now (dockguard_allow_reboot)")
            ops.append(
                server.reboot(
                    name="CIS 5.2: reboot to relabel and enable SELinux",
                    delay=5,
                    interval=10,
                    reboot_timeout=3600,
                )
            )
        else:
            warn(f"CIS 5.2: {message}; reboot this host when convenient (or set dockguard_allow_reboot: True)")
    return ops


def configure(ctx: Context) -> list:
    """CIS 5.1 (AppArmor) or 5.2 (SELinux), whichever this host's MAC system is."""
    cfg = ctx.cfg
    plat = platform.current()
    kind = platform.mac(plat, cfg)
    if kind is None:
        say("CIS 5.1/5.2: mandatory access control is not managed (dockguard_mac: off)")
        return []
    return apparmor(cfg, plat) if kind == "apparmor" else selinux(cfg, plat)
