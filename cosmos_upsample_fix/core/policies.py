"""Downsampling policies: which frame sizes to send so the request fits. Pure, no I/O.

A policy is one string:

``fit`` (default)
    The largest sizes that keep each frame's aspect ratio, never upscale, and make the
    whole request fit. Frames whose request already fits pass through unchanged (those
    over the model's ``max_image_size`` are planned at the size the model would shrink them
    to, same token grid: see :func:`~.budget.presized`; the planner sends one as it is where
    that would lose detail the model sees). Otherwise
    every target sits on the model's patch grid (multiples of ``patch × merge``), with the
    grid whose aspect ratio is closest to the frame's, so the model's own resize is a no-op.
``max-side:N``, ``max-pixels:N``, ``scale:F``
    An upper bound applied on top of ``fit``: the result is within the bound and still fits.
``fixed:WxH``
    Exactly that size for every frame; refused before anything is sent if it does not fit.
``none``
    The original size (upstream's behaviour); refused before anything is sent if it does not fit.

How ``fit`` searches: frames shrink together by one scale ``σ``. At a given ``σ`` a
frame of long side ``L`` gets ``k = floor(σ·L/unit)`` token cells along its long side
(at least 1, at most what fits in ``min(L, max_image_size)``) and the short-side count
whose ratio is closest (in log terms) to the frame's. Token cost grows with ``σ``, so the
plan is the largest ``σ`` among the finitely many breakpoints that fits.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cosmos_upsample_fix.core.budget import (
    ImageGrid,
    Limits,
    Size,
    count_request,
    grid_tokens,
    min_image_tokens,
    presized,
)
from cosmos_upsample_fix.core.options import Fit, Fixed, Original, Policy, parse_policy
from cosmos_upsample_fix.errors import BudgetError

__all__ = ["Fit", "Fixed", "Original", "Policy", "parse_policy", "passes_as_is", "plan_sizes"]


def _bound(policy: Fit, original: Size) -> Callable[[Size], bool]:
    """The policy's upper bounds as a test on a target size (always true for plain ``fit``)."""
    return lambda s: policy.allows(s, original)


