"""Runtime integration with Cosmos-Transfer1's prompt upsampler: settings, the call, install.

Three ways in, one code path:

- the source patch calls :func:`run_upsampler` where upstream called
  ``prompt_upsampler._prompt_upsample_with_offload(prompt, video_path)``;
- :func:`install` wraps ``PixtralPromptUpsampler``'s ``_prompt_upsample_with_offload`` and
  ``_prompt_upsample`` (so pipelines that load the model themselves and call the latter are
  fitted too), and its ``_load_upsampler_model`` (which builds nothing while an endpoint is
  set); :func:`uninstall` undoes it (:mod:`.wrapping` does the hooking);
- ``python -m cosmos_upsample_fix.launch`` calls :func:`install` and runs a script.

Each call gets a private temporary folder (removed afterwards, also on failure), runs the
registered preprocessors (:mod:`.hooks`; the budget fitter is one of them) and hands the
result to upstream's own method, or to the endpoint (:mod:`.upsampler_call` has the flow).
Limits come from the live objects (:mod:`.live_limits`).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos import hooks, wrapping
from cosmos_upsample_fix.cosmos import upsampler_call as calls
from cosmos_upsample_fix.cosmos.hooks import UpsamplerInput
from cosmos_upsample_fix.cosmos.live_limits import engine_loaded, limits_for, model_for
from cosmos_upsample_fix.cosmos.logbridge import bridge_logging
from cosmos_upsample_fix.cosmos.upsampler_call import FLAG, budget_fit_preprocessor
from cosmos_upsample_fix.cosmos.wrapping import TARGET_CLASS, TARGET_MODULE

__all__ = [
    "install", "uninstall", "is_installed", "run_upsampler", "current_settings", "default_settings",
    "limits_for", "model_for", "budget_fit_preprocessor", "UPSTREAM_LIMITS", "TARGET_MODULE", "TARGET_CLASS",
    "TARGET_METHOD", "FLAG",
]

log = logging.getLogger(__name__)

TARGET_METHOD = "_prompt_upsample_with_offload"
DIRECT_METHOD = "_prompt_upsample"
LOAD_METHOD = "_load_upsampler_model"

_lock = threading.RLock()
_settings: Options | None = None


def default_settings() -> Options:
    """Options from the environment (``COSMOS_UPSAMPLE_FIX_POLICY``, ``…_ON_ERROR``, ``…_ENDPOINT``)."""
    return Options.from_env()


def current_settings() -> Options:
    """The installed settings, or the defaults from the environment."""
    with _lock:
        return _settings or default_settings()


# ---------------------------------------------------------------- the call


def _run(upsampler: Any, prompt: str, video_path: UpsamplerInput, settings: Options, method: str) -> str:
    """Preprocess and fit, then upstream's ``method`` (or the endpoint); see :mod:`.upsampler_call`."""
    bridge_logging()
    workdir = Path(tempfile.mkdtemp(prefix="cosmos-upsample-fix-"))
    try:
        call = calls.Call(upsampler, prompt, video_path, settings, workdir)
        if settings.endpoint:
            return calls.remote(call)
        if not calls.prepare(call, limits_for(upsampler, settings), log_now=engine_loaded(upsampler)):
            return prompt
        upstream = wrapping.upstream_method(upsampler, method)
        shadow = calls.shadow_prompt_upsample(upsampler) if method == TARGET_METHOD else nullcontext()
        with calls.active(call), shadow:
            result = upstream(prompt, call.sent)
        calls.log_plan(call)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_upsampler(
    upsampler: Any, prompt: str, video_path: UpsamplerInput, *, policy: str | None = None, endpoint: str | None = None
) -> str:
    """Upsample ``prompt`` with frames that fit: preprocess ``video_path``, then call upstream.

    What the source patch calls in place of ``_prompt_upsample_with_offload``. ``policy`` and
    ``endpoint`` (the ``--upsampler_policy`` / ``--upsampler_endpoint`` flags) override the
    installed or environment settings. Refusals come before an offloaded model is loaded; the
    frames sent are planned for the engine that is loaded by then. With an endpoint, the
    fitted request goes there and no local engine is used. ``on_error`` applies to failures.
    """
    settings = current_settings().with_flags(policy=policy, endpoint=endpoint)
    return _run(upsampler, prompt, video_path, settings, TARGET_METHOD)


# ---------------------------------------------------------------- the wrappers install() puts in place


def _wrap_with_offload(original: Callable[..., Any]) -> Callable[..., Any]:
    def _prompt_upsample_with_offload(self: Any, prompt: str, video_path: UpsamplerInput) -> str:
        return run_upsampler(self, prompt, video_path)

    return _prompt_upsample_with_offload


def _wrap_direct(original: Callable[..., Any]) -> Callable[..., Any]:
    def _prompt_upsample(self: Any, prompt: str, video_path: UpsamplerInput) -> str:
        call = calls.active_for(self)
        if call is not None:  # inside a call that already planned this input
            return calls.final(call, lambda p, v: original(self, p, v), prompt, video_path)
        return _run(self, prompt, video_path, current_settings(), DIRECT_METHOD)  # a direct caller

    return _prompt_upsample


def _wrap_loader(original: Callable[..., Any]) -> Callable[..., Any]:
    def _load_upsampler_model(self: Any) -> None:
        endpoint = current_settings().endpoint
        if endpoint:
            log.info("cosmos-upsample-fix: upsampler endpoint %s set; no local upsampler model is loaded", endpoint)
            self.upsampler_model = None
            return
        original(self)

    return _load_upsampler_model


_FACTORIES = {TARGET_METHOD: _wrap_with_offload, DIRECT_METHOD: _wrap_direct, LOAD_METHOD: _wrap_loader}


# ---------------------------------------------------------------- install / uninstall


def install(policy: str | None = None, **options: Any) -> None:
    """Route every upsampler call through the budget fitter (or an endpoint). Idempotent, thread-safe.

    ``options`` are :class:`~cosmos_upsample_fix.core.options.Options`' fields (``select``,
    ``frames``, ``on_error``, ``max_model_len``, ``reserve_output``, ``max_images``,
    ``checkpoint_dir``, ``endpoint``), validated there. Works before or after
    ``cosmos_transfer1`` is imported. Explicit arguments win over the environment, which wins
    over the defaults; a second call replaces the settings. The limits given here apply only
    while the model is not loaded (offload). With ``endpoint`` no local engine is built.
    """
    global _settings
    settings = Options.from_env(policy=policy, **options)
    if settings.endpoint:  # a missing client is reported now, not at the first request
        from cosmos_upsample_fix.remote.endpoint import require_openai

        require_openai()
    hooks.discover()
    with _lock:
        _settings = settings
        wrapping.activate(_FACTORIES)
    bridge_logging()


def uninstall() -> None:
    """Undo :func:`install`: restore upstream's methods and stop hooking imports. Idempotent."""
    global _settings
    with _lock:
        wrapping.deactivate()
        _settings = None


def is_installed() -> bool:
    """True between :func:`install` and :func:`uninstall`."""
    with _lock:
        return wrapping.is_active()
