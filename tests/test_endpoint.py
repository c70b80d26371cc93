"""Endpoint mode against a stand-in ``vllm serve`` on 127.0.0.1 (tests/openai_server.py).

Real HTTP through the ``openai`` client, real clips, real mistral_common counting on the server
side. Timeouts and tries are made small through parameters; retries are made quick with the
server's ``Retry-After``, never waited out.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from clips import (
    SHARED_VIDEOS,  # noqa: E402
    make_clip,
    make_image,
)
from openai_server import MODEL_ID, StandInServer, vllm_request_model
from PIL import Image

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import Limits, model_pixels
from cosmos_upsample_fix.core.options import Options, Original
from cosmos_upsample_fix.errors import BudgetError, UpsampleFixError
from cosmos_upsample_fix.media import images
from cosmos_upsample_fix.planning.tokenizer import EMPTY_PROMPT
from cosmos_upsample_fix.remote import endpoint
from cosmos_upsample_fix.remote.endpoint import (
    EndpointClient,
    EndpointError,
    client_for,
    frame_data_url,
    request_upsample,
    upsample_remote,
)
from cosmos_upsample_fix.remote.failures import normalize_base_url

SHARED_CLIPS = sorted(SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []
PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
FAST = {"connect_timeout": 1.0, "read_timeout": 10.0, "attempts": 2}


@pytest.fixture(scope="module")
def server():
    with StandInServer() as running:
        yield running


@pytest.fixture()
def fresh():
    """A server of its own, for tests that change its behaviour."""
    with StandInServer() as running:
        yield running


@pytest.fixture(scope="module")
def clip_720(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "c1280x704.mp4", 1280, 704, frames=3)


@pytest.fixture(scope="module")
def clip_small(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "c320x240.mp4", 320, 240, frames=3)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(env.API_KEY.name, raising=False)


def expected_answer(text: str, sizes, tokens: int) -> str:
    shown = ", ".join(f"{w}x{h}" for w, h in sizes)
    return f"{text} Seen in {len(sizes)} frame(s) of {shown}; {tokens} prompt tokens."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_upstream_request(seen, planned, prompt: str, max_tokens: int = 300) -> None:
    """The body is upstream's message and sampling, and the server counted what we planned."""
    body = seen.body
    assert body["model"] == MODEL_ID
    assert body["temperature"] == 0.6 and body["max_tokens"] == max_tokens
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    n = len(planned.images)
    assert seen.content_types == ["image_url"] * n + ["text"]
    content = body["messages"][0]["content"]
    assert all(item["image_url"]["url"].startswith("data:image/jpeg;base64,") for item in content[:n])
    assert seen.image_formats == ["PNG"] * n
    assert content[-1]["text"] == prompt
    assert [tuple(s) for s in seen.image_sizes] == list(planned.plan.planned.frame_sizes)
    assert seen.prompt_tokens == planned.plan.planned.prompt_tokens
    assert seen.vllm_validated is (vllm_request_model() is not None)
    assert seen.counted_by == ("vllm" if seen.vllm_validated else "mistral_common")
    if seen.sampling is not None:  # vLLM's server would sample as upstream's in-process engine does
        from vllm import SamplingParams

        upstream = SamplingParams(temperature=0.6, max_tokens=max_tokens)
        fields = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "n", "seed", "stop",
                  "presence_penalty", "frequency_penalty", "repetition_penalty", "skip_special_tokens")
        assert {f: getattr(seen.sampling, f) for f in fields} == {f: getattr(upstream, f) for f in fields}


# ---------------------------------------------------------------- the request


@pytest.mark.skipif(not SHARED_CLIPS, reason="no shared sample clips")
@pytest.mark.parametrize("clip", SHARED_CLIPS, ids=lambda p: p.name)
def test_every_shared_clip_fits_and_is_sent_as_upstream_does(server, clip):
    before = len(server.chats())
    answer, planned = upsample_remote(clip, PROMPT, Options(endpoint=server.url))
    chats = server.chats()
    assert len(chats) == before + 1
    seen = chats[-1]
    assert seen.status == 200
    check_upstream_request(seen, planned, PROMPT)
    assert seen.prompt_tokens <= 4096 - 300
    assert planned.plan.limits == Limits(4096, 300, 2)
    assert answer == expected_answer(PROMPT, seen.image_sizes, seen.prompt_tokens)


