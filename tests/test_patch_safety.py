"""Patch safety: `patch apply`/`revert` never leave a half-patched tree, through the API and the CLI.

The categories, each explicitly, through :mod:`cosmos_upsample_fix.patching.tree` and the command
line (``cli.main`` in-process; a few cases also as ``python -m cosmos_upsample_fix patch ...`` in a
subprocess, for the real exit status and streams):

* a tree with local edits (inside a patched region: refused; outside: applied, and kept by revert);
* a tree of another upstream layout (files moved, another version's text, a nested checkout);
* read-only files (any one of the three targets);
* a path through a symlink (the checkout, a folder above it, a folder inside it; a symlinked
  target file is refused);
* a write that fails half way, injected at every step (each temporary file, its fsync, each
  move into place; an OSError or a KeyboardInterrupt): the tree is rolled back byte for byte
  with its permission bits, and no temporary file is left.

And ``revert`` after ``apply`` is byte-identical in every case that applied.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cosmos_upsample_fix.errors import PatchError
from cosmos_upsample_fix.patching import tree as patch_tree
from cosmos_upsample_fix.patching.engine import parse_patch, split_lines
from cosmos_upsample_fix.patching.tree import PatchState, apply, check, revert, shipped_patch
from cosmos_upsample_fix.tools import cli

try:
    from tests.upstream_tree import make_preimage_tree
except ImportError:  # tests/ is on sys.path under pytest's default import mode
    from upstream_tree import make_preimage_tree

FILES = [fp.path for fp in parse_patch(shipped_patch())]
CLI = [sys.executable, "-m", "cosmos_upsample_fix", "patch"]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (hidden ones too): content hash or link target, and permission bits."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(path.lstat().st_mode))
        else:
            out[rel] = ("dir", stat.S_IMODE(path.lstat().st_mode))
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary files of the patch engine under root."""
    return [p.name for p in root.rglob("*") if p.name.endswith(patch_tree._TMP_SUFFIX)]


def run_cli(action: str, folder: Path | str, cwd: Path | None = None, real: bool = False):
    """``cosmos-upsample-fix patch ACTION FOLDER``: in a subprocess when ``real``, else through ``cli.main``
    in-process (same code, without the interpreter start-up), as a CompletedProcess."""
    if real:
        return subprocess.run([*CLI, action, str(folder)], capture_output=True, text=True, cwd=cwd, timeout=120)
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["patch", action, str(folder)])
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["patch", action, str(folder)], code, out.getvalue(), err.getvalue())


