#!/usr/bin/env python
"""Benchmarks of cosmos_upsample_fix: budget use, fidelity, speed, planning cost.

    python benchmarks/run.py [--quick] [--out benchmarks/RESULTS.md]

Prints four markdown tables and writes them, with the machine and library versions, to
``--out``. See benchmarks/README.md for what each table measures and why.
"""
from __future__ import annotations

import argparse
import base64
import datetime as _dt
import gc
import io
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

import metrics  # noqa: E402
import synth  # noqa: E402


def _import_package(retries: int = 5, wait: float = 60.0):
    """Import the package; another agent may still be finishing a module, so retry a little."""
    for attempt in range(retries):
        try:
            from cosmos_upsample_fix import budget, hint, images, model, planner, policies  # noqa: F401
            from cosmos_upsample_fix import frames  # noqa: F401

            return
        except ImportError as exc:  # pragma: no cover - only while the package is being edited
            if attempt == retries - 1:
                raise
            print(f"import failed ({exc}); retrying in {wait:.0f} s", file=sys.stderr)
            time.sleep(wait)


_import_package()
import mistral_common  # noqa: E402

from cosmos_upsample_fix.budget import Limits, model_pixels  # noqa: E402
from cosmos_upsample_fix.frames import read_frames  # noqa: E402
from cosmos_upsample_fix.hint import write_video  # noqa: E402
from cosmos_upsample_fix.images import resize, write_png  # noqa: E402
from cosmos_upsample_fix.model import load_model  # noqa: E402
from cosmos_upsample_fix.planner import plan_frames  # noqa: E402
from cosmos_upsample_fix.policies import plan_sizes  # noqa: E402

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
LIMITS = Limits()  # max_model_len 4096, 300 reserved, 2 images: upstream's settings
BUDGET = LIMITS.prompt_budget  # 3796
FIT_MIN_USE = 0.95
FIDELITY_MIN_GAIN_DB = 3.0
SPEED_MAX_RATIO = 1.0
UNIFORM_MAX_RATIO = 3.0
PLAN_MAX_MS = 1.0

SHARED_VIDEOS = REPO.parent / "shared" / "videos"

# (width, height, aspect label) of the generated short clips
FULL_SIZES = [
    (854, 480, "16:9"), (1280, 720, "16:9"), (1920, 1080, "16:9"), (3840, 2160, "16:9"),
    (640, 480, "4:3"), (1440, 1080, "4:3"),
    (1280, 800, "16:10"), (1920, 1200, "16:10"),
    (720, 1280, "9:16"), (1080, 1920, "9:16"),
    (720, 720, "1:1"), (1080, 1080, "1:1"), (2160, 2160, "1:1"),
    (2560, 1080, "21:9"), (3440, 1440, "21:9"),
]
QUICK_SIZES = [
    (640, 360, "16:9"), (1280, 720, "16:9"), (640, 480, "4:3"), (360, 640, "9:16"), (480, 480, "1:1"),
    (840, 360, "21:9"),
]
SHORT_FRAMES = 8
LONG_FULL = (1280, 704, 600)
LONG_QUICK = (320, 176, 600)


# --------------------------------------------------------------------------- clips


@dataclass
class Clip:
    name: str
    path: Path
    width: int
    height: int
    frames: int
    group: str  # "sample" (../shared/videos), "generated", "long"
    aspect: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def p720(self) -> bool:
        """720p class: the short side is 700..800 px (1280x704, 1280x720, 960x704, 1280x800, 720x1280, 720x720)."""
        return 700 <= min(self.width, self.height) <= 800


def probe_clip(path: Path, group: str, aspect: str = "") -> Clip:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        width, height = stream.codec_context.width, stream.codec_context.height
    return Clip(path.name, path, width, height, frames, group, aspect or _aspect(width, height))


def _aspect(width: int, height: int) -> str:
    ratio = width / height
    for label, value in (("16:9", 16 / 9), ("4:3", 4 / 3), ("16:10", 1.6), ("9:16", 9 / 16), ("1:1", 1.0),
                         ("21:9", 64 / 27), ("3:4", 0.75)):
        if abs(ratio / value - 1) < 0.03:
            return label
    return f"{ratio:.3f}:1"


def hint_size(width: int, height: int) -> tuple[int, int]:
    """Size of the manual-workaround hint clip.

    320x180 for 16:9-ish frames (within 3 %, so 1280x704 too), 180x320 for 9:16; any other
    aspect keeps its ratio with a 320 px long side, the short side rounded to an even number
    (H.264 4:2:0 needs even sides): 4:3 -> 320x240, 16:10 -> 320x200, 1:1 -> 320x320,
    21:9 -> 320x136 / 320x134.
    """
    ratio = width / height
    if abs(ratio / (16 / 9) - 1) <= 0.03:
        return 320, 180
    if abs(ratio / (9 / 16) - 1) <= 0.03:
        return 180, 320
    if width >= height:
        return 320, max(2, 2 * round(160 * height / width))
    return max(2, 2 * round(160 * width / height)), 320


def make_clips(tmp: Path, quick: bool, log) -> tuple[list[Clip], Clip, list[str]]:
    notes: list[str] = []
    clips: list[Clip] = []
    if quick:
        notes.append("--quick: generated clips only (the sample clips in ../shared/videos are not used).")
    elif SHARED_VIDEOS.is_dir() and any(SHARED_VIDEOS.glob("*.mp4")):
        for path in sorted(SHARED_VIDEOS.glob("*.mp4")):
            clips.append(probe_clip(path, "sample"))
    else:
        notes.append(f"Sample clips skipped: {SHARED_VIDEOS} not found.")
    started = time.perf_counter()
    for w, h, aspect in QUICK_SIZES if quick else FULL_SIZES:
        path = synth.write_clip(tmp / f"gen_{w}x{h}.mp4", w, h, SHORT_FRAMES)
        clips.append(Clip(path.name, path, w, h, SHORT_FRAMES, "generated", aspect))
    w, h, n = LONG_QUICK if quick else LONG_FULL
    path = synth.write_clip(tmp / f"long_{w}x{h}_{n}f.mp4", w, h, n)
    long_clip = probe_clip(path, "long")
    log(f"generated {len(clips) - sum(c.group == 'sample' for c in clips) + 1} clips in "
        f"{time.perf_counter() - started:.1f} s")
    return clips, long_clip, notes


