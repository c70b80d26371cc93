"""Synthetic stand-ins for a Cosmos-Transfer1 checkout, built from a patch alone.

Upstream's source may not be committed here, so tests build a *pre-image* tree from the
patch itself: for every file the patch touches, a file whose lines at each hunk's old start
are exactly that hunk's old lines (context and removed lines), with neutral filler lines
``# line N`` (N = the 1-based line number) everywhere else. The patch therefore applies at
its exact recorded line numbers, with ``git apply`` as well as with
:mod:`cosmos_upsample_fix.patching.tree`.

Filler is added after the last hunk unless that hunk ends the file (it has fewer trailing
than leading context lines, or its last old line has no newline).

Usage::

    from tests.upstream_tree import make_preimage_tree   # or: from upstream_tree import ...
    root = make_preimage_tree(tmp_path / "cosmos")      # shipped patch by default
    root = make_preimage_tree(tmp_path / "other", my_patch_text)

Upstream's own history, when a git repository of it is on this machine (never committed
here): :func:`upstream_git_dir` finds it (``COSMOS_TRANSFER1_GIT``),
:func:`upstream_revisions` lists the commits since 2025-03-26 that touched the patched files,
and :func:`write_revision` writes those files of one commit under a folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cosmos_upsample_fix.patching.engine import Hunk, parse_patch
from cosmos_upsample_fix.patching.tree import shipped_patch

UPSTREAM_GIT_ENV = "COSMOS_TRANSFER1_GIT"
HISTORY_SINCE = "2025-03-26"

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


# --------------------------------------------------------------------------- upstream history


@dataclass(frozen=True)
class Revision:
    """One upstream commit: full hash, short hash, commit date (YYYY-MM-DD)."""

    commit: str
    short: str
    date: str


def upstream_git_dir() -> Path | None:
    """Upstream's git directory (``$COSMOS_TRANSFER1_GIT``), or None if absent."""
    if shutil.which("git") is None:
        return None
    value = os.environ.get(UPSTREAM_GIT_ENV)
    if not value:
        return None
    path = Path(value)
    if (path / ".git").is_dir():
        path = path / ".git"
    return path if (path / "objects").is_dir() else None


def _git(git_dir: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], input=stdin, capture_output=True, check=True
    ).stdout


def upstream_revisions(git_dir: Path, files: list[str], since: str = HISTORY_SINCE) -> list[Revision]:
    """Commits since ``since`` that touched any of ``files`` (newest first)."""
    out = _git(git_dir, "log", "--format=%H %h %ad", "--date=short", f"--since={since}", "--", *files)
    return [Revision(*line.split()) for line in out.decode().splitlines()]


def write_revision(git_dir: Path, commit: str, files: list[str], dest: Path) -> Path:
    """Write ``files`` as they are in ``commit`` under ``dest`` (one ``git cat-file --batch``); returns ``dest``."""
    out = _git(git_dir, "cat-file", "--batch", stdin="".join(f"{commit}:{rel}\n" for rel in files).encode())
    pos = 0
    for rel in files:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if header[-1] == b"missing":
            raise FileNotFoundError(f"{rel} is not in {commit}")
        size = int(header[2])
        data = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest
