"""The upsampler as a shared server: send the fitted request to an OpenAI-compatible endpoint.

``vllm serve`` exposes the upsampler checkpoint over the OpenAI API. This module asks the
server for its model name and ``max_model_len`` (``GET URL/models``), plans the frames for
those limits, and sends upstream's message to ``URL/chat/completions``: one user message
with one ``image_url`` item per frame (a data URL labelled ``image/jpeg`` holding PNG bytes,
as upstream builds it), then the text; temperature 0.6 and ``max_tokens`` = the reserved
answer length (300). The answer comes back stripped, as upstream's method returns it.

HTTP goes through the standard library (:mod:`.endpoint_http`), so endpoint mode needs no
extra package in a pinned Cosmos environment.
"""
from __future__ import annotations

import base64
import ipaddress
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import API_KEY_ENV, Options
from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.planning.planner import PlannedFrames, plan_frames
from cosmos_upsample_fix.planning.tokenizer import UpsamplerModel, effective_prompt, load_model
from cosmos_upsample_fix.remote.http import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEADLINE,
    DEFAULT_READ_TIMEOUT,
    LISTING_READ_TIMEOUT,
    EndpointError,
    HttpTransport,
    normalize_base_url,
)

__all__ = [
    "EndpointClient",
    "EndpointError",
    "UPSTREAM_TEMPERATURE",
    "client_for",
    "frame_data_url",
    "upsample_remote",
    "upsampler_message",
]

log = logging.getLogger(__name__)

UPSTREAM_TEMPERATURE = 0.6
"""Upstream's ``SamplingParams(temperature=0.6, ...)``."""

IMAGE_MIME = "image/jpeg"
"""The label upstream puts on its data URLs (the bytes are PNG; vLLM detects the format)."""

NETWORK_PNG_LEVEL = 1
"""PNG compression for a server on another machine: zlib level 1, 4-13 ms a 928x512 frame.

It makes the request 5-20x smaller on flat control clips and about 3x on camera footage
(3.7 MB of base64 for two stored frames), which a network link pays for in full; a server
on this machine (loopback) gets stored PNGs, the fastest to make and to read.
"""


def png_level_for(url: str) -> int:
    """0 (stored PNG) for a loopback server, :data:`NETWORK_PNG_LEVEL` for any other host."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return 0
    try:
        return 0 if ipaddress.ip_address(host).is_loopback else NETWORK_PNG_LEVEL
    except ValueError:  # a host name: assume it is across a network
        return NETWORK_PNG_LEVEL


def frame_data_url(path: str | os.PathLike[str]) -> str:
    """A frame file as upstream sends it: ``data:image/jpeg;base64,<the file's bytes>``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read frame {os.fspath(path)}: {exc.strerror or exc}") from None
    return f"data:{IMAGE_MIME};base64,{base64.b64encode(data).decode('ascii')}"


def upsampler_message(frame_paths: Sequence[str | os.PathLike[str]], prompt: str | None) -> dict[str, Any]:
    """Upstream's one user message: the frames as data URLs, then the text (empty -> the default)."""
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": frame_data_url(path)}} for path in frame_paths
    ]
    content.append({"type": "text", "text": effective_prompt(prompt)})
    return {"role": "user", "content": content}