# --------------------------------------------------------------------------- helpers


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def fmt_db(x: float) -> str:
    if math.isinf(x) or x > 100:
        return "lossless"
    return f"{x:.2f}"


def fmt_ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image)


def size_str(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass
class Goal:
    name: str
    passed: bool
    detail: str
    info: bool = False  # a reported comparison without a goal: shown as INFO, never PASS/FAIL

    @property
    def result(self) -> str:
        return "INFO" if self.info else ("PASS" if self.passed else "FAIL")


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- 1. budget


def budget_table(clips: list[Clip], model, report: Report, log) -> dict[str, object]:
    rows = []
    plans = {}
    failures = []
    for clip in clips:
        planned = plan_frames(clip.path, PROMPT, policy="fit", limits=LIMITS, model=model)
        plan = planned.plan
        plans[clip.name] = planned
        orig, fit = plan.original, plan.planned
        hsize = hint_size(*clip.size)
        hint = model.count([hsize] * len(fit.frame_sizes), PROMPT, LIMITS)
        # exact cross-check of both counts through mistral_common itself
        _, originals = read_frames(clip.path, 2, "first")
        exact_orig = len(model.encode(PROMPT, [pil(f.image) for f in originals]))
        exact_fit = len(model.encode(PROMPT, [pil(im) for im in planned.images]))
        exact_ok = exact_orig == orig.prompt_tokens and exact_fit == fit.prompt_tokens
        if not exact_ok:
            report.problems.append(
                f"{clip.name}: closed-form count differs from mistral_common: upstream {orig.prompt_tokens} vs "
                f"{exact_orig}, fit {fit.prompt_tokens} vs {exact_fit}"
            )
        sizes_ok = all((im.shape[1], im.shape[0]) == s for im, s in zip(planned.images, fit.frame_sizes))
        if not sizes_ok:
            report.problems.append(f"{clip.name}: planned images are not at the planned size")
        passed = fit.fits and (orig.fits or fit.budget_use >= FIT_MIN_USE) and exact_ok and sizes_ok
        if orig.fits and fit.frame_sizes != orig.frame_sizes:
            report.problems.append(f"{clip.name}: fits as is, but fit changed its size to {fit.frame_sizes[0]}")
        if not passed:
            failures.append(f"{clip.name} ({fmt_pct(fit.budget_use)}, fits={fit.fits})")
        rows.append([
            clip.name, size_str(clip.size),
            f"{orig.prompt_tokens}", fmt_pct(orig.budget_use) + ("" if orig.fits else " ✗"),
            size_str(hsize), f"{hint.prompt_tokens}", fmt_pct(hint.budget_use),
            size_str(fit.frame_sizes[0]), f"{fit.prompt_tokens}", fmt_pct(fit.budget_use),
            "yes" if exact_ok else f"NO ({exact_orig}/{exact_fit})",
            "PASS" if passed else "FAIL",
        ])
        log(f"  budget {clip.name}: {plan.summary()}")
    headers = ["clip", "original", "upstream tokens", "upstream use", "hint size", "hint tokens", "hint use",
               "fit size", "fit tokens", "fit use", "exact = mistral_common", "goal"]
    use_fit = [p.plan.planned.budget_use for p in plans.values() if not p.plan.original.fits]
    section = [
        "## 1. Budget use",
        "",
        f"Prompt: \"{PROMPT}\" ({model.text_tokens(PROMPT)} tokens with BOS/[INST]/[/INST]); two frames "
        f"(upstream sends the first two). Budget use = prompt tokens / ({LIMITS.max_model_len} − "
        f"{LIMITS.reserved_output_tokens}) = /{BUDGET}; over 100 % (✗) the request fails. *hint* is the manual "
        "workaround: a clip resized to 320x180 (180x320 for portrait); other aspect ratios keep their ratio with "
        "a 320-px long side, the short side rounded to even (4:3 → 320x240, 16:10 → 320x200, 1:1 → 320x320, "
        "21:9 → 320x136/320x134). *fit* is `plan_frames(..., policy=\"fit\")`. Every count is cross-checked "
        "against `len(model.encode(prompt, images))` through mistral_common with the actual frames "
        "(upstream: the full frames; fit: the planned frames).",
        "",
        f"Goal: every clip fits under `fit`, and where the original does not fit, `fit` uses ≥ "
        f"{FIT_MIN_USE:.0%} of the budget.",
        "",
        table(headers, rows),
    ]
    if use_fit:
        section += ["", f"`fit` budget use where the original does not fit: min {fmt_pct(min(use_fit))}, "
                        f"median {fmt_pct(statistics.median(use_fit))}, max {fmt_pct(max(use_fit))} "
                        f"({len(use_fit)} clips)."]
    report.sections.append("\n".join(section))
    n = len(clips)
    report.goals.append(Goal(
        "Budget: every clip fits under fit; ≥ 95 % use where the original does not fit",
        not failures,
        f"{n - len(failures)}/{n} clips pass" + (f"; min use {fmt_pct(min(use_fit))}" if use_fit else "")
        + (f"; failing: {', '.join(failures)}" if failures else ""),
    ))
    return plans


# --------------------------------------------------------------------------- 2. fidelity


def _score(originals: list[np.ndarray], views: list[np.ndarray]) -> tuple[float, float]:
    """Mean PSNR (dB) and mean SSIM over the frames, each view scaled back to its original's size."""
    ps, ss = [], []
    for ref, view in zip(originals, views):
        back = metrics.upscale(view, (ref.shape[1], ref.shape[0]))
        ps.append(metrics.psnr(ref, back))
        ss.append(metrics.ssim(ref, back))
    return statistics.fmean(ps), statistics.fmean(ss)


def fidelity_table(clips: list[Clip], plans, model, tmp: Path, report: Report, log) -> None:
    encoder = metrics.image_encoder(model)
    rows, lanczos_rows, passthrough_rows = [], [], []
    failures, gains = [], []
    diffs = []
    for clip in clips:
        planned = plans[clip.name]
        _, frames = read_frames(clip.path, 2, "first")
        originals = [f.image for f in frames]
        orig_fits = planned.plan.original.fits

        # fit: the frames the plugin sends, through the model's resize
        fit_views = [metrics.model_view(encoder, im)[0] for im in planned.images]
        fit_grid = (fit_views[0].shape[1], fit_views[0].shape[0])
        fit_p, fit_s = _score(originals, fit_views)

        # 320x180 hint: same Lanczos resize as the plugin, no codec (the baseline's best case) ...
        hsize = hint_size(*clip.size)
        hint_frames = [resize(im, hsize) for im in originals]
        hint_views = [metrics.model_view(encoder, im)[0] for im in hint_frames]
        hint_grid = (hint_views[0].shape[1], hint_views[0].shape[0])
        hint_p, hint_s = _score(originals, hint_views)
        # ... and as the real workaround: an H.264 hint clip (hint.write_video, CRF 12) read back
        clip_path = tmp / f"hint_{clip.name}"
        write_video(hint_frames, clip_path)
        _, decoded = read_frames(clip_path, 2, "first")
        clip_path.unlink()
        hclip_p, _ = _score(originals, [metrics.model_view(encoder, f.image)[0] for f in decoded])

        # upstream: the full frame through the model's own cubic resize (only where it fits)
        if orig_fits:
            up_views = [metrics.model_view(encoder, im)[0] for im in originals]
            up_p, up_s = _score(originals, up_views)
            up_cell = f"{fmt_db(up_p)} / {up_s:.4f}"
        else:
            up_cell = "fails (over budget)"

        gain = fit_p - hint_p
        goal_cell = "—"
        if clip.p720:
            ok = gain >= FIDELITY_MIN_GAIN_DB
            gains.append(gain)
            goal_cell = "PASS" if ok else "FAIL"
            if not ok:
                failures.append(f"{clip.name} (+{gain:.2f} dB)")
        rows.append([
            clip.name, size_str(clip.size), "yes" if clip.p720 else "",
            f"{size_str(planned.plan.planned.frame_sizes[0])} → {size_str(fit_grid)}",
            f"{fmt_db(fit_p)} / {fit_s:.4f}",
            f"{size_str(hsize)} → {size_str(hint_grid)}",
            f"{fmt_db(hint_p)} / {hint_s:.4f}", fmt_db(hclip_p),
            up_cell,
            "—" if math.isinf(gain) or fit_p > 100 else f"{gain:+.2f}",
            goal_cell,
        ])

        # Lanczos (fit) vs the model's cubic straight from the full frame, at fit's target size
        target = planned.plan.planned.frame_sizes[0]
        if tuple(target) == clip.size and max(clip.size) > model.grid.max_image_size:
            # fit sends the full frame (the request fits) and the model shrinks it itself, with its
            # non-antialiased cubic: what if the plugin had sent a Lanczos-resized frame at that grid size?
            grid_size = model_pixels(clip.size, model.grid)
            lz_views = [metrics.model_view(encoder, resize(im, grid_size))[0] for im in originals]
            lz_p, lz_s = _score(originals, lz_views)
            passthrough_rows.append([
                clip.name, size_str(clip.size), size_str(grid_size), f"{fit_p:.2f} / {fit_s:.4f}",
                f"{lz_p:.2f} / {lz_s:.4f}", f"{lz_p - fit_p:+.2f}",
            ])
        if tuple(target) != clip.size:
            cubic_views = [metrics.cubic(im, target) for im in originals]
            cub_p, cub_s = _score(originals, cubic_views)
            diffs.append(fit_p - cub_p)
            lanczos_rows.append([
                clip.name, size_str(clip.size), size_str(target), f"{max(clip.size) / max(target):.2f}",
                f"{fit_p:.2f} / {fit_s:.4f}", f"{cub_p:.2f} / {cub_s:.4f}", f"{fit_p - cub_p:+.2f}",
                f"{fit_s - cub_s:+.4f}",
            ])
        log(f"  fidelity {clip.name}: fit {fit_p:.2f} dB, hint {hint_p:.2f} dB, gain {gain:+.2f}")
    headers = ["clip", "original", "720p class", "fit sent → model grid", "fit PSNR / SSIM",
               "hint sent → model grid", "hint PSNR / SSIM", "hint clip (h264) PSNR", "upstream PSNR / SSIM",
               "fit − hint (dB)", "goal"]
    section = [
        "## 2. Fidelity",
        "",
        "What the model sees vs. the original frame. For each method, the frames it sends go through "
        "mistral_common's own image encoder (`ImageEncoder.__call__`: 1024 max-side cap, patch grid "
        "ceil(w/16)·16 × ceil(h/16)·16, OpenCV INTER_CUBIC on float32 RGB); its normalised output is "
        "un-normalised back to 0..255 (float, not rounded). That view is scaled back to the original size with "
        "OpenCV INTER_CUBIC on float32 (same filter for every row), clipped to 0..255, and compared with the "
        "original frame as decoded by PyAV. PSNR is over all RGB channels (peak 255); SSIM is Wang et al. 2004 "
        "(Gaussian 11×11, σ 1.5, K1 0.01, K2 0.03) on luma Y = .299R + .587G + .114B, valid region; both are "
        "the mean over the two frames sent. *hint* = the frames resized to the hint size with the package's own "
        "Lanczos, `images.resize` (no codec: the workaround's best case; the goal is judged on it); *hint clip* = the same "
        "frames written as a real H.264 hint clip (`hint.write_video`, CRF 12) and read back. *upstream* = the "
        "full frame, only where that request fits. \"lossless\" = the model sees the original pixels "
        "(PSNR > 100 dB: float rounding only).",
        "",
        f"Goal: `fit` ≥ {FIDELITY_MIN_GAIN_DB:.0f} dB above the 320x180 hint on every 720p-class clip "
        "(short side 700–800 px).",
        "",
        table(headers, rows),
        "",
        "### Lanczos (fit) vs. the model's own cubic resize at the same target size",
        "",
        "Same target size (fit's planned size, which is on the patch grid so the model's resize is then a "
        "no-op); *fit* = the package's own antialiased Lanczos (`images.resize`) as the plugin sends it; *cubic* = the full frame handed to "
        "OpenCV INTER_CUBIC on float32 straight to that size (what the model's resize would do, no "
        "antialiasing). Both scaled back and scored as above.",
        "",
        table(["clip", "original", "target", "downscale factor", "fit Lanczos PSNR / SSIM", "model cubic PSNR / SSIM",
               "Δ PSNR (dB)", "Δ SSIM"], lanczos_rows),
    ]
    if diffs:
        section += ["", f"Lanczos − cubic: median {statistics.median(diffs):+.2f} dB, min {min(diffs):+.2f} dB, "
                        f"max {max(diffs):+.2f} dB over {len(diffs)} downscaled clips."]
    if passthrough_rows:
        section += [
            "",
            f"Frames over the model's {model.grid.max_image_size}-px cap whose request already fits are sent "
            "unchanged by `fit` (by design), so the model shrinks them itself with its non-antialiased cubic. "
            "What if they were sent Lanczos-resized to the model's grid size instead (a what-if, not the "
            "package's path):",
            "",
            table(["clip", "original", "model grid", "fit as sent (model cubic) PSNR / SSIM",
                   "Lanczos to the grid PSNR / SSIM", "Δ PSNR (dB)"], passthrough_rows),
        ]
    report.sections.append("\n".join(section))
    if gains:
        report.goals.append(Goal(
            "Fidelity: fit ≥ 3 dB above 320x180 on every 720p-class clip",
            not failures,
            f"{len(gains) - len(failures)}/{len(gains)} pass; gain min {min(gains):+.2f} dB, "
            f"median {statistics.median(gains):+.2f} dB" + (f"; failing: {', '.join(failures)}" if failures else ""),
        ))
    if diffs:
        report.goals.append(Goal(
            "Fidelity (no goal): fit's Lanczos − the model's cubic at the same target size",
            True,
            f"median {statistics.median(diffs):+.2f} dB (min {min(diffs):+.2f}, max {max(diffs):+.2f}) over "
            f"{len(diffs)} clips",
            info=True,
        ))


# --------------------------------------------------------------------------- 3. speed


def _b64_files(paths) -> list[str]:
    out = []
    for p in paths:
        with open(p, "rb") as handle:
            out.append("data:image/jpeg;base64," + base64.b64encode(handle.read()).decode("utf-8"))
    return out


def plugin_run(path: Path, out_dir: Path, model, select: str = "first") -> int:
    """Video path -> base64 data URLs of the planned PNGs: plan_frames + write + base64 of the files."""
    planned = plan_frames(path, PROMPT, policy="fit", select=select, limits=LIMITS, model=model)
    urls = _b64_files(planned.write(out_dir))
    return sum(len(u) for u in urls)


def baseline_run(path: Path, out_dir: Path) -> int:
    """Upstream-style: cv2.VideoCapture first two frames, cv2.imwrite full-size PNGs, base64 of the files."""
    cap = cv2.VideoCapture(str(path))
    paths = []
    try:
        for i in range(2):
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError(f"cv2 could not read frame {i} of {path}")
            p = out_dir / f"frame_{i + 1}.png"
            cv2.imwrite(str(p), frame)
            paths.append(p)
    finally:
        cap.release()
    urls = _b64_files(paths)
    return sum(len(u) for u in urls)


def _resize_all(images, sizes):
    """Resize as plan_frames does: the planner's batch resize when it has one, else one by one."""
    from cosmos_upsample_fix import planner

    batch = getattr(planner, "resize_all", None)
    if batch is not None:
        return batch(images, sizes)
    return [resize(im, s) for im, s in zip(images, sizes)]


def plugin_stages(path: Path, out_dir: Path, model) -> dict[str, float]:
    """The plugin's pipeline step by step (same calls plan_frames makes), timed per stage in ms."""
    t0 = time.perf_counter()
    _, frames = read_frames(path, 2, "first")
    t1 = time.perf_counter()
    sizes = [(f.image.shape[1], f.image.shape[0]) for f in frames]
    text = model.text_tokens(PROMPT)
    targets = plan_sizes(sizes, text, model.grid, LIMITS, "fit")
    model.count(sizes, PROMPT, LIMITS)
    model.count(targets, PROMPT, LIMITS)
    t2 = time.perf_counter()
    resized = _resize_all([f.image for f in frames], targets)
    t3 = time.perf_counter()
    paths = [write_png(im, out_dir / f"frame_{i + 1}.png") for i, im in enumerate(resized)]
    t4 = time.perf_counter()
    _b64_files(paths)
    t5 = time.perf_counter()
    return {"decode": (t1 - t0) * 1e3, "plan": (t2 - t1) * 1e3, "resize": (t3 - t2) * 1e3,
            "png": (t4 - t3) * 1e3, "b64": (t5 - t4) * 1e3}


def baseline_stages(path: Path, out_dir: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(2)]
    cap.release()
    t1 = time.perf_counter()
    paths = []
    for i, frame in enumerate(frames):
        p = out_dir / f"frame_{i + 1}.png"
        cv2.imwrite(str(p), frame)
        paths.append(p)
    t2 = time.perf_counter()
    _b64_files(paths)
    t3 = time.perf_counter()
    return {"decode": (t1 - t0) * 1e3, "png": (t2 - t1) * 1e3, "b64": (t3 - t2) * 1e3}


def _median_ms(fn, runs: int = 9) -> float:
    fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def encoder_diagnostics(clip: Clip, model, tmp: Path) -> list[str]:
    """Other resizers and PNG encoders on the same frame, to size what the plugin's choices cost.

    Not the package's code path (except the rows marked so): a what-if for the report.
    """
    _, frames = read_frames(clip.path, 1, "first")
    image = frames[0].image
    target = plan_sizes([(image.shape[1], image.shape[0])] * 2, model.text_tokens(PROMPT), model.grid, LIMITS,
                        "fit")[0]
    small = resize(image, target)

    def pil_png(img: np.ndarray, **kw) -> int:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", **kw)
        return buf.tell()

    def cv2_png(img: np.ndarray) -> int:
        return len(cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1])

    out_dir = Path(tempfile.mkdtemp(prefix="png_", dir=tmp))
    counter = [0]

    def package_png(img: np.ndarray) -> int:
        counter[0] += 1
        return write_png(img, out_dir / f"f{counter[0]}.png").stat().st_size

    rows = [
        ["resize", "`images.resize` — the package", size_str(target),
         fmt_ms(_median_ms(lambda: resize(image, target))), ""],
        ["resize", "Pillow LANCZOS (antialiased)", size_str(target),
         fmt_ms(_median_ms(lambda: Image.fromarray(image).resize(target, Image.Resampling.LANCZOS))), ""],
        ["resize", "OpenCV INTER_AREA (antialiased box)", size_str(target),
         fmt_ms(_median_ms(lambda: cv2.resize(image, target, interpolation=cv2.INTER_AREA))), ""],
        ["png", "`images.write_png` to a file — the package", size_str(target),
         fmt_ms(_median_ms(lambda: package_png(small))), f"{package_png(small) / 1024:.0f}"],
        ["png", "Pillow compress_level 1", size_str(target),
         fmt_ms(_median_ms(lambda: pil_png(small, compress_level=1))),
         f"{pil_png(small, compress_level=1) / 1024:.0f}"],
        ["png", "Pillow compress_level 1, compress_type 3 (Z_RLE)", size_str(target),
         fmt_ms(_median_ms(lambda: pil_png(small, compress_level=1, compress_type=3))),
         f"{pil_png(small, compress_level=1, compress_type=3) / 1024:.0f}"],
        ["png", "Pillow compress_level 0 (stored)", size_str(target),
         fmt_ms(_median_ms(lambda: pil_png(small, compress_level=0))), f"{pil_png(small, compress_level=0) / 1024:.0f}"],
        ["png", "OpenCV `imencode` defaults (incl. RGB→BGR)", size_str(target),
         fmt_ms(_median_ms(lambda: cv2_png(small))), f"{cv2_png(small) / 1024:.0f}"],
        ["png", "OpenCV `imencode` defaults, full frame — what the baseline does", size_str(clip.size),
         fmt_ms(_median_ms(lambda: cv2_png(image))), f"{cv2_png(image) / 1024:.0f}"],
    ]
    shutil.rmtree(out_dir, ignore_errors=True)
    return [
        f"Per-frame cost of alternatives on the first frame of {clip.name} (median of 9, one frame; a what-if "
        "to explain the figures above, not the package's path except where marked):",
        "",
        table(["stage", "how", "size", "ms / frame", "PNG KB"], rows),
    ]


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover
        return "n/a"