def assert_refused(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_preimage_tree(tmp_path / "cosmos")


def roundtrip(root: Path, via_cli: bool, real: bool = False) -> None:
    """apply then revert on an applicable tree: patched in between, byte-identical after."""
    before = snapshot(root)
    if via_cli:
        assert run_cli("check", root, real=real).returncode == 1
        done = run_cli("apply", root, real=real)
        assert done.returncode == 0 and done.stdout.startswith("patched 3 files"), done.stderr
        assert run_cli("check", root, real=real).returncode == 0
        assert run_cli("apply", root, real=real).stdout.startswith("nothing to do")  # idempotent
        done = run_cli("revert", root, real=real)
        assert done.returncode == 0 and done.stdout.startswith("reverted 3 files"), done.stderr
    else:
        assert len(apply(root)) == 3 and check(root).state is PatchState.APPLIED
        assert apply(root) == []
        assert len(revert(root)) == 3
    assert snapshot(root) == before
    assert check(root).state is PatchState.APPLICABLE


# --------------------------------------------------------------------------- local edits


@pytest.mark.parametrize("rel", FILES)
def test_local_edit_inside_a_patched_region_is_refused(tree: Path, rel: str) -> None:
    fp = next(f for f in parse_patch(shipped_patch()) if f.path == rel)
    hunk = fp.hunks[0]
    path = tree / rel
    lines = split_lines(path.read_bytes())
    at = hunk.old_start - 1 + len(hunk.old_lines) // 2  # a line the first hunk matches (context or removed)
    assert lines[at] == hunk.old_lines[len(hunk.old_lines) // 2]
    lines[at] = lines[at].rstrip(b"\n") + b"  # my local change\n"
    path.write_bytes(b"".join(lines))
    before = snapshot(tree)
    with pytest.raises(PatchError, match=rel.split("/")[-1]):
        apply(tree)
    assert snapshot(tree) == before
    assert_refused(run_cli("apply", tree, real=rel == FILES[0]), "apply failed", rel)
    assert_refused(run_cli("revert", tree), "revert failed", rel)
    assert run_cli("check", tree).returncode == 2
    assert snapshot(tree) == before


def test_local_edits_outside_patched_regions_survive_apply_and_revert(tree: Path) -> None:
    for rel in FILES:
        path = tree / rel
        path.write_bytes(b"# my header\n" + path.read_bytes() + b"# my footer\n")
    roundtrip(tree, via_cli=True)
    patched = apply(tree)
    for path in patched:
        data = path.read_bytes()
        assert data.startswith(b"# my header\n") and data.endswith(b"# my footer\n")
    revert(tree)


def test_edit_made_after_apply_inside_the_patch_blocks_revert(tree: Path) -> None:
    apply(tree)
    rel = FILES[1]
    path = tree / rel
    added = next(ln.text for fp in parse_patch(shipped_patch()) if fp.path == rel for h in fp.hunks
                 for ln in h.lines if ln.tag == "+" and ln.text.strip())
    path.write_bytes(path.read_bytes().replace(added, added.rstrip(b"\n") + b"  # tweaked\n", 1))
    before = snapshot(tree)
    assert_refused(run_cli("revert", tree), "revert failed")
    assert snapshot(tree) == before


# --------------------------------------------------------------------------- other upstream layouts


def _moved_layout(root: Path) -> None:
    """The upsampler moved (e.g. an older or newer release): one target is gone, the others are there."""
    src = root / FILES[0]
    dest = root / "cosmos_transfer1" / "upsampler" / src.name
    dest.parent.mkdir(parents=True)
    shutil.move(str(src), dest)


def _other_version(root: Path) -> None:
    """Same files, another version's text on the line next to every change (outer context may drift; this may not)."""
    for rel in FILES:
        path = root / rel
        data = path.read_bytes()
        for fp in parse_patch(shipped_patch()):
            if fp.path == rel:
                for hunk in fp.hunks:
                    hook = hunk.old_lines[max(hunk.leading_context - 1, 0)]
                    data = data.replace(hook, hook.rstrip(b"\n") + b"  # v2\n", 1)
        path.write_bytes(data)


def _nested(root: Path) -> None:
    """The checkout given one level too high (the real one is in a subfolder)."""
    inner = root / "cosmos-transfer1"
    inner.mkdir()
    shutil.move(str(root / "cosmos_transfer1"), inner / "cosmos_transfer1")



@pytest.mark.parametrize("layout", [_moved_layout, _other_version, _nested])
def test_other_upstream_layout_is_refused_untouched(tree: Path, layout) -> None:
    layout(tree)
    before = snapshot(tree)
    with pytest.raises(PatchError):
        apply(tree)
    assert check(tree).state is PatchState.MISMATCH
    for action in ("apply", "revert"):
        assert_refused(run_cli(action, tree), f"{action} failed")
    done = run_cli("check", tree)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert snapshot(tree) == before


def test_package_folder_instead_of_checkout_names_the_parent(tree: Path) -> None:
    before = snapshot(tree)
    assert_refused(run_cli("apply", tree / "cosmos_transfer1"), "pass its parent folder")
    assert snapshot(tree) == before


def test_partly_patched_tree_is_refused_both_ways(tree: Path) -> None:
    """A tree left half-patched by something else (e.g. a killed `git apply`) is not made worse."""
    apply(tree)
    patched_first = (tree / FILES[0]).read_bytes()
    revert(tree)
    (tree / FILES[0]).write_bytes(patched_first)
    before = snapshot(tree)
    assert_refused(run_cli("apply", tree), "partly patched")
    assert_refused(run_cli("revert", tree), "partly patched")
    assert snapshot(tree) == before


# --------------------------------------------------------------------------- read-only files


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("action", ["apply", "revert"])
@pytest.mark.parametrize("rel", FILES)
def test_read_only_target_writes_nothing(tree: Path, rel: str, action: str) -> None:
    if action == "revert":
        apply(tree)
    (tree / rel).chmod(0o444)
    before = snapshot(tree)
    assert_refused(run_cli(action, tree), f"{action} failed", "read-only", rel)
    with pytest.raises(PatchError, match="read-only"):
        (apply if action == "apply" else revert)(tree)
    assert snapshot(tree) == before and not leftovers(tree)
    (tree / rel).chmod(0o644)  # made writable again, the same command goes through
    assert run_cli(action, tree).returncode == 0


# --------------------------------------------------------------------------- symlinks


def test_checkout_given_through_a_symlink(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "link to cosmos"
    link.symlink_to(tree, target_is_directory=True)
    roundtrip(link, via_cli=True)
    assert link.is_symlink()
    done = run_cli("apply", link)
    assert done.returncode == 0 and str(link) in done.stdout
    assert check(tree).state is PatchState.APPLIED and link.is_symlink()
    revert(link)


def test_folder_above_the_checkout_is_a_symlink(tree: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    shutil.move(str(tree), real / "cosmos")
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    roundtrip(tmp_path / "via" / "cosmos", via_cli=True)
    # relative path through the symlink, from another working directory
    before = snapshot(real)
    assert run_cli("apply", Path("via") / "cosmos", cwd=tmp_path).returncode == 0
    assert run_cli("revert", Path("via") / "cosmos", cwd=tmp_path).returncode == 0
    assert snapshot(real) == before


def test_symlinked_folder_inside_the_checkout(tree: Path, tmp_path: Path) -> None:
    inference = tree / "cosmos_transfer1" / "diffusion" / "inference"
    outside = tmp_path / "inference-elsewhere"
    shutil.move(str(inference), outside)
    inference.symlink_to(outside, target_is_directory=True)
    before_tree, before_outside = snapshot(tree), snapshot(outside)
    roundtrip(tree, via_cli=True)
    assert inference.is_symlink() and snapshot(tree) == before_tree and snapshot(outside) == before_outside


@pytest.mark.parametrize("rel", FILES)
def test_symlinked_target_file_is_refused(tree: Path, tmp_path: Path, rel: str) -> None:
    outside = tmp_path / "outside.py"
    shutil.move(str(tree / rel), outside)
    (tree / rel).symlink_to(outside)
    before, content = snapshot(tree), outside.read_bytes()
    assert_refused(run_cli("apply", tree), "symbolic link", rel)
    assert run_cli("check", tree).returncode == 2
    assert snapshot(tree) == before and outside.read_bytes() == content and (tree / rel).is_symlink()


def test_dangling_symlink_as_checkout(tmp_path: Path) -> None:
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    assert_refused(run_cli("apply", link), "does not exist")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- failures half way


class Fault(Exception):
    """Marker for the injected failure."""


def _faults():
    """(name, how many steps of that kind a 3-file write has, installer)."""

    def on_replace(monkeypatch, at, exc):
        real, calls = os.replace, []

        def flaky(src, dst):
            calls.append(dst)
            if len(calls) == at:
                raise exc
            real(src, dst)

        monkeypatch.setattr(patch_tree, "_replace", flaky)

    def on_temp(monkeypatch, at, exc):
        real, calls = os.fdopen, []

        class HalfWriter:
            """A temporary file whose write stops half way with the fault."""

            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *info):
                self.handle.close()

            def write(self, data):
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                raise exc

        def flaky(fd, *args, **kwargs):
            calls.append(fd)
            handle = real(fd, *args, **kwargs)
            return HalfWriter(handle) if len(calls) == at else handle

        monkeypatch.setattr(patch_tree.os, "fdopen", flaky)

    def on_fsync(monkeypatch, at, exc):
        real, calls = os.fsync, []

        def flaky(fd):
            calls.append(fd)
            if len(calls) == at:
                raise exc
            real(fd)

        monkeypatch.setattr(patch_tree.os, "fsync", flaky)

    return [("replace", 3, on_replace), ("temp", 3, on_temp), ("fsync", 3, on_fsync)]


FAULT_CASES = [
    pytest.param(name, at, install, id=f"{name}-{at}")
    for name, steps, install in _faults()
    for at in range(1, steps + 1)
]


@pytest.mark.parametrize("action", ["apply", "revert"])
@pytest.mark.parametrize("error", ["oserror", "interrupt"])
@pytest.mark.parametrize("name, at, install", FAULT_CASES)
def test_failure_half_way_rolls_back(tree: Path, monkeypatch, capsys, action, error, name, at, install) -> None:
    if action == "revert":
        apply(tree)
    for rel, mode in zip(FILES, (0o640, 0o755, 0o600)):  # the rollback must keep the modes too
        (tree / rel).chmod(mode)
    before = snapshot(tree)
    state = check(tree).state
    exc = OSError(28, "No space left on device") if error == "oserror" else KeyboardInterrupt()
    with monkeypatch.context() as m:
        install(m, at, exc)
        # through the API ...
        if error == "oserror":
            with pytest.raises(PatchError, match="tree left unchanged"):
                (apply if action == "apply" else revert)(tree)
        else:
            with pytest.raises(KeyboardInterrupt):
                (apply if action == "apply" else revert)(tree)
        assert snapshot(tree) == before and not leftovers(tree)
    with monkeypatch.context() as m:
        install(m, at, exc)
        # ... and through the command line
        code = cli.main(["patch", action, str(tree)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in captured.err
        if error == "oserror":
            assert code == 2 and "tree left unchanged" in lines[0] and "No space left" in lines[0]
        else:
            assert code == 130 and "interrupted" in lines[0]
        assert snapshot(tree) == before and not leftovers(tree)
    assert check(tree).state is state
    # with the fault gone the same command completes, and the other one restores the bytes
    assert cli.main(["patch", action, str(tree)]) == 0
    other = "revert" if action == "apply" else "apply"
    assert cli.main(["patch", other, str(tree)]) == 0
    capsys.readouterr()
    assert snapshot(tree) == before


def test_rollback_that_itself_fails_names_the_files(tree: Path, monkeypatch) -> None:
    """The double fault (the write fails, then putting a file back fails too) is reported, not hidden."""
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real(src, dst)

    def no_restore(replaced):
        return [path for path, *_ in replaced]

    monkeypatch.setattr(patch_tree, "_replace", flaky)
    monkeypatch.setattr(patch_tree, "_restore", no_restore)
    with pytest.raises(PatchError, match="could not be restored") as info:
        apply(tree)
    assert FILES[0].split("/")[-1] in str(info.value) or "cosmos_transfer1" in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- apply / revert identity


@pytest.mark.parametrize("variant", ["plain", "crlf", "no-final-newline", "odd-modes", "spaces é"])
def test_revert_after_apply_is_byte_identical(tmp_path: Path, variant: str) -> None:
    root = make_preimage_tree(tmp_path / ("cosmos " + variant if " " in variant else "cosmos"))
    for rel in FILES:
        path = root / rel
        data = path.read_bytes()
        if variant == "crlf":
            path.write_bytes(data.replace(b"\n", b"\r\n"))
        elif variant == "no-final-newline":
            path.write_bytes(data + b"# tail without newline")
        elif variant == "odd-modes":
            path.chmod(0o751)
    roundtrip(root, via_cli=False)
    roundtrip(root, via_cli=True, real=variant == "spaces é")
