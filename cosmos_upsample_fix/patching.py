"""Apply, check and revert the shipped source patch for a Cosmos-Transfer1 checkout.

The patch (``patches/cosmos-transfer1.patch``, installed as the package data
``cosmos_upsample_fix.patches``) adds ``--upsampler_policy`` to upstream's entry points and
routes the prompt upsampler through :func:`cosmos_upsample_fix.runtime.run_upsampler`.

This module carries its own small unified-diff engine, so neither ``git`` nor ``patch`` is
needed:

* Files are handled as bytes. Hunk context must match byte for byte; a hunk may be found at
  a line offset from its recorded position (searched outwards, as ``git apply`` does), but
  there is no fuzz. ``\\ No newline at end of file`` is honoured.
* A file whose every line ends in CRLF (e.g. a Windows checkout) is matched with the patch's
  lines given CRLF endings, and lines the patch adds get CRLF too; every other file is
  matched exactly as the patch is written.
* Reverting applies the hunks backwards and restores the original bytes exactly.

State of a tree (:func:`check`): every patched file holds the patched text → ``APPLIED``;
every file holds upstream's text → ``APPLICABLE``; anything else (some files or hunks
patched and others not, local edits inside a patched region, a file missing, another
upstream layout, a folder that is not a checkout) → ``MISMATCH`` with a one-line reason that
names the file.

Writes are all-or-nothing across the files: every new content is computed in memory and
every target is checked (regular file with a write permission bit) before anything is
written; each file is then written to a temporary file in its own folder with the original
permission bits and moved over the target with ``os.replace``. If any step fails, every file
already replaced is put back from the in-memory original and all temporary files are
removed, so the tree is left byte-for-byte as it was.

Symbolic links: ``cosmos_dir`` (and any folder above a target) may be a symlink; it is
followed. A *target file* that is itself a symlink is refused (``MISMATCH`` / ``PatchError``)
instead of being patched through: its target may live outside the checkout (a shared or
read-only install), and replacing the link would silently turn it into a regular file.
Replace the link by a regular file, or patch the checkout the link points into.
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

logger = logging.getLogger(__name__)

PATCH_RESOURCE = "cosmos-transfer1.patch"
PACKAGE_FOLDER = "cosmos_transfer1"
_TMP_SUFFIX = ".cuf-tmp"

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


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class HunkLine:
    """One line of a hunk: tag ``' '`` (context), ``'-'`` (removed) or ``'+'`` (added)."""

    tag: str
    text: bytes  # the line's bytes including its terminator (none if "\ No newline")


@dataclass(frozen=True)
class Hunk:
    """One ``@@ -old_start,old_count +new_start,new_count @@`` block."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[HunkLine, ...]

    @property
    def old_lines(self) -> list[bytes]:
        """The lines the hunk expects (context and removed)."""
        return [ln.text for ln in self.lines if ln.tag in " -"]

    @property
    def new_lines(self) -> list[bytes]:
        """The lines the hunk produces (context and added)."""
        return [ln.text for ln in self.lines if ln.tag in " +"]

    @property
    def leading_context(self) -> int:
        """Number of context lines before the first change."""
        n = 0
        for ln in self.lines:
            if ln.tag != " ":
                break
            n += 1
        return n

    @property
    def trailing_context(self) -> int:
        """Number of context lines after the last change."""
        n = 0
        for ln in reversed(self.lines):
            if ln.tag != " ":
                break
            n += 1
        return n

    @property
    def header(self) -> str:
        """The hunk's ``@@ ... @@`` header."""
        return f"@@ -{self.old_start},{self.old_count} +{self.new_start},{self.new_count} @@"

    def reversed(self) -> Hunk:
        """The hunk that undoes this one."""
        swap = {" ": " ", "-": "+", "+": "-"}
        return Hunk(
            self.new_start,
            self.new_count,
            self.old_start,
            self.old_count,
            tuple(HunkLine(swap[ln.tag], ln.text) for ln in self.lines),
        )


