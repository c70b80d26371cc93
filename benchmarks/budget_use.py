"""Table 1: the exact request length under upstream, the 320x180 hint and ``fit``, checked
against mistral_common itself."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from cosmos_upsample_fix.core.budget import Size
from cosmos_upsample_fix.media.frames import read_frames
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.tools.preview import hint_size

from .clips import Clip
from .config import FIT, PROMPT, STILL, Context


@dataclass(frozen=True)
class BudgetRow:
    clip: Clip
    upstream_tokens: int
    upstream_use: float
    upstream_fits: bool
    hint_size: Size
    hint_tokens: int
    hint_use: float
    fit_size: Size
    fit_tokens: int
    fit_use: float
    fit_fits: bool
    exact_upstream: int  # len(model.encode(...)) with the full frames
    exact_fit: int  # ... with the planned frames

    @property
    def exact_ok(self) -> bool:
        return self.exact_upstream == self.upstream_tokens and self.exact_fit == self.fit_tokens


@dataclass
class BudgetResult:
    rows: list[BudgetRow]
    plans: dict[str, PlannedFrames]
    originals: dict[str, list[np.ndarray]]  # the frames upstream sends, as decoded
    text_tokens: int
    problems: list[str] = field(default_factory=list)


def originals_of(clip: Clip, planned: PlannedFrames) -> list[np.ndarray]:
    """The frames upstream sends: a video's first two (or its only one), a still's one frame."""
    count = len(planned.plan.original.frame_sizes)
    _, frames = read_frames(clip.path, count, "first")
    return [f.image for f in frames]


def measure(clips: list[Clip], ctx: Context) -> BudgetResult:
    """Plan every clip with ``fit`` and count upstream, hint and fit, exactly."""
    model, limits = ctx.model, ctx.limits
    result = BudgetResult([], {}, {}, model.text_tokens(PROMPT))
    for clip in clips:
        planned = plan_frames(clip.path, PROMPT, FIT if clip.video else STILL, limits=limits, model=model)
        plan = planned.plan
        orig, fit = plan.original, plan.planned
        originals = originals_of(clip, planned)
        result.plans[clip.name], result.originals[clip.name] = planned, originals
        hsize = hint_size(*clip.size)
        hint = model.count([hsize] * len(fit.frame_sizes), PROMPT, limits)
        exact_orig = len(model.encode(PROMPT, [Image.fromarray(im) for im in originals]))
        exact_fit = len(model.encode(PROMPT, [Image.fromarray(im) for im in planned.images]))
        row = BudgetRow(
            clip, orig.prompt_tokens, orig.budget_use, orig.fits, hsize, hint.prompt_tokens, hint.budget_use,
            fit.frame_sizes[0], fit.prompt_tokens, fit.budget_use, fit.fits, exact_orig, exact_fit,
        )
        result.rows.append(row)
        result.problems += _checks(clip, row, planned, originals, model.grid.max_image_size)
        ctx.log(f"  budget {clip.name}: {plan.summary()}")
    return result


def _checks(clip: Clip, row: BudgetRow, planned: PlannedFrames, originals: list[np.ndarray], cap: int) -> list[str]:
    """Cross-checks whose failure is a bug in the package, whatever the goals say."""
    problems = []
    if not row.exact_ok:
        problems.append(
            f"{clip.name}: closed-form count differs from mistral_common: upstream {row.upstream_tokens} vs "
            f"{row.exact_upstream}, fit {row.fit_tokens} vs {row.exact_fit}"
        )
    sizes = planned.plan.planned.frame_sizes
    if any((im.shape[1], im.shape[0]) != tuple(s) for im, s in zip(planned.images, sizes)):
        problems.append(f"{clip.name}: planned images are not at the planned size")
    if row.upstream_fits and max(clip.size) <= cap:
        if row.fit_size != clip.size:
            problems.append(f"{clip.name}: fits as is, but fit changed its size to {row.fit_size}")
        elif not all(np.array_equal(a, b) for a, b in zip(planned.images, originals)):
            problems.append(f"{clip.name}: fits as is and is within the model's cap, but its pixels were changed")
    return problems
