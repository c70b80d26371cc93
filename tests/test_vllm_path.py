"""The planned request against vLLM's own code (runs only where the real vLLM is installed).

For each clip: the package's plan (``plan_frames`` + ``PlannedFrames.write``) and upstream's
full-size frames (OpenCV, as ``extract_video_frames`` writes them) each go into upstream's
message and through vLLM's ``LLM.chat`` (``apply_mistral_chat_template``), its V1
``Processor.process_inputs`` with the ``max_model_len`` check, and V0's check. The planned
request must reach the engine core with exactly the planned number of tokens and one
placeholder per frame of the planned size; upstream's must be refused with vLLM's own
message naming the package's count, or pass with that count when it fits. The live limits
are read through the runtime's own attribute paths from vLLM's real ``ModelConfig``.
See tests/vllm_support.py for what stands in for the GPU parts.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

processor_module = pytest.importorskip("vllm.v1.engine.processor", reason="needs the real vLLM (not in CI)")
import vllm  # noqa: E402

if "standin" in getattr(vllm, "__version__", "standin"):
    pytest.skip("the test stand-in, not vLLM", allow_module_level=True)

from clips import SHARED_VIDEOS as SHARED  # noqa: E402
from clips import needs_shared_videos  # noqa: E402
from vllm_support import build_engine, model_folder, upstream_frames, upstream_message  # noqa: E402

from cosmos_upsample_fix.core.budget import Limits  # noqa: E402
from cosmos_upsample_fix.core.options import Options  # noqa: E402
from cosmos_upsample_fix.cosmos import runtime  # noqa: E402
from cosmos_upsample_fix.planning.planner import plan_frames  # noqa: E402
from cosmos_upsample_fix.remote.endpoint import upsampler_message  # noqa: E402

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
LONG_PROMPT = " ".join(["A robot arm places a red cup on a wooden table beside a window."] * 40)
REFUSAL = re.compile(r"^The decoder prompt \(length (\d+)\) is longer than the maximum model length of (\d+)\.")

GENERATED = [  # (width, height, frames, prompt)
    (1280, 704, 3, PROMPT),
    (640, 480, 3, PROMPT),
    (960, 704, 2, ""),
    (1920, 1080, 2, PROMPT),
    (882, 1568, 2, PROMPT),
    (1280, 704, 1, PROMPT),  # a one-frame clip: one frame, as upstream sends
    (1280, 720, 2, LONG_PROMPT),
]
REAL = sorted(p.name for p in SHARED.glob("*.mp4")) if SHARED.is_dir() else []


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return build_engine(model_folder(tmp_path_factory.mktemp("pixtral") / "Cosmos-UpsamplePrompt1-12B-Transfer"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from clips import make_clip

    folder = tmp_path_factory.mktemp("clips")
    return {(w, h, n): make_clip(folder / f"clip_{w}x{h}_{n}.mp4", w, h, frames=n) for w, h, n, _ in GENERATED}


def check(engine, source: Path, prompt: str, tmp_path: Path) -> dict:
    """The planned and upstream's requests through vLLM; returns the figures compared."""
    planned = plan_frames(source, prompt, Options())
    plan = planned.plan
    (tmp_path / "planned").mkdir()
    files = planned.write(tmp_path / "planned")
    message = upstream_message(files, prompt)
    assert message == upsampler_message(files, prompt)  # the endpoint sends upstream's message too

    # the plan: reaches the engine core with exactly the planned length, one placeholder per frame
    template = engine.template_tokens(message)
    request = engine.chat(message)
    assert len(template) == len(request.prompt_token_ids) == plan.planned.prompt_tokens
    assert [r.length for r in request.mm_placeholders] == list(plan.planned.tokens_per_frame)
    assert request.sampling_params.max_tokens == 300
    assert plan.planned.prompt_tokens + 300 <= engine.model_config.max_model_len
    engine.validate_v0(message)

    # upstream: the first two frames as OpenCV writes them, at full size
    theirs = upstream_message(upstream_frames(source, tmp_path / "upstream"), prompt)
    count = plan.original.prompt_tokens
    assert len(engine.template_tokens(theirs)) == count
    if count <= engine.model_config.max_model_len:
        assert len(engine.chat(theirs).prompt_token_ids) == count
        engine.validate_v0(theirs)
        refused = None
    else:
        with pytest.raises(ValueError) as v1_error:
            engine.chat(theirs)
        with pytest.raises(ValueError) as v0_error:
            engine.validate_v0(theirs)
        refused = [REFUSAL.match(str(e.value)) for e in (v1_error, v0_error)]
        assert all(refused), [str(e.value) for e in (v1_error, v0_error)]
        assert [int(m.group(1)) for m in refused] == [count, count]
        assert [int(m.group(2)) for m in refused] == [4096, 4096]
    return {"planned": plan.planned.prompt_tokens, "upstream": count, "refused": refused is not None}


@pytest.mark.parametrize("width, height, frames, prompt", GENERATED,
                         ids=[f"{w}x{h}-{n}f-{'long' if len(p) > 100 else 'empty' if not p else 'line'}"
                              for w, h, n, p in GENERATED])
def test_generated_clip(engine, clips, width, height, frames, prompt, tmp_path):
    figures = check(engine, clips[(width, height, frames)], prompt, tmp_path)
    over = (width, height) not in {(640, 480)} and not (frames == 1 and (width, height) == (1280, 704))
    assert figures["refused"] == over


@needs_shared_videos
@pytest.mark.parametrize("name", REAL)
def test_real_clip(engine, name, tmp_path):
    figures = check(engine, SHARED / name, PROMPT, tmp_path)
    assert figures["refused"] == (not name.startswith("example1_edge") and not name.startswith("example1_input"))


def test_runtime_reads_the_live_limits_from_vllms_model_config(engine):
    """runtime.limits_for on an upsampler whose ``upsampler_model`` is vLLM's LLM over the real ModelConfig."""
    upsampler = SimpleNamespace(upsampler_model=engine.llm, sampling_params=engine.sampling_params)
    assert engine.llm.llm_engine.model_config is engine.model_config
    assert runtime.limits_for(upsampler, Options()) == Limits(4096, 300, 2)
    # the live values win over the user's settings
    assert runtime.limits_for(upsampler, Options(max_model_len=8192, max_images=1)) == Limits(4096, 300, 2)


def test_runtime_follows_a_differently_built_engine(tmp_path):
    """An engine built with other limits: the runtime reads those (vLLM's own parsing of the arguments)."""
    other = build_engine(model_folder(tmp_path / "model"), max_model_len=8192, image_limit=1, max_tokens=512)
    upsampler = SimpleNamespace(upsampler_model=other.llm, sampling_params=other.sampling_params)
    assert runtime.limits_for(upsampler, Options()) == Limits(8192, 512, 1)
