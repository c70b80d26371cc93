"""The upsampler as a shared server: send the fitted request to an OpenAI-compatible endpoint.

``vllm serve`` exposes the upsampler checkpoint over the OpenAI API. Each request here first
asks the server for its model name and ``max_model_len`` (``GET URL/models``), plans the frames
for those limits, and sends upstream's message to ``URL/chat/completions``: one user message
with one ``image_url`` item per frame (a data URL labelled ``image/jpeg`` holding PNG bytes, as
upstream builds it), then the text; temperature 0.6 and ``max_tokens`` = the reserved answer
length (300). The answer comes back stripped, as upstream's method returns it.

The HTTP goes through the official ``openai`` client (what vLLM's docs use with ``vllm serve``;
vLLM depends on it, so every Cosmos environment has it; elsewhere the ``openai`` extra). Its
retries apply: 4 tries in all for connection failures, timeouts, HTTP 408/409/429 and 5xx,
0.5/1/2 s apart less up to a quarter (or the server's ``Retry-After``). So a server that is down
fails in 2.6-3.5 s, and one that never answers after 4 x 120 s at most. Every failure becomes
one :class:`EndpointError` line (:mod:`.failures`).
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import EndpointError
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, load_model
from cosmos_upsample_fix.remote.failures import (
    connection_reason,
    missing_client,
    normalize_base_url,
    one_line,
    server_message,
    status_error,
    tries,
)
from cosmos_upsample_fix.remote.message import (
    NETWORK_PNG_LEVEL,
    UPSTREAM_TEMPERATURE,
    frame_data_url,
    png_level_for,
    upsampler_message,
)

__all__ = [
    "EndpointClient", "EndpointError", "NETWORK_PNG_LEVEL", "Reply", "RemoteUpsample", "UPSTREAM_TEMPERATURE",
    "client_for", "frame_data_url", "png_level_for", "request_upsample", "require_openai", "upsample_remote",
    "upsampler_message",
]

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection."""
DEFAULT_READ_TIMEOUT = 120.0
"""Seconds to wait for the answer (a 300-token answer of a busy 12B server)."""
LISTING_READ_TIMEOUT = 20.0
"""Seconds to wait for ``GET …/models`` (answered at once by a healthy server)."""
DEFAULT_ATTEMPTS = 4
"""Tries per request (the ``openai`` client's ``max_retries`` + 1)."""
NO_KEY = "EMPTY"
"""The key sent to a server without ``--api-key`` (vLLM's docs' value; such a server ignores it).

Always passed explicitly, so the client never falls back to ``OPENAI_API_KEY`` and sends a
user's OpenAI key to the upsampler server."""
RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The header in which the ``openai`` client numbers its tries (0 for the first)."""


def require_openai() -> Any:
    """The ``openai`` module, or the one-line error naming the extra to install."""
    try:
        import openai
    except ImportError:
        raise missing_client() from None
    return openai


@dataclass(frozen=True)
class Reply:
    """The server's answer: its stripped text, the prompt tokens it counted, and the tries it took."""

    text: str
    prompt_tokens: int | None
    finish_reason: str | None
    attempts: int


def _as_dict(item: Any) -> dict[str, Any]:
    """A model object of the ``openai`` client as a plain dict (its extra fields included)."""
    for name in ("to_dict", "model_dump", "dict"):
        method = getattr(item, name, None)
        if callable(method):
            data = method()
            if isinstance(data, dict):
                return data
    return item if isinstance(item, dict) else {}


def _retries_taken(request: Any) -> int:
    try:
        return int(request.headers.get(RETRY_COUNT_HEADER) or 0)
    except (AttributeError, ValueError):
        return 0


