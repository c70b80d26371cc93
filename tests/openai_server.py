"""A small OpenAI-compatible server that behaves like ``vllm serve`` for the upsampler (tests only).

Real HTTP on 127.0.0.1 (a free port), started and stopped as a context manager:

- ``GET /v1/models`` lists one model card with ``max_model_len``, as vLLM does;
- ``POST /v1/chat/completions`` counts the prompt with mistral_common the way vLLM's
  ``tokenizer_mode="mistral"`` does (the raw messages, data URLs included, go to
  ``ChatCompletionRequest`` and ``encode_chat_completion``; with vLLM importable, through
  vLLM's own ``apply_mistral_chat_template``), applies vLLM's serving rules
  (image limit per prompt; prompt + max_tokens ≤ max_model_len, refused with HTTP 400 and
  vLLM's message and error body; unknown model 404; ``--api-key`` → 401 ``{"error":
  "Unauthorized"}``) and answers with a deterministic text derived from the prompt and the
  image sizes, in the OpenAI response shape;
- when ``vllm`` is importable, each chat body is first validated with vLLM's own
  ``vllm.entrypoints.openai.protocol.ChatCompletionRequest`` (a failure is vLLM's 400);
- every request is recorded (:class:`Seen`), and the server can be told to fail
  (:meth:`StandInServer.fail`: any status N times, with ``Retry-After``), to be slow
  (``delay``), or to answer a raw body (:meth:`StandInServer.reply_raw`).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL_ID = "nvidia/Cosmos-UpsamplePrompt1-12B-Transfer"

_tokenizers: dict[str, Any] = {}  # loaded once per file for all servers (about half a second each)
_tokenizers_lock = threading.Lock()


def vllm_request_model() -> Any:
    """vLLM's pydantic model of a chat completion request, or None when vLLM is not importable."""
    try:
        from vllm.entrypoints.openai.protocol import ChatCompletionRequest
    except Exception:  # not installed, or installed without what it needs
        return None
    return ChatCompletionRequest


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    authorization: str | None
    body: Any = None
    status: int = 0
    prompt_tokens: int | None = None
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    image_formats: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    vllm_validated: bool = False
    sampling: Any = None  # vLLM's SamplingParams for the request, when vLLM is importable
    counted_by: str = ""  # "vllm" (its apply_mistral_chat_template) or "mistral_common"


class _VllmError(Exception):
    """An error vLLM's server would answer with its ErrorResponse body."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class StandInServer:
    """The stand-in; see the module docstring. ``url`` is the base to give the client (``…/v1``)."""

    def __init__(
        self,
        *,
        max_model_len: int = 4096,
        max_images: int = 2,
        model_id: str = MODEL_ID,
        api_key: str | None = None,
        tokenizer_file: str | Path | None = None,
        report_max_model_len: bool = True,
        validate_with_vllm: bool = True,
    ) -> None:
        self.max_model_len = max_model_len
        self.max_images = max_images
        self.model_id = model_id
        self.api_key = api_key
        self.report_max_model_len = report_max_model_len
        self._tokenizer_file = tokenizer_file
        self.vllm_model = vllm_request_model() if validate_with_vllm else None
        self._vllm_max_tokens: Any = None
        self._vllm_count: Any = None
        if self.vllm_model is not None:  # imported and loaded here, not in a handler thread
            from vllm.entrypoints.chat_utils import apply_mistral_chat_template
            from vllm.entrypoints.utils import get_max_tokens

            tokenizer = _vllm_tokenizer(self._tokenizer_path())
            self._vllm_max_tokens = get_max_tokens
            self._vllm_count = lambda messages: len(apply_mistral_chat_template(tokenizer, messages, None, None))
        self._lock = threading.Lock()
        self._faults: list[tuple[int, str | None, str]] = []
        self._raw: list[tuple[int, bytes]] = []
        self.delay = 0.0
        self.seen: list[Seen] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fail(self, status: int, times: int = 1, *, retry_after: str | None = None, message: str = "") -> None:
        """Answer the next ``times`` requests with ``status`` (vLLM's error body), then behave again."""
        with self._lock:
            self._faults.extend([(status, retry_after, message or f"stand-in failure {status}")] * times)

    def reply_raw(self, status: int, body: bytes) -> None:
        """Answer the next request with exactly this status and body (a broken server)."""
        with self._lock:
            self._raw.append((status, body))

    def chats(self) -> list[Seen]:
        """The chat requests seen so far."""
        with self._lock:
            return [s for s in self.seen if s.path.endswith("/chat/completions")]

    def start(self) -> StandInServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._httpd = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ behaviour

    def _tokenizer_path(self) -> Path:
        if self._tokenizer_file is not None:
            return Path(self._tokenizer_file)
        import mistral_common

        return Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"

    def tokenizer(self) -> Any:
        """mistral_common's tokenizer (what vLLM's mistral mode wraps)."""
        path = self._tokenizer_path()
        with _tokenizers_lock:
            if str(path) not in _tokenizers:
                from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

                _tokenizers[str(path)] = MistralTokenizer.from_file(str(path))
            return _tokenizers[str(path)]

    def models(self) -> dict[str, Any]:
        card: dict[str, Any] = {
            "id": self.model_id,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": self.model_id,
            "parent": None,
            "permission": [],
        }
        if self.report_max_model_len:
            card["max_model_len"] = self.max_model_len
        return {"object": "list", "data": [card]}

    def chat(self, body: Any, seen: Seen) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _VllmError(400, "request body must be a JSON object")
        parsed = None
        if self.vllm_model is not None:
            try:
                parsed = self.vllm_model.model_validate(body)
            except Exception as exc:  # pydantic.ValidationError: vLLM answers 400 with its text
                raise _VllmError(400, " ".join(str(exc).split())) from None
            seen.vllm_validated = True
        if body.get("model") != self.model_id:
            raise _VllmError(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _VllmError(400, "messages must be a non-empty list")
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            for item in content if isinstance(content, list) else []:
                seen.content_types.append(item.get("type"))
                if item.get("type") == "image_url":
                    size, fmt = _decode_image(item["image_url"]["url"])
                    seen.image_sizes.append(size)
                    seen.image_formats.append(fmt)
        if len(seen.image_sizes) > self.max_images:
            # vLLM 0.9.2's MultiModalItemTracker, before the prompt is built
            raise _VllmError(
                400,
                f"At most {self.max_images} image(s) may be provided in one request. You can set "
                "`--limit-mm-per-prompt` to increase this limit if the model supports it.",
            )
        if parsed is not None:  # vLLM's own path: its MistralTokenizer on the parsed messages
            token_num = self._vllm_count(parsed.messages)
            seen.counted_by = "vllm"
        else:
            from mistral_common.protocol.instruct.request import ChatCompletionRequest

            request = ChatCompletionRequest(messages=messages)
            token_num = len(self.tokenizer().encode_chat_completion(request).tokens)
            seen.counted_by = "mistral_common"
        seen.prompt_tokens = token_num
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        # vLLM 0.9.2's OpenAIServing._validate_input
        if max_tokens is None:
            if token_num >= self.max_model_len:
                raise _VllmError(
                    400,
                    f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                    f"{token_num} tokens in the messages, Please reduce the length of the messages.",
                )
        elif token_num + max_tokens > self.max_model_len:
            raise _VllmError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{max_tokens + token_num} tokens ({token_num} in the messages, {max_tokens} in the completion). "
                f"Please reduce the length of the messages or completion.",
            )
        if parsed is not None:  # the sampling parameters vLLM's chat serving would run with
            limit = self._vllm_max_tokens(
                max_model_len=self.max_model_len, request=parsed, input_length=token_num, default_sampling_params={}
            )
            seen.sampling = parsed.to_sampling_params(limit, None, {})
        text = next(item.get("text") for item in messages[-1]["content"] if item.get("type") == "text")
        sizes = ", ".join(f"{w}x{h}" for w, h in seen.image_sizes)
        answer = f"\n  {text} Seen in {len(seen.image_sizes)} frame(s) of {sizes}; {token_num} prompt tokens.  \n"
        return {
            "id": f"chatcmpl-standin-{len(self.seen)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                    "stop_reason": None,
                }
            ],
            "usage": {"prompt_tokens": token_num, "completion_tokens": 20, "total_tokens": token_num + 20},
        }


