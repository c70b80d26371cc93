"""Concurrency: 16 threads and 4 processes preparing different clips at once each get exactly their own frames.

A serial run of :func:`plan_frames` ``.write`` over 16 different clips (sizes, codecs, frame
selections; some need downscaling) gives the reference: the sha256 of every PNG file and the
plan. Then the same work runs

* on 16 threads at once (started together by a barrier, one fresh tokenizer shared by all, so
  its first load races too), several rounds, plus 16 threads on one clip;
* in 4 processes at once: ``cosmos-upsample-fix prepare`` subprocesses, and (marked slow) a
  ``spawn`` multiprocessing pool of 4 preparing all 16 clips,

and every file must hash equal to the serial run. All runs share one private TMPDIR, which
must be empty afterwards (the planner and the CLI write no temporary files at all), and the
package must create temporary names only through ``mkdtemp``/``mkstemp``, never a fixed name
in the shared temp folder (as upstream's ``<tmp>/frame_1.png`` does).
"""
from __future__ import annotations

import ast
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:  # tests/ is on sys.path in pytest's default (prepend) import mode
    from clips import frame_marker, make_clip
except ImportError:  # pragma: no cover
    from tests.clips import frame_marker, make_clip

import cosmos_upsample_fix
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model

PACKAGE_DIR = Path(cosmos_upsample_fix.__file__).resolve().parent

# 16 clips: (file name, make_clip keywords, select)
CLIPS = [
    ("c00 720p.mp4", dict(width=1280, height=704, frames=3, gop=2), "first"),
    ("c01 1080p-class.mp4", dict(width=1440, height=810, frames=2), "first"),
    ("c02 portrait.mp4", dict(width=544, height=960, frames=6, gop=3, bframes=2), "uniform"),
    ("c03 square.mkv", dict(width=1024, height=1024, frames=3), "ends"),
    ("c04 small.mp4", dict(width=320, height=180, frames=8, gop=4, bframes=2), "uniform"),
    ("c05 vga.mp4", dict(width=640, height=480, frames=5), "first"),
    ("c06 hevc.mp4", dict(width=640, height=352, frames=4, codec="hevc", gop=2), "ends"),
    ("c07 vp9.webm", dict(width=800, height=600, frames=4, codec="vp9", gop=2), "first"),
    ("c08 mpeg4.mp4", dict(width=960, height=704, frames=6, codec="mpeg4", gop=3, bframes=2), "uniform"),
    ("c09 mjpeg.avi", dict(width=1280, height=800, frames=3, codec="mjpeg"), "first"),
    ("c10 10bit.mp4", dict(width=960, height=540, frames=3, pix_fmt="yuv420p10le"), "ends"),
    ("c11 444.mp4", dict(width=800, height=450, frames=3, pix_fmt="yuv444p"), "first"),
    ("c12 rotated.mp4", dict(width=1280, height=704, frames=3, rotation=90), "first"),
    ("c13 vfr.mp4", dict(width=640, height=360, frames=12, gop=4, vfr=True), "uniform"),
    ("c14 ffv1.mkv", dict(width=928, height=512, frames=3, codec="ffv1"), "ends"),
    ("c15 wide.mp4", dict(width=2048, height=256, frames=2), "first"),
]
PROMPTS = [f"Prompt number {i}: a robot arm places object {i} on the table." for i in range(len(CLIPS))]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("concurrency clips")
    return [(make_clip(folder / name, **kwargs), select) for name, kwargs, select in CLIPS]


def digest(files) -> list[str]:
    return [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]


def prepare(i: int, path: Path, select: str, out: Path, model=None):
    """What each worker does: plan, write into its own folder, and hash what it wrote."""
    planned = plan_frames(str(path), PROMPTS[i], Options.build(select=select), model=model)
    out.mkdir(parents=True)
    files = planned.write(out)
    return digest(files), planned.plan.to_dict()


