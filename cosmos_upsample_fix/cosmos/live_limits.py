"""What an upsampler object allows right now: the loaded engine's limits and its tokenizer.

Live objects first: the vLLM engine's ``max_model_len`` and per-prompt image limit
(``llm_engine.model_config``), the sampling params' ``max_tokens``; while the model is not
loaded (``--offload_prompt_upsampler`` before the load), the options' values, else
upstream's (4096, 300, 2). The tokenizer comes from the checkpoint folder.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import ModelConfigError
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model

log = logging.getLogger(__name__)


def _engine_value(engine: Any, getter: Callable[[Any], Any]) -> Any:
    try:
        return getter(engine)
    except Exception:  # an engine without that attribute path: fall back to the options
        return None


def _image_limit(engine: Any) -> Any:
    mm = engine.llm_engine.model_config.multimodal_config
    if mm is None:
        return None
    getter = getattr(mm, "get_limit_per_prompt", None)
    if callable(getter):
        return getter("image")
    return (getattr(mm, "limit_per_prompt", None) or {}).get("image")


def engine_loaded(upsampler: Any) -> bool:
    """True when the upsampler holds a built engine (not offloaded, or inside an offloaded call)."""
    return getattr(upsampler, "upsampler_model", None) is not None


def limits_for(upsampler: Any, settings: Options) -> Limits:
    """The limits that apply to ``upsampler`` now: the loaded engine's, else the options', else upstream's."""
    engine = getattr(upsampler, "upsampler_model", None)
    sampling = getattr(upsampler, "sampling_params", None)
    max_len = images = reserve = None
    if engine is not None:
        max_len = _engine_value(engine, lambda e: e.llm_engine.model_config.max_model_len)
        images = _engine_value(engine, _image_limit)
        if sampling is not None:
            reserve = getattr(sampling, "max_tokens", None)

    def pick(live: Any, user: int | None, upstream: int) -> int:
        if isinstance(live, int) and not isinstance(live, bool):
            return live
        return upstream if user is None else user

    return Limits(
        max_model_len=pick(max_len, settings.max_model_len, UPSTREAM_LIMITS.max_model_len),
        reserved_output_tokens=pick(reserve, settings.reserve_output, UPSTREAM_LIMITS.reserved_output_tokens),
        max_images=pick(images, settings.max_images, UPSTREAM_LIMITS.max_images),
    )


def model_for(upsampler: Any, settings: Options) -> UpsamplerModel:
    """The tokenizer in the upsampler's checkpoint folder (embedded default if it has none)."""
    folder = settings.checkpoint_dir or getattr(upsampler, "checkpoint_dir", None)
    if folder is None:
        return load_model()
    try:
        return load_model(folder)
    except ModelConfigError as exc:
        log.warning("%s; counting with the embedded Pixtral-12B tokenizer instead", exc)
        return load_model()