@dataclass(frozen=True)
class FilePatch:
    """The hunks for one file; ``path`` is relative to the checkout root (``a/``/``b/`` stripped)."""

    path: str
    hunks: tuple[Hunk, ...]


def _header_path(raw: str) -> str:
    """Path of a ``---``/``+++`` header line without prefix, quotes or timestamp."""
    path = raw.split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1]
    if path == "/dev/null":
        return path
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def _check_relative(path: str) -> None:
    """Refuse a patch path that could leave the checkout."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise PatchError(f"unsafe path in patch: {path!r}")


def _parse_range(text: str) -> tuple[int, int]:
    """``"12,5"`` → (12, 5); ``"12"`` → (12, 1)."""
    start, _, count = text.partition(",")
    return int(start), int(count) if count else 1


def parse_patch(text: str) -> list[FilePatch]:
    """Parse a (git-style) unified diff of modified files into :class:`FilePatch` objects.

    Lines outside ``---``/``+++``/``@@`` blocks (``diff --git``, ``index``, commit text) are
    skipped. Creating, deleting or renaming files is not supported (:class:`PatchError`).
    """
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    files: list[FilePatch] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if not (row.startswith("--- ") and i + 1 < len(rows) and rows[i + 1].startswith("+++ ")):
            i += 1
            continue
        old_path, new_path = _header_path(row[4:]), _header_path(rows[i + 1][4:])
        if "/dev/null" in (old_path, new_path) or old_path != new_path:
            raise PatchError(f"unsupported file creation, deletion or rename in patch: {old_path} -> {new_path}")
        _check_relative(new_path)
        i += 2
        hunks: list[Hunk] = []
        while i < len(rows) and rows[i].startswith("@@ "):
            try:
                ranges = rows[i].split("@@")[1].split()
                old_start, old_count = _parse_range(ranges[0].lstrip("-"))
                new_start, new_count = _parse_range(ranges[1].lstrip("+"))
            except (IndexError, ValueError):
                raise PatchError(f"malformed hunk header in patch: {rows[i]!r}") from None
            i += 1
            lines: list[HunkLine] = []
            old_seen = new_seen = 0
            while old_seen < old_count or new_seen < new_count or (i < len(rows) and rows[i].startswith("\\")):
                if i >= len(rows):
                    raise PatchError(f"truncated hunk in patch for {new_path}")
                row = rows[i]
                i += 1
                if row.startswith("\\"):
                    if not lines:
                        raise PatchError(f"misplaced 'No newline' marker in patch for {new_path}")
                    last = lines[-1]
                    lines[-1] = HunkLine(last.tag, last.text[:-1] if last.text.endswith(b"\n") else last.text)
                    continue
                tag = row[:1] or " "  # a blank line is an empty context line whose space was stripped
                if tag not in " -+":
                    raise PatchError(f"malformed line in hunk for {new_path}: {row!r}")
                lines.append(HunkLine(tag, row[1:].encode("utf-8") + b"\n"))
                old_seen += tag in " -"
                new_seen += tag in " +"
            if old_seen != old_count or new_seen != new_count:
                raise PatchError(f"hunk line counts do not match its header in patch for {new_path}")
            hunks.append(Hunk(old_start, old_count, new_start, new_count, tuple(lines)))
        if not hunks:
            raise PatchError(f"no hunks for {new_path} in patch")
        files.append(FilePatch(new_path, tuple(hunks)))
    if not files:
        raise PatchError("the patch contains no file changes")
    return files


# --------------------------------------------------------------------------- applying


def split_lines(data: bytes) -> list[bytes]:
    """Split bytes into lines at ``\\n`` only, keeping terminators (``b"".join`` restores them)."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _HunkFailed(Exception):
    """Internal: hunk number ``index`` (0-based) did not match."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _is_crlf(lines: list[bytes]) -> bool:
    """True when the file has line breaks and every one of them is CRLF."""
    ended = [ln for ln in lines if ln.endswith(b"\n")]
    return bool(ended) and all(ln.endswith(b"\r\n") for ln in ended)


def _to_crlf(hunk: Hunk) -> Hunk:
    """The hunk with every LF line terminator turned into CRLF."""
    lines = tuple(
        HunkLine(ln.tag, ln.text[:-1] + b"\r\n" if ln.text.endswith(b"\n") else ln.text) for ln in hunk.lines
    )
    return Hunk(hunk.old_start, hunk.old_count, hunk.new_start, hunk.new_count, lines)


def _hunks_for(lines: list[bytes], hunks: tuple[Hunk, ...]) -> tuple[Hunk, ...]:
    """Adapt the hunks to a CRLF file when the patch itself is LF-only."""
    if _is_crlf(lines) and not any(ln.text.endswith(b"\r\n") for h in hunks for ln in h.lines):
        return tuple(_to_crlf(h) for h in hunks)
    return hunks


def _find(lines: list[bytes], hunk: Hunk, expected: int, lowest: int) -> int | None:
    """Position of the hunk's old lines nearest to ``expected`` (not before ``lowest``), or None."""
    old = hunk.old_lines
    n = len(old)
    highest = len(lines) - n
    if highest < lowest:
        return None
    zero_context = hunk.leading_context == 0 and hunk.trailing_context == 0
    must_begin = hunk.old_start <= 1 and not zero_context
    must_end = hunk.trailing_context == 0 and not zero_context

    def fits(pos: int) -> bool:
        if must_begin and pos != 0:
            return False
        if must_end and pos + n != len(lines):
            return False
        return lines[pos : pos + n] == old

    expected = min(max(expected, lowest), highest)
    for distance in range(max(expected - lowest, highest - expected) + 1):
        for pos in (expected - distance, expected + distance) if distance else (expected,):
            if lowest <= pos <= highest and fits(pos):
                return pos
    return None


