"""Table 3: wall time from the video path to the data URLs, plugin vs an upstream-style
baseline, with the payload; where the time goes; each frame selection against its decode floor."""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from cosmos_upsample_fix.core.policies import plan_sizes
from cosmos_upsample_fix.media.frames import read_frames
from cosmos_upsample_fix.media.images import write_png
from cosmos_upsample_fix.planning.planner import plan_frames, resize_all

from . import floor as floors
from .clips import Clip
from .config import PROMPT, Context, options_for
from .timing import Dirs, b64_files, load_average, timed
from .whatif import WhatIfRow
from .whatif import measure as whatif

COMPRESSED_LEVEL = 1
"""zlib level of the compressed-PNG variant (the package's default PNG is stored, level 0)."""


def plugin_run(path: Path, out_dir: Path, ctx: Context, select: str = "first") -> int:
    """Video path -> data URLs of the planned PNGs: plan_frames + PlannedFrames.write + base64."""
    planned = plan_frames(path, PROMPT, options_for(select), limits=ctx.limits, model=ctx.model)
    return b64_files(planned.write(out_dir))


def plugin_run_compressed(path: Path, out_dir: Path, ctx: Context) -> int:
    """The same with zlib-compressed PNG files (what a request over a network would rather send)."""
    planned = plan_frames(path, PROMPT, options_for("first"), limits=ctx.limits, model=ctx.model)
    paths = [write_png(im, out_dir / f"frame_{i}.png", level=COMPRESSED_LEVEL)
             for i, im in enumerate(planned.images, start=1)]
    return b64_files(paths)


def baseline_run(path: Path, out_dir: Path) -> int:
    """Upstream-style: cv2.VideoCapture first two frames, cv2.imwrite full-size PNGs, base64 of the files."""
    cap = cv2.VideoCapture(str(path))
    paths = []
    try:
        for i in range(2):
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError(f"cv2 could not read frame {i} of {path}")
            paths.append(out_dir / f"frame_{i + 1}.png")
            cv2.imwrite(str(paths[-1]), frame)
    finally:
        cap.release()
    return b64_files(paths)


def plugin_stages(path: Path, out_dir: Path, ctx: Context) -> dict[str, float]:
    """The plugin's pipeline step by step (the calls plan_frames makes), ms per stage."""
    model, limits = ctx.model, ctx.limits
    t0 = time.perf_counter()
    _, frames = read_frames(path, 2, "first")
    t1 = time.perf_counter()
    sizes = [(f.image.shape[1], f.image.shape[0]) for f in frames]
    targets = plan_sizes(sizes, model.text_tokens(PROMPT), model.grid, limits, options_for("first").policy)
    model.count(sizes, PROMPT, limits)
    model.count(targets, PROMPT, limits)
    t2 = time.perf_counter()
    resized = resize_all([f.image for f in frames], targets)
    t3 = time.perf_counter()
    paths = [write_png(im, out_dir / f"frame_{i + 1}.png") for i, im in enumerate(resized)]
    t4 = time.perf_counter()
    b64_files(paths)
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
        paths.append(out_dir / f"frame_{i + 1}.png")
        cv2.imwrite(str(paths[-1]), frame)
    t2 = time.perf_counter()
    b64_files(paths)
    t3 = time.perf_counter()
    return {"decode": (t1 - t0) * 1e3, "png": (t2 - t1) * 1e3, "b64": (t3 - t2) * 1e3}


@dataclass(frozen=True)
class SpeedRow:
    clip: Clip
    plugin: list[float]  # ms per run (stored PNG: the package's default)
    compressed: list[float]  # ms per run (compressed PNG)
    baseline: list[float]
    payload: int  # base64 bytes of the request's images, stored PNG
    payload_compressed: int
    payload_baseline: int
    stages: dict[str, float]  # medians
    baseline_stages: dict[str, float]

    @property
    def plugin_ms(self) -> float:
        return statistics.median(self.plugin)

    @property
    def compressed_ms(self) -> float:
        return statistics.median(self.compressed)

    @property
    def baseline_ms(self) -> float:
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        return self.plugin_ms / self.baseline_ms

    @property
    def paired(self) -> float:
        return statistics.median(p / b for p, b in zip(self.plugin, self.baseline))


SELECTS = ("first", "uniform", "ends")
FRAMES = 2
"""Frames each selection reads (upstream's two; ``uniform`` and ``ends`` then pick the same ones)."""


@dataclass(frozen=True)
class FloorRow:
    """``read_frames`` per selection vs the decode floor of the same frames (see :mod:`benchmarks.floor`)."""

    clip: Clip
    keyframes: int
    indices: dict[str, tuple[int, ...]]
    decoded: dict[str, int]  # pictures from the keyframes to the wanted frames (before skipping)
    package: dict[str, list[float]]  # ms per run of read_frames(path, 2, select)
    floor: dict[str, list[float]]  # ms per run of the floor
    threads: dict[str, str]  # the floor's fastest thread setting
    selects: tuple[str, ...] = SELECTS

    def ratio(self, select: str) -> float:
        return statistics.median(self.package[select]) / statistics.median(self.floor[select])


