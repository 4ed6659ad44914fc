"""dockguard: declarative Docker-host hardening on pyinfra.

This package holds what is not a pyinfra operation: the command line, drift and
reports, the settings schema, the control catalogue, the registry of managed paths,
the operator's CA and the one module that touches pyinfra's internals (compat). The
control areas (pyinfra facts and operations, one module each) are
``dockguard.operations``, kept in ``operations/`` beside ``templates/`` in a checkout,
and installed as ``dockguard/operations`` and ``dockguard/templates``.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.2.0"

PACKAGE = Path(__file__).resolve().parent
# A checkout: operations/ and deploy.py beside this package. Installed: none of that.
_checkout = PACKAGE.parent
_in_checkout = (_checkout / "operations" / "__init__.py").is_file() and (_checkout / "deploy.py").is_file()
CHECKOUT = _checkout if _in_checkout else None
if CHECKOUT is not None and not (PACKAGE / "operations").is_dir():
    # In a checkout the control areas are ../operations: make them dockguard.operations
    # there too, so one module name serves a checkout and an installed package.
    __path__.append(str(CHECKOUT))  # noqa: F821 - a package's own __path__
ROOT = CHECKOUT or Path.cwd()  # where relative report directories go
TEMPLATES = (CHECKOUT or PACKAGE) / "templates"
# The deploy file pyinfra runs: the checkout's, or the packaged one.
DEPLOY_FILE = CHECKOUT / "deploy.py" if CHECKOUT else PACKAGE / "deploy_file.py"
# The CIS verification suite (testinfra): tests/cis in a checkout, shipped as dockguard/cis.
CIS_SUITE = CHECKOUT / "tests" / "cis" if CHECKOUT else PACKAGE / "cis"
