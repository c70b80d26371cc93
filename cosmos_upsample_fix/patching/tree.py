"""Check, apply and revert the shipped source patch on a Cosmos-Transfer1 checkout, all or nothing.

The patch adds ``--upsampler_policy`` and ``--upsampler_endpoint`` to upstream's entry points
and routes the prompt upsampler through :func:`cosmos_upsample_fix.cosmos.runtime.run_upsampler`.
Upstream's layout changed once around the hook lines (2025-06-15: a second pipeline
constructor call for the distilled model), so the patch ships in variants, one per layout
(:data:`VARIANTS`); the text matching uses :mod:`cosmos_upsample_fix.patching.engine`, whose
fuzz absorbs context that changed away from the hook lines.

State of a tree (:func:`check`): every patched file holds the patched text of one variant →
``APPLIED``; every file holds upstream's text that one variant applies to → ``APPLICABLE``;
anything else (some files or hunks patched and others not, local edits inside a patched
region, a file missing, another upstream layout, a folder that is not a checkout) →
``MISMATCH`` with a one-line reason that names the file.

Writes are all-or-nothing across the files: every new content is computed in memory and
every target is checked (regular file with a write permission bit) before anything is
written; each file is then written to a temporary file in its own folder with the original
permission bits and moved over the target with ``os.replace``. If any step fails, every file
already replaced is put back from the in-memory original and all temporary files are
removed, so the tree is left byte-for-byte as it was.

Symbolic links: ``cosmos_dir`` (and any folder above a target) may be a symlink; it is
followed. A *target file* that is itself a symlink is refused: its target may live outside
the checkout, and replacing the link would silently turn it into a regular file.
"""
from __future__ import annotations

import enum
import importlib.resources
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patching.engine import FilePatch, apply_file, hunk_found, hunks_for, parse_patch, split_lines

logger = logging.getLogger(__name__)

PATCH_RESOURCE = "cosmos-transfer1.patch"
PACKAGE_FOLDER = "cosmos_transfer1"
_TMP_SUFFIX = ".cuf-tmp"


@dataclass(frozen=True)
class Variant:
    """One shipped patch file and the upstream revisions it is made for."""

    resource: str
    covers: str


VARIANTS = (
    Variant(PATCH_RESOURCE, "upstream from 2025-06-15 on (a distilled and a regular pipeline call)"),
    Variant("cosmos-transfer1-2025-03.patch", "upstream from 2025-03-26 to 2025-06-06 (one pipeline call)"),
)
# Patches of earlier releases of this package: recognised so that ``revert`` can take them out.
EARLIER = (Variant("cosmos-transfer1-0.1.0.patch", "release 0.1.0 (--upsampler_policy only)"),)

# Fault-injection seam: tests replace this to make the n-th move fail.
_replace = os.replace


class PatchState(enum.IntEnum):
    """State of a checkout with respect to the shipped patch (values are ``check`` exit codes)."""

    APPLIED = 0
    APPLICABLE = 1
    MISMATCH = 2


@dataclass(frozen=True)
class PatchStatus:
    """Result of :func:`check`; on ``MISMATCH`` the message names the file and why."""

    state: PatchState
    message: str


def shipped_patch(resource: str = PATCH_RESOURCE) -> str:
    """Text of a patch shipped with the package (package data in :mod:`.patches`)."""
    path = importlib.resources.files("cosmos_upsample_fix.patching.patches").joinpath(resource)
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatchError(f"cannot read the shipped patch {resource}: {exc}") from exc


def shipped_patches() -> list[str]:
    """Text of every shipped variant, the newest layout first."""
    return [shipped_patch(v.resource) for v in VARIANTS]


def _earlier_applied(root: Path) -> tuple[Variant, _Survey] | None:
    """The patch of an earlier release if the tree holds it, with its survey (for revert)."""
    for variant in EARLIER:
        survey = _survey_one(root, shipped_patch(variant.resource))
        if survey.status.state is PatchState.APPLIED:
            return variant, survey
    return None


# --------------------------------------------------------------------------- tree state


@dataclass(frozen=True)
class _FileResult:
    """State of one target file, with the content to write for apply and for revert."""

    rel: str
    path: Path
    state: PatchState
    reason: str = ""
    original: bytes = b""
    patched: bytes | None = None  # content after apply (when APPLICABLE)
    reverted: bytes | None = None  # content after revert (when APPLIED)


@dataclass(frozen=True)
class _Survey:
    """State of a tree under one patch variant."""

    status: PatchStatus
    results: list[_FileResult]


