"""Table 2: what the model sees. Fit vs the 320x180 hint, the downscale filter vs Lanczos and
the model's own cubic at the same size, and frames over the model's cap pre-shrunk (at a limit
where every clip's full request fits) vs the full frames."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from cosmos_upsample_fix.core.budget import Limits, Size, presized
from cosmos_upsample_fix.media import images
from cosmos_upsample_fix.media.frames import read_frames
from cosmos_upsample_fix.media.images import resize
from cosmos_upsample_fix.media.mp4 import write_video
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.tools.preview import hint_size

from . import metrics
from .budget_use import BudgetResult
from .clips import Clip
from .config import FIT, PROMPT, ROOMY, STILL, Context


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float


@dataclass(frozen=True)
class FidelityRow:
    clip: Clip
    fit_sent: Size
    fit_grid: Size
    fit: Score
    hint_sent: Size
    hint_grid: Size
    hint: Score
    hint_clip_psnr: float
    upstream: Score | None  # None where upstream's request does not fit

    @property
    def gain(self) -> float:
        return self.fit.psnr - self.hint.psnr


@dataclass(frozen=True)
class FilterRow:
    """The package's resize vs Pillow's Lanczos and the model's cubic, at fit's target size."""

    clip: Clip
    target: Size
    factor: float
    chosen: str
    ours: Score
    lanczos: Score
    cubic: Score  # a cubic frame as it would be sent: OpenCV INTER_CUBIC, 8-bit
    cubic_float: Score  # the model's own cubic of the full frame, float, unclipped (no 8-bit frame carries it)

    @property
    def best_other(self) -> float:
        return max(self.lanczos.psnr, self.cubic.psnr)

    @property
    def margin(self) -> float:
        return self.ours.psnr - self.best_other


PAYLOAD_LEVEL = 1
"""PNG level of the pre-shrink payload figures (what a request to a server on another machine sends)."""


@dataclass(frozen=True)
class PreshrinkRow:
    """Frames over the model's cap whose request fits (at :data:`~.config.ROOMY`): what is sent vs the full frames."""

    clip: Clip
    limits: Limits
    sent: tuple[Size, ...]  # per frame: the model's own size (pre-shrunk) or the original (sent as is)
    model_size: Size  # presized: the size the model's own resize makes, within the original
    upstream_tokens: int
    sent_tokens: int
    exact_tokens: int  # len(model.encode(...)) with the frames sent
    ours: Score  # the frames sent as the model sees them
    full: Score  # the full frames as the model sees them (its own float cubic)
    payload_sent: int  # base64 bytes of the sent frames as PNG (PAYLOAD_LEVEL)
    payload_full: int  # the same for the full frames
    payload_upstream: int  # upstream's full-size PNGs (OpenCV defaults)

    @property
    def as_is(self) -> int:
        """Frames sent at their original size (pre-shrinking them would have lost detail)."""
        return sum(s == self.clip.size for s in self.sent)

    @property
    def ok(self) -> bool:
        """Same tokens, exact, and every frame at the model's size or its own."""
        return (self.sent_tokens == self.upstream_tokens == self.exact_tokens
                and all(s in (self.model_size, self.clip.size) for s in self.sent))

    @property
    def margin(self) -> float:
        return self.ours.psnr - self.full.psnr


