"""Reading selected frames of a video with PyAV, seeking instead of decoding everything.

* ``first`` decodes from the start and stops as soon as it has ``count`` frames.
* ``uniform``/``ends`` first demux the packets (no decoding) to learn the exact
  presentation-order list of timestamps, so index ``i`` maps to one exact pts even for
  variable frame rate; each wanted frame is then reached by seeking to the keyframe before
  it and decoding forward to that pts. If a seek misbehaves we fall back to one sequential
  decode from the start.
"""
from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence

import av
import numpy as np

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames.container import (
    AV_ERRORS,
    Container,
    Decoder,
    Packets,
    Stream,
    demux,
    header_frame_count,
    is_image_demuxer,
    open_av,
    to_rgb,
    use_frame_threads,
    video_stream,
)
from cosmos_upsample_fix.media.frames.files import reason
from cosmos_upsample_fix.media.frames.info import Frame, VideoInfo
from cosmos_upsample_fix.media.frames.orientation import display_matrix, display_size, turn
from cosmos_upsample_fix.media.frames.selection import frames_phrase, select_indices
from cosmos_upsample_fix.media.frames.stills import still_image_error

logger = logging.getLogger(__name__)

FRAME_THREADS_FROM = 16
"""Frames to decode from which frame threads pay for their start-up latency."""


def as_frame(index: int, frame: av.VideoFrame, path: str) -> Frame:
    """A decoded frame as a :class:`Frame`: C-contiguous H x W x 3 uint8 RGB, turned for display."""
    return Frame(index, np.ascontiguousarray(turn(to_rgb(frame, path), display_matrix(frame))))


def short_error(path: str, got: int, count: int, errors: Sequence[str], declared: int | None = None) -> InputError:
    """Error for a source that yielded fewer decodable frames than asked.

    ``declared`` is the frame count the container claims; decoding fewer than that, or any
    decoder/demuxer error on the way, means the file is corrupt or truncated.
    """
    if errors or (declared is not None and got < declared):
        of = f" of {declared}" if declared is not None else ""
        detail = f" ({errors[0]})" if errors else ""
        return InputError(
            f"{path} is corrupt or truncated: only {got}{of} frames could be decoded; {count} asked{detail}"
        )
    if got == 0:
        return InputError(f"{path} has no decodable video frames")
    return InputError(f"{path} has {frames_phrase(got)}; {count} asked")


def _read_first(
    container: Container, stream: Stream, path: str, count: int, declared: int | None, exact: bool
) -> tuple[list[Frame], int | None]:
    """Decode the first ``count`` frames (fewer when the clip is shorter and not ``exact``).

    Returns the frames and the clip's frame count: ``declared`` when the container indexes
    it, else the number of packets (counted by demuxing the rest without decoding).
    """
    decoder = Decoder(container, stream)
    frames: list[Frame] = []
    for vf in decoder:
        frames.append(as_frame(len(frames), vf, path))
        if len(frames) == count:
            return frames, declared if declared is not None else decoder.count_rest()
    clean = not decoder.errors and (declared is None or len(frames) >= declared)
    if frames and clean and not exact:
        return frames, len(frames)
    raise short_error(path, len(frames), count, decoder.errors, declared)


def _read_sequential(path: str, indices: Sequence[int], count: int, declared: int) -> list[Frame]:
    """Decode from the start and keep the frames at ``indices`` (the fallback path)."""
    wanted, last = set(indices), max(indices)
    frames: list[Frame] = []
    with open_av(path) as container:
        stream = video_stream(container, path)
        if last >= FRAME_THREADS_FROM:
            use_frame_threads(stream)
        decoder = Decoder(container, stream)
        n = -1
        for n, vf in enumerate(decoder):
            if n in wanted:
                frames.append(as_frame(n, vf, path))
            if n >= last:
                return frames
    raise short_error(path, n + 1, count, decoder.errors, declared)


def _count_by_decoding(path: str) -> int:
    """Number of frames a full sequential decode yields (used when packets lack pts)."""
    with open_av(path) as container:
        stream = video_stream(container, path)
        use_frame_threads(stream)
        return sum(1 for _ in Decoder(container, stream))


