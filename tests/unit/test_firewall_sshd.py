"""The firewall's rules and script, and sshd's drop-in checks: what they may never do."""

from __future__ import annotations

import json
from pathlib import Path

from dockguard.operations import content, firewall, sshd

from dockguard import settings

FACTS = Path(__file__).parent / "facts"


def cfg(**over):
    c = settings.defaults()
    c.update(over)
    return c


def recorded() -> dict:
    return json.loads((FACTS / "firewall.FirewallState" / "debian12_dropping.json").read_text())["fact"]


def test_the_recorded_host_is_in_line_with_the_settings_it_was_hardened_with():
    c = cfg(firewall_input_drop=True, firewall_published_ports={"tcp/8080": ["10.213.1.1/32"]})
    assert firewall.problems(recorded(), c) == []
    # Another allowlist: only dockguard's own chain differs.
    c["firewall_published_ports"] = {"tcp/8080": ["10.0.0.0/8"]}
    assert firewall.problems(recorded(), c) == ["IPv4 chain DGD-PUB differs from dockguard's rules"]


def test_the_script_touches_only_dockguards_chains():
    c = cfg(firewall_input_drop=True, firewall_published_ports={"tcp/80": ["192.0.2.0/24"]})
    text = firewall.script(c, [22])
    assert "flush ruleset" not in text and " -F" not in text and " -X" not in text
    assert "-P FORWARD" not in text and "DOCKER-ISOLATION" not in text
    for line in text.splitlines():
        if line.startswith("-A "):
            assert line.split()[1] in (firewall.INPUT, firewall.PUB), line
    # The jump is appended: INPUT rules already there (fail2ban's bans) come first.
    assert "iptables -w 5 -A INPUT -j DGD-INPUT" in text and "-I INPUT" not in text


def test_input_is_never_opened_where_dockguard_did_not_close_it():
    text = firewall.script(cfg(firewall_input_drop=False), [22])
    for tool in ("iptables", "ip6tables"):
        assert f"if {tool} -w 5 -C INPUT -j DGD-INPUT 2>/dev/null; then {tool} -w 5 -P INPUT ACCEPT;" in text


def test_a_family_without_an_ssh_source_is_not_closed():
    c = cfg(firewall_input_drop=True, firewall_ssh_sources=["203.0.113.0/24"])
    assert firewall.drops(c, 4) and not firewall.drops(c, 6)
    text = firewall.script(c, [22])
    assert "iptables -w 5 -P INPUT DROP" in text and "ip6tables -w 5 -P INPUT DROP" not in text
    assert "-A DGD-INPUT -s 203.0.113.0/24 -p tcp -m tcp --dport 22 -j ACCEPT" in text


def test_ssh_on_every_port_sshd_listens_on_and_the_tls_port():
    c = cfg(firewall_input_drop=True, docker_tcp_listen="0.0.0.0:2376")
    want = firewall.rules(c, [22, 2222], 4)[firewall.INPUT]
    assert "-A DGD-INPUT -p tcp -m tcp --dport 2222 -j ACCEPT" in want
    assert "-A DGD-INPUT -p tcp -m tcp --dport 2376 -j ACCEPT" in want


def test_published_ports_match_dnated_connections_by_their_original_port():
    c = cfg(firewall_published_ports={"tcp/8080": ["10.0.0.0/8", "192.0.2.7"], "udp/53": ["0.0.0.0/0"]})
    pub = firewall.rules(c, [22], 4)[firewall.PUB]
    match = "-p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 --ctdir ORIGINAL"
    assert pub == [
        f"-A DGD-PUB -s 10.0.0.0/8 {match} -j RETURN",
        f"-A DGD-PUB -s 192.0.2.7/32 {match} -j RETURN",
        f"-A DGD-PUB {match} -j DROP",
    ]  # udp/53 is open to every source: nothing to restrict


def test_sources_with_a_scope_id_or_other_text_are_refused_before_any_host():
    for bad in ("fe80::1%eth0", "fe80::1%x';touch /tmp/x;'", "10.0.0.0/8 ", "any"):
        assert settings.problems({"firewall_ssh_sources": [bad]}), bad
        assert settings.problems({"firewall_published_ports": {"tcp/80": [bad]}}), bad
        assert settings.problems({"os_packages_fail2ban_ignoreip": [bad]}), bad
    assert settings.problems({"firewall_published_ports": {"tcp/80": ["10.0.0.0/8", "2001:db8::/32"]}}) == []
    assert settings.problems({"firewall_input_allow": {"sctp/9": ["10.0.0.0/8"]}})


def test_sshd_values_another_file_sets_first_are_reported():
    text = content.render(sshd.TEMPLATE, cfg=settings.defaults())
    effective = {k: v for k, v in sshd.wanted(text).items()}
    effective["permitrootlogin"] = "without-password"  # sshd -T's spelling of prohibit-password
    assert sshd.overridden(text, effective) == []
    effective["maxsessions"] = "10"
    assert sshd.overridden(text, effective) == ["maxsessions 10, not 4"]


def test_the_sshd_drop_in_keeps_what_pyinfra_and_docker_need():
    text = content.render(sshd.TEMPLATE, cfg=settings.defaults())
    assert "Subsystem" not in text  # sftp stays as the host has it
    assert "Port" not in text.split() and "ListenAddress" not in text
    assert "MaxSessions 4" in text.splitlines()
