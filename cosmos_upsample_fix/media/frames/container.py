"""PyAV access: open a file, find its video stream, demux packets, decode frames.

Every call into PyAV that can fail on a bad file is wrapped here, narrowly, and turned
into an :class:`~cosmos_upsample_fix.errors.InputError` (or recorded, where decoding goes
on past a bad packet as ffmpeg does); errors from the package's own code pass through.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from packaging.version import Version

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.media.frames.files import reason
from cosmos_upsample_fix.media.images import kept_reformatter

logger = logging.getLogger(__name__)

# What PyAV raises for input it cannot read (FFmpegError; some checks raise ValueError,
# e.g. undecodable metadata, or RuntimeError/EOFError/MemoryError from the bindings).
AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError, MemoryError)

def _flags(value: Any) -> int:
    """A disposition as an int (PyAV 15's is a Python enum.Flag, which int() refuses)."""
    return int(getattr(value, "value", value) or 0)


# Disposition flag of cover-art "video" streams in audio files (av >= 13 has the enum).
_ATTACHED_PIC = _flags(getattr(getattr(getattr(av, "stream", None), "Disposition", None), "attached_pic", 0))

# PyAV up to 18 decodes metadata strictly unless told otherwise; 19 dropped the option.
# 19 also dropped ``stream_options``: its ``options`` reach the probing of every stream.
_PYAV_19 = Version(av.__version__) >= Version("19")
_STRICT_METADATA = not _PYAV_19

Container = av.container.InputContainer
Stream = av.video.stream.VideoStream


_PROBE_WITHOUT_DECODING: dict[str, Any] = (
    {"options": {"skip_frame": "all"}} if _PYAV_19 else {"stream_options": [{"skip_frame": "all"}] * 16}
)
"""Decoder options for FFmpeg's stream probing: parse the headers, decode no picture.

Opening a file otherwise decodes its first frames just to fill in details this package
never reads (pixel format, frame-rate estimates): 40 ms for a busy 720p clip, 3 ms for a
sample clip, before the real decoding starts again from the first frame. Decoded frames,
sizes, timestamps and frame counts are the same either way (checked on every codec and
container the tests make, and on the sample clips).
"""


def open_av(path: str) -> Container:
    """Open ``path`` read-only with PyAV, as InputError when FFmpeg cannot."""
    extra: dict[str, Any] = {"metadata_errors": "replace"} if _STRICT_METADATA else {}
    try:
        try:
            return av.open(path, mode="r", **_PROBE_WITHOUT_DECODING, **extra)
        except (ValueError, TypeError) as exc:
            # ValueError: formats that list no stream before probing (PyAV up to 18 refuses
            # per-stream options then); TypeError: a PyAV that has neither option.
            logger.debug("opening %s with probe decoding: %s", path, reason(exc))
            return av.open(path, mode="r", **extra)
    except AV_ERRORS as exc:
        logger.debug("PyAV cannot open %s", path, exc_info=True)
        if isinstance(exc, EOFError):  # the header promised more than the file holds (older FFmpeg stops here)
            raise InputError(f"{path} is corrupt or truncated ({reason(exc)})") from None
        raise InputError(f"{path} is not a readable video or image, or is corrupt (PyAV: {reason(exc)})") from None


def video_stream(container: Container, path: str, threads: str = "SLICE") -> Stream:
    """The container's first real video stream (cover art is not video) that FFmpeg can decode.

    ``threads`` is the decoder's thread type. Slice threads (the default) add no latency:
    the first two frames of a 720p clip come out in about 4 ms, where frame threads take
    about 20 ms to fill their pipeline. Frame threads pay off only for long decodes
    (see :func:`use_frame_threads`).
    """
    undecodable = 0
    for stream in container.streams.video:
        if _ATTACHED_PIC and _flags(stream.disposition) & _ATTACHED_PIC:
            continue
        if stream.codec_context is None:  # FFmpeg has no decoder for it (unknown or corrupt codec id)
            undecodable += 1
            continue
        stream.thread_type = threads
        return stream
    if undecodable:
        raise InputError(
            f"{path} has no decodable video frames (its video stream's codec is unknown to FFmpeg: "
            "corrupt, or a format this build cannot decode)"
        )
    raise InputError(f"{path} has no decodable video frames (no video stream; audio-only or not a video?)")


def use_frame_threads(stream: Stream) -> None:
    """Decode ``stream`` with frame threads too (before its first decode): for long stretches.

    Not for pictures cut into several slices: slice threads already use every core there,
    and frame threads measured slower (1563 vs 1057 ms for a 600-frame 2-slice 720p clip).
    """
    try:
        stream.thread_type = "AUTO"
    except AV_ERRORS as exc:  # the decoder is already open
        logger.debug("cannot switch to frame threads: %s", reason(exc))


def is_image_demuxer(container: Container) -> bool:
    """True when FFmpeg opened the file with a still-image demuxer (image2, png_pipe, ...)."""
    name = container.format.name or ""
    return name in ("image2", "image2pipe") or name.endswith("_pipe")


def header_frame_count(stream: Stream) -> int | None:
    """Frame count from the container's own complete index (mp4/mov), without reading packets."""
    try:
        declared = stream.frames
        entries = list(stream.index_entries) if declared else []
        if not declared or len(entries) != declared:
            return None
        return sum(1 for e in entries if e.size > 0 and not e.is_discard)
    except (AttributeError, *AV_ERRORS):  # older PyAV: no index_entries
        return None


def carries_frame(packet: av.Packet) -> bool:
    """False for the flush packet at EOF and for frames the demuxer says to drop."""
    return bool(packet.size) and not getattr(packet, "is_discard", False)


@dataclass
class Packets:
    """Demuxed packet timing in decode order (only packets that carry a frame)."""

    pts: list[int | None] = field(default_factory=list)
    dts: list[int | None] = field(default_factory=list)
    key: list[bool] = field(default_factory=list)
    truncated: str | None = None  # demuxer error text when reading stopped early
    slices: int = 1  # slices in the first keyframe's picture (H.264/HEVC; 1 where not known)


_VCL_NAL = {"h264": (1, 5, lambda byte: byte & 0x1F), "hevc": (0, 31, lambda byte: (byte >> 1) & 0x3F)}
"""Per codec: the NAL unit types that carry a coded slice, and how to read a NAL type."""


def count_slices(data: bytes, codec: str) -> int:
    """How many coded slices an H.264/HEVC packet holds (1 for other codecs or when unsure).

    Reads the NAL unit headers of MP4/MKV's 4-byte length-prefixed packets, or of Annex B
    packets (start codes, as in MPEG-TS and raw streams).
    """
    if codec not in _VCL_NAL or len(data) < 5:
        return 1
    low, high, nal_type = _VCL_NAL[codec]
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        starts, at = [], data.find(b"\x00\x00\x01")
        while at >= 0:
            starts.append(at + 3)
            at = data.find(b"\x00\x00\x01", at + 3)
    else:
        starts, at = [], 0
        while at + 4 < len(data):
            starts.append(at + 4)
            at += 4 + int.from_bytes(data[at:at + 4], "big")
        if at != len(data):  # not length-prefixed after all
            return 1
    return max(1, sum(1 for i in starts if i < len(data) and low <= nal_type(data[i]) <= high))


def demux(container: Container, stream: Stream) -> Packets:
    """Read every packet of ``stream`` without decoding and record pts/dts/keyframe."""
    packets = Packets()
    codec, counted = stream.codec_context.name, False
    for packet in read_packets(container, stream, packets):
        packets.pts.append(packet.pts)
        packets.dts.append(packet.dts)
        packets.key.append(bool(packet.is_keyframe))
        if packet.is_keyframe and not counted:
            packets.slices, counted = count_slices(bytes(packet), codec), True
    return packets


def read_packets(container: Container, stream: Stream, status: Packets | None = None) -> Iterator[av.Packet]:
    """The frame-carrying packets of ``stream`` from the current position; a demuxer error ends them.

    The error is logged and kept in ``status.truncated`` when ``status`` is given.
    """
    try:
        packets = container.demux(stream)
    except AV_ERRORS as exc:
        raise InputError(f"cannot read the video stream ({reason(exc)})") from None
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except AV_ERRORS as exc:
            logger.warning("demuxing stopped early: %s", reason(exc))
            if status is not None:
                status.truncated = reason(exc)
            return
        if carries_frame(packet):
            yield packet


def _demux_packets(container: Container, stream: Stream, errors: list[str], counted: list[int]
                   ) -> Iterator[av.Packet | None]:
    """The stream's packets for :class:`Decoder`, then ``None`` (a flush) if demuxing fails.

    Errors are added to ``errors``; ``counted[0]`` counts the frame-carrying packets.
    """
    try:
        source = container.demux(stream)
    except AV_ERRORS as exc:
        errors.append(reason(exc))
        yield None
        return
    while True:
        try:
            packet = next(source)
        except StopIteration:
            return
        except AV_ERRORS as exc:
            errors.append(reason(exc))
            logger.warning("demuxing stopped early: %s", errors[-1])
            yield None  # flush the decoder
            return
        if packet.size:
            counted[0] += carries_frame(packet)
        yield packet  # the empty packet at EOF flushes the decoder


class Decoder:
    """Decodes a stream from the container's current position, skipping undecodable packets.

    Decoder errors are kept in ``errors`` and decoding goes on, as ffmpeg does; a demuxer
    error ends the stream (and is kept too). ``packets`` counts the frame-carrying packets
    read so far, so :meth:`count_rest` can give the stream's packet total.
    """

    def __init__(self, container: Container, stream: Stream, errors: list[str] | None = None) -> None:
        self.container, self.stream = container, stream
        self.errors: list[str] = [] if errors is None else errors
        self._counted = [0]
        self._target: int | None = None  # see skip_to
        self._skipping = False
        # Not a generator method of self: that would make a reference cycle (decoder -> generator
        # -> decoder) keeping the stream's decoder and its threads alive until a garbage
        # collection, which after a fork runs in the child, where those threads do not exist.
        self._demuxed = _demux_packets(container, stream, self.errors, self._counted)

    @property
    def packets(self) -> int:
        """The frame-carrying packets read so far."""
        return self._counted[0]

    def skip_to(self, target: int | None) -> None:
        """Skip decoding pictures no other picture refers to, except the one whose pts is ``target``.

        The frames wanted come out exactly as before (nothing that is skipped is ever used to
        predict another picture), in about half the time on B-frame clips: a seek to the
        last frame decodes from its keyframe on. ``None`` decodes every picture again.
        """
        self._target = target

    def _skip_for(self, packet: av.Packet) -> None:
        skip = self._target is not None and packet.pts != self._target
        if skip != self._skipping:
            self.stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
            self._skipping = skip

    def __iter__(self) -> Iterator[av.VideoFrame]:
        for packet in self._demuxed:
            if packet is not None and packet.size:
                self._skip_for(packet)
            try:
                frames = self.stream.decode(packet)
            except AV_ERRORS as exc:
                self.errors.append(reason(exc))
                logger.warning("skipping an undecodable packet: %s", self.errors[-1])
                frames = []
            yield from frames

    def count_rest(self) -> int:
        """Demux (without decoding) what is left; the number of frame-carrying packets in all."""
        for _ in self._demuxed:
            pass
        return self.packets


def to_rgb(frame: av.VideoFrame, path: str) -> np.ndarray:
    """The decoded picture as H x W x 3 uint8 RGB, as stored (not yet turned)."""
    reformatter = kept_reformatter("rgb", frame)
    try:
        return reformatter.reformat(frame, format="rgb24").to_ndarray()
    except AV_ERRORS as exc:
        raise InputError(f"{path}: a frame cannot be converted to RGB ({reason(exc)})") from None
