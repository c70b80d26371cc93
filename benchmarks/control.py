"""Synthetic clips like Cosmos-Transfer1's control inputs, one generator per kind.

The upsampler reads control videos, whose content is nothing like camera footage:

* ``segmentation``: flat palette colours, hard (not antialiased) region edges, thin
  plant-like strokes, neighbouring classes in close shades;
* ``hdmap``: thin antialiased lines on black (lane lines, road edges, wireframe boxes,
  poles) with a few filled shapes (road surface, signs);
* ``lidar``: 1-2 px points on black along projected scan rings, coloured by distance;
* ``depth``: grey smooth gradients (a ground plane, rounded objects) with hard silhouettes;
* ``canny``: 1-px white edges on black (OpenCV's Canny of a camera-like scene);
* ``camera``: the camera-like scene of :mod:`synth` (1/f noise, text, fine textures).

Each is a canvas a little larger than the frame, panned a few pixels per frame (no sensor
noise except on ``camera``), encoded like :mod:`synth` (libx264 CRF 18, yuv420p). Every
number comes from a seeded generator: the same kind and size give the same clip.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .synth import MARGIN, frames_from, make_canvas

KINDS = ("segmentation", "hdmap", "lidar", "depth", "canny", "camera")
"""The control-input kinds the benchmark generates, in report order."""

Canvas = np.ndarray
Rng = np.random.Generator


def _points(rng: Rng, n: int, cx: float, cy: float, r: float) -> np.ndarray:
    """A random star-shaped polygon around (cx, cy): a blob-like region outline."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.5, 1.0, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)


def segmentation(rng: Rng, width: int, height: int) -> Canvas:
    """Flat class colours with hard edges: a background, large regions, objects, thin strokes."""
    palette = rng.integers(0, 256, (24, 3))
    palette[:6] = [[120, 0, 0], [100, 0, 0], [150, 0, 0], [80, 0, 0], [130, 10, 10], [160, 0, 0]]  # close shades
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = palette[0]
    scale = min(width, height)
    colour: Callable[[], tuple[int, ...]] = lambda: tuple(int(v) for v in palette[int(rng.integers(0, 24))])  # noqa: E731
    # floor / wall split and large regions
    horizon = int(height * rng.uniform(0.3, 0.5))
    cv2.fillPoly(canvas, [np.array([[0, horizon], [width, horizon - int(0.1 * height)], [width, height],
                                    [0, height]], np.int32)], colour(), lineType=cv2.LINE_8)
    for _ in range(18):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.2) * scale
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.fillPoly(canvas, [_points(rng, int(rng.integers(5, 12)), cx, cy, r)], colour(), cv2.LINE_8)
        elif kind == 1:
            cv2.ellipse(canvas, (int(cx), int(cy)), (int(r), int(r * rng.uniform(0.4, 1.0))),
                        float(rng.uniform(0, 180)), 0, 360, colour(), -1, cv2.LINE_8)
        else:
            box = cv2.boxPoints(((cx, cy), (2 * r, r), float(rng.uniform(0, 90)))).astype(np.int32)
            cv2.fillPoly(canvas, [box], colour(), cv2.LINE_8)
    for _ in range(4):  # plant-like thin strokes from one base
        bx, by = rng.uniform(0, width), rng.uniform(0, height)
        c = colour()
        for _ in range(int(rng.integers(8, 20))):
            a = rng.uniform(-2.6, -0.5)
            length = rng.uniform(0.05, 0.15) * scale
            end = (int(bx + length * math.cos(a)), int(by + length * math.sin(a)))
            cv2.line(canvas, (int(bx), int(by)), end, c, max(1, scale // 400), cv2.LINE_8)
    return canvas


def hdmap(rng: Rng, width: int, height: int) -> Canvas:
    """A road map render: road surface, lane lines, road edges, wireframe boxes, poles, signs on black."""
    canvas = np.zeros((height, width, 3), np.uint8)
    scale = min(width, height)
    thick = max(1, round(scale / 350))
    horizon = int(0.55 * height)
    vx = width * rng.uniform(0.4, 0.6)
    road = np.array([[0, int(0.75 * height)], [int(vx - 0.3 * width), horizon + 10], [int(vx + 0.3 * width),
                    horizon + 10], [width, int(0.7 * height)], [width, int(0.85 * height)], [0, int(0.9 * height)]],
                    np.int32)
    cv2.fillPoly(canvas, [road], (200, 120, 50), cv2.LINE_AA)
    cv2.polylines(canvas, [road], True, (220, 30, 30), thick, cv2.LINE_AA)
    for k in range(-6, 7):  # lane lines converging to the vanishing point
        x_bottom = vx + k * 0.22 * width
        cv2.line(canvas, (int(vx + k * 0.02 * width), horizon + 12), (int(x_bottom), height), (110, 170, 240),
                 thick, cv2.LINE_AA)
    for _ in range(10):  # wireframe boxes (vehicles)
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        s = (y - horizon + 20) / height * rng.uniform(0.15, 0.35) * width
        d = 0.35 * s
        front = np.array([[x, y], [x + s, y], [x + s, y - 0.6 * s], [x, y - 0.6 * s]])
        back = front + [d, -0.4 * d]
        for quad in (front, back):
            cv2.polylines(canvas, [quad.astype(np.int32)], True, (230, 20, 20), thick, cv2.LINE_AA)
        for a, b in zip(front, back):
            cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), (230, 20, 20), thick, cv2.LINE_AA)
    for _ in range(14):  # poles and signs
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0.2 * height, horizon + 0.1 * height))
        top = int(y - rng.uniform(0.1, 0.4) * height)
        cv2.line(canvas, (x, y), (x, top), (70, 40, 170), thick + 1, cv2.LINE_AA)
        sign = _points(rng, 4, x, top, rng.uniform(0.01, 0.03) * scale)
        cv2.fillPoly(canvas, [sign], (230, 140, 140) if rng.random() < 0.6 else (100, 160, 130), cv2.LINE_AA)
    return canvas


