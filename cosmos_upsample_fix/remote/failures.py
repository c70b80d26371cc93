"""The endpoint's URL and its failures: what the ``openai`` client raises, as one line of ours.

The ``openai`` client does the HTTP, the timeouts and the retries (:mod:`.endpoint` sets them).
What stays here is ours to state: the base URL a user may give (a bare ``http://HOST:8000``
gets ``/v1``), and one :class:`EndpointError` line for each failure, naming the URL, the
server's own message (vLLM's ``{"error": {"message": …}}`` or 0.9's ``{"object": "error",
"message": …}``), how many tries were made in how long, and never the API key.
"""
from __future__ import annotations

import json
import socket
import ssl
import urllib.parse
from typing import Any

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.errors import EndpointError

MAX_MESSAGE = 400
"""Characters of a server's error message kept in ours."""

OPENAI_EXTRA = "cosmos-upsample-fix[openai]"
"""The extra that installs the client endpoint mode needs."""

RETRIED_STATUSES = frozenset({408, 409, 429})
"""Statuses below 500 the ``openai`` client retries (every 5xx is retried too)."""


def missing_client() -> EndpointError:
    """The one line for a machine without the ``openai`` package."""
    return EndpointError(
        f"an upsampler endpoint needs the openai client, which is not installed here: pip install '{OPENAI_EXTRA}'"
    )


def normalize_base_url(url: str) -> str:
    """``http://host:8000/v1`` as given, without a trailing slash; a bare host gets ``/v1``.

    A full ``…/chat/completions`` or ``…/models`` URL is cut back to its base.
    """
    text = str(url).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"upsampler endpoint must be an http:// or https:// URL, got {text!r}")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise EndpointError(f"upsampler endpoint {text!r} has an invalid port") from None
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/models"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path or "/v1", "", ""))


def one_line(text: str) -> str:
    """Whitespace runs made single spaces, cut to :data:`MAX_MESSAGE` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def server_message(body: Any, raw: str = "") -> str:
    """The error text a server sent: the ``openai`` client's ``body`` (the ``error`` object, or
    the whole JSON body when it has none), else the raw response text."""
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("message") or body.get("detail")
    elif isinstance(body, str):
        message = body
    if not message:
        message = raw.strip() or "(empty body)"
    if not isinstance(message, str):
        message = json.dumps(message)
    return one_line(message)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def connection_reason(exc: BaseException) -> str:
    """What went wrong on the connection, from the exceptions under the ``openai`` client's."""
    chain = _chain(exc.__cause__ or exc.__context__)
    for inner in chain:
        if isinstance(inner, ConnectionRefusedError):
            return "cannot connect (connection refused)"
        if isinstance(inner, socket.gaierror):
            return f"cannot connect (cannot resolve the host: {inner.strerror or inner})"
        if isinstance(inner, ssl.SSLError):
            return f"cannot connect (TLS failed: {inner.reason or inner})"
    for inner in chain:
        text = str(inner).strip()
        if "refused" in text.lower():
            return "cannot connect (connection refused)"
        if "disconnected" in text.lower() or "without sending" in text.lower():
            return "connection lost (the server closed the connection without answering)"
        if text:
            return f"connection failed ({one_line(text)})"
    return "connection failed"


def tries(attempts: int, seconds: float) -> str:
    """``(4 attempts in 3.2 s)``."""
    return f"({attempts} attempt{'s' if attempts != 1 else ''} in {seconds:.1f} s)"


def status_error(url: str, status: int, message: str, attempts: int, seconds: float) -> EndpointError:
    """A status the server answered with, after the client's retries."""
    if status in RETRIED_STATUSES or status >= 500:
        return EndpointError(f"upsampler endpoint {url}: HTTP {status}: {message} {tries(attempts, seconds)}")
    hint = ""
    if status == 401:
        hint = f"; set {env.API_KEY.name} to the server's --api-key"
    elif status == 404 and url.endswith("/models"):
        hint = "; is this the server's OpenAI base URL (e.g. http://HOST:8000/v1)?"
    return EndpointError(f"upsampler endpoint {url} refused the request (HTTP {status}): {message}{hint}")
