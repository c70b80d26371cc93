"""An image as the upsampler model receives it, through mistral_common's public chat encoding.

:class:`Encoder` gives the model's view of a frame (resized by mistral_common, its CLIP
normalisation undone) and its tokens; :func:`psnr_against` scores a view against the original
frame, scaled back with OpenCV's cubic filter as the benchmarks score it. Used by the preview.
"""
from __future__ import annotations

import importlib
import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cosmos_upsample_fix.core.budget import Limits, Size, model_pixels
from cosmos_upsample_fix.planning.tokenizer import (
    UpsamplerModel,
    chunk_classes,
    effective_prompt,
    mistral_common_version,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelView:
    """An image as the model receives it: RGB floats on 0..255 (not clipped), and its tokens."""

    pixels: np.ndarray
    tokens: int
    by_encoder: bool
    """True when mistral_common's encoder made it; False for the logged Pillow approximation."""

    @property
    def size(self) -> Size:
        return self.pixels.shape[1], self.pixels.shape[0]


CONSTANT_MODULES = ("mistral_common.tokens.tokenizers.image", "mistral_common.tokens.tokenizers.multimodal")
"""Where mistral_common keeps ``DATASET_MEAN``/``DATASET_STD``: ``image`` from 1.8, ``multimodal`` before."""


def clip_constants() -> tuple[np.ndarray, np.ndarray]:
    """The CLIP mean and standard deviation the encoder normalises with, as 3x1x1 arrays.

    From the first of :data:`CONSTANT_MODULES` that has them (a missing one is logged at
    debug level); AttributeError when none has.
    """
    for name in CONSTANT_MODULES:
        try:
            module = importlib.import_module(name)
            mean, std = module.DATASET_MEAN, module.DATASET_STD
        except (ImportError, AttributeError) as exc:
            log.debug("preview: mistral_common %s: no normalisation constants in %s (%s)",
                      mistral_common_version(), name, exc)
            continue
        return np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
    raise AttributeError(f"no DATASET_MEAN/DATASET_STD in {' or '.join(CONSTANT_MODULES)}")


class Encoder:
    """The model's view of an image through mistral_common's public API (1.5.4 to newest).

    ``MistralTokenizer.encode_chat_completion`` of one image and the text returns the tokens
    and the image as the model receives it (resized, normalised with the CLIP mean and
    standard deviation, which we undo). When that is not usable here (OpenCV missing, the
    constants not found) the view is approximated with Pillow, and a warning says so.
    """

    def __init__(self, model: UpsamplerModel) -> None:
        self.model = model
        self.usable = True
        self.mean = self.std = np.zeros((3, 1, 1), np.float32)
        try:
            self.mean, self.std = clip_constants()
        except AttributeError as exc:
            self._note(exc)

    def _note(self, exc: BaseException) -> None:
        log.warning(
            "preview: mistral_common %s's image encoding is not usable here (%s: %s); the model's view is "
            "approximated with Pillow's cubic resize to the model's grid%s", mistral_common_version(),
            type(exc).__name__, exc,
            " (OpenCV, from the package's demo extra, gives the exact view)" if isinstance(exc, ImportError) else "",
        )
        self.usable = False

    def _encode(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """The normalised CHW image the model receives, and its tokens (the request's less the text's)."""
        from mistral_common.protocol.instruct.messages import UserMessage
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        image_chunk, _, text_chunk = chunk_classes()
        content = [image_chunk(image=Image.fromarray(image)), text_chunk(text=effective_prompt(None))]
        encoded = self.model.tokenizer.encode_chat_completion(ChatCompletionRequest(messages=[
            UserMessage(content=content)]))
        return np.asarray(encoded.images[0], np.float32), len(encoded.tokens) - self.model.text_tokens(None)

    def view(self, image: np.ndarray) -> ModelView:
        """``image`` (HxWx3 uint8 RGB) as the model sees it."""
        if self.usable:
            try:
                chw, tokens = self._encode(image)
            except ImportError as exc:  # OpenCV missing: mistral_common cannot resize
                self._note(exc)
            else:
                pixels = np.ascontiguousarray(((chw * self.std + self.mean) * 255.0).transpose(1, 2, 0),
                                              dtype=np.float32)
                return ModelView(pixels, tokens, True)
        size = model_pixels((image.shape[1], image.shape[0]), self.model.grid)
        count = self.model.count([(image.shape[1], image.shape[0])], "", Limits(max_model_len=10**9))
        resized = Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)
        return ModelView(np.asarray(resized, np.float32), count.tokens_per_frame[0], False)


def _cubic(pixels: np.ndarray, size: Size) -> np.ndarray:
    """Float RGB resized to ``size`` with OpenCV's cubic filter (Pillow's when OpenCV is missing)."""
    try:
        import cv2
    except ImportError:
        channels = [np.asarray(Image.fromarray(pixels[..., c]).resize(size, Image.Resampling.BICUBIC))
                    for c in range(3)]
        return np.stack(channels, axis=-1).astype(np.float32)
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC), np.float32)


def psnr_against(original: np.ndarray, view: ModelView) -> float:
    """PSNR (dB, peak 255, all RGB channels) of ``view`` scaled back to the original's size, clipped."""
    size = (original.shape[1], original.shape[0])
    back = view.pixels if view.size == size else _cubic(view.pixels, size)
    diff = np.clip(back, 0.0, 255.0) - original.astype(np.float32)
    mse = float(np.mean(np.square(diff), dtype=np.float64))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)
