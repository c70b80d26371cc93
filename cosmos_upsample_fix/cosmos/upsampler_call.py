"""One upsampler call: fit before any model load, the final plan on the loaded engine, on_error.

The flow, whichever way in (the patch's :func:`~cosmos_upsample_fix.cosmos.runtime.run_upsampler`,
the wrapped ``_prompt_upsample_with_offload``, or a direct ``_prompt_upsample`` caller):

1. :func:`prepare` runs the registered preprocessors and plans the frames with the limits
   known now. With ``--offload_prompt_upsampler`` that is before the 12B model loads, so bad
   input and a ``none``/``fixed`` policy that cannot fit are refused before the load.
2. Upstream's method runs on the planned frames. When it reaches ``_prompt_upsample`` (the
   model is loaded by then), :func:`final` reads the engine's own limits; only if they differ
   from the ones planned for does it plan again, from the preprocessors' output (never from
   the already fitted frames). Nothing is planned twice otherwise.
3. A failure follows ``on_error``: ``raise``; ``fallback`` (upstream gets the original
   input); ``skip`` (the user's prompt is returned unchanged and generation goes on).

With an endpoint (:func:`remote`) no upstream method runs: the fitted request goes to the
server, and ``fallback`` acts as ``skip`` since there is no local engine to fall back to.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos.hooks import BUDGET_FIT, Hook, UpsamplerCall, UpsamplerInput, active_hooks, run_hooks
from cosmos_upsample_fix.cosmos.live_limits import limits_for, model_for
from cosmos_upsample_fix.cosmos.wrapping import is_wrapped, upstream_method
from cosmos_upsample_fix.errors import UpsampleFixError

log = logging.getLogger(__name__)

FLAG = "--upsampler_policy"
"""The option a refusal inside Cosmos tells the user to change."""

Upstream = Callable[[str, UpsamplerInput], str]


def budget_fit_preprocessor(call: UpsamplerCall) -> list[str]:
    """Plan and write the frames that fit the upsampler's context; returns their paths.

    The limits are ``call.notes["limits"]`` when the runtime set them, else the upsampler's
    live ones. The plan is left in ``call.notes["plan"]`` and logged unless
    ``call.notes["log"]`` is false (the runtime logs it once the engine's limits are known).
    """
    from cosmos_upsample_fix.planning.planner import plan_frames

    settings: Options = call.settings or Options.from_env()
    limits: Limits = call.notes.get("limits") or limits_for(call.upsampler, settings)
    # Never send more images than the engine takes (an engine built for 1 image gets 1 frame).
    frames = None if settings.frames is None else min(settings.frames, limits.max_images)
    source = call.video
    if isinstance(source, (list, tuple)) and len(source) > limits.max_images:
        source = list(source)[: limits.max_images]
    planned = plan_frames(
        source, call.prompt, replace(settings, frames=frames), limits=limits,
        model=model_for(call.upsampler, settings), flag=FLAG,
    )
    paths = [str(p) for p in planned.write(call.workdir)]
    call.notes["plan"] = planned.plan
    if call.notes.get("log", True):
        log.info("cosmos-upsample-fix: %s", planned.plan.summary())
    return paths


budget_fit_preprocessor.order = 1000  # type: ignore[attr-defined]  # last: the others come first


@dataclass
class Call:
    """The state of one call, shared by the methods it passes through (in one thread)."""

    upsampler: Any
    prompt: str
    original: UpsamplerInput
    settings: Options
    workdir: Path
    prepared: UpsamplerInput | None = None
    fitters: list[Hook] = field(default_factory=list)
    sent: UpsamplerInput | None = None
    limits: Limits | None = None
    plan: Any = None
    logged: bool = False
    passthrough: bool = False


def _failure(call: Call, exc: Exception) -> str:
    """Apply ``on_error`` to a failure: raise, or warn and return ``"fallback"`` or ``"skip"``."""
    error = exc if isinstance(exc, UpsampleFixError) else UpsampleFixError(
        f"the upsampler preprocessor failed on {call.original!r}: {type(exc).__name__}: {exc}"
    )
    mode = call.settings.on_error
    if mode == "raise":
        if error is exc:
            raise exc
        raise error from exc
    if mode == "fallback" and call.settings.endpoint:
        mode = "skip"  # no local engine to hand the original input to
    outcome = "upstream gets the original input" if mode == "fallback" else "the prompt is kept unchanged"
    log.warning("cosmos-upsample-fix: %s; on_error=%s, so %s", error, call.settings.on_error, outcome)
    return mode


def _split(hooks: list[Hook]) -> tuple[list[Hook], list[Hook]]:
    """The preprocessors before the budget fitter, and the fitter with those after it."""
    names = [h.name for h in hooks]
    cut = names.index(BUDGET_FIT) if BUDGET_FIT in names else len(hooks)
    return hooks[:cut], hooks[cut:]


def _fit(call: Call, limits: Limits, folder: Path, log_now: bool) -> UpsamplerInput:
    fitting = UpsamplerCall(
        video=call.prepared if call.prepared is not None else call.original, prompt=call.prompt,
        upsampler=call.upsampler, workdir=folder, settings=call.settings, notes={"limits": limits, "log": log_now},
    )
    result = run_hooks(fitting, call.fitters)
    call.limits, call.plan = limits, fitting.notes.get("plan")
    call.logged = log_now and call.plan is not None
    return result


def prepare(call: Call, limits: Limits, log_now: bool) -> bool:
    """Preprocess and fit ``call.original`` for ``limits``; False when on_error=skip ends the call."""
    try:
        before, call.fitters = _split(active_hooks())
        first = UpsamplerCall(
            video=call.original, prompt=call.prompt, upsampler=call.upsampler, workdir=call.workdir,
            settings=call.settings,
        )
        call.prepared = run_hooks(first, before)
        call.sent = _fit(call, limits, call.workdir, log_now) if call.fitters else call.prepared
    except Exception as exc:
        if _failure(call, exc) == "skip":
            return False
        call.passthrough, call.sent = True, call.original
    return True


def log_plan(call: Call) -> None:
    """Log the plan that was sent, once."""
    if call.plan is not None and not call.logged:
        log.info("cosmos-upsample-fix: %s", call.plan.summary())
        call.logged = True


def final(call: Call, upstream: Upstream, prompt: str, video_path: UpsamplerInput) -> str:
    """Upstream's ``_prompt_upsample`` on frames planned for the engine that is loaded now."""
    if call.passthrough or not call.fitters:
        return upstream(prompt, video_path)
    live = limits_for(call.upsampler, call.settings)
    if live != call.limits:
        folder = call.workdir / "engine"
        folder.mkdir(exist_ok=True)
        try:
            video_path = _fit(call, live, folder, log_now=True)
        except Exception as exc:
            if _failure(call, exc) == "skip":
                return call.prompt
            call.passthrough, video_path = True, call.original
    log_plan(call)
    return upstream(prompt, video_path)


def remote(call: Call) -> str:
    """Preprocess, then fit for the endpoint's limits and send there; returns the answer."""
    from cosmos_upsample_fix.remote.endpoint import upsample_remote

    try:
        before, _ = _split(active_hooks())
        first = UpsamplerCall(
            video=call.original, prompt=call.prompt, upsampler=call.upsampler, workdir=call.workdir,
            settings=call.settings,
        )
        source = run_hooks(first, before)
        answer, _planned = upsample_remote(
            source, call.prompt, call.settings, model=model_for(call.upsampler, call.settings), flag=FLAG
        )
        return answer
    except Exception as exc:
        _failure(call, exc)
        return call.prompt


# ---------------------------------------------------------------- calls in flight (per thread)

_local = threading.local()


@contextmanager
def active(call: Call) -> Iterator[Call]:
    """Mark ``call`` as in flight in this thread while upstream's method runs."""
    stack: list[Call] = _local.__dict__.setdefault("calls", [])
    stack.append(call)
    try:
        yield call
    finally:
        stack.remove(call)


def active_for(upsampler: Any) -> Call | None:
    """The innermost call in flight in this thread for ``upsampler``."""
    for call in reversed(getattr(_local, "calls", [])):
        if call.upsampler is upsampler:
            return call
    return None


def _shadow_prompt_upsample(self: Any, prompt: str, video_path: UpsamplerInput) -> str:
    original = upstream_method(self, "_prompt_upsample")
    call = active_for(self)
    if call is None:
        return original(prompt, video_path)
    return final(call, original, prompt, video_path)


_shadow_lock = threading.Lock()
_shadow_users: dict[int, int] = {}


@contextmanager
def shadow_prompt_upsample(upsampler: Any) -> Iterator[None]:
    """While a call runs, route ``upsampler._prompt_upsample`` through :func:`final`.

    Needed when the class is not wrapped (the source patch without ``install()``): upstream's
    ``_prompt_upsample_with_offload`` loads the model and then calls ``self._prompt_upsample``,
    which finds this per-instance function first. Counted, so concurrent calls share it.
    """
    if is_wrapped(type(upsampler), "_prompt_upsample") or not hasattr(upsampler, "_prompt_upsample"):
        yield
        return
    key = id(upsampler)
    with _shadow_lock:
        if _shadow_users.get(key, 0) == 0:
            try:
                upsampler.__dict__["_prompt_upsample"] = _shadow_prompt_upsample.__get__(upsampler)
            except AttributeError:  # no instance dict (slots): the plan made before the call stands
                pass
        _shadow_users[key] = _shadow_users.get(key, 0) + 1
    try:
        yield
    finally:
        with _shadow_lock:
            _shadow_users[key] -= 1
            if _shadow_users[key] == 0:
                del _shadow_users[key]
                getattr(upsampler, "__dict__", {}).pop("_prompt_upsample", None)
