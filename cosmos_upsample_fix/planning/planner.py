"""From an input (video, image, or image list) to the frames the upsampler should receive.

This is where the pure parts (budget, policies) meet the adapters (frames, images):
read the selected frames once, count what upstream would send, plan sizes under the
policy, resize, and optionally write the PNG files.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, ImageGrid, Limits, RequestCount, Size, model_pixels
from cosmos_upsample_fix.core.options import Options, Policy
from cosmos_upsample_fix.core.policies import passes_as_is, plan_sizes
from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames import VideoInfo, probe, read_frames
from cosmos_upsample_fix.media.frames.selection import check_selection, select_indices
from cosmos_upsample_fix.media.images import preshrink, resize, write_png
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, effective_prompt, load_model

log = logging.getLogger(__name__)

UPSTREAM_FRAMES = UPSTREAM_LIMITS.max_images
"""How many leading frames upstream's ``extract_video_frames`` takes from a video (its image limit)."""

SMALL_SIDE = 320
"""A planned long side below this (the hand-made 320x180 hint clip) is logged as a warning."""

@dataclass(frozen=True)
class Plan:
    """What upstream would send, and what the policy sends instead."""

    source: str
    kind: str
    policy: Policy
    select: str
    limits: Limits
    grid: ImageGrid
    tokenizer: str
    original: RequestCount
    original_indices: tuple[int, ...]
    planned: RequestCount
    frame_indices: tuple[int, ...]

    @property
    def fits(self) -> bool:
        """True when the planned request leaves the reserved answer length free."""
        return self.planned.fits

    @property
    def planned_size(self) -> Size:
        """Size of the first planned frame (all frames of a video share it)."""
        return self.planned.frame_sizes[0]

    def summary(self) -> str:
        """One line: original size and tokens → planned size and tokens, policy, frames."""
        o, p = self.original, self.planned
        ow, oh = o.frame_sizes[0]
        pw, ph = p.frame_sizes[0]
        if o.rejected:
            verdict = "rejected by the installed mistral_common"
        else:
            verdict = "fits" if o.fits else f"over by {o.over_by}"
        return (
            f"upsampler frames {ow}x{oh} ({o.prompt_tokens} tokens, "
            f"{verdict}) -> {pw}x{ph} ({p.prompt_tokens} tokens of "
            f"{self.limits.prompt_budget}), policy {self.policy.spec}, {self.select} frames "
            f"{list(self.frame_indices)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``inspect --json``)."""

        def side(count: RequestCount, indices: Sequence[int]) -> dict[str, Any]:
            width, height = count.frame_sizes[0]
            return {
                "width": width,
                "height": height,
                "frame_sizes": [list(s) for s in count.frame_sizes],
                "frame_indices": list(indices),
                "tokens_per_frame": list(count.tokens_per_frame),
                "text_tokens": count.text_tokens,
                "prompt_tokens": count.prompt_tokens,
                "fits": count.fits,
                "over_by": count.over_by,
                "rejected": [list(s) for s in count.rejected],
                "budget_use": round(count.budget_use, 4),
            }

        return {
            "source": self.source,
            "kind": self.kind,
            "policy": self.policy.spec,
            "select": self.select,
            "tokenizer": self.tokenizer,
            "image_grid": {
                "patch_size": self.grid.patch_size,
                "max_image_size": self.grid.max_image_size,
                "spatial_merge_size": self.grid.spatial_merge_size,
            },
            "limits": {
                "max_model_len": self.limits.max_model_len,
                "reserved_output_tokens": self.limits.reserved_output_tokens,
                "max_images": self.limits.max_images,
                "prompt_budget": self.limits.prompt_budget,
            },
            "original": side(self.original, self.original_indices),
            "planned": side(self.planned, self.frame_indices),
        }


@dataclass
class PlannedFrames:
    """A plan with the frames (RGB arrays at the planned sizes) it sends."""

    plan: Plan
    images: list[np.ndarray] = field(repr=False)

    def write(self, out_dir: str | os.PathLike, stem: str = "frame", level: int = 0) -> list[Path]:
        """Write the frames as ``<stem>_1.png``, ``<stem>_2.png``… in send order; never overwrites.

        ``level`` is the PNG compression (:func:`~cosmos_upsample_fix.media.images.encode_png`: 0
        stores, the fastest; 1-9 compress, for requests that cross a network). All or
        nothing: when one file cannot be written, the ones this call wrote are removed.
        """
        out = Path(out_dir)
        paths: list[Path] = []
        try:
            for i, image in enumerate(self.images, start=1):
                paths.append(write_png(image, out / f"{stem}_{i}.png", level))  # InputError: exists, unwritable
        except BaseException:
            for written in paths:
                written.unlink(missing_ok=True)
            raise
        return paths


def _source_name(source: Any) -> str:
    if isinstance(source, (list, tuple)):
        return ", ".join(os.fspath(p) for p in source)
    return os.fspath(source)


def frame_request(options: Options, limits: Limits) -> tuple[int, bool]:
    """How many frames to read, and whether the input must have that many.

    The user's ``frames`` is exact (an input with fewer is an InputError); else upstream's
    two, fewer when the engine takes fewer images or the input has fewer frames. Raises
    when the count or the selection cannot be asked of the engine at all.
    """
    exact = options.frames is not None
    count = options.frames if options.frames is not None else min(UPSTREAM_FRAMES, limits.max_images)
    limits.check_images(count)
    return check_selection(count, options.select), exact


def pick_images(paths: Sequence[Any], options: Options, limits: Limits) -> list[int]:
    """Which of the listed images to send: all of them, or ``options.frames`` picked by ``options.select``."""
    if options.frames is None:
        limits.check_images(len(paths))  # its advice, --frames N, picks N of them
        return list(range(len(paths)))
    count, _ = frame_request(options, limits)
    if count > len(paths):
        raise InputError(f"{len(paths)} {'image' if len(paths) == 1 else 'images'} given; {count} asked")
    return select_indices(len(paths), count, options.select)


def original_sizes(source: Any, info: VideoInfo) -> tuple[list[Size], tuple[int, ...]]:
    """What upstream sends: all listed images, or a video's first two frames, at full size.

    A still goes as stored in the file (upstream's PIL/OpenCV path and vLLM do not apply
    EXIF orientation); a video frame as its decoder shows it.
    """
    if info.kind == "images":  # info describes the first image read, not always the first listed
        listed = list(source)
        first = info.stored_size if os.fspath(listed[0]) == info.path else probe(listed[0]).stored_size
        sizes = [first] + [probe(p).stored_size for p in listed[1:]]
        return sizes, tuple(range(len(sizes)))
    if info.kind == "image":
        return [info.stored_size], (0,)
    total = info.frame_count if info.frame_count is not None else UPSTREAM_FRAMES
    n = max(1, min(UPSTREAM_FRAMES, total))
    return [(info.width, info.height)] * n, tuple(range(n))


def _warn_if_small(plan: Plan, sizes: Sequence[Size], one_frame: str) -> None:
    """A WARNING when the plan shrank a frame below :data:`SMALL_SIDE` on its long side.

    ``one_frame`` is how the caller's user asks for one frame (``frames=1``, ``--frames 1``).
    """
    planned = plan.planned.frame_sizes
    if list(planned) == list(sizes) or max(max(s) for s in planned) >= SMALL_SIDE:
        return
    log.warning(
        "cosmos-upsample-fix: the frames were shrunk to %s (long side under %d px) because the prompt itself "
        "takes %d of the %d tokens available; use a shorter prompt, or send one frame (%s), for more detail",
        "x".join(map(str, planned[0])), SMALL_SIDE, plan.planned.text_tokens, plan.limits.prompt_budget, one_frame,
    )


def plan_frames(
    source: Any,
    prompt: str | None = None,
    options: Options | None = None,
    *,
    limits: Limits | None = None,
    model: UpsamplerModel | None = None,
    flag: str = "--policy",
    one_frame: str = "frames=1",
) -> PlannedFrames:
    """Read the selected frames of ``source`` and downsize them so the request fits.

    ``source`` is a video path, an image path, or a list of image paths (each one frame; an
    explicit ``options.frames`` sends that many of them, picked by ``options.select``).
    ``options`` says how (policy, selection, frame count: ``None`` is up to upstream's two,
    fewer when the input has fewer; an explicit count the input cannot meet is an
    InputError); ``limits`` defaults to the options' limits and ``model`` to the options'
    checkpoint folder (or the bundled tokenizer). ``flag`` is the option a refusal names,
    ``one_frame`` how the caller's user asks for one frame (named by the small-frames warning).
    Raises :class:`~cosmos_upsample_fix.errors.UpsampleFixError` subclasses on bad input or
    when nothing can fit; never sends or writes anything.
    """
    options = options or Options()
    limits = limits or options.limits()
    model = model or load_model(options.checkpoint_dir)
    policy, select = options.policy, options.select
    is_list = isinstance(source, (list, tuple))
    if is_list:  # every listed image is a frame; an explicit count picks that many of them
        listed = pick_images(list(source), options, limits)
        info, picked = read_frames([source[i] for i in listed], len(listed), select)
        picked = [replace(frame, index=i) for frame, i in zip(picked, listed)]
    else:
        count, exact = frame_request(options, limits)
        info, picked = read_frames(source, count, select, exact=exact)
    images = [f.image for f in picked]
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    text_tokens = model.text_tokens(prompt)
    original, original_indices = original_sizes(source, info)
    targets = plan_sizes(sizes, text_tokens, model.grid, limits, policy, flag=flag)
    if passes_as_is(sizes, text_tokens, model.grid, limits, policy):
        sent = preshrink_all(images, targets, model.grid)
    else:
        sent = resize_all(images, targets)
    plan = Plan(
        source=_source_name(source),
        kind=info.kind,
        policy=policy,
        select="list" if is_list and len(picked) == len(source) else select,
        limits=limits,
        grid=model.grid,
        tokenizer=str(model.tokenizer_file),
        original=model.count(original, prompt, limits),
        original_indices=original_indices,
        planned=model.count([(im.shape[1], im.shape[0]) for im in sent], prompt, limits),
        frame_indices=tuple(f.index for f in picked),
    )
    log.debug("planned %s for %r", plan.summary(), effective_prompt(prompt)[:60])
    _warn_if_small(plan, sizes, one_frame)
    return PlannedFrames(plan, sent)


def preshrink_all(images: Sequence[np.ndarray], sizes: Sequence[Size], grid: ImageGrid) -> list[np.ndarray]:
    """Frames whose request fits as is: each at its presized size, or as is where that loses detail.

    A frame over the model's cap goes at the model's own size (same token grid, a smaller
    payload) when the model sees at least as much in it as in the full frame (see
    :func:`~cosmos_upsample_fix.media.images.preshrink`); other frames pass through.
    """
    return [im if (im.shape[1], im.shape[0]) == tuple(size)
            else preshrink(im, size, model_pixels((im.shape[1], im.shape[0]), grid))
            for im, size in zip(images, sizes)]


def resize_all(images: Sequence[np.ndarray], sizes: Sequence[Size]) -> list[np.ndarray]:
    """Resize each image to its size, one after the other.

    Both resizers spread one image over the cores themselves (swscale and OpenCV threads);
    a thread pool per call cost more to start than it saved (about 4 ms for two frames).
    """
    return [resize(im, size) for im, size in zip(images, sizes)]
