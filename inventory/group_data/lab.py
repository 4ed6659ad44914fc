"""Settings for the local lab's hosts (group `lab`, from inventory/lab.py).

This machine gives its processes a hard limit of 20000 open files and no way to
raise it (no CAP_SYS_RESOURCE), so dockerd in a lab host cannot hand containers
more: the default of 65536 would make every container start fail, and the
preflight refuses it. The lab uses a limit that fits.
"""

docker_default_ulimits = {"nofile": {"soft": 16384, "hard": 16384}, "nproc": {"soft": 8192, "hard": 16384}}

# Lynis audits a host in about 40 s on a container host and about 9 minutes under
# the VM's emulation, and dockguard re-audits after every run that changes a host.
# The end-to-end tests turn it on for the hosts that test it; `make demo` runs it
# on the container hosts.
lynis_enabled = False

# The lab's hosts serve nothing but SSH (and dockerd's TLS port where a test turns it on):
# the INPUT policy drops, as an operator would set it once every service is listed.
firewall_input_drop = True
