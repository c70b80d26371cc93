"""The command line's text: a plan's report, and the token-cost table."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cosmos_upsample_fix.core.budget import Limits, RequestCount, Size, accepts, model_pixels
from cosmos_upsample_fix.core.options import Policy
from cosmos_upsample_fix.core.policies import plan_sizes
from cosmos_upsample_fix.media.frames.selection import frames_phrase
from cosmos_upsample_fix.planning.planner import Plan
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel

ONE_FRAME = "--frames 1"
"""How a user of the command line asks for one frame (the planner's advice names it)."""


def describe(count: RequestCount) -> str:
    """``2 frames at 1280x704: 2340 tokens each, 4699 in all``."""
    sizes = sorted(set(count.frame_sizes), key=count.frame_sizes.index)
    shown = ", ".join(f"{w}x{h}" for w, h in sizes)
    per = "/".join(str(t) for t in sorted(set(count.tokens_per_frame), reverse=True))
    each = " each" if len(count.frame_sizes) > 1 else ""
    return f"{frames_phrase(len(count.frame_sizes))} at {shown}: {per} tokens{each}, {count.prompt_tokens} in all"


def model_own_size(plan: Plan) -> bool:
    """True when the plan shrinks the frames only to the size the model's own resize gives them.

    A frame over the model's side cap is resized by the model anyway; sent at that size (the
    same token grid, the same tokens) it loses nothing the model would have seen, so its
    "pixels kept" below 100% is not a loss of detail.
    """
    if plan.original.rejected:
        return False
    upstream = dict(zip(plan.original_indices, plan.original.frame_sizes))
    pairs = [(upstream.get(i), size) for i, size in zip(plan.frame_indices, plan.planned.frame_sizes)]
    if any(o is None for o, _ in pairs) or all(o == p for o, p in pairs):
        return False  # a frame upstream would not send, or nothing shrunk
    return all(o is not None and accepts(o, plan.grid) and p == model_pixels(o, plan.grid) for o, p in pairs)


def format_report(plan: Plan) -> str:
    """The human-readable report of a plan."""
    lim = plan.limits
    budget = f"{lim.prompt_budget} (max_model_len {lim.max_model_len} - {lim.reserved_output_tokens} for the answer)"
    o, p = plan.original, plan.planned
    if o.fits:
        verdict = f"fits ({o.budget_use:.1%} of the budget)"
    elif o.rejected:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(set(o.rejected)))
        verdict = f"REJECTED: the installed mistral_common refuses a {shown} image (its rounded side is 0 pixels)"
    elif o.prompt_tokens > lim.max_model_len:
        verdict = (
            f"does NOT fit: over the budget by {o.over_by}; vLLM refuses a prompt of {o.prompt_tokens} "
            f"tokens, over its max_model_len {lim.max_model_len}"
        )
    elif len(o.frame_sizes) > lim.max_images:
        verdict = f"does NOT fit: {len(o.frame_sizes)} images, the engine allows {lim.max_images}"
    else:
        verdict = f"does NOT fit: over the budget by {o.over_by}, the answer would be cut short"
    lines = [
        f"input:    {plan.source} ({plan.kind})",
        f"budget:   {budget}; text and chat template {p.text_tokens} tokens",
        f"upstream: {describe(o)} -> {verdict}",
        f"plan:     policy {plan.policy.spec}, {plan.select} frames {list(plan.frame_indices)}: {describe(p)} -> "
        + (f"fits ({p.budget_use:.1%} of the budget)" if p.fits else "does NOT fit"),
    ]
    if model_own_size(plan):
        (ow, oh), (pw, ph) = o.frame_sizes[0], p.frame_sizes[0]
        lines.append(f"note:     {ow}x{oh} goes at {pw}x{ph}, the size the model itself shrinks it to "
                     "(same tokens: no detail lost to the plan)")
    return "\n".join(lines)


def token_rows(
    model: UpsamplerModel, limits: Limits, policy: Policy, sizes: Sequence[Size], frames: int, prompt: str | None
) -> dict[str, Any]:
    """The figures of ``table``: each size's upstream request and the policy's plan (``table --json``)."""
    text_tokens = model.text_tokens(prompt)
    rows = []
    for size in sizes:
        original = model.count([size] * frames, prompt, limits)
        target = plan_sizes([size] * frames, text_tokens, model.grid, limits, policy)
        planned = model.count(target, prompt, limits)
        rows.append({
            "size": list(size),
            "tokens_per_frame": original.tokens_per_frame[0],
            "upstream": {"prompt_tokens": original.prompt_tokens, "fits": original.fits, "over_by": original.over_by},
            "planned": {"size": list(target[0]), "tokens_per_frame": planned.tokens_per_frame[0],
                        "prompt_tokens": planned.prompt_tokens, "fits": planned.fits,
                        "budget_use": planned.budget_use},
        })
    return {
        "policy": policy.spec, "frames": frames, "text_tokens": text_tokens,
        "limits": {"max_model_len": limits.max_model_len, "reserved_output_tokens": limits.reserved_output_tokens,
                   "max_images": limits.max_images, "prompt_budget": limits.prompt_budget},
        "rows": rows,
    }


def token_table(table: dict[str, Any]) -> str:
    """The Markdown table of ``table``, from :func:`token_rows`."""
    lines = [
        f"| frames ({table['frames']} each) | tokens per frame | upstream request | "
        f"fits {table['limits']['prompt_budget']}? | {table['policy']} plan | planned request |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in table["rows"]:
        upstream, planned = row["upstream"], row["planned"]
        verdict = "yes" if upstream["fits"] else f"no (+{upstream['over_by']})"
        lines.append(
            f"| {row['size'][0]}x{row['size'][1]} | {row['tokens_per_frame']} | {upstream['prompt_tokens']} "
            f"| {verdict} | {planned['size'][0]}x{planned['size'][1]} "
            f"| {planned['prompt_tokens']} ({planned['budget_use']:.1%}) |"
        )
    return "\n".join(lines)
