"""Image adapters: downscaling with the filter that suits the shrink, and PNG files.

The model sees the frames we send after its own resize to its patch grid, which is a no-op
for planned sizes (they are on the grid), so the downscale filter is ours to choose. Measured
through the model's view (mistral_common's encoder; PSNR against the original frame after
scaling back, as ``benchmarks`` does) on the Cosmos sample clips and on generated camera and
control-like clips (segmentation masks, HD maps, LiDAR points, depth, canny edges):

* OpenCV's 8-tap Lanczos without antialiasing keeps the most detail at mild shrinks (up to
  +0.9 dB over an antialiased Lanczos at 1.2x) but loses up to 1.7 dB from 2x on, where it
  aliases; FFmpeg's swscale Lanczos, which widens its kernel with the factor, is the reverse;
* neither wins everywhere between (at 1.4x each loses up to 0.4 dB on some kind of content),
  while their mix, weighted by the shrink ``s`` as ``(2 − s)`` non-antialiased plus ``(s − 1)``
  antialiased (a kernel part-way widened), scored at least max(Pillow's Lanczos, the model's
  cubic) − 0.02 dB on every clip and factor measured from 1.07x to 2x (up to +1.1 dB). From
  :data:`SHARP_LANCZOS_UNTIL` the sharp part is OpenCV's plain cubic instead of its Lanczos4:
  a fifth of the time (the mix then costs what Lanczos4 alone did), 0.0-0.15 dB less, and
  still at least that max − 0.06 dB. From 2x on swscale alone, so nothing is ever point-sampled.

Without OpenCV (not a dependency; Cosmos environments have it) every shrink uses swscale.

A frame over the model's size cap whose request fits goes pre-shrunk to the model's own
grid (:func:`preshrink`), only when that keeps as much of it as the model's own resize of
the full frame would: an 8-bit frame cannot carry the overshoot of the model's float cubic,
and at mild shrinks of hard-edged content (segmentation masks, thin lines, points) that
overshoot is detail.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from cosmos_upsample_fix.core.budget import Size
from cosmos_upsample_fix.media.output import new_file

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BLEND_UNTIL = 2.0
"""Shrink factors (per side, the larger) below this mix a sharp and an antialiased filter; from it swscale's alone."""
SHARP_LANCZOS_UNTIL = 1.25
"""Below this shrink the sharp part of the mix is OpenCV's Lanczos4 (weight ≥ 0.75), from it OpenCV's cubic."""

_cv2: Any
try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - OpenCV is present wherever Cosmos runs
    _cv2 = None

SWSCALE_LANCZOS = "Lanczos (swscale, antialiased)"
OPENCV_LANCZOS = "Lanczos4 (OpenCV, 8 taps, no antialiasing)"
BLEND = "mixed: Lanczos4 (OpenCV) and Lanczos (swscale)"
BLEND_CUBIC = "mixed: cubic (OpenCV) and Lanczos (swscale)"


def _shrink(source: Size, target: Size) -> float:
    return max(source[0] / max(1, target[0]), source[1] / max(1, target[1]))


def antialiased_share(source: Size, target: Size) -> float:
    """The weight of swscale's antialiased Lanczos in a resize from ``source`` to ``target``: s − 1, within 0..1.

    1.0 (swscale alone) from :data:`BLEND_UNTIL`, for an enlargement on either side, and without OpenCV.
    """
    shrink = _shrink(source, target)
    if _cv2 is None or target[0] > source[0] or target[1] > source[1] or shrink >= BLEND_UNTIL:
        return 1.0
    return max(0.0, shrink - 1.0)


def filter_for(source: Size, target: Size) -> str:
    """The name of the filter :func:`resize` uses from ``source`` to ``target`` (width, height)."""
    share = antialiased_share(source, target)
    if share >= 1.0:
        return SWSCALE_LANCZOS
    if share <= 0.0:
        return OPENCV_LANCZOS
    name = BLEND if share < SHARP_LANCZOS_UNTIL - 1.0 else BLEND_CUBIC
    return f"{name}, {1 - share:.2f} / {share:.2f}"


_Contexts = dict[threading.Thread, dict[tuple[str, str, int, int], VideoReformatter]]
"""Kept swscale contexts: per thread, per (purpose, pixel format, colour space, colour range)."""

_kept: _Contexts = {}
"""Each thread's kept swscale contexts. Held here, not in ``threading.local``: at a fork,
CPython frees the other threads' local storage in the child, and freeing a context there
joins slice threads the child does not have (a hang or a crash)."""
_left_behind: list[_Contexts] = []


def _forget_kept_contexts() -> None:
    """In a forked child: start with no kept context, and never free the inherited ones.

    An inherited context's slice threads do not exist in the child: scaling with it, or
    freeing it (which joins them), would wait forever.
    """
    global _kept
    _left_behind.append(_kept)
    _kept = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_kept_contexts)


