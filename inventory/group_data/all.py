"""dockguard defaults for every host. Override per group (group_data/<group>.py)
or per host in the inventory. Every setting is documented in operations/settings.py;
an unknown docker_*/dockguard_* key or a wrong type stops the run before any host
is touched."""

# CIS 2.2: no inter-container communication on the default bridge
docker_icc = False
# CIS 2.3
docker_log_level = "info"
# CIS 2.14: containers cannot gain privileges via setuid binaries
docker_no_new_privileges = True
# CIS 2.15: containers survive a dockerd restart (not with Swarm mode)
docker_live_restore = True
# CIS 2.16
docker_userland_proxy = False
# CIS 2.13: container logs and their rotation
docker_log_driver = "json-file"
docker_log_max_size = "10m"
docker_log_max_file = 3
