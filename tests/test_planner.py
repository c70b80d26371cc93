"""The planner end to end on real clips: PyAV decoding, real tokenizer, real PNG files."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from clips import frame_marker, make_clip, make_image

from cosmos_upsample_fix.budget import Limits
from cosmos_upsample_fix.errors import BudgetError, InputError, UpsampleFixError
from cosmos_upsample_fix.model import load_model
from cosmos_upsample_fix.options import Options
from cosmos_upsample_fix.planner import plan_frames

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."


def _sent_tokens(files, prompt=PROMPT) -> int:
    """Tokens of the request upstream builds from these PNG files (data URLs, as upstream sends them)."""
    urls = ["data:image/jpeg;base64," + base64.b64encode(Path(f).read_bytes()).decode() for f in files]
    return len(load_model().encode(prompt, urls))


@pytest.fixture(scope="module")
def clip_1280(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("c") / "wide.mp4", 1280, 704, frames=6)


def test_large_clip_is_downsampled_to_fit_and_the_written_frames_count_exactly(clip_1280, tmp_path):
    planned = plan_frames(clip_1280, PROMPT)
    plan = planned.plan
    assert plan.original.frame_sizes == ((1280, 704), (1280, 704))
    assert plan.original.prompt_tokens == 4699 and not plan.original.fits
    assert plan.fits and plan.planned.frame_sizes == ((928, 512), (928, 512))
    files = planned.write(tmp_path)
    assert [f.name for f in files] == ["frame_1.png", "frame_2.png"]
    assert _sent_tokens(files) == plan.planned.prompt_tokens == 3795
    # the frames are the first two, downsampled (markers survive the Lanczos resize)
    assert [frame_marker(im) for im in planned.images] == [0, 1]


def test_fitting_clip_gives_exactly_upstreams_request(tmp_path):
    clip = make_clip(tmp_path / "vga.mp4", 640, 480, frames=4, codec="mpeg4")
    planned = plan_frames(clip, PROMPT)
    assert planned.plan.planned == planned.plan.original
    assert planned.plan.planned.prompt_tokens == 2479
    files = planned.write(tmp_path / "out") if (tmp_path / "out").mkdir() is None else None
    assert _sent_tokens(files) == 2479


@pytest.mark.parametrize("select, expected", [("first", [0, 1]), ("uniform", [0, 9]), ("ends", [0, 9])])
def test_selection_reaches_the_planned_frames(tmp_path, select, expected):
    clip = make_clip(tmp_path / "c.mp4", 320, 240, frames=10)
    planned = plan_frames(clip, PROMPT, Options.build(select=select))
    assert list(planned.plan.frame_indices) == expected
    assert [frame_marker(im) for im in planned.images] == expected


def test_engine_limits_are_honoured(clip_1280):
    small = plan_frames(clip_1280, PROMPT, limits=Limits(max_model_len=2048, reserved_output_tokens=300))
    assert small.plan.planned.prompt_tokens <= 2048 - 300
    big = plan_frames(clip_1280, PROMPT, limits=Limits(max_model_len=8192))
    assert big.plan.planned.frame_sizes[0] == (1280, 704)  # fits as is: passed through
    one = plan_frames(clip_1280, PROMPT, Options.build(frames=1))
    assert len(one.plan.planned.frame_sizes) == 1 and one.plan.fits
    with pytest.raises(BudgetError, match="allows 2 images"):
        plan_frames(clip_1280, PROMPT, Options.build(frames=3))


def test_image_list_and_single_image(tmp_path):
    a = make_image(tmp_path / "a.png", 1920, 1080, index=3)
    b = make_image(tmp_path / "b.png", 800, 1200, index=5)
    planned = plan_frames([str(a), str(b)], PROMPT)
    assert planned.plan.kind == "images" and planned.plan.fits
    assert [frame_marker(im) for im in planned.images] == [3, 5]
    out = tmp_path / "out"
    out.mkdir()
    assert _sent_tokens(planned.write(out)) == planned.plan.planned.prompt_tokens
    single = plan_frames(str(a), PROMPT, Options.build(frames=1))
    assert single.plan.kind == "image" and single.plan.planned.frame_sizes == ((1920, 1080),)


def test_policies_reach_the_frames(clip_1280):
    assert plan_frames(clip_1280, PROMPT, Options.build(policy="max-side:640")).images[0].shape == (352, 640, 3)
    assert plan_frames(clip_1280, PROMPT, Options.build(policy="fixed:320x180")).images[0].shape == (180, 320, 3)
    with pytest.raises(BudgetError, match="4699"):
        plan_frames(clip_1280, PROMPT, Options.build(policy="none"))


def test_prompt_too_long_names_the_text_tokens(clip_1280):
    prompt = "robot arm " * 2500
    text_tokens = load_model().text_tokens(prompt)
    with pytest.raises(BudgetError) as info:
        plan_frames(clip_1280, prompt)
    assert str(text_tokens) in str(info.value)


def test_write_never_overwrites(clip_1280, tmp_path):
    planned = plan_frames(clip_1280, PROMPT)
    (tmp_path / "frame_1.png").write_bytes(b"user data")
    with pytest.raises(InputError, match="already exists"):
        planned.write(tmp_path)
    assert (tmp_path / "frame_1.png").read_bytes() == b"user data"


def test_input_is_never_modified(clip_1280):
    before = (hashlib.sha256(clip_1280.read_bytes()).hexdigest(), os.stat(clip_1280).st_mtime_ns)
    plan_frames(clip_1280, PROMPT, Options.build(select="uniform"))
    assert (hashlib.sha256(clip_1280.read_bytes()).hexdigest(), os.stat(clip_1280).st_mtime_ns) == before


@pytest.mark.parametrize("bad", ["missing.mp4", "dir", "junk.mp4"])
def test_bad_input_is_a_one_line_package_error(tmp_path, bad):
    (tmp_path / "dir").mkdir()
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(UpsampleFixError) as info:
        plan_frames(tmp_path / bad, PROMPT)
    assert "\n" not in str(info.value) and bad in str(info.value)
