"""Endpoint mode against a real ``vllm serve`` of the tiny Pixtral at ``--max-model-len`` 4096 and 8192.

Every request the plugin sends is accepted with exactly the planned length (the server's own
``usage.prompt_tokens``), from each entry point: ``cosmos-upsample-fix upsample --endpoint``,
``install(endpoint=...)`` and the patched script's ``--upsampler_endpoint``; the plan follows the
server's ``max_model_len``; 8 concurrent clients x 4 requests are all answered; a server stopped
and started again mid-batch leaves every request answered or failed with one line, none hanging.
At most one server runs at a time: the 4096 tests come first, then the 8192 ones.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model
from cosmos_upsample_fix.remote.endpoint import EndpointClient, EndpointError, client_for, request_upsample

from .server import RecordingProxy, free_port, vllm_serve  # noqa: F401  (vllm_serve: the fixture)

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "tests" / "standin" / "cosmos_transfer1" / "auxiliary" / "upsampler" / "inference" / (
    "upsampler_pipeline.py"
)
PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
SIZES = ((1280, 704), (640, 480), (960, 540), (1920, 1080))
INSTALL_BOOT = """\
import os, runpy, sys
import cosmos_upsample_fix
cosmos_upsample_fix.install(endpoint=sys.argv[1])
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[int, int], Path]:
    from clips import make_clip

    folder = tmp_path_factory.mktemp("server-clips")
    return {size: Path(make_clip(folder / f"c{size[0]}x{size[1]}.mp4", *size, frames=3)) for size in SIZES}


@pytest.fixture(autouse=True)
def _no_endpoint_settings(monkeypatch):
    for name in ("COSMOS_UPSAMPLER_ENDPOINT", "COSMOS_UPSAMPLER_API_KEY", "COSMOS_UPSAMPLER_POLICY"):
        monkeypatch.delenv(name, raising=False)


def expected(clip: Path, max_model_len: int, checkpoint: Path, prompt: str = PROMPT) -> PlannedFrames:
    """The plan for ``clip`` on a server of this ``max_model_len`` (upstream's 300 answer tokens, 2 images)."""
    return plan_frames(str(clip), prompt, Options(), limits=Limits(max_model_len, 300, 2), model=load_model(checkpoint))


def cli_env() -> dict[str, str]:
    """The environment of a user's shell, with this checkout first on the path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``cosmos-upsample-fix ARGS`` as a user runs it."""
    argv = [sys.executable, "-m", "cosmos_upsample_fix", *args]
    return subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def check_exchange(exchange, plan: PlannedFrames) -> None:
    """The server accepted the request and counted exactly the planned length."""
    assert exchange.status == 200, exchange.body
    assert exchange.prompt_tokens == plan.plan.planned.prompt_tokens
    assert exchange.image_sizes == list(plan.plan.planned.frame_sizes)
    assert exchange.max_tokens == 300


