"""Which frame indices a selection (first, uniform, ends) picks from a clip."""
from __future__ import annotations

from numbers import Integral

from cosmos_upsample_fix.core.options import SELECTIONS
from cosmos_upsample_fix.errors import InputError, PolicySpecError


def check_selection(count: object, select: str) -> int:
    """``count`` as an int, or PolicySpecError for a bad ``count`` or ``select`` (whatever the input)."""
    if select not in SELECTIONS:
        raise PolicySpecError(f"unknown frame selection {select!r}; choose one of {', '.join(SELECTIONS)}")
    if isinstance(count, bool) or not isinstance(count, Integral) or int(count) < 1:
        raise PolicySpecError(f"frame count must be a positive integer, got {count!r}")
    if select == "ends" and int(count) > 2:
        raise PolicySpecError(f"selection 'ends' takes 1 or 2 frames, got {count}")
    return int(count)


def frames_phrase(n: int) -> str:
    """``"1 frame"``, ``"5 frames"``."""
    return f"{n} frame" if n == 1 else f"{n} frames"


def select_indices(total: int, count: int, select: str) -> list[int]:
    """Return the strictly increasing frame indices ``select`` picks from ``total`` frames.

    ``first`` -> ``[0 .. count-1]``; ``uniform`` -> ``count`` indices spread over the
    whole clip, first and last included; ``ends`` -> first and last (``count`` 2, or 1).
    """
    count = check_selection(count, select)
    if total < count:
        raise InputError(f"fewer frames than asked: the source has {frames_phrase(total)}; {count} asked")
    if count == 1:
        return [0]
    if select == "first":
        return list(range(count))
    if select == "ends":
        return [0, total - 1]
    # uniform: total >= count >= 2, so the step (total-1)/(count-1) >= 1 and rounding keeps
    # the indices strictly increasing.
    return [int(round(i * (total - 1) / (count - 1))) for i in range(count)]
