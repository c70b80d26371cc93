"""Image adapters: antialiased downscaling and PNG files (the only pixel I/O of the package).

Downscaling uses Pillow's Lanczos filter, which widens its kernel with the scale factor
(it antialiases); OpenCV's cubic resize, which the model applies to its patch grid, does not.
Because planned sizes sit on the patch grid, the model's own resize is then a no-op.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .budget import Size

PNG_COMPRESS_LEVEL = 1
"""zlib level for the PNG files: lossless at any level; 1 is several times faster than 6."""


def resize(image: np.ndarray, size: Size) -> np.ndarray:
    """``image`` (H×W×3 uint8 RGB) at ``size`` = (width, height); unchanged when already that size."""
    height, width = image.shape[:2]
    if (width, height) == tuple(size):
        return image
    pil = Image.fromarray(image)
    # reducing_gap lets Pillow shrink by whole factors first (box filter), then Lanczos the rest:
    # the same antialiased result within a grey level, much faster for large reductions
    out = pil.resize(tuple(size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(out)


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``image`` as a PNG at ``path`` (created exclusively: never overwrites a file)."""
    path = Path(path)
    with open(path, "xb") as handle:
        Image.fromarray(image).save(handle, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path
