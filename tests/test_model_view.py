"""Frames over the model's cap whose request fits: pre-shrunk only when the model sees as much.

The model's view is computed here with mistral_common's own image encoder (not the
package's code): a frame's view is scaled back to the original size (float cubic), clipped,
and scored by PSNR over RGB against the original, as ``benchmarks`` does.
"""
from __future__ import annotations

import io
import math

import av
import cv2
import numpy as np
import pytest
from mistral_common.protocol.instruct.chunk import ImageChunk
from mistral_common.tokens.tokenizers.image import DATASET_MEAN, DATASET_STD
from PIL import Image

from cosmos_upsample_fix.core.budget import Limits, model_pixels, presized
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.core.policies import passes_as_is
from cosmos_upsample_fix.media import images
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model

TOLERANCE_DB = 0.1
"""The goal: the view of what is sent scores at least the full frame's view minus this."""


def _view_psnr(encoder, sent: np.ndarray, original: np.ndarray) -> float:
    encoding = encoder(ImageChunk(image=Image.fromarray(sent)))
    mean = np.asarray(DATASET_MEAN, np.float32)[:, None, None]
    std = np.asarray(DATASET_STD, np.float32)[:, None, None]
    view = np.ascontiguousarray(((encoding.image * std + mean) * 255.0).transpose(1, 2, 0), dtype=np.float32)
    back = np.clip(cv2.resize(view, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_CUBIC), 0, 255)
    mse = float(np.mean((back.astype(np.float64) - original) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _frame(kind: str, width: int, height: int) -> np.ndarray:
    """Small control-like frames: flat regions, thin lines, points, gradients, 1-px edges, noise."""
    rng = np.random.default_rng([width, height, len(kind)])
    image = np.zeros((height, width, 3), np.uint8)
    if kind == "mask":
        image[:] = (120, 0, 0)
        for _ in range(12):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(20, 200)), int(rng.integers(20, 120)))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_8)
    elif kind == "lines":
        for _ in range(40):
            a, b = rng.integers(0, [width, height], 2), rng.integers(0, [width, height], 2)
            cv2.line(image, tuple(int(v) for v in a), tuple(int(v) for v in b), (110, 170, 240), 2, cv2.LINE_AA)
    elif kind == "points":
        for x, y in zip(rng.integers(0, width, 4000), rng.integers(0, height, 4000)):
            image[y, x] = rng.integers(0, 256, 3)
    elif kind == "depth":
        yy, xx = np.mgrid[0:height, 0:width]
        grey = 40 + 150 * (yy / height) ** 1.5 + 20 * np.sin(xx / 90)
        image[:] = np.clip(grey, 0, 255).astype(np.uint8)[..., None]
    elif kind == "edges":
        noise = cv2.GaussianBlur(rng.normal(128, 60, (height, width)).astype(np.float32), (0, 0), 3)
        image[:] = cv2.Canny(np.clip(noise, 0, 255).astype(np.uint8), 20, 40)[..., None]
    else:  # camera-like: smooth colour noise plus fine grain
        smooth = cv2.GaussianBlur(rng.normal(128, 90, (height, width, 3)).astype(np.float32), (0, 0), 6)
        image[:] = np.clip(smooth * 2 - 128 + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    return image


KINDS = ["mask", "lines", "points", "depth", "edges", "camera"]


@pytest.mark.parametrize("size", [(1280, 720), (1100, 1500)])
@pytest.mark.parametrize("kind", KINDS)
def test_the_model_sees_at_least_as_much_as_in_the_full_frame(kind, size):
    model = load_model()
    grid, encoder = model.grid, model.tokenizer.instruct_tokenizer.image_encoder
    original = _frame(kind, *size)
    target = presized(size, grid)
    assert target != size
    sent = images.preshrink(original, target, model_pixels(size, grid))
    assert (sent.shape[1], sent.shape[0]) in (target, size)
    assert sent.dtype == np.uint8 and sent.flags.c_contiguous
    full, ours = _view_psnr(encoder, original, original), _view_psnr(encoder, sent, original)
    assert ours >= full - TOLERANCE_DB, (kind, size, ours, full)
    if sent.shape[:2] == original.shape[:2]:
        assert sent is original  # sent as is, untouched


def test_the_pre_shrink_is_kept_where_it_loses_nothing():
    """Camera-like content at a 2.5x shrink: the antialiased frame scores above the full frame and is sent."""
    model = load_model()
    original = _frame("camera", 2560, 1440)
    target = presized((2560, 1440), model.grid)
    sent = images.preshrink(original, target, model_pixels((2560, 1440), model.grid))
    assert (sent.shape[1], sent.shape[0]) == target


def test_one_pixel_edges_at_a_mild_shrink_go_as_they_are():
    """Canny-like 1-px edges at 1280 -> 1024: no 8-bit 1024-px frame keeps what the model's float cubic does."""
    original = _frame("edges", 1280, 720)
    sent = images.preshrink(original, (1024, 576), (1024, 576))
    assert sent is original


@pytest.mark.parametrize("kind", ["mask", "edges", "depth"])
def test_planned_frames_count_exactly_and_keep_the_view(tmp_path, kind):
    """Through the planner at a roomy limit: exact tokens for whatever size each frame went at."""
    model = load_model()
    size = (1280, 720)
    path = tmp_path / f"{kind}.png"
    original = _frame(kind, *size)
    Image.fromarray(original).save(path)
    limits = Limits(max_model_len=8192)
    planned = plan_frames(path, "a prompt", Options.build(policy="fit"), limits=limits, model=model)
    assert passes_as_is([size], model.text_tokens("a prompt"), model.grid, limits, "fit")
    sent = planned.images[0]
    assert planned.plan.planned.frame_sizes == ((sent.shape[1], sent.shape[0]),)
    assert (sent.shape[1], sent.shape[0]) in (presized(size, model.grid), size)
    exact = len(model.encode("a prompt", [Image.fromarray(sent)]))
    assert exact == planned.plan.planned.prompt_tokens == planned.plan.original.prompt_tokens
    encoder = model.tokenizer.instruct_tokenizer.image_encoder
    assert _view_psnr(encoder, sent, original) >= _view_psnr(encoder, original, original) - TOLERANCE_DB


def test_bounded_and_fixed_policies_are_not_passed_as_is():
    model = load_model()
    grid, limits = model.grid, Limits(max_model_len=8192)
    assert passes_as_is([(1280, 720)], 20, grid, limits, "fit")
    assert not passes_as_is([(1280, 720)], 20, grid, limits, "max-side:1100")
    assert not passes_as_is([(1280, 720)], 20, grid, limits, "none")
    assert not passes_as_is([(1280, 720)], 20, grid, limits, "fixed:1024x576")
    assert not passes_as_is([(1280, 720)] * 2, 20, grid, Limits(), "fit")  # does not fit 4096


def _cubic8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The model's own resize (float cubic) as a frame would carry it: rounded, clipped to 8 bits."""
    out = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _as_decoded(image: np.ndarray) -> np.ndarray:
    """``image`` after an H.264 round trip (libx264 CRF 18, yuv420p), as control videos arrive."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        stream.options = {"crf": "18"}
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")), *stream.encode(None)]:
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.mark.parametrize(("source", "target"), [((1280, 720), (912, 512)), ((960, 704), (800, 592)),
                                                ((1280, 800), (864, 544)), ((1920, 1080), (912, 512))])
@pytest.mark.parametrize("kind", KINDS)
def test_the_downscale_filter_keeps_at_least_what_lanczos_or_the_models_cubic_keeps(kind, source, target):
    """At the budget's target size (on the grid: the model's own resize is a no-op), on control-like frames.

    The frames go through H.264 first, as control videos do: a noise-free 8-bit gradient would score
    above 60 dB, where the rounding of the frame sent, not the filter, decides.
    """
    encoder = load_model().tokenizer.instruct_tokenizer.image_encoder
    original = _as_decoded(_frame(kind, *source))
    pillow = np.asarray(Image.fromarray(original).resize(target, Image.Resampling.LANCZOS))
    best_other = max(_view_psnr(encoder, pillow, original), _view_psnr(encoder, _cubic8(original, target), original))
    ours = _view_psnr(encoder, images.resize(original, target), original)
    assert ours >= best_other - TOLERANCE_DB, (kind, source, ours, best_other)