@dataclass(frozen=True)
class _Frame:
    """One frame's size, seen as long/short side, with its largest token count per side."""

    size: Size
    grid: ImageGrid

    @property
    def landscape(self) -> bool:
        return self.size[0] >= self.size[1]

    @property
    def long(self) -> int:
        return max(self.size)

    @property
    def short(self) -> int:
        return min(self.size)

    def max_cells(self, side: int) -> int:
        """Most token cells along a side without upscaling or passing max_image_size."""
        return max(1, min(side, self.grid.max_image_size) // self.grid.unit)

    def short_cells(self, k: int) -> int:
        """Short-side cells whose ratio with ``k`` long-side cells is closest to the frame's."""
        exact = k * self.short / self.long
        lo = max(1, math.floor(exact))
        hi = max(1, math.ceil(exact))
        # log-closest of the two: pick hi when exact is above their geometric mean
        best = hi if exact * exact > lo * hi else lo
        return min(best, self.max_cells(self.short))

    def at(self, k: int) -> tuple[Size, int]:
        """Target pixel size and tokens with ``k`` cells on the long side."""
        unit = self.grid.unit
        s = self.short_cells(k)
        long_px, short_px = min(k * unit, self.long), min(s * unit, self.short)
        size = (long_px, short_px) if self.landscape else (short_px, long_px)
        cols, rows = (k, s) if self.landscape else (s, k)
        return size, grid_tokens(cols, rows)

    def cells_at(self, sigma: float) -> int:
        """Long-side cells at scale ``sigma`` (breakpoints are ``k·unit/long``)."""
        k = math.floor(sigma * self.long / self.grid.unit + 1e-9)
        return max(1, min(k, self.max_cells(self.long)))


def passes_as_is(
    sizes: Sequence[Size], text_tokens: int, grid: ImageGrid, limits: Limits, policy: Policy | str = "fit"
) -> bool:
    """True when ``fit`` (bounded or not) sends these frames as they are: their request fits and the bounds allow them.

    Such frames go at :func:`~.budget.presized` sizes; the caller may send one over the
    model's cap at its original size instead (same token grid, same count).
    """
    policy = parse_policy(policy)
    if isinstance(policy, (Original, Fixed)) or not sizes:
        return False
    sizes = [(int(w), int(h)) for w, h in sizes]
    return count_request(sizes, text_tokens, grid, limits).fits and all(policy.allows(s, s) for s in sizes)


def plan_sizes(
    sizes: Sequence[Size],
    text_tokens: int,
    grid: ImageGrid,
    limits: Limits,
    policy: Policy | str = "fit",
    *,
    flag: str = "--policy",
) -> list[Size]:
    """Target sizes for frames of ``sizes`` under ``policy``; raises BudgetError if none fit.

    ``text_tokens`` is the request's length without images (see :func:`count_request`).
    ``flag`` is the option a refusal tells the user to change (``--upsampler_policy`` in Cosmos).
    """
    policy = parse_policy(policy)
    sizes = [(int(w), int(h)) for w, h in sizes]
    if not sizes:
        raise BudgetError("no frames to send")
    limits.check_images(len(sizes))
    budget = limits.prompt_budget
    how = f"max_model_len {limits.max_model_len} − {limits.reserved_output_tokens} reserved for the answer"

    if isinstance(policy, (Original, Fixed)):
        targets = sizes if isinstance(policy, Original) else [policy.size] * len(sizes)
        count = count_request(targets, text_tokens, grid, limits)
        if count.rejected:
            shown = "x".join(map(str, count.rejected[0]))
            raise BudgetError(
                f"policy {policy.spec}: the installed mistral_common (older than 1.12) rejects a {shown} image (its "
                f"short side rounds to 0 pixels at the {grid.max_image_size}-pixel cap); use {flag} fit to resize it"
            )
        if count.prompt_tokens > budget:
            need, shown = count.prompt_tokens, "x".join(map(str, targets[0]))
            raise BudgetError(
                f"policy {policy.spec} needs {need} tokens for {len(targets)} frame(s) at {shown}, over the budget of "
                f"{budget} ({how}) by {need - budget}; use {flag} fit to downsample just enough"
            )
        return list(targets)

    if passes_as_is(sizes, text_tokens, grid, limits, policy):
        return [presized(s, grid) for s in sizes]
    bounds = [_bound(policy, s) for s in sizes]

    smallest = text_tokens + len(sizes) * min_image_tokens()
    if smallest > budget:
        raise BudgetError(
            f"the prompt text alone takes {text_tokens} tokens; with {len(sizes)} frame(s) of the smallest size the "
            f"request needs {smallest}, over the budget of {budget} ({how}); shorten the prompt or send fewer frames"
        )

    result = _fit(sizes, budget - text_tokens, grid, dict(zip(sizes, bounds)))
    if not result:
        raise BudgetError(
            f"policy {policy.spec} allows no size on the {grid.unit}-pixel patch grid for "
            f"{'x'.join(map(str, sizes[0]))} frames; raise the bound or use {flag} fit"
        )
    return result


def _fit(
    sizes: Sequence[Size], available: int, grid: ImageGrid, bounds: dict[Size, Callable[[Size], bool]]
) -> list[Size]:
    """Largest common scale whose grid targets fit ``available`` image tokens and each frame's bound."""
    frames = [_Frame(s, grid) for s in sizes]
    sigmas = sorted(
        {k * grid.unit / f.long for f in frames for k in range(1, f.max_cells(f.long) + 1)}, reverse=True
    )

    def attempt(i: int) -> list[Size] | None:
        chosen = [f.at(f.cells_at(sigmas[i])) for f in frames]
        if sum(t for _, t in chosen) > available:
            return None
        if not all(bounds[f.size](size) for f, (size, _) in zip(frames, chosen)):
            return None
        return [size for size, _ in chosen]

    lo, hi = 0, len(sigmas) - 1  # index 0 is the largest scale, hi the smallest
    best = attempt(hi)
    if best is None:
        return []
    while lo < hi:
        mid = (lo + hi) // 2
        found = attempt(mid)
        if found is not None:
            best, hi = found, mid
        else:
            lo = mid + 1
    return best