class SeekFailed(Exception):
    """Seeking did not land where expected; use the sequential fallback."""


def _advance(decoder: Iterator[av.VideoFrame], target: int, counter: list[int]) -> av.VideoFrame | None:
    """Decode forward to the frame whose pts is ``target``; None if it was passed or never came."""
    for vf in decoder:
        counter[0] += 1
        if vf.pts is None:
            raise SeekFailed("decoded frame without a timestamp")
        if vf.pts == target:
            return vf
        if vf.pts > target:
            return None
    return None


def _seek(container: Container, stream: Stream, timestamp: int) -> bool:
    """Seek to the keyframe at or before ``timestamp``; False when the demuxer refuses."""
    try:
        container.seek(timestamp, stream=stream, backward=True, any_frame=False)
        stream.codec_context.flush_buffers()
    except AV_ERRORS as exc:
        logger.debug("seek to %s failed: %s", timestamp, reason(exc))
        return False
    return True


def decode_stretch(packets: Packets, indices: Sequence[int]) -> int:
    """About how many frames seeking to ``indices`` decodes (from each one's keyframe to it)."""
    order = sorted(range(len(packets.pts)), key=lambda k: packets.pts[k] or 0)
    keys = [k for k, is_key in enumerate(packets.key) if is_key] or [0]
    total = 0
    for index in indices:
        position = order[index]
        total += position - keys[max(0, bisect.bisect_right(keys, position) - 1)] + 1
    return total


def read_seeking(
    container: Container, stream: Stream, packets: Packets, indices: Sequence[int], path: str
) -> list[Frame]:
    """Fetch the frames at ``indices`` by seeking to the keyframe before each and decoding forward.

    Seeks to the keyframe's pts first (what mov/mkv demuxers index by), then to its dts and
    to the stream start if the decoder came out past the target. Raises SeekFailed when none
    of that reaches the exact timestamp.
    """
    order = sorted(range(len(packets.pts)), key=lambda k: packets.pts[k] or 0)  # presentation order
    key_positions = [k for k, is_key in enumerate(packets.key) if is_key]
    if not key_positions:
        raise SeekFailed("no keyframes flagged")
    start_ts = min(t for t in (packets.pts[0], packets.dts[0]) if t is not None)
    frames: list[Frame] = []
    source: Decoder | None = None
    decoder: Iterator[av.VideoFrame] | None = None
    current_key = -1  # decode position of the keyframe the decoder last started from
    errors: list[str] = []
    decoded, seeks = [0], 0
    for index in indices:
        position = order[index]  # decode-order position of the packet holding frame `index`
        target = packets.pts[position]
        assert target is not None  # callers only seek when every packet has a pts
        at = bisect.bisect_right(key_positions, position) - 1
        # Leading pictures of an open GOP show before their keyframe: start one GOP earlier.
        while at > 0 and target < (packets.pts[key_positions[at]] or 0):
            at -= 1
        k = max(key_positions[at], 0) if at >= 0 else 0
        vf = None
        if source is not None and decoder is not None and k <= current_key:
            source.skip_to(target)
            vf = _advance(decoder, target, decoded)  # same GOP as the last frame: keep decoding
        else:
            tried: list[int] = []
            for seek_ts in (packets.pts[k], packets.dts[k], start_ts):
                if seek_ts is None or seek_ts in tried:
                    continue
                tried.append(seek_ts)
                if not _seek(container, stream, seek_ts):
                    continue
                seeks += 1
                source = Decoder(container, stream, errors)
                source.skip_to(target)
                decoder, current_key = iter(source), k
                vf = _advance(decoder, target, decoded)
                if vf is not None:
                    break
                logger.debug("seek to %s did not reach pts %s; trying earlier", seek_ts, target)
        if vf is None:
            raise SeekFailed(f"frame {index} (pts {target}) was not reached")
        frames.append(as_frame(index, vf, path))
    logger.debug("seek read: %d frames of %d decoded with %d seeks", decoded[0], len(packets.pts), seeks)
    return frames


