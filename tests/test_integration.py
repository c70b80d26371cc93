"""End to end with the stand-ins for vLLM and Cosmos-Transfer1 (tests/standin), for each way in:

* **a** — the source patch: the stand-in's patched variant (``STANDIN_PATCHED=1``), and the
  patch's *own added lines*, parsed out of ``patches/cosmos-transfer1.patch`` and executed;
* **b** — the launcher ``python -m cosmos_upsample_fix.launch SCRIPT [--upsampler_policy SPEC] ARGS``
  (in-process through :func:`cosmos_upsample_fix.launch.main`, and as a real subprocess);
* **c** — ``cosmos_upsample_fix.install()`` in Python.

For each: without the plugin a 1280x704 clip fails with vLLM's ValueError; with it the request
fits; a 640x480 clip reaches the engine exactly as without the plugin; the engine's own limits
are honoured; with offload upstream's values or install()'s settings apply; and every upstream
path (vis/edge with a given or a generated control, seg/depth, batch mode, offload on and off,
other torchrun ranks, the standalone upsampler pipeline).

The engine's records (``vllm.LLM.calls``) are compared with what the package's planner computes;
token counts come from mistral_common (in the stand-in engine) and ``load_model().count``.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import cosmos_upsample_fix
from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos import hooks, runtime
from cosmos_upsample_fix.errors import BudgetError
from cosmos_upsample_fix.patching.engine import parse_patch
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model
from cosmos_upsample_fix.tools import launch

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
STANDIN_DIR = TESTS_DIR / "standin"
TRANSFER = STANDIN_DIR / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
PIPELINE = STANDIN_DIR / "cosmos_transfer1" / "auxiliary" / "upsampler" / "inference" / "upsampler_pipeline.py"
PATCH_FILE = REPO_ROOT / "cosmos_upsample_fix" / "patching" / "patches" / "cosmos-transfer1.patch"
RUNTIME = "cosmos_upsample_fix.runtime"
FLAG = launch.FLAG
PATHS = ["a", "b", "c"]

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
BIG, SMALL = (1280, 704), (640, 480)

# What reaches the engine, per conversation (everything but the engine's serial number).
ENGINE_FIELDS = (
    "model",
    "max_model_len",
    "image_limit",
    "prompt_text",
    "num_images",
    "image_sizes",
    "image_media_types",
    "image_formats",
    "processed_sizes",
    "image_tokens",
    "num_tokens",
    "max_tokens",
    "temperature",
    "output_text",
    "output_tokens",
    "finish_reason",
    "error",
)


def engine_view(call) -> dict:
    return {name: getattr(call, name) for name in ENGINE_FIELDS}


# ----------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("clean_plugin")  # no outside settings; uninstalled before and after


@pytest.fixture
def spy():
    """A registered preprocessor (before budget_fit) recording each call it sees; changes nothing."""
    seen = []

    def record(call):
        seen.append(
            SimpleNamespace(
                video=list(call.video) if isinstance(call.video, list) else call.video,
                prompt=call.prompt,
                policy=call.settings.policy.spec,
            )
        )
        return None

    hooks.register("integration_spy", record, order=10)
    yield seen
    hooks.unregister("integration_spy")


class Ways:
    """Run a stand-in script in-process the way a user would, through way a, b or c."""

    def __init__(self, standin, monkeypatch, torchrun_env):
        self.standin = standin
        self.monkeypatch = monkeypatch
        self.torchrun_env = torchrun_env

    @property
    def calls(self):
        return self.standin.calls

    def run(
        self,
        path,
        script,
        args,
        *,
        plugin=True,
        policy=None,
        endpoint=None,
        rank=0,
        world_size=1,
        expect_code=0,
        **install_kwargs,
    ):
        """``plugin=False``: without the plugin (a: patched tree, plugin not importable; b, c: upstream).
        ``endpoint``: the upsampler server, as ``--upsampler_endpoint`` (a, b) or ``install(endpoint=)`` (c)."""
        args = [str(a) for a in args]
        if endpoint and path != "c":
            args += ["--upsampler_endpoint", endpoint]
        elif endpoint:
            install_kwargs["endpoint"] = endpoint
        self.torchrun_env(rank=rank, world_size=world_size)  # upsampler_pipeline.py deletes them
        runtime.uninstall()
        patched = path == "a"
        self.standin.set_patched(patched)
        self.monkeypatch.setitem(sys.modules, RUNTIME, runtime if plugin or not patched else None)
        if install_kwargs:
            assert path == "c" and plugin, "install() settings exist only for way c"
        if patched:
            return self._script(script, args + ([FLAG, policy] if policy else []))
        if not plugin:
            return self._script(script, args)
        if path == "b":
            sys.path.insert(0, os.getcwd())  # what `python -m` puts first; the launcher replaces it
            code = launch.main([str(script), *args, *([FLAG, policy] if policy else [])])
            assert code == expect_code
            return code
        cosmos_upsample_fix.install(policy=policy or "fit", **install_kwargs)
        return self._script(script, args)

    @staticmethod
    def _script(script, args):
        """``python SCRIPT ARGS`` in this process."""
        sys.argv = [str(script), *args]
        sys.path.insert(0, str(Path(script).parent))  # what `python SCRIPT` puts first
        runpy.run_path(str(script), run_name="__main__")
        return 0


@pytest.fixture
def ways(standin, monkeypatch, torchrun_env, private_tmpdir):
    # Set up after `standin`, so torn down before it: sys.path is restored while the
    # stand-in folder is still on it, and the stand-in fixture then removes it.
    saved_path, argv_object, saved_argv = list(sys.path), sys.argv, list(sys.argv)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # transfer.py sets it; restored afterwards
    yield Ways(standin, monkeypatch, torchrun_env)
    sys.path[:] = saved_path
    argv_object[:] = saved_argv
    sys.argv = argv_object
    runtime.uninstall()


def plan(source, ckpt, prompt=PROMPT, policy="fit", limits=None, frames=None):
    """The package's plan for ``source`` under ``limits`` (upstream's by default)."""
    limits = limits or Limits()
    options = Options.build(policy=policy, frames=frames)
    return plan_frames(source, prompt, options, limits=limits, model=load_model(ckpt)).plan


def upstream_tokens(size, ckpt, prompt=PROMPT, frames=2):
    """Tokens of upstream's request: ``frames`` full-size frames of ``size`` and the prompt."""
    return load_model(ckpt).count([size] * frames, prompt, Limits()).prompt_tokens


