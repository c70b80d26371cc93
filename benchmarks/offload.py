"""A batch of prompts inside Cosmos's upsampler: an in-process engine with offload (built once
per prompt) against an OpenAI-compatible endpoint (never built).

Runs upstream's ``PixtralPromptUpsampler`` call path from the test stand-ins
(``tests/standin``: a ``vllm.LLM`` that tokenizes and checks like vLLM 0.9.2 and counts its
constructions) and the stand-in ``vllm serve`` of ``tests/openai_server.py`` on 127.0.0.1.
The stand-in engine builds in milliseconds where the real 12B one takes minutes: the figure
that carries over is the number of builds, not the time.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cosmos_upsample_fix
from cosmos_upsample_fix.planning.tokenizer import bundled_tokenizer_path

from .clips import REPO
from .config import Context

STANDIN = REPO / "tests" / "standin"
SERVER_FILE = REPO / "tests" / "openai_server.py"
STANDIN_PACKAGES = ("vllm", "cosmos_transfer1")
UPSAMPLER_DIR = Path("nvidia") / "Cosmos-UpsamplePrompt1-12B-Transfer"
PIXTRAL_VISION = {"image_size": 1024, "patch_size": 16, "num_channels": 3, "hidden_size": 1024,
                  "image_token_id": 10, "image_break_token_id": 12, "image_end_token_id": 13}
PROMPTS = [
    "Robotic arms hand over a coffee cup to a woman in a modern office.",
    "A delivery robot crosses a rainy street at night.",
    "Two robot arms sort colourful parts on a conveyor belt.",
    "A car drives through a city at dusk with neon signs.",
    "A drone flies low over a forest road in the morning fog.",
    "A humanoid robot opens a fridge in a bright kitchen.",
    "Traffic waits at a crossing while pedestrians pass.",
    "",  # upstream's empty-prompt default
]


@dataclass(frozen=True)
class BatchRow:
    mode: str
    prompts: int
    engine_builds: int
    server_requests: int
    answers: int
    seconds: float


@dataclass
class OffloadResult:
    rows: list[BatchRow] = field(default_factory=list)
    skipped: str = ""
    problems: list[str] = field(default_factory=list)


def make_checkpoint(folder: Path) -> Path:
    """A ``--checkpoint_dir`` with the upsampler's tekken.json and a Pixtral params.json (no weights)."""
    model_dir = folder / UPSAMPLER_DIR
    model_dir.mkdir(parents=True)
    shutil.copyfile(bundled_tokenizer_path(), model_dir / "tekken.json")
    (model_dir / "params.json").write_text(json.dumps({"dim": 5120, "vision_encoder": PIXTRAL_VISION}))
    return folder


def _purge() -> None:
    for name in list(sys.modules):
        if any(name == pkg or name.startswith(pkg + ".") for pkg in STANDIN_PACKAGES):
            del sys.modules[name]


@contextmanager
def standins() -> Iterator[ModuleType]:
    """The stand-in vllm and cosmos_transfer1 importable (first on sys.path); the server module."""
    saved = {n: m for n, m in sys.modules.items() if any(n == p or n.startswith(p + ".") for p in STANDIN_PACKAGES)}
    _purge()
    sys.path.insert(0, str(STANDIN))
    spec = importlib.util.spec_from_file_location("_bench_openai_server", SERVER_FILE)
    assert spec is not None and spec.loader is not None
    server_module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = server_module
    try:
        spec.loader.exec_module(server_module)
        yield server_module
    finally:
        cosmos_upsample_fix.uninstall()
        sys.modules.pop(spec.name, None)
        while str(STANDIN) in sys.path:
            sys.path.remove(str(STANDIN))
        _purge()
        sys.modules.update(saved)


def _missing() -> str:
    """Why the endpoint row cannot run here, or "" when it can."""
    if importlib.util.find_spec("cosmos_upsample_fix.remote.endpoint") is None or not SERVER_FILE.is_file():
        return "endpoint module absent"
    if importlib.util.find_spec("openai") is None:
        return "the openai client is not installed (the bench extra has it)"
    if not STANDIN.is_dir():
        return "tests/standin absent"
    return ""


def _batch(mode: str, video: Path, checkpoint: Path, offload: bool, batch: int, server: Any = None) -> BatchRow:
    upsampler_module = importlib.import_module("cosmos_transfer1.auxiliary.upsampler.model.upsampler")
    LLM = importlib.import_module("vllm").LLM  # noqa: N806

    LLM.reset()
    before = len(server.chats()) if server is not None else 0
    start = time.perf_counter()
    upsampler = upsampler_module.PixtralPromptUpsampler(str(checkpoint), offload_prompt_upsampler=offload)
    answers = [upsampler._prompt_upsample_with_offload(prompt=PROMPTS[i % len(PROMPTS)], video_path=str(video))
               for i in range(batch)]
    seconds = time.perf_counter() - start
    requests = len(server.chats()) - before if server is not None else 0
    return BatchRow(mode, batch, LLM.instances, requests, sum(bool(a) for a in answers), seconds)


def measure(video: Path, ctx: Context, batch: int = 8) -> OffloadResult:
    """``batch`` prompts on ``video``: offload in-process, then through the endpoint (offload on and off)."""
    result = OffloadResult()
    result.skipped = _missing()
    if result.skipped:
        return result
    checkpoint = make_checkpoint(ctx.tmp / "checkpoint")
    with standins() as server_module:
        cosmos_upsample_fix.install(policy="fit", checkpoint_dir=str(checkpoint))
        result.rows.append(_batch("in-process engine, --offload_prompt_upsampler", video, checkpoint, True, batch))
        with server_module.StandInServer(tokenizer_file=checkpoint / UPSAMPLER_DIR / "tekken.json") as server:
            install: Any = cosmos_upsample_fix.install
            install(policy="fit", checkpoint_dir=str(checkpoint), endpoint=server.url)
            for offload in (True, False):
                mode = f"endpoint, offload {'on' if offload else 'off'}"
                result.rows.append(_batch(mode, video, checkpoint, offload, batch, server))
    for row in result.rows:
        if row.answers != row.prompts:
            result.problems.append(f"offload batch ({row.mode}): {row.answers} answers for {row.prompts} prompts")
        if row.mode.startswith("endpoint") and (row.engine_builds or row.server_requests != row.prompts):
            result.problems.append(f"offload batch ({row.mode}): {row.engine_builds} engine builds and "
                                   f"{row.server_requests} server requests for {row.prompts} prompts")
    ctx.log("  offload batch: " + ", ".join(f"{r.mode}: {r.engine_builds} builds" for r in result.rows))
    return result