class EndpointClient:
    """A client of one OpenAI-compatible upsampler server; safe to share between threads.

    The ``openai`` client keeps a pool of connections; the model card read last is kept for
    :meth:`model_name`, and read again by every :func:`request_upsample` (the plan follows the
    server as it is now, also after a restart with other settings).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        listing_timeout: float = LISTING_READ_TIMEOUT,
    ) -> None:
        openai = require_openai()
        if api_key is None:
            api_key = env.API_KEY.get()
        self.url = normalize_base_url(url)
        self._key = api_key
        self._openai_module = openai
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_retries = max(1, attempts) - 1
        self._listing_timeout = openai.Timeout(min(read_timeout, listing_timeout), connect=connect_timeout)
        self._openai = openai.OpenAI(
            base_url=self.url,
            api_key=api_key or NO_KEY,
            timeout=openai.Timeout(read_timeout, connect=connect_timeout),
            max_retries=self.max_retries,
        )
        self._card: dict[str, Any] | None = None
        self._card_lock = threading.Lock()

    def __repr__(self) -> str:  # the API key stays out of reprs and logs
        return f"EndpointClient({self.url!r})"

    def _scrub(self, text: str) -> str:
        """Never let the API key through, even when a server echoes it."""
        return text.replace(self._key, "***") if self._key else text

    @contextmanager
    def _calling(self, path: str) -> Iterator[None]:
        """Turn what the ``openai`` client raises into one :class:`EndpointError` line."""
        openai = self._openai_module
        url = self.url + path
        started = time.monotonic()
        try:
            yield
        except openai.APIStatusError as exc:
            message = server_message(exc.body, getattr(exc.response, "text", "") or "")
            attempts = _retries_taken(exc.response.request) + 1
            error = status_error(url, exc.status_code, self._scrub(message), attempts, time.monotonic() - started)
            raise error from None
        except openai.APITimeoutError as exc:
            attempts = _retries_taken(exc.request) + 1
            raise EndpointError(
                f"upsampler endpoint {url} did not answer within {self.read_timeout:g} s "
                f"(or connect within {self.connect_timeout:g} s) {tries(attempts, time.monotonic() - started)}"
            ) from None
        except openai.APIConnectionError as exc:
            attempts = _retries_taken(exc.request) + 1
            reason = self._scrub(connection_reason(exc))
            raise EndpointError(
                f"upsampler endpoint {url}: {reason} {tries(attempts, time.monotonic() - started)}"
            ) from None
        except openai.OpenAIError as exc:  # an answer the client cannot read
            raise EndpointError(
                f"upsampler endpoint {url} answered what the openai client cannot read: "
                f"{self._scrub(one_line(str(exc)))}"
            ) from None

    def model_card(self, refresh: bool = False) -> dict[str, Any]:
        """The served model's card from ``GET URL/models`` (the first one listed).

        Read at the first call and whenever ``refresh`` is set; a server that cannot be reached
        is an :class:`EndpointError`, never a card of assumed values.
        """
        with self._card_lock:
            if self._card is None or refresh:
                with self._calling("/models"):
                    page = self._openai.models.list(timeout=self._listing_timeout)
                    data = getattr(page, "data", None)
                cards = [_as_dict(card) for card in data or []]
                cards = [card for card in cards if isinstance(card.get("id"), str)]
                if not cards:
                    raise EndpointError(f"upsampler endpoint {self.url}/models lists no model")
                if len(cards) > 1:
                    log.info(
                        "upsampler endpoint %s serves %d models; using the first, %s",
                        self.url, len(cards), cards[0]["id"],
                    )
                self._card = cards[0]
            return self._card

    def model_name(self) -> str:
        """The model name to send (the served model's id)."""
        return str(self.model_card()["id"])

    def max_model_len(self, refresh: bool = False) -> int:
        """The server's context length, from the model card (vLLM reports ``max_model_len``)."""
        card = self.model_card(refresh)
        value = card.get("max_model_len")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise EndpointError(
                f"upsampler endpoint {self.url}/models does not report max_model_len for {card['id']}"
            )
        return value

    def limits(self, options: Options, refresh: bool = False) -> Limits:
        """The limits to plan for: the server's ``max_model_len``, the settings' answer length and image count.

        A ``max_model_len`` set in the options below the server's is kept (more headroom). A
        server that answers but reports no ``max_model_len`` (not vLLM) is planned for the
        options' value, else upstream's, with a warning; one that cannot be reached raises.
        """
        fallback = options.limits()
        card = self.model_card(refresh)
        try:
            served = self.max_model_len()
        except EndpointError as exc:
            log.warning("%s; planning for max_model_len %d", exc, fallback.max_model_len)
            served = fallback.max_model_len
        else:
            log.debug("upsampler endpoint %s serves %s with max_model_len %d", self.url, card["id"], served)
        max_model_len = served if options.max_model_len is None else min(served, options.max_model_len)
        return Limits(
            max_model_len=max_model_len,
            reserved_output_tokens=fallback.reserved_output_tokens,
            max_images=fallback.max_images,
        )

    def chat(
        self,
        frame_paths: Sequence[str | os.PathLike[str]],
        prompt: str | None,
        *,
        temperature: float = UPSTREAM_TEMPERATURE,
        max_tokens: int | None = 300,
    ) -> Reply:
        """Send upstream's message with these frames and prompt; return the answer.

        ``max_tokens=None`` (or 0) leaves the answer length to the server.
        """
        extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
        message = upsampler_message(frame_paths, prompt)
        with self._calling("/chat/completions"):
            raw = self._openai.chat.completions.with_raw_response.create(
                model=self.model_name(), messages=[message], temperature=temperature, **extra
            )
            completion = raw.parse()
        attempts = int(getattr(raw, "retries_taken", 0) or 0) + 1
        return _reply(completion, self.url, attempts)


def _reply(completion: Any, url: str, attempts: int) -> Reply:
    """The first choice's text, stripped, with the server's prompt token count."""
    data = _as_dict(completion) if not isinstance(completion, (str, bytes)) else {}
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"upsampler endpoint {url}/chat/completions answered without a message") from None
    if not isinstance(text, str):
        raise EndpointError(f"upsampler endpoint {url}/chat/completions answered without text")
    if choice.get("finish_reason") == "length":
        log.warning("the upsampler's answer was cut at max_tokens (as upstream's would be)")
    usage = data.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return Reply(
        text=text.strip(),
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
        finish_reason=choice.get("finish_reason"),
        attempts=attempts,
    )


