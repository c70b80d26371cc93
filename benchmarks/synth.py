"""Synthetic benchmark clips with real detail, written with PyAV (H.264, yuv420p, CRF 18).

A scene is a canvas a little larger than the frame, made of
* 1/f ("pink") noise in colour: the power spectrum of natural images, detail at every scale
  down to the pixel;
* hard-edged shapes (rectangles, discs, thin lines) in saturated colours;
* text-like patterns: lines of random characters drawn with OpenCV's Hershey fonts at
  several sizes, from barely legible (about 1.2 % of the frame height) to headline size;
* fine periodic textures (stripes and a checkerboard of 2-5 px pitch: they alias if a
  downscale is not antialiased);
* a little per-frame sensor-like Gaussian noise.
Frames are crops of that canvas panning a few pixels per frame, so the encoder sees real
motion. Everything is seeded: the same size gives the same clip.
"""
from __future__ import annotations

import math
import os
import string
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

MARGIN = 64
"""Extra canvas pixels on each axis for panning."""


def _pink_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Three channels of 1/f noise (amplitude ~ 1/f), each scaled to roughly 0..1."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = (1.0 / f).astype(np.float32)
    amp[0, 0] = 0.0
    out = np.empty((height, width, 3), np.float32)
    for c in range(3):
        phase = rng.uniform(0, 2 * np.pi, size=amp.shape).astype(np.float32)
        spec = amp * np.exp(1j * phase)
        img = np.fft.irfft2(spec, s=(height, width)).astype(np.float32)
        img -= img.mean()
        img /= 3 * img.std() + 1e-9
        out[..., c] = img + 0.5
    return out


def make_canvas(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H+MARGIN x W+MARGIN x 3 uint8 RGB canvas with the detail described above."""
    rng = np.random.default_rng(seed * 7919 + width * 31 + height)
    H, W = height + MARGIN, width + MARGIN
    scale = min(width, height)
    noise = _pink_noise(rng, H, W)
    # natural images have strongly correlated channels: a shared luminance plus weaker chroma
    luma = noise[..., :1]
    tint = np.array([1.05, 0.95, 0.8], np.float32)  # a warm cast, like indoor footage
    base = (0.75 * luma + 0.25 * noise) * tint
    canvas = np.clip(base * 230 + 10, 0, 255).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas)
    # hard-edged shapes
    for _ in range(12):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        r = int(rng.uniform(0.03, 0.15) * scale)
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + 2 * r, y + r), colour, -1, lineType=cv2.LINE_8)
        elif kind == 1:
            cv2.circle(canvas, (x, y), r, colour, -1, lineType=cv2.LINE_AA)
        else:
            x2, y2 = int(rng.integers(0, W)), int(rng.integers(0, H))
            cv2.line(canvas, (x, y), (x2, y2), colour, max(1, scale // 360), lineType=cv2.LINE_AA)
    # fine periodic textures in two patches
    yy, xx = np.mgrid[0:H, 0:W]
    for pitch, (fx0, fy0) in ((2, (0.05, 0.6)), (3, (0.55, 0.1)), (5, (0.7, 0.65))):
        x0, y0 = int(fx0 * W), int(fy0 * H)
        w, h = int(0.18 * W), int(0.2 * H)
        region = (slice(y0, y0 + h), slice(x0, x0 + w))
        if pitch == 3:
            pattern = ((xx[region] // pitch + yy[region] // pitch) % 2) * 255
        else:
            pattern = ((xx[region] // pitch) % 2) * 255
        canvas[region] = np.repeat(pattern[..., None], 3, axis=2).astype(np.uint8)
    # text-like lines at several sizes
    letters = string.ascii_letters + string.digits + "  .,:-"
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)
    y = int(0.04 * H)
    while y < H:
        px = rng.uniform(0.012, 0.06) * scale  # text height in pixels
        font = fonts[int(rng.integers(0, len(fonts)))]
        font_scale = px / 22.0
        text = "".join(rng.choice(list(letters), size=int(rng.integers(20, 60))))
        colour = (255, 255, 255) if rng.random() < 0.5 else (10, 10, 10)
        x = int(rng.integers(0, max(1, W // 3)))
        cv2.putText(canvas, text, (x, y), font, font_scale, colour, max(1, int(px / 12)), cv2.LINE_AA)
        y += int(px * rng.uniform(1.6, 4.0))
    return canvas


def frames_from(canvas: np.ndarray, width: int, height: int, count: int, seed: int = 0):
    """Yield ``count`` frames: a pan across the canvas plus light per-frame noise."""
    rng = np.random.default_rng(seed + 1)
    H, W = canvas.shape[:2]
    span_x, span_y = W - width, H - height
    for i in range(count):
        # a smooth back-and-forth pan (Lissajous path) so any number of frames stays inside
        t = i / 24.0
        x = int(round(span_x * (0.5 + 0.5 * math.sin(0.9 * t))))
        y = int(round(span_y * (0.5 + 0.5 * math.sin(0.6 * t + 1.0))))
        frame = canvas[y : y + height, x : x + width]
        noise = rng.normal(0.0, 2.0, size=(height, width, 1)).astype(np.float32)
        yield np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def write_clip(path: str | os.PathLike, width: int, height: int, frames: int = 8, fps: int = 24,
               crf: int = 18, seed: int = 0) -> Path:
    """Encode a synthetic clip with libx264 (preset medium, yuv420p) and return its path."""
    path = Path(path)
    canvas = make_canvas(width, height, seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for image in frames_from(canvas, width, height, frames, seed):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
