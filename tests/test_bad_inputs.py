"""Bad and unusual inputs, made here with PyAV: the documented error or a correct plan, never a traceback.

Every case goes through :func:`cosmos_upsample_fix.planning.planner.plan_frames` (several frame
selections) and through the command line (``prepare`` and ``inspect`` in-process; a real
``python -m cosmos_upsample_fix`` subprocess only where a fresh interpreter matters). Each run
has a private, initially empty TMPDIR that must
be empty again afterwards, and the input (size, mtime, sha256; its folder's listing) must be
unchanged. An error is one line (status 2 from the CLI, ``cosmos-upsample-fix: error: ...``,
no "Traceback"); a plan must fit, and the PNG files it writes must count, through
mistral_common, exactly the tokens the plan reports, at the sizes it reports, showing the
frames it names (read back from the frame-index markers the clips carry).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:  # tests/ is on sys.path in pytest's default (prepend) import mode
    from clips import frame_marker, make_audio, make_clip, make_faststart, make_image
except ImportError:  # pragma: no cover
    from tests.clips import frame_marker, make_audio, make_clip, make_faststart, make_image

from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import InputError, UpsampleFixError
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model
from cosmos_upsample_fix.tools import cli

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
PLAN = "plan"  # expectation: a correct plan (else: a substring of the one-line error)
VARIANTS = [("first", 2), ("uniform", 2), ("ends", 2), ("first", 1)]


# --------------------------------------------------------------------------- the inputs


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _unknown_codec(folder: Path) -> Path:
    """An mp4 whose sample entry names a codec FFmpeg has no decoder for (fourcc avc1 -> qqq1)."""
    src = make_clip(folder / "src_codec.mp4", 64, 48, frames=6)
    dst = folder / "unknown codec.mp4"
    dst.write_bytes(src.read_bytes().replace(b"avc1", b"qqq1"))
    src.unlink()
    return dst


def _build(folder: Path) -> dict[str, tuple[Path, dict, int | None]]:
    """name -> (path, expectations by (select, frames) with "*" as the default, rotation or None)."""
    work = folder / "_work"
    work.mkdir()
    made: dict[str, tuple[Path, dict, int | None]] = {}

    def case(name, path, rotation=None, **expect):
        made[name] = (Path(path), {(k if k == "*" else tuple(k.split("_"))): v for k, v in expect.items()}, rotation)

    def e(first2=None, uniform2=None, ends2=None, first1=None, default=PLAN):
        out = {"*": default}
        for key, value in (("first_2", first2), ("uniform_2", uniform2), ("ends_2", ends2), ("first_1", first1)):
            if value is not None:
                out[key] = value
        return out

    empty = folder / "zero bytes.mp4"
    empty.write_bytes(b"")
    case("zero_bytes", empty, **e(default="empty (0 bytes)"))

    moov_end = make_clip(work / "moov_end.mp4", 320, 240, frames=30, gop=10)
    case("truncated_moov_at_end", _truncate(moov_end, folder / "truncated.mp4", 0.6), **e(default="corrupt"))
    faststart = make_faststart(moov_end, work / "faststart.mp4")
    case("truncated_head", _truncate(faststart, folder / "truncated_head.mp4", 0.05),
         **e(default="corrupt or truncated"))
    case("truncated_middle", _truncate(faststart, folder / "truncated_middle.mp4", 0.6),
         **e(uniform2="corrupt or truncated", ends2="corrupt or truncated"))
    mkv = make_clip(work / "stream.mkv", 320, 240, frames=30, gop=10)
    case("truncated_mkv", _truncate(mkv, folder / "truncated.mkv", 0.6), **e())

    noise = folder / "random bytes.mp4"
    noise.write_bytes(random.Random(1).randbytes(64 * 1024))
    case("random_bytes", noise, **e(default="not a readable video"))

    case("audio_only_m4a", make_audio(folder / "audio.m4a"), **e(default="no video stream"))
    case("audio_only_wav", make_audio(folder / "audio.wav"), **e(default="no video stream"))
    case("audio_only_as_mp4", make_audio(folder / "audio.mp4"), **e(default="no video stream"))

    one = make_clip(folder / "one frame.mp4", 160, 96, frames=1)
    case("one_frame_two_asked", one, **e(default="has 1 frame; 2 asked", first1=PLAN))

    case("1x1", make_clip(folder / "1x1.mp4", 1, 1, frames=3, pix_fmt="yuv444p"), **e())
    case("2x4000", make_clip(folder / "2x4000.mp4", 2, 4000, frames=3), **e())
    case("4000x2", make_clip(folder / "4000x2.mp4", 4000, 2, frames=3), **e())
    case("10bit_h264", make_clip(folder / "10bit.mp4", 320, 240, frames=6, gop=3, pix_fmt="yuv420p10le"), **e())
    case("10bit_hevc", make_clip(folder / "10bit_hevc.mp4", 320, 240, frames=6, gop=3, codec="hevc",
                                 pix_fmt="yuv420p10le"), **e())
    case("yuv444", make_clip(folder / "yuv444.mp4", 320, 240, frames=6, gop=3, pix_fmt="yuv444p"), **e())
    case("yuv444_10bit", make_clip(folder / "yuv444_10.mp4", 320, 240, frames=6, gop=3,
                                   pix_fmt="yuv444p10le"), **e())
    case("vfr", make_clip(folder / "vfr.mp4", 320, 240, frames=24, gop=6, bframes=2, vfr=True), **e())
    case("vfr_mkv", make_clip(folder / "vfr.mkv", 320, 240, frames=24, gop=6, bframes=2, vfr=True), **e())
    case("rotated_90_large", make_clip(folder / "rot90.mp4", 1280, 704, frames=4, gop=2, rotation=90),
         rotation=90, **e())
    case("rotated_180", make_clip(folder / "rot180.mp4", 320, 192, frames=4, rotation=180), rotation=180, **e())
    case("rotated_270", make_clip(folder / "rot270.mp4", 320, 192, frames=4, rotation=270), rotation=270, **e())

    png = make_image(work / "still.png", 320, 240)
    shutil.copyfile(png, folder / "still png.mp4")
    case("png_as_video", folder / "still png.mp4", **e(default="still image with 1 frame; 2 asked", first1=PLAN))
    jpg = make_image(work / "still.jpg", 320, 240)
    shutil.copyfile(jpg, folder / "still jpeg.mp4")
    case("jpeg_as_video", folder / "still jpeg.mp4", **e(default="still image with 1 frame; 2 asked", first1=PLAN))

    (folder / "a folder.mp4").mkdir()
    case("directory", folder / "a folder.mp4", **e(default="is a directory"))

    odd = folder / "spaces and ünïcödé 日本語 clip.mp4"
    make_clip(odd, 1280, 704, frames=4, gop=2)
    case("non_ascii_path", odd, **e())
    case("non_ascii_missing", folder / "nö such 文件.mp4", **e(default="does not exist"))

    dangling = folder / "dangling link.mp4"
    dangling.symlink_to(folder / "gone.mp4")
    case("dangling_symlink", dangling, **e(default="broken symbolic link"))

    case("unknown_codec", _unknown_codec(work), **e(default="codec is unknown"))
    shutil.move(str(made["unknown_codec"][0]), folder / "unknown codec.mp4")
    made["unknown_codec"] = (folder / "unknown codec.mp4",) + made["unknown_codec"][1:]

    shutil.rmtree(work)
    return made


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad inputs")
    return folder, _build(folder)


def expectation(spec: dict, select: str, frames: int | None) -> str:
    """The expected outcome; ``frames=None`` (the CLI's default: up to 2) plans what a 1-frame input has."""
    expected = spec.get((select, str(frames or 2)), spec["*"])
    return PLAN if frames is None and expected.endswith("1 frame; 2 asked") else expected


def fingerprint(path: Path):
    """What must not change: size, mtime and sha256 of a file; the entries of a folder; a link's target."""
    if path.is_symlink():
        return ("link", os.readlink(path), path.exists())
    if path.is_dir():
        return ("dir", sorted(os.listdir(path)), path.stat().st_mtime_ns)
    if not path.exists():
        return ("missing",)
    st = path.stat()
    return ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def folder_state(folder: Path):
    return {p.name: fingerprint(p) for p in folder.iterdir()}


# --------------------------------------------------------------------------- checking a plan


@pytest.fixture(scope="module")
def model():
    return load_model()


def sent_tokens(model, files, prompt=PROMPT) -> int:
    """Tokens of the request upstream builds from these PNG files (data URLs), through mistral_common."""
    urls = ["data:image/jpeg;base64," + base64.b64encode(Path(f).read_bytes()).decode() for f in files]
    return len(model.encode(prompt, urls))


def unrotate(image: np.ndarray, rotation: int | None) -> np.ndarray:
    """The picture back in stored orientation (the clips' rotation is clockwise for display)."""
    turns = {None: 0, 90: 1, 180: 2, 270: -1}[rotation]
    return np.rot90(image, turns)


def check_files(model, plan: dict, files, rotation, expect_markers: bool = True) -> None:
    assert plan["planned"]["fits"] is True
    assert len(files) == len(plan["planned"]["frame_indices"])
    sizes = [Image.open(f).size for f in files]
    assert sizes == [tuple(s) for s in plan["planned"]["frame_sizes"]]
    assert sent_tokens(model, files) == plan["planned"]["prompt_tokens"]
    for f, index in zip(files, plan["planned"]["frame_indices"]):
        image = unrotate(np.asarray(Image.open(f).convert("RGB")), rotation)
        if expect_markers and min(image.shape[:2]) >= 64:
            assert frame_marker(image) == index, (f, index)


# --------------------------------------------------------------------------- through plan_frames


CASE_NAMES = [
    "zero_bytes", "truncated_moov_at_end", "truncated_head", "truncated_middle", "truncated_mkv", "random_bytes",
    "audio_only_m4a", "audio_only_wav", "audio_only_as_mp4", "one_frame_two_asked", "1x1", "2x4000", "4000x2",
    "10bit_h264", "10bit_hevc", "yuv444", "yuv444_10bit", "vfr", "vfr_mkv", "rotated_90_large", "rotated_180",
    "rotated_270", "png_as_video", "jpeg_as_video", "directory", "non_ascii_path", "non_ascii_missing",
    "dangling_symlink", "unknown_codec",
]


def test_every_case_is_built(inputs):
    assert sorted(inputs[1]) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_plan_frames(inputs, model, private_tmpdir, tmp_path, name):
    folder, cases = inputs
    path, spec, rotation = cases[name]
    before, listing = fingerprint(path), folder_state(folder)
    for select, frames in VARIANTS:
        expected = expectation(spec, select, frames)
        try:
            planned = plan_frames(str(path), PROMPT, Options.build(select=select, frames=frames), model=model)
        except UpsampleFixError as exc:
            message = str(exc)
            assert expected != PLAN, f"{name} {select}/{frames}: unexpected error {message}"
            assert expected in message and "\n" not in message, (name, select, frames, message)
            if not isinstance(exc, InputError):
                pytest.fail(f"{name}: {type(exc).__name__} where an InputError was expected: {message}")
            continue
        assert expected == PLAN, f"{name} {select}/{frames}: planned, expected the error {expected!r}"
        assert len(planned.plan.frame_indices) == frames
        out = tmp_path / f"{select}{frames}"
        out.mkdir()
        files = planned.write(out)
        check_files(model, planned.plan.to_dict(), files, rotation)
        assert [im.shape[:2][::-1] for im in planned.images] == list(planned.plan.planned.frame_sizes)
    assert fingerprint(path) == before, "the input changed"
    assert folder_state(folder) == listing, "something was written beside the input"
    assert list(private_tmpdir.iterdir()) == [], "temporary files left behind"


# --------------------------------------------------------------------------- through the command line


def _in_process_prepare(path: Path, out: Path, select: str, capsys) -> subprocess.CompletedProcess:
    code = cli.main(["prepare", str(path), "--out-dir", str(out), "--prompt", PROMPT, "--select", select, "--json"])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess([], code, captured.out, captured.err)


@pytest.mark.parametrize("select", ["first", "uniform"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_prepare(inputs, model, private_tmpdir, tmp_path, capsys, name, select):
    """``prepare`` through ``cli.main`` in-process (the console script's exit codes and one-line errors
    in a fresh interpreter are checked by the regression tests below and by test_cli)."""
    folder, cases = inputs
    path, spec, rotation = cases[name]
    before, listing, tmp, out = fingerprint(path), folder_state(folder), private_tmpdir, tmp_path / "out"
    done = _in_process_prepare(path, out, select, capsys)
    after, listing_after = fingerprint(path), folder_state(folder)
    expected = expectation(spec, select, None)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    if expected == PLAN:
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        files = report["files"]
        assert [Path(f).parent for f in files] == [out] * len(files)
        assert sorted(os.listdir(out)) == sorted(Path(f).name for f in files)
        check_files(model, report, files, rotation)
    else:
        assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("cosmos-upsample-fix: error: ") and expected in lines[0], lines[0]
        assert not out.exists() or list(out.iterdir()) == [], "files written for a failed plan"
    assert list(tmp.iterdir()) == [], "temporary files left behind"
    assert after == before, "the input changed"
    assert listing_after == listing, "something was written beside the inputs"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_inspect_in_process(inputs, capsys, name):
    folder, cases = inputs
    path, spec, _rotation = cases[name]
    expected = expectation(spec, "ends", None)
    code = cli.main(["inspect", str(path), "--select", "ends", "--json"])
    captured = capsys.readouterr()
    if expected == PLAN:
        assert code == 0, captured.err
        report = json.loads(captured.out)
        assert report["planned"]["fits"] and report["planned"]["frame_indices"][0] == 0
    else:
        assert code == 2 and captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], captured.err


# --------------------------------------------------------------------------- regressions


def test_unknown_codec_with_seeking_selection_is_an_input_error(inputs):
    """Regression: ``uniform``/``ends`` on a stream without a decoder raised AttributeError
    (``stream.codec_context`` is None) from the seeking reader, which the CLI showed as an
    internal error (status 1) and the runtime as a crash."""
    path = inputs[1]["unknown_codec"][0]
    for select in ("uniform", "ends", "first"):
        with pytest.raises(InputError, match="codec is unknown"):
            plan_frames(str(path), PROMPT, Options.build(select=select))


def test_cli_failure_prints_only_the_error_line(inputs):
    """Regression: a clip whose packets fail to decode printed one WARNING line per packet on
    stderr before the error, so the error was not the one line the README promises."""
    path = inputs[1]["truncated_head"][0]
    done = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("cosmos-upsample-fix: error:"), done.stderr
    assert "corrupt or truncated" in done.stderr and "Invalid data" in done.stderr  # the reason is kept


def test_cli_success_still_shows_the_warnings(inputs, capsys, caplog, monkeypatch):
    """The held warnings are passed on (to stderr, or here to pytest's log capture) when the command succeeds."""
    import logging

    from cosmos_upsample_fix.tools import cli as cli_module

    real = cli_module.plan_frames

    def noisy(*args, **kwargs):
        logging.getLogger("cosmos_upsample_fix.media.frames").warning("skipping an undecodable packet: test")
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_module, "plan_frames", noisy)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["inspect", str(inputs[1]["vfr"][0])]) == 0
    assert "skipping an undecodable packet: test" in caplog.text
    capsys.readouterr()