class Dirs:
    """Fresh empty output folders, made and removed outside the timed regions."""

    def __init__(self, root: Path):
        self.root, self.n = root, 0

    def __enter__(self) -> Path:
        self.n += 1
        self.current = self.root / f"out{self.n}"
        self.current.mkdir()
        return self.current

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.current)


def timed(fn, dirs: Dirs) -> tuple[float, object]:
    with dirs as out:
        gc.collect()
        t = time.perf_counter()
        result = fn(out)
        return (time.perf_counter() - t) * 1e3, result


def speed_table(clips: list[Clip], long_clip: Clip, model, tmp: Path, runs: int, report: Report, log) -> None:
    load_start = _load()
    dirs = Dirs(tmp)
    rows, stage_rows = [], []
    stages_720: list = []
    misses, ratios = [], []
    for clip in clips:
        # warm-up (file cache, codec init, tokenizer) then interleaved runs
        timed(lambda d: plugin_run(clip.path, d, model), dirs)
        timed(lambda d: baseline_run(clip.path, d), dirs)
        plug, base = [], []
        plug_bytes = base_bytes = 0
        for _ in range(runs):
            t, plug_bytes = timed(lambda d: plugin_run(clip.path, d, model), dirs)
            plug.append(t)
            t, base_bytes = timed(lambda d: baseline_run(clip.path, d), dirs)
            base.append(t)
        ps, bs = [], []
        for _ in range(runs):
            with dirs as d:
                gc.collect()
                ps.append(plugin_stages(clip.path, d, model))
            with dirs as d:
                gc.collect()
                bs.append(baseline_stages(clip.path, d))
        pm, bm = statistics.median(plug), statistics.median(base)
        ratio = pm / bm
        paired = statistics.median(p / b for p, b in zip(plug, base))
        goal = "—"
        if clip.p720:
            ratios.append(ratio)
            goal = "PASS" if ratio <= SPEED_MAX_RATIO else "FAIL"
            if ratio > SPEED_MAX_RATIO:
                misses.append(f"{clip.name} ({ratio:.2f}x)")
        rows.append([clip.name, size_str(clip.size), "yes" if clip.p720 else "", fmt_ms(pm), fmt_ms(bm),
                     f"{ratio:.2f}", goal, f"{paired:.2f}",
                     f"{fmt_ms(min(plug))}–{fmt_ms(max(plug))}", f"{fmt_ms(min(base))}–{fmt_ms(max(base))}",
                     f"{plug_bytes / 1024:.0f}", f"{base_bytes / 1024:.0f}"])
        med = {k: statistics.median(s[k] for s in ps) for k in ps[0]}
        bmed = {k: statistics.median(s[k] for s in bs) for k in bs[0]}
        if clip.p720:
            stages_720.append((clip, pm, bm, med, bmed))
        stage_rows.append([clip.name, size_str(clip.size),
                           *(fmt_ms(med[k]) for k in ("decode", "plan", "resize", "png", "b64")),
                           fmt_ms(sum(med.values())),
                           *(fmt_ms(bmed[k]) for k in ("decode", "png", "b64")), fmt_ms(sum(bmed.values()))])
        log(f"  speed {clip.name}: plugin {pm:.1f} ms, baseline {bm:.1f} ms, ratio {ratio:.2f}")

    # uniform vs first on the long clip
    long_t = {}
    for select in ("first", "uniform"):
        timed(lambda d: plugin_run(long_clip.path, d, model, select), dirs)
    for select in ("first", "uniform"):
        long_t[select] = []
    for _ in range(runs):
        for select in ("first", "uniform"):
            t, _ = timed(lambda d: plugin_run(long_clip.path, d, model, select), dirs)
            long_t[select].append(t)
    dec = {"first": [], "uniform": []}
    for _ in range(runs):
        for select in ("first", "uniform"):
            gc.collect()
            t = time.perf_counter()
            _, fr = read_frames(long_clip.path, 2, select)
            dec[select].append((time.perf_counter() - t) * 1e3)
    idx = [f.index for f in fr]
    sample_rows = []
    for clip in [c for c in clips if c.group == "sample"]:
        times = {"first": [], "uniform": []}
        for select in ("first", "uniform"):
            timed(lambda d: plugin_run(clip.path, d, model, select), dirs)
        for _ in range(runs):
            for select in ("first", "uniform"):
                times[select].append(timed(lambda d: plugin_run(clip.path, d, model, select), dirs)[0])
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            nkeys = sum(1 for p in container.demux(stream) if p.size and p.is_keyframe)
        f_ms, u_ms = statistics.median(times["first"]), statistics.median(times["uniform"])
        sample_rows.append([clip.name, size_str(clip.size), str(clip.frames), str(nkeys), fmt_ms(f_ms),
                            fmt_ms(u_ms), f"{u_ms / f_ms:.2f}"])
    with av.open(str(long_clip.path)) as container:
        stream = container.streams.video[0]
        keys = [i for i, p in enumerate(container.demux(stream)) if p.size and p.is_keyframe]
    lf, lu = statistics.median(long_t["first"]), statistics.median(long_t["uniform"])
    ulratio = lu / lf
    base_long = statistics.median(timed(lambda d: baseline_run(long_clip.path, d), dirs)[0] for _ in range(runs))
    long_rows = [
        ["first", "[0, 1]", fmt_ms(lf), fmt_ms(statistics.median(dec["first"])), "1.00"],
        ["uniform", str(idx), fmt_ms(lu), fmt_ms(statistics.median(dec["uniform"])), f"{ulratio:.2f}"],
        ["baseline (cv2, first two)", "[0, 1]", fmt_ms(base_long), "—", f"{base_long / lf:.2f}"],
    ]
    log(f"  speed long clip: first {lf:.1f} ms, uniform {lu:.1f} ms, ratio {ulratio:.2f}")

    section = [
        "## 3. Speed",
        "",
        f"One process, wall time, median of {runs} runs after one warm-up run, plugin and baseline runs "
        "interleaved. *plugin* = from the video path to the base64 data URLs of the frames the upsampler "
        "receives: `plan_frames(path, prompt, policy=\"fit\")` (PyAV decode of the first two frames, planning, "
        "Lanczos resize) + `PlannedFrames.write(dir)` (PNG files) + reading the files back and base64 "
        "(files on disk, like upstream). *baseline* = upstream's `extract_video_frames` + `image_to_base64` "
        "re-done: `cv2.VideoCapture` reads the first two frames, `cv2.imwrite` writes full-size PNGs (OpenCV's "
        "default PNG settings), base64 of the files. Both write into a fresh empty folder made outside the "
        "timed region. The goal is judged on the ratio of the medians; *paired ratio* = median of the per-run "
        "ratios (each plugin run against the baseline run right after it), a check against load drift; the "
        "ranges are min–max over the runs. KB = base64 payload of the two frames. "
        f"Load average (1 min) at the start of this table: {load_start}, at its end: {_load()} — other jobs "
        "on the machine show up here.",
        "",
        f"Goal: plugin / baseline ≤ {SPEED_MAX_RATIO:.1f} on 720p-class clips.",
        "",
        table(["clip", "original", "720p class", "plugin ms", "baseline ms", "plugin / baseline", "goal",
               "paired ratio", "plugin range ms", "baseline range ms", "plugin KB", "baseline KB"], rows),
        "",
        "### Where the time goes (median ms per stage, separate step-by-step runs)",
        "",
        "Plugin stages: *decode* = `frames.read_frames(path, 2, \"first\")` (open, decode, RGB conversion); "
        "*plan* = text tokens (cached) + `plan_sizes` + two `model.count`; *resize* = both frames resized as "
        "`plan_frames` does it (`planner.resize_all`, the package's Lanczos, frames in parallel); *png* = `images.write_png` of both; *b64* = read back + base64. Baseline "
        "stages: *decode* = `cv2.VideoCapture` + two `read()`; *png* = two `cv2.imwrite`; *b64* likewise.",
        "",
        table(["clip", "original", "decode", "plan", "resize", "png", "b64", "plugin sum",
               "base decode", "base png", "base b64", "base sum"], stage_rows),
        "",
        f"### Frame selection on a long clip ({long_clip.name}: {size_str(long_clip.size)}, "
        f"{long_clip.frames} frames, H.264 with libx264's default GOP: keyframes at {keys})",
        "",
        "End-to-end plugin time as above with `select=\"first\"` vs `select=\"uniform\"` (first and last frame); "
        "*decode* = `read_frames` alone.",
        "",
        f"Goal: uniform / first ≤ {UNIFORM_MAX_RATIO:.0f}x.",
        "",
        table(["selection", "frames", "plugin ms", "decode ms", "ratio to first"], long_rows),
    ]
    if sample_rows:
        section += [
            "",
            "The same comparison on the sample clips (no goal; they are short, with few keyframes, so "
            "`uniform` decodes most of the clip to reach its last frame):",
            "",
            table(["clip", "original", "frames", "keyframes", "first ms", "uniform ms", "uniform / first"],
                  sample_rows),
        ]
    if stages_720:
        m = lambda key, i: statistics.median(x[i][key] for x in stages_720)  # noqa: E731
        over = [x for x in stages_720 if x[1] > x[2] * SPEED_MAX_RATIO]
        section += [
            "",
            "### Why (720p-class clips, medians over the clips)",
            "",
            f"Decode: plugin {fmt_ms(m('decode', 3))} ms (PyAV) vs baseline {fmt_ms(m('decode', 4))} ms "
            f"(OpenCV). The plugin then spends {fmt_ms(m('resize', 3))} ms resizing two frames (`planner.resize_all`) "
            f"and {fmt_ms(m('png', 3))} ms PNG-encoding the two smaller frames (`images.write_png`), "
            f"while OpenCV writes the two full-size frames in {fmt_ms(m('png', 4))} ms (its default PNG "
            "settings, zlib level 1 with the Z_RLE strategy: fast on the flat-coloured control clips). Planning costs "
            f"{fmt_ms(m('plan', 3))} ms. "
            + (f"{len(over)} of {len(stages_720)} 720p-class clips miss the goal." if over else
               "Every 720p-class clip meets the goal."),
        ]
        section += ["", *encoder_diagnostics(stages_720[0][0], model, tmp)]
    report.sections.append("\n".join(section))
    if ratios:
        report.goals.append(Goal(
            "Speed: plugin / baseline ≤ 1.0 on 720p-class clips",
            not misses,
            f"{len(ratios) - len(misses)}/{len(ratios)} pass; ratio median {statistics.median(ratios):.2f}, "
            f"max {max(ratios):.2f}" + (f"; failing: {', '.join(misses)}" if misses else ""),
        ))
    report.goals.append(Goal(
        f"Speed: uniform / first ≤ 3x on the {long_clip.frames}-frame clip",
        ulratio <= UNIFORM_MAX_RATIO,
        f"{ulratio:.2f}x ({fmt_ms(lu)} ms vs {fmt_ms(lf)} ms)",
    ))


