"""Tests of cosmos_upsample_fix.patching: the diff engine, tree states, atomic writes, and the shipped patch."""
from __future__ import annotations

import ast
import hashlib
import logging
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest

from cosmos_upsample_fix import patching
from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patching import (
    PatchState,
    PatchStatus,
    apply,
    apply_to_bytes,
    check,
    parse_patch,
    revert,
    run_patch_command,
    shipped_patch,
)

try:
    from tests.upstream_tree import make_preimage_tree, preimage_files
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from upstream_tree import make_preimage_tree, preimage_files

MIRROR = Path("/work/.mirror/nvidia-cosmos+cosmos-transfer1/repo")
EXPECTED_FILES = {
    "cosmos_transfer1/diffusion/inference/transfer.py",
    "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py",
    "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py",
}
GIT = shutil.which("git")


# --------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, tuple[str, int, bool]]:
    """Every entry under root: relative path → (sha256 or link target, permission bits, is symlink)."""
    out: dict[str, tuple[str, int, bool]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            out[rel] = (os.readlink(path), 0, True)
        elif path.is_file():
            out[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode), False)
        else:
            out[rel] = ("<dir>", stat.S_IMODE(st.st_mode), False)
    return out


def patched_files() -> list[str]:
    """Relative paths of the shipped patch's files, in patch order."""
    return [fp.path for fp in parse_patch(shipped_patch())]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A synthesized pre-image tree of the shipped patch."""
    return make_preimage_tree(tmp_path / "cosmos")


def git_upstream_checkout(dest: Path) -> Path:
    """A sparse checkout (cosmos_transfer1/ only) of upstream's HEAD from the mirror or COSMOS_TRANSFER1_DIR."""
    if GIT is None:
        pytest.skip("git is not installed")
    source = Path(os.environ.get("COSMOS_TRANSFER1_DIR", MIRROR))
    if not source.exists():
        pytest.skip(f"no upstream repository at {source} (set COSMOS_TRANSFER1_DIR)")
    quiet = {"capture_output": True, "text": True}
    subprocess.run([GIT, "clone", "-q", "--no-checkout", str(source), str(dest)], check=True, **quiet)
    subprocess.run([GIT, "-C", str(dest), "sparse-checkout", "set", "cosmos_transfer1"], check=True, **quiet)
    subprocess.run([GIT, "-C", str(dest), "checkout", "-q"], check=True, **quiet)
    return dest


# --------------------------------------------------------------------------- the shipped patch


def test_shipped_patch_names_the_three_upstream_files() -> None:
    files = parse_patch(shipped_patch())
    assert {fp.path for fp in files} == EXPECTED_FILES
    for fp in files:
        for hunk in fp.hunks:
            assert hunk.leading_context <= 3 and hunk.trailing_context <= 3
            assert hunk.old_start > 14, f"{fp.path}: a hunk reaches into the license header"
            assert len(hunk.old_lines) == hunk.old_count and len(hunk.new_lines) == hunk.new_count


