"""A recorder around the real ``vllm.LLM``: engine builds (with their arguments) and chat requests.

It wraps ``LLM.__init__`` and ``LLM.chat`` on vLLM's own class, so every caller (upstream's
upsampler, the plugin) goes through it unchanged. Per request it keeps the sizes of the images
sent (decoded from the data URLs), ``len(prompt_token_ids)`` of each output, or the refusal
(its type and vLLM's message). Importable as a plain module (``recorded_run.py`` runs beside it).
"""
from __future__ import annotations

import base64
import functools
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Request:
    """One ``LLM.chat`` call."""

    images: list[tuple[int, int]]
    texts: list[str]
    prompt_tokens: list[int] | None = None
    error_type: str | None = None
    error: str | None = None


@dataclass
class Recorder:
    """Builds and requests seen since the recorder was put on ``vllm.LLM``."""

    builds: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    alive: int = 0

    def clear(self) -> None:
        self.builds.clear()
        self.requests.clear()

    def attach(self, llm_class: type) -> Callable[[], None]:
        """Wrap ``llm_class.__init__`` and ``.chat``; returns the function that undoes it."""
        init, chat = llm_class.__init__, llm_class.chat  # type: ignore[misc]
        recorder = self

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            recorder.builds.append({"args": [repr(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()}})
            init(self, *args, **kwargs)

        @functools.wraps(chat)
        def chat_(self: Any, messages: Any, *args: Any, **kwargs: Any) -> Any:
            request = Request(images=image_sizes(messages), texts=texts(messages))
            recorder.requests.append(request)
            try:
                outputs = chat(self, messages, *args, **kwargs)
            except Exception as exc:
                request.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
                request.error = str(exc)
                raise
            request.prompt_tokens = [len(out.prompt_token_ids) for out in outputs]
            return outputs

        llm_class.__init__ = __init__  # type: ignore[misc]
        llm_class.chat = chat_  # type: ignore[attr-defined]

        def undo() -> None:
            llm_class.__init__ = init  # type: ignore[misc]
            llm_class.chat = chat  # type: ignore[attr-defined]

        return undo

    def to_json(self) -> str:
        return json.dumps({"builds": self.builds, "requests": [asdict(r) for r in self.requests]})


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), dict, list)) else repr(value)


def _conversation_items(messages: Any) -> list[dict[str, Any]]:
    """Every content item of a conversation or a list of conversations (upstream sends ``[message]``)."""
    items: list[dict[str, Any]] = []
    stack = [messages]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict) and "content" in node:
            content = node["content"]
            items.extend(content if isinstance(content, list) else [{"type": "text", "text": content}])
    return items


def image_sizes(messages: Any) -> list[tuple[int, int]]:
    """The (width, height) of each data-URL image in the request, in order."""
    from PIL import Image

    sizes = []
    for item in _conversation_items(messages):
        if item.get("type") == "image_url":
            data = item["image_url"]["url"].split(",", 1)[1]
            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                sizes.append(image.size)
    return sizes


def texts(messages: Any) -> list[str]:
    """The text items of the request, in order."""
    return [item["text"] for item in _conversation_items(messages) if item.get("type") == "text"]