def test_a_larger_server_context_sends_720p_frames_at_full_size(clip_720):
    with StandInServer(max_model_len=8192) as big:
        answer, planned = upsample_remote(clip_720, PROMPT, Options(endpoint=big.url))
        seen = big.chats()[-1]
    assert planned.plan.limits.max_model_len == 8192
    # full detail: the original size, or the model's own 1024-pixel grid for it (same tokens)
    full = {(1280, 704), model_pixels((1280, 704), planned.plan.grid)}
    assert set(planned.plan.planned.frame_sizes) <= full and len(planned.plan.planned.frame_sizes) == 2
    assert planned.plan.planned.tokens_per_frame == (2340, 2340) and seen.prompt_tokens == 4699
    check_upstream_request(seen, planned, PROMPT)
    assert answer.endswith("4699 prompt tokens.")


def test_the_same_clip_is_downsized_for_upstreams_context(server, clip_720):
    _, planned = upsample_remote(clip_720, PROMPT, Options(endpoint=server.url))
    assert planned.plan.planned.frame_sizes == ((928, 512), (928, 512))
    assert server.chats()[-1].prompt_tokens == 3795


def test_empty_prompt_sends_upstreams_default_text(server, clip_small):
    answer, planned = upsample_remote(clip_small, "", Options(endpoint=server.url))
    check_upstream_request(server.chats()[-1], planned, EMPTY_PROMPT)
    assert answer.startswith(EMPTY_PROMPT)


def test_settings_set_answer_length_and_image_count(server, clip_small):
    options = Options(endpoint=server.url, reserve_output=120, max_images=1, frames=1)
    _, planned = upsample_remote(clip_small, PROMPT, options)
    check_upstream_request(server.chats()[-1], planned, PROMPT, max_tokens=120)
    assert planned.plan.limits == Limits(4096, 120, 1)


def test_a_still_image_list_is_sent_in_order(server, tmp_path):
    first = make_image(tmp_path / "a.png", 400, 300)
    second = make_image(tmp_path / "b.jpg", 200, 100)
    _, planned = upsample_remote([first, second], PROMPT, Options(endpoint=server.url))
    assert server.chats()[-1].image_sizes == [(400, 300), (200, 100)]
    check_upstream_request(server.chats()[-1], planned, PROMPT)


def test_a_policy_that_cannot_fit_is_refused_before_sending(server, clip_720):
    before = len(server.chats())
    with pytest.raises(BudgetError, match="use --upsampler_policy fit"):
        upsample_remote(clip_720, PROMPT, Options(endpoint=server.url, policy=Original()), flag="--upsampler_policy")
    assert len(server.chats()) == before


