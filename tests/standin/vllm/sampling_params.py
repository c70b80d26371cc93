"""Stand-in ``vllm.sampling_params``: a plain attribute holder with vLLM's defaults."""

from __future__ import annotations

import copy
from typing import Any

_DEFAULTS: dict[str, Any] = {
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "seed": None,
    "stop": None,
    "stop_token_ids": None,
    "ignore_eos": False,
    "max_tokens": 16,
    "min_tokens": 0,
    "logprobs": None,
    "prompt_logprobs": None,
    "detokenize": True,
    "skip_special_tokens": True,
}


class SamplingParams:
    """Sampling settings; only stored (the stand-in's answers do not depend on them,
    except ``max_tokens``, which caps the fake answer like vLLM caps a real one)."""

    def __init__(self, temperature: float = 1.0, max_tokens: int | None = 16, **kwargs: Any) -> None:
        values = dict(_DEFAULTS)
        values.update(kwargs)
        values["temperature"] = temperature
        values["max_tokens"] = max_tokens
        for name, value in values.items():
            setattr(self, name, value)
        if self.n != 1:
            raise ValueError("the stand-in vllm.SamplingParams only supports n=1")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")

    def clone(self) -> SamplingParams:
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"SamplingParams(temperature={self.temperature}, max_tokens={self.max_tokens})"
