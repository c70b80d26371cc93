"""A picture of what the upsampler model sees: the plan, the 320x180 hint, upstream's request.

The first frame is drawn three ways, side by side at one scale (one model pixel is the
same number of picture pixels in every panel): as the model would see it under the plan,
under the hand-made hint clip (the frame at 320 px on its long side, 320x180 for 16:9),
and under upstream's request (the original frame), or, when that request does not fit, a
panel saying by how many tokens. Each view is made by mistral_common's own chat encoding
(:mod:`.model_view`: its size cap, its patch grid and its OpenCV cubic resize), which vLLM calls. Each
panel is labelled with its size, its tokens and its PSNR against the original frame (the
view scaled back to the original's size with OpenCV's cubic filter, as the benchmarks
score it). The figures are also stored in the PNG as JSON (text key ``cosmos-upsample-fix``).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from cosmos_upsample_fix.core.budget import Limits, RequestCount, Size, model_pixels
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames import read_frames
from cosmos_upsample_fix.media.images import resize
from cosmos_upsample_fix.media.output import new_file
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model, mistral_common_version
from cosmos_upsample_fix.tools.model_view import Encoder, psnr_against

log = logging.getLogger(__name__)

PNG_TEXT_KEY = "cosmos-upsample-fix"
"""The PNG text chunk holding the panels' figures as JSON."""

HINT_LONG_SIDE = 320
"""The long side of the hand-made hint clip users make as a workaround (320x180 for 16:9)."""

IDENTICAL = "PSNR: identical to the original pixels"
"""The PSNR line of a view that is the original frame, pixel for pixel."""

_MARGIN, _GAP, _PAD = 16, 16, 6
_BACKGROUND, _INK, _FAINT, _ALERT = (255, 255, 255), (20, 20, 20), (110, 110, 110), (190, 30, 30)


def hint_size(width: int, height: int) -> Size:
    """The hand-made hint's size: 320x180 for 16:9-like frames (within 3 %), 180x320 for 9:16.

    Any other aspect keeps its ratio with a 320 px long side and an even short side (H.264
    4:2:0 needs even sides): 4:3 gives 320x240, 1:1 320x320.
    """
    ratio = width / height
    if abs(ratio / (16 / 9) - 1) <= 0.03:
        return 320, 180
    if abs(ratio / (9 / 16) - 1) <= 0.03:
        return 180, 320
    if width >= height:
        return HINT_LONG_SIDE, max(2, 2 * round(HINT_LONG_SIDE / 2 * height / width))
    return max(2, 2 * round(HINT_LONG_SIDE / 2 * width / height)), HINT_LONG_SIDE


# ---------------------------------------------------------------- panels


