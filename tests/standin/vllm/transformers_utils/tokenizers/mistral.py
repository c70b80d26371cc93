"""Stand-in for vLLM's wrapper around a mistral_common tokenizer (``tokenizer_mode="mistral"``).

Attribute names follow vLLM 0.9.2: ``.mistral`` is mistral_common's ``MistralTokenizer``,
``.instruct`` its instruct tokenizer, ``.tokenizer`` the raw (Tekken) tokenizer.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

# Loading tekken.json takes about a second; the tests build many engines on copies of the
# same file, so parsed tokenizers are shared by content. The cache lives in a tiny
# top-level module (``standin_cache``) so that it survives the tests purging ``vllm*``
# from sys.modules between tests. mistral_common's tokenizers are not mutated by encoding.
try:
    import standin_cache as _cache_module  # type: ignore[import-not-found]

    _CACHE: dict = _cache_module.TOKENIZERS
except ImportError:  # pragma: no cover - the folder is always importable with the stand-in
    _CACHE = {}

TOKENIZER_FILE_NAMES = ("tekken.json",)


def find_tokenizer_file(folder: Path) -> Path:
    """The Mistral tokenizer file in a model folder (tekken.json, else tokenizer.model.v*)."""
    names = sorted(os.listdir(folder))
    for name in names:
        if name in TOKENIZER_FILE_NAMES:
            return folder / name
    versioned = [n for n in names if n.startswith("tokenizer.model.v")]
    if len(versioned) == 1:
        return folder / versioned[0]
    raise OSError(
        f"Found {len(versioned)} files matching the pattern `tokenizer.model.v*` or `tekken.json` in {folder}. "
        "Make sure that exactly one tokenizer file is present."
    )


def load_public_tokenizer(tokenizer_file: Path):
    """mistral_common's ``MistralTokenizer.from_file``, shared by file content."""
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer as PublicMistralTokenizer

    data = Path(tokenizer_file).read_bytes()
    key = hashlib.sha1(data).hexdigest()
    if key not in _CACHE:
        _CACHE[key] = PublicMistralTokenizer.from_file(str(tokenizer_file))
    return _CACHE[key]


class MistralTokenizer:
    """vLLM's tokenizer object for ``tokenizer_mode="mistral"``."""

    def __init__(self, tokenizer) -> None:
        self.mistral = tokenizer
        self.instruct = tokenizer.instruct_tokenizer
        self.tokenizer = tokenizer.instruct_tokenizer.tokenizer
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        self.is_tekken = isinstance(self.tokenizer, Tekkenizer)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str, *, revision: str | None = None) -> MistralTokenizer:
        path = Path(path_or_repo_id)
        if path.is_dir():
            tokenizer_file = find_tokenizer_file(path)
        elif path.is_file():
            tokenizer_file = path
        else:
            # The real one would try the Hugging Face Hub here; tests never reach a network.
            raise OSError(
                f"You have either provided a non-existent path: {path_or_repo_id} or an invalid HF Hub repo id."
            )
        return cls(load_public_tokenizer(tokenizer_file))

    # --- the parts of vLLM's tokenizer interface that are cheap to provide -----------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.n_words

    @property
    def max_token_id(self) -> int:
        return self.tokenizer.n_words - 1

    @property
    def bos_token_id(self) -> int:
        return self.tokenizer.bos_id

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_id

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        bos = True if add_special_tokens is None else add_special_tokens
        return self.tokenizer.encode(text, bos=bos, eos=False)

    def decode(self, ids: list[int] | int, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, int):
            ids = [ids]
        return self.mistral.decode(ids)

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[int]:
        """Token ids of a chat, the way vLLM builds them: a mistral_common ChatCompletionRequest
        encoded by ``encode_chat_completion`` (images included as image tokens)."""
        return self.encode_chat(messages, tools).tokens

    def encode_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None):
        """The whole mistral_common ``Tokenized`` result (tokens, text, images)."""
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        messages = [dict(m) for m in messages]
        if messages and messages[-1].get("role") == "assistant":
            messages[-1]["prefix"] = True
        for message in messages:
            message.pop("reasoning_content", None)
            if message.get("role") in ("assistant", "tool") and isinstance(message.get("content"), list):
                message["content"] = "\n".join(chunk.get("text") for chunk in message["content"])
        request = ChatCompletionRequest(messages=messages, tools=tools)
        return self.mistral.encode_chat_completion(request)
