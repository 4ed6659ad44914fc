"""The kernel and accounts areas: garbled fact output fails that host only
(FactProcessError), login.defs keeps every byte it does not set, and what the
sysctl.d file may never hold."""

import base64
import re

import pytest
from dockguard.operations import accounts, content, kernel
from pyinfra.api.exceptions import FactProcessError

from dockguard import settings


@pytest.mark.parametrize(
    "output,message",
    [
        (["w fs.suid_dumpable 0"], "cut short"),  # no end marker
        (["w fs.suid_dumpable 0", "end 2"], "cut short"),  # a key lost
        (["x fs.suid_dumpable 0", "end 1"], "unexpected line"),
        (["w fs.suid_dumpable 0", "w fs.suid_dumpable 0", "end 2"], "unexpected line"),
        (["w $(reboot) 0", "end 1"], "unexpected line"),
        (["- kernel.sysrq 1", "end 1"], "unexpected line"),
        (["end 0", "w fs.suid_dumpable 0"], "after its end"),
        (["sh: 1: tr: not found"], "unexpected line"),
    ],
)
def test_garbled_sysctl_output_is_an_error_of_this_host(output, message):
    with pytest.raises(FactProcessError, match=message):
        kernel.SysctlState().process(output)


def stream(*fields: bytes, end: bool = True) -> list[str]:
    raw = b"".join(f + b"\0" for f in fields) + (b"dockguard-end\0" if end else b"")
    return ["accounts:" + base64.b64encode(raw).decode()]


@pytest.mark.parametrize(
    "output,message",
    [
        (stream(b"defs", b"PASS_MAX_DAYS 1\n", end=False), "cut short"),
        (["accounts:!!!"], "not base64"),
        (stream(b"pwquality", b"maybe"), "expected yes or no"),
        (stream(b"compiler", b"/usr/bin/gcc", b"/usr/bin/gcc-14", b"rwxr-xr-x root root", b"no"), "unexpected stat"),
        (stream(b"compiler", b"/usr/bin/gcc", b"/usr/bin/gcc-14"), "unexpected field"),
        (stream(b"shadow", b"x"), "unexpected field"),
    ],
)
def test_garbled_accounts_output_is_an_error_of_this_host(output, message):
    with pytest.raises(FactProcessError, match=message):
        accounts.AccountsState().process(output)


WANTED = accounts.defs_wanted(settings.defaults())


def test_login_defs_rewrite_keeps_every_other_byte_and_converges():
    text = "# caf\udce9\r\nPASS_MAX_DAYS 99999\nPASS_MAX_DAYS\t5\n# SHA_CRYPT_MIN_ROUNDS 5000\n#UMASK\t\t022\nX 1"
    new = accounts.defs_rewrite(text, WANTED)
    assert new.split("\n")[0] == "# caf\udce9\r"
    assert accounts.defs_values(new) == WANTED
    assert "X 1\n" in new and new.count("PASS_MAX_DAYS\t365") == 2  # every active line: the last one wins
    assert accounts.defs_rewrite(new, WANTED) == new


def test_sysctl_file_never_turns_off_what_docker_needs():
    keys = kernel.wanted(settings.defaults())
    text = content.render("etc/sysctl.d/60-dockguard.conf.j2", keys=keys)
    active = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(active) == len(kernel.HARDENING) == len(keys)
    never = re.compile(r"(^|\.)(forwarding|ip_forward|bridge-nf-call-\w+|modules_disabled|route_localnet)$")
    assert not [line for line in active if never.search(line.split(" = ")[0])]
    assert "net.ipv4.conf.all.mc_forwarding = 0" in active  # multicast routing, not IP forwarding


def test_kernel_sysctl_overrides_merge_over_dockguards_keys():
    cfg = {**settings.defaults(), "kernel_sysctl": {"kernel.sysrq": 16, "vm.swappiness": "10"}}
    keys = kernel.wanted(cfg)
    assert keys["kernel.sysrq"] == "16" and keys["vm.swappiness"] == "10"
    assert list(keys)[: len(kernel.HARDENING)] == list(kernel.HARDENING)


def test_blacklist_file_has_install_and_blacklist_per_module():
    text = content.render("etc/modprobe.d/dockguard-blacklist.conf.j2", modules=["usb-storage", "dccp"])
    active = [line for line in text.splitlines() if not line.startswith("#")]
    assert active == [
        "install usb-storage /bin/false",
        "blacklist usb-storage",
        "install dccp /bin/false",
        "blacklist dccp",
    ]
