"""Installing a distribution package that a control needs, with the host's own
package manager (apt on Debian/Ubuntu, dnf on the RHEL family)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, operation


@operation()
def installed(present: bool, apt: str, dnf: str):
    """Install the package unless ``present`` (read by the control's own fact)."""
    if present:
        host.noop(f"{apt} is installed")
        return
    yield StringCommand(
        f"if command -v apt-get >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q {apt}; "
        f"else dnf install -y -q {dnf}; fi"
    )
