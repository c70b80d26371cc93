"""Upstream's own ``PixtralPromptUpsampler`` on the real engine, with and without the plugin.

Runs where ``COSMOS_TRANSFER1_GIT`` names a cosmos-transfer1 clone (as the patch-history tests
do): upstream's ``upsampler.py`` and ``checkpoints.py`` are read from it at test time into a
temporary tree, beside the stand-in helpers they import (``utils/misc.py``: OpenCV's first two
frames as PNG, as upstream's). Nothing of upstream's is kept in this repository.
"""
from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest
from clips import make_clip
from upstream_tree import upstream_git_dir, write_revision

from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.planning.planner import plan_frames

TESTS = Path(__file__).resolve().parents[1]
UPSTREAM_FILES = ["cosmos_transfer1/auxiliary/upsampler/model/upsampler.py", "cosmos_transfer1/checkpoints.py"]
PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
GIT = upstream_git_dir()
pytestmark = pytest.mark.skipif(GIT is None, reason="no upstream clone here (set COSMOS_TRANSFER1_GIT to one)")


@pytest.fixture(scope="module")
def upstream_class(tmp_path_factory):
    """Upstream's ``PixtralPromptUpsampler`` class, imported from a temporary tree."""
    root = tmp_path_factory.mktemp("upstream")
    shutil.copytree(TESTS / "standin" / "cosmos_transfer1", root / "cosmos_transfer1")
    write_revision(GIT, "HEAD", UPSTREAM_FILES, root)
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "cosmos_transfer1"}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("cosmos_transfer1.auxiliary.upsampler.model.upsampler")
        assert Path(module.__file__).is_relative_to(root)
        yield module.PixtralPromptUpsampler
    finally:
        sys.path.remove(str(root))
        for name in [k for k in sys.modules if k.split(".")[0] == "cosmos_transfer1"]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "big.mp4", 1280, 704, frames=3)


def _recording(upsampler):
    """Record the prompt length of every request the upsampler's engine answers."""
    lengths: list[int] = []
    chat = upsampler.upsampler_model.chat

    def recorded(*args, **kwargs):
        outputs = chat(*args, **kwargs)
        lengths.extend(len(o.prompt_token_ids) for o in outputs)
        return outputs

    upsampler.upsampler_model.chat = recorded
    return lengths


def test_upstream_refuses_full_frames_and_takes_the_planned_ones(
    upstream_class, tiny_checkpoint, clip, monkeypatch, tmp_path
):
    from vllm.exceptions import VLLMValidationError

    import cosmos_upsample_fix

    monkeypatch.setenv("STANDIN_TEMPDIR", str(tmp_path))  # where misc.extract_video_frames writes frame_N.png
    plan = plan_frames(str(clip), PROMPT, Options()).plan
    upsampler = upstream_class(str(tiny_checkpoint))
    try:
        with pytest.raises(VLLMValidationError, match=f"prompt contains {plan.original.prompt_tokens} input tokens"):
            upsampler._prompt_upsample_with_offload(PROMPT, str(clip))
        cosmos_upsample_fix.install()
        lengths = _recording(upsampler)
        assert isinstance(upsampler._prompt_upsample_with_offload(PROMPT, str(clip)), str)
        assert isinstance(upsampler._prompt_upsample(PROMPT, str(clip)), str)
        assert lengths == [plan.planned.prompt_tokens] * 2 and plan.original.prompt_tokens == 4699
    finally:
        cosmos_upsample_fix.uninstall()
        del upsampler


def test_offloaded_upstream_builds_one_engine_per_call_and_fits(upstream_class, tiny_checkpoint, clip, monkeypatch):
    import cosmos_upsample_fix

    built = []
    original = upstream_class._load_upsampler_model

    def load(self):
        original(self)
        built.append(_recording(self))

    monkeypatch.setattr(upstream_class, "_load_upsampler_model", load)
    cosmos_upsample_fix.install()
    try:
        upsampler = upstream_class(str(tiny_checkpoint), offload_prompt_upsampler=True)
        assert built == []
        upsampler._prompt_upsample_with_offload(PROMPT, str(clip))
        assert [len(b) for b in built] == [1] and upsampler.upsampler_model is None
        assert built[0] == [plan_frames(str(clip), PROMPT, Options()).plan.planned.prompt_tokens]
    finally:
        cosmos_upsample_fix.uninstall()
