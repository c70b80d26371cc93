"""Tests of cosmos_upsample_fix.patching.tree (and the ``patch`` command of the CLI): tree states, variants,
fuzz on drifted trees, atomic writes, the shipped patches, and every upstream revision when its history is here."""
from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import logging
import os
import shutil
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest

from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patching import tree as patch_tree
from cosmos_upsample_fix.patching.engine import FilePatch, apply_to_bytes, parse_patch, split_lines
from cosmos_upsample_fix.patching.tree import (
    VARIANTS,
    PatchState,
    PatchStatus,
    apply,
    check,
    revert,
    shipped_patch,
    shipped_patches,
)
from cosmos_upsample_fix.tools import cli

try:
    from tests import upstream_tree
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    import upstream_tree  # type: ignore[no-redef]

make_preimage_tree, preimage_files = upstream_tree.make_preimage_tree, upstream_tree.preimage_files
upstream_git_dir, upstream_revisions = upstream_tree.upstream_git_dir, upstream_tree.upstream_revisions
write_revision = upstream_tree.write_revision

EXPECTED_FILES = {
    "cosmos_transfer1/diffusion/inference/transfer.py",
    "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py",
    "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py",
}
TRANSFER = "cosmos_transfer1/diffusion/inference/transfer.py"
PIPELINE = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
STANDALONE = "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
GIT = shutil.which("git")
INSTALL_CALL = "install(policy=args.upsampler_policy, endpoint=args.upsampler_endpoint)"


