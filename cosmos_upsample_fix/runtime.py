"""Public path of the Cosmos integration, kept stable for the source patch and for users.

The patched upstream imports :func:`run_upsampler` and :func:`install` from here; the code
lives in :mod:`cosmos_upsample_fix.cosmos.runtime`.
"""
from __future__ import annotations

from cosmos_upsample_fix.cosmos.runtime import (
    current_settings,
    install,
    is_installed,
    run_upsampler,
    uninstall,
)

__all__ = ["install", "uninstall", "is_installed", "run_upsampler", "current_settings"]