def too_long(tokens, max_model_len=4096):
    return rf"^The decoder prompt \(length {tokens}\) is longer than the maximum model length of {max_model_len}\."


def write_spec(folder, name, controls, input_video, prompt=PROMPT):
    spec = {"prompt": prompt, "input_video_path": str(input_video)}
    spec.update(controls)
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def transfer_args(ckpt, out, spec, *, offload=True, num_gpus=1, extra=()):
    args = [
        "--checkpoint_dir",
        ckpt,
        "--video_save_folder",
        out,
        "--controlnet_specs",
        spec,
        "--offload_text_encoder_model",
        "--upsample_prompt",
        "--offload_guardrail_models",
        "--num_gpus",
        num_gpus,
    ]
    return args + (["--offload_prompt_upsampler"] if offload else []) + list(extra)


def edge_given(tmp_path, control, name="spec"):
    """Upstream's single-control edge example with a given control video."""
    return write_spec(tmp_path, name, {"edge": {"control_weight": 0.5, "input_control": str(control)}}, control)


def assert_fits(call, expected, limits=None):
    limits = limits or Limits()
    assert call.ok, call.error
    assert call.image_sizes == list(expected.planned.frame_sizes)
    assert call.num_tokens == expected.planned.prompt_tokens <= limits.prompt_budget


def plugin_lines(standin):
    return [m for m in standin.log.messages("INFO") if m.startswith("cosmos-upsample-fix:")]


# ----------------------------------------------------------------------------- a, b, c: the checks
@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
@pytest.mark.parametrize("path", PATHS)
def test_1280x704_fails_without_the_plugin_and_fits_with_it(ways, ckpt, clips, tmp_path, spy, path, offload):
    big = clips[BIG]
    spec = edge_given(tmp_path, big)
    with pytest.raises(ValueError, match=too_long(upstream_tokens(BIG, ckpt))):
        ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "without", spec, offload=offload), plugin=False)
    assert ways.calls[-1].image_sizes == [BIG, BIG] and spy == []
    assert not (tmp_path / "without" / "output.txt").exists()

    ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "with", spec, offload=offload))
    expected = plan(big, ckpt)
    assert_fits(ways.calls[-1], expected)
    assert (tmp_path / "with" / "output.txt").read_text() == ways.calls[-1].output_text
    assert [r.video for r in spy] == [str(big)]  # vis/edge with a given control: that video
    assert plugin_lines(ways.standin) == [f"cosmos-upsample-fix: {expected.summary()}"]
    assert len(ways.calls) == 2


