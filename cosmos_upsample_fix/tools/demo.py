"""The demo: a 1280x704 clip upstream cannot send, the frames that fit, and mistral_common's check.

The check is the authoritative one: the written PNGs, sent as upstream sends them (data URLs),
counted by mistral_common, must equal the plan.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import UpsampleFixError
from cosmos_upsample_fix.media.mp4 import write_video
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model


@dataclass(frozen=True)
class DemoRun:
    """What the demo made: the clip, the plan, the frames written and the tokens they count to."""

    clip: Path
    planned: PlannedFrames
    files: list[Path]
    checked: int


def demo_frames(width: int = 1280, height: int = 704, count: int = 24) -> list[np.ndarray]:
    """A synthetic clip with fine detail: moving gradient, stripes of several pitches, a disc."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(count):
        phase = t / max(count, 1)
        red = 128 + 100 * np.sin(2 * math.pi * (x / width + phase))
        green = np.where((x // (4 + (y // 88))) % 2 == 0, 40.0, 215.0)  # stripes 4..11 px wide
        cx, cy = width * (0.2 + 0.6 * phase), height / 2
        disc = ((x - cx) ** 2 + (y - cy) ** 2) < (height / 5) ** 2
        blue = np.where(disc, 250.0, 255 * y / height)
        out.append(np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8))
    return out


def run_demo(out: Path, prompt: str, options: Options, one_frame: str = "frames=1") -> DemoRun:
    """Write the demo clip and its planned frames into ``out`` and check their count through mistral_common."""
    clip = write_video(demo_frames(), out / "demo_1280x704.mp4")
    model = load_model(options.checkpoint_dir)
    planned = plan_frames(str(clip), prompt, options, model=model, one_frame=one_frame)
    files = planned.write(out)
    urls = ["data:image/jpeg;base64," + base64.b64encode(f.read_bytes()).decode() for f in files]
    checked = len(model.encode(prompt, urls))
    if checked != planned.plan.planned.prompt_tokens:
        raise UpsampleFixError(f"token check failed: planned {planned.plan.planned.prompt_tokens}, got {checked}")
    return DemoRun(clip, planned, list(files), checked)
