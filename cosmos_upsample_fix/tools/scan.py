"""Plan many upsampler inputs at once: files, folders, and upstream's specs/batch files.

Each item is planned from its frame sizes alone (:func:`~cosmos_upsample_fix.media.frames.probe`
reads a header and at most the first frame), which gives the same plan as ``inspect``
without decoding or resizing the frames. Items run in worker processes that load the
tokenizer once each; a failing item becomes a row with an ``error`` and never stops the scan.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.core.policies import plan_sizes
from cosmos_upsample_fix.cosmos.inputs import GENERATED_FRAMES, Item, specs_items
from cosmos_upsample_fix.errors import InputError, UpsampleFixError
from cosmos_upsample_fix.media.frames import VideoInfo, probe, select_indices
from cosmos_upsample_fix.media.frames.selection import frames_phrase
from cosmos_upsample_fix.media.frames.stills import still_image_error
from cosmos_upsample_fix.planning.planner import SMALL_SIDE, Plan, frame_request, original_sizes
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model
from cosmos_upsample_fix.tools.report import ONE_FRAME, model_own_size

VIDEO_SUFFIXES = frozenset(".mp4 .mov .m4v .mkv .webm .avi .mpg .mpeg .ts .mts .wmv .flv .gif".split())
IMAGE_SUFFIXES = frozenset(".png .jpg .jpeg .bmp .webp .tif .tiff".split())


def local_only(path: str) -> None:
    """InputError for a URL or ``-`` (standard input): the tools read local files only."""
    if path == "-" or "://" in path:
        raise InputError(f"{path!r}: local files only (a URL or standard input cannot be read; download it first)")


def collect(paths: Sequence[str], prompt: str | None) -> list[Item]:
    """One item per file; a folder gives its video and image files, recursively, in name order."""
    items: list[Item] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if os.path.splitext(name)[1].lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES
            )
            items.extend(Item(f, prompt, f) for f in found)
            if not found:
                items.append(Item(path, prompt, None, error=f"{path} holds no video or image file"))
        else:
            items.append(Item(path, prompt, path))
    return items


def gather(paths: Sequence[str], prompt: str | None, specs: str | None = None, batch: str | None = None,
           input_video: str | None = None) -> list[Item]:
    """Every item of a scan: the given paths, then the specs (one item, or one per batch line)."""
    items = collect(paths, prompt)
    if specs is not None:
        items.extend(specs_items(specs, batch, prompt, input_video))
    elif batch is not None:
        raise InputError("--batch_input_path needs --controlnet_specs (as upstream's transfer.py does)")
    return items


def plan_from_info(path: str, info: VideoInfo, prompt: str | None, options: Options, model: UpsamplerModel) -> Plan:
    """The plan :func:`~cosmos_upsample_fix.planning.planner.plan_frames` makes, from the sizes alone.

    The same frame count, selection and refusals as reading the frames would give; the
    frame-count errors are worded as :func:`~cosmos_upsample_fix.media.frames.read_frames` words
    them for a sound file (reading finds more in a damaged one).
    """
    limits, policy, select = options.limits(), options.policy, options.select
    count, exact = frame_request(options, limits)
    size = (info.width, info.height)
    if info.kind == "image":
        if count > 1 and exact:
            raise still_image_error(path, count)
        indices = [0]
    else:
        total = info.frame_count
        if not total:
            raise InputError(f"{path} has no decodable video frames")
        if total < count and exact:
            raise InputError(f"{path} has {frames_phrase(total)}; {count} asked")
        indices = select_indices(total, min(count, total), select)
    original, original_indices = original_sizes(path, info)
    targets = plan_sizes([size] * len(indices), model.text_tokens(prompt), model.grid, limits, policy)
    return Plan(
        source=path, kind=info.kind, policy=policy, select=select, limits=limits, grid=model.grid,
        tokenizer=str(model.tokenizer_file), original=model.count(original, prompt, limits),
        original_indices=original_indices, planned=model.count(targets, prompt, limits),
        frame_indices=tuple(indices),
    )


@dataclass(frozen=True)
class Job:
    """What a worker needs for one item."""

    index: int
    item: Item
    options: Options
    preview: str | None = None


def _head(item: Item) -> dict[str, Any]:
    row: dict[str, Any] = {"source": item.source, "input": item.input, "prompt": item.prompt}
    if item.hint is not None:
        row["control"] = item.hint
        row["generated"] = item.generated
    if item.note:
        row["note"] = item.note
    if not item.runs:
        row["upsampler"] = False
    return row


def plan_item(job: Job, model: UpsamplerModel | None = None) -> dict[str, Any]:
    """One scan row: the plan's fields (as ``inspect --json``) plus where the item came from."""
    item, row = job.item, _head(job.item)
    if item.error is not None:
        return {**row, "error": item.error}
    if not item.plannable:
        return row
    assert item.input is not None
    try:
        local_only(item.input)
        model = model or load_model(job.options.checkpoint_dir)
        info = probe(item.input)
        if item.generated:  # upstream's generated control: a video of the input's first frames, same size
            info = replace(info, kind="video", frame_count=min(GENERATED_FRAMES, info.frame_count or 1))
        plan = plan_from_info(item.input, info, item.prompt, job.options, model)
    except UpsampleFixError as exc:
        return {**row, "error": str(exc)}
    except Exception as exc:  # a bug of ours, reported as ours; the scan goes on
        return {**row, "error": _internal(exc)}
    data = plan.to_dict()
    source = data.pop("source")
    ow, oh = plan.original.frame_sizes[0]
    pw, ph = plan.planned.frame_sizes[0]
    row = {**row, **data, "input": source, "source": item.source, "pixels_kept": round(pw * ph / (ow * oh), 4),
           "model_own_size": model_own_size(plan)}
    if job.preview is not None:
        row.update(_preview(job, plan, model))
    return row


