"""The launcher on a script that builds upstream's upsampler, on the real vLLM engine (a fresh process).

``python -m cosmos_upsample_fix.launch recorded_run.py RECORD upsampler_pipeline.py ...`` runs
upstream's standalone upsampler script (built like upstream's, with torchrun's variables) under
the launcher, with the engine's builds and requests recorded. A 1080p clip, whose two
full-size frames upstream's engine refuses, goes through with the plugin's plan and exactly the
planned token count, and the script builds one engine (no offload) and no other.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from clips import make_clip
from conftest import REPO_ROOT, torchrun_environ

from .conftest import PROMPT

HERE = Path(__file__).resolve().parent
PLAN = re.compile(r"cosmos-upsample-fix: upsampler frames (\d+)x(\d+) \((\d+) tokens, over by \d+\) -> "
                  r"(\d+)x(\d+) \((\d+) tokens of (\d+)\)")


def test_launcher_fits_the_request_of_a_script_that_builds_the_upsampler(upstream_path, tiny_checkpoint, tmp_path):
    clip = make_clip(tmp_path / "hd.mp4", 1920, 1080, frames=3)
    script = upstream_path / "cosmos_transfer1" / "auxiliary" / "upsampler" / "inference" / "upsampler_pipeline.py"
    record = tmp_path / "record.json"
    frames = tmp_path / "frames"
    frames.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STANDIN_", "COSMOS_UPSAMPLE"))}
    env.update(torchrun_environ())
    env.update(PYTHONPATH=os.pathsep.join([str(upstream_path), str(REPO_ROOT)]), STANDIN_TEMPDIR=str(frames))
    argv = [sys.executable, "-m", "cosmos_upsample_fix.launch", str(HERE / "recorded_run.py"), str(record),
            str(script), "--input_video", str(clip), "--checkpoint_dir", str(tiny_checkpoint), "--prompt", PROMPT]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Upsampled prompt:" in done.stdout

    seen = json.loads(record.read_text())
    assert len(seen["builds"]) == 1 and seen["builds"][0]["max_model_len"] == 4096
    [plan] = PLAN.findall("\n".join(seen["log"]))
    original, planned, budget = (int(plan[0]), int(plan[1])), (int(plan[3]), int(plan[4])), int(plan[6])
    assert original == (1920, 1080) and budget == 4096 - 300
    [request] = seen["requests"]
    assert request["error"] is None
    assert request["prompt_tokens"] == [int(plan[5])] and int(plan[5]) <= budget
    assert [tuple(s) for s in request["images"]] == [planned, planned]
