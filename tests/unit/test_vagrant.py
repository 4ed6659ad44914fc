"""The Vagrant lab: the Vagrantfile as Vagrant itself reads it, and inventory/vagrant.py.

Vagrant runs here without a provider (CI has neither VirtualBox nor libvirt, and no box can
be downloaded): `vagrant validate --ignore-provider` evaluates and validates the Vagrantfile,
and a command defined in a scratch VAGRANT_HOME's Vagrantfile prints each machine's
configuration as Vagrant merged it, to check it against MACHINES of the inventory. Vagrant
runs on a copy of the Vagrantfile and the inventory in a temporary directory (it writes
.vagrant/ where it runs). Without the vagrant binary these tests skip, unless
DOCKGUARD_REQUIRE_VAGRANT=1 (`make unit`, so CI) makes that a failure.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Prints {machine: its merged configuration} as JSON: `vagrant dockguard-machines`.
DUMP_PLUGIN = r"""
require "json"

class DockguardMachinesCommand < Vagrant.plugin("2", :command)
  def self.synopsis
    "dockguard tests: each machine's configuration as JSON"
  end

  def execute
    machines = @env.machine_names.to_h do |name|
      vm = @env.vagrantfile.machine_config(name, nil, @env.boxes)[:config].vm
      [name, {
        box: vm.box,
        hostname: vm.hostname,
        private_ips: vm.networks.select { |type, _| type == :private_network }.map { |_, o| o[:ip] },
        providers: vm.__providers.map(&:to_s),
        provisioners: vm.provisioners.map { |p| p.type.to_s },
        synced_folders: vm.synced_folders.values.to_h { |f| [f[:guestpath], f[:disabled] ? "disabled" : "enabled"] },
        virtualbox_errors: vm.get_provider_config(:virtualbox)._detected_errors,
      }]
    end
    puts JSON.generate(machines)
    0
  end
end

class DockguardMachinesPlugin < Vagrant.plugin("2")
  name "dockguard-machines"
  command("dockguard-machines") { DockguardMachinesCommand }
end
"""

# `vagrant ssh-config` of three running VirtualBox machines, as Vagrant 2.3.4 renders it
# (templates/commands/ssh_config/config.erb; an IdentityFile path with a space is quoted).
SSH_CONFIG = """\
Host debian12
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/op/dockguard/.vagrant/machines/debian12/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host ubuntu2404
  HostName 127.0.0.1
  User vagrant
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/op/my projects/dockguard/.vagrant/machines/ubuntu2404/virtualbox/private_key"
  IdentitiesOnly yes
  LogLevel FATAL

Host rocky9
  HostName 127.0.0.1
  User vagrant
  Port 2201
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /home/op/dockguard/.vagrant/machines/rocky9/virtualbox/private_key
  IdentitiesOnly yes
  LogLevel FATAL