@dataclass
class FidelityResult:
    rows: list[FidelityRow] = field(default_factory=list)
    filters: list[FilterRow] = field(default_factory=list)
    preshrink: list[PreshrinkRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def score(originals: list[np.ndarray], views: list[np.ndarray]) -> Score:
    """Mean PSNR (dB) and SSIM over the frames, each view scaled back to its original's size."""
    ps, ss = [], []
    for ref, view in zip(originals, views):
        back = metrics.upscale(view, (ref.shape[1], ref.shape[0]))
        ps.append(metrics.psnr(ref, back))
        ss.append(metrics.ssim(ref, back))
    return Score(statistics.fmean(ps), statistics.fmean(ss))


def b64_len(n: int) -> int:
    """Length of the base64 text of ``n`` bytes."""
    return 4 * math.ceil(n / 3)


def lanczos(image: np.ndarray, size: Size) -> np.ndarray:
    """Pillow's antialiased Lanczos (the reference filter)."""
    return np.asarray(Image.fromarray(image).resize((size[0], size[1]), Image.Resampling.LANCZOS))


def cubic8(image: np.ndarray, size: Size) -> np.ndarray:
    """The model's cubic (OpenCV INTER_CUBIC on float32) as an 8-bit frame: rounded and clipped."""
    return np.clip(np.rint(metrics.cubic(image, size)), 0, 255).astype(np.uint8)


def filter_chosen(source: Size, target: Size) -> str:
    """The filter and parameters the package's resize uses for this shrink, as it names them."""
    return images.filter_for(source, target)


def measure(budget: BudgetResult, ctx: Context) -> FidelityResult:
    """Score every clip's planned frames, the hint frames and the alternatives through the model's view."""
    encoder = metrics.image_encoder(ctx.model)
    grid = ctx.model.grid
    result = FidelityResult()

    def view(image: np.ndarray) -> np.ndarray:
        return metrics.model_view(encoder, image)[0]

    for row in budget.rows:
        clip = row.clip
        planned, originals = budget.plans[clip.name], budget.originals[clip.name]
        fit_views = [view(im) for im in planned.images]
        fit = score(originals, fit_views)
        hsize = hint_size(*clip.size)
        hint_frames = [resize(im, hsize) for im in originals]
        hint_views = [view(im) for im in hint_frames]
        # the real workaround: an H.264 hint clip (hint.write_video, CRF 12) read back
        hint_path = ctx.tmp / f"hint_{clip.path.stem}.mp4"
        write_video(hint_frames, hint_path)
        _, decoded = read_frames(hint_path, len(hint_frames), "first")
        hint_path.unlink()
        hint_clip = score(originals, [view(f.image) for f in decoded]).psnr
        upstream = score(originals, [view(im) for im in originals]) if row.upstream_fits else None
        result.rows.append(FidelityRow(
            clip, row.fit_size, _wh(fit_views[0]), fit, hsize, _wh(hint_views[0]), score(originals, hint_views),
            hint_clip, upstream,
        ))
        target = row.fit_size
        if target != clip.size:
            result.filters.append(FilterRow(
                clip, target, max(clip.size) / max(target), filter_chosen(clip.size, target), fit,
                score(originals, [view(lanczos(im, target)) for im in originals]),
                score(originals, [view(cubic8(im, target)) for im in originals]),
                score(originals, [metrics.cubic(im, target) for im in originals]),
            ))
        if max(clip.size) > grid.max_image_size:
            result.preshrink.append(preshrink_row(clip, originals, ctx, view))
        ctx.log(f"  fidelity {clip.name}: fit {fit.psnr:.2f} dB, gain over hint {result.rows[-1].gain:+.2f}")
    return result


def png_b64(frames: list[np.ndarray], level: int) -> int:
    return sum(b64_len(len(images.encode_png(im, level))) for im in frames)


def preshrink_row(clip: Clip, originals: list[np.ndarray], ctx: Context, view) -> PreshrinkRow:
    """Plan ``clip`` at a limit where its full request fits; score and weigh what is sent vs the full frames."""
    model = ctx.model
    planned = plan_frames(clip.path, PROMPT, FIT if clip.video else STILL, limits=ROOMY, model=model)
    sent = planned.images
    return PreshrinkRow(
        clip, ROOMY, tuple(_wh(im) for im in sent), presized(clip.size, model.grid),
        planned.plan.original.prompt_tokens, planned.plan.planned.prompt_tokens,
        len(model.encode(PROMPT, [Image.fromarray(im) for im in sent])),
        score(originals, [view(im) for im in sent]), score(originals, [view(im) for im in originals]),
        png_b64(sent, PAYLOAD_LEVEL), png_b64(originals, PAYLOAD_LEVEL),
        sum(b64_len(len(cv2.imencode(".png", im[..., ::-1])[1])) for im in originals),
    )


def _wh(image: np.ndarray) -> Size:
    return image.shape[1], image.shape[0]
