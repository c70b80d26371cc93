"""The real-engine tier: a real vLLM engine and a real ``vllm serve`` on CPU, with a tiny Pixtral.

Every test here is marked ``engine`` and skipped, with one line saying why, where vLLM cannot
run (not installed, or no CPU build). ``.ci/vllm-env VENV`` builds an environment where it can;
``.ci/run`` runs this tier there as its own stage.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .tiny_pixtral import MODEL_SUBDIR, make_checkpoint

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # else upstream's 0.98 reads as 98% of RAM


def _vllm_problem() -> str | None:
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # not installed, or a build that cannot import here
        return f"vLLM cannot be imported here ({type(exc).__name__}: {exc}); .ci/vllm-env builds an environment"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    for item in ours:
        item.add_marker(pytest.mark.engine)
    problem = _vllm_problem() if ours else None
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