def run_patch_command(action: str, cosmos_dir: str) -> tuple[int, str]:
    """``cosmos-upsample-fix patch ACTION DIR`` in-process: (exit status, what it printed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["patch", action, cosmos_dir])
        except SystemExit as exc:  # argparse refuses an unknown action
            code = int(exc.code or 0)
    return code, (out.getvalue() + err.getvalue()).strip()


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


def cli_patch(action: str, folder: Path) -> tuple[int, str, str]:
    """``cosmos-upsample-fix patch ACTION FOLDER`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["patch", action, str(folder)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A synthesized pre-image tree of the shipped patch."""
    return make_preimage_tree(tmp_path / "cosmos")


# --------------------------------------------------------------------------- upstream history


def _history():
    git_dir = upstream_git_dir()
    if git_dir is None:
        return None, []
    return git_dir, upstream_revisions(git_dir, sorted(EXPECTED_FILES))


GIT_DIR, REVISIONS = _history()
needs_history = pytest.mark.skipif(
    GIT_DIR is None, reason="no upstream git history here (set COSMOS_TRANSFER1_GIT to a cosmos-transfer1 clone)"
)


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """The three files of upstream's newest revision (skips without a local upstream history)."""
    if GIT_DIR is None:
        pytest.skip("no upstream git history here (set COSMOS_TRANSFER1_GIT to a cosmos-transfer1 clone)")
    return write_revision(GIT_DIR, REVISIONS[0].commit, sorted(EXPECTED_FILES), tmp_path / "cosmos-transfer1")


# --------------------------------------------------------------------------- the shipped patch


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.resource)
def test_shipped_patches_name_the_three_upstream_files(variant: patch_tree.Variant) -> None:
    files = parse_patch(shipped_patch(variant.resource))
    assert {fp.path for fp in files} == EXPECTED_FILES
    for fp in files:
        for hunk in fp.hunks:
            assert hunk.leading_context <= 3 and hunk.trailing_context <= 3
            assert hunk.old_start > 14, f"{fp.path}: a hunk reaches into the license header"
            assert len(hunk.old_lines) == hunk.old_count and len(hunk.new_lines) == hunk.new_count


@pytest.mark.parametrize(
    ("variant", "pipeline_calls"), tuple(zip(VARIANTS, (2, 1))), ids=lambda v: getattr(v, "resource", "")
)
def test_shipped_patch_content(variant: patch_tree.Variant, pipeline_calls: int) -> None:
    text = shipped_patch(variant.resource)
    added = [ln[1:] for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    for flag in ("--upsampler_policy", "--upsampler_endpoint"):
        assert sum(f'"{flag}",' in ln for ln in added) == 2  # transfer.py and the standalone pipeline
    assert sum(ln.strip() == "upsampler_policy=cfg.upsampler_policy," for ln in added) == pipeline_calls
    assert sum(ln.strip() == "upsampler_endpoint=cfg.upsampler_endpoint," for ln in added) == pipeline_calls
    assert sum("from cosmos_upsample_fix.runtime import run_upsampler" in ln for ln in added) == 2
    assert sum(ln.strip() == INSTALL_CALL for ln in added) == 2
    assert sum("endpoint=" in ln and "upsampler_endpoint" in ln for ln in added) >= 2 + pipeline_calls
    assert any(ln.strip() == "upsampler_policy: Optional[str] = None," for ln in added)
    assert any(ln.strip() == "upsampler_endpoint: Optional[str] = None," for ln in added)
    assert any(ln.strip() == "self.upsampler_endpoint = upsampler_endpoint" for ln in added)
    removed = [ln for ln in text.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    assert len(removed) == 3  # the upsampler calls only; everything else is added


def test_variants_differ_only_in_transfer_py() -> None:
    newest, oldest = (parse_patch(text) for text in shipped_patches())
    for a, b in zip(newest, oldest):
        same = [[ln for h in fp.hunks for ln in h.lines if ln.tag != " "] for fp in (a, b)]
        assert (same[0] == same[1]) is (a.path != TRANSFER), a.path


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.resource)
def test_each_variant_is_chosen_by_check(tmp_path: Path, variant: patch_tree.Variant) -> None:
    root = make_preimage_tree(tmp_path / "t", shipped_patch(variant.resource))
    before = snapshot(root)
    assert check(root).state is PatchState.APPLICABLE
    assert len(apply(root)) == 3 and check(root).state is PatchState.APPLIED and apply(root) == []
    for rel, data in preimage_files(shipped_patch(variant.resource)).items():  # this variant's own new text
        fp = next(f for f in parse_patch(shipped_patch(variant.resource)) if f.path == rel)
        assert (root / rel).read_bytes() == apply_to_bytes(data, fp, max_fuzz=0)
    assert len(revert(root)) == 3 and snapshot(root) == before


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
    only_first = FilePatch(fp.path, fp.hunks[:1])
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

    monkeypatch.setattr(patch_tree, "_replace", flaky)
    with pytest.raises(PatchError, match="tree left unchanged"):
        (apply if action == "apply" else revert)(tree)
    assert len(calls) == 2  # the first file really was replaced, then put back
    assert snapshot(tree) == before  # same bytes, modes, and no temporary files left
    monkeypatch.setattr(patch_tree, "_replace", real)
    assert check(tree).state is (PatchState.APPLICABLE if action == "apply" else PatchState.APPLIED)


def test_failure_while_writing_temp_files(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(tree)
    real = patch_tree._write_temp
    calls = []

    def failing(*args: object, **kwargs: object) -> Path:
        calls.append(args)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(patch_tree, "_write_temp", failing)
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


def test_preimage_helper_places_hunks_at_their_line_numbers() -> None:
    for fp in parse_patch(shipped_patch()):
        lines = preimage_files()[fp.path].splitlines(keepends=True)
        for hunk in fp.hunks:
            assert lines[hunk.old_start - 1 : hunk.old_start - 1 + hunk.old_count] == hunk.old_lines
        assert lines[0] == b"# line 1\n"




def test_earlier_release_patch_is_named_and_reverted(tmp_path: Path) -> None:
    [earlier] = patch_tree.EARLIER
    text = shipped_patch(earlier.resource)
    assert '"--upsampler_endpoint",' not in text
    root = make_preimage_tree(tmp_path / "t", text)
    pristine = snapshot(root)
    apply(root, patch_text=text)
    patched = snapshot(root)
    for action in ("check", "apply"):
        code, out, err = cli_patch(action, root)
        assert code == 2 and out == "" and "release 0.1.0" in err and "patch revert" in err, err
        assert len(err.strip().splitlines()) == 1
    assert snapshot(root) == patched
    code, out, _ = cli_patch("revert", root)
    assert code == 0 and out.startswith("reverted 3 files") and snapshot(root) == pristine


@needs_history
def test_earlier_release_patch_on_upstream_then_the_current_one(upstream: Path) -> None:
    pristine = snapshot(upstream)
    apply(upstream, patch_text=shipped_patch(patch_tree.EARLIER[0].resource))
    assert check(upstream).state is PatchState.MISMATCH
    assert len(revert(upstream)) == 3 and snapshot(upstream) == pristine
    assert len(apply(upstream)) == 3 and check(upstream).state is PatchState.APPLIED


# --------------------------------------------------------------------------- drifted trees (fuzz)


def drift(root: Path, *, hook: str | None = None) -> None:
    """Change the outermost context line on each side of every hunk (as upstream's edits near a hook do).

    With ``hook`` (a relative path), also edit the context line right before the first change of
    that file's last hunk: a hook line the patch anchors on.
    """
    for fp in parse_patch(shipped_patch()):
        path = root / fp.path
        lines = split_lines(path.read_bytes())
        for hunk in fp.hunks:
            start = hunk.old_start - 1
            if hunk.leading_context >= 2:
                lines[start] = b"# drifted before\n"
            if hunk.trailing_context >= 2:
                lines[start + hunk.old_count - 1] = b"# drifted after\n"
        if fp.path == hook:
            last = fp.hunks[-1]
            at = last.old_start - 1 + last.leading_context - 1
            lines[at] = lines[at].rstrip(b"\n") + b"  # edited hook line\n"
        path.write_bytes(b"".join(lines))


def test_drifted_context_applies_with_fuzz_and_reverts_byte_identically(tree: Path) -> None:
    drift(tree)
    before = snapshot(tree)
    assert check(tree.parent / "cosmos", patch_text=None).state is PatchState.APPLICABLE
    for fp in parse_patch(shipped_patch()):  # exact matching alone would refuse every file
        with pytest.raises(PatchError):
            apply_to_bytes((tree / fp.path).read_bytes(), fp, max_fuzz=0)
    assert cli_patch("check", tree)[0] == 1
    code, out, err = cli_patch("apply", tree)
    assert (code, err) == (0, "") and out.startswith("patched 3 files")
    assert check(tree).state is PatchState.APPLIED
    patched = snapshot(tree)
    code, out, _ = cli_patch("apply", tree)
    assert code == 0 and out.startswith("nothing to do") and snapshot(tree) == patched
    for rel in EXPECTED_FILES:  # the drifted lines are still there, next to the added ones
        data = (tree / rel).read_bytes()
        assert b"# drifted before\n" in data and b"upsampler_endpoint" in data
    code, out, _ = cli_patch("revert", tree)
    assert code == 0 and out.startswith("reverted 3 files")
    assert snapshot(tree) == before


@pytest.mark.parametrize("rel", sorted(EXPECTED_FILES))
def test_changed_hook_line_refuses_with_exit_2(tree: Path, rel: str) -> None:
    drift(tree, hook=rel)
    before = snapshot(tree)
    for action in ("check", "apply", "revert"):
        code, out, err = cli_patch(action, tree)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (action, err)
        assert rel in err and "matches neither" in err
    assert snapshot(tree) == before


# --------------------------------------------------------------------------- every upstream revision


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Calls of ``name`` (a function or a method) anywhere in ``tree``."""
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)
    ]


def _flags(tree: ast.AST) -> list[str]:
    return [c.args[0].value for c in _calls(tree, "add_argument") if c.args and isinstance(c.args[0], ast.Constant)]


def _main_block(tree: ast.Module) -> ast.If:
    return next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))


def assert_wiring(root: Path) -> None:
    """The patched files hold what the patch is for, parsed as Python (not just as text)."""
    transfer = ast.parse((root / TRANSFER).read_text(), TRANSFER)
    flags = _flags(transfer)
    at = flags.index("--upsample_prompt")
    assert flags[at : at + 4] == ["--upsample_prompt", "--upsampler_policy", "--upsampler_endpoint",
                                  "--offload_prompt_upsampler"]
    builds = [c for c in ast.walk(transfer) if isinstance(c, ast.Call)
              and getattr(c.func, "id", "").endswith("Control2WorldGenerationPipeline")]
    assert builds
    for call in builds:
        values = {k.arg: ast.unparse(k.value) for k in call.keywords}
        assert values["upsampler_policy"] == "cfg.upsampler_policy"
        assert values["upsampler_endpoint"] == "cfg.upsampler_endpoint"
    main = ast.unparse(_main_block(transfer))
    assert main.index("parse_arguments()") < main.index(INSTALL_CALL) < main.index("demo(")

    pipeline = ast.parse((root / PIPELINE).read_text(), PIPELINE)
    name = "DiffusionControl2WorldGenerationPipeline"
    klass = next(n for n in pipeline.body if isinstance(n, ast.ClassDef) and n.name == name)
    init = next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    params = [a.arg for a in init.args.args]
    for name in ("upsampler_policy", "upsampler_endpoint"):
        default = init.args.defaults[params.index(name) - len(params)]
        assert isinstance(default, ast.Constant) and default.value is None
    process = next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "_process_prompt_upsampler")
    [hook] = _calls(process, "run_upsampler")
    assert {k.arg for k in hook.keywords} == {"policy", "endpoint"}

    standalone = ast.parse((root / STANDALONE).read_text(), STANDALONE)
    assert _flags(standalone)[-2:] == ["--upsampler_policy", "--upsampler_endpoint"]
    main_fn = ast.unparse(next(n for n in standalone.body if isinstance(n, ast.FunctionDef) and n.name == "main"))
    assert main_fn.index("install(") < main_fn.index("PixtralPromptUpsampler(") < main_fn.index("run_upsampler(")


@needs_history
def test_every_upstream_revision_since_2025_03_26(tmp_path: Path) -> None:
    """check, apply, again, compile, wiring, revert byte for byte, check: on each revision of the three files."""
    files = sorted(EXPECTED_FILES)
    assert len(REVISIONS) >= 29 and REVISIONS[-1].date == "2025-03-26", REVISIONS[-1]
    outcome: dict[str, str] = {}
    for rev in REVISIONS:
        root = write_revision(GIT_DIR, rev.commit, files, tmp_path / rev.short)
        before = snapshot(root)
        try:
            assert check(root).state is PatchState.APPLICABLE, check(root).message
            fits = [check(root, patch_text=text).state is PatchState.APPLICABLE for text in shipped_patches()]
            assert fits == ([True, False] if rev.date >= "2025-06-15" else [False, True]), fits  # as the README says
            assert len(apply(root)) == 3 and check(root).state is PatchState.APPLIED and apply(root) == []
            for rel in files:
                compile((root / rel).read_bytes(), str(root / rel), "exec", dont_inherit=True)
            assert_wiring(root)
            assert len(revert(root)) == 3 and snapshot(root) == before
            assert check(root).state is PatchState.APPLICABLE
            outcome[rev.short] = "ok"
        except (AssertionError, PatchError, SyntaxError, ValueError, StopIteration) as exc:
            outcome[rev.short] = f"{rev.date}: {type(exc).__name__}: {exc}"
        shutil.rmtree(root)
    failed = {k: v for k, v in outcome.items() if v != "ok"}
    assert not failed, failed


def test_real_upstream_git_apply_agrees(upstream: Path, tmp_path: Path) -> None:
    """git applies the newest-layout patch to upstream's newest revision exactly as we do."""
    if GIT is None:
        pytest.skip("git is not installed")
    twin = tmp_path / "twin"
    shutil.copytree(upstream, twin)
    patch_file = tmp_path / "shipped.patch"
    patch_file.write_bytes(shipped_patch().encode())
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    subprocess.run([GIT, "apply", str(patch_file)], cwd=twin, env=env, check=True, capture_output=True)
    apply(upstream)
    for rel in EXPECTED_FILES:
        assert (upstream / rel).read_bytes() == (twin / rel).read_bytes()


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


def _runtime(monkeypatch: pytest.MonkeyPatch, plugin: bool, order: list[str] | None = None) -> _Recorder:
    """A recording ``cosmos_upsample_fix.cosmos.runtime`` (``plugin=False``: importing it fails); ``install``
    calls are also noted in ``order``."""
    runtime = _Recorder("FITTED")

    def install(**kwargs: object) -> None:
        if order is not None:
            order.append("install")
        runtime.calls.append(("install", (), kwargs))

    fake = types.SimpleNamespace(run_upsampler=runtime.run, install=install) if plugin else None
    monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", fake)
    return runtime


@pytest.mark.parametrize("plugin", [True, False])
@pytest.mark.parametrize(("policy", "endpoint"), [(None, None), ("max-side:640", "http://127.0.0.1:9/v1")])
def test_real_patched_process_prompt_upsampler(
    upstream: Path, monkeypatch: pytest.MonkeyPatch, plugin: bool, policy: str | None, endpoint: str | None
) -> None:
    apply(upstream)
    log = _Recorder()
    fn = _load_method(
        (upstream / PIPELINE).read_text(),
        "DiffusionControl2WorldGenerationPipeline",
        "_process_prompt_upsampler",
        {"log": log, "generate_control_input": _Recorder("/made/control.mp4").generate},
    )
    runtime = _runtime(monkeypatch, plugin)
    upsampler = _Recorder("UPSTREAM")
    pipe = types.SimpleNamespace(
        prompt_upsampler=upsampler,
        upsampler_hint_key="seg",
        hint_details="seg",
        control_inputs={"seg": {"input_control": "/in/seg.mp4"}},
        upsampler_policy=policy,
        upsampler_endpoint=endpoint,
    )
    result = fn(pipe, "a prompt", "/in/video.mp4", "/out")
    if plugin:
        assert result == "FITTED" and upsampler.calls == []
        expected = {"policy": policy, "endpoint": endpoint}
        assert runtime.calls == [("run", (upsampler, "a prompt", "/in/seg.mp4"), expected)]
    else:
        assert result == "UPSTREAM"
        assert upsampler.calls == [
            ("_prompt_upsample_with_offload", (), {"prompt": "a prompt", "video_path": "/in/seg.mp4"})
        ]
        warnings = [c for c in log.calls if c[0] == "warning"]
        assert len(warnings) == (1 if policy else 0)
    del pipe.upsampler_policy, pipe.upsampler_endpoint  # a pipeline built by code that predates the patch
    assert fn(pipe, "p", "/in/video.mp4", "/out") == ("FITTED" if plugin else "UPSTREAM")


def _standalone_namespace(upstream: Path, monkeypatch: pytest.MonkeyPatch, model: _Recorder, misc: _Recorder,
                          order: list[str]) -> dict:
    """The patched standalone pipeline module, executed with stand-ins for its upstream imports."""
    def fake_model(checkpoint_dir: str, offload_prompt_upsampler: bool = False) -> _Recorder:
        order.append("model")
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
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict = {"__name__": "upsampler_pipeline_under_test"}
    exec(compile((upstream / STANDALONE).read_text(), str(upstream / STANDALONE), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("plugin", [True, False])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9/v1"])
def test_real_patched_upsampler_pipeline_main(
    upstream: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], plugin: bool,
    endpoint: str | None,
) -> None:
    apply(upstream)
    model, misc, order = _Recorder("UPSTREAM"), _Recorder(), []
    runtime = _runtime(monkeypatch, plugin, order)
    namespace = _standalone_namespace(upstream, monkeypatch, model, misc, order)
    argv = ["upsampler_pipeline.py", "--prompt", "p", "--input_video", "v.mp4", "--upsampler_policy", "fit"]
    monkeypatch.setattr(sys, "argv", argv + (["--upsampler_endpoint", endpoint] if endpoint else []))
    namespace["main"]()
    printed = capsys.readouterr().out
    if plugin:
        installs = [c for c in runtime.calls if c[0] == "install"]
        assert installs == ([("install", (), {"policy": "fit", "endpoint": endpoint})] if endpoint else [])
        assert order == (["install", "model"] if endpoint else ["model"])  # before the upsampler is built
        assert ("run", (model, "p", "v.mp4"), {"policy": "fit", "endpoint": endpoint}) in runtime.calls
        assert misc.calls == [] and model.calls == []
        assert "Upsampled prompt: FITTED" in printed and "ignored" not in printed
    else:
        assert misc.calls == [("extract", ("v.mp4",), {})]
        assert model.calls == [("_prompt_upsample_with_offload", ("p", ["/tmp/frame_1.png", "/tmp/frame_2.png"]), {})]
        assert "--upsampler_policy is ignored" in printed and "Upsampled prompt: UPSTREAM" in printed
        assert ("--upsampler_endpoint is ignored" in printed) is bool(endpoint)


@pytest.mark.parametrize("plugin", [True, False])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9/v1"])
def test_real_patched_transfer_main_installs_the_endpoint_before_demo(
    upstream: Path, monkeypatch: pytest.MonkeyPatch, plugin: bool, endpoint: str | None
) -> None:
    apply(upstream)
    block = _main_block(ast.parse((upstream / TRANSFER).read_text()))
    order: list[str] = []
    runtime, log = _runtime(monkeypatch, plugin, order), _Recorder()
    args = types.SimpleNamespace(upsampler_policy="max-side:640", upsampler_endpoint=endpoint)
    namespace = {
        "__name__": "__main__",
        "log": log,
        "parse_arguments": lambda: (order.append("parse"), (args, {"edge": {}}))[1],
        "demo": lambda cfg, control_inputs: order.append("demo"),
    }
    exec(compile(ast.Module(body=block.body, type_ignores=[]), str(upstream / TRANSFER), "exec"), namespace)
    expected = ["parse", "install", "demo"] if plugin and endpoint else ["parse", "demo"]
    assert order == expected
    if plugin and endpoint:
        assert runtime.calls == [("install", (), {"policy": "max-side:640", "endpoint": endpoint})]
    warned = [c[1][0] for c in log.calls if c[0] == "warning"]
    assert warned == (["--upsampler_endpoint is ignored: cosmos-upsample-fix is not installed"]
                      if endpoint and not plugin else [])


def test_logging_not_printing(tree: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cosmos_upsample_fix.patching.tree"):
        apply(tree)
        revert(tree)
    assert capsys.readouterr() == ("", "")
    assert any("patched" in r.getMessage() for r in caplog.records)