def lidar(rng: Rng, width: int, height: int) -> Canvas:
    """Projected LiDAR returns: scan rings on the ground and points on objects, coloured by distance."""
    canvas = np.zeros((height, width, 3), np.uint8)
    horizon, focal = 0.45 * height, 0.8 * width
    radius = max(1, round(min(width, height) / 700))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    dist: list[np.ndarray] = []
    for ring in range(40):  # ground rings: distance grows with the ring
        d = 3.0 * 1.08 ** ring
        angles = rng.uniform(-1.0, 1.0, int(2500 / (1 + ring * 0.05)))
        xs.append(width / 2 + focal * np.tan(angles) * rng.uniform(0.98, 1.02, angles.size))
        ys.append(horizon + focal * 1.7 / d + rng.normal(0, 0.5, angles.size))
        dist.append(np.full(angles.size, d))
    for _ in range(25):  # objects: vertical point clusters
        far = rng.uniform(4, 60)
        cx = width / 2 + focal * rng.uniform(-1.2, 1.2)
        w, h = focal * 2.0 / far, focal * rng.uniform(1.2, 3.0) / far
        n = int(rng.integers(100, 800))
        xs.append(cx + rng.uniform(0, w, n))
        ys.append(horizon + focal * 1.7 / far - rng.uniform(0, h, n))
        dist.append(far + rng.normal(0, 0.3, n))
    x, y, r = (np.concatenate(v) for v in (xs, ys, dist))
    shade = np.clip(255 * (1 - np.log(r / 3) / np.log(80 / 3)), 0, 255).astype(np.uint8)
    colours = cv2.applyColorMap(shade.reshape(-1, 1), cv2.COLORMAP_JET).reshape(-1, 3)[:, ::-1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    for px, py, c in zip(x[inside].astype(int), y[inside].astype(int), colours[inside]):
        cv2.circle(canvas, (int(px), int(py)), radius, tuple(int(v) for v in c), -1, cv2.LINE_8)
    return canvas


def depth(rng: Rng, width: int, height: int) -> Canvas:
    """A grey depth map: a dark far wall, a ground gradient, rounded objects with hard silhouettes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.35, 0.55) * height
    below = np.clip((yy - horizon) / (height - horizon), 0, 1)
    value = np.where(yy > horizon, 30 + 120 * below ** 1.5, 20 + 10 * yy / height)
    value = value + 8 * np.sin(xx / width * 3 + rng.uniform(0, 6))
    for _ in range(7):  # objects: ellipses with a rounded (paraboloid) surface
        cx, cy = rng.uniform(0, width), rng.uniform(0.2 * height, height)
        ax, ay = rng.uniform(0.05, 0.2) * width, rng.uniform(0.1, 0.4) * height
        near = rng.uniform(120, 235)
        q = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
        surface = near - 40 * q
        value = np.where(q < 1, np.maximum(value, surface), value)
    value = cv2.GaussianBlur(value.astype(np.float32), (0, 0), 0.6)
    grey = np.clip(np.rint(value), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def canny(rng: Rng, width: int, height: int) -> Canvas:
    """OpenCV Canny edges (1-px white lines on black) of a camera-like scene, as upstream's edge control."""
    scene = make_canvas(width - MARGIN, height - MARGIN, seed=int(rng.integers(0, 1000)))
    sigma = 2.0
    blurred = cv2.GaussianBlur(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), (0, 0), sigma)
    edges = cv2.Canny(blurred, 80, 170)
    return np.repeat(edges[..., None], 3, axis=2)


_MAKERS: dict[str, Callable[[Rng, int, int], Canvas]] = {
    "segmentation": segmentation, "hdmap": hdmap, "lidar": lidar, "depth": depth, "canny": canny,
}


def kind_canvas(kind: str, width: int, height: int, seed: int = 0) -> Canvas:
    """The (height + MARGIN) x (width + MARGIN) x 3 uint8 RGB canvas of ``kind`` at this frame size."""
    if kind == "camera":
        return make_canvas(width, height, seed)
    rng = np.random.default_rng([seed, KINDS.index(kind), width, height])
    return np.ascontiguousarray(_MAKERS[kind](rng, width + MARGIN, height + MARGIN))


def kind_frames(kind: str, width: int, height: int, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` frames of ``kind``: a pan across its canvas (camera: with sensor-like noise)."""
    canvas = kind_canvas(kind, width, height, seed)
    if kind == "camera":
        yield from frames_from(canvas, width, height, count, seed)
        return
    span_x, span_y = canvas.shape[1] - width, canvas.shape[0] - height
    for i in range(count):
        t = i / 24.0
        x = int(round(span_x * (0.5 + 0.5 * math.sin(0.9 * t))))
        y = int(round(span_y * (0.5 + 0.5 * math.sin(0.6 * t + 1.0))))
        yield np.ascontiguousarray(canvas[y:y + height, x:x + width])


def write_kind_clip(path: Path, kind: str, width: int, height: int, frames: int = 8, fps: int = 24,
                    crf: int = 18, seed: int = 0) -> Path:
    """Encode a clip of ``kind`` with libx264 (preset medium, yuv420p, CRF ``crf``)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for image in kind_frames(kind, width, height, frames, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
