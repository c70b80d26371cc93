"""The user's options: one typed description, validated once at each edge.

The three edges are the command line (:mod:`.cli`), :func:`~cosmos_upsample_fix.install`
with the environment, and the patched upstream's ``--upsampler_policy`` /
``--upsampler_endpoint`` flags. Each builds an :class:`Options` once; the planner and the
runtime only receive it. A policy is a small union of dataclasses (:class:`Fit` with its
optional bounds, :class:`Fixed`, :class:`Original`), parsed from the one-string form users
type (``fit``, ``max-side:N``, ``max-pixels:N``, ``scale:F``, ``fixed:WxH``, ``none``).

Pure: no I/O apart from reading the environment mapping it is handed.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, Limits
from cosmos_upsample_fix.errors import PolicySpecError

Selection = Literal["first", "uniform", "ends"]
"""Which frames of a video: upstream's first N, a uniform spread, or the two ends."""
SELECTIONS: tuple[str, ...] = get_args(Selection)

OnError = Literal["raise", "fallback", "skip"]
"""What a failed preprocessing does inside Cosmos: raise, hand upstream the original input,
or keep the user's prompt unchanged and go on."""
ON_ERROR_CHOICES: tuple[str, ...] = get_args(OnError)


POLICY_HELP = "fit, none, max-side:N, max-pixels:N, scale:F or fixed:WxH"


@dataclass(frozen=True)
class Fit:
    """The largest sizes that fit, keep the aspect ratio and never upscale; optionally bounded.

    At most one bound is set by the string form (``max-side:N``, ``max-pixels:N``,
    ``scale:F``); a target must satisfy every bound that is set.
    """

    max_side: int | None = None
    max_pixels: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_side", "max_pixels"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0):
                label = name.replace("_", "-")
                raise PolicySpecError(f"policy {label}: N must be a positive whole number, got {value!r}")
        if self.scale is not None:
            if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool) or math.isnan(self.scale):
                raise PolicySpecError(f"policy scale: F must be a number in (0, 1], got {self.scale!r}")
            if not 0 < self.scale <= 1:
                raise PolicySpecError(f"policy scale:{self.scale:g}: F must be in (0, 1]; the plugin never upscales")

    @property
    def spec(self) -> str:
        """The canonical string form (parses back to an equal policy)."""
        parts = []
        if self.max_side is not None:
            parts.append(f"max-side:{self.max_side}")
        if self.max_pixels is not None:
            parts.append(f"max-pixels:{self.max_pixels}")
        if self.scale is not None:
            parts.append(f"scale:{self.scale:g}")
        return ",".join(parts) or "fit"

    def allows(self, size: tuple[int, int], original: tuple[int, int]) -> bool:
        """True when ``size`` (a target for a frame of ``original`` size) is within every bound."""
        w, h = size
        if self.max_side is not None and max(w, h) > self.max_side:
            return False
        if self.max_pixels is not None and w * h > self.max_pixels:
            return False
        if self.scale is not None:
            # a small tolerance so that scale:0.5 of 1280 admits exactly 640
            if w > self.scale * original[0] + 1e-9 or h > self.scale * original[1] + 1e-9:
                return False
        return True

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Fixed:
    """Exactly ``width × height`` for every frame; refused if that does not fit."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if not (_is_int(self.width) and _is_int(self.height)) or self.width <= 0 or self.height <= 0:
            raise PolicySpecError(
                f"policy fixed:{self.width}x{self.height}: expected positive whole numbers, e.g. fixed:640x352"
            )

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.width, self.height

    @property
    def spec(self) -> str:
        """The canonical string form."""
        return f"fixed:{self.width}x{self.height}"

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Original:
    """Upstream's behaviour: the original size; refused if that does not fit (the ``none`` policy)."""

    @property
    def spec(self) -> str:
        """The canonical string form."""
        return "none"

    def __str__(self) -> str:
        return self.spec


Policy = Fit | Fixed | Original
"""A parsed policy."""
POLICY_TYPES = (Fit, Fixed, Original)

