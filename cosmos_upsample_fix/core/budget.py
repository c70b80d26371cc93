"""Token budget arithmetic for the upsampler's request: pure functions, no I/O.

vLLM (``tokenizer_mode="mistral"``) hands the chat to mistral_common, whose image
encoder charges an image of ``w × h`` pixels as follows:

1. if the longest side is over ``max_image_size``, both sides are divided by the same
   ratio and rounded; mistral_common ≥ 1.12 clamps a side rounded to 0 up to 1 pixel,
   older versions reject such an image (an assertion, which vLLM reports as a bare
   error), so :class:`ImageGrid` carries which rule the installed version follows;
2. ``cols = ceil(w / unit)``, ``rows = ceil(h / unit)`` with
   ``unit = patch_size × spatial_merge_size``;
3. the image costs ``rows × (cols + 1)`` tokens (each row ends with a break token,
   the last one with an end token), and its pixels are resized to ``cols·unit × rows·unit``.

The functions below reproduce exactly that arithmetic (the same float operations and
Python's ``round``), so a count made here equals ``len(encode_chat_completion(...).tokens)``;
``tests/test_budget.py`` checks this against mistral_common itself.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cosmos_upsample_fix.errors import BudgetError, PolicySpecError

Size = tuple[int, int]
"""A frame size as ``(width, height)`` in pixels."""


@dataclass(frozen=True)
class ImageGrid:
    """The model's image tokenizer settings (from tekken.json or params.json)."""

    patch_size: int
    max_image_size: int
    spatial_merge_size: int = 1
    clamps_to_one_pixel: bool = True
    """The counting rule of the installed mistral_common: True from 1.12 (a side rounded to 0
    counts as 1 pixel), False before (such an image is rejected)."""

    def __post_init__(self) -> None:
        for name in ("patch_size", "max_image_size", "spatial_merge_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PolicySpecError(f"image setting {name} must be a positive integer, got {value!r}")

    @property
    def unit(self) -> int:
        """Pixels per token along one side (patch size times spatial merge)."""
        return self.patch_size * self.spatial_merge_size


@dataclass(frozen=True)
class Limits:
    """What the engine allows: context length, tokens kept for the answer, images per prompt."""

    max_model_len: int = 4096
    reserved_output_tokens: int = 300
    max_images: int = 2

    def __post_init__(self) -> None:
        for name in ("max_model_len", "reserved_output_tokens", "max_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise PolicySpecError(f"{name} must be an integer, got {value!r}")
        if self.reserved_output_tokens < 0:
            raise PolicySpecError(f"reserved output tokens must be >= 0, got {self.reserved_output_tokens}")
        if self.max_images < 1:
            raise PolicySpecError(f"the engine must allow at least 1 image per prompt, got {self.max_images}")
        if self.max_model_len <= self.reserved_output_tokens:
            raise PolicySpecError(
                f"max_model_len ({self.max_model_len}) must be above the tokens reserved for the answer "
                f"({self.reserved_output_tokens})"
            )

    @property
    def prompt_budget(self) -> int:
        """The longest prompt that still leaves the reserved answer length free."""
        return self.max_model_len - self.reserved_output_tokens

    def check_images(self, count: int) -> None:
        """Raise BudgetError when ``count`` frames are more than the engine takes in one prompt."""
        if count > self.max_images:
            raise BudgetError(
                f"{count} frames asked but the engine allows {self.max_images} "
                f"image{'' if self.max_images == 1 else 's'} per prompt; send "
                f"{self.max_images} or fewer (--frames {self.max_images})"
            )


UPSTREAM_LIMITS = Limits()
"""Upstream's engine: ``max_model_len=4096``, ``SamplingParams(max_tokens=300)``, 2 images per prompt."""


def _capped_size(size: Size, grid: ImageGrid) -> Size:
    """Step 1 as the installed version does it; a side may round to 0 when it does not clamp."""
    w, h = size
    if w <= 0 or h <= 0:
        raise BudgetError(f"frame size must be positive, got {w}x{h}")
    ratio = max(h / grid.max_image_size, w / grid.max_image_size)
    if ratio <= 1:
        return w, h
    w, h = round(w / ratio), round(h / ratio)
    if grid.clamps_to_one_pixel:
        return max(w, 1), max(h, 1)
    return w, h


def accepts(size: Size, grid: ImageGrid) -> bool:
    """False when the tokenizer rejects an image of ``size`` (a side rounds to 0 pixels)."""
    return min(_capped_size(size, grid)) > 0


def model_image_size(size: Size, grid: ImageGrid) -> Size:
    """The size mistral_common works with after its ``max_image_size`` cap (step 1).

    Raises BudgetError for a size the tokenizer rejects (see :func:`accepts`).
    """
    capped = _capped_size(size, grid)
    if min(capped) <= 0:
        w, h = size
        raise BudgetError(
            f"a {w}x{h} image is rejected by the installed mistral_common (older than 1.12): capped to "
            f"{grid.max_image_size} pixels its short side rounds to 0"
        )
    return capped


def image_grid(size: Size, grid: ImageGrid) -> tuple[int, int]:
    """``(cols, rows)`` of token cells mistral_common gives an image of this size."""
    w, h = model_image_size(size, grid)
    unit = grid.unit
    return (w - 1) // unit + 1, (h - 1) // unit + 1


def grid_tokens(cols: int, rows: int) -> int:
    """Tokens of an image with that many token columns and rows: ``rows × (cols + 1)``."""
    return rows * (cols + 1)


def image_tokens(size: Size, grid: ImageGrid) -> int:
    """Exact tokens mistral_common charges for one image of ``size``."""
    return grid_tokens(*image_grid(size, grid))


def model_pixels(size: Size, grid: ImageGrid) -> Size:
    """The pixel size the model finally resizes the image to (step 4)."""
    cols, rows = image_grid(size, grid)
    return cols * grid.unit, rows * grid.unit


def presized(size: Size, grid: ImageGrid) -> Size:
    """What to send for a frame that fits as is: itself, or, over ``max_image_size``, the model's size.

    A frame over the cap would be shrunk by the model's own plain cubic resize; sending it
    at :func:`model_pixels` (no side above the original's) lets an antialiased filter do
    that shrink instead, with the same token grid. At or under the cap: unchanged.
    """
    if max(size) <= grid.max_image_size or not accepts(size, grid):
        return size
    width, height = model_pixels(size, grid)
    target = (min(width, size[0]), min(height, size[1]))
    if max(target) > grid.max_image_size or image_grid(target, grid) != image_grid(size, grid):
        return size  # a grid whose max_image_size is not a multiple of the unit: leave it to the model
    return target


@dataclass(frozen=True)
class RequestCount:
    """The exact length of one upsampler request and whether it leaves room for the answer."""

    frame_sizes: tuple[Size, ...]
    tokens_per_frame: tuple[int, ...]
    text_tokens: int
    prompt_tokens: int
    limits: Limits
    rejected: tuple[Size, ...] = ()
    """Frame sizes the installed tokenizer rejects outright (counted here as 0 tokens)."""

    @property
    def fits(self) -> bool:
        """True when prompt + reserved answer ≤ max_model_len, the image count is allowed, no frame rejected."""
        return (
            self.prompt_tokens <= self.limits.prompt_budget
            and len(self.frame_sizes) <= self.limits.max_images
            and not self.rejected
        )

    @property
    def over_by(self) -> int:
        """Tokens over the prompt budget (0 when within it)."""
        return max(0, self.prompt_tokens - self.limits.prompt_budget)

    @property
    def budget_use(self) -> float:
        """Prompt tokens as a fraction of the prompt budget."""
        return self.prompt_tokens / self.limits.prompt_budget


def count_request(sizes: Sequence[Size], text_tokens: int, grid: ImageGrid, limits: Limits) -> RequestCount:
    """Count a request of images ``sizes`` (sent first) plus text worth ``text_tokens``.

    ``text_tokens`` is the length of the same chat with the text alone (BOS, [INST], the
    text, [/INST]), as the tokenizer gives it; image tokens add to it exactly. A frame the
    tokenizer rejects counts 0 tokens and is listed in ``rejected`` (the request then does
    not fit).
    """
    frame_sizes = tuple((int(w), int(h)) for w, h in sizes)
    per_frame = tuple(image_tokens(s, grid) if accepts(s, grid) else 0 for s in frame_sizes)
    return RequestCount(
        frame_sizes=frame_sizes,
        tokens_per_frame=per_frame,
        text_tokens=text_tokens,
        prompt_tokens=text_tokens + sum(per_frame),
        limits=limits,
        rejected=tuple(s for s in frame_sizes if not accepts(s, grid)),
    )


def min_image_tokens() -> int:
    """The cheapest image: one token cell plus its end token."""
    return grid_tokens(1, 1)