@dataclass
class Panel:
    """One column of the picture and its figures (stored in the PNG as JSON)."""

    title: str
    sent: list[int]
    """The first frame's size as sent (width, height)."""
    frames: int
    frame_tokens: int
    request_tokens: int
    budget: int
    fits: bool
    over_by: int
    view: list[int] | None = None
    """The model's view's size; None when the request is not sent."""
    psnr: float | None = None
    note: str = ""
    identical: bool = False
    """True when the view, rounded to 8 bits, is the original frame pixel for pixel (its PSNR is then inf)."""
    box: list[int] | None = None
    """Where the picture is drawn: x, y, width, height in the PNG (set when drawn)."""
    by_encoder: bool = True
    """False when the view is the logged Pillow approximation (no usable mistral_common encoder)."""
    pixels: np.ndarray | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """The label under the panel: size, tokens, PSNR (or why it is not sent)."""
        w, h = self.sent
        count = f" x{self.frames}" if self.frames > 1 else ""
        lines = [f"{w}x{h}{count} sent" + (f", model sees {self.view[0]}x{self.view[1]}" if self.view else "")]
        lines.append(f"{self.frame_tokens} tokens/frame, request {self.request_tokens} of {self.budget}")
        if self.pixels is None:
            lines.append(self.note)
        elif self.identical:  # a float round trip leaves ~1e-6 of noise: not "162.75 dB", but what it is
            lines.append(IDENTICAL)
        else:
            lines.append(f"PSNR {self.psnr:.2f} dB")
        return lines

    def figures(self) -> dict[str, Any]:
        """The panel's figures and label, for the PNG's JSON (no pixels)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pixels"}
        if data["psnr"] == math.inf:
            data["psnr"] = "inf"
        data["label"] = self.lines()
        return data


def _refusal(count: RequestCount) -> str:
    """Why a request is not sent: tokens over, too many images, or a frame the tokenizer rejects."""
    if count.rejected:
        w, h = count.rejected[0]
        return f"rejected: mistral_common {mistral_common_version()} cannot take {w}x{h}"
    if count.over_by:
        return f"does not fit: {count.over_by} tokens over"
    return f"does not fit: {len(count.frame_sizes)} images, the engine takes {count.limits.max_images}"


def _panel(title: str, count: RequestCount, image: np.ndarray, reference: np.ndarray, encoder: Encoder) -> Panel:
    """A panel for the request ``count`` whose first frame is ``image``."""
    panel = Panel(
        title=title, sent=list(count.frame_sizes[0]), frames=len(count.frame_sizes),
        frame_tokens=count.tokens_per_frame[0], request_tokens=count.prompt_tokens,
        budget=count.limits.prompt_budget, fits=count.fits, over_by=count.over_by,
    )
    if not count.fits:
        panel.note = _refusal(count)
        return panel
    view = encoder.view(image)
    if view.tokens != panel.frame_tokens:  # our count and the model's disagree: a bug of ours, say so
        log.error("preview: %s: the encoder gives %d tokens for %dx%d, the plan counts %d",
                  title, view.tokens, *panel.sent, panel.frame_tokens)
    panel.frame_tokens = view.tokens
    panel.view = list(view.size)
    panel.psnr = psnr_against(reference, view)
    panel.pixels = np.clip(np.rint(view.pixels), 0, 255).astype(np.uint8)
    panel.identical = panel.pixels.shape == reference.shape and bool(np.array_equal(panel.pixels, reference))
    if panel.identical:
        panel.psnr = math.inf
    panel.by_encoder = view.by_encoder
    return panel


def _upstream_first(source: Any, frame: np.ndarray, size: Size) -> np.ndarray:
    """Upstream's first frame: the decoded frame, or a still as stored (no EXIF turn) when that differs."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    first = source[0] if isinstance(source, (list, tuple)) else source
    try:
        with Image.open(os.fspath(first)) as img:
            stored = np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise InputError(f"cannot read {os.fspath(first)}: {exc}") from None
    return stored if (stored.shape[1], stored.shape[0]) == tuple(size) else frame


def preview_panels(planned: PlannedFrames, source: Any, prompt: str | None, model: UpsamplerModel) -> list[Panel]:
    """The three panels for a plan of ``source``: plan, hint, upstream."""
    plan = planned.plan
    encoder = Encoder(model)
    _, frames = read_frames(source, 1, "first", exact=False)
    original = frames[0].image
    width, height = original.shape[1], original.shape[0]
    first_planned = planned.images[0] if plan.frame_indices[0] == frames[0].index else resize(
        original, plan.planned_size)
    hint = hint_size(width, height)
    hint_count = model.count([hint] * len(plan.original.frame_sizes), prompt, plan.limits)
    upstream = _upstream_first(source, original, plan.original.frame_sizes[0])
    return [
        _panel(f"plan ({plan.policy.spec})", plan.planned, first_planned, original, encoder),
        _panel(f"{hint[0]}x{hint[1]} hint", hint_count, resize(original, hint), original, encoder),
        _panel("upstream (original frames)", plan.original, upstream, upstream, encoder),
    ]


# ---------------------------------------------------------------- drawing


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> Size:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _scale(panels: list[Panel], planned_size: Size) -> float:
    """One scale for all panels: 1 (a model pixel is a picture pixel) unless the plan's view is
    smaller than the planned frame (a frame over the model's cap), then enough to hold it."""
    plan = panels[0]
    if plan.view is None:
        return 1.0
    return max(1.0, planned_size[0] / plan.view[0], planned_size[1] / plan.view[1])


def _box(panel: Panel, scale: float, grid: Any) -> Size:
    """The drawn size of a panel's picture (the would-be view for a request not sent)."""
    if panel.view is not None:
        w, h = panel.view
    else:
        sent = (panel.sent[0], panel.sent[1])
        w, h = model_pixels(sent, grid) if not panel.note.startswith("rejected") else (256, 144)
    return math.ceil(w * scale), math.ceil(h * scale)


