"""Runtime integration with Cosmos-Transfer1's prompt upsampler.

Three ways in, one code path:

- the source patch calls :func:`run_upsampler` where upstream called
  ``prompt_upsampler._prompt_upsample_with_offload(prompt, video_path)``;
- :func:`install` wraps ``PixtralPromptUpsampler._prompt_upsample_with_offload`` so that
  every call goes through :func:`run_upsampler` (done at import time of upstream's module
  when Cosmos is not imported yet), and :func:`uninstall` undoes it;
- ``python -m cosmos_upsample_fix.launch`` calls :func:`install` and runs a script.

Each call gets a private temporary folder (removed afterwards, also on failure), runs the
registered preprocessors (:mod:`.hooks`; this package's budget fitter is one of them) and
hands the result to upstream's own method. Limits come from the live objects: the vLLM
engine's ``max_model_len`` and per-prompt image limit, the sampling params' ``max_tokens``,
and the tokenizer in the checkpoint folder; when the model is offloaded (not loaded yet),
the user's settings or upstream's values (4096, 2 images, 300) apply.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import shutil
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .budget import UPSTREAM_LIMITS, Limits
from .errors import ModelConfigError, UpsampleFixError
from .hooks import UpsamplerCall, UpsamplerInput, run_hooks
from .model import UpsamplerModel, load_model
from .options import Options

log = logging.getLogger(__name__)

TARGET_MODULE = "cosmos_transfer1.auxiliary.upsampler.model.upsampler"
TARGET_CLASS = "PixtralPromptUpsampler"
TARGET_METHOD = "_prompt_upsample_with_offload"
COSMOS_LOG_MODULE = "cosmos_transfer1.utils.log"


def default_settings() -> Options:
    """Options from the environment (``COSMOS_UPSAMPLER_POLICY``, ``COSMOS_UPSAMPLE_FIX_ON_ERROR``, …)."""
    return Options.from_env()


class _State:
    """Process-wide install state, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.settings: Options | None = None
        self.finder: _PatchOnImport | None = None
        self.originals: dict[type, Callable[..., Any]] = {}


_state = _State()
_in_call = threading.local()


# ---------------------------------------------------------------- limits from live objects


def _engine_value(engine: Any, getter: Callable[[Any], Any]) -> Any:
    try:
        return getter(engine)
    except Exception:  # an engine without that attribute path: fall back to settings
        return None


def _image_limit(engine: Any) -> Any:
    mm = engine.llm_engine.model_config.multimodal_config
    if mm is None:
        return None
    getter = getattr(mm, "get_limit_per_prompt", None)
    if callable(getter):
        return getter("image")
    return (getattr(mm, "limit_per_prompt", None) or {}).get("image")


def limits_for(upsampler: Any, settings: Options) -> Limits:
    """The limits that apply to ``upsampler`` now: the loaded engine's, else settings', else upstream's."""
    engine = getattr(upsampler, "upsampler_model", None)
    sampling = getattr(upsampler, "sampling_params", None)
    max_len = images = reserve = None
    if engine is not None:
        max_len = _engine_value(engine, lambda e: e.llm_engine.model_config.max_model_len)
        images = _engine_value(engine, _image_limit)
        if sampling is not None:
            reserve = getattr(sampling, "max_tokens", None)
    pick = lambda live, user, upstream: int(live) if isinstance(live, int) else (upstream if user is None else user)  # noqa: E731
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


# ---------------------------------------------------------------- the budget-fitting preprocessor


def budget_fit_preprocessor(call: UpsamplerCall) -> list[str]:
    """Plan and write the frames that fit the upsampler's context; returns their paths."""
    from .planner import plan_frames

    settings: Options = call.settings or default_settings()
    limits = limits_for(call.upsampler, settings)
    # Never send more images than the engine takes (e.g. an engine built with an image limit
    # of 1 gets one frame, where upstream's two would be refused by vLLM).
    frames = min(settings.frames or 2, limits.max_images)
    source = call.video
    if isinstance(source, (list, tuple)) and len(source) > limits.max_images:
        source = list(source)[: limits.max_images]
    planned = plan_frames(
        source, call.prompt, replace(settings, frames=frames), limits=limits, model=model_for(call.upsampler, settings)
    )
    paths = [str(p) for p in planned.write(call.workdir)]
    call.notes["plan"] = planned.plan
    log.info("cosmos-upsample-fix: %s", planned.plan.summary())
    return paths


budget_fit_preprocessor.order = 1000  # type: ignore[attr-defined]  # last: the others come first


# ---------------------------------------------------------------- the call itself


def _upstream_method(upsampler: Any) -> Callable[..., Any]:
    """Upstream's own ``_prompt_upsample_with_offload``, bypassing our wrapper if installed."""
    for klass in type(upsampler).__mro__:
        with _state.lock:
            original = _state.originals.get(klass)
        if original is not None:
            return types.MethodType(original, upsampler)
    return getattr(upsampler, TARGET_METHOD)