def _explain(rel: str, data: bytes, file_patch: FilePatch) -> str:
    """One-line reason why a file is neither cleanly original nor cleanly patched."""
    lines = split_lines(data)
    forward = hunks_for(lines, file_patch.hunks)
    backward = hunks_for(lines, file_patch.reversed().hunks)
    applied, pending, neither = [], [], []
    for k, (fwd, back) in enumerate(zip(forward, backward), start=1):
        if hunk_found(lines, back):
            applied.append(k)
        elif hunk_found(lines, fwd):
            pending.append(k)
        else:
            neither.append(k)
    total = len(file_patch.hunks)
    if neither:
        hunk = file_patch.hunks[neither[0] - 1]
        return (
            f"{rel}: hunk {neither[0]}/{total} (near line {hunk.old_start}) matches neither upstream's nor the "
            "patched text (local edits in a patched region, or another upstream version)"
        )
    if applied and pending:
        return (
            f"{rel}: partly patched (hunks {', '.join(map(str, applied))} of {total} applied, "
            f"{', '.join(map(str, pending))} not)"
        )
    return f"{rel}: the hunks match but not in order (another upstream version?)"


def _not_a_checkout(root: Path) -> str | None:
    """Why ``root`` is not a cosmos-transfer1 checkout, or None if it looks like one."""
    if not root.exists():
        return f"{root} does not exist"
    if not root.is_dir():
        return f"{root} is not a folder"
    if not (root / PACKAGE_FOLDER).is_dir():
        hint = ""
        if root.name == PACKAGE_FOLDER:
            hint = f"; pass its parent folder {root.parent}"
        return f"{root} is not a cosmos-transfer1 checkout (no {PACKAGE_FOLDER}/ folder in it{hint})"
    return None