@pytest.mark.parametrize("path", PATHS)
def test_640x480_reaches_the_engine_as_without_the_plugin(ways, ckpt, clips, tmp_path, spy, path):
    small = clips[SMALL]
    spec = edge_given(tmp_path, small)
    ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "without", spec), plugin=False)
    ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "with", spec))
    without, with_plugin = ways.calls
    assert without.ok and without.image_sizes == [SMALL, SMALL]
    assert engine_view(with_plugin) == engine_view(without)
    assert (tmp_path / "with" / "output.txt").read_text() == (tmp_path / "without" / "output.txt").read_text()
    assert len(spy) == 1  # the plugin did run, and left the request as it was
    assert plan(small, ckpt).summary() in plugin_lines(ways.standin)[0]


@pytest.mark.parametrize("case", ["max_model_len=8192", "max_model_len=3000", "image_limit=1"])
@pytest.mark.parametrize("path", PATHS)
def test_the_loaded_engines_own_limits_are_honoured(ways, ckpt, clips, tmp_path, path, case):
    """Offload off: the engine is loaded when the plan is made, so its limits are read live."""
    name, value = case.split("=")
    ways.standin.set_engine_limits(**{name: int(value)})
    big = clips[BIG]
    spec = edge_given(tmp_path, big)
    args = lambda out: transfer_args(ckpt, tmp_path / out, spec, offload=False)  # noqa: E731

    if case == "max_model_len=8192":
        ways.run(path, TRANSFER, args("without"), plugin=False)  # fits as is in a larger engine
        ways.run(path, TRANSFER, args("with"))
        without, with_plugin = ways.calls
        assert without.ok and without.image_sizes == [BIG, BIG] and without.max_model_len == 8192
        # Full detail: the same tokens and the model's own grid; frames over the model's 1024 cap
        # go at the size the model would resize them to.
        same = {k: v for k, v in engine_view(without).items() if k not in ("image_sizes", "image_formats")}
        assert {k: v for k, v in engine_view(with_plugin).items() if k in same} == same
        assert with_plugin.image_sizes == list(plan(big, ckpt, limits=Limits(max_model_len=8192)).planned.frame_sizes)
        return

    limits = Limits(max_model_len=3000) if case == "max_model_len=3000" else Limits(max_images=1)
    frames = limits.max_images
    failure = (
        too_long(upstream_tokens(BIG, ckpt), 3000)
        if case == "max_model_len=3000"
        else r"^At most 1 image\(s\) may be provided"
    )
    with pytest.raises(ValueError, match=failure):
        ways.run(path, TRANSFER, args("without"), plugin=False)
    ways.run(path, TRANSFER, args("with"))
    call = ways.calls[-1]
    expected = plan(big, ckpt, limits=limits, frames=frames)
    assert_fits(call, expected, limits)
    assert call.num_images == frames and (call.max_model_len, call.image_limit) == (
        limits.max_model_len,
        limits.max_images,
    )
    default = plan(big, ckpt)
    assert expected.planned.prompt_tokens < default.planned.prompt_tokens  # a smaller plan than under 4096/2


@pytest.mark.parametrize("max_model_len", [8192, 3000])
@pytest.mark.parametrize("path", PATHS)
def test_offloaded_model_final_plan_uses_the_loaded_engines_limits(ways, ckpt, clips, tmp_path, path, max_model_len):
    """With offload the model loads inside the call; the frames sent are planned for that engine."""
    big = clips[BIG]
    ways.standin.set_engine_limits(max_model_len=max_model_len)
    ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "out", edge_given(tmp_path, big), offload=True))
    call = ways.calls[-1]
    limits = Limits(max_model_len=max_model_len)
    expected = plan(big, ckpt, limits=limits)
    assert call.max_model_len == max_model_len
    assert_fits(call, expected, limits)
    assert expected.planned.frame_sizes != plan(big, ckpt).planned.frame_sizes  # not upstream's 4096 plan
    assert ways.standin.LLM.instances == 1


