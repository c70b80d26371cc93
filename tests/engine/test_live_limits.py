"""The plan follows the limits of the engine actually built: ``max_model_len`` 8192, one image, 512 answer tokens.

The engine is upstream's ``LLM(...)`` with those three values changed; the plugin reads them
through the paths :mod:`cosmos_upsample_fix.cosmos.live_limits` uses on the installed vLLM,
and every planned request is accepted with exactly the planned length.
"""
from __future__ import annotations

import logging

import pytest
from clips import make_clip

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos.live_limits import CONFIG_PATHS, engine_values, limits_for

from .conftest import PROMPT, UPSTREAM_BUILD, refusal_types
from .test_install import logged_plans

LIMITS = (8192, 1, 512)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("clips")
    return {size: make_clip(folder / f"clip_{size[0]}x{size[1]}.mp4", *size, frames=3)
            for size in [(1024, 1024), (1280, 704), (3840, 2160)]}


def test_live_limits_are_the_engines(engines, upstream, plugin, caplog):
    caplog.set_level(logging.WARNING, logger="cosmos_upsample_fix")
    upsampler = engines.upsampler(*LIMITS)
    assert engines.build["max_model_len"] == 8192 and engines.build["limit_mm_per_prompt"] == {"image": 1}
    assert {k: v for k, v in engines.build.items() if k not in ("max_model_len", "limit_mm_per_prompt")} == {
        "args": [], "model": engines.build["model"],
        **{k: v for k, v in UPSTREAM_BUILD.items() if k not in ("max_model_len", "limit_mm_per_prompt")}}
    llm = upsampler.upsampler_model
    readable = [path for path in CONFIG_PATHS if _has(llm, path)]
    print(f"model config paths on this vLLM: {readable}")
    assert readable
    assert engine_values(llm) == (8192, 1)
    user = Options(max_model_len=4096, reserve_output=300, max_images=2)  # the engine's own values win
    assert limits_for(upsampler, user) == limits_for(upsampler, Options()) == Limits(8192, 512, 1)
    assert not [r for r in caplog.records if r.name.startswith("cosmos_upsample_fix")]


def _has(obj, path: str) -> bool:
    try:
        for part in path.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        return False
    return True


@pytest.mark.parametrize("size", [(1024, 1024), (1280, 704), (3840, 2160)])
def test_the_plan_follows_the_engine_and_is_accepted_at_its_length(engines, upstream, plugin, recorder, clips,
                                                                   caplog, size):
    caplog.set_level(logging.INFO, logger="cosmos_upsample_fix")
    upsampler = engines.upsampler(*LIMITS)
    plugin.install()
    upsampler._prompt_upsample_with_offload(PROMPT, str(clips[size]))
    [(planned, tokens, budget)] = logged_plans(caplog)
    assert budget == 8192 - 512
    [request] = recorder.requests
    assert request.error is None and request.prompt_tokens == [tokens]
    assert request.images == [planned]  # one image: the engine's limit
    if size == (1024, 1024):  # one full-size frame (4160 image tokens) is over 4096 - 300 but fits here
        assert planned == (1024, 1024) and tokens > 4096 - 300


def test_upstreams_two_frames_are_refused_by_an_engine_built_for_one(engines, upstream, recorder, clips):
    upsampler = engines.upsampler(*LIMITS)
    with pytest.raises(refusal_types(), match=r"^At most 1 image\(s\) may be provided in one prompt"):
        upsampler._prompt_upsample_with_offload(PROMPT, str(clips[(1280, 704)]))
