"""Switches and small helpers of the stand-in only (no upstream counterpart).

See tests/standin/README.md for the variables. Everything is read at call time, so a test
can flip a variable with ``monkeypatch.setenv`` after the modules were imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PATCHED_ENV = "STANDIN_PATCHED"
MAX_MODEL_LEN_ENV = "STANDIN_MAX_MODEL_LEN"
IMAGE_LIMIT_ENV = "STANDIN_IMAGE_LIMIT"
TEMPDIR_ENV = "STANDIN_TEMPDIR"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def patched() -> bool:
    """True when the stand-in should behave as upstream with patches/cosmos-transfer1.patch applied."""
    return os.environ.get(PATCHED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def int_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def read_frames_rgb(path: str, max_frames: int | None = None) -> np.ndarray:
    """First ``max_frames`` frames (all if None) of a video, or a still image, as T x H x W x 3 RGB."""
    import cv2

    if str(path).lower().endswith(IMAGE_SUFFIXES):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"Failed to load image from {path}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None]
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"Failed to load video frames from {path}")
    return np.stack(frames)


def write_video_rgb(path: str, frames: np.ndarray, fps: int = 24) -> str:
    """Write T x H x W x 3 uint8 RGB frames as H.264 MP4 at their own size (PyAV)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1:3]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return str(path)
