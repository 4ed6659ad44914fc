"""The deploy file `dockguard audit-containers` hands to pyinfra: it reads each host's
containers and images (one fact, one command) and writes the host's audit on this machine,
in DOCKGUARD_CONTAINERS_DIR. It has no operation: nothing on the host changes."""

import json
import os

from pyinfra import host

from dockguard import containers
from dockguard.operations.containers import ContainerAudit

_fact = host.get_fact(ContainerAudit)
# A fact pyinfra could not read or process comes back as its default ({}): that host was not
# audited, and writes nothing (it is reported unchecked, never clean).
if _fact.get("source") in ("daemon", "disk", "none"):
    with open(os.path.join(os.environ["DOCKGUARD_CONTAINERS_DIR"], f"{host.name}.json"), "w") as _f:
        json.dump({"host": host.name, "source": _fact["source"], "containers": containers.audit(_fact)}, _f)
