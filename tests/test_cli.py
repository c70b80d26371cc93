"""The command line: reports, exit status, files, and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clips import make_clip, make_image

from cosmos_upsample_fix.cli import main
from test_planner import _sent_tokens

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
SHARED = Path(__file__).resolve().parents[2] / "shared" / "videos"


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("cli") / "wide clip é.mp4", 1280, 704, frames=5)


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_inspect_json_reports_original_and_plan(capsys, wide):
    code, data = run_json(capsys, "inspect", str(wide), "--prompt", PROMPT)
    assert code == 0
    assert data["original"]["width"] == 1280 and data["original"]["height"] == 704
    assert data["original"]["prompt_tokens"] == 4699 and data["original"]["fits"] is False
    planned = data["planned"]
    assert (planned["width"], planned["height"]) == (928, 512)
    assert planned["frame_indices"] == [0, 1] and planned["fits"] is True
    assert planned["prompt_tokens"] >= 0.95 * (4096 - 300)
    assert data["limits"] == {"max_model_len": 4096, "reserved_output_tokens": 300, "max_images": 2,
                              "prompt_budget": 3796}


def test_inspect_text_report(capsys, wide):
    assert main(["inspect", str(wide), "--prompt", PROMPT]) == 0
    out = capsys.readouterr().out
    assert "4699" in out and "928x512" in out and "does NOT fit" in out


def test_prepare_writes_exactly_what_it_reports(capsys, wide, tmp_path):
    out_dir = tmp_path / "frames"
    code, data = run_json(capsys, "prepare", str(wide), "--out-dir", str(out_dir), "--prompt", PROMPT,
                          "--select", "uniform")
    assert code == 0 and data["planned"]["frame_indices"] == [0, 4]
    assert [Path(f).parent for f in data["files"]] == [out_dir, out_dir]
    assert _sent_tokens(data["files"]) == data["planned"]["prompt_tokens"]
    # running again into the same folder refuses rather than overwrite
    assert main(["prepare", str(wide), "--out-dir", str(out_dir)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_limits_and_policy_options(capsys, wide):
    code, data = run_json(capsys, "inspect", str(wide), "--max-model-len", "8192", "--reserve-output", "500")
    assert code == 0 and data["limits"]["prompt_budget"] == 7692 and data["original"]["fits"] is True
    # it fits: the frames go at the model's full detail (the same tokens as upstream's request)
    assert data["planned"]["prompt_tokens"] == data["original"]["prompt_tokens"] == 4687
    code, data = run_json(capsys, "inspect", str(wide), "--policy", "max-side:640", "--frames", "1")
    assert code == 0 and (data["planned"]["width"], data["planned"]["height"]) == (640, 352)
    assert len(data["planned"]["frame_sizes"]) == 1


def test_hint_clip_fits_and_decodes(capsys, wide, tmp_path):
    out = tmp_path / "hint.mp4"
    assert main(["hint", str(wide), "-o", str(out), "--prompt", PROMPT]) == 0
    capsys.readouterr()
    code, data = run_json(capsys, "inspect", str(out), "--prompt", PROMPT)
    assert code == 0 and data["original"]["fits"] is True
    assert (data["original"]["width"], data["original"]["height"]) == (928, 512)


def test_checkpoint_dir_is_used(capsys, wide, tmp_path):
    from cosmos_upsample_fix.model import UPSAMPLER_SUBDIR, bundled_tokenizer_path

    data = json.loads(bundled_tokenizer_path().read_text())
    data["image"] = {"image_patch_size": 32, "max_image_size": 1024}
    folder = tmp_path / "ckpt" / UPSAMPLER_SUBDIR
    folder.mkdir(parents=True)
    (folder / "tekken.json").write_text(json.dumps(data))
    code, report = run_json(capsys, "inspect", str(wide), "--checkpoint-dir", str(tmp_path / "ckpt"))
    assert code == 0 and report["image_grid"]["patch_size"] == 32
    # capped to 1024x563 first, then 32x18 cells of 32 px: 18 * 33 tokens per frame
    assert report["original"]["tokens_per_frame"] == [18 * 33, 18 * 33]
    assert main(["inspect", str(wide), "--checkpoint-dir", str(tmp_path / "nothing")]) == 2
    assert "tekken.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["inspect", "{missing}"], "does not exist"),
        (["inspect", "{dir}"], "directory"),
        (["inspect", "{wide}", "--policy", "bogus"], "unknown policy"),
        (["inspect", "{wide}", "--policy", "none"], "use --policy fit"),
        (["inspect", "{wide}", "--frames", "3"], "allows 2 images"),
        (["inspect", "{wide}", "--max-model-len", "300"], "max_model_len"),
        (["inspect", "{wide}", "--prompt", "{long}"], "text alone takes"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, wide, tmp_path, argv, needle):
    (tmp_path / "d").mkdir()
    values = {"missing": str(tmp_path / "nope.mp4"), "dir": str(tmp_path / "d"), "wide": str(wide),
              "long": "robot arm " * 2500}
    assert main([a.format(**values) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosmos-upsample-fix: error:") and needle in lines[0]


def test_console_script_and_module_entry_points(wide, tmp_path):
    exe = Path(sys.executable).with_name("cosmos-upsample-fix")
    commands = [[sys.executable, "-m", "cosmos_upsample_fix"]] + ([[str(exe)]] if exe.exists() else [])
    for command in commands:
        done = subprocess.run([*command, "inspect", str(wide), "--json"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["planned"]["fits"] is True
        bad = subprocess.run([*command, "inspect", str(tmp_path / "x.mp4")], capture_output=True, text=True)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_demo_runs_with_no_arguments(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "demo"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "4699" in done.stdout and "matches the plan" in done.stdout
    folders = list(tmp_path.glob("cosmos-upsample-fix-demo-*"))
    assert len(folders) == 1 and {p.name for p in folders[0].iterdir()} == {
        "demo_1280x704.mp4", "frame_1.png", "frame_2.png"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/videos is absent")
@pytest.mark.parametrize("name", sorted(p.name for p in SHARED.glob("*.mp4")) if SHARED.is_dir() else [])
def test_every_shared_clip_prepares_frames_that_count_exactly(capsys, tmp_path, name):
    code, data = run_json(capsys, "prepare", str(SHARED / name), "--out-dir", str(tmp_path), "--prompt", PROMPT)
    assert code == 0
    planned, original = data["planned"], data["original"]
    assert _sent_tokens(data["files"]) == planned["prompt_tokens"]
    assert planned["prompt_tokens"] + 300 <= 4096
    if original["fits"]:
        assert (planned["width"], planned["height"], planned["prompt_tokens"]) == (
            original["width"], original["height"], original["prompt_tokens"])
    else:
        assert planned["prompt_tokens"] >= 0.95 * 3796


def test_image_inputs(capsys, tmp_path):
    a = make_image(tmp_path / "a.png", 1600, 900)
    b = make_image(tmp_path / "b.jpg", 900, 1600)
    code, data = run_json(capsys, "inspect", str(a), str(b))
    assert code == 0 and data["kind"] == "images" and len(data["planned"]["frame_sizes"]) == 2
    code, data = run_json(capsys, "inspect", str(a), "--frames", "1")
    assert code == 0 and data["kind"] == "image"


def test_table_matches_the_exact_count(capsys):
    from cosmos_upsample_fix.budget import Limits
    from cosmos_upsample_fix.model import load_model

    assert main(["table", "1280x704", "640x480", "4000x2"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "x" in r.split("|")[1]]
    rows = [r for r in rows if r.split("|")[1].strip()[0].isdigit()]
    assert len(rows) == 3
    model = load_model()
    for row, size in zip(rows, [(1280, 704), (640, 480), (4000, 2)]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        count = model.count([size, size], PROMPT, Limits())
        assert int(cells[1]) == count.tokens_per_frame[0] and int(cells[2]) == count.prompt_tokens
    assert main(["table", "12by7"]) == 2