# --------------------------------------------------------------------------- 4. planning cost


def request_sizes(n: int, seed: int = 1) -> list[list[tuple[int, int]]]:
    """``n`` requests of varied sizes: mostly two equal frames of a video, some mixed pairs and singles."""
    rng = np.random.default_rng(seed)
    aspects = [16 / 9, 4 / 3, 1.6, 9 / 16, 1.0, 64 / 27, 3 / 4, 1280 / 704]
    out = []
    for i in range(n):
        def one() -> tuple[int, int]:
            if rng.random() < 0.7:
                ratio = aspects[int(rng.integers(len(aspects)))]
            else:
                ratio = float(np.exp(rng.uniform(np.log(1 / 4), np.log(4))))
            long = int(rng.integers(96, 4097))
            short = max(16, int(round(long / ratio if ratio >= 1 else long * ratio)))
            return (long, short) if ratio >= 1 else (short, long)

        kind = i % 10
        if kind < 8:
            size = one()
            out.append([size, size])
        elif kind == 8:
            out.append([one(), one()])
        else:
            out.append([one()])
    return out


def planning_table(model, n: int, n_exact: int, report: Report, log) -> None:
    requests = request_sizes(n)
    grid = model.grid
    text = model.text_tokens(PROMPT)
    for sizes in requests[:50]:  # warm-up
        plan_sizes(sizes, text, grid, LIMITS, "fit")
    pure, full, exceeded = [], [], 0
    planned_sizes = []
    for sizes in requests:
        t = time.perf_counter_ns()
        targets = plan_sizes(sizes, text, grid, LIMITS, "fit")
        pure.append((time.perf_counter_ns() - t) / 1e6)
        t = time.perf_counter_ns()
        targets2 = plan_sizes(sizes, model.text_tokens(PROMPT), grid, LIMITS, "fit")
        model.count(sizes, PROMPT, LIMITS)
        planned = model.count(targets2, PROMPT, LIMITS)
        full.append((time.perf_counter_ns() - t) / 1e6)
        if not planned.fits:
            exceeded += 1
        planned_sizes.append((targets, planned.prompt_tokens))
    if exceeded:
        report.problems.append(f"planning: {exceeded} of {n} random requests planned over the budget")

    # exact cross-check through mistral_common with images at the planned size
    rng = np.random.default_rng(2)
    step = max(1, n // n_exact)
    picks = list(range(0, n, step))[:n_exact]
    exact_ms, mismatches = [], []
    imgs_cache = {}

    def img(size):
        if size not in imgs_cache:
            imgs_cache[size] = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        return imgs_cache[size]

    model.encode(PROMPT, [img((64, 64))])  # warm-up
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
        report.problems.append(f"planning: {len(mismatches)} closed-form counts differ from mistral_common, "
                               f"e.g. {mismatches[0]}")

    def stats(xs: list[float]) -> list[str]:
        xs = sorted(xs)
        q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
        return [f"{statistics.median(xs) * 1e3:.1f}", f"{q(0.9) * 1e3:.1f}", f"{q(0.99) * 1e3:.1f}",
                f"{xs[-1] * 1e3:.1f}"]

    med_pure, med_full = statistics.median(pure), statistics.median(full)
    rows = [
        [f"`plan_sizes` (pure planning)", str(n), *stats(pure)],
        ["`plan_sizes` + `text_tokens` (cached) + 2 × `model.count`", str(n), *stats(full)],
        ["exact cross-check: `model.encode(prompt, images)` at the planned sizes", str(len(picks)),
         *stats(exact_ms)],
    ]
    section = [
        "## 4. Planning cost",
        "",
        f"Per request, µs (`time.perf_counter_ns`). {n} requests of varied sizes (seeded: 80 % two equal frames "
        "of common or random aspect ratios with a long side of 96–4096 px, 10 % two different frames, "
        "10 % one frame), prompt as in table 1. The cross-check encodes the planned request with random-pixel "
        "PIL images of the planned sizes (made beforehand) through mistral_common (tokenising and its cubic "
        f"resize and normalisation of the pixels); every count agreed: {'yes' if not mismatches else 'NO'} "
        f"({len(picks) - len(mismatches)}/{len(picks)}).",
        "",
        f"Goal: < {PLAN_MAX_MS:.0f} ms (median) to plan `fit` for one request.",
        "",
        table(["what", "requests", "median µs", "p90 µs", "p99 µs", "max µs"], rows),
    ]
    report.sections.append("\n".join(section))
    report.goals.append(Goal(
        "Planning: < 1 ms per request",
        med_pure < PLAN_MAX_MS and med_full < PLAN_MAX_MS,
        f"median {med_pure * 1e3:.0f} µs pure, {med_full * 1e3:.0f} µs with model.count; exact cross-check "
        f"median {statistics.median(exact_ms):.1f} ms",
    ))
    log(f"  planning: {med_pure * 1e3:.0f} µs pure, {med_full * 1e3:.0f} µs with counts, "
        f"exact {statistics.median(exact_ms):.1f} ms")


# --------------------------------------------------------------------------- machine


def package_revision() -> str:
    """The repository's commit and whether the package's files differ from it (others may be editing)."""
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cosmos_upsample_fix"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {rev or 'unknown'}" + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")


def machine(revision: str) -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count()
    threads = {k: v for k, v in os.environ.items()
               if k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")}
    return [
        f"- Package: cosmos_upsample_fix at {revision} (as imported at the start of the run)",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable by this process)",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, PyAV {av.__version__} (FFmpeg libavcodec "
        f"{'.'.join(map(str, av.library_versions.get('libavcodec', ())))}), numpy {np.__version__}, "
        f"Pillow {PIL.__version__}, OpenCV {cv2.__version__} (cv2 threads {cv2.getNumThreads()}), "
        f"mistral_common {mistral_common.__version__}",
        "- Thread settings in the environment: " + (", ".join(f"{k}={v}" for k, v in sorted(threads.items()))
                                                     or "none"),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a handful of small clips, fewer runs (< 60 s)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown report (default %(default)s)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 11, quick 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 11)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    report = Report()
    revision = package_revision()
    model = load_model()
    model.text_tokens(PROMPT)  # loads the tokenizer (about a second), outside every timing
    tmp = Path(tempfile.mkdtemp(prefix="cosmos_upsample_bench_"))
    try:
        clips, long_clip, notes = make_clips(tmp, args.quick, log)
        log("1. budget use")
        plans = budget_table(clips, model, report, log)
        log("2. fidelity")
        fidelity_table(clips, plans, model, tmp, report, log)
        log("3. speed")
        speed_table(clips, long_clip, model, tmp, runs, report, log)
        log("4. planning cost")
        planning_table(model, 2000 if not args.quick else 1000, 20 if args.quick else 100, report, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started

    goals_rows = [[g.name, g.result, g.detail] for g in report.goals]
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + (
        f" --runs {args.runs}" if args.runs else "")
    header = [
        "# cosmos_upsample_fix benchmarks",
        "",
        f"`{command}` — {'QUICK run (smoke test sizes, few repetitions)' if args.quick else 'full run'}, "
        f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, took {elapsed:.0f} s.",
        "",
        *machine(revision),
        "",
        f"Inputs: {sum(c.group == 'sample' for c in clips)} sample clips from ../shared/videos, "
        f"{sum(c.group == 'generated' for c in clips)} generated {SHORT_FRAMES}-frame clips (synthetic detail: "
        "1/f noise, hard edges, text, 2–5 px periodic textures, per-frame noise; libx264 CRF 18, "
        f"yuv420p), and one generated long clip ({size_str(long_clip.size)}, {long_clip.frames} frames)."
        + ("" if not notes else " " + " ".join(notes)),
        "",
        "## Goals",
        "",
        table(["goal", "result", "figures"], goals_rows),
    ]
    if report.problems:
        header += ["", "## Problems found in the package", ""] + [f"- {p}" for p in report.problems]
    text = "\n".join(header) + "\n\n" + "\n\n".join(report.sections) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    log(f"wrote {out} ({elapsed:.0f} s)")
    if args.strict and not all(g.passed or g.info for g in report.goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
