"""What every measurement shares: the prompt, upstream's limits, the policy, the run context."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
LIMITS: Limits = UPSTREAM_LIMITS  # max_model_len 4096, 300 reserved, 2 images
ROOMY = Limits(max_model_len=16384)
"""A server with room for every clip's full request (the pre-shrink table): 2 frames up to 1024x1024 fit."""
FIT = Options.build(policy="fit", select="first")
UNIFORM = Options.build(policy="fit", select="uniform")

Log = Callable[[str], None]


STILL = Options.build(policy="fit", frames=1)


def options_for(select: str) -> Options:
    """``fit`` with the given frame selection."""
    return FIT if select == "first" else Options.build(policy="fit", select=select)


@dataclass
class Context:
    """One run's shared state: the tokenizer, a private temp folder, timed runs, the log."""

    model: UpsamplerModel
    tmp: Path
    runs: int
    log: Log = field(default=lambda message: None)
    limits: Limits = LIMITS
    started: float = field(default_factory=time.perf_counter)