def test_temporary_frames_are_removed_also_on_failure(fresh, clip_small, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = EndpointClient(fresh.url, **FAST)
    upsample_remote(clip_small, PROMPT, Options(endpoint=fresh.url), client=client)
    assert list(tmp_path.iterdir()) == []
    reported = fresh.models()
    monkeypatch.setattr(fresh, "models", lambda: reported)  # still reports 4096 ...
    fresh.max_model_len = 600  # ... but refuses what does not fit 600
    with pytest.raises(EndpointError, match="maximum context length is 600 tokens"):
        upsample_remote(clip_small, PROMPT, Options(endpoint=fresh.url), client=client)
    assert list(tmp_path.iterdir()) == []


def test_frame_data_url_holds_the_files_bytes_labelled_as_upstream(tmp_path):
    path = make_image(tmp_path / "f.png", 32, 16)
    url = frame_data_url(path)
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == path.read_bytes()


# ---------------------------------------------------------------- limits


def test_limits_come_from_the_server_card(fresh):
    client = EndpointClient(fresh.url, **FAST)
    assert client.model_name() == MODEL_ID and client.max_model_len() == 4096
    assert client.limits(Options()) == Limits(4096, 300, 2)
    assert client.limits(Options(max_model_len=2048, reserve_output=100, max_images=1)) == Limits(2048, 100, 1)
    assert client.limits(Options(max_model_len=9000)).max_model_len == 4096  # the server's is the ceiling
    gets = [s for s in fresh.seen if s.path == "/v1/models"]
    assert len(gets) == 1  # the card is kept between these calls


def test_every_request_plans_for_the_server_as_it_is_now(fresh, clip_720):
    client = EndpointClient(fresh.url, **FAST)
    _, first = upsample_remote(clip_720, PROMPT, Options(endpoint=fresh.url), client=client)
    fresh.max_model_len = 8192  # restarted with a larger context
    _, second = upsample_remote(clip_720, PROMPT, Options(endpoint=fresh.url), client=client)
    assert (first.plan.limits.max_model_len, second.plan.limits.max_model_len) == (4096, 8192)
    assert [c.prompt_tokens for c in fresh.chats()] == [3795, 4699]
    assert [s.path for s in fresh.seen] == ["/v1/models", "/v1/chat/completions"] * 2


def test_a_server_without_max_model_len_is_planned_for_the_settings(caplog):
    with StandInServer(report_max_model_len=False) as bare:
        client = EndpointClient(bare.url, **FAST)
        with pytest.raises(EndpointError, match="does not report max_model_len"):
            client.max_model_len()
        with caplog.at_level(logging.WARNING):
            assert client.limits(Options(max_model_len=3000)).max_model_len == 3000
            assert client.limits(Options()).max_model_len == 4096
    assert "does not report max_model_len" in caplog.text


def test_a_models_list_that_cannot_be_reached_is_an_error_not_a_4096_plan(clip_small, caplog):
    """The server is down: the plan is not made for an assumed 4096, and nothing is sent after."""
    with hanging_up() as (url, accepted), caplog.at_level(logging.WARNING):
        client = EndpointClient(url, **{**FAST, "attempts": 4})
        with pytest.raises(EndpointError) as caught:
            client.limits(Options())
        with pytest.raises(EndpointError) as again:
            upsample_remote(clip_small, PROMPT, Options(endpoint=url), client=client)
    for error in (caught.value, again.value):
        message = str(error)
        assert "\n" not in message and f"{url}/models" in message and "(4 attempts in" in message
    assert len(accepted) == 8  # 4 tries for each: the listing only, never a chat request after it
    assert "planning for max_model_len" not in caplog.text


def test_the_cli_plans_for_the_servers_context_unless_given_a_smaller_one(capsys, clip_720, monkeypatch):
    from cosmos_upsample_fix.tools.cli import main

    monkeypatch.delenv("COSMOS_UPSAMPLER_ENDPOINT", raising=False)
    with StandInServer(max_model_len=8192) as big:
        assert main(["upsample", str(clip_720), "--prompt", PROMPT, "--endpoint", big.url, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["limits"]["max_model_len"] == 8192
        assert data["planned"]["prompt_tokens"] == data["server_prompt_tokens"] == 4699
        assert main(["upsample", str(clip_720), "--prompt", PROMPT, "--endpoint", big.url, "--json",
                     "--max-model-len", "4096"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["limits"]["max_model_len"] == 4096 and data["server_prompt_tokens"] == big.chats()[-1].prompt_tokens
        assert [c.prompt_tokens for c in big.chats()] == [4699, 3795]


def test_a_count_that_differs_from_the_plan_is_warned_about(fresh, clip_small, caplog, monkeypatch):
    counted = fresh.chat

    def off_by_one(body, seen):
        answer = counted(body, seen)
        answer["usage"]["prompt_tokens"] += 1
        return answer

    monkeypatch.setattr(fresh, "chat", off_by_one)
    with caplog.at_level(logging.WARNING):
        result = request_upsample(clip_small, PROMPT, Options(endpoint=fresh.url), client=EndpointClient(fresh.url))
    assert result.reply.prompt_tokens == result.planned.plan.planned.prompt_tokens + 1
    assert "the server's tokenizer is not the one planned with" in caplog.text


# ---------------------------------------------------------------- failures


def test_503_twice_is_retried_and_succeeds(fresh, clip_small):
    client = EndpointClient(fresh.url, **{**FAST, "attempts": 3})
    fresh.fail(503, times=2, retry_after="0.01")
    result = request_upsample(clip_small, PROMPT, Options(endpoint=fresh.url), client=client)
    assert [s.status for s in fresh.seen] == [503, 503, 200, 200]  # the listing retried, then the chat
    assert result.answer.startswith(PROMPT) and result.reply.attempts == 1
    fresh.fail(503, times=2, retry_after="0.01")
    assert client.chat([], PROMPT).attempts == 3


def test_retries_are_bounded_and_the_last_status_is_reported(fresh):
    fresh.fail(502, times=10, retry_after="0.01", message="upstream worker crashed")
    client = EndpointClient(fresh.url, **{**FAST, "attempts": 3})
    with pytest.raises(EndpointError) as caught:
        client.model_name()
    message = str(caught.value)
    assert "\n" not in message and f"{fresh.url}/models" in message
    assert "HTTP 502: upstream worker crashed" in message and "(3 attempts in" in message
    assert len(fresh.seen) == 3


def test_a_rate_limit_is_retried(fresh):
    fresh.fail(429, retry_after="0.01")
    assert EndpointClient(fresh.url, **FAST).model_name() == MODEL_ID
    assert [s.status for s in fresh.seen] == [429, 200]


def test_no_server_listening_is_one_line_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError) as caught:
        EndpointClient(url, **FAST).model_name()
    message = str(caught.value)
    assert isinstance(caught.value, UpsampleFixError)
    assert "\n" not in message and f"{url}/models" in message
    assert "cannot connect (connection refused)" in message and "(2 attempts in" in message


def test_an_unresolvable_host_is_reported():
    with pytest.raises(EndpointError, match="cannot connect .*resolve"):
        EndpointClient("http://no-such-host.invalid:8000/v1", **{**FAST, "attempts": 1}).model_name()


def test_a_slow_answer_hits_the_read_timeout_on_every_try(fresh):
    fresh.delay = 0.5
    client = EndpointClient(fresh.url, **{**FAST, "read_timeout": 0.1})
    with pytest.raises(EndpointError, match=r"did not answer within 0.1 s .*\(2 attempts in"):
        client.model_name()
    assert len(fresh.seen) == 2


def test_vllms_context_refusal_is_surfaced(server, tmp_path):
    frames = [make_image(tmp_path / f"f{i}.png", 1280, 704, i) for i in range(2)]
    before = len(server.chats())
    with pytest.raises(EndpointError) as caught:
        EndpointClient(server.url, **FAST).chat(frames, PROMPT)
    message = str(caught.value)
    assert "(HTTP 400)" in message and "\n" not in message
    assert (
        "This model's maximum context length is 4096 tokens. However, you requested 4999 tokens "
        "(4699 in the messages, 300 in the completion). Please reduce the length of the messages or completion."
    ) in message
    assert len(server.chats()) == before + 1  # a 4xx is not retried


def test_vllm_032s_error_shape_is_surfaced(fresh):
    text = "This model's maximum context length is 4096 tokens. However, your prompt contains 4699 input tokens"
    body = {"error": {"message": text, "type": "BadRequestError", "param": "input_tokens", "code": 400}}
    fresh.reply_raw(400, json.dumps(body).encode())
    with pytest.raises(EndpointError) as caught:
        EndpointClient(fresh.url, **FAST).model_name()
    assert str(caught.value).endswith(f"refused the request (HTTP 400): {text}")


def test_too_many_images_and_unknown_model_are_surfaced(server, tmp_path):
    frames = [make_image(tmp_path / f"f{i}.png", 64, 64, i) for i in range(3)]
    client = EndpointClient(server.url, **FAST)
    with pytest.raises(EndpointError, match=r"At most 2 image\(s\) may be provided in one request"):
        client.chat(frames, PROMPT)
    client.model_card()["id"] = "another-model"
    with pytest.raises(EndpointError, match=r"HTTP 404\): The model `another-model` does not exist"):
        client.chat(frames[:1], PROMPT)


# ---------------------------------------------------------------- the client package


def test_a_missing_openai_client_is_one_line_naming_the_extra_when_the_endpoint_is_set(monkeypatch, capsys, clip_small):
    from cosmos_upsample_fix.cosmos import runtime
    from cosmos_upsample_fix.tools.cli import main

    monkeypatch.setitem(sys.modules, "openai", None)  # `import openai` fails as where it is not installed
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: no request is ever made
    for set_endpoint in (lambda: EndpointClient(url), lambda: runtime.install(endpoint=url)):
        with pytest.raises(EndpointError) as caught:
            set_endpoint()
        assert str(caught.value) == (
            "an upsampler endpoint needs the openai client, which is not installed here: "
            "pip install 'cosmos-upsample-fix[openai]'"
        )
    assert not runtime.is_installed()
    monkeypatch.setenv(env.ENDPOINT.name, url)
    with pytest.raises(EndpointError, match=r"cosmos-upsample-fix\[openai\]"):
        runtime.install()
    assert main(["upsample", str(clip_small), "--endpoint", url]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'cosmos-upsample-fix[openai]'" in line
    runtime.uninstall()


# ---------------------------------------------------------------- API key


def test_api_key_is_sent_as_bearer_and_never_logged(monkeypatch, caplog, clip_small):
    key = "sk-upsampler-7f3c9e1d"
    monkeypatch.setenv(env.API_KEY.name, key)
    with StandInServer(api_key=key) as guarded, caplog.at_level(logging.DEBUG):
        client = EndpointClient(guarded.url, **FAST)
        guarded.fail(503, times=1, retry_after="0.01", message=f"echoing {key}")
        answer, _ = upsample_remote(clip_small, PROMPT, Options(endpoint=guarded.url), client=client)
        guarded.fail(503, times=5, retry_after="0.01", message=f"echoing {key}")
        with pytest.raises(EndpointError) as caught:
            client.chat([], PROMPT)
        assert {s.authorization for s in guarded.seen} == {f"Bearer {key}"}
    assert answer.startswith(PROMPT)
    texts = [str(caught.value), repr(client), caplog.text] + [str(r.args) for r in caplog.records]
    assert "echoing ***" in str(caught.value)
    assert not [t for t in texts if key in t]


def test_a_users_openai_key_is_never_sent_to_the_upsampler_server(fresh, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-openai-key")
    EndpointClient(fresh.url, **FAST).model_name()
    assert [s.authorization for s in fresh.seen] == ["Bearer EMPTY"]


def test_a_missing_key_gets_the_servers_401_with_a_hint():
    with StandInServer(api_key="right-key") as guarded:
        with pytest.raises(EndpointError) as caught:
            EndpointClient(guarded.url, **FAST).model_name()
        assert len(guarded.seen) == 1
    message = str(caught.value)
    assert "(HTTP 401): Unauthorized" in message and env.API_KEY.name in message


# ---------------------------------------------------------------- sharing


def test_concurrent_calls_share_one_client(server, tmp_path):
    clips = [make_clip(tmp_path / f"c{i}.mp4", 160 + 32 * i, 120, frames=2) for i in range(6)]
    client = client_for(server.url)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            answer, _ = upsample_remote(clips[i], f"prompt number {i}.", Options(endpoint=server.url))
            results[i] = answer
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clips))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i, answer in results.items():
        assert answer.startswith(f"prompt number {i}. Seen in 2 frame(s) of {160 + 32 * i}x120")
    assert client_for(server.url + "/") is client


def test_client_for_is_per_url_and_key(monkeypatch):
    a = client_for("http://127.0.0.1:1/v1")
    assert client_for("http://127.0.0.1:1/v1/") is a
    monkeypatch.setenv(env.API_KEY.name, "k1")
    assert client_for("http://127.0.0.1:1/v1") is not a
    assert "k1" not in repr(client_for("http://127.0.0.1:1/v1"))


def test_upsample_remote_needs_an_endpoint(clip_small):
    with pytest.raises(EndpointError, match="no upsampler endpoint"):
        upsample_remote(clip_small, PROMPT, Options())


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://host:8000/v1", "http://host:8000/v1"),
        ("http://host:8000/v1/", "http://host:8000/v1"),
        (" https://host/v1 ", "https://host/v1"),
        ("http://host:8000", "http://host:8000/v1"),
        ("http://host:8000/v1/chat/completions", "http://host:8000/v1"),
        ("http://host:8000/v1/models/", "http://host:8000/v1"),
        ("http://host:8000/proxy/v1", "http://host:8000/proxy/v1"),
    ],
)
def test_base_url_forms(given, base):
    assert normalize_base_url(given) == base


@pytest.mark.parametrize("bad", ["host:8000/v1", "ftp://host/v1", "http://", "http://host:99999/v1"])
def test_bad_urls_are_refused(bad):
    with pytest.raises(EndpointError):
        normalize_base_url(bad)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'{"object": "error", "message": "bad  request\\n here", "type": "BadRequestError", "code": 400}',
         "bad request here"),
        (401, b'{"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}', "Incorrect API key"),
        (401, b'{"error": "Unauthorized"}', "Unauthorized"),
        (404, b'{"detail": "Not Found"}', "Not Found"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (502, b"", "(empty body)"),
        (400, b"x" * 5000, "x" * 399 + "…"),
    ],
)
def test_the_servers_own_message_reaches_the_user(fresh, status, body, message):
    for _ in range(FAST["attempts"]):
        fresh.reply_raw(status, body)
    with pytest.raises(EndpointError) as caught:
        EndpointClient(fresh.url, **FAST).model_name()
    assert (f": {message}" in str(caught.value)) and "\n" not in str(caught.value)