_clients: dict[tuple[int, str, str | None], EndpointClient] = {}
_clients_lock = threading.Lock()


def client_for(url: str) -> EndpointClient:
    """The shared client for ``url`` (one per URL and API key in this process), with default settings.

    The API key is read from ``COSMOS_UPSAMPLE_FIX_API_KEY`` at each call, so a key set later
    gets its own client; a forked child makes its own (connection pools do not survive a fork).
    """
    key = (os.getpid(), normalize_base_url(url), env.API_KEY.get())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = EndpointClient(key[1], api_key=key[2])
            _clients[key] = client
        return client


@dataclass(frozen=True)
class RemoteUpsample:
    """What one request to the server gave: the answer, the plan sent, and the server's reply."""

    answer: str
    planned: PlannedFrames
    reply: Reply


def request_upsample(
    source: Any,
    prompt: str | None,
    options: Options,
    *,
    model: UpsamplerModel | None = None,
    flag: str = "--policy",
    client: EndpointClient | None = None,
) -> RemoteUpsample:
    """Read the server's limits, plan ``source``'s frames for them, send them with ``prompt``.

    The endpoint is ``options.endpoint`` unless a ``client`` is given. The PNG files live in
    a private temporary folder that is removed afterwards, also on failure. ``flag`` is the
    option a refusal tells the user to change. A server that counts the prompt differently
    from the plan is warned about (its tokenizer is not the one planned with).
    """
    if client is None:
        if not options.endpoint:
            raise EndpointError(f"no upsampler endpoint set (--endpoint URL or {env.ENDPOINT.name})")
        client = client_for(options.endpoint)
    limits = client.limits(options, refresh=True)
    model = model or load_model(options.checkpoint_dir)
    planned = plan_frames(source, prompt, options, limits=limits, model=model, flag=flag)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cosmos-upsample-fix-") as folder:
        paths = planned.write(folder, level=png_level_for(client.url))
        reply = client.chat(
            paths, prompt, temperature=UPSTREAM_TEMPERATURE, max_tokens=limits.reserved_output_tokens or None
        )
    expected = planned.plan.planned.prompt_tokens
    if reply.prompt_tokens is not None and reply.prompt_tokens != expected:
        log.warning(
            "upsampler endpoint %s counted %d prompt tokens where the plan counted %d: the server's tokenizer "
            "is not the one planned with (give the served checkpoint's folder)",
            client.url, reply.prompt_tokens, expected,
        )
    log.info(
        "upsampler endpoint %s: %s; the server counted %s prompt tokens; answered %d characters in %.1f s%s",
        client.url, planned.plan.summary(), reply.prompt_tokens, len(reply.text), time.monotonic() - started,
        f" after {reply.attempts} attempts" if reply.attempts > 1 else "",
    )
    return RemoteUpsample(reply.text, planned, reply)


def upsample_remote(
    source: Any,
    prompt: str | None,
    options: Options,
    *,
    model: UpsamplerModel | None = None,
    flag: str = "--policy",
    client: EndpointClient | None = None,
) -> tuple[str, PlannedFrames]:
    """:func:`request_upsample`, returning (answer, plan)."""
    result = request_upsample(source, prompt, options, model=model, flag=flag, client=client)
    return result.answer, result.planned
