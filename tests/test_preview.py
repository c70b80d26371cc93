"""The preview picture: panels at their sizes, labels equal to the plan, PSNR checked independently.

The independent side: the first frame decoded here with PyAV, the model's view taken from
mistral_common's ``encode_chat_completion`` of a data URL (as vLLM receives the frame),
the CLIP normalisation undone with mistral_common's constants, and PSNR computed here.
"""
from __future__ import annotations

import base64
import importlib
import io
import json
import logging
import math
import re
import types
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.images import resize
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import chunk_classes, load_model
from cosmos_upsample_fix.tools import model_view as model_view_module
from cosmos_upsample_fix.tools import preview

cv2 = pytest.importorskip("cv2")

from clips import SHARED_VIDEOS as SHARED  # noqa: E402

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."


@pytest.fixture(scope="module")
def model():
    return load_model()


def figures(path: Path) -> list[dict]:
    with Image.open(path) as img:
        return json.loads(img.text[preview.PNG_TEXT_KEY])


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def model_view(model, image: np.ndarray) -> np.ndarray:
    """The model's view through mistral_common's chat encoding (as vLLM calls it), as float RGB 0..255."""
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    _, image_url_chunk, text_chunk = chunk_classes()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    request = ChatCompletionRequest(messages=[UserMessage(content=[image_url_chunk(image_url=url),
                                                                   text_chunk(text="x")])])
    encoded = model.tokenizer.encode_chat_completion(request)
    try:  # the constants' home: image.py from mistral_common 1.8, multimodal.py before
        module = importlib.import_module("mistral_common.tokens.tokenizers.image")
    except ImportError:
        module = importlib.import_module("mistral_common.tokens.tokenizers.multimodal")
    mean = np.asarray(module.DATASET_MEAN, np.float32)[:, None, None]
    std = np.asarray(module.DATASET_STD, np.float32)[:, None, None]
    return ((np.asarray(encoded.images[0], np.float32) * std + mean) * 255.0).transpose(1, 2, 0)


