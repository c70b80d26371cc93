"""The upsampler model's tokenizer: an adapter over mistral_common (the library vLLM calls).

It reads the image settings (patch size, maximum image size) from the model's own files
and counts text exactly with the model's own tokenizer. Without a checkpoint folder it
uses mistral_common's bundled ``tekken_240911.json`` (Pixtral-12B's tokenizer), which is
what Cosmos's upsampler (a Pixtral-12B fine-tune) uses.
"""
from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from cosmos_upsample_fix.core.budget import ImageGrid, Limits, RequestCount, Size, count_request
from cosmos_upsample_fix.errors import ModelConfigError

log = logging.getLogger(__name__)

UPSAMPLER_SUBDIR = "nvidia/Cosmos-UpsamplePrompt1-12B-Transfer"
"""Where upstream keeps the upsampler under its checkpoint folder."""

DEFAULT_TOKENIZER = "tekken_240911.json"
"""mistral_common's bundled Pixtral-12B tokenizer, the embedded default."""

EMPTY_PROMPT = "describe the following images"
"""What upstream sends instead of an empty prompt."""


def effective_prompt(prompt: str | None) -> str:
    """The text upstream actually sends for ``prompt`` (an empty prompt is replaced)."""
    return prompt if prompt else EMPTY_PROMPT


CLAMP_SINCE = Version("1.12.0")
"""First mistral_common that clamps a side rounded to 0 pixels up to 1 (older ones reject the image)."""


@functools.lru_cache(maxsize=1)
def mistral_common_version() -> Version:
    """The installed mistral_common's version (the counting rules follow it)."""
    try:
        text = metadata.version("mistral_common")
    except metadata.PackageNotFoundError:  # imported from a source tree
        import mistral_common

        text = str(getattr(mistral_common, "__version__", "0"))
    try:
        return Version(text)
    except InvalidVersion:
        log.warning("unrecognised mistral_common version %r; counting with the newest rules", text)
        return Version("999")


IMAGE_SECTION_SINCE = Version("1.8.0")
"""First mistral_common that reads a tokenizer file's ``image`` section (older: ``multimodal`` only)."""


def clamps_to_one_pixel(version: Version | None = None) -> bool:
    """Whether that mistral_common (default: the installed one) clamps a rounded side to >= 1 pixel."""
    return (version or mistral_common_version()) >= CLAMP_SINCE


def chunk_classes() -> tuple[Any, Any, Any]:
    """ImageChunk, ImageURLChunk, TextChunk: in ``protocol.instruct.chunk`` from 1.8.5, before in ``messages``."""
    try:
        module = importlib.import_module("mistral_common.protocol.instruct.chunk")
    except ImportError:
        module = importlib.import_module("mistral_common.protocol.instruct.messages")
    return module.ImageChunk, module.ImageURLChunk, module.TextChunk


def bundled_tokenizer_path() -> Path:
    """Path of mistral_common's bundled Pixtral-12B tokenizer file."""
    import mistral_common

    return Path(mistral_common.__file__).resolve().parent / "data" / DEFAULT_TOKENIZER


def resolve_model_dir(checkpoint_dir: str | os.PathLike) -> Path:
    """Accept upstream's ``--checkpoint_dir`` or the upsampler's model folder itself."""
    base = Path(checkpoint_dir).expanduser()
    for candidate in (base, base / UPSAMPLER_SUBDIR):
        if (candidate / "tekken.json").is_file():
            return candidate.resolve()
    raise ModelConfigError(
        f"no upsampler tokenizer under {base}: expected {base / 'tekken.json'} or "
        f"{base / UPSAMPLER_SUBDIR / 'tekken.json'}"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ModelConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path} is not a JSON object")
    return data


