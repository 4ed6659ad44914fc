"""The lab's SELinux VM (vm2: Debian 12 with Debian's SELinux policy, booted permissive).
dockguard is asked to manage SELinux there instead of AppArmor, Debian's default; Debian's
policy has no container module, so the preflight refuses it (tests/e2e/test_65_selinux.py)."""

dockguard_mac = "selinux"
