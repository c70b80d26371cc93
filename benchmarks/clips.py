"""The inputs: real Cosmos sample clips, generated clips with real detail, a long clip, stills."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from . import control, synth
from .config import Log

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = Path(os.environ.get("COSMOS_BENCH_VIDEOS", REPO.parent / "shared" / "videos"))

# (width, height, aspect label) of the generated short clips
FULL_SIZES = [
    (854, 480, "16:9"), (1280, 720, "16:9"), (1920, 1080, "16:9"), (3840, 2160, "16:9"),
    (640, 480, "4:3"), (1440, 1080, "4:3"),
    (1280, 800, "16:10"), (1920, 1200, "16:10"),
    (720, 1280, "9:16"), (1080, 1920, "9:16"),
    (720, 720, "1:1"), (1080, 1080, "1:1"), (2160, 2160, "1:1"),
    (2560, 1080, "21:9"), (3440, 1440, "21:9"),
]
FULL_STILLS = [(3840, 2160, "16:9")]  # one-frame inputs over the model's 1024-px cap
QUICK_SIZES = [
    (640, 360, "16:9"), (1280, 720, "16:9"), (640, 480, "4:3"), (360, 640, "9:16"), (480, 480, "1:1"),
    (840, 360, "21:9"),
]
QUICK_STILLS = [(2560, 1080, "21:9")]
# control-like clips (see :mod:`control`): every kind but camera (the clips above are camera-like) at each size
CONTROL_SIZES = [(1280, 720, "16:9"), (1920, 1080, "16:9"), (3840, 2160, "16:9"), (720, 1280, "9:16")]
QUICK_CONTROL_SIZES = [(1280, 720, "16:9")]
SHORT_FRAMES = 8
LONG_FULL = (1280, 704, 600)
LONG_QUICK = (320, 176, 600)


@dataclass(frozen=True)
class Clip:
    """One input: a video file (or a still image) and what it is."""

    name: str
    path: Path
    width: int
    height: int
    frames: int
    group: str  # "sample" (real clips), "generated", "still", "long"
    aspect: str = ""
    kind: str = "camera"  # what the frames show: one of control.KINDS

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def p720(self) -> bool:
        """720p class: the short side is 700..800 px (1280x704, 1280x720, 960x704, 1280x800, 720x1280, 720x720)."""
        return self.group != "still" and 700 <= min(self.width, self.height) <= 800

    @property
    def video(self) -> bool:
        return self.group != "still"


@dataclass
class ClipSet:
    """The short inputs of a run, the long clip for frame selection, and notes for the report."""

    clips: list[Clip]
    long: Clip | None
    notes: list[str]


def aspect_label(width: int, height: int) -> str:
    ratio = width / height
    for label, value in (("16:9", 16 / 9), ("4:3", 4 / 3), ("16:10", 1.6), ("9:16", 9 / 16), ("1:1", 1.0),
                         ("21:9", 64 / 27), ("3:4", 0.75)):
        if abs(ratio / value - 1) < 0.03:
            return label
    return f"{ratio:.3f}:1"


SAMPLE_KINDS = (("edge", "canny"), ("segmentation", "segmentation"), ("hdmap", "hdmap"), ("depth", "depth"),
                ("lidar", "lidar"))
"""A sample clip's kind by a word in its name (Cosmos's control names); camera footage otherwise."""


def kind_of(name: str) -> str:
    return next((kind for word, kind in SAMPLE_KINDS if word in name.lower()), "camera")


def probe_clip(path: Path, group: str, aspect: str = "") -> Clip:
    """A clip's size and frame count as PyAV sees them (counting packets if the header has none)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        width, height = stream.codec_context.width, stream.codec_context.height
    aspect = aspect or aspect_label(width, height)
    return Clip(path.name, path, width, height, frames, group, aspect, kind_of(path.name))



def generated_clip(folder: Path, width: int, height: int, frames: int, aspect: str = "") -> Clip:
    """A synthetic H.264 clip (see :mod:`synth`) in ``folder``."""
    path = synth.write_clip(folder / f"gen_{width}x{height}.mp4", width, height, frames)
    return Clip(path.name, path, width, height, frames, "generated", aspect or aspect_label(width, height))


def control_clip(folder: Path, kind: str, width: int, height: int, frames: int, aspect: str = "") -> Clip:
    """A control-like H.264 clip of ``kind`` (see :mod:`control`) in ``folder``."""
    path = control.write_kind_clip(folder / f"{kind}_{width}x{height}.mp4", kind, width, height, frames)
    return Clip(path.name, path, width, height, frames, "generated", aspect or aspect_label(width, height), kind)


def generated_still(folder: Path, width: int, height: int, aspect: str = "") -> Clip:
    """A synthetic PNG still (one frame) in ``folder``."""
    image = next(synth.frames_from(synth.make_canvas(width, height), width, height, 1))
    path = folder / f"still_{width}x{height}.png"
    Image.fromarray(image).save(path)
    return Clip(path.name, path, width, height, 1, "still", aspect or aspect_label(width, height))


def long_clip(folder: Path, width: int, height: int, frames: int) -> Clip:
    """The long clip for frame selection (libx264 defaults: a keyframe every 250 frames)."""
    path = synth.write_clip(folder / f"long_{width}x{height}_{frames}f.mp4", width, height, frames)
    return probe_clip(path, "long")


def make_clips(folder: Path, quick: bool, log: Log) -> ClipSet:
    """The full or quick input set; generated files go into ``folder``."""
    notes: list[str] = []
    clips: list[Clip] = []
    if quick:
        notes.append("--quick: generated clips only (the sample clips are not used).")
    elif SHARED_VIDEOS.is_dir() and any(SHARED_VIDEOS.glob("*.mp4")):
        clips += [probe_clip(path, "sample") for path in sorted(SHARED_VIDEOS.glob("*.mp4"))]
    else:
        notes.append(f"Sample clips skipped: {SHARED_VIDEOS} not found.")
    for w, h, aspect in QUICK_SIZES if quick else FULL_SIZES:
        clips.append(generated_clip(folder, w, h, SHORT_FRAMES, aspect))
    for kind in control.KINDS[:-1]:
        for w, h, aspect in QUICK_CONTROL_SIZES if quick else CONTROL_SIZES:
            clips.append(control_clip(folder, kind, w, h, SHORT_FRAMES, aspect))
    for w, h, aspect in QUICK_STILLS if quick else FULL_STILLS:
        clips.append(generated_still(folder, w, h, aspect))
    w, h, n = LONG_QUICK if quick else LONG_FULL
    long = long_clip(folder, w, h, n)
    log(f"generated {sum(c.group != 'sample' for c in clips) + 1} inputs")
    return ClipSet(clips, long, notes)
