"""Read the few frames the prompt upsampler needs from a control video, image, or image list.

Cosmos-Transfer1's upsampler sends frames of the control video to Pixtral; to fit
its context we read only the frames a policy asks for (the first ``count``, a
uniform spread, or the two ends) and nothing more. Videos are read with PyAV:

* ``first`` decodes from the start and stops as soon as it has ``count`` frames.
* ``uniform``/``ends`` first demux the packets (no decoding) to learn the exact
  presentation-order list of timestamps, so index ``i`` maps to one exact pts even
  for variable frame rate; each wanted frame is then reached by seeking to the
  keyframe before it and decoding forward to that pts. If a seek misbehaves we
  fall back to one sequential decode from the start.

Frames come out as RGB ``uint8`` arrays already turned per the display matrix
(the ``rotate`` of phone videos), the way ffmpeg and OpenCV show them. Every
failure to read the input is raised as a one-line
:class:`~cosmos_upsample_fix.errors.InputError` that names the path.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Union

import av
import numpy as np
from packaging.version import Version
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, PolicySpecError

logger = logging.getLogger(__name__)

SELECTIONS = ("first", "uniform", "ends")

PathLike = Union[str, "os.PathLike[str]"]

# Exceptions from PyAV, PIL and the OS that mean "this input cannot be read".
# (PIL raises SyntaxError/struct.error/EOFError for some broken files.)
_READ_ERRORS = (
    av.error.FFmpegError,
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    struct.error,
    RuntimeError,
    Image.DecompressionBombError,
)

# Disposition flag of cover-art "video" streams in audio files (av >= 13 has the enum).
_ATTACHED_PIC = int(getattr(getattr(getattr(av, "stream", None), "Disposition", None), "attached_pic", 0) or 0)

# PIL formats that it can identify but that are not still images we can decode.
_PIL_NOT_STILL = {"MPEG"}

try:  # av >= 13
    from av.sidedata.sidedata import Type as _SideDataType

    _DISPLAYMATRIX = _SideDataType.DISPLAYMATRIX
except (ImportError, AttributeError):  # pragma: no cover - older PyAV
    _DISPLAYMATRIX = None


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    ``index`` is its presentation-order index in the source (0-based), or its
    position in the list for an image list. ``image`` is H x W x 3 uint8 RGB,
    C-contiguous, already rotated per the display metadata.
    """

    index: int
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the source is: display size (after rotation), frame count, and kind.

    ``kind`` is ``"video"``, ``"image"`` (one still image) or ``"images"`` (a list of
    images; ``path`` is then the first image's path and ``width``/``height`` its
    size). ``frame_count`` is exact when known, else ``None``.
    """

    path: str
    width: int
    height: int
    frame_count: int | None
    kind: str


# --------------------------------------------------------------------------- selection


def _check_policy(count: int, select: str) -> None:
    """Raise PolicySpecError for a bad ``count`` or ``select`` (independent of the input)."""
    if select not in SELECTIONS:
        raise PolicySpecError(f"unknown frame selection {select!r}; choose one of {', '.join(SELECTIONS)}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise PolicySpecError(f"frame count must be a positive integer, got {count!r}")
    if select == "ends" and count > 2:
        raise PolicySpecError(f"selection 'ends' takes 1 or 2 frames, got {count}")


def select_indices(total: int, count: int, select: str) -> list[int]:
    """Return the strictly increasing frame indices ``select`` picks from ``total`` frames.

    ``first`` -> ``[0 .. count-1]``; ``uniform`` -> ``count`` indices spread over the
    whole clip, first and last included; ``ends`` -> first and last (``count`` 2, or 1).
    """
    _check_policy(count, select)
    count = int(count)
    if total < count:
        raise InputError(f"fewer frames than asked: the source has {total} frames; {count} asked")
    if count == 1:
        return [0]
    if select == "first":
        return list(range(count))
    if select == "ends":
        return [0, total - 1]
    # uniform: total >= count >= 2, so the step (total-1)/(count-1) >= 1 and rounding keeps
    # the indices strictly increasing.
    return [int(round(i * (total - 1) / (count - 1))) for i in range(count)]


# --------------------------------------------------------------------------- helpers


def _path_str(source: PathLike) -> str:
    """Return ``source`` as a ``str`` path."""
    return os.fsdecode(os.fspath(source))


def _check_file(path: str) -> None:
    """Raise InputError unless ``path`` is an existing, readable, non-empty regular file."""
    if not os.path.lexists(path):
        raise InputError(f"{path} does not exist")
    if os.path.islink(path) and not os.path.exists(path):
        raise InputError(f"{path} is a broken symbolic link (its target {os.readlink(path)} does not exist)")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory, not a video or image file")
    if not os.path.isfile(path):
        raise InputError(f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path} cannot be read (permission denied)")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty (0 bytes), not a video or image")


def _reason(exc: BaseException) -> str:
    """Short one-line description of a low-level exception for an error message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# Suffixes tried with PIL before FFmpeg (anything else goes to FFmpeg first, then PIL).
