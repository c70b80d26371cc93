"""The command line: reports, exit status, files, and one-line errors."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from clips import SHARED_VIDEOS as SHARED
from clips import make_clip, make_image
from test_planner import _sent_tokens

from cosmos_upsample_fix.tools.cli import main

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."


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
    from cosmos_upsample_fix.planning.tokenizer import UPSAMPLER_SUBDIR, bundled_tokenizer_path

    data = json.loads(bundled_tokenizer_path().read_text())
    data.pop("image", None)  # every mistral_common version reads "multimodal" (1.8 onwards also "image")
    data["multimodal"] = {"image_patch_size": 32, "max_image_size": 1024}
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
        (["inspect", "{wide}", "--max-model-len", "300"], "--max-model-len"),
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
    """A fresh interpreter: the installed console script, ``python -m``, exit codes, one-line errors."""
    exe = Path(sys.executable).with_name("cosmos-upsample-fix")
    script = [str(exe)] if exe.exists() else [sys.executable, "-m", "cosmos_upsample_fix"]
    done = subprocess.run([*script, "inspect", str(wide), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["planned"]["fits"] is True
    bad = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(tmp_path / "x.mp4")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_closed_pipe_ends_quietly():
    """``... --json | head -1``: no BrokenPipeError, nothing on stderr, SIGPIPE's status."""
    sizes = [f"{w}x{h}" for w in range(16, 2000, 3) for h in range(9, 400, 40)]  # ~450 kB: far over a pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "cosmos_upsample_fix", "table", *sizes],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"| frames")
    proc.stdout.close()
    _, err = proc.communicate()
    assert err == b"" and proc.returncode == 141


def test_a_closed_pipe_in_process(monkeypatch, wide):
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["inspect", str(wide), "--json"]) == 141