def test_cli_survives_a_terminal_that_cannot_show_the_path(inputs):
    """Regression: with a non-UTF-8 terminal (here latin-1), printing the report of a path with
    CJK characters raised UnicodeEncodeError after the plan was made (status 1, internal error)."""
    path = inputs[1]["non_ascii_path"][0]
    env = dict(os.environ, PYTHONIOENCODING="latin-1")
    done = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(path)],
                          capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"\\u65e5\\u672c\\u8a9e" in done.stdout  # 日本語, escaped
    missing = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(path) + ".nope"],
                             capture_output=True, env=env, timeout=120)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1


def test_failed_write_leaves_no_partial_files(inputs, tmp_path, monkeypatch):
    """Regression: a write that failed half way (a full disk) left a truncated PNG, and frame_1.png
    when frame_2.png could not be written; ``prepare`` now writes all of its files or none."""
    from cosmos_upsample_fix.media import output

    planned = plan_frames(str(inputs[1]["vfr"][0]), PROMPT)
    real_open = open
    calls = []

    class FullDisk(io.FileIO):
        def write(self, data):
            super().write(data[: len(data) // 3])
            raise OSError(28, "No space left on device")

    def failing_open(path, mode="r", *args, **kwargs):
        calls.append(path)
        if "x" in mode and len(calls) == 2:
            return FullDisk(path, "x")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(output, "open", failing_open, raising=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="No space left"):
        planned.write(out)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    # an existing frame_2.png: refused, frame_1.png not left behind, the existing file untouched
    (out / "frame_2.png").write_bytes(b"mine")
    with pytest.raises(InputError, match="already exists"):
        planned.write(out)
    assert sorted(os.listdir(out)) == ["frame_2.png"] and (out / "frame_2.png").read_bytes() == b"mine"


def test_random_bytes_named_mp4_is_one_clean_line(tmp_path):
    """FFmpeg's raw "[Errno 1094995529] ...: 'PATH'" is not shown: one line with the reason in words."""
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(random.Random(7).randbytes(20000))
    done = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(noise)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Errno" not in lines[0] and lines[0].count(str(noise)) == 1
    assert lines[0] == (f"cosmos-upsample-fix: error: {noise} is not a readable video or image, or is corrupt "
                        "(PyAV: Invalid data found when processing input)")
