"""Turning a decoded video picture the way its display matrix says (phone videos' ``rotate``).

Right angles and flips only, as ffmpeg's autorotate does; the matrix is read from the
frame's side data (or synthesised from PyAV's ``rotation`` when there is none).
"""
from __future__ import annotations

import logging
import math
import struct
from typing import Any

import av
import numpy as np

from cosmos_upsample_fix.media.frames.files import reason

logger = logging.getLogger(__name__)

Matrix = tuple[int, ...]

_DISPLAYMATRIX: Any
try:  # av >= 13
    from av.sidedata.sidedata import Type as _SideDataType

    _DISPLAYMATRIX = _SideDataType.DISPLAYMATRIX
except (ImportError, AttributeError):  # pragma: no cover - older PyAV
    _DISPLAYMATRIX = None


def display_matrix(frame: av.VideoFrame) -> Matrix | None:
    """The frame's 3x3 display matrix (FFmpeg layout, 9 ints), or None when it has none."""
    try:
        side: Any = frame.side_data.get(_DISPLAYMATRIX) if _DISPLAYMATRIX is not None else None
        raw = bytes(side) if side is not None else b""
        ccw = getattr(frame, "rotation", 0) or 0
    except (KeyError, ValueError, TypeError, AttributeError, av.error.FFmpegError) as exc:
        logger.debug("no display matrix: %s", reason(exc))
        return None
    if len(raw) >= 36:
        return struct.unpack("=9i", raw[:36])
    if not ccw:
        return None
    # No matrix to read flips from: synthesise a pure rotation.
    rad = math.radians(-ccw)
    cos, sin = int(round(math.cos(rad) * 65536)), int(round(math.sin(rad) * 65536))
    return (cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30)


def _right_angle(matrix: Matrix) -> int | None:
    """Clockwise display rotation of ``matrix`` rounded to 0/90/180/270, None when not a right angle."""
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0
    # av_display_rotation_get() is counter-clockwise; ffmpeg's get_rotation() is clockwise.
    ccw = -math.degrees(math.atan2(b / scale1, a / scale0))
    theta = -round(ccw)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    for angle in (0, 90, 180, 270):
        if abs(theta - angle) < 1:
            return angle
    logger.warning("display rotation of %.1f degrees is not a right angle; frame left unrotated", theta)
    return None


def turn(image: np.ndarray, matrix: Matrix | None) -> np.ndarray:
    """``image`` (H x W x C) turned per ``matrix`` (a view, not a copy)."""
    if matrix is None:
        return image
    angle = _right_angle(matrix)
    if angle == 90:
        # transpose=cclock_flip (plain transpose) or transpose=clock
        return image.transpose(1, 0, 2) if matrix[3] > 0 else np.rot90(image, -1)
    if angle == 180:
        if matrix[0] < 0:
            image = image[:, ::-1]
        if matrix[4] < 0:
            image = image[::-1]
        return image
    if angle == 270:
        # transpose=clock_flip (anti-transpose) or transpose=cclock
        return np.rot90(image, -1)[::-1] if matrix[3] < 0 else np.rot90(image, 1)
    if angle == 0 and matrix[4] < 0:
        return image[::-1]
    return image


def display_size(width: int, height: int, matrix: Matrix | None) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture once turned per ``matrix``."""
    turned = turn(np.empty((height, width, 0), np.uint8), matrix)
    return turned.shape[1], turned.shape[0]