def _spread(container: Container, stream: Stream, path: str, count: int, select: str, exact: bool
            ) -> tuple[list[Frame], int]:
    """The ``uniform``/``ends`` frames: demux for exact timestamps, then seek (or decode in order)."""
    packets = demux(container, stream)
    total = len(packets.pts)
    if total == 0:
        raise InputError(
            f"{path} is corrupt or truncated ({packets.truncated})" if packets.truncated
            else f"{path} has no decodable video frames"
        )
    declared = header_frame_count(stream)
    if declared is not None and total < declared:
        raise InputError(
            f"{path} is corrupt or truncated: the container lists {declared} frames but only {total} can be read"
            + (f" ({packets.truncated})" if packets.truncated else "")
        )
    have_pts = None not in packets.pts and len(set(packets.pts)) == total
    if not have_pts:
        logger.info("%s: packets lack unique timestamps; counting frames by decoding", path)
        total = _count_by_decoding(path)
    if total == 0:
        raise InputError(f"{path} has no decodable video frames")
    if total < count and exact:
        listed = stream.frames or 0  # the header's count (PyAV before 17 gives no index to check it by)
        if listed > total:
            raise InputError(
                f"{path} is corrupt or truncated: the container lists {listed} frames but only {total} can be read"
            )
        raise InputError(f"{path} has {frames_phrase(total)}; {count} asked")
    indices = select_indices(total, min(count, total), select)
    frames: list[Frame] = []
    if have_pts:
        if decode_stretch(packets, indices) >= FRAME_THREADS_FROM and packets.slices == 1:
            use_frame_threads(stream)
        try:
            frames = read_seeking(container, stream, packets, indices, path)
        except SeekFailed as exc:
            logger.info("%s: seeking failed (%s); decoding sequentially", path, exc)
    return frames or _read_sequential(path, indices, count, total), total


def read_video(path: str, count: int, select: str, exact: bool = True) -> tuple[VideoInfo, list[Frame]]:
    """Read a video (or a still image FFmpeg opens as a one-frame video)."""
    with open_av(path) as container:
        stream = video_stream(container, path)
        if is_image_demuxer(container):
            try:
                frames, _ = _read_first(container, stream, path, 1, None, True)
            except InputError:
                raise InputError(f"{path} is not a readable image (corrupt or not an image)") from None
            if count > 1 and exact:
                raise still_image_error(path, count)
            height, width = frames[0].image.shape[:2]
            return VideoInfo(path, width, height, 1, "image", _stored(stream, frames[0])), frames
        total: int | None
        if select == "first" or count == 1:
            declared = header_frame_count(stream)
            if declared is not None and declared < count:
                if exact:
                    raise InputError(f"{path} has {frames_phrase(declared)}; {count} asked")
                count = max(1, declared)
            frames, total = _read_first(container, stream, path, count, declared, exact)
        else:
            frames, total = _spread(container, stream, path, count, select, exact)
        height, width = frames[0].image.shape[:2]
        return VideoInfo(path, width, height, total, "video", _stored(stream, frames[0])), frames


def _stored(stream: Stream, frame: Frame) -> tuple[int, int]:
    """The stored (unturned) size of a decoded frame, from the stream's codec context."""
    context = stream.codec_context
    width, height = (context.width, context.height) if context.width and context.height else (0, 0)
    if (width, height) in ((frame.image.shape[1], frame.image.shape[0]), (frame.image.shape[0], frame.image.shape[1])):
        return width, height
    return frame.image.shape[1], frame.image.shape[0]


def probe_video(path: str) -> VideoInfo:
    """Describe a file PyAV opens: decode one frame (for its size and display matrix), count frames cheaply."""
    with open_av(path) as container:
        stream = video_stream(container, path)
        is_image = is_image_demuxer(container)
        decoder = Decoder(container, stream)
        first = next(iter(decoder), None)
        if first is None:
            if decoder.errors:
                raise InputError(
                    f"{path} is corrupt or not a video/image: no frame could be decoded ({decoder.errors[0]})"
                )
            raise InputError(f"{path} has no decodable video frames")
        stored = (first.width, first.height)
        width, height = display_size(first.width, first.height, display_matrix(first))
        if is_image:
            return VideoInfo(path, width, height, 1, "image", stored)
        total = header_frame_count(stream)
        if total is None:
            total = decoder.count_rest()
    return VideoInfo(path, width, height, total or None, "video", stored)
