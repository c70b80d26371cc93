"""The ``cosmos-upsample-fix`` command: inspect, prepare, hint, demo, patch.

Only this module prints. Exit status: 0 when the plan fits (or the patch action
succeeded), 2 with a one-line message on bad input or when nothing can fit.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .budget import Limits, RequestCount
from .errors import UpsampleFixError
from .options import Options
from .planner import Plan, PlannedFrames, plan_frames

PROG = "cosmos-upsample-fix"
DEMO_PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
TABLE_SIZES = ("320x180", "640x480", "928x510", "960x540", "960x704", "1280x704", "1280x720", "1920x1080",
               "3840x2160", "1280x800", "1024x1024", "882x1568")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", default="", help="the prompt to upsample (empty: upstream's default text)")
    parser.add_argument("--policy", default="fit", help="fit (default), max-side:N, max-pixels:N, scale:F, fixed:WxH, none")
    parser.add_argument("--frames", type=int, default=2, help="frames to send (default 2, at most --max-images)")
    parser.add_argument("--select", default="first", choices=("first", "uniform", "ends"), help="which frames (default first)")
    parser.add_argument("--max-model-len", type=int, default=4096, help="the engine's context length (default 4096)")
    parser.add_argument("--reserve-output", type=int, default=300, help="tokens kept for the answer (default 300)")
    parser.add_argument("--max-images", type=int, default=2, help="images the engine allows per prompt (default 2)")
    parser.add_argument("--checkpoint-dir", help="upstream's checkpoint folder or the upsampler model folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="what upstream would send, and what the policy plans")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="a video, an image, or several images (one frame each)")
    _common(p)

    p = sub.add_parser("prepare", help="write the exact frames the upsampler would receive as PNG files")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("--out-dir", required=True, help="folder for the PNG files (created if missing; never overwritten)")
    _common(p)

    p = sub.add_parser("hint", help="write a small mp4 whose frames fit the budget, for the standalone upsampler")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("-o", "--output", required=True, help="the mp4 to write (never overwritten)")
    _common(p)

    p = sub.add_parser("demo", help="show the failure and the fix on a generated 1280x704 clip")
    p.add_argument("--out-dir", help="folder for the clip and frames (default: a new temporary folder)")
    _common(p)
    p.set_defaults(prompt=DEMO_PROMPT)

    p = sub.add_parser("table", help="a Markdown table of frame sizes, their token costs, and the fit plan")
    p.add_argument("sizes", nargs="*", metavar="WxH", help=f"frame sizes (default: {' '.join(TABLE_SIZES)})")
    _common(p)
    p.set_defaults(prompt=DEMO_PROMPT)

    p = sub.add_parser("patch", help="apply, check or revert the source patch on a cosmos-transfer1 checkout")
    p.add_argument("action", choices=("apply", "check", "revert"))
    p.add_argument("cosmos_dir", metavar="COSMOS_DIR")
    return parser


def _options(args: argparse.Namespace) -> Options:
    """The command line's edge: the one place its flags become :class:`Options`."""
    return Options.build(
        policy=args.policy, select=args.select, frames=args.frames, max_model_len=args.max_model_len,
        reserve_output=args.reserve_output, max_images=args.max_images, checkpoint_dir=args.checkpoint_dir,
    )


def _limits(args: argparse.Namespace) -> Limits:
    return _options(args).limits()


def _plan(args: argparse.Namespace, inputs: Sequence[str] | str) -> PlannedFrames:
    """Plan for one video/image path, or for several image paths (one frame each)."""
    from .model import load_model

    source: str | list[str] = inputs if isinstance(inputs, str) else (inputs[0] if len(inputs) == 1 else list(inputs))
    options = _options(args)
    return plan_frames(source, args.prompt, options, model=load_model(options.checkpoint_dir))


def _describe(count: RequestCount) -> str:
    sizes = sorted(set(count.frame_sizes), key=count.frame_sizes.index)
    shown = ", ".join(f"{w}x{h}" for w, h in sizes)
    per = "/".join(str(t) for t in sorted(set(count.tokens_per_frame), reverse=True))
    return f"{len(count.frame_sizes)} frame(s) at {shown}: {per} tokens each, {count.prompt_tokens} in all"


def format_report(plan: Plan) -> str:
    """The human-readable report of a plan."""
    lim = plan.limits
    budget = f"{lim.prompt_budget} (max_model_len {lim.max_model_len} - {lim.reserved_output_tokens} for the answer)"
    o, p = plan.original, plan.planned
    if o.fits:
        verdict = f"fits ({o.budget_use:.1%} of the budget)"
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
        f"upstream: {_describe(o)} -> {verdict}",
        f"plan:     policy {plan.policy.spec}, {plan.select} frames {list(plan.frame_indices)}: {_describe(p)} -> "
        + (f"fits ({p.budget_use:.1%} of the budget)" if p.fits else "does NOT fit"),
    ]
    return "\n".join(lines)


