"""Synthetic test clips and images whose frames carry a readable index marker.

Every frame drawn here has a top band of flat grey blocks whose levels spell the
frame index in base ``total_levels`` (most significant digit first), so a test can
tell from decoded pixels which source frame it got, whatever the codec did to it.
Below the band is a coloured gradient with moving stripes so frames are not
trivial to encode (real motion, real prediction, B-frames worth using).

Import as ``from clips import make_clip`` (pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

import logging
import math
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

logger = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""The ``shared/`` folder beside the repository (real upstream clips and reference files);
tests that use it skip where it is absent."""
SHARED_VIDEOS = SHARED / "videos"
SHARED_CLIPS = sorted(SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []
"""The real clips there (upstream Cosmos-Transfer1 sample and control videos), by name."""
needs_shared_videos = pytest.mark.skipif(
    not SHARED_CLIPS,
    reason=f"{SHARED_VIDEOS} is absent: the real Cosmos-Transfer1 sample clips are read from shared/videos "
    "beside the repository, never stored in it",
)

MARKER_DIGITS = 4
"""Number of marker blocks, so up to ``total_levels ** 4`` distinct indices."""

DEFAULT_LEVELS = 8
"""Grey levels per digit; 8 levels are 32 apart, far beyond codec error at our quality."""

_CODECS = {
    # name asked -> (FFmpeg encoder, default container suffix)
    "h264": ("libx264", ".mp4"),
    "libx264": ("libx264", ".mp4"),
    "hevc": ("libx265", ".mp4"),
    "h265": ("libx265", ".mp4"),
    "libx265": ("libx265", ".mp4"),
    "mpeg4": ("mpeg4", ".mp4"),
    "vp9": ("libvpx-vp9", ".webm"),
    "libvpx-vp9": ("libvpx-vp9", ".webm"),
    "ffv1": ("ffv1", ".mkv"),
    "mjpeg": ("mjpeg", ".avi"),
}


def _level(digit: int, total_levels: int) -> int:
    """Grey value (0-255) of one marker digit, kept inside video range 16..235."""
    return int(round(16 + digit * (235 - 16) / (total_levels - 1)))


def _band_height(height: int) -> int:
    """Height of the marker band at the top of a frame."""
    return max(8, height // 4)


def draw_frame(width: int, height: int, index: int, total_levels: int = DEFAULT_LEVELS) -> np.ndarray:
    """Return an H x W x 3 uint8 RGB frame showing ``index`` as marker blocks over a texture."""
    if index < 0 or index >= total_levels**MARKER_DIGITS:
        raise ValueError(f"index {index} does not fit in {MARKER_DIGITS} base-{total_levels} digits")
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    # Texture: gradients plus diagonal stripes that move with the index.
    stripes = ((xx + yy + 3 * index) // 6) % 2
    img[..., 0] = (40 + 160 * xx / max(1, width - 1)).astype(np.uint8)
    img[..., 1] = (40 + 160 * yy / max(1, height - 1)).astype(np.uint8)
    img[..., 2] = (60 + 120 * stripes).astype(np.uint8)
    # Marker band: MARKER_DIGITS flat grey blocks, most significant digit on the left.
    band = _band_height(height)
    digits = [(index // total_levels**p) % total_levels for p in reversed(range(MARKER_DIGITS))]
    for k, digit in enumerate(digits):
        x0 = k * width // MARKER_DIGITS
        x1 = (k + 1) * width // MARKER_DIGITS
        img[:band, x0:x1, :] = _level(digit, total_levels)
    return img


def frame_marker(image: np.ndarray, total_levels: int = DEFAULT_LEVELS) -> int:
    """Recover the frame index from decoded RGB pixels drawn by :func:`draw_frame`.

    Reads the mean of the centre of each marker block (away from block edges, where
    codecs blur) and rounds it to the nearest level.
    """
    height, width = image.shape[:2]
    band = _band_height(height)
    step = (235 - 16) / (total_levels - 1)
    index = 0
    for k in range(MARKER_DIGITS):
        x0 = k * width // MARKER_DIGITS
        x1 = (k + 1) * width // MARKER_DIGITS
        mx, my = max(1, (x1 - x0) // 4), max(1, band // 4)
        patch = image[my : band - my, x0 + mx : x1 - mx].astype(np.float64)
        digit = int(round((patch.mean() - 16) / step))
        index = index * total_levels + min(max(digit, 0), total_levels - 1)
    return index


def make_image(path: str | os.PathLike, width: int, height: int, index: int = 0) -> Path:
    """Write one marked frame as a still image (format from the suffix: .png, .jpg, ...)."""
    path = Path(path)
    img = Image.fromarray(draw_frame(width, height, index))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=95)
    else:
        img.save(path)
    return path


def make_clip(
    path: str | os.PathLike,
    width: int = 320,
    height: int = 240,
    frames: int = 10,
    codec: str = "h264",
    fps: int = 24,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    bframes: int | None = None,
    rotation: int | None = None,
    vfr: bool = False,
    open_gop: bool = False,
) -> Path:
    """Encode a clip of ``frames`` marked frames with PyAV and return its path.

    ``rotation`` is the clockwise angle a player should turn the picture (the
    classic ``rotate`` tag of phone videos); it is stored as a display matrix.
    ``vfr`` gives frames irregular durations (1, 2 or 3 ticks of 1/(2*fps) s).
    ``gop``/``bframes`` set the keyframe interval and B-frame count where the
    encoder supports them; ``open_gop`` (x264/x265) lets B-frames shown before a
    keyframe reference the previous GOP. The container follows the suffix
    (.mp4, .mkv, .webm, .ts, .avi, ...).
    """
    path = Path(path)
    encoder, _suffix = _CODECS.get(codec, (codec, path.suffix))
    options: dict[str, str] = {}
    if encoder in ("libx264", "libx265"):
        params = ["scenecut=0"] if encoder == "libx264" else ["log-level=error", "scenecut=0"]
        if gop is not None:
            params += [f"keyint={gop}", f"min-keyint={gop}"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        if open_gop:
            params.append("open-gop=1")
        options[f"{encoder[3:]}-params"] = ":".join(params)
        options["crf"] = "18"
    elif encoder == "libvpx-vp9":
        options.update({"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"})
    elif encoder == "mpeg4":
        options["qscale"] = "3"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(encoder, rate=fps, options=options)
        stream.width = width
        stream.height = height
        if encoder == "mjpeg" and pix_fmt.startswith("yuv4"):
            pix_fmt = "yuvj" + pix_fmt[3:]  # FFmpeg's MJPEG encoder wants full-range formats
        stream.pix_fmt = pix_fmt
        if gop is not None and encoder not in ("libx264", "libx265"):
            stream.codec_context.gop_size = gop
        if bframes is not None and encoder not in ("libx264", "libx265"):
            stream.codec_context.max_b_frames = bframes
        time_base = Fraction(1, 2 * fps) if vfr else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        if rotation and hasattr(stream, "set_display_rotation"):  # PyAV 17 and newer
            # PyAV's degrees are counter-clockwise; ours are clockwise like the old tag.
            stream.set_display_rotation(-rotation)
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(draw_frame(width, height, i), format="rgb24")
            frame.pts = pts
            frame.time_base = time_base
            pts += (1 + (i * 7) % 3) if vfr else 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if rotation and not hasattr(stream, "set_display_rotation"):
        _write_mp4_rotation(path, rotation)
    logger.debug("wrote %s (%s %dx%d, %d frames)", path, encoder, width, height, frames)
    return path


def _write_mp4_rotation(path: Path, rotation: int) -> None:
    """Put the display matrix of a clockwise ``rotation`` into an MP4's track header (tkhd).

    What the MP4 muxer writes from ``set_display_rotation``, for PyAV versions without it.
    """
    if path.suffix.lower() not in (".mp4", ".mov"):
        raise ValueError(f"this PyAV can store a rotation in MP4/MOV only, not {path.name}")
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data.count(b"tkhd") == 1, "one video track expected"
    version = data[at + 4]
    matrix_at = at + 4 + 4 + (32 if version == 1 else 20) + 16  # past type, version/flags, times, layer...
    angle = math.radians(rotation)  # av_display_rotation_set(-rotation): counter-clockwise degrees
    cos, sin = (int(round(v * 65536)) for v in (math.cos(angle), math.sin(angle)))
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", cos, sin, 0, -sin, cos, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def remux(src: str | os.PathLike, dst: str | os.PathLike, format: str | None = None, **options: str) -> Path:
    """Copy the video stream of ``src`` into a new container without re-encoding.

    ``format`` forces a muxer (e.g. ``"h264"`` for a raw Annex B stream without
    timestamps); ``options`` go to the muxer.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), mode="w", format=format, options=options or None) as out:
        in_stream = inp.streams.video[0]
        if hasattr(out, "add_stream_from_template"):
            out_stream = out.add_stream_from_template(in_stream)
        else:  # older PyAV spells it this way
            out_stream = out.add_stream(template=in_stream)
        for packet in inp.demux(in_stream):
            if packet.dts is None:
                continue  # the flush packet at end of stream
            packet.stream = out_stream
            out.mux(packet)
    return dst


def make_faststart(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A copy of the MP4 ``src`` with its moov box first, as ``movflags=faststart`` writes it.

    Done on the bytes: PyAV 14's stream copy writes MP4 sample data that no decoder reads.
    """
    dst = Path(dst)
    dst.write_bytes(_moov_first(Path(src).read_bytes()))
    return dst


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The (type, start, end) of each MP4 box in ``data[start:end]``."""
    found = []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        if size == 1:
            size = struct.unpack(">Q", data[start + 8:start + 16])[0]
        elif size == 0:
            size = end - start
        found.append((kind, start, start + size))
        start += size
    return found


def _moov_first(data: bytes) -> bytes:
    """An MP4 file's bytes with its moov box before its mdat, chunk offsets moved to match."""
    top = _boxes(data, 0, len(data))
    kinds = [kind for kind, _, _ in top]
    if kinds.index(b"moov") < kinds.index(b"mdat"):
        return data
    _, moov_start, moov_end = top[kinds.index(b"moov")]
    moov = bytearray(data[moov_start:moov_end])
    shift = len(moov)

    def move_offsets(start: int, end: int) -> None:
        for kind, box_start, box_end in _boxes(moov, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                move_offsets(box_start + 8, box_end)
            elif kind in (b"stco", b"co64"):
                (count,) = struct.unpack(">I", moov[box_start + 12:box_start + 16])
                fmt, width = (">Q", 8) if kind == b"co64" else (">I", 4)
                for at in range(box_start + 16, box_start + 16 + count * width, width):
                    (offset,) = struct.unpack(fmt, moov[at:at + width])
                    moov[at:at + width] = struct.pack(fmt, offset + shift)

    move_offsets(8, len(moov))
    mdat_start = top[kinds.index(b"mdat")][1]
    rest = data[:moov_start] + data[moov_end:]
    return bytes(rest[:mdat_start] + moov + rest[mdat_start:])


def make_audio(path: str | os.PathLike, seconds: float = 0.5, rate: int = 8000) -> Path:
    """Write an audio-only file (silence; PCM in .wav, AAC in .m4a) with no video stream."""
    path = Path(path)
    codec, fmt = ("aac", "fltp") if path.suffix.lower() in (".m4a", ".mp4", ".aac") else ("pcm_s16le", "s16")
    samples = int(seconds * rate)
    dtype = np.float32 if fmt == "fltp" else np.int16
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype), format=fmt, layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
