"""Still images read with Pillow: EXIF orientation applied, 16-bit scaled to 8-bit, RGB out."""
from __future__ import annotations

import logging
import struct

import numpy as np
from PIL import Image, ImageOps

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames.files import reason
from cosmos_upsample_fix.media.frames.info import Frame, VideoInfo

logger = logging.getLogger(__name__)

# What Pillow raises for files it cannot read (UnidentifiedImageError is an OSError; some
# broken files give SyntaxError, struct.error, EOFError, IndexError or TypeError).
PIL_ERRORS = (
    OSError, ValueError, EOFError, SyntaxError, struct.error, IndexError, TypeError, Image.DecompressionBombError
)

# PIL formats that it can identify but that are not still images we can decode.
_PIL_NOT_STILL = {"MPEG"}

_EXIF_ORIENTATION = 0x0112


def open_still(path: str) -> Image.Image | None:
    """Open ``path`` lazily with Pillow if it is a single still image it can decode, else None."""
    try:
        img = Image.open(path)
        fmt, n_frames = img.format, getattr(img, "n_frames", 1)
    except PIL_ERRORS as exc:
        logger.debug("PIL cannot open %s: %s", path, reason(exc))
        return None
    if fmt in _PIL_NOT_STILL or n_frames != 1:
        img.close()
        return None
    return img


def _grey16_to_rgb(arr: np.ndarray, mode: str) -> np.ndarray:
    """A 16-bit (or 32-bit integer) grey picture as H x W x 3 uint8, scaled to 0..255."""
    values = arr.astype(np.float64)
    peak = 65535.0 if values.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
    grey = np.clip(np.rint(values * 255.0 / peak), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent or unreadable)."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except PIL_ERRORS as exc:
        logger.debug("unreadable EXIF: %s", reason(exc))
        return 1
    return value if isinstance(value, int) else 1


def still_info(path: str, img: Image.Image) -> VideoInfo:
    """Describe a still Pillow has opened, from its header alone (no pixels decoded)."""
    width, height = img.size
    turned = _orientation(img) in (5, 6, 7, 8)
    shown = (height, width) if turned else (width, height)
    return VideoInfo(path, shown[0], shown[1], 1, "image", (width, height))


def read_still(path: str, img: Image.Image) -> tuple[VideoInfo, list[Frame]]:
    """Decode a still Pillow has opened as the one frame of kind ``"image"`` (closes ``img``)."""
    with img:
        stored = img.size
        try:  # only Pillow's own calls: decoding happens in exif_transpose/convert/asarray
            shown = ImageOps.exif_transpose(img)
            mode = shown.mode
            wide = mode.startswith("I;16") or mode == "I"
            if not wide and mode != "RGB":
                shown = shown.convert("RGB")
            pixels = np.asarray(shown)
        except PIL_ERRORS as exc:
            raise InputError(f"{path} is a corrupt or truncated image ({reason(exc)})") from None
    image = _grey16_to_rgb(pixels, mode) if wide else np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = image.shape[:2]
    return VideoInfo(path, width, height, 1, "image", stored), [Frame(0, image)]


def still_image_error(path: str, count: int) -> InputError:
    """The error for asking more than one frame of a still image."""
    return InputError(f"{path} is a still image with 1 frame; {count} asked (use 1 frame)")
