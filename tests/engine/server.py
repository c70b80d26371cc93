"""A real ``vllm serve`` of the tiny Pixtral on 127.0.0.1, and a recording proxy in front of it.

:class:`VllmServer` starts the server in its own process group (the API server and its engine
core), waits for ``/v1/models``, and always stops the whole group, also when a test fails. The
``vllm_serve`` fixture keeps at most one server running (about 5.3 GB): asking for another
``max_model_len`` stops the current one first; the module's last test stops it.

:class:`RecordingProxy` forwards each request to the server unchanged and keeps what the
server answered (``usage.prompt_tokens``, the text, the status) and the sizes of the images
sent, so entry points that run in a subprocess (the CLI, the patched script) can be checked
against what the server itself counted.
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 420.0
"""Seconds a server may take to answer ``/v1/models`` (about 40 s on an idle 2-core machine)."""
STOP_TIMEOUT = 30.0
"""Seconds between SIGTERM and SIGKILL when stopping."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vllm_command() -> str:
    """The ``vllm`` script of the environment running the tests."""
    return str(Path(sys.executable).with_name("vllm"))


class VllmServer:
    """``vllm serve MODEL --max-model-len N`` on 127.0.0.1 (see the module docstring)."""

    def __init__(self, model_dir: Path, max_model_len: int, log_dir: Path, port: int | None = None) -> None:
        self.model_dir, self.max_model_len = model_dir, max_model_len
        self.port = port or free_port()
        self.log_path = log_dir / f"serve-{max_model_len}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in: list[float] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL to give the plugin."""
        return self.base + "/v1"

    def command(self) -> list[str]:
        return [
            vllm_command(), "serve", str(self.model_dir), "--tokenizer-mode", "mistral",
            "--max-model-len", str(self.max_model_len), "--limit-mm-per-prompt", '{"image": 2}',
            "--host", "127.0.0.1", "--port", str(self.port),
        ]

    def start(self) -> VllmServer:
        """Start and wait until ``/v1/models`` answers; a server that exits or never answers fails the test."""
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            while time.monotonic() - started < READY_TIMEOUT:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"vllm serve exited with {self.proc.returncode}: {self.log_tail()}")
                if self.models() is not None:
                    self.started_in.append(time.monotonic() - started)
                    return self
                time.sleep(1.0)
            raise RuntimeError(f"vllm serve did not answer within {READY_TIMEOUT:g} s: {self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def models(self) -> dict[str, Any] | None:
        """``GET /v1/models``, or None while nothing answers."""
        try:
            with urllib.request.urlopen(self.base + "/v1/models", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after :data:`STOP_TIMEOUT` s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the engine core may outlive the API server for a moment
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


@dataclass
class Exchange:
    """One request through the proxy and the server's answer."""

    method: str
    path: str
    status: int = 0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    max_tokens: int | None = None
    prompt: str | None = None
    prompt_tokens: int | None = None
    text: str | None = None
    body: str = ""


class RecordingProxy:
    """Forwards to ``target`` (``http://127.0.0.1:PORT``) and records each exchange."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def chats(self) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.path.endswith("/chat/completions")]

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _image_size(url: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.size


def _proxy_handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    host, port = proxy.target.split("://", 1)[1].split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            exchange = Exchange(method, self.path)
            if raw:
                request = json.loads(raw)
                exchange.max_tokens = request.get("max_tokens")
                for message in request.get("messages", []):
                    for item in message.get("content") if isinstance(message.get("content"), list) else []:
                        if item.get("type") == "image_url":
                            exchange.image_sizes.append(_image_size(item["image_url"]["url"]))
                        elif item.get("type") == "text":
                            exchange.prompt = item.get("text")
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            conn = http.client.HTTPConnection(host, int(port), timeout=600)
            try:
                conn.request(method, self.path, body=raw or None, headers=headers)
                response = conn.getresponse()
                data, status = response.read(), response.status
                kind = response.getheader("Content-Type") or "application/json"
            finally:
                conn.close()
            exchange.status, exchange.body = status, data.decode("utf-8", "replace")
            if status == 200 and self.path.endswith("/chat/completions"):
                answer = json.loads(data)
                exchange.prompt_tokens = answer["usage"]["prompt_tokens"]
                exchange.text = answer["choices"][0]["message"]["content"]
            with proxy._lock:
                proxy.exchanges.append(exchange)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._forward("POST")

    return Handler


@pytest.fixture(scope="module")
def vllm_serve(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., VllmServer]]:
    """``vllm_serve(max_model_len, port=None)``: the running server for that length (at most one runs at a time)."""
    logs = tmp_path_factory.mktemp("vllm-serve")
    current: list[VllmServer] = []

    def serve(max_model_len: int, port: int | None = None) -> VllmServer:
        if current and current[0].max_model_len == max_model_len and current[0].proc is not None:
            return current[0]
        while current:
            current.pop().stop()
        server = VllmServer(tiny_model, max_model_len, logs, port)
        current.append(server)
        return server.start()

    try:
        yield serve
    finally:
        while current:
            current.pop().stop()