@pytest.mark.parametrize(
    "settings, policy",
    [({"max_model_len": 3000}, "fixed:928x512"), ({"reserve_output": 1000}, "fixed:928x512")],
    ids=["3000", "reserve-1000"],
)
def test_offloaded_model_install_settings_apply_before_the_load(ways, ckpt, clips, tmp_path, settings, policy):
    """install()'s limits describe the engine not loaded yet: what cannot fit them is refused before the load."""
    big = clips[BIG]
    limits = Limits(
        settings.get("max_model_len", 4096), settings.get("reserve_output", 300), settings.get("max_images", 2)
    )
    args = transfer_args(ckpt, tmp_path / "out", edge_given(tmp_path, big), offload=True)
    with pytest.raises(BudgetError, match="--upsampler_policy"):
        ways.run("c", TRANSFER, args, policy=policy, **settings)
    assert ways.standin.LLM.instances == 0 and ways.calls == []
    # Under upstream's limits the same request is planned (and sent once the engine is there).
    ways.run("c", TRANSFER, args, policy=policy)
    assert ways.calls[-1].ok and ways.calls[-1].image_sizes == [(928, 512)] * limits.max_images


@pytest.mark.parametrize("path", PATHS)
def test_a_refused_policy_stops_before_the_offloaded_model_loads(ways, ckpt, clips, tmp_path, capsys, path):
    spec = edge_given(tmp_path, clips[BIG])
    args = transfer_args(ckpt, tmp_path / "out", spec, offload=True)
    if path == "b":  # the launcher turns the error into one line and exit status 2
        ways.run(path, TRANSFER, args, policy="none", expect_code=2)
        err = capsys.readouterr().err
        assert err.startswith("cosmos-upsample-fix: error: ") and str(upstream_tokens(BIG, ckpt)) in err
    else:
        with pytest.raises(BudgetError, match=str(upstream_tokens(BIG, ckpt))):
            ways.run(path, TRANSFER, args, policy="none")
    assert ways.standin.LLM.instances == 0 and ways.calls == []


# ----------------------------------------------------------------------------- endpoint mode


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
@pytest.mark.parametrize("path", PATHS)
def test_endpoint_builds_no_local_engine_and_returns_the_servers_answer(
    ways, ckpt, clips, tmp_path, server, spy, path, offload
):
    big = clips[BIG]
    out = tmp_path / "out"
    ways.run(path, TRANSFER, transfer_args(ckpt, out, edge_given(tmp_path, big), offload=offload), endpoint=server.url)
    assert ways.standin.LLM.instances == 0 and ways.calls == []  # no 12B engine, offload or not
    [chat] = server.chats()
    expected = plan(big, ckpt)
    assert (
        chat.image_sizes == list(expected.planned.frame_sizes) and chat.prompt_tokens == expected.planned.prompt_tokens
    )
    answer = (out / "output.txt").read_text()
    assert answer == answer.strip() and answer.startswith(PROMPT) and f"{chat.prompt_tokens} prompt tokens" in answer
    assert len(spy) == 1


@pytest.mark.parametrize("path", PATHS)
def test_endpoint_from_the_standalone_pipeline(ways, ckpt, clips, tmp_path, private_tmpdir, server, capsys, path):
    args = [
        "--checkpoint_dir",
        ckpt,
        "--prompt",
        PROMPT,
        "--input_video",
        clips[BIG],
    ]  # no offload: upstream loads at once
    ways.run(path, PIPELINE, args, endpoint=server.url)
    assert ways.standin.LLM.instances == 0 and ways.calls == []
    [chat] = server.chats()
    assert chat.prompt_tokens <= Limits().prompt_budget and len(chat.image_sizes) == 2
    assert capsys.readouterr().out.rstrip().endswith(f"{chat.prompt_tokens} prompt tokens.")


# ----------------------------------------------------------------------------- every upstream path
@pytest.mark.parametrize("hint", ["vis", "edge"])
@pytest.mark.parametrize("path", PATHS)
def test_vis_or_edge_control_generated_from_the_input_video(ways, ckpt, clips, tmp_path, spy, path, hint):
    spec = write_spec(tmp_path, "spec", {hint: {"control_weight": 0.5}}, clips[BIG])
    out = tmp_path / "out"
    ways.run(path, TRANSFER, transfer_args(ckpt, out, spec))
    generated = out / "video_0" / f"control_input_{hint}_upsampler.mp4"
    assert [r.video for r in spy] == [str(generated)]
    expected = plan(generated, ckpt)
    assert expected.original.frame_sizes[0] == BIG  # made at the input's size, so it had to be fitted
    assert_fits(ways.calls[-1], expected)
    assert (out / "output.txt").read_text() == ways.calls[-1].output_text


