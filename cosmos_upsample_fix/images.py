"""Image adapters: antialiased downscaling and PNG files (the only pixel I/O of the package).

Downscaling uses FFmpeg's swscale (through PyAV) with its Lanczos filter, which widens its
kernel with the scale factor, so it antialiases; OpenCV's cubic resize, which the model
applies to its patch grid, does not. Because planned sizes sit on the patch grid, the
model's own resize is then a no-op. On RGB frames swscale's Lanczos matches Pillow's within
0.1 dB (both against a 2x box average of real Cosmos clips) and is about 1.5x faster.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import av
import numpy as np

from .budget import Size

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def resize(image: np.ndarray, size: Size) -> np.ndarray:
    """``image`` (H×W×3 uint8 RGB) at ``size`` = (width, height); unchanged when already that size."""
    height, width = image.shape[:2]
    if (width, height) == tuple(size):
        return image
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    scaled = frame.reformat(width=int(size[0]), height=int(size[1]), interpolation="LANCZOS")
    return np.ascontiguousarray(scaled.to_ndarray())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """Lossless 8-bit RGB PNG of ``image`` (H×W×3 uint8), made for speed rather than size.

    Rows use PNG filter 0 (none) in stored (level 0) deflate blocks: well under a millisecond
    for a 928x512 frame, where zlib level 1 takes about 10 ms and Pillow's encoder about 20;
    the file is the raw pixels plus a few bytes (1.4 MB for 928x512). It is read once, from
    a private temporary folder, so encoding time is what counts.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    raw = np.empty((height, width * 3 + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type "none" for every row
    raw[:, 1:] = image.reshape(height, width * 3)
    packer = zlib.compressobj(0)
    data = packer.compress(raw) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``image`` as a PNG at ``path`` (created exclusively: never overwrites a file)."""
    path = Path(path)
    data = encode_png(image)
    handle = open(path, "xb")
    try:
        with handle:
            handle.write(data)
    except BaseException:  # e.g. a full disk: leave no truncated PNG behind
        path.unlink(missing_ok=True)
        raise
    return path
