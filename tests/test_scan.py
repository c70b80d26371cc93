"""``scan``: every row equals ``inspect --json``; upstream's specs/batch inputs resolved as upstream does."""
from __future__ import annotations

import gc
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from clips import SHARED_VIDEOS as SHARED
from clips import make_clip, make_image
from PIL import Image

from cosmos_upsample_fix.cosmos.inputs import GENERATED_FRAMES
from cosmos_upsample_fix.tools import scan
from cosmos_upsample_fix.tools.cli import main

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."

EXTRA = {"input", "source", "prompt", "control", "generated", "note", "pixels_kept", "model_own_size", "preview",
         "preview_error", "upsampler"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Generated clips and stills of many shapes, in nested folders, plus a file scan skips."""
    root = tmp_path_factory.mktemp("scan")
    (root / "deep" / "er").mkdir(parents=True)
    make_clip(root / "wide.mp4", 1280, 704, frames=5)
    make_clip(root / "deep" / "small.mkv", 320, 240, frames=4)
    make_clip(root / "deep" / "one frame.mp4", 960, 540, frames=1)
    make_clip(root / "deep" / "er" / "portrait.mp4", 480, 848, frames=3, rotation=90)
    make_clip(root / "deep" / "er" / "square.webm", 512, 512, frames=3, codec="vp9")
    make_image(root / "still.png", 1600, 900)
    exif = Image.open(make_image(root / "turned.jpg", 1200, 800))
    data = exif.getexif()
    data[0x0112] = 6  # EXIF orientation: turn 90 degrees
    exif.save(root / "turned.jpg", exif=data, quality=95)
    (root / "notes.txt").write_text("not a clip")
    return root


def scan_rows(capsys, *argv) -> tuple[int, list[dict]]:
    code = main(["scan", *argv, "--json"])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def inspect_json(capsys, path: str, *argv) -> tuple[int, dict]:
    code = main(["inspect", path, *argv, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else {"error": captured.err})


def plan_fields(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in EXTRA}


OPTIONS = [[], ["--select", "uniform"], ["--select", "ends", "--policy", "max-side:640"], ["--frames", "1"],
           ["--max-model-len", "8192"], ["--frames", "2"]]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: " ".join(o) or "default")
def test_every_row_equals_inspect(capsys, folder, options):
    code, rows = scan_rows(capsys, str(folder), "--prompt", PROMPT, "-j", "1", *options)
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".png", ".jpg"))
    assert [row["source"] for row in rows] == files  # notes.txt is skipped; folders searched recursively
    for row in rows:
        inspect_code, expected = inspect_json(capsys, row["input"], "--prompt", PROMPT, *options)
        if inspect_code == 2:  # e.g. --frames 2 of a one-frame clip: the same one-line reason
            assert row["error"] in expected["error"]
            continue
        assert plan_fields(row) == {k: v for k, v in expected.items() if k != "source"}
        assert expected["source"] == row["input"] == row["source"]
    assert code == (2 if "--frames" in options and "2" in options else 0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/videos is absent")
@pytest.mark.parametrize("options", [[], ["--select", "uniform", "--policy", "max-pixels:200000"]])
def test_shared_clips_equal_inspect_in_workers(capsys, options):
    code, rows = scan_rows(capsys, str(SHARED), "--prompt", PROMPT, "-j", "2", *options)
    assert code == 0 and len(rows) == len(list(SHARED.glob("*.mp4")))
    for row in rows:
        _, expected = inspect_json(capsys, row["input"], "--prompt", PROMPT, *options)
        assert plan_fields(row) == {k: v for k, v in expected.items() if k != "source"}


def test_worker_processes_give_the_same_rows(capsys, folder, monkeypatch):
    monkeypatch.setattr(scan, "ITEMS_PER_WORKER", 1)
    _, serial = scan_rows(capsys, str(folder), "-j", "1")
    _, parallel = scan_rows(capsys, str(folder), "-j", "2")
    assert parallel == serial and len(serial) == 7


# Leaves a decoder with live threads in a reference cycle no collection has freed yet, as a
# caller's code may, then scans with forked workers whose jobs start with a collection.
_GARBAGE_AT_FORK = """
import gc, sys
import av
from cosmos_upsample_fix.tools import scan
from cosmos_upsample_fix.tools.cli import main

gc.set_threshold(10**9)  # no automatic collection: the cycle below is still there at the fork
scan.ITEMS_PER_WORKER = 1
plan_item = scan.plan_item
def collect_then_plan(*args):
    gc.collect()  # what any allocation in a worker may start
    return plan_item(*args)
scan.plan_item = collect_then_plan

class Cycle:
    pass
held = Cycle()
held.me = held
held.container = av.open(sys.argv[1])
held.stream = held.container.streams.video[0]
held.stream.thread_type, held.stream.thread_count = "SLICE", 2
held.frames = [frame for _, frame in zip(range(2), held.container.decode(held.stream))]
del held
sys.exit(main(["scan", sys.argv[2], "-j", "2", "--json"]))
"""


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_forked_workers_never_free_the_parents_garbage(folder, tmp_path):
    """Garbage is collected before the fork; a decoder freed in a worker would join threads it lacks."""
    run = subprocess.Popen([sys.executable, "-c", _GARBAGE_AT_FORK, str(folder / "wide.mp4"), str(folder)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = run.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # the hung workers too
        run.communicate()
        pytest.fail("scan's forked workers hung")
    rows = [json.loads(line) for line in out.splitlines()]
    assert run.returncode == 0, err[-2000:]
    assert len(rows) == 7 and all("planned" in row for row in rows)


def test_table_and_summary(capsys, folder, tmp_path):
    missing = str(tmp_path / "gone.mp4")
    assert main(["scan", str(folder / "wide.mp4"), str(folder / "deep" / "small.mkv"), missing,
                 "--prompt", PROMPT]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["source", "upsampler", "reads"]
    wide = next(line for line in out if "wide.mp4" in line)
    assert "1280x704" in wide and "4699" in wide and "no (+903)" in wide and "928x512" in wide and "52.7%" in wide
    assert "does not exist" in next(line for line in out if "gone.mp4" in line)
    assert out[-1] == ("1 of 3 items would stop upstream's upsampler; 2 of 2 planned items fit with `fit`; "
                       "0 items planned below 320 px; 1 failed")


def test_summary_counts_small_plans(capsys, folder):
    code, rows = scan_rows(capsys, str(folder / "wide.mp4"), "--prompt", "robot arm " * 1750)
    assert code == 0 and max(rows[0]["planned"]["width"], rows[0]["planned"]["height"]) < 320
    assert scan.summary(rows, "fit") == ("1 of 1 item would stop upstream's upsampler; all fit with `fit`; "
                                         "1 item planned below 320 px")


def write_specs(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_specs_and_batch_resolve_what_upstream_reads(capsys, folder, tmp_path):
    wide, small = str(folder / "wide.mp4"), str(folder / "deep" / "small.mkv")
    specs = write_specs(tmp_path / "specs.json", {
        "prompt": "from the specs", "input_video_path": small,
        "depth": {"input_control": small}, "edge": {"control_weight": 1.0}})
    lines = [
        {"visual_input": wide, "prompt": PROMPT},
        {"visual_input": small, "prompt": "second", "control_overrides": {"edge": {"input_control": wide}}},
        {"visual_input": str(tmp_path / "missing.mp4"), "prompt": "third"},
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    code, rows = scan_rows(capsys, "--controlnet_specs", specs, "--batch_input_path", str(batch))
    assert code == 2
    assert [r["source"] for r in rows] == [f"{batch}:{n}" for n in (1, 2, 3, 4)]
    first, second, third, blank = rows
    # edge comes before depth; no input_control: generated from the line's video, at its size
    assert (first["control"], first["generated"], first["input"], first["prompt"]) == ("edge", True, wide, PROMPT)
    _, expected = inspect_json(capsys, wide, "--prompt", PROMPT)
    assert plan_fields(first) == {k: v for k, v in expected.items() if k != "source"}
    # an override of input_control does not change what upstream's upsampler reads; it is noted
    assert second["input"] == small and second["prompt"] == "second" and "control_overrides" in second["note"]
    assert "does not exist" in third["error"]
    assert "not JSON" in blank["error"]


def test_generated_control_keeps_the_first_ten_frames(capsys, tmp_path):
    clip = str(make_clip(tmp_path / "long.mp4", 320, 240, frames=14))
    specs = write_specs(tmp_path / "s.json", {"input_video_path": clip, "vis": {}})
    code, rows = scan_rows(capsys, "--controlnet_specs", specs, "--select", "uniform")
    assert code == 0 and rows[0]["planned"]["frame_indices"] == [0, GENERATED_FRAMES - 1]
    assert rows[0]["source"] == specs and rows[0]["prompt"] is None


def test_specs_alone_and_flags_that_win(capsys, folder, tmp_path):
    small, wide = str(folder / "deep" / "small.mkv"), str(folder / "wide.mp4")
    specs = write_specs(tmp_path / "s.json", {"prompt": "specs prompt", "input_video_path": small,
                                               "seg": {"input_control": wide}, "depth": {"input_control": small}})
    code, rows = scan_rows(capsys, "--controlnet_specs", specs)
    assert code == 0 and (rows[0]["control"], rows[0]["input"], rows[0]["prompt"]) == ("seg", wide, "specs prompt")
    code, rows = scan_rows(capsys, "--controlnet_specs", specs, "--prompt", "mine")
    assert rows[0]["prompt"] == "mine"
    specs = write_specs(tmp_path / "e.json", {"prompt": "p", "edge": {}})
    code, rows = scan_rows(capsys, "--controlnet_specs", specs, "--input_video_path", small)
    assert code == 0 and rows[0]["input"] == small and rows[0]["generated"] is True


def test_items_without_an_upsampler_or_without_input(capsys, folder, tmp_path):
    none = write_specs(tmp_path / "n.json", {"keypoint": {"input_control": "k.mp4"}})
    code, rows = scan_rows(capsys, "--controlnet_specs", none)
    assert code == 0 and rows[0]["upsampler"] is False and rows[0]["input"] is None
    assert main(["scan", "--controlnet_specs", none]) == 0
    assert "no upsampler" in capsys.readouterr().out
    seg = write_specs(tmp_path / "s.json", {"input_video_path": str(folder / "wide.mp4"), "seg": {}})
    code, rows = scan_rows(capsys, "--controlnet_specs", seg)
    assert code == 2 and "no input_control" in rows[0]["error"]


@pytest.mark.parametrize("argv, needle", [
    (["--controlnet_specs", "{tmp}/none.json"], "does not exist"),
    (["--controlnet_specs", "{tmp}/bad.json"], "not JSON"),
    (["--controlnet_specs", "{tmp}/key.json"], "invalid hint key"),
    (["--batch_input_path", "{tmp}/b.jsonl"], "needs --controlnet_specs"),
    ([], "nothing to scan"),
    (["{tmp}", "-j", "0"], "-j must be at least 1"),
    (["{tmp}", "--frames", "3"], "allows 2"),
    (["{tmp}", "--frames", "3", "--max-images", "4", "--select", "ends"], "'ends' takes 1 or 2"),
])
def test_bad_scan_arguments_are_one_line(capsys, tmp_path, argv, needle):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "key.json").write_text('{"colour": {}}')
    assert main(["scan", *[a.format(tmp=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_urls_and_stdin_are_refused_per_item(capsys, folder):
    code, rows = scan_rows(capsys, "https://example.com/a.mp4", "-", str(folder / "wide.mp4"))
    assert code == 2 and all("local files only" in r["error"] for r in rows[:2]) and "planned" in rows[2]


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Tty()
    for stream in (plain, tty):
        bar = scan.ProgressBar(stream, width=10)
        bar(1, 4)
        bar(4, 4)
    assert plain.getvalue() == ""
    assert "[##........] 1/4" in tty.getvalue() and "[##########] 4/4" in tty.getvalue()


def test_preview_dir_holds_one_png_per_planned_item(capsys, folder, tmp_path):
    specs = write_specs(tmp_path / "s.json", {"input_video_path": str(folder / "deep" / "small.mkv"), "edge": {}})
    out = tmp_path / "previews"
    code, rows = scan_rows(capsys, str(folder / "deep"), str(tmp_path / "gone.mp4"), "--controlnet_specs", specs,
                           "--preview-dir", str(out), "--prompt", PROMPT)
    assert code == 2
    made = sorted(out.iterdir())
    assert [Path(r["preview"]) for r in rows if "planned" in r] == made and len(made) == 5
    assert all("preview" not in r for r in rows if "error" in r)
    with Image.open(made[0]) as image:
        assert image.format == "PNG" and image.width > rows[0]["planned"]["width"]


def test_a_second_preview_run_into_the_same_folder(capsys, folder, tmp_path):
    """Previews already there: new numbered names beside them; every row and the summary as the first run's."""
    argv = [str(folder / "wide.mp4"), str(folder / "deep" / "small.mkv"), "--preview-dir", str(tmp_path / "p"),
            "--prompt", PROMPT]
    code, first = scan_rows(capsys, *argv)
    kept = {p: p.read_bytes() for p in (tmp_path / "p").iterdir()}
    assert code == 0 and len(kept) == 2
    code, second = scan_rows(capsys, *argv)
    assert code == 0 and all("error" not in row and "preview_error" not in row for row in second)
    assert [{k: v for k, v in r.items() if k != "preview"} for r in second] == [
        {k: v for k, v in r.items() if k != "preview"} for r in first]
    assert [Path(r["preview"]).name for r in second] == ["001_wide-2.png", "002_small-2.png"]
    assert all(Path(r["preview"]).is_file() for r in second)
    assert {p: p.read_bytes() for p in kept} == kept  # the first run's files untouched
    assert main(["scan", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("1 of 2 items would stop upstream's upsampler; all fit with `fit`")


def test_a_preview_that_cannot_be_written_leaves_the_plan_alone(capsys, folder, tmp_path, monkeypatch):
    from cosmos_upsample_fix.errors import InputError
    from cosmos_upsample_fix.tools import preview

    def fail(*_args, **_kwargs):
        raise InputError("cannot write p.png: No space left on device")

    monkeypatch.setattr(preview, "render_preview", fail)
    argv = [str(folder / "wide.mp4"), "--preview-dir", str(tmp_path / "p"), "--prompt", PROMPT, "-j", "1"]
    code, rows = scan_rows(capsys, *argv)
    _, expected = inspect_json(capsys, str(folder / "wide.mp4"), "--prompt", PROMPT)
    assert code == 0 and "error" not in rows[0] and "No space left" in rows[0]["preview_error"]
    assert plan_fields({k: v for k, v in rows[0].items() if k != "preview_error"}) == {
        k: v for k, v in expected.items() if k != "source"}
    assert main(["scan", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "928x512" in out[1] and any("preview not written" in line and "No space left" in line for line in out)
    assert out[-1].startswith("1 of 1 item would stop upstream's upsampler; all fit with `fit`")
    assert out[-1].endswith("1 preview not written")


def _starts(line: str, cell: str) -> int:
    """The display column where ``cell`` starts in ``line`` (a wide CJK character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line[:line.index(cell)])


def test_the_table_lines_up_by_display_width(capsys, folder, tmp_path):
    wide = tmp_path / "广角视频.mp4"
    wide.write_bytes((folder / "wide.mp4").read_bytes())
    assert main(["scan", str(wide), str(folder / "deep" / "small.mkv"), "--prompt", PROMPT]) == 0
    header, first, second = capsys.readouterr().out.splitlines()[:3]
    assert _starts(first, "(same)") == _starts(second, "(same)") == _starts(header, "upsampler reads")
    assert _starts(first, "1280x704") == _starts(second, "320x240") == _starts(header, "size")
    assert _starts(first, "52.7%") == _starts(second, "100.0%") == _starts(header, "pixels kept")


def test_the_table_lines_up_when_every_row_is_an_error(capsys, tmp_path):
    assert main(["scan", str(tmp_path / "a.mp4"), str(tmp_path / "a much longer name.mp4")]) == 2
    header, first, second = capsys.readouterr().out.splitlines()[:3]
    assert _starts(first, "(same)") == _starts(second, "(same)") == _starts(header, "upsampler reads")
    assert _starts(first, "error:") == _starts(second, "error:")


def test_a_still_the_model_shrinks_itself_keeps_its_detail(capsys, tmp_path):
    """A 1900x1100 still fits; it goes at 1024x608, the size the model's own resize makes (same tokens)."""
    still = make_image(tmp_path / "big.png", 1900, 1100)
    code, rows = scan_rows(capsys, str(still), "--prompt", PROMPT)
    row = rows[0]
    assert code == 0 and row["original"]["fits"] and row["planned"]["frame_sizes"] == [[1024, 608]]
    assert row["planned"]["tokens_per_frame"] == row["original"]["tokens_per_frame"]
    assert row["model_own_size"] is True
    assert main(["scan", str(still), "--prompt", PROMPT]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.endswith("as the model shrinks it (same tokens)") and "%" not in line
    code, rows = scan_rows(capsys, str(make_clip(tmp_path / "w.mp4", 1280, 704, frames=2)), "--prompt", PROMPT)
    assert rows[0]["model_own_size"] is False and rows[0]["pixels_kept"] == 0.5273  # shrunk by the plan


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_callers_gc_freeze_is_left_alone(capsys, folder, monkeypatch):
    monkeypatch.setattr(scan, "ITEMS_PER_WORKER", 1)
    gc.collect()
    unfrozen = gc.get_freeze_count()  # not 0 on some Pythons (3.12.1 counts static objects there)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > unfrozen
        code, rows = scan_rows(capsys, str(folder), "-j", "2")
        assert code == 0 and len(rows) == 7
        # what the caller froze stays frozen (less what plain reference counting freed meanwhile)
        assert gc.get_freeze_count() > (frozen + unfrozen) // 2
    finally:
        gc.unfreeze()
    gc.collect()
    code, rows = scan_rows(capsys, str(folder), "-j", "2")
    gc.collect()
    assert code == 0 and gc.get_freeze_count() <= unfrozen  # and scan froze nothing here