def test_a_wrong_base_url_gets_a_hint(server):
    wrong = server.url[: -len("/v1")] + "/api"
    with pytest.raises(EndpointError, match=r"HTTP 404\): Not Found; is this the server's OpenAI base URL"):
        EndpointClient(wrong, **FAST).model_name()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>ok</html>", "answered without a message"),
        (b'{"choices": []}', "answered without a message"),
        (b'{"choices": [{"message": {"content": null}}]}', "answered without text"),
    ],
)
def test_a_broken_answer_is_an_endpoint_error(fresh, tmp_path, body, error):
    client = EndpointClient(fresh.url, **FAST)
    client.model_card()
    fresh.reply_raw(200, body)
    with pytest.raises(EndpointError, match=error):
        client.chat([make_image(tmp_path / "f.png", 32, 32)], PROMPT)


def test_an_answer_cut_at_max_tokens_is_logged(fresh, tmp_path, caplog):
    client = EndpointClient(fresh.url, **FAST)
    client.model_card()
    fresh.reply_raw(200, b'{"choices": [{"message": {"content": " cut "}, "finish_reason": "length"}]}')
    with caplog.at_level(logging.WARNING):
        assert client.chat([make_image(tmp_path / "f.png", 32, 32)], PROMPT).text == "cut"
    assert "cut at max_tokens" in caplog.text