def _apply_lines(lines: list[bytes], hunks: tuple[Hunk, ...]) -> list[bytes]:
    """Apply hunks in order; raises :class:`_HunkFailed` with the first hunk that does not match."""
    out: list[bytes] = []
    done = 0  # lines of the original consumed so far
    offset = 0
    for index, hunk in enumerate(hunks):
        expected = (hunk.old_start - 1 if hunk.old_count else hunk.old_start) + offset
        pos = _find(lines, hunk, expected, done)
        if pos is None:
            raise _HunkFailed(index)
        offset = pos - (hunk.old_start - 1 if hunk.old_count else hunk.old_start)
        out.extend(lines[done:pos])
        out.extend(hunk.new_lines)
        done = pos + len(hunk.old_lines)
    out.extend(lines[done:])
    return out


def apply_to_bytes(data: bytes, file_patch: FilePatch, *, reverse: bool = False) -> bytes:
    """Return ``data`` with the file's hunks applied (or undone); :class:`PatchError` if they do not match."""
    hunks = tuple(h.reversed() for h in file_patch.hunks) if reverse else file_patch.hunks
    lines = split_lines(data)
    try:
        return b"".join(_apply_lines(lines, _hunks_for(lines, hunks)))
    except _HunkFailed as failed:
        what = "patched" if reverse else "original"
        raise PatchError(
            f"{file_patch.path}: hunk {failed.index + 1}/{len(hunks)} does not match the {what} text"
        ) from None


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


def shipped_patch() -> str:
    """Text of the patch shipped with the package (package data; the source tree's ``patches/`` if not installed)."""
    try:
        resource = importlib.resources.files("cosmos_upsample_fix.patches").joinpath(PATCH_RESOURCE)
    except ModuleNotFoundError:  # run from a source checkout that is not installed
        resource = Path(__file__).resolve().parent.parent / "patches" / PATCH_RESOURCE
    try:
        return resource.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatchError(f"cannot read the shipped patch {PATCH_RESOURCE}: {exc}") from exc


