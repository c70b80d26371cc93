"""Creating the files the package writes for a user: a new file or nothing, never an overwrite.

Every writer of user-visible files (``prepare``'s PNGs, ``hint``'s and the demo's mp4, the
preview PNGs) opens its file through :func:`create_new`, so the refusal and its wording are
the same everywhere, and :func:`new_file` removes a file left half-written by a failure.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cosmos_upsample_fix.errors import InputError, OutputExistsError, UpsampleFixError

MAX_FREE_NAMES = 1000
"""How many numbered names :func:`create_free` tries before it gives up."""


def create_new(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary writing only when nothing is there (an exclusive create).

    Raises :class:`OutputExistsError` ("PATH already exists; not overwriting it") when
    something is, and InputError for any other reason the file cannot be made.
    """
    try:
        return open(path, "xb")
    except FileExistsError:
        raise OutputExistsError(f"{os.fspath(path)} already exists; not overwriting it") from None
    except OSError as exc:
        raise InputError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None


def create_free(path: str | os.PathLike[str]) -> tuple[BinaryIO, Path]:
    """:func:`create_new` of ``path``, else of ``STEM-2.SUFFIX``, ``STEM-3.SUFFIX``...: the first name free.

    For files made again on every run (scan's previews): a second run writes beside the
    first one's files instead of failing or overwriting them.
    """
    path = Path(path)
    for number in range(1, MAX_FREE_NAMES + 1):
        candidate = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
        try:
            return create_new(candidate), candidate
        except OutputExistsError:
            continue
    raise OutputExistsError(f"{path} and {MAX_FREE_NAMES - 1} numbered names beside it already exist")


@contextmanager
def new_file(path: str | os.PathLike[str], free_name: bool = False) -> Iterator[tuple[BinaryIO, Path]]:
    """``with new_file(path) as (handle, written):`` a new file, removed again if the block fails.

    ``free_name`` picks the first free numbered name (:func:`create_free`) instead of refusing.
    An OSError while writing (a full disk) becomes InputError "cannot write PATH: why".
    """
    handle, written = create_free(path) if free_name else (create_new(path), Path(path))
    try:
        with handle:
            yield handle, written
    except BaseException as exc:
        written.unlink(missing_ok=True)  # no truncated file left behind
        if isinstance(exc, OSError) and not isinstance(exc, UpsampleFixError):  # e.g. a full disk
            raise InputError(f"cannot write {written}: {exc.strerror or exc}") from None
        raise