@pytest.mark.parametrize("path", PATHS)
def test_distilled_pipeline_takes_the_same_route(ways, ckpt, clips, tmp_path, spy, path):
    """``--use_distilled`` builds the distilled subclass; its upsampler call goes through the plugin too."""
    big = clips[BIG]
    out = tmp_path / "out"
    ways.run(path, TRANSFER, transfer_args(ckpt, out, edge_given(tmp_path, big), extra=["--use_distilled"]))
    assert [r.video for r in spy] == [str(big)]
    assert_fits(ways.calls[-1], plan(big, ckpt))
    assert (out / "output.txt").read_text() == ways.calls[-1].output_text


@pytest.mark.parametrize("order", [("seg", "depth"), ("depth", "seg")])
@pytest.mark.parametrize("path", PATHS)
def test_seg_or_depth_use_the_given_control(ways, ckpt, clips, tmp_path, spy, path, order):
    first, second = order  # upstream takes the first of seg/depth in the spec
    controls = {
        first: {"control_weight": 0.5, "input_control": str(clips[BIG])},
        second: {"control_weight": 0.5, "input_control": str(clips[SMALL])},
    }
    spec = write_spec(tmp_path, "spec", controls, clips[SMALL])
    ways.run(path, TRANSFER, transfer_args(ckpt, tmp_path / "out", spec))
    assert [r.video for r in spy] == [str(clips[BIG])]
    assert_fits(ways.calls[-1], plan(clips[BIG], ckpt))


@pytest.mark.parametrize("path", PATHS)
def test_batch_mode_plans_each_pair_on_its_own(ways, ckpt, clips, tmp_path, spy, path):
    entries = [
        {"prompt": "scene zero", "visual_input": str(clips[BIG])},
        {"prompt": "scene one, a little longer", "visual_input": str(clips[SMALL])},
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(e) + "\n" for e in entries))
    spec = write_spec(tmp_path, "spec", {"edge": {"control_weight": 0.5}}, clips[BIG])
    out = tmp_path / "out"
    ways.run(path, TRANSFER, transfer_args(ckpt, out, spec, extra=["--batch_input_path", batch, "--batch_size", "2"]))
    assert [r.prompt for r in spy] == [e["prompt"] for e in entries]
    big_call, small_call = ways.calls
    assert_fits(big_call, plan(clips[BIG], ckpt, prompt=entries[0]["prompt"]))
    assert small_call.ok and small_call.image_sizes == [SMALL, SMALL]  # fits as is: untouched
    assert small_call.num_tokens == upstream_tokens(SMALL, ckpt, prompt=entries[1]["prompt"])
    for i, call in enumerate((big_call, small_call)):
        assert (out / f"video_{i}" / "prompt.txt").read_text() == call.output_text
    lines = plugin_lines(ways.standin)
    assert len(lines) == 2 and "over by" in lines[0] and "fits" in lines[1]


@pytest.mark.parametrize("path", PATHS)
def test_other_ranks_never_call_the_hook(ways, ckpt, clips, tmp_path, spy, path):
    spec = edge_given(tmp_path, clips[BIG])
    ways.run(
        path, TRANSFER, transfer_args(ckpt, tmp_path / "rank1", spec, offload=False, num_gpus=2), rank=1, world_size=2
    )
    assert spy == [] and ways.calls == [] and ways.standin.LLM.instances == 0
    assert plugin_lines(ways.standin) == []
    assert not (tmp_path / "rank1" / "output.txt").exists()  # only rank 0 saves
    # Rank 0 of the same job does go through the hook (so the check above can fail).
    ways.run(
        path, TRANSFER, transfer_args(ckpt, tmp_path / "rank0", spec, offload=False, num_gpus=2), rank=0, world_size=2
    )
    assert len(spy) == 1 and len(ways.calls) == 1 and ways.calls[0].ok
    assert (tmp_path / "rank0" / "output.txt").read_text() == ways.calls[0].output_text


