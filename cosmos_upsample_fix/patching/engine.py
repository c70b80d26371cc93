"""A small unified-diff engine: parse a patch, apply or revert its hunks on a file's bytes.

Pure (no I/O), so neither ``git`` nor ``patch`` is needed and every rule is testable on its own:

* Files are handled as bytes split at ``\\n`` (terminators kept), so applying and reverting
  restore every byte. ``\\ No newline at end of file`` is honoured.
* A hunk is searched at its recorded line, then at growing offsets (nearest first, never
  before the previous hunk), as ``git apply`` and GNU ``patch`` do.
* Fuzz, as GNU ``patch`` has it: when a hunk's context does not match anywhere, up to
  ``max_fuzz`` outer context lines on each side are ignored, but the context line next to a
  change is always kept and removed lines always match exactly. Ignored lines keep the file's
  own text, so the reverse hunk finds the applied change again (by its added lines and the
  kept neighbours) and reverting a fuzzed apply restores the original bytes.
* A file whose every line ends in CRLF (a Windows checkout) that an LF-only patch does not
  match as written is matched with the patch's lines given CRLF endings, and added lines get
  CRLF too.
"""
from __future__ import annotations

from dataclasses import dataclass

from cosmos_upsample_fix.errors import PatchError

DEFAULT_FUZZ = 2  # GNU patch's default: with 3 context lines, at least 1 on each side is kept


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

    def trimmed(self, fuzz: int) -> tuple[Hunk, int]:
        """The hunk without up to ``fuzz`` outer context lines per side (the one next to a change stays).

        Returns the trimmed hunk and how many leading lines were dropped.
        """
        lead, trail = self.leading_context, self.trailing_context
        if lead == len(self.lines):  # no change at all: nothing to anchor on
            return self, 0
        drop_lead = min(fuzz, max(lead - 1, 0))
        drop_trail = min(fuzz, max(trail - 1, 0))
        if not drop_lead and not drop_trail:
            return self, 0
        lines = self.lines[drop_lead : len(self.lines) - drop_trail]
        old_count = sum(ln.tag in " -" for ln in lines)
        new_count = sum(ln.tag in " +" for ln in lines)
        trimmed = Hunk(self.old_start + drop_lead, old_count, self.new_start + drop_lead, new_count, lines)
        return trimmed, drop_lead


@dataclass(frozen=True)
class FilePatch:
    """The hunks for one file; ``path`` is relative to the checkout root (``a/``/``b/`` stripped)."""

    path: str
    hunks: tuple[Hunk, ...]

    def reversed(self) -> FilePatch:
        """The file patch that undoes this one."""
        return FilePatch(self.path, tuple(h.reversed() for h in self.hunks))


# --------------------------------------------------------------------------- parsing


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
    parts = path.replace("\\", "/").split("/")
    if not path or path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
        raise PatchError(f"unsafe path in patch: {path!r}")


def _parse_range(text: str) -> tuple[int, int]:
    """``"12,5"`` → (12, 5); ``"12"`` → (12, 1)."""
    start, _, count = text.partition(",")
    return int(start), int(count) if count else 1


def _parse_hunk(rows: list[str], i: int, path: str) -> tuple[Hunk, int]:
    """The hunk whose ``@@`` header is ``rows[i]``, and the index of the row after it."""
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
            raise PatchError(f"truncated hunk in patch for {path}")
        row = rows[i]
        i += 1
        if row.startswith("\\"):
            if not lines:
                raise PatchError(f"misplaced 'No newline' marker in patch for {path}")
            last = lines[-1]
            lines[-1] = HunkLine(last.tag, last.text[:-1] if last.text.endswith(b"\n") else last.text)
            continue
        tag = row[:1] or " "  # a blank line is an empty context line whose space was stripped
        if tag not in " -+":
            raise PatchError(f"malformed line in hunk for {path}: {row!r}")
        lines.append(HunkLine(tag, row[1:].encode("utf-8", "surrogateescape") + b"\n"))
        old_seen += tag in " -"
        new_seen += tag in " +"
    if old_seen != old_count or new_seen != new_count:
        raise PatchError(f"hunk line counts do not match its header in patch for {path}")
    return Hunk(old_start, old_count, new_start, new_count, tuple(lines)), i


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
            hunk, i = _parse_hunk(rows, i, new_path)
            hunks.append(hunk)
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


class HunkFailed(PatchError):
    """Hunk number ``index`` (0-based) of a file patch matches nowhere."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
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


def hunks_for(lines: list[bytes], hunks: tuple[Hunk, ...]) -> tuple[Hunk, ...]:
    """The hunks adapted to a CRLF file when the patch itself is LF-only."""
    if _is_crlf(lines) and not any(ln.text.endswith(b"\r\n") for h in hunks for ln in h.lines):
        return tuple(_to_crlf(h) for h in hunks)
    return hunks


def _first_old(hunk: Hunk) -> int:
    """0-based line where the hunk's old lines start (a pure insertion at ``-N,0`` goes after line N)."""
    return hunk.old_start - 1 if hunk.old_count else hunk.old_start


