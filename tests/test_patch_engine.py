"""Tests of cosmos_upsample_fix.patching.engine: parsing, offsets, fuzz, and apply/revert as inverses."""
from __future__ import annotations

import difflib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patching.engine import (
    DEFAULT_FUZZ,
    FilePatch,
    HunkFailed,
    apply_file,
    apply_to_bytes,
    apply_to_text,
    parse_patch,
    split_lines,
)

GIT = shutil.which("git")


def unified(old: str, new: str, context: int = 3) -> str:
    """A one-file unified diff as ``git diff`` writes it, from the standard library's difflib."""
    rows = difflib.unified_diff(
        _lines(old),
        _lines(new),
        "a/f.py",
        "b/f.py",
        n=context,
    )
    out = []
    for row in rows:
        out.append(row)
        if not row.endswith("\n"):  # difflib leaves the marker to the caller
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def _lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only (``str.splitlines`` also splits at ``\\r``, ``\\x0b``, ...)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def only_file(patch_text: str) -> FilePatch:
    [file_patch] = parse_patch(patch_text)
    return file_patch


# --------------------------------------------------------------------------- apply and revert are inverses

POOL = ["x = 1", "", "    pass", "+plus", "-minus", "--- a/f", "@@ -1 +1 @@", "\\ back", "a\rb", "é", "  ", "def f():"]


def random_text(rng: random.Random, pool: list[str]) -> str:
    """A text of lines drawn (with repeats) from ``pool``, CRLF or LF, sometimes without a final newline."""
    eol = rng.choice(["\n", "\n", "\r\n"])
    text = "".join(rng.choice(pool) + eol for _ in range(rng.randint(0, 25)))
    if text and rng.random() < 0.3:
        text = text[: -len(eol)]
    return text


def random_edit(rng: random.Random, text: str, pool: list[str]) -> str:
    """``text`` with a few lines inserted, deleted or replaced."""
    lines = _lines(text)
    for _ in range(rng.randint(1, 5)):
        op, at = rng.choice("idr"), rng.randint(0, len(lines))
        if op == "i" or not lines:
            lines.insert(at, rng.choice(pool) + "\n")
        elif op == "d":
            del lines[min(at, len(lines) - 1)]
        else:
            lines[min(at, len(lines) - 1)] = rng.choice(pool) + "\n"
    if lines and rng.random() < 0.3:
        lines[-1] = lines[-1].rstrip("\n")
    return "".join(lines)


def test_property_apply_gives_the_new_text_and_revert_the_old_stdlib_only() -> None:
    rng = random.Random(20250326)
    checked = 0
    for _ in range(600):
        old = random_text(rng, POOL)
        new = random_edit(rng, old, POOL)
        patch = unified(old, new, context=rng.randint(0, 4))
        if not patch:  # the edit changed nothing
            continue
        fp = only_file(patch)
        assert apply_to_text(old, fp) == new, patch
        assert apply_to_text(new, fp, reverse=True) == old, patch
        checked += 1
    assert checked > 500


@settings(max_examples=200, deadline=None)
@given(
    old=st.lists(st.text(alphabet="ab \t+-\\@é\r", max_size=6), max_size=20),
    new=st.lists(st.text(alphabet="ab \t+-\\@é\r", max_size=6), max_size=20),
    context=st.integers(0, 3),
    final_newline=st.booleans(),
)
def test_property_hypothesis(old: list[str], new: list[str], context: int, final_newline: bool) -> None:
    old_text = "".join(line + "\n" for line in old)
    new_text = "".join(line + "\n" for line in new)
    if not final_newline and new_text:
        new_text = new_text[:-1]
    patch = unified(old_text, new_text, context)
    if not patch:
        return
    fp = only_file(patch)
    assert apply_to_text(old_text, fp) == new_text
    assert apply_to_text(new_text, fp, reverse=True) == old_text


# --------------------------------------------------------------------------- fuzz on drifted context

BASE = [f"line_{i} = {i}\n" for i in range(1, 41)]


def hook_patch() -> tuple[list[str], FilePatch]:
    """A file and a patch that inserts two lines between its lines 20 and 21 (3 context lines each side)."""
    new = BASE[:20] + ["hook_a()\n", "hook_b()\n"] + BASE[20:]
    return new, only_file(unified("".join(BASE), "".join(new)))


def drifted(changes: dict[int, str], inserted: dict[int, list[str]] | None = None) -> list[str]:
    """BASE with lines (1-based) replaced and blocks inserted before given lines."""
    lines = list(BASE)
    for number, text in changes.items():
        lines[number - 1] = text
    for number, block in sorted((inserted or {}).items(), reverse=True):
        lines[number - 1 : number - 1] = block
    return lines