def draw_preview(panels: list[Panel], header: str, planned_size: Size, grid: Any) -> Image.Image:
    """Draw the panels side by side under one header line."""
    font, big = _font(14), _font(20)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _text_size(probe, "Ag0", font)[1] + _PAD
    scale = _scale(panels, planned_size)
    boxes = [_box(p, scale, grid) for p in panels]
    widths = [max(b[0], *(_text_size(probe, t, font)[0] for t in [p.title, *p.lines()])) for p, b in zip(panels, boxes)]
    head_h = line_h * 2
    body_h = max(b[1] for b in boxes) + line_h * 5
    width = max(sum(widths) + _GAP * (len(panels) - 1), _text_size(probe, header, font)[0]) + 2 * _MARGIN
    canvas = Image.new("RGB", (width, head_h + body_h + 2 * _MARGIN), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((_MARGIN, _MARGIN), header, fill=_INK, font=font)
    x = _MARGIN
    for panel, (bw, bh), column in zip(panels, boxes, widths):
        y = _MARGIN + head_h
        draw.text((x, y), panel.title, fill=_INK, font=font)
        y += line_h
        panel.box = [x, y, bw, bh]
        if panel.pixels is not None:
            picture = Image.fromarray(panel.pixels)
            if picture.size != (bw, bh):
                picture = picture.resize((bw, bh), Image.Resampling.NEAREST)  # model pixels as blocks
            canvas.paste(picture, (x, y))
        else:
            draw.rectangle((x, y, x + bw - 1, y + bh - 1), fill=(236, 236, 236), outline=_ALERT, width=3)
            tw, th = _text_size(draw, panel.note, big)
            text_font = big if tw + 12 <= bw else font
            tw, th = _text_size(draw, panel.note, text_font)
            draw.text((x + max(6, (bw - tw) // 2), y + (bh - th) // 2), panel.note, fill=_ALERT, font=text_font)
        y += bh + _PAD
        for line in panel.lines():
            colour = _ALERT if panel.pixels is None and line == panel.note else _INK
            draw.text((x, y), line, fill=colour, font=font)
            y += line_h
        x += column + _GAP
    if not all(p.pixels is None or p.by_encoder for p in panels):
        draw.text((_MARGIN, _MARGIN + line_h), "views approximated with Pillow's cubic resize: "
                  "mistral_common's image encoder is not usable here (see the log)", fill=_FAINT, font=font)
    return canvas


def _header(planned: PlannedFrames) -> str:
    plan = planned.plan
    limits = plan.limits
    original = plan.original.frame_sizes[0]
    return (
        f"{Path(plan.source.split(', ')[0]).name}: first frame ({original[0]}x{original[1]}) as the model sees it; "
        f"prompt budget {limits.prompt_budget} = max_model_len {limits.max_model_len} - "
        f"{limits.reserved_output_tokens} for the answer; the prompt's text and chat template take "
        f"{plan.planned.text_tokens} tokens"
    )


def _save(canvas: Image.Image, panels: list[Panel], out_path: str | os.PathLike[str], free_name: bool = False) -> Path:
    """Write the PNG with the figures as a text chunk; never overwrites; no partial file left.

    ``free_name``: when ``out_path`` exists, write the first free numbered name beside it.
    """
    path = Path(out_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {path.parent} for the preview: {exc.strerror or exc}") from None
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_TEXT_KEY, json.dumps([p.figures() for p in panels]))
    with new_file(path, free_name) as (handle, written):
        canvas.save(handle, format="PNG", pnginfo=info, compress_level=1)
    return written


def render_preview(
    source: Any,
    prompt: str | None,
    options: Options | None,
    out_path: str | os.PathLike[str],
    *,
    model: UpsamplerModel | None = None,
    limits: Limits | None = None,
    planned: PlannedFrames | None = None,
    one_frame: str = "frames=1",
    free_name: bool = False,
) -> Path:
    """Plan ``source`` and draw its first frame as the model sees it (plan, hint, upstream) to ``out_path``.

    ``planned`` is a plan of ``source`` already made (then it is not planned again);
    ``one_frame`` is passed to the planner; ``free_name`` writes the first free numbered name
    beside ``out_path`` when that exists (the path written is returned). Raises what
    :func:`~cosmos_upsample_fix.planning.planner.plan_frames` raises, and InputError when
    ``out_path`` exists (never overwritten; without ``free_name``) or cannot be written.
    """
    options = options or Options()
    model = model or load_model(options.checkpoint_dir)
    if planned is None:
        planned = plan_frames(source, prompt, options, limits=limits, model=model, one_frame=one_frame)
    panels = preview_panels(planned, source, prompt, model)
    canvas = draw_preview(panels, _header(planned), planned.plan.planned_size, model.grid)
    return _save(canvas, panels, out_path, free_name)
