"""Table 4: the cost of planning ``fit`` for one request, and the exact cross-check."""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from cosmos_upsample_fix.core.budget import Size
from cosmos_upsample_fix.core.policies import plan_sizes

from .config import FIT, PROMPT, Context


def request_sizes(n: int, seed: int = 1) -> list[list[Size]]:
    """``n`` requests of varied sizes: mostly two equal frames of a video, some mixed pairs and singles."""
    rng = np.random.default_rng(seed)
    aspects = [16 / 9, 4 / 3, 1.6, 9 / 16, 1.0, 64 / 27, 3 / 4, 1280 / 704]

    def one() -> Size:
        if rng.random() < 0.7:
            ratio = aspects[int(rng.integers(len(aspects)))]
        else:
            ratio = float(np.exp(rng.uniform(np.log(1 / 4), np.log(4))))
        long = int(rng.integers(96, 4097))
        short = max(16, int(round(long / ratio if ratio >= 1 else long * ratio)))
        return (long, short) if ratio >= 1 else (short, long)

    out: list[list[Size]] = []
    for i in range(n):
        kind = i % 10
        if kind < 8:
            size = one()
            out.append([size, size])
        elif kind == 8:
            out.append([one(), one()])
        else:
            out.append([one()])
    return out


@dataclass
class PlanningResult:
    pure_ms: list[float]  # plan_sizes alone, per request
    full_ms: list[float]  # plan_sizes + cached text tokens + two model.count
    exact_ms: list[float]  # model.encode through mistral_common at the planned sizes
    checked: int
    problems: list[str] = field(default_factory=list)


def measure(n: int, n_exact: int, ctx: Context) -> PlanningResult:
    model, limits, policy = ctx.model, ctx.limits, FIT.policy
    requests = request_sizes(n)
    grid = model.grid
    text = model.text_tokens(PROMPT)
    for sizes in requests[:50]:  # warm-up
        plan_sizes(sizes, text, grid, limits, policy)
    pure, full, planned_sizes, over = [], [], [], 0
    for sizes in requests:
        t = time.perf_counter_ns()
        targets = plan_sizes(sizes, text, grid, limits, policy)
        pure.append((time.perf_counter_ns() - t) / 1e6)
        t = time.perf_counter_ns()
        targets2 = plan_sizes(sizes, model.text_tokens(PROMPT), grid, limits, policy)
        model.count(sizes, PROMPT, limits)
        planned = model.count(targets2, PROMPT, limits)
        full.append((time.perf_counter_ns() - t) / 1e6)
        over += not planned.fits
        planned_sizes.append((targets, planned.prompt_tokens))
    problems = [f"planning: {over} of {n} random requests planned over the budget"] if over else []

    rng = np.random.default_rng(2)
    picks = list(range(0, n, max(1, n // n_exact)))[:n_exact]
    cache: dict[Size, Image.Image] = {}

    def img(size: Size) -> Image.Image:
        if size not in cache:
            cache[size] = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        return cache[size]

    model.encode(PROMPT, [img((64, 64))])  # warm-up
    exact_ms, mismatches = [], []
    for i in picks:
        targets, tokens = planned_sizes[i]
        images = [img(s) for s in targets]
        gc.collect()
        t = time.perf_counter_ns()
        exact = len(model.encode(PROMPT, images))
        exact_ms.append((time.perf_counter_ns() - t) / 1e6)
        if exact != tokens:
            mismatches.append((requests[i], targets, tokens, exact))
    if mismatches:
        problems.append(f"planning: {len(mismatches)} closed-form counts differ from mistral_common, "
                        f"e.g. {mismatches[0]}")
    ctx.log(f"  planning: {len(requests)} requests")
    return PlanningResult(pure, full, exact_ms, len(picks), problems)
