"""The real-engine tier: a real vLLM engine and a real ``vllm serve`` on CPU, with a tiny Pixtral.

Every test here is marked ``engine`` and skipped, with one line saying why, where vLLM cannot
run (not installed, or no CPU build). ``.ci/vllm-env VENV`` builds an environment where it can;
``.ci/run`` runs this tier there as its own stage, in one process (``-n 0``).

Upstream's upsampler is the stand-in ``cosmos_transfer1`` of tests/standin, put on ``sys.path``
alone (``upstream_path``): the ``vllm`` it imports is the real one. An engine takes about 5 GB,
so at most one is alive: ``engines`` keeps one upsampler built like upstream's per set of limits
for the tests that share it, and frees it (waiting for vLLM's processes to end) before any test
that does not ask for it, which builds its own engine or server. ``recorder`` sees every engine
build and chat request on ``vllm.LLM``.
"""
from __future__ import annotations

import gc
import logging
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .recording import Recorder
from .tiny_pixtral import MODEL_SUBDIR, make_checkpoint

REQUIRED_ENV = "ENGINE_TIER_REQUIRED"  # set by .ci/run: a tier that cannot run fails instead of skipping
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # else upstream's 0.98 reads as 98% of RAM


def _vllm_problem() -> str | None:
    try:
        import vllm
    except Exception as exc:  # not installed, or a build that cannot import here
        return f"vLLM cannot be imported here ({type(exc).__name__}: {exc}); .ci/vllm-env builds an environment"
    if "standin" in str(getattr(vllm, "__version__", "")) or "standin" in str(getattr(vllm, "__file__", "")):
        return "the vllm imported here is the tests' stand-in, not vLLM; .ci/vllm-env builds an environment"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    for item in ours:
        item.add_marker(pytest.mark.engine)
    problem = _vllm_problem() if ours else None
    if problem and os.environ.get(REQUIRED_ENV):
        raise pytest.UsageError(f"{REQUIRED_ENV} is set, but {problem}")
    if problem:
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Upstream's ``checkpoint_dir`` holding a tiny random-weight Pixtral (made once per session)."""
    folder = tmp_path_factory.mktemp("checkpoint")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> Path:
    """The model folder itself (``params.json``, ``tekken.json``, ``consolidated.safetensors``)."""
    return tiny_checkpoint / MODEL_SUBDIR


# ----------------------------------------------------------------------------- upstream's code, vLLM's refusals

STANDIN_UPSTREAM = Path(__file__).resolve().parents[1] / "standin" / "cosmos_transfer1"
UPSAMPLER_MODULE = "cosmos_transfer1.auxiliary.upsampler.model.upsampler"
PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
UPSTREAM_BUILD = {  # upstream's LLM(...) arguments, but for the model path
    "tensor_parallel_size": 1, "tokenizer_mode": "mistral", "gpu_memory_utilization": 0.98, "max_model_len": 4096,
    "max_num_seqs": 2, "limit_mm_per_prompt": {"image": 2}, "enable_prefix_caching": True,
}

#: vLLM's refusal of a prompt over ``max_model_len``: 0.32's text, then 0.9's.
REFUSALS = (
    re.compile(r"^This model's maximum context length is (?P<limit>\d+) tokens\. However, your prompt contains "
               r"(?P<tokens>\d+) input tokens, which exceeds this limit even without any output tokens\."),
    re.compile(r"^The decoder prompt \(length (?P<tokens>\d+)\) is longer than the maximum model length of "
               r"(?P<limit>\d+)\."),
)


def refusal_types() -> tuple[type[BaseException], ...]:
    """What vLLM raises for a refused request: ``VLLMValidationError`` (0.32; not a ValueError) or ValueError."""
    try:
        from vllm.exceptions import VLLMValidationError
    except ImportError:
        return (ValueError,)
    return (VLLMValidationError, ValueError)


def refused_count(exc: BaseException) -> tuple[int, int]:
    """``(prompt tokens, max_model_len)`` named in vLLM's refusal ``exc``; fails the test for another text."""
    for pattern in REFUSALS:
        found = pattern.match(str(exc))
        if found:
            return int(found["tokens"]), int(found["limit"])
    raise AssertionError(f"not vLLM's length refusal: {type(exc).__name__}: {exc}")