def run_upsampler(upsampler: Any, prompt: str, video_path: UpsamplerInput, *, policy: str | None = None) -> str:
    """Upsample ``prompt`` with frames that fit: preprocess ``video_path``, then call upstream.

    ``policy`` (the ``--upsampler_policy`` flag) overrides the installed or default policy.
    Errors: with ``on_error="raise"`` a preprocessing failure raises an
    :class:`UpsampleFixError` before upstream's method runs (so before an offloaded model
    is loaded); with ``"fallback"`` it logs a warning and upstream gets the original input.
    """
    settings = current_settings().with_flags(policy=policy)
    _bridge_logging()
    workdir = Path(tempfile.mkdtemp(prefix="cosmos-upsample-fix-"))
    try:
        call = UpsamplerCall(video=video_path, prompt=prompt, upsampler=upsampler, workdir=workdir, settings=settings)
        try:
            new_input = run_hooks(call)
        except Exception as exc:
            error = exc if isinstance(exc, UpsampleFixError) else UpsampleFixError(
                f"the upsampler preprocessor failed on {video_path!r}: {type(exc).__name__}: {exc}"
            )
            if settings.on_error == "raise":
                if error is exc:
                    raise
                raise error from exc
            log.warning("cosmos-upsample-fix: %s; on_error=fallback, so upstream gets the original input", error)
            new_input = video_path
        _in_call.active = True
        try:
            return _upstream_method(upsampler)(prompt, new_input)
        finally:
            _in_call.active = False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- install / uninstall


def current_settings() -> Options:
    """The installed settings, or the defaults from the environment."""
    with _state.lock:
        return _state.settings or default_settings()


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def _prompt_upsample_with_offload(self: Any, prompt: str, video_path: UpsamplerInput) -> str:
        if getattr(_in_call, "active", False):  # already preprocessed by run_upsampler (patched upstream)
            return original(self, prompt, video_path)
        return run_upsampler(self, prompt, video_path)

    _prompt_upsample_with_offload.__wrapped__ = original  # type: ignore[attr-defined]
    _prompt_upsample_with_offload.__doc__ = original.__doc__
    _prompt_upsample_with_offload._cosmos_upsample_fix = True  # type: ignore[attr-defined]
    return _prompt_upsample_with_offload


def _patch_module(module: types.ModuleType) -> None:
    klass = getattr(module, TARGET_CLASS, None)
    if klass is None:
        log.warning("cosmos-upsample-fix: %s has no %s; nothing to hook", module.__name__, TARGET_CLASS)
        return
    with _state.lock:
        current = klass.__dict__.get(TARGET_METHOD)
        if current is None or getattr(current, "_cosmos_upsample_fix", False):
            return
        _state.originals[klass] = current
        setattr(klass, TARGET_METHOD, _wrap(current))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Hooks upstream's upsampler class as soon as its module is imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != TARGET_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then hooks the class."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        _patch_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def install(
    policy: str | None = None,
    *,
    select: str | None = None,
    frames: int | None = None,
    on_error: str | None = None,
    max_model_len: int | None = None,
    reserve_output: int | None = None,
    max_images: int | None = None,
    checkpoint_dir: str | None = None,
) -> None:
    """Route every upsampler call through the budget fitter. Idempotent and thread-safe.

    Works before or after ``cosmos_transfer1`` is imported. A second call replaces the
    settings. The limits given here apply only while the model is not loaded (offload).
    """
    settings = Options.from_env(
        policy=policy, select=select, frames=frames, on_error=on_error, max_model_len=max_model_len,
        reserve_output=reserve_output, max_images=max_images, checkpoint_dir=checkpoint_dir,
    )
    with _state.lock:
        _state.settings = settings
        if _state.finder is None:
            _state.finder = _PatchOnImport()
            sys.meta_path.insert(0, _state.finder)
        module = sys.modules.get(TARGET_MODULE)
        if module is not None:
            _patch_module(module)
    _bridge_logging()


def uninstall() -> None:
    """Undo :func:`install`: restore upstream's method and stop hooking imports. Idempotent."""
    with _state.lock:
        if _state.finder is not None:
            try:
                sys.meta_path.remove(_state.finder)
            except ValueError:
                pass
            _state.finder = None
        for klass, original in _state.originals.items():
            if getattr(klass.__dict__.get(TARGET_METHOD), "_cosmos_upsample_fix", False):
                setattr(klass, TARGET_METHOD, original)
        _state.originals.clear()
        _state.settings = None


def is_installed() -> bool:
    """True between :func:`install` and :func:`uninstall`."""
    with _state.lock:
        return _state.finder is not None


# ---------------------------------------------------------------- logging into Cosmos's loguru


class _CosmosLogHandler(logging.Handler):
    """Forwards this package's records to Cosmos's loguru logger (or loguru's default one)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            cosmos_log = sys.modules.get(COSMOS_LOG_MODULE)
            name = record.levelname.lower()
            if cosmos_log is not None and callable(getattr(cosmos_log, name, None)):
                getattr(cosmos_log, name)(message)
                return
            loguru = sys.modules.get("loguru")
            if loguru is not None:
                loguru.logger.log(record.levelname, message)
        except Exception:  # logging must never break the job
            self.handleError(record)


_bridge_lock = threading.Lock()


def _bridge_logging() -> None:
    """Make the plugin's INFO line show up in Cosmos's log (once per process)."""
    package_logger = logging.getLogger("cosmos_upsample_fix")
    with _bridge_lock:
        if any(isinstance(h, _CosmosLogHandler) for h in package_logger.handlers):
            return
        package_logger.addHandler(_CosmosLogHandler())
        if package_logger.level == logging.NOTSET:
            package_logger.setLevel(logging.INFO)
