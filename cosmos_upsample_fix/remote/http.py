"""JSON over HTTP for the upsampler endpoint: timeouts, bounded retries, the server's own errors.

Built on :mod:`http.client` from the standard library: endpoint mode then adds no package
to a pinned Cosmos environment, separate connect and read timeouts are easy to set, and
the connection goes straight to the server (no proxy from the environment in between).

Retried, with exponential backoff (or the server's ``Retry-After``, capped): failures to
connect (refused, reset, unreachable, connect timeout, DNS) and HTTP 429 / 5xx. Not
retried: a read timeout (the server is busy generating; asking again adds load) and any
other 4xx, whose message from the server (vLLM's ``{"object": "error", "message": …}`` or
OpenAI's ``{"error": {"message": …}}``) is surfaced in a one-line :class:`EndpointError`.
A deadline bounds the whole retry loop. The API key is sent as a bearer token and never
appears in a log record or an error message.
"""
from __future__ import annotations

import email.utils
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from cosmos_upsample_fix.core.options import API_KEY_ENV
from cosmos_upsample_fix.errors import UpsampleFixError

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection."""
DEFAULT_READ_TIMEOUT = 120.0
"""Seconds to wait for the answer (a 300-token answer of a busy 12B server)."""
DEFAULT_ATTEMPTS = 4
"""Tries per request (1 + 3 retries)."""
DEFAULT_BACKOFF = 0.5
"""First wait between tries; doubles each time (0.5, 1, 2 s)."""
DEFAULT_DEADLINE = 40.0
"""No retry starts after this many seconds: an unreachable server fails well within a minute."""
MAX_BACKOFF = 8.0
"""Longest wait between tries of our own choosing."""
MAX_RETRY_AFTER = 20.0
"""Longest wait a server's ``Retry-After`` can ask for."""
MAX_MESSAGE = 400
"""Characters of a server's error message kept in ours."""
LISTING_READ_TIMEOUT = 20.0
"""Seconds to wait for ``GET …/models`` (answered at once by a healthy server)."""

USER_AGENT = "cosmos-upsample-fix"


class EndpointError(UpsampleFixError):
    """The upsampler endpoint cannot be reached, refused the request, or answered nonsense."""


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


def server_message(body: bytes) -> str:
    """The error text a server put in its body (vLLM, OpenAI, FastAPI shapes), else the body itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or data.get("message") or data.get("detail")
    if message is None:
        message = text or "(empty body)"
    if not isinstance(message, str):
        message = json.dumps(message)
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds from now (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _Retryable(Exception):
    """One failed try that may be repeated."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class HttpTransport:
    """Sends JSON requests under one base URL. Holds no connection: safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        deadline: float = DEFAULT_DEADLINE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        parts = urllib.parse.urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.deadline = deadline
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpTransport({self.base_url!r})"

    def _scrub(self, text: str) -> str:
        """Never let the API key through, even when a server echoes it."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def request(self, method: str, path: str, body: Any = None, *, read_timeout: float | None = None) -> Any:
        """Send ``method path`` (JSON ``body``) with retries; return the decoded JSON answer.

        ``read_timeout`` overrides the transport's for this request.
        """
        url = self.base_url + path
        read_timeout = self.read_timeout if read_timeout is None else read_timeout
        payload = None if body is None else json.dumps(body).encode("utf-8")
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            remaining = self.deadline - (time.monotonic() - started)
            try:
                connect_timeout = min(self.connect_timeout, max(remaining, 0.1))
                return self._once(method, path, payload, connect_timeout=connect_timeout, read_timeout=read_timeout)
            except _Retryable as failure:
                reason, asked = failure.reason, failure.retry_after
            wait = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            if asked is not None:
                wait = min(asked, MAX_RETRY_AFTER)
            elapsed = time.monotonic() - started
            if attempt >= self.attempts or elapsed + wait > self.deadline:
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''} in {elapsed:.1f} s"
                raise EndpointError(self._scrub(f"upsampler endpoint {url}: {reason} ({tries})"))
            log.warning(
                "upsampler endpoint %s: %s; retrying in %.1f s (attempt %d of %d)",
                url, self._scrub(reason), wait, attempt + 1, self.attempts,
            )
            self._sleep(wait)

    def _connection(self, connect_timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=connect_timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)

    def _headers(self, payload: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _once(
        self, method: str, path: str, payload: bytes | None, *, connect_timeout: float, read_timeout: float
    ) -> Any:
        """One try: connect, send, read. Raises _Retryable for what a retry may cure."""
        url = self.base_url + path
        conn = self._connection(connect_timeout)
        try:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                raise EndpointError(f"upsampler endpoint {url}: TLS failed ({exc.reason or exc})") from None
            except OSError as exc:
                raise _Retryable(f"cannot connect ({_describe(exc)})") from None
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            try:
                conn.request(method, self._path + path, body=payload, headers=self._headers(payload))
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                raise EndpointError(
                    f"upsampler endpoint {url} did not answer within {read_timeout:g} s"
                ) from None
            except (ConnectionError, http.client.HTTPException) as exc:
                raise _Retryable(f"connection lost ({_describe(exc)})") from None
        finally:
            conn.close()
        status = response.status
        if 200 <= status < 300:
            try:
                return json.loads(data)
            except ValueError:
                raise EndpointError(f"upsampler endpoint {url} answered HTTP {status} with non-JSON") from None
        message = self._scrub(server_message(data))
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {message}", retry_after_seconds(response.getheader("Retry-After")))
        hint = ""
        if status == 401:
            hint = f"; set {API_KEY_ENV} to the server's --api-key"
        elif status == 404 and path == "/models":
            hint = "; is this the server's OpenAI base URL (e.g. http://HOST:8000/v1)?"
        raise EndpointError(f"upsampler endpoint {url} refused the request (HTTP {status}): {message}{hint}")
