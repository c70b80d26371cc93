"""Timing helpers: fresh output folders made outside the timed region, medians, load average."""
from __future__ import annotations

import base64
import gc
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Dirs:
    """Fresh empty output folders, made and removed outside the timed regions."""

    def __init__(self, root: Path) -> None:
        self.root, self.n = root, 0
        self.current = root

    def __enter__(self) -> Path:
        self.n += 1
        self.current = self.root / f"out{self.n}"
        self.current.mkdir()
        return self.current

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.current)


def timed(fn: Callable[[Path], T], dirs: Dirs) -> tuple[float, T]:
    """(milliseconds, result) of ``fn(fresh_folder)``; garbage collected before the clock starts."""
    with dirs as out:
        gc.collect()
        start = time.perf_counter()
        result = fn(out)
        return (time.perf_counter() - start) * 1e3, result


def median_ms(fn: Callable[[], object], runs: int = 9) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def b64_files(paths: Iterable[Path]) -> int:
    """Read the files back and build upstream's data URLs; the total length of the URLs."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            total += len("data:image/jpeg;base64," + base64.b64encode(handle.read()).decode("utf-8"))
    return total


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover - platforms without getloadavg
        return "n/a"