"""

# `vagrant status --machine-readable` (lib/vagrant/ui.rb MachineReadable: commas in data are
# %!(VAGRANT_COMMA), newlines \n): two machines up (one on libvirt), one never created.
STATUS = """\
1732329600,debian12,metadata,provider,virtualbox
1732329600,ubuntu2404,metadata,provider,virtualbox
1732329600,rocky9,metadata,provider,libvirt
1732329601,debian12,provider-name,virtualbox
1732329601,debian12,state,running
1732329601,debian12,state-human-short,running
1732329601,debian12,state-human-long,The VM is running. To stop this VM%!(VAGRANT_COMMA) you can run `vagrant halt` to\\nshut it down forcefully%!(VAGRANT_COMMA) or you can run `vagrant suspend` to simply\\nsuspend the virtual machine.
1732329601,ubuntu2404,provider-name,virtualbox
1732329601,ubuntu2404,state,not_created
1732329601,ubuntu2404,state-human-short,not created
1732329601,ubuntu2404,state-human-long,The environment has not yet been created. Run `vagrant up` to\\ncreate the environment.
1732329602,rocky9,provider-name,libvirt
1732329602,rocky9,state,running
1732329602,rocky9,state-human-short,running
1732329602,rocky9,state-human-long,The Libvirt domain is running.
1732329602,,ui,info,Current machine states:\\n\\ndebian12                  running (virtualbox)\\nubuntu2404                not created (virtualbox)\\nrocky9                    running (libvirt)
"""

# What Vagrant 2.3.4 printed here, with no provider installed.
STATUS_NO_PROVIDER = (
    "1795400770,,ui,error,No usable default provider could be found for your system.\\n\\nVagrant relies on "
    'interactions with 3rd party systems%!(VAGRANT_COMMA) known as\\n"providers"%!(VAGRANT_COMMA) ...\n'
    "1795400770,,error-exit,Vagrant::Errors::NoDefaultProvider,No usable default provider could be found for "
    "your system.\\n\\nVagrant relies on interactions with 3rd party systems%!(VAGRANT_COMMA) known as ...\n"
)


def _require_vagrant() -> None:
    if shutil.which("vagrant"):
        return
    if os.environ.get("DOCKGUARD_REQUIRE_VAGRANT") == "1":
        pytest.fail("vagrant is not installed but DOCKGUARD_REQUIRE_VAGRANT=1 (make deps installs it)")
    pytest.skip("vagrant is not installed (apt-get install vagrant); DOCKGUARD_REQUIRE_VAGRANT=1 makes this fail")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A copy of the Vagrantfile and inventory/vagrant.py, and an environment for Vagrant that
    uses a scratch VAGRANT_HOME (no boxes or plugins of the user's; the dump command)."""
    base = tmp_path_factory.mktemp("vagrant")
    shutil.copy(ROOT / "Vagrantfile", base / "Vagrantfile")
    (base / "inventory").mkdir()
    shutil.copy(ROOT / "inventory" / "vagrant.py", base / "inventory" / "vagrant.py")
    home = base / "vagrant.d"
    home.mkdir()
    (home / "Vagrantfile").write_text(DUMP_PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAGRANT_")}
    env |= {"VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return base, env


@pytest.fixture(scope="module")
def inventory(lab):
    """inventory/vagrant.py (the copy, beside its Vagrantfile) as a module. Loading it looks for
    running machines, as pyinfra does: there are none in the copy, so it has no hosts."""
    base, env = lab
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("VAGRANT_")]:
            mp.delenv(key)
        mp.setenv("VAGRANT_HOME", env["VAGRANT_HOME"])
        mp.setenv("VAGRANT_CHECKPOINT_DISABLE", "1")
        spec = importlib.util.spec_from_file_location("dockguard_vagrant_inventory", base / "inventory" / "vagrant.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def _vagrant(lab, *args):
    base, env = lab
    return subprocess.run(["vagrant", *args], cwd=base, env=env, capture_output=True, text=True, timeout=300)


def test_vagrantfile_validates(lab):
    _require_vagrant()
    r = _vagrant(lab, "validate", "--ignore-provider")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Vagrantfile validated successfully." in r.stdout


def test_vagrantfile_machines_are_the_inventorys(lab, inventory):
    """Names, boxes, hostnames and addresses as Vagrant evaluated them agree with MACHINES;
    both providers are configured; nothing provisions (dockguard installs Docker); no share."""
    _require_vagrant()
    r = _vagrant(lab, "dockguard-machines")
    assert r.returncode == 0, r.stdout + r.stderr
    machines = json.loads(r.stdout.strip().splitlines()[-1])

    assert list(machines) == list(inventory.MACHINES)
    lab_net = ipaddress.ip_network("192.168.56.0/24")
    for name, m in machines.items():
        expected = inventory.MACHINES[name]
        assert m["box"] == expected["box"], name
        assert m["hostname"] == name
        assert m["private_ips"] == [expected["ip"]], name
        assert ipaddress.ip_address(expected["ip"]) in lab_net, name
        assert {"virtualbox", "libvirt"} <= set(m["providers"]), name
        assert m["provisioners"] == [], f"{name}: Docker is installed by dockguard, not by a provisioner"
        assert m["synced_folders"].get("/vagrant") == "disabled", name
        assert m["virtualbox_errors"] == [], name
    assert len({m["private_ips"][0] for m in machines.values()}) == len(machines), "addresses must differ"


def test_inventory_without_running_machines_has_no_hosts(lab, inventory, capsys):
    """No machine of the copy was ever created: no hosts and one line saying why (with or
    without a usable provider on this machine), no traceback."""
    _require_vagrant()
    assert inventory.debian_family == [] and inventory.rhel_family == []
    assert inventory.running_hosts() == []
    err = capsys.readouterr().err
    assert err.startswith("inventory/vagrant.py: "), err
    assert "`vagrant status` failed, so there are no hosts: " in err or "no Vagrant machine is running (" in err, err


def test_inventory_without_vagrant_says_so(inventory, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert inventory.running_hosts() == []
    assert capsys.readouterr().err == (
        "inventory/vagrant.py: vagrant is not installed (apt-get install vagrant), so there are no hosts\n"
    )


def test_parse_ssh_config(inventory):
    blocks = inventory.parse_ssh_config(SSH_CONFIG)
    assert list(blocks) == ["debian12", "ubuntu2404", "rocky9"]
    assert blocks["ubuntu2404"]["identityfile"] == [
        "/home/op/my projects/dockguard/.vagrant/machines/ubuntu2404/virtualbox/private_key"
    ]
    assert {name: inventory.ssh_data(b) for name, b in blocks.items()} == {
        name: {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": port,
            "ssh_user": "vagrant",
            "ssh_key": key,
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        }
        for name, port, key in [
            ("debian12", 2222, "/home/op/dockguard/.vagrant/machines/debian12/virtualbox/private_key"),
            ("ubuntu2404", 2200, "/home/op/my projects/dockguard/.vagrant/machines/ubuntu2404/virtualbox/private_key"),
            ("rocky9", 2201, "/home/op/dockguard/.vagrant/machines/rocky9/virtualbox/private_key"),
        ]
    }


def test_parse_ssh_config_libvirt_and_blank_lines(inventory):
    """vagrant-libvirt gives the VM's own address and port 22; a blank line inside a block and
    the insecure key listed after the machine's own key change nothing."""
    text = (
        "Host rocky9\n  HostName 192.168.121.17\n  User vagrant\n\n  Port 22\n"
        "  IdentityFile /srv/dg/.vagrant/machines/rocky9/libvirt/private_key\n"
        "  IdentityFile /root/.vagrant.d/insecure_private_key\n  IdentitiesOnly yes\n"
    )
    data = inventory.ssh_data(inventory.parse_ssh_config(text)["rocky9"])
    assert (data["ssh_hostname"], data["ssh_port"], data["ssh_key"]) == (
        "192.168.121.17",
        22,
        "/srv/dg/.vagrant/machines/rocky9/libvirt/private_key",
    )


def test_ssh_data_refuses_what_it_cannot_carry(inventory):
    block = inventory.parse_ssh_config(SSH_CONFIG)["debian12"]
    with pytest.raises(ValueError, match="proxycommand"):
        inventory.ssh_data(block | {"proxycommand": ["ssh -W %h:%p kvmhost"]})
    with pytest.raises(ValueError, match="no identityfile"):
        inventory.ssh_data({k: v for k, v in block.items() if k != "identityfile"})


def test_parse_status(inventory):
    assert inventory.parse_status(STATUS) == {
        "debian12": {"provider": "virtualbox", "state": "running"},
        "ubuntu2404": {"provider": "virtualbox", "state": "not_created"},
        "rocky9": {"provider": "libvirt", "state": "running"},
    }
    assert inventory.status_error(STATUS) is None
    assert inventory.parse_status(STATUS_NO_PROVIDER) == {}
    assert inventory.status_error(STATUS_NO_PROVIDER) == "No usable default provider could be found for your system."


def test_hosts_data_and_groups(inventory):
    """Each host: Vagrant's connection, its own known_hosts with accept-new, sudo, and what
    dockguard needs (install Docker; Docker's repository on Rocky); grouped by family."""
    blocks = inventory.parse_ssh_config(SSH_CONFIG)
    hosts = [inventory.make_host(n, blocks[n], inventory.known_hosts_file(n, "virtualbox")) for n in blocks]
    name, rocky = hosts[2]
    assert name == "rocky9"
    assert rocky["ssh_known_hosts_file"] == str(
        inventory.VAGRANT_ROOT / ".vagrant/machines/rocky9/virtualbox/dockguard_known_hosts"
    )
    assert rocky["ssh_strict_host_key_checking"] == "accept-new"
    assert rocky["_sudo"] is True
    assert (rocky["docker_install"], rocky["docker_source"], rocky["docker_tls_san"]) == (
        True,
        "docker-ce",
        ["192.168.56.9"],
    )
    assert [(n, d["docker_install"], d["docker_source"]) for n, d in hosts[:2]] == [
        ("debian12", True, "distribution"),
        ("ubuntu2404", True, "distribution"),
    ]
    assert {g: [n for n, _ in hs] for g, hs in inventory.by_family(hosts).items()} == {
        "debian_family": ["debian12", "ubuntu2404"],
        "rhel_family": ["rocky9"],
    }


def test_host_data_passes_dockguard_validation(lab, tmp_path):
    """The hosts, as pyinfra loads an inventory like inventory/vagrant.py with running machines,
    are in their groups and in `vagrant`, and their data passes dockguard's settings validation."""
    base, env = lab
    inventory_file = tmp_path / "vagrant.py"
    inventory_file.write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('v', {str(base / 'inventory' / 'vagrant.py')!r})\n"
        "v = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(v)\n"
        f"_blocks = v.parse_ssh_config({SSH_CONFIG!r})\n"
        "_groups = v.by_family([v.make_host(n, b, v.known_hosts_file(n, 'virtualbox')) for n, b in _blocks.items()])\n"
        "debian_family = _groups['debian_family']\n"
        "rhel_family = _groups['rhel_family']\n"
    )
    script = (
        "import sys, json\n"
        "from dockguard import fleet\n"
        f"inv = fleet.load({str(inventory_file)!r})\n"
        "s = fleet.host_settings(inv)\n"
        "print(json.dumps({n: [s[n]['_groups'], s[n]['docker_install'], s[n]['docker_source']] for n in s}))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {
        "debian12": [["debian_family", "vagrant"], True, "distribution"],
        "ubuntu2404": [["debian_family", "vagrant"], True, "distribution"],
        "rocky9": [["rhel_family", "vagrant"], True, "docker-ce"],
    }


def test_the_built_boxes_carry_every_package_the_deploy_installs_on_them():
    """The Vagrant lab's guests have no route out: what dockguard installs on a bare Debian box
    (Docker from the distribution, auditd, AppArmor's tools, Lynis) lies in the box's apt cache."""
    spec = importlib.util.spec_from_file_location("vagrantlab", ROOT / "lab" / "vagrantlab.py")
    vagrantlab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vagrantlab)
    from dockguard.operations import mac, platform

    needed = (
        set(platform.DOCKER_PACKAGES[("distribution", "debian")])
        | {"auditd", "lynis"}
        | set(mac.APPARMOR_PACKAGES)
        | baseline_packages()
    )
    for machine, (suite, _box) in vagrantlab.BOXES.items():
        assert needed <= set(vagrantlab.OFFLINE[suite]), (machine, needed - set(vagrantlab.OFFLINE[suite]))
    assert "docker-cli" in vagrantlab.OFFLINE["trixie"]  # Debian 13's docker client, a Recommends only
    assert vagrantlab.BOXES["debian12"] == ("bookworm", "debian/bookworm64")  # the public box's name


def baseline_packages() -> set[str]:
    """What the OS baseline installs on a Debian host at its defaults (apt-listbugs is opt-in)."""
    from dockguard.operations import os_packages

    from dockguard import settings

    tools = os_packages.tool_packages(settings.SCHEMA["os_packages_tools"].default)
    return {*tools, "unattended-upgrades", "aide", "aide-common", "libpam-pwquality"}


def test_the_lab_images_carry_every_package_the_os_baseline_installs():
    """The local lab's hosts have no route out either: their apt cache holds the baseline's .debs."""
    spec = importlib.util.spec_from_file_location("labctl", ROOT / "lab" / "labctl.py")
    labctl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(labctl)
    assert baseline_packages() <= set(labctl.BASELINE_DEBS), baseline_packages() - set(labctl.BASELINE_DEBS)