def read_image_grid(tokenizer_file: Path, params_file: Path | None = None) -> ImageGrid:
    """Image settings from tekken.json's ``image`` section, else params.json's ``vision_encoder``.

    The grid also carries the installed mistral_common's rounding rule (see :class:`ImageGrid`).
    """
    settings = _read_json(tokenizer_file)
    clamps = clamps_to_one_pixel()
    image = settings.get("multimodal")  # every version reads this section first
    if not image and settings.get("image"):
        if mistral_common_version() < IMAGE_SECTION_SINCE:
            raise ModelConfigError(
                f"{tokenizer_file} keeps its image settings under 'image', which mistral_common "
                f"{mistral_common_version()} does not read (it reads 'multimodal'); install mistral_common>=1.8"
            )
        image = settings["image"]
    vision = None
    if params_file is not None and params_file.is_file():
        vision = _read_json(params_file).get("vision_encoder")
    if image:
        grid = ImageGrid(
            patch_size=int(image["image_patch_size"]),
            max_image_size=int(image["max_image_size"]),
            spatial_merge_size=int(image.get("spatial_merge_size", 1)),
            clamps_to_one_pixel=clamps,
        )
        if vision and (vision.get("patch_size"), vision.get("image_size")) != (grid.patch_size, grid.max_image_size):
            log.warning(
                "%s and %s disagree on the image settings; counting with the tokenizer's (%s), as vLLM does",
                tokenizer_file.name, params_file, grid,
            )
        return grid
    if vision:
        return ImageGrid(
            patch_size=int(vision["patch_size"]),
            max_image_size=int(vision["image_size"]),
            spatial_merge_size=int(vision.get("spatial_merge_size", 1)),
            clamps_to_one_pixel=clamps,
        )
    raise ModelConfigError(f"{tokenizer_file} has no image settings and no params.json vision_encoder was found")


@dataclass(eq=False)
class UpsamplerModel:
    """The upsampler's tokenizer and image settings, with exact request counting."""

    tokenizer_file: Path
    grid: ImageGrid
    _tokenizer: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # per instance, so each tokenizer file keeps its own counts
        self._text_tokens = functools.lru_cache(maxsize=1024)(self._count_text)

    @property
    def tokenizer(self) -> Any:
        """The mistral_common ``MistralTokenizer`` (loaded on first use, about a second)."""
        with self._lock:
            if self._tokenizer is None:
                from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

                try:
                    self._tokenizer = MistralTokenizer.from_file(str(self.tokenizer_file))
                except Exception as exc:  # mistral_common raises many types for a bad file
                    raise ModelConfigError(f"cannot load tokenizer {self.tokenizer_file}: {exc}") from exc
            return self._tokenizer

    def text_tokens(self, prompt: str | None) -> int:
        """Tokens of the chat with the text alone: BOS, [INST], text, [/INST]."""
        return self._text_tokens(effective_prompt(prompt))

    def _count_text(self, text: str) -> int:
        return len(self.encode(text, []))

    def count(self, sizes: Sequence[Size], prompt: str | None, limits: Limits) -> RequestCount:
        """Exact length of the request upstream builds from frames of ``sizes`` and ``prompt``."""
        return count_request(sizes, self.text_tokens(prompt), self.grid, limits)

    def encode(self, prompt: str | None, images: Sequence[Any]) -> list[int]:
        """Tokens of the full request through mistral_common (images first, then the text).

        ``images`` are PIL images or data URLs. This is the slow, authoritative path the
        closed form is checked against.
        """
        from mistral_common.protocol.instruct.messages import UserMessage
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        ImageChunk, ImageURLChunk, TextChunk = chunk_classes()
        chunks: list[Any] = [
            ImageURLChunk(image_url=img) if isinstance(img, str) else ImageChunk(image=img) for img in images
        ]
        chunks.append(TextChunk(text=effective_prompt(prompt)))
        request = ChatCompletionRequest(messages=[UserMessage(content=chunks)])
        return list(self.tokenizer.encode_chat_completion(request).tokens)


def load_model(checkpoint_dir: str | os.PathLike | None = None) -> UpsamplerModel:
    """The upsampler model description for a checkpoint folder, or the embedded default.

    Cached per tokenizer file, so the tokenizer is loaded once per process.
    """
    if checkpoint_dir is None:
        files: tuple[Path, Path | None] = (bundled_tokenizer_path(), None)
    else:
        model_dir = resolve_model_dir(checkpoint_dir)
        files = (model_dir / "tekken.json", model_dir / "params.json")
    with _load_lock:  # one instance per file even when threads ask at once
        return _model_for(*files)


_load_lock = threading.Lock()


@functools.cache
def _model_for(tokenizer_file: Path, params_file: Path | None) -> UpsamplerModel:
    return UpsamplerModel(tokenizer_file=tokenizer_file, grid=read_image_grid(tokenizer_file, params_file))
