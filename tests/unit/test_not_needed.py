"""An operation a host does not need is not registered (operations.NotNeeded): decided at
prepare time as the operation itself would decide, and told apart across hosts by a stable
place, whichever other files a host skips."""

import pytest
from dockguard.operations import NotNeeded, content, registered, when
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_host, ctx_state

from dockguard import settings


def test_not_needed_changed_nothing():
    op = NotNeeded("CIS 2.x: /etc/docker/daemon.json content")
    assert not op.did_change() and op.did_not_change() and op.did_succeed() and not op.did_error()
    assert not registered(op) and "daemon.json" in repr(op)


def test_when_calls_the_operation_only_where_needed():
    calls = []

    def op(**kwargs):
        calls.append(kwargs)
        return "registered"

    assert when(True, op, name="x", present=False) == "registered"
    skipped = when(False, op, name="y", present=True)
    assert isinstance(skipped, NotNeeded) and skipped.name == "y"
    assert calls == [{"name": "x", "present": False}]


def _hosts():
    inventory = Inventory((["h1", "h2"], {}))
    return inventory, State(inventory, Config())


def test_files_registers_only_the_files_that_differ_each_at_its_own_place(monkeypatch):
    """h1 lacks both files, h2 holds the first already: h2's operation for the second file
    must be the very operation (same place in the order) as h1's for the second."""
    a, b = sorted(content.MANAGED)[:2]
    specs = {a: ("text of a\n", "644"), b: ("text of b\n", "644")}
    names = {a: "file a", b: "file b"}
    on_host = {"h1": {a: None, b: "0" * 64}, "h2": {a: content.sha256("text of a\n"), b: None}}
    registered_ops = []

    def fake_file(name, path, text, digest, mode):
        from pyinfra import host

        registered_ops.append((host.name, name, path, digest, tuple(host.loop_position)))
        return ("op", name)

    monkeypatch.setattr(content, "file", fake_file)
    inventory, state = _hosts()
    out = {}
    with ctx_state.use(state):
        for h in inventory:
            monkeypatch.setattr(content, "digests", lambda paths, h=h: {p: on_host[h.name][p] for p in paths})
            with ctx_host.use(h):
                out[h.name] = content.files(specs, names)
                assert h.loop_position == []  # the place is taken off again
    assert out["h1"] == [("op", "file a"), ("op", "file b")]
    assert isinstance(out["h2"][0], NotNeeded) and out["h2"][1] == ("op", "file b")
    places = {(h, path): pos for h, _, path, _, pos in registered_ops}
    assert places[("h1", b)] == places[("h2", b)] != places[("h1", a)]
    assert [r[3] for r in registered_ops if r[0] == "h2"] == [None]  # the digest read, handed on


def test_a_file_outside_the_registry_gets_a_stable_place_of_its_own():
    assert content._position("/etc/not-managed") == content._position("/etc/not-managed")
    assert content._position("/etc/not-managed") >= len(content.MANAGED)
    assert content._position(sorted(content.MANAGED)[0]) == 0


@pytest.mark.parametrize(
    ("x", "y"),
    [(True, 1), (0.0, -0.0), ([1], (1,)), ({"a": 1}, {"a": True}), (None, "None"), (b"x", "x"), (1, 1.0)],
)
def test_frozen_tells_apart_values_that_compare_equal(x, y):
    assert settings.frozen(x) != settings.frozen(y)


def test_frozen_is_the_same_for_the_same_value_and_refuses_others():
    assert settings.frozen({"b": [1, "x"], "a": None}) == settings.frozen({"a": None, "b": [1, "x"]})
    hash(settings.frozen({"a": [{"b": (1.5, False)}]}))
    with pytest.raises(TypeError):
        settings.frozen({"a": {1, 2}})


def test_render_kept_per_template_and_data_gives_what_jinja_gives():
    from pyinfra.api.util import get_template

    template = "etc/sysctl.d/60-dockguard.conf.j2"
    for keys in ({"net.ipv4.conf.all.send_redirects": 0}, {"net.ipv4.conf.all.send_redirects": False}):
        jinja = get_template(str(content.TEMPLATES / template)).render(keys=keys)
        assert content.render(template, keys=keys) == jinja
        assert content.render(template, keys=keys) == jinja  # from the kept text
    assert content.render(template, keys={"k": 0}) != content.render(template, keys={"k": False})
