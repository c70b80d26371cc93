"""The ``patch apply|check|revert`` command's text and exit codes, and the old import path.

The engine lives in :mod:`cosmos_upsample_fix.patch_engine` (pure text) and the transaction
on a checkout in :mod:`cosmos_upsample_fix.patch_tree`; their names are re-exported here so
code importing ``cosmos_upsample_fix.patching`` keeps working.
"""
from __future__ import annotations

from pathlib import Path

from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patch_engine import FilePatch, Hunk, HunkLine, apply_to_bytes, parse_patch, split_lines
from cosmos_upsample_fix.patch_tree import PatchState, PatchStatus, apply, check, revert, shipped_patch

__all__ = [
    "FilePatch",
    "Hunk",
    "HunkLine",
    "PatchState",
    "PatchStatus",
    "apply",
    "apply_to_bytes",
    "check",
    "parse_patch",
    "revert",
    "run_patch_command",
    "shipped_patch",
    "split_lines",
]


def run_patch_command(action: str, cosmos_dir: str) -> tuple[int, str]:
    """CLI helper: ``apply``/``check``/``revert`` → (exit code, one-line message).

    ``check``: 0 applied, 1 applicable but not applied, 2 mismatch. ``apply``/``revert``:
    0 on success (including nothing to do), 2 on any error.
    """
    if action == "check":
        status = check(cosmos_dir)
        return int(status.state), status.message
    if action not in ("apply", "revert"):
        return 2, f"unknown patch action {action!r} (use apply, check or revert)"
    try:
        changed = apply(cosmos_dir) if action == "apply" else revert(cosmos_dir)
    except PatchError as exc:
        return 2, f"{action} failed: {exc}"
    verb = "patched" if action == "apply" else "reverted"
    if not changed:
        already = "already patched" if action == "apply" else "not patched"
        return 0, f"nothing to do: {cosmos_dir} is {already}"
    names = ", ".join(str(Path(p).relative_to(cosmos_dir)) for p in changed)
    return 0, f"{verb} {len(changed)} files in {cosmos_dir}: {names}"