@pytest.fixture(scope="session")
def upstream_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the upstream stand-in ``cosmos_transfer1`` (never the stand-in vllm), on sys.path."""
    folder = tmp_path_factory.mktemp("upstream")
    (folder / "cosmos_transfer1").symlink_to(STANDIN_UPSTREAM, target_is_directory=True)
    sys.path.insert(0, str(folder))
    import vllm

    assert "standin" not in str(Path(vllm.__file__).parent), "the real vLLM must be imported here"
    return folder


@pytest.fixture
def upstream(upstream_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """Upstream's upsampler module (``PixtralPromptUpsampler``, built like upstream's on the real vLLM).

    Its ``extract_video_frames`` writes ``frame_<i>.png`` to this test's folder (``STANDIN_TEMPDIR``).
    """
    import importlib

    frames = tmp_path / "upstream-frames"
    frames.mkdir()
    monkeypatch.setenv("STANDIN_TEMPDIR", str(frames))
    for name in ("STANDIN_MAX_MODEL_LEN", "STANDIN_IMAGE_LIMIT", "STANDIN_PATCHED"):
        monkeypatch.delenv(name, raising=False)
    return importlib.import_module(UPSAMPLER_MODULE)


@pytest.fixture
def plugin(clean_plugin: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The plugin's runtime, clean (``clean_plugin``), with live_limits' warnings not yet given."""
    from cosmos_upsample_fix.cosmos import live_limits, runtime

    monkeypatch.setattr(live_limits, "_reported", set())
    return runtime


# ----------------------------------------------------------------------------- engines, one at a time

_recorder: Recorder | None = None


@pytest.fixture(scope="session")
def session_recorder(upstream_path: Path) -> Recorder:
    global _recorder
    import vllm

    _recorder = Recorder()
    undo = _recorder.attach(vllm.LLM)
    yield _recorder
    undo()


@pytest.fixture
def recorder(session_recorder: Recorder) -> Recorder:
    """Engine builds and chat requests on the real ``vllm.LLM`` during this test."""
    session_recorder.clear()
    return session_recorder


def engine_processes() -> list[Any]:
    """vLLM's engine-core and worker processes below this one (still running)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith("VLLM::") and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_engines_gone(timeout: float = 60.0) -> None:
    """Wait until no engine process of ours runs (an engine is about 5 GB: never two at once)."""
    deadline = time.monotonic() + timeout
    while engine_processes() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.5)
    left = engine_processes()
    if left:
        logging.getLogger(__name__).warning("engine processes still running: %s", [p.pid for p in left])


class Engines:
    """At most one engine alive: an upsampler built like upstream's, per configuration, reused by tests."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.key: tuple[int, int, int] | None = None
        self.current: Any = None
        self.build: dict[str, Any] = {}
        self.seconds = 0.0

    def upsampler(self, max_model_len: int = 4096, image_limit: int = 2, max_tokens: int = 300) -> Any:
        """``PixtralPromptUpsampler(checkpoint_dir)`` (no offload) whose engine has these limits."""
        import importlib

        key = (max_model_len, image_limit, max_tokens)
        if self.key == key:
            return self.current
        self.release()
        module = importlib.import_module(UPSAMPLER_MODULE)
        klass = module.PixtralPromptUpsampler
        assert _recorder is not None
        before = len(_recorder.builds)
        klass.standin_max_model_len, klass.standin_image_limit = max_model_len, image_limit
        started = time.monotonic()
        try:
            upsampler = klass(str(self.checkpoint), offload_prompt_upsampler=False)
        finally:
            klass.standin_max_model_len = klass.standin_image_limit = None
        self.seconds = time.monotonic() - started
        self.build = _recorder.builds[before]
        if max_tokens != upsampler.sampling_params.max_tokens:
            from vllm import SamplingParams

            upsampler.sampling_params = SamplingParams(temperature=0.6, max_tokens=max_tokens)
        self.key, self.current = key, upsampler
        return upsampler

    def release(self) -> None:
        """Free the engine held (upstream's own ``_offload_upsampler_model``) and wait for its processes."""
        if self.current is not None:
            self.current._offload_upsampler_model()
            self.key = self.current = None
        gc.collect()
        wait_engines_gone()


_engines: Engines | None = None


@pytest.fixture(scope="session")
def engines(tiny_checkpoint: Path, session_recorder: Recorder) -> Engines:
    """The shared engines (see :class:`Engines`); freed when a test that does not use them starts."""
    global _engines
    _engines = Engines(tiny_checkpoint)
    yield _engines
    _engines.release()
    _engines = None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that builds its own engine (or a server) first gets the shared one freed."""
    if _engines is not None and "engines" not in getattr(item, "fixturenames", ()):
        _engines.release()