KEPT_PER_THREAD = 8
"""At most this many kept contexts per thread (a ninth source kind starts the set afresh)."""


def kept_reformatter(purpose: str, source: av.VideoFrame) -> VideoReformatter:
    """This thread's kept swscale context for ``purpose`` and ``source``'s kind: use it for ``reformat``.

    ``VideoFrame.reformat`` builds a new swscale context (filter tables, slice threads) for
    every frame; a kept one is reused while the sizes and formats stay the same, which
    halves a 1280x800 -> 864x544 Lanczos resize (same pixels). One per purpose ("rgb",
    "scale", "pack"), so alternating conversions and resizes do not rebuild each other's,
    and per source pixel format, colour space and range: PyAV 16 and older reuse a context
    for a new source kind without its colour details (frames came out with the previous
    source's conversion: wrong levels). A finished thread's contexts are freed when a new
    thread asks for its first one.
    """
    thread = threading.current_thread()
    kept = _kept.get(thread)
    if kept is None:
        for finished in [other for other in list(_kept) if not other.is_alive()]:
            _kept.pop(finished, None)
        kept = _kept[thread] = {}
    key = (purpose, source.format.name, int(source.colorspace), int(source.color_range))
    reformatter = kept.get(key)
    if reformatter is None:
        if len(kept) >= KEPT_PER_THREAD:
            kept.clear()
        reformatter = kept[key] = VideoReformatter()
    return reformatter


def resize(image: np.ndarray, size: Size) -> np.ndarray:
    """``image`` (H×W×3 uint8 RGB) at ``size`` = (width, height); unchanged when already that size."""
    height, width = image.shape[:2]
    target = (int(size[0]), int(size[1]))
    if (width, height) == target:
        return image
    share = antialiased_share((width, height), target)
    if share >= 1.0:
        return _swscale_lanczos(image, target)
    sharp_filter = _cv2.INTER_LANCZOS4 if share < SHARP_LANCZOS_UNTIL - 1.0 else _cv2.INTER_CUBIC
    sharp = _cv2.resize(image, target, interpolation=sharp_filter)
    if share <= 0.0:
        return np.ascontiguousarray(sharp)
    return np.ascontiguousarray(_cv2.addWeighted(sharp, 1.0 - share, _swscale_lanczos(image, target), share, 0.0))


def _swscale_lanczos(image: np.ndarray, target: Size) -> np.ndarray:
    """FFmpeg's swscale Lanczos (antialiased: its kernel widens with the shrink) of an RGB image."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    # Scaling into planar RGB (gbrp) gives the same pixels as packed rgb24 -> rgb24 but takes
    # swscale's faster planar path: about 30% less time for a 1280x800 -> 864x544 frame.
    scaled = kept_reformatter("scale", frame).reformat(
        frame, width=target[0], height=target[1], format="gbrp", interpolation="LANCZOS"
    )
    # Packed again with a kept context too: PyAV's own (``to_ndarray(format=...)``, one per
    # thread from PyAV 19) is not renewed in a forked child, whose use of it would hang.
    return np.ascontiguousarray(kept_reformatter("pack", scaled).reformat(scaled, format="rgb24").to_ndarray())


PRESHRINK_TOLERANCE_DB = 0.05
"""A pre-shrunk frame is sent when its view scores at most this below the full frame's view."""
BACK_PROJECTIONS = 2
"""Refinement steps tried on a pre-shrunk frame that loses to the full frame (a third gains little)."""


