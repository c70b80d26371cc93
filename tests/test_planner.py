"""The planner end to end on real clips: PyAV decoding, real tokenizer, real PNG files."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from clips import frame_marker, make_clip, make_image

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import BudgetError, InputError, UpsampleFixError
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model

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
    # fits as is, but over the 1024-px cap: sent at the size the model's own resize makes, same tokens
    assert big.plan.planned.frame_sizes[0] == (1024, 576)
    assert big.plan.planned.prompt_tokens == big.plan.original.prompt_tokens
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
    assert single.plan.kind == "image" and single.plan.planned.frame_sizes == ((1024, 576),)  # the model's size


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


# --------------------------------------------------------------------------- one-frame inputs, EXIF, warnings


def test_one_frame_inputs_send_their_one_frame_by_default(tmp_path):
    one = make_clip(tmp_path / "one.mp4", 1280, 704, frames=1)
    planned = plan_frames(one, PROMPT)
    assert planned.plan.frame_indices == (0,) and planned.plan.original.frame_sizes == ((1280, 704),)
    assert planned.plan.fits and len(planned.images) == 1
    still = make_image(tmp_path / "still.png", 1920, 1080)
    assert len(plan_frames(still, PROMPT).images) == 1
    assert len(plan_frames([str(still)], PROMPT).images) == 1
    # an explicit count the input cannot meet is the user's error
    for source in (one, still):
        with pytest.raises(InputError, match="1 frame"):
            plan_frames(source, PROMPT, Options.build(frames=2))


def test_default_frame_count_follows_the_engine_image_limit(clip_1280):
    planned = plan_frames(clip_1280, PROMPT, limits=Limits(max_images=1))
    assert planned.plan.frame_indices == (0,) and planned.plan.fits


def test_refusals_name_the_flag_of_the_caller(clip_1280):
    with pytest.raises(BudgetError, match="use --upsampler_policy fit"):
        plan_frames(clip_1280, PROMPT, Options.build(policy="none"), flag="--upsampler_policy")
    with pytest.raises(BudgetError, match="use --policy fit"):
        plan_frames(clip_1280, PROMPT, Options.build(policy="fixed:1280x704"))


def test_exif_still_original_counts_the_stored_size(tmp_path):
    from PIL import Image

    path = tmp_path / "portrait.jpg"
    image = Image.new("RGB", (1600, 900), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(path, exif=exif, quality=95)
    planned = plan_frames(path, PROMPT)
    model = load_model()
    assert planned.plan.original.frame_sizes == ((1600, 900),)  # what upstream and vLLM see
    assert planned.plan.original.prompt_tokens == len(model.encode(PROMPT, [Image.open(path)]))
    width, height = planned.plan.planned.frame_sizes[0]
    assert height > width  # the planned frame honours the orientation


def test_tiny_frames_are_warned_about_with_the_prompt_length(clip_1280, caplog):
    long_prompt = "robot arm " * 1700
    with caplog.at_level("WARNING", logger="cosmos_upsample_fix"):
        planned = plan_frames(clip_1280, long_prompt)
    assert max(planned.plan.planned_size) < 320
    text = load_model().text_tokens(long_prompt)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(text) in warnings[0] and "shorter prompt" in warnings[0]
    assert "one frame" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="cosmos_upsample_fix"):
        plan_frames(clip_1280, PROMPT)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_frames_over_the_cap_are_presized_to_the_model_size_and_count_the_same(tmp_path):
    wide = make_image(tmp_path / "wide.png", 2560, 1080, index=2)
    planned = plan_frames(wide, PROMPT)
    assert planned.plan.original.prompt_tokens == planned.plan.planned.prompt_tokens
    assert planned.plan.planned.frame_sizes == ((1024, 432),)
    out = tmp_path / "out"
    out.mkdir()
    files = planned.write(out)
    assert _sent_tokens(files) == planned.plan.planned.prompt_tokens
    assert frame_marker(planned.images[0]) == 2


def test_frames_at_the_cap_pass_through_pixel_identical(tmp_path):
    from PIL import Image

    path = make_image(tmp_path / "cap.png", 1024, 400, index=1)
    planned = plan_frames(path, PROMPT)
    assert planned.plan.planned.frame_sizes == ((1024, 400),)
    assert np.array_equal(planned.images[0], np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1)])
def test_sizes_the_installed_version_rejects_are_never_planned(tmp_path, size):
    from PIL import Image

    model = load_model()
    path = tmp_path / "thin.png"
    Image.new("RGB", size, (200, 30, 30)).save(path)
    planned = plan_frames(path, PROMPT)
    assert planned.plan.fits and not planned.plan.planned.rejected
    out = tmp_path / "out"
    out.mkdir()
    assert _sent_tokens(planned.write(out)) == planned.plan.planned.prompt_tokens
    if model.grid.clamps_to_one_pixel:
        assert planned.plan.original.fits
    else:
        assert planned.plan.original.rejected == (size,) and not planned.plan.original.fits
        assert "rejected" in planned.plan.summary()
        with pytest.raises(BudgetError, match="rejects"):
            plan_frames(path, PROMPT, Options.build(policy="none"))


def test_an_explicit_count_picks_among_listed_images(tmp_path):
    """Upstream sends every listed image; ``frames`` sends that many of them, picked by ``select``."""
    paths = [str(make_image(tmp_path / f"{i}.png", 320 + 32 * i, 240)) for i in range(3)]
    plan = plan_frames(paths, PROMPT, Options.build(frames=2, select="ends")).plan
    assert plan.frame_indices == (0, 2) and plan.planned.frame_sizes == ((320, 240), (384, 240))
    assert plan.original.frame_sizes == ((320, 240), (352, 240), (384, 240)) and plan.select == "ends"
    plan = plan_frames(paths[1:], PROMPT, Options.build(frames=1, select="uniform")).plan
    assert plan.frame_indices == (0,) and plan.original.frame_sizes == ((352, 240), (384, 240))
    with pytest.raises(InputError, match="^1 image given; 2 asked$"):
        plan_frames(paths[:1], PROMPT, Options.build(frames=2))
    with pytest.raises(BudgetError, match=r"--frames 2"):
        plan_frames(paths, PROMPT, Options())
