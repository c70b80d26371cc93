"""Checks on the input paths before any decoder sees them, and the one-line reason text."""
from __future__ import annotations

import os
from collections.abc import Sequence

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames.info import PathLike

# Suffixes tried with PIL before FFmpeg (anything else goes to FFmpeg first, then PIL).
_IMAGE_SUFFIXES = frozenset(
    ".png .apng .jpg .jpeg .jpe .jfif .bmp .dib .gif .webp .tif .tiff .ppm .pgm .pbm .pnm"
    " .tga .ico .jp2 .j2k .jpx .qoi .sgi .rgb .pcx .dds .psd .im .xbm".split()
)


def path_str(source: PathLike) -> str:
    """Return ``source`` as a ``str`` path."""
    return os.fsdecode(os.fspath(source))


def check_file(path: str) -> None:
    """Raise InputError unless ``path`` is an existing, readable, non-empty regular file."""
    try:
        exists, link, isdir, isfile = (os.path.lexists(path), os.path.islink(path), os.path.isdir(path),
                                       os.path.isfile(path))
        readable = os.access(path, os.R_OK)
        size = os.path.getsize(path) if isfile else -1
    except (OSError, ValueError) as exc:  # e.g. a name too long, or a NUL byte in it
        raise InputError(f"{path} cannot be opened ({reason(exc)})") from None
    if not exists:
        raise InputError(f"{path} does not exist")
    if link and not os.path.exists(path):
        raise InputError(f"{path} is a broken symbolic link (its target {os.readlink(path)} does not exist)")
    if isdir:
        raise InputError(f"{path} is a directory, not a video or image file")
    if not isfile:
        raise InputError(f"{path} is not a regular file")
    if not readable:
        raise InputError(f"{path} cannot be read (permission denied)")
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes), not a video or image")


def reason(exc: BaseException) -> str:
    """Short one-line description of a low-level exception for an error message.

    An OSError (FFmpeg's errors are ones) gives its words alone: not "[Errno 1094995529] Invalid
    data found when processing input: 'PATH'" but "Invalid data found when processing input".
    """
    strerror = getattr(exc, "strerror", None)
    text = " ".join((strerror if isinstance(strerror, str) and strerror.strip() else str(exc)).split())
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def looks_like_image(path: str) -> bool:
    """True when the file name's suffix is a common still-image one."""
    return os.path.splitext(path)[1].lower() in _IMAGE_SUFFIXES


def as_list(source: object) -> list[PathLike] | None:
    """The source as a list of image paths, or None when it is a single path."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return None
    if isinstance(source, Sequence):
        items = list(source)
        if not items:
            raise InputError("the image list is empty; give at least one image path")
        for item in items:
            if not isinstance(item, (str, os.PathLike)):
                raise InputError(f"image list item {item!r} is not a path")
        return items
    raise InputError(f"{source!r} is not a path or a list of image paths")