@pytest.fixture(scope="module")
def serial(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    results = [prepare(i, path, select, out / str(i)) for i, (path, select) in enumerate(clips)]
    hashes = [h for hs, _ in results for h in hs]
    assert len(set(hashes)) == len(hashes), "the clips' frames must all differ"
    for hs, plan in results:
        assert plan["planned"]["fits"] and len(hs) == 2
    return results, out


def test_serial_frames_are_the_clips_own(serial):
    """The reference itself: each written frame shows the index the plan names."""
    results, out = serial
    for i, (_hashes, plan) in enumerate(results):
        for n, index in enumerate(plan["planned"]["frame_indices"], start=1):
            image = np.asarray(Image.open(out / str(i) / f"frame_{n}.png"))
            if CLIPS[i][1].get("rotation") == 90:
                image = np.rot90(image, 1)
            assert frame_marker(image) == index, (CLIPS[i][0], n)


def test_sixteen_threads_at_once(clips, serial, private_tmpdir, tmp_path):
    expected = serial[0]
    for round_ in range(3):
        # a fresh (unloaded) tokenizer shared by every thread: its first load races as well
        base = load_model()
        model = UpsamplerModel(tokenizer_file=base.tokenizer_file, grid=base.grid) if round_ == 0 else None
        barrier = threading.Barrier(len(clips))

        def work(i: int, barrier=barrier, round_=round_, model=model):
            path, select = clips[i]
            barrier.wait()
            return prepare(i, path, select, tmp_path / f"round{round_}" / str(i), model)

        with ThreadPoolExecutor(max_workers=len(clips)) as pool:
            results = list(pool.map(work, range(len(clips))))
        for i, (got, want) in enumerate(zip(results, expected)):
            assert got[0] == want[0], f"thread {i} ({CLIPS[i][0]}) got other frames than the serial run"
            assert got[1] == want[1], f"thread {i} ({CLIPS[i][0]}) got another plan"
    assert list(private_tmpdir.iterdir()) == []


def test_sixteen_threads_on_one_clip(clips, serial, private_tmpdir, tmp_path):
    path, select = clips[0]
    want = serial[0][0][0]
    barrier = threading.Barrier(16)

    def work(k: int):
        barrier.wait()
        return prepare(0, path, select, tmp_path / str(k))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(16)))
    assert all(got == want for got, _plan in results)
    assert list(private_tmpdir.iterdir()) == []


def test_four_cli_processes_at_once(clips, serial, private_tmpdir, tmp_path):
    """4 ``prepare`` subprocesses at once (a different clip each, one shared TMPDIR)."""
    expected = serial[0]
    chosen = [0, 3, 9, 12]  # clips that need downscaling: real resize work
    env = dict(os.environ, TMPDIR=str(private_tmpdir))
    procs = []
    for i in chosen:
        path, select = clips[i]
        argv = [sys.executable, "-m", "cosmos_upsample_fix", "prepare", str(path), "--out-dir",
                str(tmp_path / str(i)), "--prompt", PROMPTS[i], "--select", select, "--json"]
        procs.append((i, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    for i, proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert digest(report["files"]) == expected[i][0], f"process for {CLIPS[i][0]} got other frames"
        assert report["planned"] == expected[i][1]["planned"]
    assert list(private_tmpdir.iterdir()) == []


def _pool_worker(job):
    """Run in a spawned process: the same work as a thread, on one clip."""
    i, path, select, out = job
    hashes, plan = prepare(i, Path(path), select, Path(out))
    return i, hashes, plan, os.getpid()


@pytest.mark.slow  # four more tokenizer loads (~1.5 s of CPU each); the CLI test above covers 4 processes in CI
def test_four_spawned_processes(clips, serial, private_tmpdir, tmp_path):
    """A spawn pool of 4 processes preparing all 16 clips, several at once in each."""
    expected = serial[0]
    jobs = [(i, str(path), select, str(tmp_path / str(i))) for i, (path, select) in enumerate(clips)]
    context = multiprocessing.get_context("spawn")
    os.environ["TMPDIR"] = str(private_tmpdir)  # set by the fixture; children inherit it
    with context.Pool(4) as pool:
        results = pool.map(_pool_worker, jobs, chunksize=1)
    pids = {pid for *_rest, pid in results}
    assert len(pids) >= 2, "the work did not spread over processes"
    for i, hashes, plan, _pid in results:
        assert hashes == expected[i][0], f"process for {CLIPS[i][0]} got other frames"
        assert plan == expected[i][1]
    assert list(private_tmpdir.iterdir()) == []


# --------------------------------------------------------------------------- temporary names


def _tempfile_calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "tempfile":
                names.append(node.func.attr)
    return names


def test_temporary_names_are_never_fixed():
    """Every temporary name comes from mkdtemp/mkstemp/TemporaryDirectory (unique per call); no fixed
    name in the shared temp folder."""
    allowed = {"mkdtemp", "mkstemp", "TemporaryDirectory"}
    seen = {}
    for module in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        calls = _tempfile_calls(tree)
        assert set(calls) <= allowed, f"{module.name} uses tempfile.{set(calls) - allowed}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("gettempdir", "tempdir"):
                pytest.fail(f"{module.name} builds a name in the shared temp folder ({node.attr})")
        seen[module.name] = calls
    assert any("mkdtemp" in calls for calls in seen.values()), "the runtime's per-call folder comes from mkdtemp"


def test_planner_and_cli_create_no_temporary_files(clips, private_tmpdir, tmp_path, monkeypatch):
    """plan_frames/write and `prepare` never ask tempfile for anything (so there is nothing to share)."""
    import tempfile

    asked = []
    for name in ("mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"):
        real = getattr(tempfile, name)
        monkeypatch.setattr(tempfile, name, lambda *a, _n=name, _r=real, **k: asked.append(_n) or _r(*a, **k))
    from cosmos_upsample_fix.tools.cli import main

    path, select = clips[0]
    prepare(0, path, select, tmp_path / "api")
    assert main(["prepare", str(path), "--out-dir", str(tmp_path / "cli"), "--json"]) == 0
    assert asked == [] and list(private_tmpdir.iterdir()) == []