def _vllm_tokenizer(path: Path) -> Any:
    """vLLM's MistralTokenizer for a tekken.json, loaded once per file."""
    from vllm.transformers_utils.tokenizers.mistral import MistralTokenizer

    key = f"vllm:{path}"
    with _tokenizers_lock:
        if key not in _tokenizers:
            _tokenizers[key] = MistralTokenizer.from_pretrained(str(path))
        return _tokenizers[key]


def _decode_image(url: str) -> tuple[tuple[int, int], str]:
    """Size and format of a data-URL image (as PIL, which vLLM uses, detects it)."""
    from PIL import Image

    if not url.startswith("data:") or ";base64," not in url:
        raise _VllmError(400, "only data URLs are accepted by the stand-in")
    try:
        raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            return image.size, str(image.format)
    except (binascii.Error, OSError) as exc:
        raise _VllmError(400, f"cannot decode image: {exc}") from None


def _error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    """vLLM's ErrorResponse."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


def _handler_for(server: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            seen = Seen(method, self.path, self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with server._lock:
                server.seen.append(seen)
                fault = server._faults.pop(0) if server._faults else None
                raw_reply = server._raw.pop(0) if server._raw and fault is None else None
            if server.delay:
                time.sleep(server.delay)
            if raw_reply is not None:
                seen.status = raw_reply[0]
                self.send_response(raw_reply[0])
                self.send_header("Content-Length", str(len(raw_reply[1])))
                self.end_headers()
                self.wfile.write(raw_reply[1])
                return
            status, payload, headers = self._answer(method, raw, seen, fault)
            seen.status = status
            self._send(status, payload, headers)

        def _answer(
            self, method: str, raw: bytes, seen: Seen, fault: tuple[int, str | None, str] | None
        ) -> tuple[int, Any, dict[str, str]]:
            if server.api_key is not None and seen.authorization != f"Bearer {server.api_key}":
                return 401, {"error": "Unauthorized"}, {}
            if fault is not None:
                status, retry_after, message = fault
                kind = "TooManyRequests" if status == 429 else "ServiceUnavailableError"
                return status, _error_body(status, message, kind), {"Retry-After": retry_after} if retry_after else {}
            if method == "GET" and self.path == "/v1/models":
                return 200, server.models(), {}
            if method == "POST" and self.path == "/v1/chat/completions":
                try:
                    seen.body = json.loads(raw)
                except ValueError as exc:
                    return 400, _error_body(400, f"invalid JSON: {exc}", "BadRequestError"), {}
                try:
                    return 200, server.chat(seen.body, seen), {}
                except _VllmError as exc:
                    return exc.status, _error_body(exc.status, exc.message, exc.kind), {}
                except Exception as exc:  # mistral_common refusing the messages: vLLM answers 400
                    return 400, _error_body(400, " ".join(str(exc).split()), "BadRequestError"), {}
            return 404, {"detail": "Not Found"}, {}

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    return Handler


@contextmanager
def serving(**settings: Any) -> Iterator[StandInServer]:
    """``with serving(max_model_len=8192) as server: …``"""
    with StandInServer(**settings) as server:
        yield server