def _emit(args: argparse.Namespace, plan: Plan, extra: dict[str, Any] | None = None, text: str = "") -> int:
    if args.json:
        data = plan.to_dict()
        data.update(extra or {})
        print(json.dumps(data, indent=2))
    else:
        print(format_report(plan) + (("\n" + text) if text else ""))
    return 0 if plan.fits else 2


def _prepare(args: argparse.Namespace) -> int:
    planned = _plan(args, args.inputs)
    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpsampleFixError(f"cannot create --out-dir {out}: {exc.strerror or exc}") from None
    files = [str(p) for p in planned.write(out)]
    return _emit(args, planned.plan, {"files": files}, "wrote:    " + ", ".join(files))


def _hint(args: argparse.Namespace) -> int:
    from .hint import write_video

    planned = _plan(args, args.inputs)
    if len(set(planned.plan.planned.frame_sizes)) > 1:
        raise UpsampleFixError("a hint clip needs frames of one size; these images differ (use prepare instead)")
    path = write_video(planned.images, args.output)
    return _emit(args, planned.plan, {"output": str(path)}, f"wrote:    {path}")


def _demo(args: argparse.Namespace) -> int:
    from .hint import demo_frames, write_video
    from .model import load_model

    out = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="cosmos-upsample-fix-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    clip = write_video(demo_frames(), out / "demo_1280x704.mp4")
    planned = _plan(args, str(clip))
    files = planned.write(out)
    # the authoritative check: the written PNGs, sent as upstream sends them, through mistral_common
    import base64

    model = load_model(args.checkpoint_dir)
    urls = ["data:image/jpeg;base64," + base64.b64encode(Path(f).read_bytes()).decode() for f in files]
    checked = len(model.encode(args.prompt, urls))
    text = (
        f"wrote:    {out}/ (the clip {clip.name} and the frames {', '.join(f.name for f in files)})\n"
        f"checked:  the written frames plus the prompt tokenize to {checked} tokens with mistral_common "
        f"({'matches the plan' if checked == planned.plan.planned.prompt_tokens else 'MISMATCH'})"
    )
    if checked != planned.plan.planned.prompt_tokens:
        raise UpsampleFixError(f"token check failed: planned {planned.plan.planned.prompt_tokens}, got {checked}")
    return _emit(args, planned.plan, {"files": [str(f) for f in files], "clip": str(clip), "checked_tokens": checked}, text)


def _table(args: argparse.Namespace) -> int:
    from .model import load_model
    from .options import parse_size
    from .policies import plan_sizes

    options = _options(args)
    model, limits, policy = load_model(options.checkpoint_dir), options.limits(), options.policy
    sizes = [parse_size(text) for text in args.sizes or TABLE_SIZES]
    n, text_tokens = args.frames, model.text_tokens(args.prompt)
    rows = [
        f"| frames ({n} each) | tokens per frame | upstream request | fits {limits.prompt_budget}? "
        f"| {policy.spec} plan | planned request |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size in sizes:
        original = model.count([size] * n, args.prompt, limits)
        target = plan_sizes([size] * n, text_tokens, model.grid, limits, policy)
        planned = model.count(target, args.prompt, limits)
        verdict = "yes" if original.fits else f"no (+{original.over_by})"
        rows.append(
            f"| {size[0]}x{size[1]} | {original.tokens_per_frame[0]} | {original.prompt_tokens} | {verdict} "
            f"| {target[0][0]}x{target[0][1]} | {planned.prompt_tokens} ({planned.budget_use:.1%}) |"
        )
    print("\n".join(rows))
    return 0


def _patch(args: argparse.Namespace) -> int:
    from .patching import run_patch_command

    code, message = run_patch_command(args.action, args.cosmos_dir)
    print(message, file=sys.stdout if code in (0, 1) else sys.stderr)
    return code


class _HeldWarnings(logging.Handler):
    """Keeps the package's warnings while a command runs (see :func:`main`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    The package's warnings (e.g. a skipped undecodable packet) are held while the command
    runs and shown after it when it succeeds; when it fails, stderr gets only the one-line
    error, which carries the reason.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a path the terminal's encoding cannot show is escaped, not fatal
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (e.g. replaced by a caller)
            pass
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    handlers = {"inspect": lambda a: _emit(a, _plan(a, a.inputs).plan), "prepare": _prepare, "hint": _hint,
                "demo": _demo, "table": _table, "patch": _patch}
    package_log = logging.getLogger(__package__ or "cosmos_upsample_fix")
    held, propagate = _HeldWarnings(), package_log.propagate
    package_log.addHandler(held)
    package_log.propagate = False
    failed = True
    try:
        code = handlers[args.command](args)
        failed = False
        return code
    except UpsampleFixError as exc:
        held.records.clear()  # the one-line error says what went wrong
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; the traceback on request
        if os.environ.get("COSMOS_UPSAMPLE_FIX_DEBUG"):
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{PROG}: internal error: {text} (set COSMOS_UPSAMPLE_FIX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        package_log.removeHandler(held)
        package_log.propagate = propagate
        if not failed:
            for record in held.records:
                package_log.handle(record)


if __name__ == "__main__":
    sys.exit(main())
