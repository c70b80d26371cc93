"""The public entry points: read the selected frames of a source, or describe it cheaply.

A source is a video path, one still-image path, or a list of image paths (one frame
each). Still-image suffixes go to Pillow first (it applies EXIF orientation), anything
else to FFmpeg first, then to Pillow when FFmpeg cannot read it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames.container import is_image_demuxer, open_av, video_stream
from cosmos_upsample_fix.media.frames.files import as_list, check_file, looks_like_image, path_str
from cosmos_upsample_fix.media.frames.info import Frame, PathLike, VideoInfo
from cosmos_upsample_fix.media.frames.selection import check_selection
from cosmos_upsample_fix.media.frames.stills import open_still, read_still, still_image_error, still_info
from cosmos_upsample_fix.media.frames.video import probe_video, read_video


def _read_one(path: str, count: int, select: str, exact: bool) -> tuple[VideoInfo, list[Frame]]:
    """Read a single file: a still (Pillow or FFmpeg) or a video."""
    check_file(path)
    if looks_like_image(path):
        img = open_still(path)
        if img is not None:
            if count > 1 and exact:
                img.close()
                raise still_image_error(path, count)
            return read_still(path, img)
    try:
        return read_video(path, count, select, exact)
    except InputError:
        img = open_still(path)  # an image Pillow knows that FFmpeg could not open or decode
        if img is None:
            raise
    if count > 1 and exact:
        img.close()
        raise still_image_error(path, count)
    return read_still(path, img)


def _load_image(path: str) -> tuple[VideoInfo, np.ndarray]:
    """One still image of an image list (Pillow first for EXIF, then FFmpeg)."""
    check_file(path)
    img = open_still(path)
    if img is not None:
        info, frames = read_still(path, img)
        return info, frames[0].image
    with open_av(path) as container:
        video_stream(container, path)
        if not is_image_demuxer(container):
            raise InputError(f"{path} is a video, not a still image; an image list takes still images")
    info, frames = read_video(path, 1, "first")
    return info, frames[0].image


def _read_images(paths: Sequence[PathLike]) -> tuple[VideoInfo, list[Frame]]:
    """Read an image list: each path is one frame, in order."""
    loaded = [_load_image(path_str(p)) for p in paths]
    first = loaded[0][0]
    frames = [Frame(i, image) for i, (_, image) in enumerate(loaded)]
    return VideoInfo(first.path, first.width, first.height, len(frames), "images", first.stored_size), frames


def read_frames(
    source: PathLike | Sequence[PathLike],
    count: int = 2,
    select: str = "first",
    *,
    exact: bool = True,
) -> tuple[VideoInfo, list[Frame]]:
    """Read ``count`` frames chosen by ``select`` from a video, one image, or an image list.

    Returns the source's info and the frames in increasing index order. With ``exact``
    a source with fewer frames than ``count`` is an error; without it, it gives what it
    has (at least one frame: a still or a 1-frame clip gives one). An image list gives all
    its images (``count``/``select`` do not apply). Raises InputError for an input that
    cannot be read as asked, PolicySpecError for a bad ``count``/``select``.
    """
    paths = as_list(source)
    if paths is not None:
        return _read_images(paths)
    count = check_selection(count, select)
    return _read_one(path_str(source), count, select, exact)  # type: ignore[arg-type]


def _probe_one(path: str) -> VideoInfo:
    """Probe one file: a still image by its header, else a video with PyAV."""
    check_file(path)
    if looks_like_image(path):
        img = open_still(path)
        if img is not None:
            with img:
                return still_info(path, img)
    try:
        return probe_video(path)
    except InputError:
        img = open_still(path)
        if img is None:
            raise
    with img:
        return still_info(path, img)


def probe(source: PathLike | Sequence[PathLike]) -> VideoInfo:
    """Describe a source cheaply: the size, frame count and kind :func:`read_frames` reports.

    Reads a still's header only; decodes at most the first frame of a video (for its
    display rotation); the frame count comes from the container index or from demuxing.
    """
    paths = as_list(source)
    if paths is None:
        return _probe_one(path_str(source))  # type: ignore[arg-type]
    infos = []
    for p in paths:
        info = _probe_one(path_str(p))
        if info.kind != "image":
            raise InputError(f"{info.path} is a video, not a still image; an image list takes still images")
        infos.append(info)
    first = infos[0]
    return VideoInfo(first.path, first.width, first.height, len(infos), "images", first.stored_size)
