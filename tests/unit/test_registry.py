"""The registry of managed paths is the one source of every path table: each CIS 3 control
and each 1.1.x watch of the catalogue has its row, and the areas' tables derive from it."""

from pathlib import Path

from dockguard.operations import audit, content, docker_files, dockerd, hostpaths

from dockguard import controls, registry

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def covered_by_rows() -> set[str]:
    cis = {p.cis for p in registry.PATHS if p.mode} | {cis for cis, _ in registry.UNIT_RULES.values()}
    return cis | {registry.CERT_RULE[0]}


def watches() -> set[str]:
    return (
        {p.audited for p in registry.PATHS if p.audited}
        | {w for _, w in registry.UNIT_RULES.values()}
        | set(registry.BINARY_WATCHES.values())
    )


def test_every_cis_3_control_has_a_row():
    section3 = {c.cis for c in controls.CONTROLS if c.cis.startswith("3.")}
    assert section3 and section3 <= covered_by_rows(), section3 - covered_by_rows()


def test_every_audit_watch_control_has_a_row():
    audit_controls = {c.cis for c in controls.CONTROLS if c.title.startswith("Audit ")}
    assert audit_controls == {f"1.1.{n}" for n in range(3, 19)}
    assert audit_controls <= watches(), audit_controls - watches()


def test_the_areas_tables_derive_from_the_registry():
    rules = {(r.cis, r.path, r.user, r.group, r.max_mode, r.exact) for r in docker_files.FIXED_RULES}
    assert rules == {(p.cis, p.path, p.owner, p.group, p.mode, p.exact) for p in registry.PATHS if p.mode}
    assert set(audit.AUDITED) == {p.path for p in registry.PATHS if p.audited}
    assert set(content.MANAGED) == {p.path for p in registry.PATHS if p.template} | {registry.LEGACY_DROPIN} | set(
        registry.OS_FILES
    ) | set(registry.AUTHZ_FILES)
    assert set(hostpaths.PATHS) == {p.path for p in registry.PATHS if p.mode or p.audited} | set(
        registry.UPSTREAM_BINS.values()
    )
    assert set(hostpaths.BINARIES) == set(registry.BINARY_WATCHES)


def test_the_rollback_set_is_the_rows_marked_so_in_a_fixed_order():
    assert set(registry.ROLLBACK) == {p.path for p in registry.PATHS if p.rollback}
    assert len(registry.ROLLBACK) == len(set(registry.ROLLBACK))
    assert dockerd.CONFIG_FILES == registry.ROLLBACK
    # The TLS key is part of it (a rollback restores the pair dockerd started with).
    assert registry.SERVER_KEY in dockerd.CONFIG_FILES


def test_every_template_exists():
    for p in registry.PATHS:
        if p.template:
            assert (TEMPLATES / p.template).is_file(), p.template


def test_paths_are_unique():
    paths = [p.path for p in registry.PATHS]
    assert len(paths) == len(set(paths))


def test_areas_a_setting_can_switch_off_are_the_deploys_areas():
    from dockguard import deploy, settings

    assert settings.AREAS == deploy.AREA_NAMES
    assert settings.problems({"dockguard_disabled_areas": ["lynis", "firewall"]}) == []
    assert settings.problems({"dockguard_disabled_areas": ["lynis", "firewal"]}) == [
        "dockguard_disabled_areas: unknown area 'firewal' (areas: lynis, mac, authz, dockerd, registries, files, audit, docker_group, "
        "sshd, kernel, os_packages, accounts, firewall)"
    ]


def test_the_os_baseline_files_are_read_with_the_others():
    from dockguard.operations import accounts, firewall, kernel, os_packages

    written = {
        kernel.SYSCTL_FILE, kernel.BLACKLIST_FILE, accounts.LIMITS_FILE, accounts.COREDUMP_FILE,
        accounts.TIMEOUT_FILE, accounts.ISSUE, accounts.ISSUE_NET, *os_packages.FILES, firewall.SCRIPT, firewall.UNIT,
    }  # fmt: skip
    assert written == set(registry.OS_FILES)
