"""Stand-in ``vllm.config``: the two objects that hold the limits the upsampler runs into.

Real vLLM 0.9.2 exposes them as ``llm.llm_engine.model_config.max_model_len`` and
``llm.llm_engine.model_config.multimodal_config`` (a ``MultiModalConfig`` with the dict
``limit_per_prompt`` and the method ``get_limit_per_prompt(modality)``); the same paths
work here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

# vLLM V1 (the default engine of 0.9.2) allows 999 items of a modality that has no
# explicit --limit-mm-per-prompt entry.
DEFAULT_LIMIT_PER_MODALITY = 999


@dataclass
class MultiModalConfig:
    """Per-prompt multimodal limits (``limit_mm_per_prompt`` as given to ``LLM``)."""

    limit_per_prompt: dict[str, int] = field(default_factory=dict)
    media_io_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mm_processor_kwargs: dict[str, object] | None = None
    disable_mm_preprocessor_cache: bool = False

    def get_limit_per_prompt(self, modality: str) -> int:
        """The most items of ``modality`` one prompt may carry."""
        return self.limit_per_prompt.get(modality, DEFAULT_LIMIT_PER_MODALITY)


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


@dataclass
class ModelConfig:
    """The engine's model settings."""

    model: str
    tokenizer: str
    tokenizer_mode: str
    max_model_len: int
    multimodal_config: MultiModalConfig | None
    params: dict = field(default_factory=dict)
    seed: int | None = None
    dtype: str = "auto"

    @property
    def is_multimodal_model(self) -> bool:
        return self.multimodal_config is not None

    def get_multimodal_config(self) -> MultiModalConfig:
        if self.multimodal_config is None:
            raise ValueError("The model is not multimodal.")
        return self.multimodal_config

    @property
    def hf_config(self) -> SimpleNamespace:
        """params.json seen the way vLLM converts a Mistral-format config (text/vision parts)."""
        params = dict(self.params)
        vision = params.pop("vision_encoder", None)
        if vision is None:
            return _namespace(params)
        return SimpleNamespace(
            model_type="pixtral",
            architectures=["PixtralForConditionalGeneration"],
            text_config=_namespace(params),
            vision_config=_namespace(vision),
        )

    def get_vocab_size(self) -> int:
        return int(self.params.get("vocab_size", 131072))
