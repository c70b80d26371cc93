"""The preprocessor hook registry: what runs on the upsampler's input before it is sent.

A preprocessor is a callable taking an :class:`UpsamplerCall` and returning the input the
upsampler should get next (a video path or a list of frame image paths), or ``None`` to
leave it as it is. Three sources, each replacing a hook of the same name from the one before:
the built-in budget fitter (registered here in code, so a copy of the package run without
installed metadata still fits), the entry-point group ``cosmos_upsample_fix.preprocessors``
(third-party packages take part with no code change; discovered once per process, again on
:func:`discover`, which ``install()`` calls), and :func:`register` (code in the same process).

Order: ascending ``order`` attribute of the callable (default 100; this package's
budget fitter is 1000, so it runs last and sees what the others made), then name.
``COSMOS_UPSAMPLE_FIX_ORDER="a,b"`` puts the named hooks first, in that order.
``COSMOS_UPSAMPLE_FIX_DISABLE="a,b"`` turns the named hooks off; ``all`` (or ``*``) turns
every hook off, so the upsampler gets upstream's input unchanged.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cosmos_upsample_fix.core import env

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cosmos_upsample_fix.preprocessors"
DEFAULT_ORDER = 100
BUDGET_FIT = "budget_fit"
"""The name of this package's built-in budget fitter (a hook of that name replaces it)."""

UpsamplerInput = str | list
"""A video path, or a list of frame image paths (what upstream's upsampler methods take)."""


@dataclass
class UpsamplerCall:
    """One upsampler call as the preprocessors see it.

    ``video`` is the current input (each preprocessor's result replaces it), ``workdir`` a
    private folder for this call that is removed afterwards, ``settings`` the plugin's
    settings, and ``notes`` a place for hooks to leave results (the budget fitter leaves its plan).
    """

    video: UpsamplerInput
    prompt: str
    upsampler: Any
    workdir: Path
    settings: Any = None
    notes: dict[str, Any] = field(default_factory=dict)


Preprocessor = Callable[[UpsamplerCall], UpsamplerInput | None]


@dataclass(frozen=True)
class Hook:
    """A named preprocessor with its place in the order."""

    name: str
    func: Preprocessor
    order: int = DEFAULT_ORDER


_registered: dict[str, Hook] = {}
_discovered: dict[str, Hook] | None = None
_lock = threading.Lock()


def register(name: str, func: Preprocessor, order: int | None = None) -> Hook:
    """Add (or replace) an in-process preprocessor; entry points of the same name lose to it."""
    hook = Hook(name, func, getattr(func, "order", DEFAULT_ORDER) if order is None else order)
    with _lock:
        _registered[name] = hook
    return hook


def unregister(name: str) -> None:
    """Remove an in-process preprocessor (no error if absent)."""
    with _lock:
        _registered.pop(name, None)


def _names(var: env.EnvVar) -> list[str]:
    return [n.strip() for n in (var.get() or "").split(",") if n.strip()]


def _from_entry_points() -> dict[str, Hook]:
    found: dict[str, Hook] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            func = ep.load()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            log.warning("preprocessor %r (%s) could not be loaded and is skipped: %s", ep.name, ep.value, exc)
            continue
        found[ep.name] = Hook(ep.name, func, int(getattr(func, "order", DEFAULT_ORDER)))
    return found


def _builtin() -> dict[str, Hook]:
    from cosmos_upsample_fix.cosmos.upsampler_call import budget_fit_preprocessor

    order = int(getattr(budget_fit_preprocessor, "order", DEFAULT_ORDER))
    return {BUDGET_FIT: Hook(BUDGET_FIT, budget_fit_preprocessor, order)}


def discover() -> dict[str, Hook]:
    """Look up the entry-point preprocessors again (once per process otherwise) and return them."""
    global _discovered
    found = _from_entry_points()
    with _lock:
        _discovered = found
    return dict(found)


def active_hooks() -> list[Hook]:
    """The enabled preprocessors, in the order they run."""
    hooks = _builtin()
    with _lock:
        discovered = _discovered
    hooks.update(discover() if discovered is None else discovered)
    with _lock:
        hooks.update(_registered)
    disabled = set(_names(env.DISABLE))
    if disabled & {"all", "*"}:
        return []
    first = _names(env.ORDER)
    ranked = sorted(
        (h for h in hooks.values() if h.name not in disabled),
        key=lambda h: (first.index(h.name) if h.name in first else len(first), h.order, h.name),
    )
    return ranked


def run_hooks(call: UpsamplerCall, hooks: list[Hook] | None = None) -> UpsamplerInput:
    """Run the preprocessors on ``call`` in order; returns the input the upsampler should get."""
    for hook in active_hooks() if hooks is None else hooks:
        result = hook.func(call)
        if result is not None:
            call.video = result
    return call.video
