"""The whole benchmark: measure every table, judge the goals, write the report.

    python -m benchmarks.run [--quick] [--strict] [--out FILE] [--runs N]

A full run writes ``benchmarks/RESULTS.md``; ``--quick`` (small generated clips, few runs)
prints its report and writes a file only where ``--out`` says, never over RESULTS.md.
See benchmarks/README.md for what each table measures and why.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_upsample_fix.planning.tokenizer import load_model

from . import budget_use, fidelity, goals, offload, planning, render, speed
from .clips import SHORT_FRAMES, Clip, ClipSet, make_clips
from .config import PROMPT, Context
from .environment import describe, package_revision

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


@dataclass
class Results:
    """Everything one run measured, the goals judged on it and the package problems it found."""

    budget: budget_use.BudgetResult
    fidelity: fidelity.FidelityResult
    speed: speed.SpeedResult
    planning: planning.PlanningResult
    offload: offload.OffloadResult
    offload_clip: Clip | None
    goals: list[goals.Goal] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return (self.budget.problems + self.fidelity.problems + self.speed.problems + self.planning.problems
                + self.offload.problems)


def batch_clip(clips: list[Clip]) -> Clip | None:
    """The clip the prompt batch runs on: the first 720p-class video, else the first video."""
    videos = [c for c in clips if c.video]
    return next((c for c in videos if c.p720), videos[0] if videos else None)


def measure(clipset: ClipSet, ctx: Context, *, plan_requests: int = 2000, plan_exact: int = 100,
            batch: int = 8) -> Results:
    """Every table, in order; the goals judged at the end."""
    ctx.log("1. budget use")
    budget = budget_use.measure(clipset.clips, ctx)
    ctx.log("2. fidelity")
    fid = fidelity.measure(budget, ctx)
    ctx.log("3. speed")
    spd = speed.measure(clipset.clips, clipset.long, ctx)
    ctx.log("4. planning cost")
    plan = planning.measure(plan_requests, plan_exact, ctx)
    ctx.log("5. prompt batch")
    clip = batch_clip(clipset.clips)
    off = offload.measure(clip.path, ctx, batch) if clip is not None else offload.OffloadResult(skipped="no video")
    results = Results(budget, fid, spd, plan, off, clip)
    results.goals = goals.judge(budget, fid, spd, plan)
    return results


def report(results: Results, clipset: ClipSet, ctx: Context, command: str, elapsed: float) -> str:
    """The whole Markdown report."""
    clips = clipset.clips
    long = clipset.long
    camera = sum(c.group == "generated" and c.kind == "camera" for c in clips)
    controls = [c for c in clips if c.group == "generated" and c.kind != "camera"]
    header = [
        "# cosmos_upsample_fix benchmarks", "",
        f"`{command}`, {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, took {elapsed:.0f} s.", "",
        *describe(package_revision()), "",
        f"Inputs: {sum(c.group == 'sample' for c in clips)} sample clips, "
        f"{camera} generated camera-like {SHORT_FRAMES}-frame "
        "clips (synthetic detail: 1/f noise, hard edges, text, 2–5 px periodic textures, per-frame noise), "
        f"{len(controls)} generated control-like {SHORT_FRAMES}-frame "
        "clips (" + ", ".join(sorted({c.kind for c in controls}))
        + f"; `benchmarks/control.py`), all libx264 CRF 18 yuv420p, {sum(c.group == 'still' for c in clips)} "
        "generated stills" + (f", and one generated long clip ({long.width}x{long.height}, {long.frames} frames)"
                              if long else "") + "." + "".join(" " + n for n in clipset.notes),
        "", f"Prompt of every request: \"{PROMPT}\".", "",
        render.goals(results.goals),
    ]
    if results.problems:
        header += ["", "## Problems found in the package", "", *(f"- {p}" for p in results.problems)]
    sections = [
        render.budget(results.budget),
        render.fidelity(results.fidelity, ctx.model.grid.max_image_size),
        render.speed(results.speed, ctx.runs),
        render.planning(results.planning),
        render.offload(results.offload, results.offload_clip),
    ]
    return "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small generated clips, fewer runs (a few minutes)")
    parser.add_argument("--out", default=None,
                        help="Markdown report (full run: default benchmarks/RESULTS.md; --quick: printed only)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 11, quick 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    if args.quick and out is not None and out.resolve() == RESULTS.resolve():
        parser.error("--quick does not overwrite the committed benchmarks/RESULTS.md; give another --out")
    runs = args.runs or (3 if args.quick else 11)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    model = load_model()
    model.text_tokens(PROMPT)  # loads the tokenizer, outside every timing
    tmp = Path(tempfile.mkdtemp(prefix="cosmos_upsample_bench_"))
    try:
        ctx = Context(model, tmp, runs, log, started=started)
        clipset = make_clips(tmp, args.quick, log)
        results = measure(clipset, ctx, plan_requests=1000 if args.quick else 2000,
                          plan_exact=20 if args.quick else 100)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "") + (
        f" --runs {args.runs}" if args.runs else "")
    text = report(results, clipset, ctx, command, time.perf_counter() - started)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        log(f"wrote {out}")
    missed = [g for g in results.goals if g.applicable and not g.passed]
    return 1 if args.strict and (missed or results.problems) else 0