_IMAGE_SUFFIXES = frozenset(
    ".png .apng .jpg .jpeg .jpe .jfif .bmp .dib .gif .webp .tif .tiff .ppm .pgm .pbm .pnm"
    " .tga .ico .jp2 .j2k .jpx .qoi .sgi .rgb .pcx .dds .psd .im .xbm".split()
)


def _looks_like_image(path: str) -> bool:
    """True when the file name's suffix is a common still-image one."""
    return os.path.splitext(path)[1].lower() in _IMAGE_SUFFIXES


def _is_image_demuxer(container: av.container.InputContainer) -> bool:
    """True when FFmpeg opened the file with a still-image demuxer (image2, png_pipe, ...)."""
    name = container.format.name or ""
    return name in ("image2", "image2pipe") or name.endswith("_pipe")


def _still_image_error(path: str, count: int) -> InputError:
    """The error for asking more than one frame of a still image."""
    return InputError(f"{path} is a still image with 1 frame; {count} asked (use 1 frame)")


# --------------------------------------------------------------------------- rotation


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's 3x3 display matrix (FFmpeg layout, 9 ints) or None."""
    if _DISPLAYMATRIX is None:
        return None
    try:
        side = frame.side_data.get(_DISPLAYMATRIX)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    if side is None:
        return None
    raw = bytes(side)
    if len(raw) < 36:
        return None
    return struct.unpack("=9i", raw[:36])


def _orient(image: np.ndarray, frame: av.VideoFrame) -> np.ndarray:
    """Turn a decoded picture the way ffmpeg's autorotate does (right angles and flips)."""
    matrix = _display_matrix(frame)
    if matrix is None:
        ccw = getattr(frame, "rotation", 0) or 0
        if not ccw:
            return image
        # No matrix to read flips from: synthesise a pure rotation.
        rad = math.radians(-ccw)
        matrix = (
            int(round(math.cos(rad) * 65536)), int(round(-math.sin(rad) * 65536)), 0,
            int(round(math.sin(rad) * 65536)), int(round(math.cos(rad) * 65536)), 0,
            0, 0, 1 << 30,
        )
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return image
    # av_display_rotation_get() is counter-clockwise; ffmpeg's get_rotation() is clockwise.
    ccw = -math.degrees(math.atan2(b / scale1, a / scale0))
    theta = -round(ccw)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        # transpose=cclock_flip (plain transpose) or transpose=clock
        return image.transpose(1, 0, 2) if matrix[3] > 0 else np.rot90(image, -1)
    if abs(theta - 180) < 1:
        if matrix[0] < 0:
            image = image[:, ::-1]
        if matrix[4] < 0:
            image = image[::-1]
        return image
    if abs(theta - 270) < 1:
        # transpose=clock_flip (anti-transpose) or transpose=cclock
        return np.rot90(image, -1)[::-1] if matrix[3] < 0 else np.rot90(image, 1)
    if abs(theta) > 1:
        logger.warning("display rotation of %.1f degrees is not a right angle; frame left unrotated", theta)
        return image
    if matrix[4] < 0:
        return image[::-1]
    return image


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """Decoded frame -> C-contiguous H x W x 3 uint8 RGB, display-oriented."""
    image = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(_orient(image, frame))


# --------------------------------------------------------------------------- still images


