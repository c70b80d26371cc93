"""Wrap methods of upstream's ``PixtralPromptUpsampler``, now or as soon as its module loads.

The install machinery of :mod:`.runtime`, kept apart from what the wrappers do: it is given
one factory per method name (``original -> wrapper``), hooks the class when
``cosmos_transfer1.auxiliary.upsampler.model.upsampler`` is imported (an import hook on
``sys.meta_path``) or right away when it is already imported, and puts the very same
function objects back on :func:`deactivate`. The caller holds the lock that makes
activate/deactivate atomic with its own state.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

TARGET_MODULE = "cosmos_transfer1.auxiliary.upsampler.model.upsampler"
TARGET_CLASS = "PixtralPromptUpsampler"
MARK = "_cosmos_upsample_fix"
"""Attribute set on every wrapper, so a wrapper is never wrapped again."""

Factory = Callable[[Callable[..., Any]], Callable[..., Any]]


class _State:
    def __init__(self) -> None:
        self.factories: dict[str, Factory] = {}
        self.finder: PatchOnImport | None = None
        self.originals: dict[tuple[type, str], Callable[..., Any]] = {}


_state = _State()


def is_wrapper(func: Any) -> bool:
    """True for a function made by one of the factories."""
    return bool(getattr(func, MARK, False))


def _wrap(original: Callable[..., Any], factory: Factory) -> Callable[..., Any]:
    wrapper = factory(original)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__doc__ = original.__doc__
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = getattr(original, "__qualname__", original.__name__)
    setattr(wrapper, MARK, True)
    return wrapper


def patch_module(module: types.ModuleType) -> None:
    """Wrap the target class's methods in ``module`` (each once)."""
    klass = getattr(module, TARGET_CLASS, None)
    if klass is None:
        log.warning("cosmos-upsample-fix: %s has no %s; nothing to hook", module.__name__, TARGET_CLASS)
        return
    for name, factory in _state.factories.items():
        current = klass.__dict__.get(name)
        if current is None or is_wrapper(current):
            continue
        _state.originals[(klass, name)] = current
        setattr(klass, name, _wrap(current, factory))


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Hooks upstream's upsampler class as soon as its module is imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != TARGET_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = PatchingLoader(spec.loader)
                return spec
        return None


class PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then hooks the class."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        patch_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def activate(factories: Mapping[str, Factory]) -> None:
    """Wrap the named methods with ``factories`` (now if imported, else at import). Idempotent."""
    _state.factories = dict(factories)
    if _state.finder is None:
        _state.finder = PatchOnImport()
        sys.meta_path.insert(0, _state.finder)
    module = sys.modules.get(TARGET_MODULE)
    if module is not None:
        patch_module(module)


def deactivate() -> None:
    """Put upstream's own functions back and stop hooking imports. Idempotent."""
    if _state.finder is not None:
        try:
            sys.meta_path.remove(_state.finder)
        except ValueError:
            pass
        _state.finder = None
    for (klass, name), original in _state.originals.items():
        if is_wrapper(klass.__dict__.get(name)):
            setattr(klass, name, original)
    _state.originals.clear()


def is_active() -> bool:
    """True between :func:`activate` and :func:`deactivate`."""
    return _state.finder is not None


def is_wrapped(klass: type, name: str) -> bool:
    """True when ``klass`` (or a base) has our wrapper as ``name``."""
    return is_wrapper(getattr(klass, name, None))


def upstream_method(obj: Any, name: str) -> Callable[..., Any]:
    """``obj``'s own method ``name`` with our wrappers skipped (upstream's function, bound)."""
    for klass in type(obj).__mro__:
        func = klass.__dict__.get(name)
        if func is None:
            continue
        if is_wrapper(func):
            func = getattr(func, "__wrapped__", func)
        return types.MethodType(func, obj)
    return getattr(obj, name)
