# pyinfra reads this file before it loads the inventory and deploy.
REQUIRE_PYINFRA_VERSION = ">=3.10,<3.11"
# Lab and fleet hosts are reached as root or with passwordless sudo; never prompt.
FAIL_PERCENT = None
