"""Image-quality measures and "what the model sees" for the fidelity table.

* :func:`model_view` runs a frame through mistral_common's own image encoder (the object
  vLLM calls for Pixtral): its 1024 max-side cap, its patch-grid size and its OpenCV
  ``INTER_CUBIC`` resize on float32 RGB. The encoder returns the pixels normalised with the
  CLIP mean/std; we undo exactly that normalisation to get RGB values on 0..255 again
  (float32, not rounded, not clipped: what the vision encoder receives).
* :func:`upscale` brings a view back to the original frame size for comparison, always
  with OpenCV ``INTER_CUBIC`` on float32 (the same filter for every row), then clips to
  0..255 (the original's range).
* :func:`psnr` is over all three RGB channels (one MSE over every pixel and channel,
  peak 255). :func:`ssim` is the standard Gaussian-window SSIM of Wang et al. (2004):
  11x11 window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, on luma
  Y = 0.299 R + 0.587 G + 0.114 B, averaged over the "valid" region (the 5-pixel border
  where the window would leave the image is dropped), as in the reference MATLAB code.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from mistral_common.protocol.instruct.chunk import ImageChunk
from mistral_common.tokens.tokenizers.image import DATASET_MEAN, DATASET_STD
from PIL import Image

_MEAN = np.asarray(DATASET_MEAN, np.float32)[:, None, None]
_STD = np.asarray(DATASET_STD, np.float32)[:, None, None]


def image_encoder(model):
    """mistral_common's ImageEncoder of the package's tokenizer (the one vLLM uses)."""
    return model.tokenizer.instruct_tokenizer.image_encoder


def model_view(encoder, image: np.ndarray) -> tuple[np.ndarray, int]:
    """(H'xW'x3 float32 RGB on 0..255, token count) of ``image`` (uint8 RGB) as the model sees it."""
    encoding = encoder(ImageChunk(image=Image.fromarray(image)))
    chw = encoding.image * _STD + _MEAN
    return np.ascontiguousarray((chw * 255.0).transpose(1, 2, 0), dtype=np.float32), len(encoding.tokens)


def cubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV INTER_CUBIC on float32, to ``size`` = (width, height): the model's own resize."""
    return cv2.resize(np.asarray(image, np.float32), tuple(size), interpolation=cv2.INTER_CUBIC)


def upscale(view: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A view scaled back to ``size`` (OpenCV INTER_CUBIC, float32) and clipped to 0..255."""
    if (view.shape[1], view.shape[0]) != tuple(size):
        view = cubic(view, size)
    return np.clip(view, 0.0, 255.0)


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB over all RGB channels, peak 255 (inf when identical)."""
    diff = reference.astype(np.float64) - test.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def _luma(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian 11x11 sigma 1.5) on luma, valid region."""
    x, y = _luma(reference), _luma(test)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    smap = num / den
    return float(smap[5:-5, 5:-5].mean())
