"""Synthetic stand-ins for a Cosmos-Transfer1 checkout, built from a patch alone.

Upstream's source may not be committed here, so tests build a *pre-image* tree from the
patch itself: for every file the patch touches, a file whose lines at each hunk's old start
are exactly that hunk's old lines (context and removed lines), with neutral filler lines
``# line N`` (N = the 1-based line number) everywhere else. The patch therefore applies at
its exact recorded line numbers, with ``git apply`` as well as with
:mod:`cosmos_upsample_fix.patching`.

Filler is added after the last hunk unless that hunk ends the file (it has fewer trailing
than leading context lines, or its last old line has no newline).

Usage::

    from tests.upstream_tree import make_preimage_tree   # or: from upstream_tree import ...
    root = make_preimage_tree(tmp_path / "cosmos")      # shipped patch by default
    root = make_preimage_tree(tmp_path / "other", my_patch_text)
"""
from __future__ import annotations

from pathlib import Path

from cosmos_upsample_fix.patching import Hunk, parse_patch, shipped_patch

TAIL_FILLER = 3  # filler lines after the last hunk when it does not end the file


def _filler(line_number: int) -> bytes:
    """Neutral filler for 1-based line ``line_number``."""
    return f"# line {line_number}\n".encode()


def _ends_file(hunk: Hunk) -> bool:
    """Whether the hunk must sit at the end of its file."""
    old = hunk.old_lines
    if old and not old[-1].endswith(b"\n"):
        return True
    return hunk.trailing_context < hunk.leading_context


def preimage_files(patch_text: str | None = None) -> dict[str, bytes]:
    """Pre-image content of every file in the patch (the shipped one by default), by relative path."""
    files: dict[str, bytes] = {}
    for file_patch in parse_patch(shipped_patch() if patch_text is None else patch_text):
        lines: list[bytes] = []
        for hunk in file_patch.hunks:
            start = hunk.old_start - 1 if hunk.old_count else hunk.old_start  # 0-based first old line
            if start < len(lines):
                raise ValueError(f"{file_patch.path}: hunks overlap or are out of order at {hunk.header}")
            while len(lines) < start:
                lines.append(_filler(len(lines) + 1))
            lines.extend(hunk.old_lines)
        if not _ends_file(file_patch.hunks[-1]):
            for _ in range(TAIL_FILLER):
                lines.append(_filler(len(lines) + 1))
        files[file_patch.path] = b"".join(lines)
    return files


def make_preimage_tree(root: Path, patch_text: str | None = None) -> Path:
    """Write the pre-image of the patch (the shipped one by default) under ``root``; returns ``root``.

    Creates ``root/cosmos_transfer1/...`` (whatever paths the patch names) and nothing else.
    """
    root = Path(root)
    for rel, data in preimage_files(patch_text).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    return root