@pytest.mark.parametrize("path", PATHS)
def test_standalone_upsampler_pipeline(ways, ckpt, clips, tmp_path, private_tmpdir, spy, capsys, path):
    big = clips[BIG]
    args = ["--checkpoint_dir", ckpt, "--prompt", PROMPT, "--input_video", big, "--offload_prompt_upsampler"]
    ways.run(path, PIPELINE, args, policy="max-side:640")
    call = ways.calls[-1]
    upstream_frames = [str(private_tmpdir / "frame_1.png"), str(private_tmpdir / "frame_2.png")]
    [record] = spy
    assert record.policy == "max-side:640"
    if path == "a":
        # Patched: the plugin reads the video itself; no shared <tmp>/frame_N.png is written.
        assert record.video == str(big)
        assert list(private_tmpdir.iterdir()) == []
        expected = plan(big, ckpt, policy="max-side:640")
    else:
        # Launcher / install(): upstream extracted its full-size frames first; the plugin fits those.
        assert record.video == upstream_frames
        expected = plan(upstream_frames, ckpt, policy="max-side:640")
        assert expected.original.frame_sizes == (BIG, BIG)
    assert_fits(call, expected)
    assert capsys.readouterr().out.endswith(f"Upsampled prompt: {call.output_text}\n")

    for leftover in private_tmpdir.iterdir():
        leftover.unlink()
    with pytest.raises(ValueError, match=too_long(upstream_tokens(BIG, ckpt))):
        ways.run(path, PIPELINE, args, plugin=False)
    # Other ranks: upstream's script does nothing at all.
    ways.standin.LLM.reset()
    ways.run(path, PIPELINE, args, rank=1, world_size=2)
    assert ways.calls == [] and ways.standin.LLM.instances == 0 and len(spy) == 1


# ----------------------------------------------------------------------------- a: the patch's own lines
def patch_block(file_suffix, first, last):
    """Post-image of the patch hunk of ``file_suffix`` from the added line containing ``first``
    down to the next line (added or context) containing ``last`` (or for which ``last(line)``
    is true), dedented."""
    is_last = last if callable(last) else (lambda line: last in line)
    [file_patch] = [f for f in parse_patch(PATCH_FILE.read_text()) if f.path.endswith(file_suffix)]
    for hunk in file_patch.hunks:
        post = [(line.tag, line.text.decode()) for line in hunk.lines if line.tag in " +"]
        starts = [i for i, (tag, text) in enumerate(post) if tag == "+" and first in text]
        if starts:
            start = starts[0]
            end = next(i for i in range(start, len(post)) if is_last(post[i][1]))
            return textwrap.dedent("".join(text for _, text in post[start : end + 1]))
    raise AssertionError(f"no hunk of {file_suffix} adds a line with {first!r}")


def function_from_patch(name, params, body):
    source = f"def {name}({', '.join(params)}):\n" + textwrap.indent(body, "    ")
    namespace: dict = {}
    exec(compile(source, f"<{name}: added lines of {PATCH_FILE.name}>", "exec"), namespace)
    return namespace[name]


class RecordingLog:
    def __init__(self):
        self.warnings = []

    def warning(self, message, *args, **kwargs):
        self.warnings.append(message)

    def info(self, message, *args, **kwargs):
        pass


@pytest.fixture
def process_prompt_upsampler():
    """The tail of ``_process_prompt_upsampler`` as the patch writes it (names bound as parameters)."""
    body = patch_block("world_generation_pipeline.py", "try:  # cosmos-upsample-fix", "return prompt")
    assert "run_upsampler(" in body and "_prompt_upsample_with_offload(" in body
    return function_from_patch("process_tail", ["self", "prompt", "input_control_path", "log"], body)


def standalone_main_fn():
    """The part of upsampler_pipeline.py ``main`` the patch replaces, as the patch writes it."""
    body = patch_block("upsampler_pipeline.py", "try:  # cosmos-upsample-fix", 'print("Upsampled prompt:"')
    assert "run_upsampler(" in body and "extract_video_frames(" in body
    return function_from_patch(
        "main_tail", ["args", "model", "extract_video_frames"], body + "return upsampled_prompt\n"
    )


def stand_in_upsampler(ckpt):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    return PixtralPromptUpsampler(str(ckpt), offload_prompt_upsampler=True)