def every_entry_point(serve, clips, checkpoint, standin_helpers, tmp_path, max_model_len: int) -> None:
    """The CLI (as JSON; as text with a smaller --max-model-len given), install(endpoint=...) and the
    patched script's flag, run at once (each a process of its own, as users would run them)."""
    server = serve(max_model_len)
    card = server.models()
    assert card is not None and card["data"][0]["max_model_len"] == max_model_len
    big, small = clips[1280, 704], clips[640, 480]
    boot = tmp_path / "install_then_run.py"
    boot.write_text(INSTALL_BOOT)
    env = standin_helpers.standin_env
    with RecordingProxy(server.base) as proxy:
        pipeline = ["--checkpoint_dir", str(checkpoint), "--input_video", str(big), "--prompt"]
        cli_args = [sys.executable, "-m", "cosmos_upsample_fix", "upsample", "--endpoint", proxy.url]
        runs = {  # name: (argv, environment, prompt, clip, the max_model_len the plan must use)
            "cli-json": (cli_args + [str(big), "--json", "--prompt"], cli_env(), big, max_model_len),
            "cli-text": (cli_args + [str(small), "--max-model-len", "2048", "--prompt"], cli_env(), small, 2048),
            "install": ([sys.executable, str(boot), proxy.url, str(PIPELINE), *pipeline], env(), big, max_model_len),
            "flag": ([sys.executable, str(PIPELINE), "--upsampler_endpoint", proxy.url, *pipeline],
                     env(patched=True), big, max_model_len),
        }
        procs = {
            name: subprocess.Popen([*argv, f"{PROMPT} ({name})"], env=environ, cwd=tmp_path, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name, (argv, environ, _, _) in runs.items()
        }
        outputs = {name: proc.communicate(timeout=300) for name, proc in procs.items()}
        exchanges = {e.prompt: e for e in proxy.chats()}
    assert len(exchanges) == len(runs) and all(e.status == 200 for e in proxy.exchanges)
    for name, (_, _, clip, limit) in runs.items():
        out, err = outputs[name]
        assert procs[name].returncode == 0, (name, err)
        plan = expected(clip, limit, checkpoint, f"{PROMPT} ({name})")
        assert plan.plan.limits.max_model_len == limit
        exchange = exchanges[f"{PROMPT} ({name})"]
        check_exchange(exchange, plan)
        answer = exchange.text.strip()
        if name == "cli-json":
            data = json.loads(out)
            assert data["limits"]["max_model_len"] == max_model_len and data["upsampled_prompt"] == answer
            assert data["planned"]["prompt_tokens"] == data["server_prompt_tokens"] == exchange.prompt_tokens
        elif name == "cli-text":
            assert out == answer + "\n"  # the answer, once
        else:
            assert out.count(answer) == 1


# ---------------------------------------------------------------- --max-model-len 4096


def test_every_entry_point_sends_the_planned_length_to_a_4096_server(
    vllm_serve, clips, tiny_checkpoint, standin_helpers, tmp_path  # noqa: F811
):
    every_entry_point(vllm_serve, clips, tiny_checkpoint, standin_helpers, tmp_path, 4096)


def test_the_servers_own_refusal_reaches_the_user(vllm_serve, tmp_path):  # noqa: F811
    from clips import make_image

    server = vllm_serve(4096)
    frames = [make_image(tmp_path / f"f{i}.png", 1280, 704, i) for i in range(2)]  # unplanned: 4699 tokens
    with pytest.raises(EndpointError) as caught:
        EndpointClient(server.url).chat(frames, PROMPT)
    message = str(caught.value)
    assert "\n" not in message and f"{server.url}/chat/completions refused the request (HTTP 400): " in message
    assert "maximum context length is 4096 tokens" in message and "4699" in message


def test_a_restart_mid_batch_leaves_each_request_answered_or_failed_in_one_line(
    vllm_serve, clips, tiny_checkpoint  # noqa: F811
):
    """The 4096 server is stopped mid-batch and started again on its port with 8192: every request is
    answered (planned for the server that answered it) or fails with one line; none hangs."""
    server = vllm_serve(4096)
    url = server.url
    client = client_for(url)  # one client shared by the threads, as in one Cosmos process
    model = load_model(tiny_checkpoint)
    outcomes: list[tuple[str, float, object, tuple[int, int]]] = []  # (phase at the start, seconds, result, size)
    lock, stop = threading.Lock(), threading.Event()
    phase = ["before"]

    def work(offset: int) -> None:
        for i in range(60):
            if stop.is_set():
                return
            size, when, started = SIZES[(offset + i) % len(SIZES)], phase[0], time.monotonic()
            try:
                result: object = request_upsample(str(clips[size]), PROMPT, Options(endpoint=url), model=model,
                                                  client=client)
            except EndpointError as exc:
                result = exc
            with lock:
                outcomes.append((when, time.monotonic() - started, result, size))
            if isinstance(result, EndpointError):
                time.sleep(1.0)

    def answered(when: str) -> int:
        with lock:
            return sum(1 for w, _, r, _ in outcomes if w == when and not isinstance(r, Exception))

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 240
        while answered("before") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        phase[0] = "down"
        server.stop()
        down = cli("upsample", str(clips[640, 480]), "--prompt", PROMPT, "--endpoint", url, timeout=120)
        phase[0] = "after"
        vllm_serve(8192, port=server.port)
        deadline = time.monotonic() + 240
        while answered("after") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)  # no request hangs
    assert down.returncode == 2 and down.stdout == ""
    [line] = down.stderr.strip().splitlines()
    assert f"{url}/models: cannot connect (connection refused) (4 attempts in" in line
    failures = [r for _, _, r, _ in outcomes if isinstance(r, Exception)]
    assert failures and all("\n" not in str(r) and url in str(r) for r in failures)
    for when, seconds, result, size in outcomes:
        assert seconds < 200, (when, seconds, result)  # bounded: tries x timeouts, never a hang
        if isinstance(result, Exception):
            continue
        limit = result.planned.plan.limits.max_model_len  # type: ignore[attr-defined]
        assert limit == (8192 if when == "after" else 4096)
        plan = expected(clips[size], limit, tiny_checkpoint)
        assert result.reply.prompt_tokens == plan.plan.planned.prompt_tokens  # type: ignore[attr-defined]
        assert result.answer == result.reply.text  # type: ignore[attr-defined]
    assert answered("before") >= 3 and answered("after") >= 3


# ---------------------------------------------------------------- --max-model-len 8192


def test_every_entry_point_sends_the_planned_length_to_an_8192_server(
    vllm_serve, clips, tiny_checkpoint, standin_helpers, tmp_path  # noqa: F811
):
    every_entry_point(vllm_serve, clips, tiny_checkpoint, standin_helpers, tmp_path, 8192)
    assert expected(clips[1280, 704], 8192, tiny_checkpoint).plan.planned.prompt_tokens == 4699  # full detail


def test_8_concurrent_clients_of_4_requests_are_all_answered_as_planned(
    vllm_serve, clips, tiny_checkpoint  # noqa: F811
):
    server = vllm_serve(8192)
    model = load_model(tiny_checkpoint)
    plans = {size: expected(clip, 8192, tiny_checkpoint, f"{PROMPT} ({size[0]})") for size, clip in clips.items()}
    results: dict[tuple[int, int], object] = {}
    lock = threading.Lock()

    with RecordingProxy(server.base) as proxy:

        def client_run(n: int) -> None:
            client = EndpointClient(proxy.url)  # a client of its own, as another process would have
            for i in range(4):
                size = SIZES[(n + i) % len(SIZES)]
                try:
                    result: object = request_upsample(str(clips[size]), f"{PROMPT} ({size[0]})", Options(),
                                                      model=model, client=client)
                except Exception as exc:  # reported by the assertions below
                    result = exc
                with lock:
                    results[n, i] = (size, result)

        threads = [threading.Thread(target=client_run, args=(n,), daemon=True) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads)
        exchanges = proxy.chats()
    failures = {key: value for key, value in results.items() if isinstance(value[1], Exception)}
    assert len(results) == 32 and not failures
    for size, result in results.values():
        assert result.reply.prompt_tokens == plans[size].plan.planned.prompt_tokens  # type: ignore[attr-defined]
    assert len(exchanges) == 32 and all(e.status == 200 for e in exchanges)
    assert sorted(e.prompt_tokens for e in exchanges) == sorted(
        plans[size].plan.planned.prompt_tokens for size, _ in results.values()
    )
