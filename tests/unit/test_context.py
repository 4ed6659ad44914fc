"""One Context per host and run: the preflight hands in readings for every host while one
host's deploy runs, and each host's context must hold that host's own settings."""

from types import SimpleNamespace

from dockguard.operations import Context, PerHost


class Data(dict):
    def dict(self):
        return dict(self)


def test_a_context_made_for_another_host_has_that_hosts_settings(monkeypatch):
    monkeypatch.setattr(Context, "_hosts", {})
    tls = SimpleNamespace(name="tls-host", data=Data(docker_tcp_listen="0.0.0.0:2376"))
    plain = SimpleNamespace(name="plain-host", data=Data())
    facts = PerHost(type("Fact", (), {}))
    facts.set(tls, {"read": "by the preflight"})  # as the preflight does, from whichever host runs it
    facts.set(plain, {"read": "too"})
    assert Context.of(tls).cfg["docker_tcp_listen"] == "0.0.0.0:2376"
    assert Context.of(plain).cfg["docker_tcp_listen"] is None
    assert Context.of(plain).facts == {facts.key: {"read": "too"}}


def test_refresh_forgets_facts_not_notes(monkeypatch):
    monkeypatch.setattr(Context, "_hosts", {})
    h = SimpleNamespace(name="h", data=Data())
    ctx = Context.of(h)
    ctx.remember("k", 1)
    ctx.area("content")["x"] = 2
    ctx.notes.append({"cis": "2.x", "reason": "r", "operation": None})
    ctx.refresh()
    assert ctx.facts == {} and ctx.scratch == {} and len(ctx.notes) == 1