def _view_residual(original: np.ndarray, view: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean squared error, residual) of ``view`` scaled back (float cubic) to ``original`` and clipped.

    Both float32 RGB on 0..255; the residual is original − scaled back. The same measure as
    ``benchmarks`` (the PSNR of the model's view against the original).
    """
    height, width = original.shape[:2]
    back = _cv2.resize(view, (width, height), interpolation=_cv2.INTER_CUBIC)
    np.clip(back, 0.0, 255.0, out=back)
    residual = np.subtract(original, back, out=back)
    return float(_cv2.norm(residual, _cv2.NORM_L2SQR)) / original.size, residual


def _as_seen(frame: np.ndarray, view_size: Size) -> np.ndarray:
    """``frame`` as the model sees it: float32, resized (float cubic) to ``view_size`` unless already that size."""
    data = frame.astype(np.float32)
    if (data.shape[1], data.shape[0]) != tuple(view_size):
        data = _cv2.resize(data, tuple(view_size), interpolation=_cv2.INTER_CUBIC)
    return data


def preshrink(image: np.ndarray, size: Size, view_size: Size) -> np.ndarray:
    """A frame the model would shrink to ``view_size`` itself: at ``size`` when that keeps as much, else itself.

    The model sees the full frame through a plain float cubic resize to ``view_size``; the
    frame at ``size`` (same token grid) through the same resize, a no-op when ``size`` is
    ``view_size``. Each view is scaled back to the original size and scored (PSNR over
    RGB). Our resize to ``size`` is sent when it scores at most :data:`PRESHRINK_TOLERANCE_DB`
    below the full frame; if it loses more, up to :data:`BACK_PROJECTIONS` back-projection
    steps refine it (add the shrunk residual, round and clip to 8 bits, keep a step only if
    it scores better); if it still loses, ``image`` itself goes, so the model never sees less
    than in the full frame. An 8-bit frame cannot carry the overshoot of the model's float
    cubic, which at mild shrinks of hard-edged content (masks, thin lines, points) is detail.
    """
    if _cv2 is None:  # cannot reproduce the model's view; keep the payload saving
        return resize(image, size)
    original = image.astype(np.float32)
    full, _ = _view_residual(original, _as_seen(image, view_size))
    allowed = full * 10 ** (PRESHRINK_TOLERANCE_DB / 10)
    best = resize(image, size)
    error, residual = _view_residual(original, _as_seen(best, view_size))
    target = (int(size[0]), int(size[1]))
    steps = BACK_PROJECTIONS if target == tuple(view_size) else 0
    while error > allowed and steps > 0:
        steps -= 1
        step = _cv2.resize(residual, target, interpolation=_cv2.INTER_AREA)
        candidate = np.clip(np.rint(best.astype(np.float32) + step), 0, 255).astype(np.uint8)
        candidate_error, residual = _view_residual(original, candidate.astype(np.float32))
        if candidate_error >= error:
            break
        best, error = candidate, candidate_error
    if error <= allowed:
        return best
    logger.debug("pre-shrinking to %sx%s would lose detail the model sees in the full frame: sent as is", *target)
    return image


STORED_BLOCK = 65535
"""Largest stored (uncompressed) deflate block."""


def _stored_zlib(data: memoryview) -> list[bytes | memoryview]:
    """``data`` as a zlib stream of stored deflate blocks, as pieces (no copy of the data).

    What ``zlib.compressobj(0)`` makes, without its copying: about half the time per frame.
    """
    pieces: list[bytes | memoryview] = [b"\x78\x01"]  # deflate, 32K window, fastest level
    size = len(data)
    for start in range(0, max(size, 1), STORED_BLOCK):
        block = data[start:start + STORED_BLOCK]
        final = start + STORED_BLOCK >= size
        pieces += [struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF), block]
    pieces.append(struct.pack(">I", zlib.adler32(data)))
    return pieces


def _chunk(kind: bytes, pieces: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """A PNG chunk as pieces (length, type, data pieces, CRC), so the data is never copied to join them."""
    crc = zlib.crc32(kind)
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    length = sum(len(piece) for piece in pieces)
    return [struct.pack(">I", length), kind, *pieces, struct.pack(">I", crc)]


def _png_pieces(image: np.ndarray, level: int) -> list[bytes | memoryview]:
    """The PNG file of ``image`` as pieces in order (see :func:`encode_png`)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    if not 0 <= level <= 9:
        raise ValueError(f"PNG compression level must be 0..9, got {level!r}")
    height, width = image.shape[:2]
    rows = image.reshape(height, width * 3)
    raw = np.empty((height, width * 3 + 1), dtype=np.uint8)
    data: list[bytes | memoryview]
    if level == 0:
        raw[:, 0] = 0  # filter type "none" for every row
        raw[:, 1:] = rows
        data = _stored_zlib(raw.reshape(-1).data)
    else:
        raw[:, 0] = 2  # filter type "up": each byte minus the one above it (mod 256)
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
        packer = zlib.compressobj(level)
        data = [packer.compress(raw.data), packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return [PNG_SIGNATURE, *_chunk(b"IHDR", [header]), *_chunk(b"IDAT", data), *_chunk(b"IEND", [])]


def encode_png(image: np.ndarray, level: int = 0) -> bytes:
    """Lossless 8-bit RGB PNG of ``image`` (H×W×3 uint8).

    ``level`` 0 (the default) stores the rows uncompressed (PNG filter none, stored deflate
    blocks): about a millisecond for a 928x512 frame, the file being the raw pixels plus
    a few bytes (1.4 MB). Levels 1-9 use PNG's "up" filter and zlib at that level: 5-20x
    smaller on flat control clips (segmentation, HD maps), about 3x on camera footage, at
    4-13 ms a frame for level 1; worth it when the request crosses a network.
    """
    return b"".join(_png_pieces(image, level))


def write_png(image: np.ndarray, path: str | os.PathLike[str], level: int = 0) -> Path:
    """Write ``image`` as a PNG at ``path`` (created exclusively: never overwrites a file).

    Raises :class:`~cosmos_upsample_fix.errors.OutputExistsError` (a FileExistsError too) when
    ``path`` exists; a failed write leaves no truncated PNG behind.
    """
    pieces = _png_pieces(image, level)
    with new_file(path) as (handle, written):
        handle.writelines(pieces)
    return written