def _internal(exc: BaseException) -> str:
    return "internal error: " + " ".join(f"{type(exc).__name__}: {exc}".split())


def _preview(job: Job, plan: Plan, model: UpsamplerModel) -> dict[str, str]:
    """Draw the item's preview: ``{"preview": path}``, or ``{"preview_error": why}`` beside a sound plan.

    A preview already there is kept; this one goes to the first free numbered name beside it.
    """
    from cosmos_upsample_fix.tools.preview import render_preview

    item = job.item
    assert item.input is not None and job.preview is not None
    try:
        path = render_preview(item.input, item.prompt, job.options, job.preview, model=model, limits=plan.limits,
                              one_frame=ONE_FRAME, free_name=True)
    except UpsampleFixError as exc:
        return {"preview_error": str(exc)}
    except Exception as exc:  # a bug of ours; the row's plan stands
        return {"preview_error": _internal(exc)}
    return {"preview": str(path)}


ITEMS_PER_WORKER = 4
"""A worker process is started for every 4 items at most (fewer items run faster in this process)."""

_worker_model: UpsamplerModel | None = None


def _init_worker(checkpoint_dir: str | None) -> None:
    """Load the tokenizer once per worker process (a forked worker finds it loaded already)."""
    global _worker_model
    try:
        _worker_model = load_model(checkpoint_dir)
        _worker_model.text_tokens(None)  # the tokenizer itself loads on first use
    except UpsampleFixError:
        _worker_model = None  # each row then reports the error


def _start_worker(checkpoint_dir: str | None) -> None:
    """A worker's first step: freeze what it inherited, then load the tokenizer.

    Frozen objects are never collected, so no garbage inherited from the parent (a decoder
    whose threads only the parent has) is freed here, where joining those threads would hang.
    The freeze is the worker's own; the parent's (and a caller's) stays as it is.
    """
    gc.freeze()
    _init_worker(checkpoint_dir)