def test_a_model_list_without_models_is_an_endpoint_error(fresh):
    fresh.reply_raw(200, b'{"object": "list", "data": []}')
    with pytest.raises(EndpointError, match="lists no model"):
        EndpointClient(fresh.url, **FAST).model_name()


@contextmanager
def hanging_up():
    """A port that accepts each connection, reads the request and closes without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def hang_up() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
            accepted.append(1)

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_server_that_hangs_up_is_retried_then_reported():
    with hanging_up() as (url, accepted):
        with pytest.raises(EndpointError, match=r"connection lost \(the server closed the connection"):
            EndpointClient(url, **{**FAST, "attempts": 3}).model_name()
    assert len(accepted) == 3


def test_tls_to_a_plain_http_server_is_reported(fresh):
    with pytest.raises(EndpointError, match="cannot connect \\(TLS failed"):
        EndpointClient(fresh.url.replace("http://", "https://"), **FAST).model_name()
    assert len(fresh.seen) == 0


@pytest.mark.skipif(vllm_request_model() is None, reason="vllm is not importable")
def test_vllms_protocol_model_refuses_a_body_it_does_not_accept(fresh):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}
    request = urllib.request.Request(
        fresh.url + "/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400 and "temperature" in caught.value.read().decode()


@pytest.mark.parametrize("url, level", [
    ("http://localhost:8000/v1", 0), ("http://127.0.0.1:8000", 0), ("http://127.8.9.1", 0), ("http://[::1]:8000/v1", 0),
    ("http://api.localhost", 0), ("https://upsampler.example.com/v1", 1), ("http://10.0.0.5:8000", 1),
    ("http://[2001:db8::1]:8000", 1),
])
def test_png_level_is_stored_on_loopback_and_compressed_across_a_network(url, level):
    assert endpoint.png_level_for(url) == level


def _sent_images(body) -> list[bytes]:
    content = body["messages"][0]["content"]
    urls = [item["image_url"]["url"] for item in content if item["type"] == "image_url"]
    return [base64.b64decode(url.split(",", 1)[1]) for url in urls]


def test_a_remote_server_gets_compressed_frames_with_the_same_pixels(server, clip_720, monkeypatch):
    _, planned = upsample_remote(clip_720, PROMPT, Options(endpoint=server.url))
    stored = _sent_images(server.chats()[-1].body)
    monkeypatch.setattr(endpoint, "png_level_for", lambda url: endpoint.NETWORK_PNG_LEVEL)
    _, again = upsample_remote(clip_720, PROMPT, Options(endpoint=server.url))
    seen = server.chats()[-1]
    check_upstream_request(seen, again, PROMPT)
    compressed = _sent_images(seen.body)
    assert [len(c) < len(s) / 1.5 for c, s in zip(compressed, stored)] == [True, True]
    for data, image in zip(compressed, planned.images):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), image)
    assert stored == [images.encode_png(image) for image in planned.images]  # loopback: stored PNGs
