"""The lab's SELinux VM (vm2: Debian 12 with Debian's SELinux policy, booted permissive):
dockguard manages SELinux there instead of AppArmor, Debian's default."""

dockguard_mac = "selinux"