def _examine(root: Path, file_patch: FilePatch) -> _FileResult:
    """Classify one target file."""
    rel = file_patch.path
    path = root / rel
    mismatch = PatchState.MISMATCH
    if path.is_symlink():
        return _FileResult(rel, path, mismatch, f"{rel} is a symbolic link; refusing to patch through it")
    if not path.exists():
        return _FileResult(rel, path, mismatch, f"{rel} is missing (not a checkout of upstream's current layout)")
    if not path.is_file():
        return _FileResult(rel, path, mismatch, f"{rel} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _FileResult(rel, path, mismatch, f"{rel} cannot be read: {exc.strerror or exc}")
    try:
        patched = apply_file(data, file_patch)
    except PatchError:
        patched = None
    try:
        reverted = apply_file(data, file_patch, reverse=True)
    except PatchError:
        reverted = None
    if patched is not None and reverted is not None:
        return _FileResult(rel, path, mismatch, f"{rel}: both upstream's and the patched text match (ambiguous)")
    if reverted is not None:
        if reverted.fuzz:
            logger.info("%s: the patched text matches with fuzz %d", rel, reverted.fuzz)
        return _FileResult(rel, path, PatchState.APPLIED, original=data, reverted=reverted.data)
    if patched is not None:
        if patched.fuzz:
            logger.info("%s: upstream's text matches with fuzz %d", rel, patched.fuzz)
        return _FileResult(rel, path, PatchState.APPLICABLE, original=data, patched=patched.data)
    return _FileResult(rel, path, mismatch, _explain(rel, data, file_patch))


def _survey_one(root: Path, patch_text: str) -> _Survey:
    """State of the tree under one patch."""
    results = [_examine(root, fp) for fp in parse_patch(patch_text)]
    bad = [r for r in results if r.state is PatchState.MISMATCH]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        return _Survey(PatchStatus(PatchState.MISMATCH, f"{root}: {bad[0].reason}{more}"), results)
    applied = [r.rel for r in results if r.state is PatchState.APPLIED]
    pending = [r.rel for r in results if r.state is PatchState.APPLICABLE]
    if applied and pending:
        message = (
            f"{root}: partly patched tree: {applied[0]} is patched but {pending[0]} is not "
            f"({len(applied)} of {len(results)} files patched)"
        )
        return _Survey(PatchStatus(PatchState.MISMATCH, message), results)
    if applied:
        message = f"applied: {root} has the patch ({len(results)} files)"
        return _Survey(PatchStatus(PatchState.APPLIED, message), results)
    message = f"not applied: the patch applies cleanly to {root} ({len(results)} files)"
    return _Survey(PatchStatus(PatchState.APPLICABLE, message), results)


def _survey(cosmos_dir: str | os.PathLike[str], patch_text: str | None, *, reverting: bool = False) -> _Survey:
    """State of the tree under the variant that fits it best (the given patch alone if one is given).

    A variant the tree holds wins, then one that applies; when none fits, the reason comes
    from the variant with the most files in a clean state (the newest layout on a tie). A tree
    holding an earlier release's patch is a mismatch that says to revert it, and ``reverting``
    gets that patch's survey so that ``revert`` takes it out.
    """
    root = Path(cosmos_dir)
    reason = _not_a_checkout(root)
    if reason:
        return _Survey(PatchStatus(PatchState.MISMATCH, reason), [])
    texts = shipped_patches() if patch_text is None else [patch_text]
    surveys = [_survey_one(root, text) for text in texts]
    for wanted in (PatchState.APPLIED, PatchState.APPLICABLE):
        for index, survey in enumerate(surveys):
            if survey.status.state is wanted:
                if patch_text is None:
                    logger.info("patch variant %s: %s", VARIANTS[index].resource, VARIANTS[index].covers)
                return survey
    if patch_text is None:
        earlier = _earlier_applied(root)
        if earlier is not None:
            variant, survey = earlier
            if reverting:
                return survey
            message = (
                f"{root} holds the patch of {variant.covers}; run `cosmos-upsample-fix patch revert {root}`, "
                "then `patch apply` for the current one"
            )
            return _Survey(PatchStatus(PatchState.MISMATCH, message), survey.results)
    return max(surveys, key=lambda s: sum(r.state is not PatchState.MISMATCH for r in s.results))


def check(cosmos_dir: str | os.PathLike[str], *, patch_text: str | None = None) -> PatchStatus:
    """Whether the (shipped) patch is applied to, applicable to, or mismatched with the checkout."""
    try:
        return _survey(cosmos_dir, patch_text).status
    except PatchError as exc:
        return PatchStatus(PatchState.MISMATCH, str(exc))


# --------------------------------------------------------------------------- writing


def _writable(path: Path) -> str | None:
    """Why ``path`` cannot be replaced, or None (a file without any write bit counts as read-only, even for root)."""
    try:
        st = path.lstat()
    except OSError as exc:
        return f"{path} cannot be inspected: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not (st.st_mode & 0o222) or not os.access(path, os.W_OK):
        return f"{path} is read-only"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"folder {path.parent} is not writable"
    return None


def _write_temp(target: Path, data: bytes, mode: int, owner: tuple[int, int]) -> Path:
    """Write ``data`` to a new temporary file next to ``target`` with the given permission bits."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if hasattr(os, "chown"):
            try:
                os.chown(tmp, *owner)
            except OSError:
                pass  # keeping the owner is best effort; the permission bits are not
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_all(changes: list[tuple[Path, bytes, bytes]]) -> None:
    """Replace every file atomically as a group: all new contents, or the tree exactly as before.

    ``changes`` holds (path, original bytes, new bytes). Raises :class:`PatchError`.
    """
    for path, _, _ in changes:
        why = _writable(path)
        if why:
            raise PatchError(f"nothing written: {why}")
    temps: dict[Path, Path] = {}
    replaced: list[tuple[Path, bytes, int, tuple[int, int]]] = []
    try:
        for path, _, new in changes:
            st = path.stat()
            temps[path] = _write_temp(path, new, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))
        for path, old, _ in changes:
            st = path.stat()
            _replace(temps[path], path)
            del temps[path]
            replaced.append((path, old, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)))
    except BaseException as exc:
        for tmp in temps.values():
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                logger.error("could not remove temporary file %s", tmp)
        failed = _restore(replaced)
        if not isinstance(exc, Exception):
            raise
        detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        if failed:
            raise PatchError(
                f"writing failed ({detail}) and {', '.join(map(str, failed))} could not be restored"
            ) from exc
        raise PatchError(f"writing failed, tree left unchanged: {detail}") from exc


def _restore(replaced: list[tuple[Path, bytes, int, tuple[int, int]]]) -> list[Path]:
    """Put back already replaced files from their in-memory originals; returns those that failed."""
    failed: list[Path] = []
    for path, old, mode, owner in reversed(replaced):
        try:
            tmp = _write_temp(path, old, mode, owner)
            try:
                os.replace(tmp, path)  # not the seam: restoring must not be fault-injected
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
        except OSError:
            logger.error("could not restore %s after a failed write", path)
            failed.append(path)
    return failed


def _change(cosmos_dir: str | os.PathLike[str], patch_text: str | None, *, reverse: bool) -> list[Path]:
    """Shared body of :func:`apply` and :func:`revert`."""
    survey = _survey(cosmos_dir, patch_text, reverting=reverse)
    if survey.status.state is PatchState.MISMATCH:
        raise PatchError(survey.status.message)
    done = PatchState.APPLICABLE if reverse else PatchState.APPLIED
    if survey.status.state is done:
        logger.info("nothing to do: %s", survey.status.message)
        return []
    changes: list[tuple[Path, bytes, bytes]] = []
    for r in survey.results:
        new = r.reverted if reverse else r.patched
        if new is None:  # a bug of ours: a clean survey has content for every file
            raise RuntimeError(f"no {'reverted' if reverse else 'patched'} content for {r.rel}")
        changes.append((r.path, r.original, new))
    _write_all(changes)
    for path, _, _ in changes:
        logger.info("%s %s", "reverted" if reverse else "patched", path)
    return [path for path, _, _ in changes]


def apply(cosmos_dir: str | os.PathLike[str], *, patch_text: str | None = None) -> list[Path]:
    """Apply the (shipped) patch; returns the files changed, ``[]`` if already applied."""
    return _change(cosmos_dir, patch_text, reverse=False)


def revert(cosmos_dir: str | os.PathLike[str], *, patch_text: str | None = None) -> list[Path]:
    """Undo the (shipped) patch byte for byte; returns the files changed, ``[]`` if not applied."""
    return _change(cosmos_dir, patch_text, reverse=True)
