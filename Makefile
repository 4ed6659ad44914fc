# dockguard: the two commands a newcomer runs (as root, on a fresh Debian 12 machine):
#   make demo   boot a lab (2 container hosts + the VM host), harden, verify, print a table
#   make test   unit tests, then end-to-end tests against a lab it boots and tears down
SHELL := /bin/bash
.DEFAULT_GOAL := help

N ?= 2
VM ?= 0
# Debian releases: container host N gets the Nth of SUITES (round robin); the VM host runs VM_SUITE.
SUITES ?= bookworm,trixie
VM_SUITE ?= trixie
SELINUX ?= 0
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LABCTL := $(PY) lab/labctl.py
APT_PACKAGES := debootstrap systemd systemd-container qemu-system-x86 qemu-utils e2fsprogs iproute2 \
	openssh-client python3-venv ca-certificates vagrant

.PHONY: help deps venv lock promtool vagrant-deps vagrant-boxes vagrant-test lab-up lab-status lab-down lab-leftovers operator-up operator-down demo test unit e2e \
	lint docs readme bench

# Install the Debian packages of $(1) that are missing (a machine that has them is not sent to the network).
define apt_install
@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	| grep -q 'ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
	echo "installing:" $$missing; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $$missing >/dev/null; \
fi
endef

help:
	@echo "make demo | make test | make lab-up N=3 [SUITES=bookworm,trixie] [VM=1 [VM_SUITE=trixie]] [SELINUX=1]" \
		"| make lab-status | make lab-down"

deps:  ## apt packages the lab needs (installed only when missing)
	$(call apt_install,$(APT_PACKAGES))

$(BIN)/.installed: pyproject.toml requirements.lock | deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# Every dependency (and the test tools) at the versions and hashes of requirements.lock,
	@# then dockguard itself, editable: the `dockguard` command, and this checkout's code.
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

lock:  ## regenerate requirements.lock (hashes) from pyproject.toml, with pip-tools in a throw-away venv
	$(PY) -m venv /tmp/dockguard-piptools && /tmp/dockguard-piptools/bin/pip install -q pip-tools
	/tmp/dockguard-piptools/bin/pip-compile -q --generate-hashes --extra test --strip-extras \
		--output-file requirements.lock pyproject.toml

venv: $(BIN)/.installed

lab-up: deps
	$(LABCTL) up --containers $(N) --suites $(SUITES) $(if $(filter 1,$(VM)),--vm --vm-suite $(VM_SUITE)) \
		$(if $(filter 1,$(SELINUX)),--selinux-vm)

lab-status:
	@$(LABCTL) status

lab-down:
	$(LABCTL) down

lab-leftovers:  ## fails if lab-down left a namespace, mount, cgroup or process behind
	@$(LABCTL) leftovers && echo "lab: nothing left behind"

# The operator machine: this machine's own root file system booted with systemd as PID 1 (a throw-away
# systemd-nspawn overlay in this machine's network), for the e2e test of the drift timer when this
# machine has no systemd; that test boots and stops it itself. `labctl.py operator-run -- CMD` runs in it.
operator-up:
	$(LABCTL) operator-up

operator-down:
	$(LABCTL) operator-down

# The Vagrant lab end to end (lab/vagrantlab.py): the Vagrantfile's Debian machine(s) booted by
# `vagrant up --provider=libvirt` (QEMU emulation) from boxes built here, the README's Vagrant
# commands, `vagrant destroy -f`, and a teardown that is checked. VAGRANT_MACHINES: debian12, debian13.
VAGRANT_APT := vagrant vagrant-libvirt libvirt-daemon-system dnsmasq-base fdisk grub-pc-bin grub2-common \
	qemu-system-x86 qemu-utils debootstrap iptables
VAGRANT_MACHINES ?= debian12

vagrant-deps:
	$(call apt_install,$(VAGRANT_APT))

vagrant-boxes: vagrant-deps
	$(PY) lab/vagrantlab.py boxes $(VAGRANT_MACHINES)

vagrant-test: venv vagrant-deps
	$(PY) lab/vagrantlab.py test $(VAGRANT_MACHINES)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# promtool (the metrics and alert rules of pull mode are checked with it): extracted from Debian's