def _find_exact(lines: list[bytes], hunk: Hunk, expected: int, lowest: int, anchored: bool) -> int | None:
    """Position of the hunk's old lines nearest to ``expected`` (not before ``lowest``), or None."""
    old = hunk.old_lines
    n = len(old)
    highest = len(lines) - n
    if highest < lowest:
        return None
    zero_context = hunk.leading_context == 0 and hunk.trailing_context == 0
    must_begin = anchored and hunk.old_start <= 1 and not zero_context
    must_end = hunk.trailing_context == 0 and not zero_context

    def fits(pos: int) -> bool:
        if must_begin and pos != 0:
            return False
        if must_end and pos + n != len(lines):
            return False
        return (not n or lines[pos] == old[0]) and lines[pos : pos + n] == old

    expected = min(max(expected, lowest), highest)
    for distance in range(max(expected - lowest, highest - expected) + 1):
        for pos in (expected - distance, expected + distance) if distance else (expected,):
            if lowest <= pos <= highest and fits(pos):
                return pos
    return None


def locate(lines: list[bytes], hunk: Hunk, expected: int, lowest: int, max_fuzz: int) -> tuple[Hunk, int, int] | None:
    """Where the hunk matches: (the hunk as matched, its position, the fuzz used), or None.

    ``expected`` is the 0-based line the untrimmed hunk's old lines should start at. Every
    offset is tried at fuzz 0 before any fuzz is used.
    """
    for fuzz in range(max_fuzz + 1):
        trimmed, dropped = hunk.trimmed(fuzz)
        if fuzz and trimmed is hunk:
            break  # nothing more to trim
        pos = _find_exact(lines, trimmed, expected + dropped, lowest, anchored=dropped == 0)
        if pos is not None:
            return trimmed, pos, fuzz
    return None


@dataclass(frozen=True)
class Applied:
    """Result of applying one file patch: the new bytes and the largest fuzz any hunk needed."""

    data: bytes
    fuzz: int


def apply_lines(lines: list[bytes], hunks: tuple[Hunk, ...], max_fuzz: int = DEFAULT_FUZZ) -> tuple[list[bytes], int]:
    """Apply hunks in order; returns (new lines, largest fuzz used). Raises :class:`HunkFailed`."""
    out: list[bytes] = []
    done = 0  # lines of the original consumed so far
    offset = 0
    used = 0
    for index, hunk in enumerate(hunks):
        found = locate(lines, hunk, _first_old(hunk) + offset, done, max_fuzz)
        if found is None:
            raise HunkFailed(f"hunk {index + 1}/{len(hunks)} does not match", index)
        matched, pos, fuzz = found
        used = max(used, fuzz)
        offset = pos - _first_old(matched)
        out.extend(lines[done:pos])
        out.extend(matched.new_lines)
        done = pos + len(matched.old_lines)
    out.extend(lines[done:])
    return out, used


def apply_file(data: bytes, file_patch: FilePatch, *, reverse: bool = False, max_fuzz: int = DEFAULT_FUZZ) -> Applied:
    """``data`` with the file's hunks applied (or undone); :class:`HunkFailed` if one does not match."""
    hunks = file_patch.reversed().hunks if reverse else file_patch.hunks
    lines = split_lines(data)
    try:
        try:
            out, fuzz = apply_lines(lines, hunks, max_fuzz)
        except HunkFailed:
            adapted = hunks_for(lines, hunks)
            if adapted is hunks:
                raise
            out, fuzz = apply_lines(lines, adapted, max_fuzz)
    except HunkFailed as failed:
        what = "patched" if reverse else "original"
        raise HunkFailed(
            f"{file_patch.path}: hunk {failed.index + 1}/{len(hunks)} does not match the {what} text", failed.index
        ) from None
    return Applied(b"".join(out), fuzz)


def apply_to_bytes(data: bytes, file_patch: FilePatch, *, reverse: bool = False, max_fuzz: int = DEFAULT_FUZZ) -> bytes:
    """``data`` with the file's hunks applied (or undone); :class:`PatchError` if they do not match."""
    return apply_file(data, file_patch, reverse=reverse, max_fuzz=max_fuzz).data


def apply_to_text(text: str, file_patch: FilePatch, *, reverse: bool = False, max_fuzz: int = DEFAULT_FUZZ) -> str:
    """Text in, text out: :func:`apply_to_bytes` on the UTF-8 bytes of ``text``."""
    data = text.encode("utf-8", "surrogateescape")
    return apply_to_bytes(data, file_patch, reverse=reverse, max_fuzz=max_fuzz).decode("utf-8", "surrogateescape")


def hunk_found(lines: list[bytes], hunk: Hunk, max_fuzz: int = DEFAULT_FUZZ) -> bool:
    """Whether the hunk matches anywhere in the file on its own (used to explain a mismatch)."""
    return locate(lines, hunk, _first_old(hunk), 0, max_fuzz) is not None