_INT = re.compile(r"^[0-9]+$")
_SIZE = re.compile(r"^([0-9]+)[xX×]([0-9]+)$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """Parse ``WxH`` (also ``W×H``) with positive whole numbers; the one parser of sizes."""
    match = _SIZE.match(str(text).strip())
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise PolicySpecError(f"{what} {text!r} is not WxH with positive whole numbers")
    return int(match.group(1)), int(match.group(2))


def parse_policy(spec: str | Policy | None) -> Policy:
    """Parse ``fit``, ``none``, ``max-side:N``, ``max-pixels:N``, ``scale:F`` or ``fixed:WxH``.

    ``None`` means ``fit``; a parsed policy is returned as is.
    """
    if isinstance(spec, POLICY_TYPES):
        return spec
    if spec is None:
        return Fit()
    if not isinstance(spec, str):
        raise PolicySpecError(f"policy must be a string such as 'fit', got {spec!r}")
    text = spec.strip().lower()
    kind, _, arg = text.partition(":")
    kind, arg = kind.strip(), arg.strip()
    hint = f"expected {POLICY_HELP}"
    if kind in ("fit", "none"):
        if arg:
            raise PolicySpecError(f"policy {spec!r} takes no argument ({hint})")
        return Fit() if kind == "fit" else Original()
    if kind not in ("max-side", "max-pixels", "scale", "fixed"):
        raise PolicySpecError(f"unknown policy {spec!r} ({hint})")
    if not arg:
        raise PolicySpecError(f"policy {spec!r} needs an argument ({hint})")
    if kind in ("max-side", "max-pixels"):
        if not _INT.match(arg):
            raise PolicySpecError(f"policy {spec!r}: N must be a positive whole number of pixels")
        return Fit(max_side=int(arg)) if kind == "max-side" else Fit(max_pixels=int(arg))
    if kind == "scale":
        try:
            factor = float(arg)
        except ValueError:
            raise PolicySpecError(f"policy {spec!r}: F must be a number in (0, 1]") from None
        return Fit(scale=factor)
    return Fixed(*parse_size(arg, "policy fixed:"))


def _positive_or_none(name: str, value: Any, minimum: int = 1) -> None:
    if value is not None and (not _is_int(value) or value < minimum):
        raise PolicySpecError(f"{name} must be a whole number >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Options:
    """Everything the user can set. Built and validated once at an edge, then passed down.

    ``frames=None`` asks for upstream's count (2), or fewer when the input has fewer (a
    one-frame clip or a still sends its one frame, as upstream does); an explicit number is
    a requirement. ``max_model_len``/``reserve_output``/``max_images`` left ``None`` mean: the
    live engine's values inside Cosmos, else upstream's (:data:`UPSTREAM_LIMITS`).
    """

    policy: Policy = field(default_factory=Fit)
    select: Selection = "first"
    frames: int | None = None
    on_error: OnError = "raise"
    max_model_len: int | None = None
    reserve_output: int | None = None
    max_images: int | None = None
    checkpoint_dir: str | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.policy, POLICY_TYPES):
            raise PolicySpecError(f"policy must be parsed with parse_policy(), got {self.policy!r}")
        if self.select not in SELECTIONS:
            raise PolicySpecError(f"select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if self.on_error not in ON_ERROR_CHOICES:
            raise PolicySpecError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {self.on_error!r}")
        _positive_or_none("frames", self.frames)
        _positive_or_none("max_model_len", self.max_model_len)
        _positive_or_none("reserve_output", self.reserve_output, minimum=0)
        _positive_or_none("max_images", self.max_images)
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", self.endpoint.strip().rstrip("/") or None)
        if self.endpoint is not None and not re.match(r"^https?://[^\s/]+", self.endpoint):
            raise PolicySpecError(f"endpoint must be an http:// or https:// URL, got {self.endpoint!r}")
        self.limits()  # max_model_len above reserve_output, checked with the package's error

    @classmethod
    def build(cls, **values: Any) -> Options:
        """From loose values as users type them (the fields' names; a policy string, a path).

        ``None`` or an empty string keeps a field's default; an unknown name is an error.
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise PolicySpecError(f"unknown option {unknown[0]!r}; the options are {', '.join(known)}")
        given = {k: v for k, v in values.items() if v is not None and v != ""}
        given["policy"] = parse_policy(given.get("policy"))
        if "checkpoint_dir" in given:
            given["checkpoint_dir"] = os.fspath(given["checkpoint_dir"])
        return cls(**given)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> Options:
        """``install()``'s edge: explicit arguments win over the environment, which wins over defaults.

        Reads :data:`~cosmos_upsample_fix.core.env.POLICY`, ``ON_ERROR`` and ``ENDPOINT``.
        """
        values = dict(explicit)
        for key, var in (("policy", env.POLICY), ("on_error", env.ON_ERROR), ("endpoint", env.ENDPOINT)):
            if values.get(key) is None:
                values[key] = var.get(environ)
        return cls.build(**values)

    def with_flags(self, policy: str | None = None, endpoint: str | None = None) -> Options:
        """The patched upstream's edge: ``--upsampler_policy`` / ``--upsampler_endpoint`` win when given."""
        changed = self
        if policy:
            changed = replace(changed, policy=parse_policy(policy))
        if endpoint:
            changed = replace(changed, endpoint=endpoint)
        return changed

    def limits(self, live: Limits | None = None) -> Limits:
        """The limits to plan for: a live engine's values first, else these options', else upstream's.

        ``live`` holds what was read from a loaded engine (it wins); values not set here fall
        back to :data:`UPSTREAM_LIMITS`.
        """
        if live is not None:
            return live
        return Limits(
            max_model_len=UPSTREAM_LIMITS.max_model_len if self.max_model_len is None else self.max_model_len,
            reserved_output_tokens=(
                UPSTREAM_LIMITS.reserved_output_tokens if self.reserve_output is None else self.reserve_output
            ),
            max_images=UPSTREAM_LIMITS.max_images if self.max_images is None else self.max_images,
        )
