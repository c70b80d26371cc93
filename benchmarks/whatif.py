"""Per-frame cost of other resizers and PNG settings on one frame: a what-if that sizes the
plugin's choices (not the package's path except where marked)."""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from cosmos_upsample_fix.core.policies import plan_sizes
from cosmos_upsample_fix.media import images
from cosmos_upsample_fix.media.frames import read_frames

from . import timing
from .clips import Clip
from .config import FIT, PROMPT, Context

PNG_LEVELS = (0, 1, 6)


@dataclass(frozen=True)
class WhatIfRow:
    stage: str
    how: str
    size: tuple[int, int]
    ms: float
    kb: float | None = None


def measure(clip: Clip, ctx: Context) -> list[WhatIfRow]:
    """Resizers and PNG encoders on the first frame of ``clip`` at fit's target size."""
    _, frames = read_frames(clip.path, 1, "first")
    image = frames[0].image
    size = (image.shape[1], image.shape[0])
    target = plan_sizes([size] * 2, ctx.model.text_tokens(PROMPT), ctx.model.grid, ctx.limits, FIT.policy)[0]
    small = images.resize(image, target)
    runs = max(1, min(9, ctx.runs))

    def median_ms(fn: Callable[[], object]) -> float:
        return timing.median_ms(fn, runs)

    def pil_png(img: np.ndarray, level: int) -> int:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=level)
        return buf.tell()

    def cv2_png(img: np.ndarray) -> int:
        return len(cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1])

    rows = [
        WhatIfRow("resize", "`images.resize` — the package", target, median_ms(lambda: images.resize(image, target))),
        WhatIfRow("resize", "Pillow LANCZOS", target,
                  median_ms(lambda: Image.fromarray(image).resize(target, Image.Resampling.LANCZOS))),
        WhatIfRow("resize", "OpenCV INTER_AREA", target,
                  median_ms(lambda: cv2.resize(image, target, interpolation=cv2.INTER_AREA))),
        WhatIfRow("resize", "OpenCV INTER_CUBIC (the model's, no antialiasing)", target,
                  median_ms(lambda: cv2.resize(image, target, interpolation=cv2.INTER_CUBIC))),
    ]
    for level in PNG_LEVELS:
        def png(level: int = level) -> int:
            return len(images.encode_png(small, level=level))

        rows.append(WhatIfRow("png", f"`images.encode_png(level={level})` — the package", target, median_ms(png),
                              png() / 1024))
    rows += [
        WhatIfRow("png", "Pillow compress_level 1", target, median_ms(lambda: pil_png(small, 1)),
                  pil_png(small, 1) / 1024),
        WhatIfRow("png", "OpenCV `imencode` defaults", target, median_ms(lambda: cv2_png(small)),
                  cv2_png(small) / 1024),
        WhatIfRow("png", "OpenCV `imencode` defaults, full frame — what the baseline does", size,
                  median_ms(lambda: cv2_png(image)), cv2_png(image) / 1024),
    ]
    return rows
