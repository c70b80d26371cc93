"""What reading a source gives: the frames and a description of the source."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    ``index`` is its presentation-order index in the source (0-based), or its
    position in the list for an image list. ``image`` is H x W x 3 uint8 RGB,
    C-contiguous, already turned per the display metadata.
    """

    index: int
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the source is: display size (after rotation), frame count, kind, stored size.

    ``kind`` is ``"video"``, ``"image"`` (one still image) or ``"images"`` (a list of
    images; ``path`` is then the first image's path and the sizes are its sizes).
    ``frame_count`` is exact when known, else ``None``. ``stored_size`` is the
    (width, height) as stored in the file, before the display matrix or EXIF
    orientation turns it: what upstream's OpenCV/PIL path and vLLM see for stills.
    """

    path: str
    width: int
    height: int
    frame_count: int | None
    kind: str
    stored_size: tuple[int, int]