def psnr(original: np.ndarray, view: np.ndarray) -> float:
    back = cv2.resize(view, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_CUBIC)
    mse = np.mean((np.clip(back, 0, 255).astype(np.float64) - original.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def numbers(line: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", line)]


def check_preview(path: Path, source: Path, model, tmp_path: Path) -> tuple[list[dict], Image.Image]:
    """Everything a preview must hold for ``source``; returns its figures and picture."""
    out = preview.render_preview(source, PROMPT, Options(), tmp_path / "preview.png", model=model)
    assert out == tmp_path / "preview.png" and out.is_file()
    planned = plan_frames(source, PROMPT, Options(), model=model)
    plan = planned.plan
    panels = figures(out)
    picture = Image.open(out).convert("RGB")
    hint_w, hint_h = preview.hint_size(*plan.original.frame_sizes[0])
    assert [p["title"] for p in panels] == ["plan (fit)", f"{hint_w}x{hint_h} hint", "upstream (original frames)"]
    # the plan's panel: its frame at full planned size, numbers equal to the plan's
    mine = panels[0]
    pw, ph = plan.planned_size
    assert mine["sent"] == [pw, ph]
    x, y, bw, bh = mine["box"]
    assert bw >= pw and bh >= ph and picture.width >= x + bw and picture.height >= y + bh
    assert numbers(mine["label"][0])[:2] == [pw, ph]
    assert numbers(mine["label"][1]) == [plan.planned.tokens_per_frame[0], plan.planned.prompt_tokens,
                                         plan.limits.prompt_budget]
    assert mine["frame_tokens"] == plan.planned.tokens_per_frame[0]
    # the drawn pixels are the model's view of the planned frame (views on the grid: 1:1)
    original = first_frame(source)
    view = model_view(model, planned.images[0])
    assert (bw, bh) == (view.shape[1], view.shape[0])
    drawn = np.asarray(picture.crop((x, y, x + bw, y + bh)))
    assert np.array_equal(drawn, np.clip(np.rint(view), 0, 255).astype(np.uint8))
    expected = psnr(original, view)
    assert_psnr(mine, expected)
    # the hint's panel: counted by the package, viewed and scored independently here
    hint = panels[1]
    hw, hh = preview.hint_size(original.shape[1], original.shape[0])
    hint_count = model.count([(hw, hh)] * len(plan.original.frame_sizes), PROMPT, plan.limits)
    assert numbers(hint["label"][1]) == [hint_count.tokens_per_frame[0], hint_count.prompt_tokens,
                                         plan.limits.prompt_budget]
    hint_frame = resize(original, (hw, hh))  # the package's own filter makes the hint, as it makes the plan
    assert hint["psnr"] == pytest.approx(psnr(original, model_view(model, hint_frame)), abs=1e-3)
    assert float(hint["psnr"]) < float(mine["psnr"])
    # upstream's panel: its request's numbers
    theirs = panels[2]
    assert numbers(theirs["label"][1]) == [plan.original.tokens_per_frame[0], plan.original.prompt_tokens,
                                           plan.limits.prompt_budget]
    assert theirs["fits"] == plan.original.fits
    return panels, picture


def assert_psnr(panel: dict, expected: float) -> None:
    """The panel's PSNR is ``expected``; a view that is the original pixels says so, not "162.75 dB"."""
    if panel["identical"]:
        assert expected > 100 and panel["psnr"] == "inf" and panel["label"][2] == preview.IDENTICAL
        assert "dB" not in panel["label"][2]
    else:
        assert panel["psnr"] == pytest.approx(expected, abs=1e-3)
        assert f"PSNR {expected:.2f} dB" in panel["label"][2]


def assert_does_not_fit(panels: list[dict], picture: Image.Image, over: int) -> None:
    theirs = panels[2]
    assert not theirs["fits"] and theirs["over_by"] == over > 0
    assert theirs["label"][2] == f"does not fit: {over} tokens over" and theirs["view"] is None
    assert theirs["psnr"] is None
    x, y, w, h = theirs["box"]
    inside = np.asarray(picture.crop((x + 10, y + 10, x + w - 10, y + h - 10)))
    assert (inside.reshape(-1, 3) == (236, 236, 236)).all(axis=1).mean() > 0.9  # a placeholder, not a frame


def assert_sent_as_is(panels: list[dict], model, source: Path) -> None:
    theirs = panels[2]
    assert theirs["fits"] and "does not fit" not in " ".join(theirs["label"])
    original = first_frame(source)
    assert_psnr(theirs, psnr(original, model_view(model, original)))


def test_generated_720p_clip_shows_upstream_does_not_fit(video_clip, model, tmp_path):
    clip = video_clip(1280, 704, frames=3)
    panels, picture = check_preview(tmp_path / "p.png", clip, model, tmp_path)
    assert panels[0]["sent"] == [928, 512] and panels[1]["sent"] == [320, 180]
    assert_does_not_fit(panels, picture, 903)


def test_generated_640x480_clip_sends_as_is(video_clip, model, tmp_path):
    clip = video_clip(640, 480, frames=3)
    panels, _ = check_preview(tmp_path / "p.png", clip, model, tmp_path)
    assert panels[0]["sent"] == [640, 480] and panels[0]["identical"]
    assert panels[0]["label"][2] == "PSNR: identical to the original pixels" and panels[0]["psnr"] == "inf"
    assert panels[1]["sent"] == [320, 240]
    assert_sent_as_is(panels, model, clip)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared sample clips are not here")
@pytest.mark.parametrize("name, fits", [("example1_input_video.mp4", True), ("robot_sample_input.mp4", False)])
def test_real_clip(name, fits, model, tmp_path):
    source = SHARED / name
    if not source.is_file():
        pytest.skip(f"{source} is missing")
    panels, picture = check_preview(tmp_path / "p.png", source, model, tmp_path)
    if fits:
        assert_sent_as_is(panels, model, source)
    else:
        assert_does_not_fit(panels, picture, panels[2]["request_tokens"] - panels[2]["budget"])


def test_never_overwrites_and_makes_the_folder(video_clip, model, tmp_path):
    clip = video_clip(320, 240, frames=2)
    existing = tmp_path / "taken.png"
    existing.write_bytes(b"mine")
    with pytest.raises(InputError, match="already exists"):
        preview.render_preview(clip, "", Options(), existing, model=model)
    assert existing.read_bytes() == b"mine"
    made = preview.render_preview(clip, "", Options(), tmp_path / "new" / "dir" / "p.png", model=model)
    assert made.is_file() and figures(made)[0]["sent"] == [320, 240]


def test_without_a_usable_encoder_it_approximates_and_says_so(video_clip, model, tmp_path, monkeypatch, caplog):
    clip = video_clip(1280, 704, frames=2)

    real = type(model.tokenizer).encode_chat_completion

    def no_opencv(self, request, *args, **kwargs):  # text alone still encodes, as without OpenCV
        chunks = [c for m in request.messages if isinstance(m.content, list) for c in m.content]
        if any(getattr(c, "image", None) is not None for c in chunks):
            raise ImportError("OpenCV is required for this function")
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(type(model.tokenizer), "encode_chat_completion", no_opencv)
    with caplog.at_level(logging.WARNING, logger="cosmos_upsample_fix.tools.model_view"):
        out = preview.render_preview(clip, PROMPT, Options(), tmp_path / "p.png", model=model)
    assert "approximated with Pillow" in caplog.text and "demo extra" in caplog.text
    panels = figures(out)
    assert panels[0]["by_encoder"] is False and panels[0]["view"] == [928, 512]
    plan = plan_frames(clip, PROMPT, Options(), model=model).plan
    assert panels[0]["frame_tokens"] == plan.planned.tokens_per_frame[0]


def test_the_view_comes_from_the_public_chat_encoding(video_clip, model, monkeypatch):
    """``encode_chat_completion`` makes the view; the tokenizer's encoder attributes are not read."""
    calls = []
    real = type(model.tokenizer).encode_chat_completion

    def spy(self, request, *args, **kwargs):
        calls.append(request)
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(type(model.tokenizer), "encode_chat_completion", spy)
    image = first_frame(video_clip(1280, 704, frames=1))
    view = model_view_module.Encoder(model).view(image)
    assert len(calls) == 1 and view.by_encoder and view.size == (1024, 576)
    assert view.tokens == model.count([(1280, 704)], "", Limits()).tokens_per_frame[0]
    monkeypatch.undo()
    assert np.array_equal(np.rint(view.pixels), np.rint(model_view(model, image)))
    source = Path(model_view_module.__file__).read_text()
    assert "image_encoder" not in source and "mm_encoder" not in source


def test_normalisation_constants_each_path(monkeypatch, caplog):
    """mistral_common 1.8+ keeps them in tokenizers.image, older ones in tokenizers.multimodal; else none."""
    real = importlib.import_module
    older = types.SimpleNamespace(DATASET_MEAN=(0.5, 0.5, 0.5), DATASET_STD=(0.25, 0.25, 0.25))

    mean, std = model_view_module.clip_constants()  # the installed version's own home
    assert mean.shape == std.shape == (3, 1, 1) and 0.4 < float(mean[0, 0, 0]) < 0.5

    def before_1_8(name, *args):
        if name == model_view_module.CONSTANT_MODULES[0]:
            raise ImportError(f"No module named {name!r}")
        return older if name == model_view_module.CONSTANT_MODULES[1] else real(name, *args)

    monkeypatch.setattr(importlib, "import_module", before_1_8)
    with caplog.at_level(logging.DEBUG, logger="cosmos_upsample_fix.tools.model_view"):
        mean, std = model_view_module.clip_constants()
    assert mean.ravel().tolist() == [0.5] * 3 and std.ravel().tolist() == [0.25] * 3
    assert "no normalisation constants in mistral_common.tokens.tokenizers.image" in caplog.text

    monkeypatch.setattr(importlib, "import_module", lambda name, *a: types.SimpleNamespace())
    with pytest.raises(AttributeError, match="DATASET_MEAN"):
        model_view_module.clip_constants()


def test_without_the_constants_it_approximates_and_says_so(video_clip, model, tmp_path, monkeypatch, caplog):
    def missing():
        raise AttributeError("no DATASET_MEAN/DATASET_STD")

    monkeypatch.setattr(model_view_module, "clip_constants", missing)
    with caplog.at_level(logging.WARNING, logger="cosmos_upsample_fix.tools.model_view"):
        out = preview.render_preview(video_clip(640, 480, frames=2), PROMPT, Options(), tmp_path / "p.png",
                                     model=model)
    assert "approximated with Pillow" in caplog.text
    assert all(p["by_encoder"] is False for p in figures(out) if p["view"])


def test_the_header_says_what_the_text_takes(video_clip, model):
    planned = plan_frames(video_clip(640, 480, frames=2), PROMPT, Options(), model=model)
    header = preview._header(planned)
    assert header.endswith(f"the prompt's text and chat template take {planned.plan.planned.text_tokens} tokens")


@pytest.mark.parametrize("size, hint", [
    ((1280, 704), (320, 180)), ((1920, 1080), (320, 180)), ((704, 1280), (180, 320)),
    ((640, 480), (320, 240)), ((1024, 1024), (320, 320)), ((2560, 1080), (320, 136)),
])
def test_hint_size(size, hint):
    assert preview.hint_size(*size) == hint


def test_a_plan_larger_than_the_models_view_is_drawn_at_its_planned_size(video_clip, model, tmp_path):
    """``none`` in a large context sends 1280x720, which the model sees at 1024x576: one scale of 1.25."""
    clip = video_clip(1280, 720, frames=2)
    options = Options.build(policy="none", max_model_len=16384)
    out = preview.render_preview(clip, PROMPT, options, tmp_path / "p.png", model=model)
    plan_panel, hint_panel, upstream_panel = figures(out)
    assert plan_panel["sent"] == [1280, 720] and plan_panel["view"] == [1024, 576]
    assert plan_panel["box"][2:] == [1280, 720]
    assert hint_panel["box"][2:] == [400, 240]  # 320x192 at the same scale
    assert upstream_panel["fits"] and upstream_panel["box"][2:] == [1280, 720]
    with Image.open(out) as picture:
        assert picture.width >= 2 * 1280 + 400


def test_an_exif_still_upstream_panel_is_the_stored_image(model, tmp_path):
    """Upstream (and vLLM) ignore EXIF orientation: its panel is the stored 1400x600 image; the plan is upright."""
    pixels = np.random.default_rng(1).integers(0, 256, (600, 1400, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.fromarray(pixels).save(tmp_path / "still.jpg", exif=exif, quality=95)
    out = preview.render_preview(tmp_path / "still.jpg", PROMPT, Options(), tmp_path / "p.png", model=model)
    plan_panel, _, upstream_panel = figures(out)
    assert plan_panel["sent"][1] > plan_panel["sent"][0]  # upright
    assert upstream_panel["sent"] == [1400, 600] and upstream_panel["view"] == [1024, 448]
    with Image.open(tmp_path / "still.jpg") as stored:
        original = np.asarray(stored.convert("RGB"))
    assert_psnr(upstream_panel, psnr(original, model_view(model, original)))