def test_patch_lines_in_the_pipeline_call_the_plugin_with_the_policy(
    standin, ckpt, clips, private_tmpdir, spy, process_prompt_upsampler
):
    big = str(clips[BIG])
    for policy in ["max-side:640", None]:
        owner = SimpleNamespace(prompt_upsampler=stand_in_upsampler(ckpt), upsampler_policy=policy)
        log = RecordingLog()
        answer = process_prompt_upsampler(owner, PROMPT, big, log)
        expected = plan(big, ckpt, policy=policy or "fit")
        assert_fits(standin.calls[-1], expected)
        assert answer == standin.calls[-1].output_text and log.warnings == []
        assert spy[-1].video == big and spy[-1].policy == (policy or "fit")
    # An owner from an unpatched __init__ (no attribute at all) still works: getattr(..., None).
    process_prompt_upsampler(SimpleNamespace(prompt_upsampler=stand_in_upsampler(ckpt)), PROMPT, big, RecordingLog())
    assert standin.calls[-1].ok and spy[-1].policy == "fit"
    assert list(private_tmpdir.iterdir()) == []


def test_patch_lines_in_the_pipeline_fall_back_to_upstream_without_the_plugin(
    standin, ckpt, clips, private_tmpdir, spy, monkeypatch, process_prompt_upsampler
):
    monkeypatch.setitem(sys.modules, RUNTIME, None)  # `from cosmos_upsample_fix.cosmos.runtime import ...` fails
    small, big = str(clips[SMALL]), str(clips[BIG])
    baseline = stand_in_upsampler(ckpt)._prompt_upsample_with_offload(PROMPT, small)  # upstream's own call

    log = RecordingLog()
    owner = SimpleNamespace(prompt_upsampler=stand_in_upsampler(ckpt), upsampler_policy="fit")
    assert process_prompt_upsampler(owner, PROMPT, small, log) == baseline
    assert engine_view(standin.calls[1]) == engine_view(standin.calls[0])
    assert log.warnings == ["--upsampler_policy is ignored: cosmos-upsample-fix is not installed"]

    log = RecordingLog()
    owner.upsampler_policy = None
    with pytest.raises(ValueError, match=too_long(upstream_tokens(BIG, ckpt))):
        process_prompt_upsampler(owner, PROMPT, big, log)
    assert log.warnings == [] and spy == []


def test_patch_lines_in_the_standalone_main_let_the_plugin_read_the_video(
    standin, ckpt, clips, private_tmpdir, spy, capsys
):
    from cosmos_transfer1.utils.misc import extract_video_frames

    extracted = []

    def recording_extract(path, *args):
        extracted.append(path)
        return extract_video_frames(path, *args)

    # Patched main calls run_upsampler with the video path, without extracting frames first.
    main_tail = standalone_main_fn()
    big = str(clips[BIG])
    args = SimpleNamespace(prompt=PROMPT, input_video=big, upsampler_policy="max-side:640", upsampler_endpoint=None)
    answer = main_tail(args, stand_in_upsampler(ckpt), recording_extract)
    assert extracted == [] and list(private_tmpdir.iterdir()) == []
    assert spy[-1].video == big and spy[-1].policy == "max-side:640"
    assert_fits(standin.calls[-1], plan(big, ckpt, policy="max-side:640"))
    assert answer == standin.calls[-1].output_text
    assert capsys.readouterr().out == f"Upsampled prompt: {answer}\n"


def test_patch_lines_in_the_standalone_main_fall_back_without_the_plugin(
    standin, ckpt, clips, private_tmpdir, spy, monkeypatch, capsys
):
    from cosmos_transfer1.utils.misc import extract_video_frames

    monkeypatch.setitem(sys.modules, RUNTIME, None)
    extracted = []

    def recording_extract(path, *args):
        extracted.append(path)
        return extract_video_frames(path, *args)

    main_tail = standalone_main_fn()
    small = str(clips[SMALL])
    baseline = stand_in_upsampler(ckpt)._prompt_upsample_with_offload(PROMPT, extract_video_frames(small))
    capsys.readouterr()
    for policy, printed in [
        ("fit", "--upsampler_policy is ignored: cosmos-upsample-fix is not installed\n"),
        (None, ""),
    ]:
        args = SimpleNamespace(prompt=PROMPT, input_video=small, upsampler_policy=policy, upsampler_endpoint=None)
        assert main_tail(args, stand_in_upsampler(ckpt), recording_extract) == baseline
        assert capsys.readouterr().out == printed + f"Upsampled prompt: {baseline}\n"
        assert engine_view(standin.calls[-1]) == engine_view(standin.calls[0])
    assert extracted == [small, small] and spy == []


