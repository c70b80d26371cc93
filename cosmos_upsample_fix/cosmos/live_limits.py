"""What an upsampler object allows right now: the loaded engine's limits and its tokenizer.

Live objects first: the vLLM engine's ``max_model_len`` and per-prompt image limit, the
sampling params' ``max_tokens``; while the model is not loaded (``--offload_prompt_upsampler``
before the load), the options' values, else upstream's (4096, 300, 2). The tokenizer comes
from the checkpoint folder.

vLLM has moved its model config between releases, so each public place is tried in turn
(:data:`CONFIG_PATHS`): ``LLM.llm_engine.model_config`` (0.9's engines, still there in 0.32),
``LLM.model_config`` (newer ``LLM``) and ``LLM.llm_engine.vllm_config.model_config`` (V1).
The image limit is ``multimodal_config.get_limit_per_prompt("image")`` or the
``limit_per_prompt`` dict (an int in 0.9, an object with ``count`` in 0.32). When an engine is
loaded but a value is found at none of them, a WARNING says so and names what is planned for
instead: a plan for 4096 tokens is never made silently for an engine that may allow otherwise.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import ModelConfigError
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model

log = logging.getLogger(__name__)

CONFIG_PATHS = ("llm_engine.model_config", "model_config", "llm_engine.vllm_config.model_config")
"""Where an ``LLM`` keeps its ``ModelConfig``, in the order tried."""

_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _as_count(value: Any) -> int | None:
    """An int limit from vLLM's forms: an int, an object with ``count`` (0.32), a dict with ``count``."""
    if isinstance(value, dict):
        value = value.get("count")
    elif not isinstance(value, int):
        value = getattr(value, "count", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _resolve(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _configs(engine: Any) -> list[Any]:
    """The model configs reachable from ``engine`` through :data:`CONFIG_PATHS` (missing ones skipped)."""
    found = []
    for path in CONFIG_PATHS:
        try:
            found.append(_resolve(engine, path))
        except Exception:  # that layout is not this vLLM's (or a property failed): try the next
            continue
    return found


def _config_max_len(config: Any) -> int | None:
    return _as_count(getattr(config, "max_model_len", None))


def _config_image_limit(config: Any) -> int | None:
    mm = getattr(config, "multimodal_config", None)
    if mm is None:
        return None
    getter = getattr(mm, "get_limit_per_prompt", None)
    if callable(getter):
        try:
            value = _as_count(getter("image"))
        except Exception:  # an older signature or a failing lookup: try the dict
            value = None
        if value is not None:
            return value
    limits = getattr(mm, "limit_per_prompt", None)
    return _as_count(limits.get("image")) if isinstance(limits, dict) else None


def engine_values(engine: Any) -> tuple[int | None, int | None]:
    """``(max_model_len, image limit)`` of a vLLM ``LLM``; None for a value no known layout shows."""
    configs = _configs(engine)
    max_len = next((v for v in map(_config_max_len, configs) if v is not None), None)
    images = next((v for v in map(_config_image_limit, configs) if v is not None), None)
    return max_len, images


def _report_missing(engine: Any, what: str, where: str, used: int, source: str) -> None:
    """WARNING, once per engine type and value: a loaded engine whose ``what`` could not be read."""
    kind = f"{type(engine).__module__}.{type(engine).__qualname__}"
    with _reported_lock:
        if (kind, what) in _reported:
            return
        _reported.add((kind, what))
    log.warning(
        "cosmos-upsample-fix: the loaded engine (%s) shows no %s at %s, the places this plugin knows in vLLM; "
        "planning for %s = %d (%s)", kind, what, where, what, used, source,
    )


def engine_loaded(upsampler: Any) -> bool:
    """True when the upsampler holds a built engine (not offloaded, or inside an offloaded call)."""
    return getattr(upsampler, "upsampler_model", None) is not None


def limits_for(upsampler: Any, settings: Options) -> Limits:
    """The limits that apply to ``upsampler`` now: the loaded engine's, else the options', else upstream's."""
    engine = getattr(upsampler, "upsampler_model", None)
    sampling = getattr(upsampler, "sampling_params", None)
    max_len = images = reserve = None
    if engine is not None:
        max_len, images = engine_values(engine)
        reserve = _as_count(getattr(sampling, "max_tokens", None)) if sampling is not None else None

    def pick(live: int | None, user: int | None, upstream: int, what: str, where: str) -> int:
        if live is not None:
            return live
        used, source = (upstream, "upstream's value") if user is None else (user, "the value given to the plugin")
        if engine is not None:
            _report_missing(engine, what, where, used, source)
        return used

    paths = ", ".join(CONFIG_PATHS)
    return Limits(
        max_model_len=pick(max_len, settings.max_model_len, UPSTREAM_LIMITS.max_model_len, "max_model_len",
                           f"{paths} (.max_model_len)"),
        reserved_output_tokens=pick(reserve, settings.reserve_output, UPSTREAM_LIMITS.reserved_output_tokens,
                                    "max_tokens", "upsampler.sampling_params.max_tokens"),
        max_images=pick(images, settings.max_images, UPSTREAM_LIMITS.max_images, "image limit",
                        f"{paths} (.multimodal_config)"),
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
