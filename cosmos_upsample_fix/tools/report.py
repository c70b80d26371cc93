"""The command line's text: a plan's report, and the token-cost table."""
from __future__ import annotations

from collections.abc import Sequence

from cosmos_upsample_fix.core.budget import Limits, RequestCount, Size
from cosmos_upsample_fix.core.options import Policy
from cosmos_upsample_fix.core.policies import plan_sizes
from cosmos_upsample_fix.media.frames.selection import frames_phrase
from cosmos_upsample_fix.planning.planner import Plan
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel


def describe(count: RequestCount) -> str:
    """``2 frames at 1280x704: 2340 tokens each, 4699 in all``."""
    sizes = sorted(set(count.frame_sizes), key=count.frame_sizes.index)
    shown = ", ".join(f"{w}x{h}" for w, h in sizes)
    per = "/".join(str(t) for t in sorted(set(count.tokens_per_frame), reverse=True))
    each = " each" if len(count.frame_sizes) > 1 else ""
    return f"{frames_phrase(len(count.frame_sizes))} at {shown}: {per} tokens{each}, {count.prompt_tokens} in all"


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
            f"does NOT fit: over the budget by {o.over_by}; vLLM raises 'The decoder prompt (length "
            f"{o.prompt_tokens}) is longer than the maximum model length of {lim.max_model_len}.'"
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
    return "\n".join(lines)


def token_table(
    model: UpsamplerModel, limits: Limits, policy: Policy, sizes: Sequence[Size], frames: int, prompt: str | None
) -> str:
    """The Markdown table of ``table``: each size's upstream request and the policy's plan."""
    text_tokens = model.text_tokens(prompt)
    rows = [
        f"| frames ({frames} each) | tokens per frame | upstream request | fits {limits.prompt_budget}? "
        f"| {policy.spec} plan | planned request |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size in sizes:
        original = model.count([size] * frames, prompt, limits)
        target = plan_sizes([size] * frames, text_tokens, model.grid, limits, policy)
        planned = model.count(target, prompt, limits)
        verdict = "yes" if original.fits else f"no (+{original.over_by})"
        rows.append(
            f"| {size[0]}x{size[1]} | {original.tokens_per_frame[0]} | {original.prompt_tokens} | {verdict} "
            f"| {target[0][0]}x{target[0][1]} | {planned.prompt_tokens} ({planned.budget_use:.1%}) |"
        )
    return "\n".join(rows)
