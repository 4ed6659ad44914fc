# pyinfra reads this file before it loads the inventory and deploy.
REQUIRE_PYINFRA_VERSION = ">=3.10,<3.11"
# Lab and fleet hosts are reached as root or with passwordless sudo; never prompt.
FAIL_PERCENT = None
# dockguard's speed-ups that must be in place before pyinfra connects (see dockguard/compat.py).
try:
    from dockguard.compat import install_early_speedups as _early
except ImportError:  # pyinfra run from another directory: dockguard is not on the path yet
    pass
else:
    _early()