def _hunk_found(lines: list[bytes], hunk: Hunk) -> bool:
    """Whether the hunk's old lines occur anywhere in the file (used only to explain a mismatch)."""
    return _find(lines, hunk, hunk.old_start - 1, 0) is not None


def _explain(rel: str, data: bytes, file_patch: FilePatch) -> str:
    """One-line reason why a file is neither cleanly original nor cleanly patched."""
    lines = split_lines(data)
    forward = _hunks_for(lines, file_patch.hunks)
    backward = _hunks_for(lines, tuple(h.reversed() for h in file_patch.hunks))
    applied, pending, neither = [], [], []
    for k, (fwd, back) in enumerate(zip(forward, backward), start=1):
        if _hunk_found(lines, back):
            applied.append(k)
        elif _hunk_found(lines, fwd):
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
        patched = apply_to_bytes(data, file_patch)
    except PatchError:
        patched = None
    try:
        reverted = apply_to_bytes(data, file_patch, reverse=True)
    except PatchError:
        reverted = None
    if patched is not None and reverted is not None:
        return _FileResult(rel, path, mismatch, f"{rel}: both upstream's and the patched text match (ambiguous)")
    if reverted is not None:
        return _FileResult(rel, path, PatchState.APPLIED, original=data, reverted=reverted)
    if patched is not None:
        return _FileResult(rel, path, PatchState.APPLICABLE, original=data, patched=patched)
    return _FileResult(rel, path, mismatch, _explain(rel, data, file_patch))


def _survey(cosmos_dir: str | os.PathLike[str], patch_text: str | None) -> tuple[PatchStatus, list[_FileResult]]:
    """State of the tree plus the per-file results."""
    root = Path(cosmos_dir)
    reason = _not_a_checkout(root)
    if reason:
        return PatchStatus(PatchState.MISMATCH, reason), []
    files = parse_patch(shipped_patch() if patch_text is None else patch_text)
    results = [_examine(root, fp) for fp in files]
    bad = [r for r in results if r.state is PatchState.MISMATCH]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        return PatchStatus(PatchState.MISMATCH, f"{root}: {bad[0].reason}{more}"), results
    applied = [r.rel for r in results if r.state is PatchState.APPLIED]
    pending = [r.rel for r in results if r.state is PatchState.APPLICABLE]
    if applied and pending:
        return (
            PatchStatus(
                PatchState.MISMATCH,
                f"{root}: partly patched tree: {applied[0]} is patched but {pending[0]} is not "
                f"({len(applied)} of {len(results)} files patched)",
            ),
            results,
        )
    if applied:
        return PatchStatus(PatchState.APPLIED, f"applied: {root} has the patch ({len(results)} files)"), results
    return (
        PatchStatus(PatchState.APPLICABLE, f"not applied: the patch applies cleanly to {root} ({len(results)} files)"),
        results,
    )


def check(cosmos_dir: str | os.PathLike[str], *, patch_text: str | None = None) -> PatchStatus:
    """Whether the (shipped) patch is applied to, applicable to, or mismatched with the checkout."""
    try:
        return _survey(cosmos_dir, patch_text)[0]
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
    status, results = _survey(cosmos_dir, patch_text)
    if status.state is PatchState.MISMATCH:
        raise PatchError(status.message)
    done = PatchState.APPLICABLE if reverse else PatchState.APPLIED
    if status.state is done:
        logger.info("nothing to do: %s", status.message)
        return []
    changes: list[tuple[Path, bytes, bytes]] = []
    for r in results:
        new = r.reverted if reverse else r.patched
        assert new is not None
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
    names = ", ".join(str(p.relative_to(cosmos_dir)) for p in changed)
    return 0, f"{verb} {len(changed)} files in {cosmos_dir}: {names}"
