"""Upstream's request as the OpenAI chat API carries it: one user message, frames as data URLs, then the text."""
from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cosmos_upsample_fix.errors import InputError
from cosmos_upsample_fix.planning.tokenizer import effective_prompt

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
