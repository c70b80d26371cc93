"""``install()`` on upstream's upsampler class, on the real vLLM engine.

Both of upstream's methods (``_prompt_upsample_with_offload``, and ``_prompt_upsample`` as a
direct caller uses it), offload off and on. The frames the engine receives must be the ones
the plugin planned and logged, with ``len(prompt_token_ids)`` equal to the planned count; the
engine is built once per call with offload and never again without it.
"""
from __future__ import annotations

import logging
import re

import pytest
from clips import make_clip

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model

from .conftest import PROMPT, refusal_types, refused_count

PLAN_LINE = re.compile(r"^cosmos-upsample-fix: upsampler frames .* -> (\d+)x(\d+) \((\d+) tokens of (\d+)\)")


def logged_plans(caplog: pytest.LogCaptureFixture) -> list[tuple[tuple[int, int], int, int]]:
    """((width, height), planned tokens, prompt budget) of each plan the plugin logged."""
    plans = []
    for record in caplog.records:
        found = PLAN_LINE.match(record.getMessage())
        if found and record.name.startswith("cosmos_upsample_fix"):
            width, height, tokens, budget = map(int, found.groups())
            plans.append(((width, height), tokens, budget))
    return plans


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "1280x704": make_clip(folder / "robot.mp4", 1280, 704, frames=3),
        "1920x1080": make_clip(folder / "hd.mp4", 1920, 1080, frames=3),
    }


def assert_sent_as_planned(recorder, caplog, frames: int, budget: int) -> tuple[int, int]:
    """One request, accepted, with the logged plan's frames and exactly its token count."""
    [(size, tokens, logged_budget)] = logged_plans(caplog)
    [request] = recorder.requests
    assert request.error is None
    assert request.prompt_tokens == [tokens]
    assert request.images == [size] * frames
    assert logged_budget == budget and tokens <= budget
    return size


@pytest.mark.parametrize("method", ["_prompt_upsample_with_offload", "_prompt_upsample"])
def test_install_fits_every_call_on_a_loaded_engine(engines, upstream, plugin, recorder, clips, caplog, method):
    caplog.set_level(logging.INFO, logger="cosmos_upsample_fix")
    upsampler = engines.upsampler()
    plugin.install()
    frame_paths = upstream.extract_video_frames(str(clips["1920x1080"]))  # the standalone pipeline passes these
    for source in (str(clips["1280x704"]), str(clips["1920x1080"]), frame_paths):
        recorder.clear()
        caplog.clear()
        answer = getattr(upsampler, method)(PROMPT, source)
        assert isinstance(answer, str)
        assert recorder.builds == []  # no engine built beyond upstream's one in __init__
        assert_sent_as_planned(recorder, caplog, frames=2, budget=4096 - 300)


def test_the_engines_own_refusal_passes_through_the_plugin_unchanged(engines, upstream, plugin, recorder, clips,
                                                                    monkeypatch):
    """on_error=fallback hands upstream the original input; vLLM's refusal (not a ValueError in 0.32) reaches
    the caller as vLLM's own error, not swallowed or reworded by the plugin."""
    upsampler = engines.upsampler()
    plugin.install(policy="none", on_error="fallback")
    with pytest.raises(refusal_types()) as refused:
        upsampler._prompt_upsample_with_offload(PROMPT, str(clips["1280x704"]))
    tokens, limit = refused_count(refused.value)
    assert limit == 4096 and recorder.requests[-1].images == [(1280, 704), (1280, 704)]
    model = load_model(upsampler.checkpoint_dir)
    plan = plan_frames(clips["1280x704"], PROMPT, Options(), limits=Limits(), model=model).plan
    assert tokens == plan.original.prompt_tokens


def test_install_with_offload_builds_one_engine_per_call_for_its_limits(upstream, plugin, recorder, clips, caplog,
                                                                        tiny_checkpoint, monkeypatch):
    """With offload the model loads inside each call; the plan follows the engine loaded then (here
    ``max_model_len`` 6144, where two full-size 1280x704 frames fit), not the 4096 assumed before the load."""
    caplog.set_level(logging.INFO, logger="cosmos_upsample_fix")
    klass = upstream.PixtralPromptUpsampler
    monkeypatch.setattr(klass, "standin_max_model_len", 6144)
    plugin.install()
    upsampler = klass(str(tiny_checkpoint), offload_prompt_upsampler=True)
    assert recorder.builds == [] and getattr(upsampler, "upsampler_model", None) is None
    for calls, clip in enumerate((clips["1280x704"], clips["1920x1080"]), start=1):
        caplog.clear()
        recorder.requests.clear()
        upsampler._prompt_upsample_with_offload(PROMPT, str(clip))
        assert len(recorder.builds) == calls and recorder.builds[-1]["max_model_len"] == 6144
        assert upsampler.upsampler_model is None  # freed again by upstream after the call
        assert_sent_as_planned(recorder, caplog, frames=2, budget=6144 - 300)
        # two full-size frames fit 6144 - 300: sent with all their tokens (a plan for 4096 would cut them)
        [(_size, tokens, _budget)] = logged_plans(caplog)
        full = plan_frames(clip, PROMPT, Options(), limits=Limits(4096), model=load_model(str(tiny_checkpoint))).plan
        assert tokens == full.original.prompt_tokens > 4096 - 300