def _pil_rgb(img: Image.Image) -> np.ndarray:
    """PIL image -> H x W x 3 uint8 RGB (EXIF orientation applied, 16-bit scaled down)."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        grey = np.clip(np.rint(arr * 255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _pil_open(path: str) -> Image.Image | None:
    """Open ``path`` lazily with PIL if it is a single still image PIL can decode, else None."""
    try:
        img = Image.open(path)
    except (UnidentifiedImageError, *_READ_ERRORS) as exc:
        logger.debug("PIL cannot open %s: %s", path, _reason(exc))
        return None
    if img.format in _PIL_NOT_STILL or getattr(img, "n_frames", 1) != 1:
        img.close()
        return None
    return img


def _pil_display_size(img: Image.Image) -> tuple[int, int]:
    """Width and height after EXIF orientation."""
    width, height = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except _READ_ERRORS:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# --------------------------------------------------------------------------- PyAV plumbing


# PyAV up to 18 decodes metadata strictly unless told otherwise; 19 dropped the option.
_OPEN_OPTIONS = {"metadata_errors": "replace"} if Version(av.__version__) < Version("19") else {}


def _open_av(path: str) -> av.container.InputContainer:
    """Open ``path`` read-only with PyAV, as InputError when FFmpeg cannot."""
    try:
        return av.open(path, mode="r", **_OPEN_OPTIONS)
    except _READ_ERRORS as exc:
        logger.debug("PyAV cannot open %s", path, exc_info=True)
        raise InputError(f"{path} is not a readable video or image, or is corrupt ({_reason(exc)})") from None


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """The container's first real video stream (cover art is not video) with a decoder, threaded decode."""
    undecodable = 0
    for stream in container.streams.video:
        if _ATTACHED_PIC and stream.disposition & _ATTACHED_PIC:
            continue
        if stream.codec_context is None:  # FFmpeg has no decoder for it (unknown or corrupt codec id)
            undecodable += 1
            continue
        stream.thread_type = "AUTO"
        return stream
    if undecodable:
        raise InputError(
            f"{path} has no decodable video frames (its video stream's codec is unknown to FFmpeg: "
            "corrupt, or a format this build cannot decode)"
        )
    raise InputError(f"{path} has no decodable video frames (no video stream; audio-only or not a video?)")


def _header_frame_count(stream: av.video.stream.VideoStream) -> int | None:
    """Frame count from the container's own complete index (mp4/mov), without reading packets."""
    declared = stream.frames
    if not declared:
        return None
    try:
        entries = stream.index_entries
        if len(entries) != declared:
            return None
        return sum(1 for e in entries if e.size > 0 and not e.is_discard)
    except (AttributeError, *_READ_ERRORS):  # older PyAV: no index_entries
        return None


@dataclass
class _Packets:
    """Demuxed packet timing in decode order (only packets that carry a frame)."""

    pts: list[int | None]
    dts: list[int | None]
    key: list[bool]
    truncated: str | None  # demuxer error text when reading stopped early