@dataclass
class SpeedResult:
    rows: list[SpeedRow] = field(default_factory=list)
    selections: list[FloorRow] = field(default_factory=list)
    whatif: list[WhatIfRow] = field(default_factory=list)
    whatif_clip: Clip | None = None
    load_start: str = ""
    load_end: str = ""
    problems: list[str] = field(default_factory=list)


def _median_stages(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def speed_row(clip: Clip, ctx: Context, dirs: Dirs) -> SpeedRow:
    """Interleaved runs of plugin, plugin with compressed PNG, and baseline after one warm-up each."""
    runs = {"plugin": [], "compressed": [], "baseline": []}  # type: dict[str, list[float]]
    payload = {}
    jobs = {
        "plugin": lambda d: plugin_run(clip.path, d, ctx),
        "compressed": lambda d: plugin_run_compressed(clip.path, d, ctx),
        "baseline": lambda d: baseline_run(clip.path, d),
    }
    for job in jobs.values():
        timed(job, dirs)
    for _ in range(ctx.runs):
        for name, job in jobs.items():
            ms, payload[name] = timed(job, dirs)
            runs[name].append(ms)
    ps, bs = [], []
    for _ in range(ctx.runs):
        with dirs as d:
            gc.collect()
            ps.append(plugin_stages(clip.path, d, ctx))
        with dirs as d:
            gc.collect()
            bs.append(baseline_stages(clip.path, d))
    return SpeedRow(clip, runs["plugin"], runs["compressed"], runs["baseline"], payload["plugin"],
                    payload["compressed"], payload["baseline"], _median_stages(ps), _median_stages(bs))


def keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    return [i for i, p in enumerate(sorted(packets, key=lambda p: p.pts or 0)) if p.is_keyframe]


def floor_row(clip: Clip, ctx: Context) -> tuple[FloorRow, list[str]]:
    """Each selection's ``read_frames`` and the floor under every thread setting, interleaved round by round.

    A selection's floor is the setting with the lowest median; problems if its frames differ from the package's.
    """
    problems: list[str] = []
    needs = {select: floors.needed(clip.path, FRAMES, select) for select in SELECTS}
    candidates = {n.indices: [floors.Floor(clip.path, n, t) for t in floors.THREAD_SETTINGS] for n in needs.values()}
    for select, need in needs.items():
        _, frames = read_frames(clip.path, FRAMES, select)
        ours = [f.image for f in frames]
        theirs = candidates[need.indices][0]()
        if [f.index for f in frames] != list(need.indices) or len(ours) != len(theirs) or not all(
                np.array_equal(a, b) for a, b in zip(ours, theirs)):
            problems.append(f"{clip.name}: read_frames({select!r}) and the decode floor give different frames")

    def reader(select: str) -> Callable[[], object]:
        return lambda: read_frames(clip.path, FRAMES, select)

    jobs: dict[str, Callable[[], object]] = {f"read {select}": reader(select) for select in SELECTS}
    for indices, settings in candidates.items():
        jobs.update({f"floor {indices} {floor.threads}": floor for floor in settings})
    times = floors.interleaved(jobs, ctx.runs)
    best = {indices: min(settings, key=lambda f: statistics.median(times[f"floor {indices} {f.threads}"]))
            for indices, settings in candidates.items()}
    row = FloorRow(
        clip, len(keyframes(clip.path)), {s: n.indices for s, n in needs.items()},
        {s: n.decoded for s, n in needs.items()}, {s: times[f"read {s}"] for s in SELECTS},
        {s: times[f"floor {n.indices} {best[n.indices].threads}"] for s, n in needs.items()},
        {s: "/".join(map(str, best[n.indices].threads)) for s, n in needs.items()},
    )
    return row, problems


def timed_end_to_end(clip: Clip) -> bool:
    """Clips of the speed table: the sample clips and the generated camera-like ones (not the control-like
    generated ones, which are there for fidelity and frame selection; the real control clips are samples)."""
    return clip.group != "generated" or clip.kind == "camera"


def measure(clips: list[Clip], long: Clip | None, ctx: Context) -> SpeedResult:
    """Every video clip, then the long clip and the sample clips for frame selection."""
    dirs = Dirs(ctx.tmp)
    result = SpeedResult(load_start=load_average())
    for clip in clips:
        if not clip.video or not timed_end_to_end(clip):
            continue
        row = speed_row(clip, ctx, dirs)
        result.rows.append(row)
        ctx.log(f"  speed {clip.name}: plugin {row.plugin_ms:.1f} ms, baseline {row.baseline_ms:.1f} ms, "
                f"ratio {row.ratio:.2f}")
    result.whatif_clip = next((r.clip for r in result.rows if r.clip.p720), None)
    if result.whatif_clip is not None:
        result.whatif = whatif(result.whatif_clip, ctx)
    for clip in [c for c in clips if c.video] + ([long] if long is not None else []):
        selection, problems = floor_row(clip, ctx)
        result.selections.append(selection)
        result.problems += problems
        ctx.log(f"  selection {clip.name}: " + ", ".join(f"{s} {selection.ratio(s):.2f}x" for s in SELECTS))
    result.load_end = load_average()
    return result
