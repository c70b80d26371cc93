"""cosmos-upsample-fix: make Cosmos-Transfer1's prompt upsampler fit its context window.

Public API (imported lazily, so ``import cosmos_upsample_fix`` stays cheap on every rank):

- :func:`install` / :func:`uninstall`: put the budget-fitting hook around upstream's
  ``PixtralPromptUpsampler._prompt_upsample_with_offload`` (before or after Cosmos is imported).
- :func:`plan_frames`: read a video's frames and downsize them so the request fits.
- :class:`Options`, :func:`parse_policy`, :class:`Limits`: the user's options, the policy
  string, and the engine limits.
- :class:`UpsampleFixError`: the base of every error the package raises on purpose.
"""
from __future__ import annotations

from typing import Any

DISTRIBUTION = "cosmos-upsample-fix"

__all__ = [
    "install", "uninstall", "plan_frames", "Options", "parse_policy", "Limits", "UpsampleFixError", "__version__"
]

_EXPORTS = {
    "install": "cosmos.runtime",
    "uninstall": "cosmos.runtime",
    "plan_frames": "planning.planner",
    "Options": "core.options",
    "parse_policy": "core.options",
    "Limits": "core.budget",
    "UpsampleFixError": "errors",
}


def _version() -> str:
    """The installed distribution's version: the project metadata is its one source."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a source folder without installed metadata
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cosmos_upsample_fix' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