class EndpointClient:
    """A client of one OpenAI-compatible upsampler server; safe to share between threads.

    Every request opens its own connection, so threads share nothing but the model card,
    which is fetched once (under a lock) and kept for the client's lifetime.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        self.url = normalize_base_url(url)
        self._http = HttpTransport(
            self.url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            attempts=attempts,
            backoff=backoff,
            deadline=deadline,
        )
        self._card: dict[str, Any] | None = None
        self._card_lock = threading.Lock()

    def __repr__(self) -> str:  # the API key stays out of reprs and logs
        return f"EndpointClient({self.url!r})"

    def model_card(self) -> dict[str, Any]:
        """The served model's card from ``GET URL/models`` (the first one listed), fetched once."""
        with self._card_lock:
            if self._card is None:
                listing = self._http.request(
                    "GET", "/models", read_timeout=min(self._http.read_timeout, LISTING_READ_TIMEOUT)
                )
                data = listing.get("data") if isinstance(listing, dict) else None
                cards = [card for card in data or [] if isinstance(card, dict) and isinstance(card.get("id"), str)]
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

    def max_model_len(self) -> int:
        """The server's context length, from the model card (vLLM reports ``max_model_len``)."""
        value = self.model_card().get("max_model_len")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise EndpointError(
                f"upsampler endpoint {self.url}/models does not report max_model_len for {self.model_name()}"
            )
        return value

    def limits(self, options: Options) -> Limits:
        """The limits to plan for: the server's ``max_model_len``, the settings' answer length and image count.

        A ``max_model_len`` set in the options below the server's is kept (more headroom);
        a server that does not report one is planned for the options' value (else upstream's).
        """
        fallback = options.limits()
        try:
            served = self.max_model_len()
        except EndpointError as exc:
            log.warning("%s; planning for max_model_len %d", exc, fallback.max_model_len)
            served = fallback.max_model_len
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
    ) -> str:
        """Send upstream's message with these frames and prompt; return the answer's stripped text.

        ``max_tokens=None`` (or 0) leaves the answer length to the server.
        """
        body: dict[str, Any] = {
            "model": self.model_name(),
            "messages": [upsampler_message(frame_paths, prompt)],
            "temperature": temperature,
        }
        if max_tokens:
            body["max_tokens"] = max_tokens
        answer = self._http.request("POST", "/chat/completions", body)
        return _answer_text(answer, self.url)


def _answer_text(answer: Any, url: str) -> str:
    """The first choice's text from an OpenAI chat completion, stripped."""
    try:
        choice = answer["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"upsampler endpoint {url}/chat/completions answered without a message") from None
    if not isinstance(text, str):
        raise EndpointError(f"upsampler endpoint {url}/chat/completions answered without text")
    if choice.get("finish_reason") == "length":
        log.warning("the upsampler's answer was cut at max_tokens (as upstream's would be)")
    return text.strip()


_clients: dict[tuple[str, str | None], EndpointClient] = {}
_clients_lock = threading.Lock()


def client_for(url: str) -> EndpointClient:
    """The shared client for ``url`` (one per URL and API key in this process), with default settings.

    The API key is read from ``COSMOS_UPSAMPLER_API_KEY`` at each call, so a key set later
    gets its own client.
    """
    key = (normalize_base_url(url), os.environ.get(API_KEY_ENV) or None)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = EndpointClient(key[0], api_key=key[1])
            _clients[key] = client
        return client


def upsample_remote(
    source: Any,
    prompt: str | None,
    options: Options,
    *,
    model: UpsamplerModel | None = None,
    flag: str = "--policy",
    client: EndpointClient | None = None,
) -> tuple[str, PlannedFrames]:
    """Plan ``source``'s frames for the server's limits, send them with ``prompt``, return (answer, plan).

    The endpoint is ``options.endpoint`` unless a ``client`` is given. The PNG files live in
    a private temporary folder that is removed afterwards, also on failure. ``flag`` is the
    option a refusal tells the user to change.
    """
    if client is None:
        if not options.endpoint:
            raise EndpointError("no upsampler endpoint set (--endpoint URL or COSMOS_UPSAMPLER_ENDPOINT)")
        client = client_for(options.endpoint)
    limits = client.limits(options)
    model = model or load_model(options.checkpoint_dir)
    planned = plan_frames(source, prompt, options, limits=limits, model=model, flag=flag)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cosmos-upsample-fix-") as folder:
        paths = planned.write(folder, level=png_level_for(client.url))
        answer = client.chat(
            paths, prompt, temperature=UPSTREAM_TEMPERATURE, max_tokens=limits.reserved_output_tokens or None
        )
    log.info(
        "upsampler endpoint %s: %s; answered %d characters in %.1f s",
        client.url, planned.plan.summary(), len(answer), time.monotonic() - started,
    )
    return answer, planned