# the hunk's context is lines 18-20 (before) and 21-23 (after); 20 and 21 are the anchors next to the change
FUZZ_CASES = {
    "outer line before changed": ({18: "changed = 18\n"}, None, 1),
    "two lines before changed": ({18: "c18\n", 19: "c19\n"}, None, 2),
    "outer line after changed": ({23: "changed = 23\n"}, None, 1),
    "two outer lines each side": ({18: "a\n", 19: "b\n", 22: "c\n", 23: "d\n"}, None, 2),
    "context moved away before": ({}, {19: ["new_code()\n", "more_code()\n"]}, 1),
    "context moved away after": ({}, {23: ["new_code()\n"]}, 1),
    "context moved further away after": ({}, {22: ["new_code()\n"]}, 2),
    "whole file shifted and drifted": ({17: "x\n", 23: "y\n"}, {2: ["# header\n"] * 7}, 1),
}


@pytest.mark.parametrize("name", list(FUZZ_CASES))
def test_drifted_context_applies_with_fuzz_and_reverts_byte_identically(name: str) -> None:
    changes, inserted, fuzz = FUZZ_CASES[name]
    _, fp = hook_patch()
    original = "".join(drifted(changes, inserted)).encode()
    with pytest.raises(HunkFailed):  # exact matching alone refuses it
        apply_file(original, fp, max_fuzz=0)
    applied = apply_file(original, fp)
    assert applied.fuzz == fuzz
    lines = split_lines(applied.data)
    at = lines.index(b"hook_a()\n")
    assert lines[at - 1] == b"line_20 = 20\n" and lines[at + 1] == b"hook_b()\n" and lines[at + 2] == b"line_21 = 21\n"
    # the file's own (drifted) lines are kept: only the two hook lines were added
    assert [ln for ln in lines if not ln.startswith(b"hook_")] == split_lines(original)
    assert apply_to_bytes(applied.data, fp, reverse=True) == original
    # once applied, the forward patch no longer matches at any fuzz: applying is not repeated
    with pytest.raises(HunkFailed):
        apply_file(applied.data, fp)


@pytest.mark.parametrize(
    "changes",
    [
        {20: "line_20 = 'changed'\n"},  # the anchor line before the change
        {21: "line_21 = 'changed'\n"},  # the anchor line after it
        {18: "a\n", 19: "b\n", 20: "c\n"},  # all three lines before
        {21: "a\n", 22: "b\n", 23: "c\n"},  # all three lines after
    ],
)
def test_changed_anchor_lines_refuse(changes: dict[int, str]) -> None:
    _, fp = hook_patch()
    with pytest.raises(HunkFailed, match="hunk 1/1 does not match the original text"):
        apply_file("".join(drifted(changes)).encode(), fp)


def test_removed_lines_never_fuzzed() -> None:
    new = BASE[:19] + ["replacement()\n"] + BASE[20:]  # line 20 replaced
    fp = only_file(unified("".join(BASE), "".join(new)))
    assert apply_to_bytes("".join(drifted({17: "x\n", 23: "y\n"})).encode(), fp).count(b"replacement()") == 1
    with pytest.raises(HunkFailed):
        apply_file("".join(drifted({20: "line_20 = 'edited'\n"})).encode(), fp)


def test_three_outer_lines_are_beyond_the_default_fuzz() -> None:
    assert DEFAULT_FUZZ == 2
    new = BASE[:20] + ["hook()\n"] + BASE[20:]
    fp = only_file(unified("".join(BASE), "".join(new), context=4))  # context: lines 17-20 and 21-24
    target = "".join(drifted({17: "a\n", 18: "b\n", 19: "c\n"})).encode()  # only line 20 is left before
    with pytest.raises(HunkFailed):
        apply_file(target, fp)
    applied = apply_file(target, fp, max_fuzz=3)
    assert applied.fuzz == 3 and apply_to_bytes(applied.data, fp, reverse=True, max_fuzz=3) == target


def test_exact_match_anywhere_beats_fuzz_nearby() -> None:
    """Every offset is tried without fuzz before any context is ignored."""
    _, fp = hook_patch()
    drift_here = drifted({18: "x\n"})
    original = drift_here + ["# far away\n"] + BASE[14:26]  # an exact copy of the context further down
    result = split_lines(apply_to_bytes("".join(original).encode(), fp))
    assert result.index(b"hook_a()\n") > len(drift_here)


def test_hunks_keep_their_order_and_offsets() -> None:
    new = list(BASE)
    new.insert(30, "second()\n")
    new.insert(5, "first()\n")
    fp = only_file(unified("".join(BASE), "".join(new)))
    assert len(fp.hunks) == 2
    shifted = ["# pad\n"] * 9 + drifted({3: "drift\n", 33: "drift\n"})
    result = apply_to_bytes("".join(shifted).encode(), fp)
    assert result == "".join(["# pad\n"] * 9 + _lines("".join(new))).replace(
        "line_3 = 3\n", "drift\n").replace("line_33 = 33\n", "drift\n").encode()
    assert apply_to_bytes(result, fp, reverse=True) == "".join(shifted).encode()