def _demux(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _Packets:
    """Read every packet of ``stream`` without decoding and record pts/dts/keyframe."""
    pts: list[int | None] = []
    dts: list[int | None] = []
    key: list[bool] = []
    truncated = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or getattr(packet, "is_discard", False):
                continue  # flush packet at EOF, or a frame the demuxer says to drop
            pts.append(packet.pts)
            dts.append(packet.dts)
            key.append(bool(packet.is_keyframe))
    except _READ_ERRORS as exc:
        truncated = _reason(exc)
        logger.warning("demuxing stopped early: %s", truncated)
    return _Packets(pts, dts, key, truncated)


def _decode(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, errors: list[str]
) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` from the container's current position, skipping undecodable packets.

    Decoder errors are recorded in ``errors`` and decoding goes on, like ffmpeg does;
    a demuxer error ends the stream (and is recorded too).
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            errors.append(_reason(exc))
            logger.warning("demuxing stopped early: %s", errors[-1])
            packet = None  # flush the decoder below
        try:
            frames = stream.decode(packet)
        except _READ_ERRORS as exc:
            errors.append(_reason(exc))
            logger.warning("skipping an undecodable packet: %s", errors[-1])
            frames = []
        yield from frames
        if packet is None:
            return


# --------------------------------------------------------------------------- readers


def _read_first(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: str,
    count: int,
    declared: int | None = None,
) -> list[Frame]:
    """Decode the first ``count`` frames and stop."""
    errors: list[str] = []
    frames: list[Frame] = []
    for vf in _decode(container, stream, errors):
        frames.append(Frame(len(frames), _rgb(vf)))
        if len(frames) == count:
            return frames
    raise _short_error(path, len(frames), count, errors, declared)


def _short_error(
    path: str, got: int, count: int, errors: Sequence[str], declared: int | None = None
) -> InputError:
    """Error for a source that yielded fewer decodable frames than asked.

    ``declared`` is the frame count the container claims; decoding fewer than that,
    or any decoder/demuxer error on the way, means the file is corrupt or truncated.
    """
    if errors or (declared is not None and got < declared):
        of = f" of {declared}" if declared is not None else ""
        detail = f" ({errors[0]})" if errors else ""
        return InputError(
            f"{path} is corrupt or truncated: only {got}{of} frames could be decoded; {count} asked{detail}"
        )
    if got == 0:
        return InputError(f"{path} has no decodable video frames")
    return InputError(f"{path} has {got} frames; {count} asked")


def _read_sequential(path: str, indices: Sequence[int], count: int, declared: int) -> list[Frame]:
    """Decode from the start and keep the frames at ``indices`` (the fallback path)."""
    wanted = set(indices)
    last = max(indices)
    frames: list[Frame] = []
    errors: list[str] = []
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        n = -1
        for n, vf in enumerate(_decode(container, stream, errors)):
            if n in wanted:
                frames.append(Frame(n, _rgb(vf)))
            if n >= last:
                return frames
    raise _short_error(path, n + 1, count, errors, declared)


def _count_by_decoding(path: str) -> int:
    """Number of frames a full sequential decode yields (used when packets lack pts)."""
    errors: list[str] = []
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        return sum(1 for _ in _decode(container, stream, errors))


class _SeekFailed(Exception):
    """Seeking did not land where expected; use the sequential fallback."""


def _advance(decoder: Iterator[av.VideoFrame], target: int, counter: list[int]) -> av.VideoFrame | None:
    """Decode forward to the frame whose pts is ``target``; None if it was passed or never came."""
    for vf in decoder:
        counter[0] += 1
        if vf.pts is None:
            raise _SeekFailed("decoded frame without a timestamp")
        if vf.pts == target:
            return vf
        if vf.pts > target:
            return None
    return None


def _read_seeking(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    packets: _Packets,
    indices: Sequence[int],
) -> list[Frame]:
    """Fetch the frames at ``indices`` by seeking to the keyframe before each and decoding forward.

    Seeks to the keyframe's pts first (what mov/mkv demuxers index by), then to its dts
    and to the stream start if the decoder came out past the target. Raises _SeekFailed
    when none of that reaches the exact timestamp.
    """
    order = sorted(range(len(packets.pts)), key=lambda k: packets.pts[k])  # presentation order
    key_positions = [k for k, is_key in enumerate(packets.key) if is_key]
    if not key_positions:
        raise _SeekFailed("no keyframes flagged")
    start_ts = min(t for t in (packets.pts[0], packets.dts[0]) if t is not None)
    frames: list[Frame] = []
    decoder: Iterator[av.VideoFrame] | None = None
    current_key = -1  # decode position of the keyframe the decoder last started from
    errors: list[str] = []
    decoded, seeks = [0], 0
    for index in indices:
        position = order[index]  # decode-order position of the packet holding frame `index`
        target = packets.pts[position]
        at = bisect.bisect_right(key_positions, position) - 1
        # Leading pictures of an open GOP show before their keyframe: start one GOP earlier.
        while at > 0 and target < packets.pts[key_positions[at]]:
            at -= 1
        k = max(key_positions[at], 0) if at >= 0 else 0
        vf = None
        if decoder is not None and k <= current_key:
            vf = _advance(decoder, target, decoded)  # same GOP as the last frame: keep decoding
        else:
            candidates = [packets.pts[k], packets.dts[k], start_ts]
            tried: list[int] = []
            for seek_ts in candidates:
                if seek_ts is None or seek_ts in tried:
                    continue
                tried.append(seek_ts)
                try:
                    container.seek(seek_ts, stream=stream, backward=True, any_frame=False)
                except _READ_ERRORS as exc:
                    logger.debug("seek to %s failed: %s", seek_ts, _reason(exc))
                    continue
                stream.codec_context.flush_buffers()
                seeks += 1
                decoder = _decode(container, stream, errors)
                current_key = k
                vf = _advance(decoder, target, decoded)
                if vf is not None:
                    break
                logger.debug("seek to %s did not reach pts %s; trying earlier", seek_ts, target)
        if vf is None:
            raise _SeekFailed(f"frame {index} (pts {target}) was not reached")
        frames.append(Frame(index, _rgb(vf)))
    logger.debug("seek read: %d frames of %d decoded with %d seeks", decoded[0], len(packets.pts), seeks)
    return frames


def _read_video(path: str, count: int, select: str) -> tuple[VideoInfo, list[Frame]]:
    """Read a video (or a still image FFmpeg opens as a one-frame video)."""
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        if _is_image_demuxer(container):
            try:
                frames = _read_first(container, stream, path, 1)
            except InputError:
                raise InputError(f"{path} is not a readable image (corrupt or not an image)") from None
            if count > 1:
                raise _still_image_error(path, count)
            height, width = frames[0].image.shape[:2]
            return VideoInfo(path, width, height, 1, "image"), frames

        if select == "first" or count == 1:
            total = _header_frame_count(stream)
            if total is not None and total < count:
                raise InputError(f"{path} has {total} frames; {count} asked")
            frames = _read_first(container, stream, path, count, total)
        else:
            packets = _demux(container, stream)
            total = len(packets.pts)
            if total == 0:
                raise InputError(
                    f"{path} is corrupt or truncated ({packets.truncated})"
                    if packets.truncated
                    else f"{path} has no decodable video frames"
                )
            declared = _header_frame_count(stream)
            if declared is not None and total < declared:
                raise InputError(
                    f"{path} is corrupt or truncated: the container lists {declared} frames"
                    f" but only {total} can be read"
                    + (f" ({packets.truncated})" if packets.truncated else "")
                )
            have_pts = None not in packets.pts and len(set(packets.pts)) == total
            if not have_pts:
                logger.info("%s: packets lack unique timestamps; counting frames by decoding", path)
                total = _count_by_decoding(path)
            if total == 0:
                raise InputError(f"{path} has no decodable video frames")
            if total < count:
                raise InputError(f"{path} has {total} frames; {count} asked")
            indices = select_indices(total, count, select)
            frames = []
            if have_pts:
                try:
                    frames = _read_seeking(container, stream, packets, indices)
                except _SeekFailed as exc:
                    logger.info("%s: seeking failed (%s); decoding sequentially", path, exc)
            if not frames:
                frames = _read_sequential(path, indices, count, total)
        height, width = frames[0].image.shape[:2]
        return VideoInfo(path, width, height, total, "video"), frames


def _pil_frame(path: str, img: Image.Image, count: int) -> tuple[VideoInfo, list[Frame]]:
    """Read a still image PIL has opened as the one frame of kind ``"image"`` (closes ``img``)."""
    with img:
        if count > 1:
            raise _still_image_error(path, count)
        try:
            image = _pil_rgb(img)
        except _READ_ERRORS as exc:
            raise InputError(f"{path} is a corrupt or truncated image ({_reason(exc)})") from None
    height, width = image.shape[:2]
    return VideoInfo(path, width, height, 1, "image"), [Frame(0, image)]


def _load_image(path: str) -> np.ndarray:
    """Decode one still image file of an image list to RGB (PIL first for EXIF, then FFmpeg)."""
    _check_file(path)
    try:
        img = _pil_open(path)
        if img is not None:
            return _pil_frame(path, img, 1)[1][0].image
        with _open_av(path) as container:
            stream = _video_stream(container, path)
            if not _is_image_demuxer(container):
                raise InputError(f"{path} is a video, not a still image; an image list takes still images")
            return _read_first(container, stream, path, 1)[0].image
    except _READ_ERRORS as exc:
        logger.debug("reading %s failed", path, exc_info=True)
        raise InputError(f"{path} cannot be read, corrupt or truncated ({_reason(exc)})") from None


def _read_images(paths: Sequence[PathLike]) -> tuple[VideoInfo, list[Frame]]:
    """Read an image list: each path is one frame, in order."""
    frames = [Frame(i, _load_image(_path_str(p))) for i, p in enumerate(paths)]
    height, width = frames[0].image.shape[:2]
    return VideoInfo(_path_str(paths[0]), width, height, len(frames), "images"), frames


def _as_list(source: object) -> list[PathLike] | None:
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


# --------------------------------------------------------------------------- public API


def read_frames(
    source: PathLike | Sequence[PathLike],
    count: int = 2,
    select: str = "first",
) -> tuple[VideoInfo, list[Frame]]:
    """Read ``count`` frames chosen by ``select`` from a video, one image, or an image list.

    Returns the source's info and the frames in increasing index order. An image list
    gives all its images (``count``/``select`` do not apply). Raises InputError for an
    input that cannot be read as asked, PolicySpecError for a bad ``count``/``select``.
    """
    paths = _as_list(source)
    if paths is not None:
        return _read_images(paths)
    _check_policy(count, select)
    count = int(count)
    path = _path_str(source)
    _check_file(path)
    try:
        if _looks_like_image(path):
            img = _pil_open(path)
            if img is not None:
                return _pil_frame(path, img, count)
        try:
            return _read_video(path, count, select)
        except InputError:
            img = _pil_open(path)  # an image PIL knows that FFmpeg could not open or decode
            if img is None:
                raise
            return _pil_frame(path, img, count)
    except _READ_ERRORS as exc:
        logger.debug("reading %s failed", path, exc_info=True)
        raise InputError(f"{path} cannot be read, corrupt or truncated ({_reason(exc)})") from None


def _probe_image(path: str) -> VideoInfo | None:
    """VideoInfo for a still image PIL can open (header only), else None."""
    img = _pil_open(path)
    if img is None:
        return None
    with img:
        width, height = _pil_display_size(img)
    return VideoInfo(path, width, height, 1, "image")


def probe(source: PathLike | Sequence[PathLike]) -> VideoInfo:
    """Describe a source cheaply: display size, exact frame count when it can be had without decoding.

    Decodes at most the first frame of a video (to learn its display rotation); the
    frame count comes from the container index or from demuxing packets.
    """
    paths = _as_list(source)
    if paths is None:
        return _probe_one(_path_str(source))
    infos = []
    for p in paths:
        info = _probe_one(_path_str(p))
        if info.kind != "image":
            raise InputError(f"{info.path} is a video, not a still image; an image list takes still images")
        infos.append(info)
    return VideoInfo(infos[0].path, infos[0].width, infos[0].height, len(infos), "images")


def _probe_one(path: str) -> VideoInfo:
    """Probe one file: a still image by its header, else a video with PyAV."""
    _check_file(path)
    try:
        if _looks_like_image(path):
            info = _probe_image(path)
            if info is not None:
                return info
        try:
            return _probe_video(path)
        except InputError:
            info = _probe_image(path)
            if info is None:
                raise
            return info
    except _READ_ERRORS as exc:
        logger.debug("probing %s failed", path, exc_info=True)
        raise InputError(f"{path} cannot be read, corrupt or truncated ({_reason(exc)})") from None


def _probe_video(path: str) -> VideoInfo:
    """Probe a file with PyAV: decode one frame for the display size, count frames cheaply."""
    errors: list[str] = []
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        is_image = _is_image_demuxer(container)
        first = next(iter(_decode(container, stream, errors)), None)
        if first is None:
            if errors:
                raise InputError(
                    f"{path} is corrupt or not a video/image: no frame could be decoded ({errors[0]})"
                )
            raise InputError(f"{path} has no decodable video frames")
        height, width = _orient(np.empty((first.height, first.width, 0), np.uint8), first).shape[:2]
        if is_image:
            return VideoInfo(path, width, height, 1, "image")
        total = _header_frame_count(stream)
    if total is None:
        with _open_av(path) as container:
            packets = _demux(container, _video_stream(container, path))
            total = len(packets.pts) or None
    return VideoInfo(path, width, height, total, "video")