def _run_job(job: Job) -> tuple[int, dict[str, Any]]:
    return job.index, plan_item(job, _worker_model)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(jobs: Sequence[Job], workers: int, progress: Callable[[int, int], None] | None = None
        ) -> list[dict[str, Any]]:
    """Plan every job, in ``workers`` processes when that helps; rows in the jobs' order."""
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    busy = [job for job in jobs if job.item.plannable]
    for job in jobs:
        if not job.item.plannable:
            rows[job.index] = plan_item(job)
    done = len(jobs) - len(busy)
    workers = max(1, min(workers, len(busy) // ITEMS_PER_WORKER))
    if workers == 1:
        model = None
        for job in busy:
            if model is None:
                try:
                    model = load_model(job.options.checkpoint_dir)
                except UpsampleFixError:
                    pass
            rows[job.index] = plan_item(job, model)
            done += 1
            if progress:
                progress(done, len(jobs))
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        checkpoint = busy[0].options.checkpoint_dir
        _init_worker(checkpoint)  # loaded here first, so forked workers share it
        # Garbage left in this process (a caller's, or a library's) is freed here, where its
        # threads exist; each worker freezes what it inherits before anything else, so none of
        # it is freed there (a decoder freed in a worker would join threads it lacks, and hang).
        # This process's own gc state, a caller's freeze included, is left as it is.
        gc.collect()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(checkpoint,)) as pool:
            for future in as_completed([pool.submit(_run_job, job) for job in busy]):
                index, row = future.result()
                rows[index] = row
                done += 1
                if progress:
                    progress(done, len(jobs))
    return [row for row in rows if row is not None]


class ProgressBar:
    """A one-line progress bar on a terminal's stderr (nothing when stderr is not a terminal)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.active = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        if not self.active or total == 0:
            return
        filled = self.width * done // total
        self.stream.write(f"\rscan [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        if done == total:
            self.stream.write("\r" + " " * (self.width + 30) + "\r")
        self.stream.flush()


def _size(row: dict[str, Any], side: str) -> str:
    return f"{row[side]['width']}x{row[side]['height']}"


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: 2 for a wide (CJK) character, 0 for a combining one."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _kept(row: dict[str, Any]) -> str:
    """The "pixels kept" cell: the share of the original's pixels sent, or that the model shrinks it so itself."""
    return "as the model shrinks it (same tokens)" if row.get("model_own_size") else f"{row['pixels_kept']:.1%}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The text report: one line per item, then a line per preview not written.

    Columns line up by display width (a CJK name takes two columns a character); a row that
    failed has its source and what it reads in the columns, then its error.
    """
    header = ["source", "upsampler reads", "size", "upstream", "fits", "plan", "tokens", "pixels kept"]
    lines: list[tuple[list[str], str]] = [(header, "")]  # the aligned cells, then free text
    for row in rows:
        reads = row.get("input") or "-"
        reads = "(same)" if reads == row["source"] else reads
        if row.get("generated"):
            reads = f"{row['control']} control made from {reads}"
        if "error" in row:
            lines.append(([row["source"], reads], "error: " + row["error"]))
        elif row.get("upsampler") is False:
            lines.append(([row["source"], "-"], "no upsampler (no vis/edge/seg/depth control)"))
        else:
            o, p = row["original"], row["planned"]
            fits = "yes" if o["fits"] else ("rejected" if o.get("rejected") else f"no (+{o['over_by']})")
            lines.append(([row["source"], reads, _size(row, "original"), str(o["prompt_tokens"]), fits,
                           _size(row, "planned"), str(p["prompt_tokens"]), _kept(row)], ""))
    widths = [max(display_width(cells[i]) for cells, _ in lines if len(cells) > i) for i in range(len(header))]
    out = []
    for cells, tail in lines:
        text = "  ".join(cell + " " * (widths[i] - display_width(cell)) for i, cell in enumerate(cells))
        if tail:  # from the third column on
            text += "  " + tail
        out.append(text.rstrip())
    out.extend(f"preview not written: {row['source']}: {row['preview_error']}" for row in rows
               if "preview_error" in row)
    return "\n".join(out)


def summary(rows: Sequence[dict[str, Any]], policy: str) -> str:
    """One line: how many items upstream's upsampler stops on, whether all fit, how many are small."""
    planned = [r for r in rows if "planned" in r]
    failed = [r for r in rows if "error" in r]
    none = [r for r in rows if r.get("upsampler") is False]
    stops = sum(1 for r in planned if not r["original"]["fits"])
    fit = sum(1 for r in planned if r["planned"]["fits"])
    small = sum(1 for r in planned if max(max(s) for s in r["planned"]["frame_sizes"]) < SMALL_SIDE)
    word = "item" if len(rows) == 1 else "items"
    parts = [f"{stops} of {len(rows)} {word} would stop upstream's upsampler"]
    parts.append(f"all fit with `{policy}`" if fit == len(planned) and not failed
                 else f"{fit} of {len(planned)} planned {'item fits' if len(planned) == 1 else 'items fit'} "
                      f"with `{policy}`")
    parts.append(f"{small} {'item' if small == 1 else 'items'} planned below {SMALL_SIDE} px")
    if failed:
        parts.append(f"{len(failed)} failed")
    if none:
        parts.append(f"{len(none)} without an upsampler")
    unwritten = sum(1 for r in rows if "preview_error" in r)
    if unwritten:
        parts.append(f"{unwritten} {'preview' if unwritten == 1 else 'previews'} not written")
    return "; ".join(parts)


def preview_name(index: int, item: Item) -> str:
    """A file name for an item's preview: its position and the name of the file it reads."""
    stem = Path(item.input or item.source).stem or "item"
    return f"{index + 1:03d}_{stem}.png"