# --------------------------------------------------------------------------- formats


def test_crlf_file_with_lf_patch() -> None:
    new, fp = hook_patch()
    crlf = "".join(drifted({18: "c\n"})).replace("\n", "\r\n").encode()
    applied = apply_to_bytes(crlf, fp)
    assert b"hook_a()\r\nhook_b()\r\n" in applied and b"\n" not in applied.replace(b"\r\n", b"")
    assert apply_to_bytes(applied, fp, reverse=True) == crlf


NO_EOL_PATCH = "--- a/f\n+++ b/f\n@@ -8,3 +8,4 @@\n a = 1\n b = 2\n-c = 3\n\\ No newline at end of file\n"
NO_EOL_PATCH += "+c = 4\n+d = 5\n\\ No newline at end of file\n"


def test_no_newline_at_end_of_file() -> None:
    fp = only_file(NO_EOL_PATCH)
    head = b"".join(f"# {i}\n".encode() for i in range(7))
    assert apply_to_bytes(head + b"a = 1\nb = 2\nc = 3", fp) == head + b"a = 1\nb = 2\nc = 4\nd = 5"
    assert apply_to_bytes(head + b"a = 1\nb = 2\nc = 4\nd = 5", fp, reverse=True) == head + b"a = 1\nb = 2\nc = 3"
    with pytest.raises(HunkFailed):
        apply_file(head + b"a = 1\nb = 2\nc = 3\n", fp)


def test_parse_rejects_bad_patches() -> None:
    with pytest.raises(PatchError, match="no file changes"):
        parse_patch("no diff here\n")
    with pytest.raises(PatchError, match="truncated"):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n")
    with pytest.raises(PatchError, match="unsafe"):
        parse_patch("--- a/../x.py\n+++ b/../x.py\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(PatchError, match="unsafe"):
        parse_patch("--- /etc/x.py\n+++ /etc/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(PatchError, match="unsupported"):
        parse_patch("--- /dev/null\n+++ b/x.py\n@@ -0,0 +1 @@\n+a\n")
    with pytest.raises(PatchError, match="malformed hunk header"):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -x +1 @@\n-a\n+b\n")
    with pytest.raises(PatchError, match="malformed line"):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n*a\n+b\n")
    with pytest.raises(PatchError, match="no hunks"):
        parse_patch("--- a/x.py\n+++ b/x.py\n")


def test_nearest_position_wins() -> None:
    fp = only_file("--- a/f\n+++ b/f\n@@ -3,3 +3,3 @@\n x\n-y\n+Y\n z\n")
    data = b"x\ny\nz\n" + b"pad\n" * 10 + b"x\ny\nz\n"
    assert apply_to_bytes(data, fp) == b"x\nY\nz\n" + b"pad\n" * 10 + b"x\ny\nz\n"
    with pytest.raises(PatchError, match="hunk 1/1"):
        apply_to_bytes(b"x\ny\n", fp)


ANCHOR_CASES = [
    # (patch, data, applies): a hunk without trailing context must end the file, one at line 1 must start it
    ("--- a/f\n+++ b/f\n@@ -2,2 +2,3 @@\n a\n b\n+c\n", b"x\na\nb\n", True),
    ("--- a/f\n+++ b/f\n@@ -2,2 +2,3 @@\n a\n b\n+c\n", b"x\na\nb\nz\n", False),
    ("--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n+h\n a\n b\n", b"a\nb\nz\n", True),
    ("--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n+h\n a\n b\n", b"z\na\nb\n", False),
]


@pytest.mark.parametrize(("patch_text", "data", "applies"), ANCHOR_CASES)
def test_hunks_anchored_at_file_start_or_end(patch_text: str, data: bytes, applies: bool) -> None:
    fp = only_file(patch_text)
    if applies:
        apply_to_bytes(data, fp)
    else:
        with pytest.raises(PatchError):
            apply_to_bytes(data, fp)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_git_apply_agrees_on_anchors(tmp_path: Path) -> None:
    """One ``git apply --check`` per case (a subprocess: git is the reference, not our code)."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    for k, (patch_text, data, applies) in enumerate(ANCHOR_CASES):
        folder = tmp_path / str(k)
        folder.mkdir()
        (folder / "f").write_bytes(data)
        (folder / "p.patch").write_text(patch_text)
        result = subprocess.run([GIT, "apply", "--check", "p.patch"], cwd=folder, env=env, capture_output=True)
        assert (result.returncode == 0) is applies, patch_text