def test_demo_runs_with_no_arguments(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "4699" in out and "matches the plan" in out
    folders = list(tmp_path.glob("cosmos-upsample-fix-demo-*"))
    assert len(folders) == 1 and {p.name for p in folders[0].iterdir()} == {
        "demo_1280x704.mp4", "frame_1.png", "frame_2.png"}


def test_a_failed_demo_removes_the_folder_it_made(capsys, tmp_path, monkeypatch):
    from cosmos_upsample_fix.errors import InputError
    from cosmos_upsample_fix.tools import demo

    def fail(*_args, **_kwargs):
        raise InputError("planted failure")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(demo, "demo_frames", fail)
    assert main(["demo"]) == 2 and "planted failure" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []
    assert main(["demo", "--out-dir", str(tmp_path / "new" / "demo")]) == 2
    assert not (tmp_path / "new" / "demo").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    assert main(["demo", "--out-dir", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "keep.txt").exists()  # a folder it did not make stays


def test_help_lists_every_command_on_a_line_each(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    for command in ("inspect", "prepare", "hint", "upsample", "scan", "demo", "table", "patch"):
        line = next(line for line in lines if line.split()[:1] == [command])
        assert len(line.split()) > 2  # the command and its help on one line
    assert "inspect, prepare, hint, upsample, scan, demo, table, patch" in out


@pytest.mark.parametrize("path", ["https://example.com/clip.mp4", "-", "s3://bucket/clip.mp4"])
def test_urls_and_stdin_are_local_files_only(capsys, path):
    assert main(["inspect", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "local files only" in err[0]


def test_one_frame_inputs_send_one_frame_by_default(capsys, tmp_path):
    clip = make_clip(tmp_path / "one.mp4", 1280, 704, frames=1)
    still = make_image(tmp_path / "still.png", 1280, 704)
    for path in (clip, still):
        code, data = run_json(capsys, "inspect", str(path), "--prompt", PROMPT)
        assert code == 0 and data["planned"]["frame_indices"] == [0] and len(data["planned"]["frame_sizes"]) == 1
        assert data["original"]["frame_indices"] == [0]
        assert main(["inspect", str(path)]) == 0
        assert "1 frame at" in capsys.readouterr().out
        assert main(["inspect", str(path), "--frames", "2"]) == 2  # an explicit count it cannot meet
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "1 frame" in err[0] and "2 asked" in err[0] and "1 frames" not in err[0]


def test_hint_into_a_folder_and_missing_folders(capsys, wide, tmp_path):
    (tmp_path / "existing").mkdir()
    assert main(["hint", str(wide), "-o", str(tmp_path / "existing")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "existing" / f"{wide.stem}_hint.mp4").is_file()
    assert "sized for this prompt" in out
    assert main(["hint", str(wide), "-o", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / f"{wide.stem}_hint.mp4").is_file()
    assert main(["hint", str(wide), "-o", str(tmp_path / "a" / "b" / "h.mp4")]) == 0
    assert (tmp_path / "a" / "b" / "h.mp4").is_file()
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    assert main(["hint", str(wide), "-o", str(tmp_path / "file" / "h.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the folder" in err[0]
    assert main(["hint", str(wide), "-o", str(tmp_path / "a" / "b" / "h.mp4")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_inspect_preview_writes_a_png(capsys, tmp_path):
    from PIL import Image

    clip = make_clip(tmp_path / "c.mp4", 960, 704, frames=2)
    out = tmp_path / "sub" / "p.png"
    code, data = run_json(capsys, "inspect", str(clip), "--preview", str(out))
    assert code == 0 and data["preview"] == str(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > data["planned"]["width"]
    assert main(["inspect", str(clip), "--preview", str(out)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err


def test_upsample_prints_the_servers_prompt(capsys, wide, monkeypatch):
    from openai_server import StandInServer

    monkeypatch.delenv("COSMOS_UPSAMPLE_FIX_API_KEY", raising=False)
    with StandInServer() as server:
        assert main(["upsample", str(wide), "--prompt", PROMPT, "--endpoint", server.url]) == 0
        answer = capsys.readouterr().out.strip()
        seen = server.chats()[-1]
        assert answer.startswith(PROMPT) and str(seen.prompt_tokens) in answer
        code, data = run_json(capsys, "upsample", str(wide), "--prompt", PROMPT, "--endpoint", server.url)
        assert code == 0 and data["upsampled_prompt"] == answer and data["prompt"] == PROMPT
        assert data["planned"]["prompt_tokens"] == server.chats()[-1].prompt_tokens
        assert [tuple(s) for s in server.chats()[-1].image_sizes] == [(928, 512), (928, 512)]
        monkeypatch.setenv("COSMOS_UPSAMPLE_FIX_ENDPOINT", server.url)
        assert main(["upsample", str(wide)]) == 0 and capsys.readouterr().out.strip()


def test_upsample_without_a_server_is_one_line(capsys, wide, monkeypatch):
    import socket

    from cosmos_upsample_fix.remote import endpoint

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    fast = {"connect_timeout": 1.0, "read_timeout": 5.0, "attempts": 2}
    monkeypatch.setattr(endpoint, "client_for", lambda u: endpoint.EndpointClient(u, **fast))
    assert main(["upsample", str(wide), "--endpoint", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and err[0].startswith("cosmos-upsample-fix: error:")
    monkeypatch.delenv("COSMOS_UPSAMPLE_FIX_ENDPOINT", raising=False)
    assert main(["upsample", str(wide)]) == 2
    assert "--endpoint URL" in capsys.readouterr().err


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
    from cosmos_upsample_fix.core.budget import Limits
    from cosmos_upsample_fix.planning.tokenizer import load_model

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


def test_defaults_and_choices_come_from_the_core(monkeypatch):
    """The parser spells no limit or choice of its own: upstream's limits and the selection list."""
    from cosmos_upsample_fix.core.budget import Limits
    from cosmos_upsample_fix.core.options import SELECTIONS
    from cosmos_upsample_fix.tools import cli

    monkeypatch.setattr(cli, "UPSTREAM_LIMITS", Limits(max_model_len=8192, reserved_output_tokens=512, max_images=3))
    args = cli.build_parser().parse_args(["inspect", "x.mp4"])
    assert (args.max_model_len, args.reserve_output, args.max_images) == (8192, 512, 3)
    monkeypatch.setattr(cli, "SELECTIONS", ("first", "ends"))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["inspect", "x.mp4", "--select", "uniform"])
    assert SELECTIONS == ("first", "uniform", "ends")


@pytest.mark.parametrize("command", ["inspect", "prepare", "hint", "upsample"])
def test_video_arguments_have_help(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^  VIDEO[ \t]+\w", out, re.M), out


@pytest.mark.parametrize("action", ["apply", "check", "revert"])
def test_patch_errors_carry_the_prefix(capsys, tmp_path, action):
    assert main(["patch", action, str(tmp_path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert lines[0].startswith("cosmos-upsample-fix: error: ") and "cosmos_transfer1" in lines[0]


def test_table_json_is_json(capsys):
    from cosmos_upsample_fix.core.budget import Limits
    from cosmos_upsample_fix.planning.tokenizer import load_model

    assert main(["table", "1280x704", "640x480", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["limits"]["prompt_budget"] == 3796 and data["policy"] == "fit" and data["frames"] == 2
    wide, small = data["rows"]
    count = load_model().count([(1280, 704)] * 2, PROMPT, Limits())
    assert wide["size"] == [1280, 704] and wide["tokens_per_frame"] == count.tokens_per_frame[0]
    assert wide["upstream"]["prompt_tokens"] == count.prompt_tokens == 4699 and wide["upstream"]["fits"] is False
    assert wide["planned"]["size"] == [928, 512] and wide["planned"]["prompt_tokens"] == 3795
    assert small["upstream"]["fits"] is True and small["planned"]["size"] == [640, 480]


def test_a_warning_has_one_prefix_and_names_the_cli_option(wide):
    """The planner's small-frames warning, as the console script shows it after a plan that fits."""
    done = subprocess.run([sys.executable, "-m", "cosmos_upsample_fix", "inspect", str(wide),
                           "--prompt", "robot arm " * 1750], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosmos-upsample-fix: warning: ")
    assert lines[0].count("cosmos-upsample-fix") == 1
    assert "--frames 1" in lines[0] and "frames=1" not in lines[0]


def test_a_missing_optional_dependency_names_the_extra(tmp_path):
    """``pip install .`` without ``[demo]``: no OpenCV, so the demo's exact check cannot tokenize images."""
    blocked = ("import sys; sys.modules['cv2'] = None\n"
               "from cosmos_upsample_fix.tools.cli import main\n"
               "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, "demo", "--out-dir", str(tmp_path / "demo")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosmos-upsample-fix: error: ") and "internal" not in lines[0]
    assert "pip install 'cosmos-upsample-fix[demo]'" in lines[0] and "OpenCV" in lines[0]
    assert not (tmp_path / "demo").exists()


def test_an_optional_dependency_missing_deep_inside_names_the_extra(capsys, tmp_path, monkeypatch):
    """mistral_common's own ImportError for OpenCV, from any command, is the user's to fix: the extra, status 2."""
    from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel

    def no_opencv(*_args, **_kwargs):
        raise ImportError("`opencv` is not installed. Please install it with `pip install mistral-common[opencv]`")

    monkeypatch.setattr(UpsamplerModel, "encode", no_opencv)
    assert main(["demo", "--out-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal" not in err[0] and "pip install 'cosmos-upsample-fix[demo]'" in err[0]


def test_frames_picks_among_listed_images(capsys, tmp_path):
    """Three images and an engine of two: the error's advice (--frames 2) works, and --select picks which."""
    paths = [str(make_image(tmp_path / f"{i}.png", w, h)) for i, (w, h) in enumerate(
        [(640, 480), (320, 240), (480, 320)])]
    assert main(["inspect", *paths]) == 2
    err = capsys.readouterr().err.strip()
    assert "--frames 2" in err
    code, data = run_json(capsys, "inspect", *paths, "--frames", "2")
    assert code == 0 and data["planned"]["frame_indices"] == [0, 1]
    assert data["planned"]["frame_sizes"] == [[640, 480], [320, 240]]
    assert len(data["original"]["frame_sizes"]) == 3  # upstream would send all three
    code, data = run_json(capsys, "inspect", *paths, "--frames", "2", "--select", "ends")
    assert code == 0 and data["planned"]["frame_indices"] == [0, 2]
    assert data["planned"]["frame_sizes"] == [[640, 480], [480, 320]]
    code, data = run_json(capsys, "inspect", *paths, "--frames", "1", "--select", "uniform")
    assert code == 0 and data["planned"]["frame_sizes"] == [[640, 480]]
    assert main(["inspect", *paths, "--frames", "4", "--max-images", "4"]) == 2
    assert "3 images given; 4 asked" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--frames", "0"], "--frames must be a whole number >= 1, got 0"),
    (["--max-model-len", "0"], "--max-model-len must be a whole number >= 1, got 0"),
    (["--reserve-output", "-1"], "--reserve-output must be a whole number >= 0, got -1"),
    (["--max-images", "0"], "--max-images must be a whole number >= 1, got 0"),
    (["--max-model-len", "300"], "--max-model-len (300) must be above --reserve-output (300)"),
])
def test_option_errors_name_the_command_line_option(capsys, wide, argv, message):
    assert main(["inspect", str(wide), *argv]) == 2
    assert capsys.readouterr().err == f"cosmos-upsample-fix: error: {message}\n"


def test_every_positional_argument_has_help():
    import argparse

    from cosmos_upsample_fix.tools.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.metavar or action.dest}" for name, parser in commands.choices.items()
               for action in parser._actions if not action.option_strings and not action.help]
    assert missing == []


def test_a_still_over_the_models_cap_is_not_reported_as_a_loss(capsys, tmp_path):
    still = make_image(tmp_path / "big.png", 1900, 1100)
    assert main(["inspect", str(still), "--prompt", PROMPT]) == 0
    out = capsys.readouterr().out
    assert "1900x1100 goes at 1024x608, the size the model itself shrinks it to (same tokens" in out
    assert main(["inspect", str(make_clip(tmp_path / "w.mp4", 1280, 704, frames=2)), "--prompt", PROMPT]) == 0
    assert "the model itself" not in capsys.readouterr().out  # shrunk further by the plan: no such note


def test_fewer_listed_images_picked_is_not_called_a_model_shrink(capsys, tmp_path):
    images = [str(make_image(tmp_path / f"{i}.png", 64, 48, index=i)) for i in range(3)]
    assert main(["inspect", *images, "--frames", "2", "--select", "ends", "--prompt", PROMPT]) == 0
    assert "the model itself" not in capsys.readouterr().out

