"""Upstream's engine and message layout on the real vLLM: what is refused, what is accepted, at what length.

The engine is ``PixtralPromptUpsampler``'s own ``LLM(...)`` (upstream's arguments) on the tiny
Pixtral; requests go through upstream's ``_prompt_upsample`` (one user message: one
``image_url`` per frame, then the text), without the plugin installed. For every input the
plugin's plan (its frames written as it writes them) must be accepted with
``len(prompt_token_ids)`` equal to the planned count, and upstream's own frames refused with
vLLM's message naming the plugin's count of that request (or accepted with that count).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from clips import SHARED_VIDEOS, make_clip, make_image

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos.live_limits import CONFIG_PATHS, engine_values, limits_for
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model

from .conftest import PROMPT, UPSTREAM_BUILD, refusal_types, refused_count
from .tiny_pixtral import MODEL_SUBDIR

LONG_PROMPT = " ".join(["A robot arm places a red cup on a wooden table beside a window."] * 30)
STILLS = (".png", ".jpg")

GENERATED = {  # name: (width, height, frames or a still's suffix, prompt)
    "1080p": (1920, 1080, 3, PROMPT),
    "4k": (3840, 2160, 2, PROMPT),
    "portrait-1080x1920": (1080, 1920, 2, PROMPT),
    "960x704-empty-prompt": (960, 704, 2, ""),
    "1280x720-long-prompt": (1280, 720, 2, LONG_PROMPT),
    "one-frame-1280x704": (1280, 704, 1, PROMPT),
    "640x480": (640, 480, 3, PROMPT),
    "still-1280x720-png": (1280, 720, ".png", PROMPT),
    "still-1600x1200-jpg": (1600, 1200, ".jpg", PROMPT),
    "1x3000-png": (1, 3000, ".png", PROMPT),
    "3000x1-png": (3000, 1, ".png", PROMPT),
}
SHARED = sorted(p.name for p in SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    made = {}
    for name, (width, height, frames, _prompt) in GENERATED.items():
        if isinstance(frames, str):
            made[name] = make_image(folder / f"{name}{frames}", width, height)
        else:
            made[name] = make_clip(folder / f"{name}.mp4", width, height, frames=frames)
    return made


def upstream_frames(upstream, source: Path) -> list[str]:
    """What upstream sends for ``source``: a video's first two frames as its ``extract_video_frames`` writes them."""
    if source.suffix.lower() in STILLS:
        return [str(source)]
    return upstream.extract_video_frames(str(source))


def check(engines, upstream, recorder, source: Path, prompt: str, tmp_path: Path) -> None:
    upsampler = engines.upsampler()
    limits = limits_for(upsampler, Options())
    assert limits == Limits(4096, 300, 2)
    planned = plan_frames(source, prompt, Options(), limits=limits, model=load_model(upsampler.checkpoint_dir))
    plan = planned.plan
    out = tmp_path / "planned"
    out.mkdir()
    files = [str(p) for p in planned.write(out)]

    recorder.clear()
    upsampler._prompt_upsample(prompt, files)
    [request] = recorder.requests
    assert request.prompt_tokens == [plan.planned.prompt_tokens], plan.summary()
    assert request.images == [tuple(s) for s in plan.planned.frame_sizes]
    assert plan.planned.prompt_tokens <= limits.prompt_budget

    recorder.clear()
    count = plan.original.prompt_tokens
    theirs = upstream_frames(upstream, source)
    if count > limits.max_model_len:
        with pytest.raises(refusal_types()) as refused:
            upsampler._prompt_upsample(prompt, theirs)
        assert refused_count(refused.value) == (count, limits.max_model_len)
    else:
        upsampler._prompt_upsample(prompt, theirs)
        assert recorder.requests[0].prompt_tokens == [count]
    assert recorder.requests[0].images == [tuple(s) for s in plan.original.frame_sizes]


def test_the_engine_is_built_with_upstreams_arguments(engines, upstream, tiny_checkpoint):
    engines.upsampler()
    assert engines.build == {"args": [], "model": str(tiny_checkpoint / MODEL_SUBDIR), **UPSTREAM_BUILD}
    print(f"engine build: {engines.seconds:.1f} s")


def test_two_full_size_1280x704_frames_are_refused_with_the_plugins_count(engines, upstream, recorder, tmp_path):
    upsampler = engines.upsampler()
    clip = make_clip(tmp_path / "robot.mp4", 1280, 704, frames=3)
    plan = plan_frames(clip, PROMPT, Options(), limits=Limits(), model=load_model(upsampler.checkpoint_dir)).plan
    assert not plan.original.fits
    with pytest.raises(refusal_types()) as refused:
        upsampler._prompt_upsample_with_offload(PROMPT, str(clip))  # upstream's whole call, unfitted
    assert refused_count(refused.value) == (plan.original.prompt_tokens, 4096)
    assert recorder.requests[0].images == [(1280, 704), (1280, 704)]
    assert recorder.requests[0].texts == [PROMPT]


def test_a_third_image_is_refused_by_the_engines_image_limit(engines, upstream, recorder, tmp_path):
    upsampler = engines.upsampler()
    frames = [str(make_image(tmp_path / f"f{i}.png", 320, 180, index=i)) for i in range(3)]
    with pytest.raises(refusal_types(), match=r"^At most 2 image\(s\) may be provided in one prompt"):
        upsampler._prompt_upsample(PROMPT, frames)
    upsampler._prompt_upsample(PROMPT, frames[:2])
    assert recorder.requests[1].prompt_tokens is not None


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_input(engines, upstream, recorder, inputs, name, tmp_path):
    check(engines, upstream, recorder, inputs[name], GENERATED[name][3], tmp_path)


@pytest.mark.skipif(not SHARED, reason=f"the shared clips are not here ({SHARED_VIDEOS})")
@pytest.mark.parametrize("name", SHARED)
def test_shared_clip(engines, upstream, recorder, name, tmp_path):
    check(engines, upstream, recorder, SHARED_VIDEOS / name, PROMPT, tmp_path)


def test_live_limits_read_upstreams_engine_through_this_vllms_layout(engines, upstream, caplog):
    upsampler = engines.upsampler()
    llm = upsampler.upsampler_model
    found = {}
    for path in CONFIG_PATHS:
        config = llm
        try:
            for part in path.split("."):
                config = getattr(config, part)
        except AttributeError:
            continue
        found[path] = engine_values(_Only(config, path))
    print(f"model config paths on this vLLM: {found}")
    assert found and set(found.values()) == {(4096, 2)}
    assert engine_values(llm) == (4096, 2)
    assert limits_for(upsampler, Options(max_model_len=8192, reserve_output=100, max_images=1)) == Limits(4096, 300, 2)
    assert not [r for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("cosmos_upsample_fix")]


class _Only:
    """An object exposing ``config`` at ``path`` only: one layout at a time."""

    def __init__(self, config, path: str) -> None:
        head, _, rest = path.partition(".")
        setattr(self, head, _Only(config, rest) if rest else config)