# prometheus package, which is not installed (it would start a Prometheus server).
PROMTOOL_DIR := /var/cache/dockguard-lab/promtool
PROMTOOL := $(PROMTOOL_DIR)/usr/bin/promtool
$(PROMTOOL):
	mkdir -p $(PROMTOOL_DIR)
	cd $(PROMTOOL_DIR) && { apt-get download -q prometheus >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get download -q prometheus; }; } && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb
	test -x $@

promtool: $(PROMTOOL)

unit: venv $(PROMTOOL)
	DOCKGUARD_REQUIRE_VAGRANT=1 DOCKGUARD_REQUIRE_PROMTOOL=1 DOCKGUARD_PROMTOOL=$(PROMTOOL) $(BIN)/pytest tests/unit

e2e: venv
	@# One pytest per lane of the lab (lab/e2e_lanes.py: the container hosts', the VM's) side by side; it fails
	@# unless every test ran in a lane and every lane passed.
	DOCKGUARD_REQUIRE_LAB=1 DOCKGUARD_NO_SKIPS=1 DOCKGUARD_E2E_SHUFFLE=1 $(BIN)/python lab/e2e_lanes.py --durations=25

demo: venv deps
	@$(LABCTL) down >/dev/null 2>&1 || true
	$(LABCTL) up --containers 2 --suites $(SUITES) --vm --vm-suite $(VM_SUITE)
	@# Lynis (with its before/after index) on the container hosts; under the VM's emulation it takes ~9 min.
	$(BIN)/pyinfra -y --limit lab_containers --data lynis_enabled=true inventory/lab.py deploy.py
	$(BIN)/pyinfra -y --limit lab_vms inventory/lab.py deploy.py
	-$(BIN)/dockguard report inventory/lab.py
	$(BIN)/dockguard drift inventory/lab.py
	@echo; echo "The lab is still running: ssh -F /var/lib/dockguard-lab/ssh/config dh1 (or dh2, vm1);" \
		"make lab-down when done."

# The whole suite: lint, unit tests, a lab of 2 container hosts + the VM host,
# end-to-end tests, and a teardown that runs even when a test fails.
test: venv deps
	$(MAKE) lint unit
	@$(LABCTL) down >/dev/null 2>&1 || true
	@set -o pipefail; trap '$(LABCTL) down' EXIT; \
		$(LABCTL) up --containers $(N) --suites $(SUITES) --vm --vm-suite $(VM_SUITE) && \
		$(MAKE) e2e
	$(MAKE) lab-leftovers

docs: venv  ## regenerate the table of settings in docs/settings.md from dockguard/settings.py
	$(BIN)/python -c 'import re, pathlib; from dockguard.settings import markdown_table as t; \
		p = pathlib.Path("docs/settings.md"); s = p.read_text(); \
		p.write_text(re.sub(r"(<!-- settings:start[^\n]*-->\n).*?(<!-- settings:end -->)", \
		lambda m: m[1] + t() + "\n" + m[2], s, flags=re.S))'

readme: docs  ## the old name of `make docs`

# Issue 7's benchmark: dockguard against an equivalent Ansible playbook (the `bench` extra) on the
# running lab's container hosts; it never starts or stops the lab.
# Writes bench/results.json and prints a table; see bench/README.md.
# Issue 17's rows: 1 to 100 hosts (the playbook at 1 and 10), and 10 hosts at 0, 50 and 150 ms of
# round trip, both tools (`make lab-up N=100` first).
BENCH_SIZES ?= 1,10,50,100
BENCH_ANSIBLE_SIZES ?= 1,10
BENCH_RTTS ?= 0,50,150
BENCH_REPEAT ?= 3
BENCH_APT := iptables  # the WAN rows' redirect to their delaying relay (nat OUTPUT)
bench: venv
	$(call apt_install,$(BENCH_APT))
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py --sizes $(BENCH_SIZES) --ansible-sizes $(BENCH_ANSIBLE_SIZES) --rtts $(BENCH_RTTS) \
		--repeat $(BENCH_REPEAT) --out bench/results.json