def test_shipped_patch_content() -> None:
    text = shipped_patch()
    added = [ln[1:] for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert sum('"--upsampler_policy",' in ln for ln in added) == 2
    assert sum(ln.strip() == "upsampler_policy=cfg.upsampler_policy," for ln in added) == 2
    assert sum("from cosmos_upsample_fix.runtime import run_upsampler" in ln for ln in added) == 2
    assert any(ln.strip() == "upsampler_policy: Optional[str] = None," for ln in added)
    assert any(ln.strip() == "self.upsampler_policy = upsampler_policy" for ln in added)


# --------------------------------------------------------------------------- round trip


def test_apply_check_reapply_revert_roundtrip(tree: Path) -> None:
    before = snapshot(tree)
    assert check(tree).state is PatchState.APPLICABLE

    changed = apply(tree)
    assert sorted(p.relative_to(tree).as_posix() for p in changed) == sorted(EXPECTED_FILES)
    after_apply = snapshot(tree)
    assert after_apply != before
    status = check(tree)
    assert isinstance(status, PatchStatus) and status.state is PatchState.APPLIED

    assert apply(tree) == []
    assert snapshot(tree) == after_apply

    assert sorted(p.relative_to(tree).as_posix() for p in revert(tree)) == sorted(EXPECTED_FILES)
    assert snapshot(tree) == before
    assert check(tree).state is PatchState.APPLICABLE
    assert revert(tree) == []
    assert snapshot(tree) == before


def test_applied_content_is_the_patch_new_side(tree: Path) -> None:
    apply(tree)
    for fp in parse_patch(shipped_patch()):
        data = (tree / fp.path).read_bytes()
        for hunk in fp.hunks:
            new = b"".join(hunk.new_lines)
            assert new in data
            start = sum(len(ln) for ln in data.splitlines(keepends=True)[: hunk.new_start - 1])
            assert data[start : start + len(new)] == new  # at the recorded new line number


def test_run_patch_command_exit_codes(tree: Path, tmp_path: Path) -> None:
    assert run_patch_command("check", str(tree))[0] == 1
    code, message = run_patch_command("apply", str(tree))
    assert code == 0 and "\n" not in message and "3 files" in message
    assert run_patch_command("check", str(tree))[0] == 0
    code, message = run_patch_command("apply", str(tree))
    assert code == 0 and "nothing to do" in message
    assert run_patch_command("revert", str(tree))[0] == 0
    assert run_patch_command("check", str(tree))[0] == 1
    assert "nothing to do" in run_patch_command("revert", str(tree))[1]

    empty = tmp_path / "empty"
    empty.mkdir()
    for action in ("check", "apply", "revert"):
        code, message = run_patch_command(action, str(empty))
        assert code == 2 and "not a cosmos-transfer1 checkout" in message and "\n" not in message
    assert run_patch_command("frobnicate", str(tree))[0] == 2


# --------------------------------------------------------------------------- mismatches


def test_empty_missing_and_wrong_folders(tmp_path: Path, tree: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status = check(empty)
    assert status.state is PatchState.MISMATCH and "not a cosmos-transfer1 checkout" in status.message
    with pytest.raises(PatchError, match="not a cosmos-transfer1 checkout"):
        apply(empty)
    assert check(tmp_path / "nope").state is PatchState.MISMATCH
    assert "does not exist" in check(tmp_path / "nope").message
    inner = check(tree / "cosmos_transfer1")  # the package folder instead of the checkout root
    assert inner.state is PatchState.MISMATCH and "parent" in inner.message
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert check(a_file).state is PatchState.MISMATCH


@pytest.mark.parametrize("rel", sorted(EXPECTED_FILES))
def test_other_layout_missing_file(tree: Path, rel: str) -> None:
    (tree / rel).unlink()
    before = snapshot(tree)
    status = check(tree)
    assert status.state is PatchState.MISMATCH
    assert rel in status.message and "missing" in status.message
    with pytest.raises(PatchError, match="missing"):
        apply(tree)
    assert snapshot(tree) == before


def test_other_layout_unrelated_content(tree: Path) -> None:
    rel = "cosmos_transfer1/diffusion/inference/transfer.py"
    (tree / rel).write_text("".join(f"x = {i}\n" for i in range(400)))
    status = check(tree)
    assert status.state is PatchState.MISMATCH
    assert rel in status.message and "matches neither" in status.message


@pytest.mark.parametrize("rel", sorted(EXPECTED_FILES))
def test_local_edit_in_patched_region(tree: Path, rel: str) -> None:
    fp = next(f for f in parse_patch(shipped_patch()) if f.path == rel)
    hunk_no = len(fp.hunks)
    target = fp.hunks[-1].old_lines[fp.hunks[-1].leading_context]  # a removed or first changed-near line
    path = tree / rel
    data = path.read_bytes()
    assert data.count(target) >= 1
    idx = data.rindex(target)
    path.write_bytes(data[:idx] + target.rstrip(b"\n") + b"  # local edit\n" + data[idx + len(target) :])
    before = snapshot(tree)
    status = check(tree)
    assert status.state is PatchState.MISMATCH
    assert rel in status.message and f"hunk {hunk_no}/" in status.message
    with pytest.raises(PatchError, match=rel.rsplit("/", 1)[1]):
        apply(tree)
    with pytest.raises(PatchError):
        revert(tree)
    assert snapshot(tree) == before
    assert run_patch_command("check", str(tree))[0] == 2


def test_local_edit_in_patched_region_after_apply(tree: Path) -> None:
    apply(tree)
    rel = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
    path = tree / rel
    data = path.read_bytes()
    path.write_bytes(data.replace(b"run_upsampler = None", b"run_upsampler = None  # mine", 1))
    status = check(tree)
    assert status.state is PatchState.MISMATCH and rel in status.message
    before = snapshot(tree)
    with pytest.raises(PatchError):
        revert(tree)
    assert snapshot(tree) == before


def test_edits_outside_patched_regions_and_line_offsets(tree: Path) -> None:
    rel = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
    path = tree / rel
    original = path.read_bytes()
    edited = b"# inserted 1\n# inserted 2\n# inserted 3\n# inserted 4\n# inserted 5\n" + original
    path.write_bytes(edited)
    assert check(tree).state is PatchState.APPLICABLE
    apply(tree)
    patched = path.read_bytes()
    assert patched.startswith(b"# inserted 1\n") and b"self.upsampler_policy = upsampler_policy" in patched
    assert check(tree).state is PatchState.APPLIED
    revert(tree)
    assert path.read_bytes() == edited


@pytest.mark.parametrize("left_unpatched", sorted(EXPECTED_FILES))
def test_half_patched_tree(tree: Path, left_unpatched: str) -> None:
    original = (tree / left_unpatched).read_bytes()
    apply(tree)
    (tree / left_unpatched).write_bytes(original)
    before = snapshot(tree)
    status = check(tree)
    assert status.state is PatchState.MISMATCH
    assert "partly patched" in status.message and left_unpatched in status.message
    with pytest.raises(PatchError, match="partly patched"):
        apply(tree)
    with pytest.raises(PatchError, match="partly patched"):
        revert(tree)
    assert snapshot(tree) == before


def test_partly_patched_file(tree: Path) -> None:
    fp = next(f for f in parse_patch(shipped_patch()) if len(f.hunks) >= 3)
    apply(tree)
    path = tree / fp.path
    only_first = patching.FilePatch(fp.path, fp.hunks[:1])
    path.write_bytes(apply_to_bytes(path.read_bytes(), only_first, reverse=True))
    status = check(tree)
    assert status.state is PatchState.MISMATCH
    assert fp.path in status.message and "partly patched (hunks 2" in status.message and "1 not" in status.message


# --------------------------------------------------------------------------- writes


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("action", ["apply", "revert"])
def test_read_only_file_writes_nothing(tree: Path, action: str) -> None:
    if action == "revert":
        apply(tree)
    last = tree / patched_files()[-1]  # the last file: a non-atomic writer would change the others first
    last.chmod(0o444)
    before = snapshot(tree)
    with pytest.raises(PatchError, match="read-only"):
        (apply if action == "apply" else revert)(tree)
    assert snapshot(tree) == before
    code, message = run_patch_command(action, str(tree))
    assert code == 2 and "read-only" in message
    assert snapshot(tree) == before


def test_file_modes_preserved(tree: Path) -> None:
    modes = [0o640, 0o755, 0o604]
    for rel, mode in zip(patched_files(), modes):
        (tree / rel).chmod(mode)
    apply(tree)
    for rel, mode in zip(patched_files(), modes):
        assert stat.S_IMODE((tree / rel).stat().st_mode) == mode
    revert(tree)
    for rel, mode in zip(patched_files(), modes):
        assert stat.S_IMODE((tree / rel).stat().st_mode) == mode


@pytest.mark.parametrize("action", ["apply", "revert"])
def test_failure_of_second_replace_restores_tree(
    tree: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    if action == "revert":
        apply(tree)
    for rel, mode in zip(patched_files(), [0o640, 0o755, 0o600]):
        (tree / rel).chmod(mode)
    before = snapshot(tree)
    calls: list[tuple[str, str]] = []
    real = os.replace

    def flaky(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(patching, "_replace", flaky)
    with pytest.raises(PatchError, match="tree left unchanged"):
        (apply if action == "apply" else revert)(tree)
    assert len(calls) == 2  # the first file really was replaced, then put back
    assert snapshot(tree) == before  # same bytes, modes, and no temporary files left
    monkeypatch.setattr(patching, "_replace", real)
    assert check(tree).state is (PatchState.APPLICABLE if action == "apply" else PatchState.APPLIED)


def test_failure_while_writing_temp_files(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(tree)
    real = patching._write_temp
    calls = []

    def failing(*args: object, **kwargs: object) -> Path:
        calls.append(args)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(patching, "_write_temp", failing)
    with pytest.raises(PatchError):
        apply(tree)
    assert snapshot(tree) == before


def test_symlinked_cosmos_dir(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tree, target_is_directory=True)
    before = snapshot(tree)
    assert check(link).state is PatchState.APPLICABLE
    changed = apply(link)
    assert len(changed) == 3 and all(str(p).startswith(str(link)) for p in changed)
    assert link.is_symlink()
    assert check(tree).state is PatchState.APPLIED  # the real tree was patched
    assert run_patch_command("check", str(link))[0] == 0
    revert(link)
    assert snapshot(tree) == before


def test_symlinked_target_file_is_refused(tree: Path, tmp_path: Path) -> None:
    rel = patched_files()[0]
    elsewhere = tmp_path / "elsewhere.py"
    shutil.move(str(tree / rel), elsewhere)
    (tree / rel).symlink_to(elsewhere)
    before, outside = snapshot(tree), elsewhere.read_bytes()
    status = check(tree)
    assert status.state is PatchState.MISMATCH and "symbolic link" in status.message and rel in status.message
    with pytest.raises(PatchError, match="symbolic link"):
        apply(tree)
    assert snapshot(tree) == before and elsewhere.read_bytes() == outside


# --------------------------------------------------------------------------- line endings


def test_crlf_tree(tree: Path) -> None:
    lf = {rel: (tree / rel).read_bytes() for rel in patched_files()}
    for rel, data in lf.items():
        (tree / rel).write_bytes(data.replace(b"\n", b"\r\n"))
    before = snapshot(tree)
    assert check(tree).state is PatchState.APPLICABLE
    apply(tree)
    assert check(tree).state is PatchState.APPLIED
    for fp in parse_patch(shipped_patch()):
        expected = apply_to_bytes(lf[fp.path], fp).replace(b"\n", b"\r\n")
        assert (tree / fp.path).read_bytes() == expected
    revert(tree)
    assert snapshot(tree) == before


NO_EOL_PATCH = """\
diff --git a/cosmos_transfer1/eol.py b/cosmos_transfer1/eol.py
--- a/cosmos_transfer1/eol.py
+++ b/cosmos_transfer1/eol.py
@@ -8,3 +8,4 @@ def f():
 a = 1
 b = 2
-c = 3
\\ No newline at end of file
+c = 4
+d = 5
\\ No newline at end of file
"""


def test_no_newline_at_end_of_file(tmp_path: Path) -> None:
    root = make_preimage_tree(tmp_path / "t", NO_EOL_PATCH)
    path = root / "cosmos_transfer1/eol.py"
    original = path.read_bytes()
    assert original.endswith(b"\na = 1\nb = 2\nc = 3") and original.startswith(b"# line 1\n")
    assert check(root, patch_text=NO_EOL_PATCH).state is PatchState.APPLICABLE
    apply(root, patch_text=NO_EOL_PATCH)
    assert path.read_bytes() == original[: -len(b"c = 3")] + b"c = 4\nd = 5"
    assert check(root, patch_text=NO_EOL_PATCH).state is PatchState.APPLIED
    revert(root, patch_text=NO_EOL_PATCH)
    assert path.read_bytes() == original
    path.write_bytes(original + b"\n")  # now the old side's missing newline no longer matches
    assert check(root, patch_text=NO_EOL_PATCH).state is PatchState.MISMATCH


def test_ambiguous_file_is_a_mismatch(tmp_path: Path) -> None:
    patch_text = "--- a/cosmos_transfer1/m.py\n+++ b/cosmos_transfer1/m.py\n@@ -5,3 +5,3 @@\n a\n-b\n+c\n d\n"
    root = make_preimage_tree(tmp_path / "t", patch_text)
    path = root / "cosmos_transfer1/m.py"
    path.write_bytes(path.read_bytes() + b"a\nc\nd\n")  # both the old and the new text are present
    status = check(root, patch_text=patch_text)
    assert status.state is PatchState.MISMATCH and "ambiguous" in status.message and "m.py" in status.message


def test_parse_rejects_bad_patches() -> None:
    with pytest.raises(PatchError):
        parse_patch("no diff here\n")
    with pytest.raises(PatchError):
        parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n")
    with pytest.raises(PatchError, match="unsafe"):
        parse_patch("--- a/../x.py\n+++ b/../x.py\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(PatchError, match="unsupported"):
        parse_patch("--- /dev/null\n+++ b/x.py\n@@ -0,0 +1 @@\n+a\n")


def test_hunk_search_prefers_nearest_and_respects_order() -> None:
    text = "--- a/f\n+++ b/f\n@@ -3,3 +3,3 @@\n x\n-y\n z\n"
    text = text.replace(" z\n", "+Y\n z\n")
    fp = parse_patch(text)[0]
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
def test_hunks_anchored_at_file_start_or_end(tmp_path: Path, patch_text: str, data: bytes, applies: bool) -> None:
    fp = parse_patch(patch_text)[0]
    if applies:
        apply_to_bytes(data, fp)
    else:
        with pytest.raises(PatchError):
            apply_to_bytes(data, fp)
    if GIT is not None:  # git apply agrees
        (tmp_path / "f").write_bytes(data)
        (tmp_path / "p.patch").write_text(patch_text)
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
        result = subprocess.run([GIT, "apply", "--check", "p.patch"], cwd=tmp_path, env=env, capture_output=True)
        assert (result.returncode == 0) is applies


# --------------------------------------------------------------------------- git cross-checks


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_git_apply_accepts_shipped_patch_on_synthesized_tree(tree: Path, tmp_path: Path) -> None:
    patch_file = tmp_path / "shipped.patch"
    patch_file.write_bytes(shipped_patch().encode())
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    run = {"cwd": tree, "capture_output": True, "text": True, "env": env}
    result = subprocess.run([GIT, "apply", "--check", str(patch_file)], **run)
    assert result.returncode == 0, result.stderr
    # git's result and ours agree byte for byte, and git can reverse ours
    twin = make_preimage_tree(tmp_path / "twin")
    subprocess.run([GIT, "apply", str(patch_file)], **{**run, "cwd": twin}, check=True)
    apply(tree)
    for rel in EXPECTED_FILES:
        assert (tree / rel).read_bytes() == (twin / rel).read_bytes()
    result = subprocess.run([GIT, "apply", "-R", "--check", str(patch_file)], **run)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_git_apply_agrees_on_no_newline_patch(tmp_path: Path) -> None:
    ours = make_preimage_tree(tmp_path / "ours", NO_EOL_PATCH)
    theirs = make_preimage_tree(tmp_path / "theirs", NO_EOL_PATCH)
    patch_file = tmp_path / "eol.patch"
    patch_file.write_text(NO_EOL_PATCH)
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    subprocess.run([GIT, "apply", str(patch_file)], cwd=theirs, check=True, env=env, capture_output=True)
    apply(ours, patch_text=NO_EOL_PATCH)
    rel = "cosmos_transfer1/eol.py"
    assert (ours / rel).read_bytes() == (theirs / rel).read_bytes()


def test_preimage_helper_places_hunks_at_their_line_numbers() -> None:
    for fp in parse_patch(shipped_patch()):
        lines = preimage_files()[fp.path].splitlines(keepends=True)
        for hunk in fp.hunks:
            assert lines[hunk.old_start - 1 : hunk.old_start - 1 + hunk.old_count] == hunk.old_lines
        assert lines[0] == b"# line 1\n"


# --------------------------------------------------------------------------- real upstream


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A fresh checkout of upstream's HEAD (skips when no upstream repository is available)."""
    return git_upstream_checkout(tmp_path / "cosmos-transfer1")


def _git_diff_changes(repo: Path) -> list[str]:
    out = subprocess.run([GIT, "-C", str(repo), "diff"], capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_real_upstream_apply_check_revert(upstream: Path) -> None:
    files = sorted(EXPECTED_FILES)
    before = {rel: hashlib.sha256((upstream / rel).read_bytes()).hexdigest() for rel in files}
    assert check(upstream).state is PatchState.APPLICABLE, check(upstream).message
    assert len(apply(upstream)) == 3
    assert check(upstream).state is PatchState.APPLIED
    assert apply(upstream) == []
    for rel in files:
        py_compile.compile(str(upstream / rel), cfile=str(upstream / (rel + ".pyc-test")), doraise=True)
        (upstream / (rel + ".pyc-test")).unlink()
    shipped = [
        ln for ln in shipped_patch().splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    assert sorted(_git_diff_changes(upstream)) == sorted(shipped)
    assert len(revert(upstream)) == 3
    after = {rel: hashlib.sha256((upstream / rel).read_bytes()).hexdigest() for rel in files}
    assert after == before
    status = subprocess.run(
        [GIT, "-C", str(upstream), "status", "--porcelain", "--", "cosmos_transfer1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""
    assert check(upstream).state is PatchState.APPLICABLE


def test_real_upstream_git_apply_check(upstream: Path, tmp_path: Path) -> None:
    patch_file = tmp_path / "shipped.patch"
    patch_file.write_bytes(shipped_patch().encode())
    result = subprocess.run([GIT, "-C", str(upstream), "apply", "--check", str(patch_file)], capture_output=True)
    assert result.returncode == 0, result.stderr


class _Recorder:
    """Records calls; stands in for the upsampler, the runtime and upstream's logger."""

    def __init__(self, result: str = "UPSAMPLED") -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.result = result

    def __getattr__(self, name: str):
        def record(*args: object, **kwargs: object) -> str:
            self.calls.append((name, args, kwargs))
            return self.result

        return record


def _load_method(source: str, cls: str, method: str, namespace: dict) -> types.FunctionType:
    """Compile one method of a class from source into a plain function."""
    module = ast.parse(source)
    klass = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == cls)
    func = next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == method)
    exec(compile(ast.Module(body=[func], type_ignores=[]), "<patched>", "exec"), namespace)
    return namespace[method]


@pytest.mark.parametrize("plugin", [True, False])
@pytest.mark.parametrize("policy", [None, "max-side:640"])
def test_real_patched_process_prompt_upsampler(
    upstream: Path, monkeypatch: pytest.MonkeyPatch, plugin: bool, policy: str | None
) -> None:
    apply(upstream)
    rel = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
    log, runtime = _Recorder(), _Recorder("FITTED")
    fn = _load_method(
        (upstream / rel).read_text(),
        "DiffusionControl2WorldGenerationPipeline",
        "_process_prompt_upsampler",
        {"log": log, "generate_control_input": _Recorder("/made/control.mp4").generate},
    )
    if plugin:
        fake_runtime = types.SimpleNamespace(run_upsampler=runtime.run)
        monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", fake_runtime)
    else:
        monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", None)  # import fails
    upsampler = _Recorder("UPSTREAM")
    pipe = types.SimpleNamespace(
        prompt_upsampler=upsampler,
        upsampler_hint_key="seg",
        hint_details="seg",
        control_inputs={"seg": {"input_control": "/in/seg.mp4"}},
        upsampler_policy=policy,
    )
    result = fn(pipe, "a prompt", "/in/video.mp4", "/out")
    if plugin:
        assert result == "FITTED" and upsampler.calls == []
        assert runtime.calls == [("run", (upsampler, "a prompt", "/in/seg.mp4"), {"policy": policy})]
    else:
        assert result == "UPSTREAM"
        assert upsampler.calls == [
            ("_prompt_upsample_with_offload", (), {"prompt": "a prompt", "video_path": "/in/seg.mp4"})
        ]
        warnings = [c for c in log.calls if c[0] == "warning"]
        assert len(warnings) == (1 if policy else 0)
    del pipe.upsampler_policy  # a pipeline built by code that predates the patch
    assert fn(pipe, "p", "/in/video.mp4", "/out") in ("FITTED", "UPSTREAM")


@pytest.mark.parametrize("plugin", [True, False])
def test_real_patched_upsampler_pipeline_main(
    upstream: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], plugin: bool
) -> None:
    apply(upstream)
    rel = "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
    model, runtime, misc = _Recorder("UPSTREAM"), _Recorder("FITTED"), _Recorder()
    created = []

    def fake_model(checkpoint_dir: str, offload_prompt_upsampler: bool = False) -> _Recorder:
        created.append((checkpoint_dir, offload_prompt_upsampler))
        return model

    fakes = {
        "cosmos_transfer1": types.ModuleType("cosmos_transfer1"),
        "cosmos_transfer1.auxiliary": types.ModuleType("x"),
        "cosmos_transfer1.auxiliary.upsampler": types.ModuleType("x"),
        "cosmos_transfer1.auxiliary.upsampler.model": types.ModuleType("x"),
        "cosmos_transfer1.auxiliary.upsampler.model.upsampler": types.SimpleNamespace(
            PixtralPromptUpsampler=fake_model
        ),
        "cosmos_transfer1.utils": types.ModuleType("x"),
        "cosmos_transfer1.utils.misc": types.SimpleNamespace(
            extract_video_frames=lambda path: misc.extract(path) and ["/tmp/frame_1.png", "/tmp/frame_2.png"]
        ),
        "cosmos_upsample_fix.runtime": types.SimpleNamespace(run_upsampler=runtime.run) if plugin else None,
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict = {"__name__": "upsampler_pipeline_under_test"}
    exec(compile((upstream / rel).read_text(), str(upstream / rel), "exec"), namespace)
    argv = ["upsampler_pipeline.py", "--prompt", "p", "--input_video", "v.mp4", "--upsampler_policy", "fit"]
    monkeypatch.setattr(sys, "argv", argv)
    namespace["main"]()
    printed = capsys.readouterr().out
    if plugin:
        assert runtime.calls == [("run", (model, "p", "v.mp4"), {"policy": "fit"})]
        assert misc.calls == [] and model.calls == []
        assert "Upsampled prompt: FITTED" in printed
    else:
        assert misc.calls == [("extract", ("v.mp4",), {})]
        assert model.calls == [("_prompt_upsample_with_offload", ("p", ["/tmp/frame_1.png", "/tmp/frame_2.png"]), {})]
        assert "--upsampler_policy is ignored" in printed and "Upsampled prompt: UPSTREAM" in printed


def test_real_patched_transfer_wiring(upstream: Path) -> None:
    apply(upstream)
    source = (upstream / "cosmos_transfer1/diffusion/inference/transfer.py").read_text()
    tree = ast.parse(source)
    flags = [
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and getattr(n.func, "attr", None) == "add_argument"
        and n.args
        and isinstance(n.args[0], ast.Constant)
    ]
    assert flags.index("--upsampler_policy") == flags.index("--offload_prompt_upsampler") + 1
    for cls in ("DistilledControl2WorldGenerationPipeline", "DiffusionControl2WorldGenerationPipeline"):
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == cls]
        assert len(calls) == 1
        names = [k.arg for k in calls[0].keywords]
        assert names[names.index("offload_prompt_upsampler") + 1] == "upsampler_policy"
        value = calls[0].keywords[names.index("upsampler_policy")].value
        assert ast.unparse(value) == "cfg.upsampler_policy"
    wgp = ast.parse((upstream / "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py").read_text())
    name = "DiffusionControl2WorldGenerationPipeline"
    klass = next(n for n in wgp.body if isinstance(n, ast.ClassDef) and n.name == name)
    init = next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    params = [a.arg for a in init.args.args]
    assert params[params.index("offload_prompt_upsampler") + 1] == "upsampler_policy"
    default = init.args.defaults[params.index("upsampler_policy") - len(params)]
    assert isinstance(default, ast.Constant) and default.value is None


def test_logging_not_printing(tree: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cosmos_upsample_fix.patching"):
        apply(tree)
        revert(tree)
    assert capsys.readouterr() == ("", "")
    assert any("patched" in r.getMessage() for r in caplog.records)
