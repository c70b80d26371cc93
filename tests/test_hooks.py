"""The preprocessor registry: entry points, order, disabling, chaining."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from cosmos_upsample_fix import hooks
from cosmos_upsample_fix.hooks import ENTRY_POINT_GROUP, UpsamplerCall, active_hooks, register, run_hooks, unregister


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.delenv(hooks.DISABLE_ENV, raising=False)
    monkeypatch.delenv(hooks.ORDER_ENV, raising=False)
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


def test_the_package_registers_its_budget_fitter_as_an_entry_point():
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert eps["budget_fit"].value == "cosmos_upsample_fix.runtime:budget_fit_preprocessor"
    from cosmos_upsample_fix.runtime import budget_fit_preprocessor

    assert eps["budget_fit"].load() is budget_fit_preprocessor


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
    monkeypatch.setenv(hooks.DISABLE_ENV, "mine, budget_fit")
    assert [h.name for h in active_hooks() if h.name in ("mine", "budget_fit")] == []
    monkeypatch.setenv(hooks.DISABLE_ENV, "all")
    assert active_hooks() == []
    assert run_hooks(call("video.mp4")) == "video.mp4"


def test_order_env_puts_named_hooks_first(clean, monkeypatch):
    register("a", make("a", 1, []))
    register("b", make("b", 2, []))
    clean.extend(["a", "b"])
    monkeypatch.setenv(hooks.ORDER_ENV, "budget_fit,b")
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
    from cosmos_upsample_fix.runtime import budget_fit_preprocessor

    assert {h.name: h for h in active_hooks()}["budget_fit"].func is budget_fit_preprocessor


def test_a_broken_entry_point_is_skipped_with_a_warning(monkeypatch, caplog, clean):
    class Broken:
        name, value = "broken", "nowhere:missing"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    real = hooks.entry_points
    monkeypatch.setattr(hooks, "entry_points", lambda group: [*real(group=group), Broken()])
    with caplog.at_level("WARNING", logger="cosmos_upsample_fix.hooks"):
        names = [h.name for h in active_hooks()]
    assert "broken" not in names and "budget_fit" in names
    assert any("broken" in r.getMessage() for r in caplog.records)


def test_an_exception_in_a_hook_propagates(clean):
    def bad(call):
        raise RuntimeError("boom")

    register("bad", bad, order=1)
    clean.append("bad")
    with pytest.raises(RuntimeError, match="boom"):
        run_hooks(call("v.mp4"), [h for h in active_hooks() if h.name == "bad"])
