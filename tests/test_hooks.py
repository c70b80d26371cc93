"""The preprocessor registry: entry points, order, disabling, chaining."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.cosmos import hooks
from cosmos_upsample_fix.cosmos.hooks import (
    ENTRY_POINT_GROUP,
    UpsamplerCall,
    active_hooks,
    register,
    run_hooks,
    unregister,
)


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.delenv(env.DISABLE.name, raising=False)
    monkeypatch.delenv(env.ORDER.name, raising=False)
    names = []
    yield names
    for name in names:
        unregister(name)


def make(name, order, log, result=None):
    def hook(call):
        log.append((name, call.video))
        return result if result is not None else (call.video + [name] if isinstance(call.video, list) else None)

    hook.order = order
    return hook


def call(video=None):
    return UpsamplerCall(video=video if video is not None else [], prompt="p", upsampler=None, workdir=Path("."))


def test_the_budget_fitter_is_built_in_not_an_entry_point(monkeypatch):
    from cosmos_upsample_fix.cosmos.upsampler_call import budget_fit_preprocessor

    assert "budget_fit" not in {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    monkeypatch.setattr(hooks, "entry_points", lambda group: [])  # a copy without installed metadata
    hooks.discover()
    try:
        found = {h.name: h for h in active_hooks()}
        assert found["budget_fit"].func is budget_fit_preprocessor and found["budget_fit"].order == 1000
    finally:
        monkeypatch.undo()
        hooks.discover()


def test_entry_points_are_discovered_once_until_discover(monkeypatch):
    calls = []
    real = hooks.entry_points
    monkeypatch.setattr(hooks, "entry_points", lambda group: calls.append(group) or real(group=group))
    hooks.discover()
    for _ in range(3):
        active_hooks()
    assert calls == [ENTRY_POINT_GROUP]
    hooks.discover()
    assert len(calls) == 2


def test_hooks_run_in_order_and_chain(clean):
    log = []
    for name, order in [("late", 500), ("early", 10), ("also_early", 10)]:
        register(name, make(name, order, log))
        clean.append(name)
    names = [h.name for h in active_hooks()]
    assert names.index("also_early") < names.index("early") < names.index("late") < names.index("budget_fit")
    ours = [h for h in active_hooks() if h.name in ("late", "early", "also_early")]
    result = run_hooks(call([]), ours)
    assert result == ["also_early", "early", "late"]
    # each hook saw what the previous one returned
    assert log == [("also_early", []), ("early", ["also_early"]), ("late", ["also_early", "early"])]


def test_none_keeps_the_input(clean):
    register("noop", lambda c: None, order=1)
    clean.append("noop")
    noop = [h for h in active_hooks() if h.name == "noop"]
    assert run_hooks(call("video.mp4"), noop) == "video.mp4"


def test_disable_by_name_and_all(clean, monkeypatch):
    register("mine", make("mine", 1, []))
    clean.append("mine")
    monkeypatch.setenv(env.DISABLE.name, "mine, budget_fit")
    assert [h.name for h in active_hooks() if h.name in ("mine", "budget_fit")] == []
    monkeypatch.setenv(env.DISABLE.name, "all")
    assert active_hooks() == []
    assert run_hooks(call("video.mp4")) == "video.mp4"


def test_order_env_puts_named_hooks_first(clean, monkeypatch):
    register("a", make("a", 1, []))
    register("b", make("b", 2, []))
    clean.extend(["a", "b"])
    monkeypatch.setenv(env.ORDER.name, "budget_fit,b")
    names = [h.name for h in active_hooks()]
    assert names[:3] == ["budget_fit", "b", "a"]


def test_in_process_registration_overrides_an_entry_point_of_the_same_name(clean):
    replacement = make("budget_fit", 7, [])
    register("budget_fit", replacement)
    clean.append("budget_fit")
    found = {h.name: h for h in active_hooks()}
    assert found["budget_fit"].func is replacement and found["budget_fit"].order == 7
    unregister("budget_fit")
    clean.remove("budget_fit")
    from cosmos_upsample_fix.cosmos.runtime import budget_fit_preprocessor

    assert {h.name: h for h in active_hooks()}["budget_fit"].func is budget_fit_preprocessor


def test_a_broken_entry_point_is_skipped_with_a_warning(monkeypatch, caplog, clean):
    class Broken:
        name, value = "broken", "nowhere:missing"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    real = hooks.entry_points
    monkeypatch.setattr(hooks, "entry_points", lambda group: [*real(group=group), Broken()])
    with caplog.at_level("WARNING", logger="cosmos_upsample_fix.cosmos.hooks"):
        hooks.discover()
        names = [h.name for h in active_hooks()]
    monkeypatch.undo()
    hooks.discover()
    assert "broken" not in names and "budget_fit" in names
    assert any("broken" in r.getMessage() for r in caplog.records)


def test_an_exception_in_a_hook_propagates(clean):
    def bad(call):
        raise RuntimeError("boom")

    register("bad", bad, order=1)
    clean.append("bad")
    with pytest.raises(RuntimeError, match="boom"):
        run_hooks(call("v.mp4"), [h for h in active_hooks() if h.name == "bad"])