@pytest.mark.parametrize("script", ["transfer.py", "upsampler_pipeline.py"])
def test_patch_adds_the_policy_flag(script):
    import argparse

    body = patch_block(script, "parser.add_argument(", lambda line: line.strip() == ")")
    assert '"--upsampler_policy",' in body
    add_flag = function_from_patch("add_flag", ["parser"], body)
    parser = argparse.ArgumentParser()
    add_flag(parser)
    assert parser.parse_args([]).upsampler_policy is None
    assert parser.parse_args([FLAG, "max-side:640"]).upsampler_policy == "max-side:640"


def test_patch_passes_the_flag_to_the_pipeline():
    """transfer.py hands the flag to both pipeline constructors; the pipeline stores it."""
    files = {f.path.rsplit("/", 1)[-1]: f for f in parse_patch(PATCH_FILE.read_text())}
    added = lambda name: [ln.text.decode().strip() for h in files[name].hunks for ln in h.lines if ln.tag == "+"]  # noqa: E731
    assert added("transfer.py").count("upsampler_policy=cfg.upsampler_policy,") == 2
    pipeline = added("world_generation_pipeline.py")
    assert (
        "upsampler_policy: Optional[str] = None," in pipeline and "self.upsampler_policy = upsampler_policy" in pipeline
    )
    removed = [
        ln.text.decode().strip() for h in files["world_generation_pipeline.py"].hunks for ln in h.lines if ln.tag == "-"
    ]
    assert removed == [
        "prompt = self.prompt_upsampler._prompt_upsample_with_offload(prompt=prompt, video_path=input_control_path)"
    ]


# ----------------------------------------------------------------------------- real processes
@pytest.fixture
def spy_site(tmp_path):
    """A folder holding a pip-style distribution whose entry point is a recording preprocessor."""
    site = tmp_path / "spy_site"
    dist = site / "cuf_spy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cuf-spy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{hooks.ENTRY_POINT_GROUP}]\nspy = cuf_spy:spy\n")
    (site / "cuf_spy.py").write_text(
        textwrap.dedent(
            """
        import json, os

        def spy(call):
            with open(os.environ["CUF_SPY_LOG"], "a") as handle:
                record = {"pid": os.getpid(), "video": call.video, "policy": call.settings.policy.spec}
                handle.write(json.dumps(record) + "\\n")

        spy.order = 10
        """
        )
    )
    return SimpleNamespace(site=site, log=tmp_path / "spy.jsonl")


def launcher_process(standin_helpers, spy_site, script, args, *, rank, world_size, cwd, policy=None):
    environ = standin_helpers.standin_env(rank=rank, world_size=world_size)
    environ["PYTHONPATH"] = os.pathsep.join([str(spy_site.site), environ["PYTHONPATH"]])
    environ["CUF_SPY_LOG"] = str(spy_site.log)
    for name in (env.POLICY.name, env.ON_ERROR.name, env.DISABLE.name, env.ORDER.name):
        environ.pop(name, None)
    argv = [sys.executable, "-m", "cosmos_upsample_fix.launch", str(script), *map(str, args)]
    argv += [FLAG, policy] if policy else []
    return subprocess.run(argv, env=environ, cwd=str(cwd), capture_output=True, text=True, timeout=120)


def spy_records(spy_site):
    return [json.loads(line) for line in spy_site.log.read_text().splitlines()] if spy_site.log.exists() else []


def test_launcher_process_runs_transfer_py(ckpt, clips, tmp_path, private_tmpdir, standin_helpers, spy_site):
    """The one real `python -m cosmos_upsample_fix.launch` run: a fresh interpreter, an entry-point
    preprocessor from a site folder, the plan line in the stand-in Cosmos log (rank 0; the other
    ranks and the standalone pipeline are checked in-process above)."""
    rank = 0
    big = clips[BIG]
    out = tmp_path / "out"
    args = transfer_args(ckpt, out, edge_given(tmp_path, big), num_gpus=2)
    result = launcher_process(
        standin_helpers, spy_site, TRANSFER, args, rank=rank, world_size=2, cwd=tmp_path, policy="fit"
    )
    assert result.returncode == 0, result.stderr
    records = spy_records(spy_site)
    expected = plan(big, ckpt)
    assert [(r["video"], r["policy"]) for r in records] == [(str(big), "fit")]
    assert (
        out / "output.txt"
    ).read_text() == f"Upsampled: {PROMPT} [2 images, {expected.planned.prompt_tokens} tokens]"
    assert f"[cosmos-standin] INFO | cosmos-upsample-fix: {expected.summary()}" in result.stdout.splitlines()
    assert list(private_tmpdir.iterdir()) == []
