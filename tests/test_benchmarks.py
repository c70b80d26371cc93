"""The benchmark's tables, in-process on tiny inputs: every goal that does not depend on wall
time passes, and the benchmark's own cross-checks find no problem in the package.

Timed goals (speed, planning cost) are measured but not asserted here: speed belongs to the
benchmark run itself (``python -m benchmarks.run``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("cv2", reason="the benchmarks need opencv-python-headless (pip install -e .[bench])")

from benchmarks import clips, suite  # noqa: E402
from benchmarks.config import PROMPT, Context  # noqa: E402
from cosmos_upsample_fix.planning.tokenizer import load_model  # noqa: E402

UNTIMED = ("Budget", "Fidelity", "Filter", "Pre-shrink", "Payload")


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("bench")
    model = load_model()
    model.text_tokens(PROMPT)
    ctx = Context(model, tmp, runs=1)
    clipset = clips.ClipSet(
        # a 720p-class clip that must shrink, and a one-frame still over the model's 1024-px cap that fits
        [clips.generated_clip(tmp, 720, 720, 2), clips.generated_still(tmp, 1600, 400)], None, [],
    )
    results = suite.measure(clipset, ctx, plan_requests=40, plan_exact=4, batch=2)
    return results, suite.report(results, clipset, ctx, "test", 0.0)


def test_no_problem_found(measured) -> None:
    results, text = measured
    assert results.problems == []
    assert "## Problems found in the package" not in text


def test_every_untimed_goal_is_checked_and_passes(measured) -> None:
    results, _ = measured
    untimed = [g for g in results.goals if not g.timed]
    assert [g.name.split(":")[0] for g in untimed] == list(UNTIMED)
    for goal in untimed:
        assert goal.result == "PASS", f"{goal.name}: {goal.detail}"
    by_name = {g.name.split(":")[0]: g for g in results.goals}
    for name in ("Speed", "Selection", "Planning"):  # measured, not asserted
        assert by_name[name].applicable and by_name[name].timed


def test_report_lists_every_table_and_row(measured) -> None:
    results, text = measured
    for heading in ("## Goals", "## 1. Budget use", "## 2. Fidelity", "### The downscale filter",
                    "### Frames over the model's 1024-px cap", "### Per kind of content", "**camera** (2 clips",
                    "## 3. Speed and payload", "### Frame selection against the decode floor", "## 4. Planning cost",
                    "## 5. A batch of prompts"):
        assert heading in text, heading
    for goal in results.goals:
        assert f"| {goal.name} | {goal.result} |" in text
    rows = [line for line in text.splitlines() if line.startswith("| gen_720x720.mp4 |")]
    assert len(rows) == 9  # budget, fidelity, filter, speed, stages, 3 selections, per kind
    assert [line for line in text.splitlines() if line.startswith("| still_1600x400.png |")]
    [pre] = results.fidelity.preshrink  # the still: over the cap, and its request fits
    assert pre.ok and pre.sent[0] in ((1024, 256), (1600, 400)) and pre.margin >= -0.1
    assert pre.sent_tokens == pre.upstream_tokens == pre.exact_tokens
    [selection] = results.speed.selections
    assert selection.indices == {"first": (0, 1), "uniform": (0, 1), "ends": (0, 1)}
    assert all(selection.package[s] and selection.floor[s] for s in selection.selects)
    speed = results.speed.rows[0]
    assert speed.payload > 0 and speed.payload_compressed > 0 and speed.payload_baseline > 0


def test_prompt_batch_builds_no_engine_through_the_endpoint(measured) -> None:
    results, _ = measured
    assert not results.offload.skipped  # the test extra has everything the batch needs
    modes = {row.mode: row for row in results.offload.rows}
    assert modes["in-process engine, --offload_prompt_upsampler"].engine_builds == 2
    for mode, row in modes.items():
        if mode.startswith("endpoint"):
            assert (row.engine_builds, row.server_requests, row.answers) == (0, 2, 2), mode


def test_quick_never_overwrites_the_committed_results() -> None:
    with pytest.raises(SystemExit) as exit_info:
        suite.main(["--quick", "--out", str(suite.RESULTS)])
    assert exit_info.value.code == 2
