"""Writing small video files: the budget-fitting "hint clip" and the demo's sample clip.

A hint clip holds the planned frames at the planned size, so upstream's standalone
upsampler (which sends a video's first two frames at full size) gets a request that fits.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.output import new_file


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = 24, crf: int = 12) -> Path:
    """Encode RGB frames as an H.264 mp4 at ``path`` (refuses to overwrite an existing file).

    Frames with an odd side use 4:4:4 chroma (4:2:0 needs even sides); quality is high
    (CRF 12) because the frames are what the upsampler will describe.
    """
    path = Path(path)
    frames = list(frames)
    if not frames:
        raise InputError("no frames to write")
    height, width = frames[0].shape[:2]
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with new_file(path) as (handle, _), av.open(handle, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"crf": str(crf), "preset": "medium"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
